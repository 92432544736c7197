package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/ocamba-rotator/rotator/internal/secret"
)

// tokenStore holds the SHA-256 digest of the admin token, swapped
// atomically on reload. Only the digest is kept: the plain text never
// stays in the server.
type tokenStore struct {
	p atomic.Pointer[[sha256.Size]byte] // nil: no token configured
}

func (ts *tokenStore) set(t secret.Value) {
	if t.IsZero() {
		ts.p.Store(nil)
		return
	}
	d := sha256.Sum256([]byte(t.Reveal()))
	ts.p.Store(&d)
}

// authResult is the verdict on a request's credentials.
type authResult int

const (
	authOK            authResult = iota
	authNotConfigured            // no admin token: 403
	authMissing                  // no usable bearer token: 401
	authWrong                    // a bearer token that is not the admin token: 401
)

// check compares the request's bearer token with the admin token. Both are
// hashed first and the digests compared in constant time, so neither the
// content nor the length of the token leaks through timing.
func (ts *tokenStore) check(header string) authResult {
	want := ts.p.Load()
	if want == nil {
		return authNotConfigured
	}
	got, ok := bearerToken(header)
	if !ok {
		return authMissing
	}
	d := sha256.Sum256([]byte(got))
	if subtle.ConstantTimeCompare(d[:], want[:]) != 1 {
		return authWrong
	}
	return authOK
}

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header. The scheme is case-insensitive (RFC 6750); the token must not be
// empty.
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// requireToken answers 403 while no admin token is configured and 401 (with
// WWW-Authenticate: Bearer) to a request without the right bearer token;
// other requests go on to next. It never echoes or logs the header.
func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch s.token.check(r.Header.Get("Authorization")) {
		case authOK:
			next.ServeHTTP(w, r)
		case authNotConfigured:
			writeError(w, http.StatusForbidden, "admin token not configured")
		case authMissing:
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeError(w, http.StatusUnauthorized, "missing bearer token")
		default:
			w.Header().Set("WWW-Authenticate", "Bearer")
			writeError(w, http.StatusUnauthorized, "invalid bearer token")
		}
	})
}
