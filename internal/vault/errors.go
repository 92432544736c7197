package vault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"

	"github.com/hashicorp/vault/api"
)

// Kind classifies a Vault failure for callers that branch on it.
type Kind int

// The kinds of Vault failure.
const (
	// KindOther is any failure not classified below (such as an HTTP 500).
	KindOther Kind = iota
	// KindPermissionDenied: the token is valid but its policies do not
	// allow the request (HTTP 403 on a read).
	KindPermissionDenied
	// KindNotFound: no secret at the path, or its current KV v2 version is
	// deleted or destroyed.
	KindNotFound
	// KindSealed: Vault is sealed (HTTP 503).
	KindSealed
	// KindUnreachable: no answer from Vault: connection refused, DNS,
	// TLS, timeouts.
	KindUnreachable
	// KindUnauthenticated: a login was refused, or the token is invalid,
	// expired or revoked.
	KindUnauthenticated
	// KindInvalid: the request or the configuration is wrong before any
	// request is made (missing file, empty path, unknown method), or a
	// document (ReadDoc, WriteDoc) does not decode or encode.
	KindInvalid
	// KindConflict: a check-and-set write (WriteDoc) was refused because
	// the secret's current version is not the one the caller expected.
	KindConflict
)

// String returns the kind's name in words ("permission denied").
func (k Kind) String() string {
	switch k {
	case KindPermissionDenied:
		return "permission denied"
	case KindNotFound:
		return "not found"
	case KindSealed:
		return "vault is sealed"
	case KindUnreachable:
		return "vault unreachable"
	case KindUnauthenticated:
		return "unauthenticated"
	case KindInvalid:
		return "invalid"
	case KindConflict:
		return "check-and-set conflict"
	default:
		return "error"
	}
}

// The sentinels matched by errors.Is on an *Error of the same Kind.
var (
	ErrPermissionDenied = errors.New("vault: permission denied")
	ErrNotFound         = errors.New("vault: not found")
	ErrSealed           = errors.New("vault: sealed")
	ErrUnreachable      = errors.New("vault: unreachable")
	ErrUnauthenticated  = errors.New("vault: unauthenticated")
	ErrInvalid          = errors.New("vault: invalid request or configuration")
	ErrConflict         = errors.New("vault: check-and-set version mismatch")
)

// sentinel returns the sentinel of k, or nil for KindOther.
func (k Kind) sentinel() error {
	switch k {
	case KindPermissionDenied:
		return ErrPermissionDenied
	case KindNotFound:
		return ErrNotFound
	case KindSealed:
		return ErrSealed
	case KindUnreachable:
		return ErrUnreachable
	case KindUnauthenticated:
		return ErrUnauthenticated
	case KindInvalid:
		return ErrInvalid
	case KindConflict:
		return ErrConflict
	default:
		return nil
	}
}

// Error is a failed Vault operation. Its message never holds a secret value:
// it is built from the operation, the mount and path, the kind and Detail,
// never from a response body that could hold data.
type Error struct {
	// Op is "login", "read" (ReadKV, ReadKVVersion, ReadDoc), "write"
	// (WriteDoc), "metadata" (CurrentVersion), "configure", "health"
	// (Health) or "renew" (a renewal failure that KeepAlive logs).
	Op string
	// Mount and Path name the secret of a read, a write or a metadata
	// read; for a login, Mount is the auth mount (empty for the token
	// method).
	Mount, Path string
	// KVVersion is the KV version of a read, a write or a metadata read (1
	// or 2), 0 when unknown.
	KVVersion int
	// AtVersion is the secret version a read asked for (ReadKVVersion); 0
	// for the current one.
	AtVersion int
	// Method is the auth method of a login: token, approle or kubernetes.
	Method string
	// Addr is Vault's address, named by unreachable errors.
	Addr string
	// Kind classifies the failure; errors.Is matches its sentinel.
	Kind Kind
	// Detail says more in words, such as "current version 3 is deleted" or
	// "dial tcp 127.0.0.1:8200: connect: connection refused". It never holds
	// a secret value.
	Detail string
	// Err is the underlying error.
	Err error
}

// Error returns a message such as
// `read secret/ocamba/twilio (kv v2): permission denied`,
// `write secret/rotator/leases/a (kv v2): check-and-set conflict: version 3 is not the current version` or
// `read secret/ocamba/twilio (kv v2): vault unreachable at http://127.0.0.1:8200: dial tcp 127.0.0.1:8200: connect: connection refused`.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.subject())
	b.WriteString(": ")
	switch e.Kind {
	case KindUnreachable:
		b.WriteString("vault unreachable")
		if e.Addr != "" {
			b.WriteString(" at " + e.Addr)
		}
	case KindOther, KindInvalid:
		// The detail says it all.
		if e.Detail == "" {
			b.WriteString(e.Kind.String())
			if e.Err != nil && !errors.Is(e.Err, e.Kind.sentinel()) {
				b.WriteString(": " + e.Err.Error())
			}
			return b.String()
		}
		b.WriteString(e.Detail)
		return b.String()
	default:
		b.WriteString(e.Kind.String())
	}
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	return b.String()
}

