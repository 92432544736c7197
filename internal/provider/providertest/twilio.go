package providertest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ocamba-rotator/rotator/internal/secret"
)

// TwilioServerOptions configures NewTwilioServer.
type TwilioServerOptions struct {
	// NewToken makes each secondary auth token; nil = 32 random hex
	// digits, the form of Twilio's tokens.
	NewToken func() string
}

// TwilioServer is a test server of Twilio's auth token API and of the
// account read used as a cheap check. One server answers both hosts'
// paths, so pass its URL as both the accounts and the API base URL:
//
//   - GET /2010-04-01/Accounts/{sid}.json → 200 with the account
//   - POST /v1/AuthTokens/Secondary → 201 with secondary_auth_token (the
//     only answer that holds its value); a second one while one exists → 400
//   - DELETE /v1/AuthTokens/Secondary → 204; none to delete → 404
//   - POST /v1/AuthTokens/Promote → 200: the secondary becomes the primary,
//     the old primary is refused from then on; no secondary → 400
//
// Every request authenticates with HTTP Basic auth, user = Account SID,
// password = the primary or the secondary token; anything else answers
// 401 {"code":20003,"message":"Authenticate","more_info":...,"status":401}.
// Errors have Twilio's shape {"code","message","more_info","status"}.
// Which status Twilio answers to a second secondary, to deleting or
// promoting a missing one, is not in the reference this server follows:
// it answers 400 (code 20400) and 404 (code 20404).
type TwilioServer struct {
	faults
	srv      *httptest.Server
	newToken func() string

	mu       sync.Mutex
	accounts map[string]*twilioAccount
}

// twilioAccount is one account's tokens (secondary "" = none).
type twilioAccount struct {
	primary, secondary string
	created, updated   time.Time
}

// NewTwilioServer starts a TwilioServer with no accounts (see SeedAccount).
func NewTwilioServer(opts TwilioServerOptions) *TwilioServer {
	s := &TwilioServer{newToken: opts.NewToken, accounts: map[string]*twilioAccount{}}
	if s.newToken == nil {
		s.newToken = twilioRandomToken
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the server's base URL, for both of Twilio's hosts.
func (s *TwilioServer) URL() string { return s.srv.URL }

// Close shuts the server down.
func (s *TwilioServer) Close() { s.srv.Close() }

// SeedAccount creates (or resets) account sid with primary as its only
// auth token.
func (s *TwilioServer) SeedAccount(sid string, primary secret.Value) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	s.accounts[sid] = &twilioAccount{primary: primary.Reveal(), created: now, updated: now}
}

// IsPrimary reports whether token is sid's primary auth token.
func (s *TwilioServer) IsPrimary(sid string, token secret.Value) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[sid]
	return a != nil && twilioEqual(a.primary, token.Reveal())
}

// IsSecondary reports whether token is sid's secondary auth token.
func (s *TwilioServer) IsSecondary(sid string, token secret.Value) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[sid]
	return a != nil && a.secondary != "" && twilioEqual(a.secondary, token.Reveal())
}

// HasSecondary reports whether sid has a secondary auth token.
func (s *TwilioServer) HasSecondary(sid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[sid]
	return a != nil && a.secondary != ""
}

// DropSecondary deletes sid's secondary auth token behind the API's back
// (as in the console) and reports whether there was one.
func (s *TwilioServer) DropSecondary(sid string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[sid]
	if a == nil || a.secondary == "" {
		return false
	}
	a.secondary = ""
	return true
}

// Authenticates reports whether sid and token would be accepted.
func (s *TwilioServer) Authenticates(sid string, token secret.Value) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.twilioAuthLocked(sid, token.Reveal()) != nil
}

// twilioAuthLocked returns sid's account when token is its primary or
// secondary. s.mu must be held.
func (s *TwilioServer) twilioAuthLocked(sid, token string) *twilioAccount {
	a := s.accounts[sid]
	if a == nil || token == "" {
		return nil
	}
	if twilioEqual(a.primary, token) || (a.secondary != "" && twilioEqual(a.secondary, token)) {
		return a
	}
	return nil
}

