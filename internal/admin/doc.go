// Package admin is rotator's admin side: the HTTP server on admin.listen
// (/healthz, /readyz, /metrics and the bearer-protected /v1 API that forces a
// pass, plans one, runs a rotation or reports each integration's and
// rotation's status) and the Prometheus metrics the daemon exports.
//
// Nothing here holds package-level state: metrics are registered on the
// prometheus.Registerer the caller injects, and the server's token, service
// and logger come in through Options. No secret value (the admin token, an
// integration's settings) ever appears in an answer, a log line or an error.
package admin
