// Package hood is rotator's client for the Ocamba Hood API: the provider
// settings schemas, the settings-only PATCH and the read-back GET of an
// integration, client-side rate limiting and retries, and Hood's error body.
// Its sub-package hoodtest is a Hood test server that follows the same
// documented behaviour.
package hood
