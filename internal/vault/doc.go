// Package vault is rotator's Vault client: it logs in (token, AppRole or
// Kubernetes auth), reads KV v1 and v2 secrets, reads and writes JSON
// documents in KV v2 with check-and-set (ReadDoc, WriteDoc) and reads KV v2
// metadata (CurrentVersion), classifying failures into Kinds that callers
// branch on (permission denied, not found, sealed, unreachable,
// unauthenticated, check-and-set conflict). Secret values come back as
// secret.Value and never appear in an error or a log line; neither do the
// contents of documents.
//
// A Client is safe for concurrent use. It makes one HTTP request per call
// (vault/api's own retries are off: rotator decides when to retry), except
// that ReadKV (and ReadDoc, WriteDoc, CurrentVersion) logs in first when the
// client is not authenticated, and, when a request is denied because the
// token itself is no longer valid, logs in again once and repeats the
// request (see ReadKV). KeepAlive, run by the daemon for
// as long as it runs, renews the login's token and logs in again when it
// can no longer be renewed; Health checks Vault for readiness probes.
package vault
