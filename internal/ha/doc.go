// Package ha coordinates several rotators through Vault: it is a
// rotate.State whose records live in a KV v2 engine, one secret per
// integration, shared by every rotator of a deployment, and whose writes
// carry a lease, so that of several rotators that see the same change only
// one pushes it to Hood (docs/ha.md, "Records").
//
// A record is the KV v2 secret <mount>/<path>/<integration name>, whose data
// is
//
//	{"holder": "web-1#3f9a2c10", "expires": "2026-11-29T10:00:00.123Z", "record": {...}}
//
// holder is the identity of the rotator that holds the integration's lease
// ("" when nobody does), expires the end of that lease (RFC 3339, UTC) and
// record a state.Record (HMACs of the settings pushed, never a value). The
// HMAC key that all rotators share is {"key": "<base64 of 32 bytes>"} at
// <mount>/<path>/_meta/hmac-key, created by whichever rotator needs it first.
//
// Every write is a check-and-set write on the version that was read, so the
// KV v2 version of a record is the fencing token: Get reads it, Begin takes
// the lease on that very version (and fails, state.ErrNotHolder, when any
// other rotator wrote the record since), Fence extends the lease before a
// rollback, and Confirm or Fail write the outcome and release the lease on
// the version Begin (or Fence) wrote.
package ha