// subject names the operation: `read secret/x (kv v2)`, `write secret/x (kv v2)`,
// `read metadata of secret/x (kv v2)`, `login with approle at auth/approle`.
func (e *Error) subject() string {
	switch e.Op {
	case OpRead, OpWrite, OpMetadata:
		s := e.Op + " " + joinPath(e.Mount, e.Path)
		if e.Op == OpMetadata {
			s = "read metadata of " + joinPath(e.Mount, e.Path)
		}
		if e.AtVersion > 0 {
			s += fmt.Sprintf(" version %d", e.AtVersion)
		}
		if e.KVVersion > 0 {
			s += fmt.Sprintf(" (kv v%d)", e.KVVersion)
		}
		return s
	case "login":
		s := "login"
		if e.Method != "" {
			s += " with " + e.Method
		}
		if e.Mount != "" {
			s += " at auth/" + e.Mount
		}
		return s
	case "":
		return "vault"
	default:
		if e.Mount != "" || e.Path != "" {
			return e.Op + " " + joinPath(e.Mount, e.Path)
		}
		return e.Op
	}
}

func joinPath(mount, path string) string {
	switch {
	case mount == "":
		return path
	case path == "":
		return mount
	default:
		return mount + "/" + path
	}
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel of e's Kind, so that
// errors.Is(err, ErrNotFound) holds for every not-found *Error.
func (e *Error) Is(target error) bool {
	s := e.Kind.sentinel()
	return s != nil && target == s
}

// classify turns an error of the vault/api client into an *Error of kind
// and detail for op. base carries Op, Mount, Path, KVVersion, Method, Addr.
func classify(base Error, err error) *Error {
	e := base
	e.Err = err
	var re *api.ResponseError
	var ue *url.Error
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		e.Kind, e.Detail = KindOther, "canceled"
	case errors.As(err, &re):
		e.Kind, e.Detail = classifyResponse(e.Op, re)
	case errors.Is(err, api.ErrSecretNotFound):
		e.Kind = KindNotFound
	case errors.Is(err, context.DeadlineExceeded):
		e.Kind, e.Detail = KindUnreachable, "no answer in time (context deadline exceeded)"
	case errors.As(err, &ue):
		e.Kind, e.Detail = KindUnreachable, ue.Err.Error()
	case errors.As(err, &ne), errors.Is(err, syscall.ECONNREFUSED), strings.Contains(err.Error(), "connection refused"):
		e.Kind, e.Detail = KindUnreachable, err.Error()
	default:
		e.Kind, e.Detail = KindOther, err.Error()
	}
	return &e
}

// casMismatch is how Vault's KV v2 engine (HTTP 400) refuses a write whose
// check-and-set version is not the secret's current version.
const casMismatch = "check-and-set parameter did not match the current version"

// classifyResponse classifies an HTTP error answer. Its detail is the
// answer's error messages, which Vault keeps free of secret data; a body
// that was not an error document is left out.
func classifyResponse(op string, re *api.ResponseError) (Kind, string) {
	msgs := ""
	if !re.RawError {
		msgs = strings.Join(re.Errors, "; ")
	}
	// Only Vault's own words say it is sealed: a 503 can also come from a
	// load balancer or a standby, and "sealed" would send an operator to
	// unseal a Vault that is fine.
	sealed := strings.Contains(strings.ToLower(msgs), "is sealed")
	switch {
	case sealed:
		return KindSealed, ""
	case op == "login" && re.StatusCode >= 400 && re.StatusCode < 500 && re.StatusCode != http.StatusTooManyRequests:
		if msgs == "" {
			msgs = fmt.Sprintf("HTTP %d", re.StatusCode)
		}
		return KindUnauthenticated, msgs
	case re.StatusCode == http.StatusBadRequest && strings.Contains(msgs, casMismatch):
		return KindConflict, ""
	case re.StatusCode == http.StatusForbidden:
		return KindPermissionDenied, ""
	case re.StatusCode == http.StatusNotFound:
		return KindNotFound, ""
	}
	d := fmt.Sprintf("vault answered HTTP %d", re.StatusCode)
	if msgs != "" {
		d += ": " + msgs
	}
	return KindOther, d
}