func twilioEqual(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

func twilioRandomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// serve applies a queued fault, then routes the request. An AnswerLost
// fault carries the request out and resets the connection.
func (s *TwilioServer) serve(w http.ResponseWriter, r *http.Request) {
	if f, ok := s.take(r); ok {
		if f.before(w, r, twilioStatusAnswer) {
			return
		}
		if f.AnswerLost {
			s.route(httptest.NewRecorder(), r)
			lose(w)
			return
		}
	}
	s.route(w, r)
}

// twilioStatusAnswer answers status with Twilio's error shape (faults).
func twilioStatusAnswer(w http.ResponseWriter, status int) {
	msg := http.StatusText(status)
	if msg == "" {
		msg = "Error"
	}
	twilioError(w, status, 20000+status, msg)
}

// twilioError writes Twilio's error shape.
func twilioError(w http.ResponseWriter, status, code int, msg string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
	}
	twilioJSON(w, status, map[string]any{
		"code":      code,
		"message":   msg,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
		"status":    status,
	})
}

func twilioJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *TwilioServer) route(w http.ResponseWriter, r *http.Request) {
	const acctPrefix = "/2010-04-01/Accounts/"
	p := r.URL.Path
	var allowed []string
	switch {
	case strings.HasPrefix(p, acctPrefix) && strings.HasSuffix(p, ".json") && !strings.Contains(strings.TrimPrefix(p, acctPrefix), "/"):
		allowed = []string{http.MethodGet}
	case p == "/v1/AuthTokens/Secondary":
		allowed = []string{http.MethodPost, http.MethodDelete}
	case p == "/v1/AuthTokens/Promote":
		allowed = []string{http.MethodPost}
	default:
		twilioError(w, http.StatusNotFound, 20404, "The requested resource "+p+" was not found")
		return
	}
	if !slices.Contains(allowed, r.Method) {
		twilioError(w, http.StatusMethodNotAllowed, 20004, "Method not allowed")
		return
	}

	sid, token, ok := r.BasicAuth()
	s.mu.Lock()
	defer s.mu.Unlock()
	var a *twilioAccount
	if ok {
		a = s.twilioAuthLocked(sid, token)
	}
	if a == nil {
		twilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	now := time.Now().UTC()
	switch {
	case strings.HasPrefix(p, acctPrefix):
		if strings.TrimSuffix(strings.TrimPrefix(p, acctPrefix), ".json") != sid {
			twilioError(w, http.StatusNotFound, 20404, "The requested resource "+p+" was not found")
			return
		}
		twilioJSON(w, http.StatusOK, map[string]any{
			"sid":           sid,
			"friendly_name": "providertest " + sid,
			"status":        "active",
			"type":          "Full",
			"date_created":  a.created.Format(time.RFC1123Z),
			"date_updated":  a.updated.Format(time.RFC1123Z),
			"uri":           acctPrefix + sid + ".json",
		})
	case p == "/v1/AuthTokens/Secondary" && r.Method == http.MethodPost:
		if a.secondary != "" {
			twilioError(w, http.StatusBadRequest, 20400, "A secondary auth token already exists")
			return
		}
		a.secondary, a.updated = s.newToken(), now
		twilioJSON(w, http.StatusCreated, map[string]any{
			"account_sid":          sid,
			"secondary_auth_token": a.secondary,
			"date_created":         now.Format(time.RFC3339),
			"date_updated":         now.Format(time.RFC3339),
			"url":                  "https://accounts.twilio.com/v1/AuthTokens/Secondary",
		})
	case p == "/v1/AuthTokens/Secondary":
		if a.secondary == "" {
			twilioError(w, http.StatusNotFound, 20404, "The requested resource /v1/AuthTokens/Secondary was not found")
			return
		}
		a.secondary, a.updated = "", now
		w.WriteHeader(http.StatusNoContent)
	default: // Promote
		if a.secondary == "" {
			twilioError(w, http.StatusBadRequest, 20400, "No secondary auth token to promote")
			return
		}
		a.primary, a.secondary, a.updated = a.secondary, "", now
		twilioJSON(w, http.StatusOK, map[string]any{
			"account_sid":  sid,
			"auth_token":   a.primary,
			"date_created": a.created.Format(time.RFC3339),
			"date_updated": now.Format(time.RFC3339),
			"url":          "https://accounts.twilio.com/v1/AuthTokens",
		})
	}
}
