package providertest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/ocamba-rotator/rotator/internal/secret"
)

// SendGridMaxKeys is SendGrid's cap on API keys per account: creating one
// more answers 403.
const SendGridMaxKeys = 100

// SendGrid's scopes for managing API keys.
const (
	SendGridScopeCreate = "api_keys.create"
	SendGridScopeRead   = "api_keys.read"
	SendGridScopeDelete = "api_keys.delete"
)

// SendGridKey is a key a SendGridServer holds, without its value.
type SendGridKey struct {
	ID     string
	Name   string
	Scopes []string
}

// SendGridServer is a test server of SendGrid's API-key endpoints:
//
//   - Authorization: Bearer <key>; a missing or unknown key answers 401.
//   - GET /v3/scopes: the caller key's scopes ({"scopes": [...]}).
//   - POST /v3/api_keys {"name", "scopes"} (needs api_keys.create): 201
//     {"api_key", "api_key_id", "name", "scopes"}; the only answer that
//     carries a key's value. Values are 69 characters, "SG.<id>.<secret>".
//     403 when the account holds SendGridMaxKeys keys, or when a scope
//     asked for is one the caller lacks; no scopes = the caller's scopes.
//   - GET /v3/api_keys?limit=N (needs api_keys.read): {"result":
//     [{"api_key_id", "name"}]}, oldest first.
//   - GET /v3/api_keys/{id} (needs api_keys.read): id, name and scopes.
//   - DELETE /v3/api_keys/{id} (needs api_keys.delete): 204; 404 when
//     unknown.
//   - A route's missing scope answers 403; errors have SendGrid's shape
//     {"errors":[{"field":null,"message":"..."}]}.
//
// Faults queued with Inject apply to every route, before authentication.
type SendGridServer struct {
	faults
	srv *httptest.Server

	mu           sync.Mutex
	keys         []*sendgridKey // oldest first
	secretPrefix string
}

type sendgridKey struct {
	id, name, value string
	scopes          []string
}

// NewSendGridServer starts a SendGridServer with no keys: seed the first
// (managing) key with SeedKey, as SendGrid's first key is made in its web
// app.
func NewSendGridServer() *SendGridServer {
	s := &SendGridServer{}
	s.srv = httptest.NewServer(http.HandlerFunc(s.sendgridServe))
	return s
}

// URL is the server's base URL (use it as the client's base URL).
func (s *SendGridServer) URL() string { return s.srv.URL }

// Close shuts the server down.
func (s *SendGridServer) Close() { s.srv.Close() }

// SeedKey adds a key with the given name and scopes, bypassing the API and
// its limits (SendGrid's web app), and returns its id and value.
func (s *SendGridServer) SeedKey(name string, scopes ...string) (string, secret.Value) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.sendgridNewKey(name, slices.Clone(scopes))
	return k.id, secret.New(k.value)
}

// SeedKeyValue adds a key with the given value (any text, e.g. one
// holding a test's sentinel), name and scopes, and returns its id.
func (s *SendGridServer) SeedKeyValue(value secret.Value, name string, scopes ...string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.sendgridNewKey(name, slices.Clone(scopes))
	k.value = value.Reveal()
	return k.id
}

// SetSecretPrefix makes the secret part of every key minted from now on
// start with p (clipped to fit the 69 characters), e.g. a test's sentinel.
func (s *SendGridServer) SetSecretPrefix(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secretPrefix = p
}

// Keys returns the keys the account holds, oldest first, without values.
func (s *SendGridServer) Keys() []SendGridKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]SendGridKey, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, SendGridKey{ID: k.id, Name: k.name, Scopes: slices.Clone(k.scopes)})
	}
	return out
}

// Accepts reports whether key authenticates (it exists on the account).
func (s *SendGridServer) Accepts(key secret.Value) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sendgridByValue(key.Reveal()) != nil
}

// Remove deletes the key with the given id behind the API's back (as in
// the web app) and reports whether it existed.
func (s *SendGridServer) Remove(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sendgridRemove(id)
}

// sendgridNewKey adds a key with a fresh id and value; s.mu is held.
func (s *SendGridServer) sendgridNewKey(name string, scopes []string) *sendgridKey {
	id := sendgridRandom(22)
	secretPart := s.secretPrefix
	if len(secretPart) > 43 {
		secretPart = secretPart[:43]
	}
	secretPart += sendgridRandom(43 - len(secretPart))
	k := &sendgridKey{id: id, name: name, value: "SG." + id + "." + secretPart, scopes: scopes}
	s.keys = append(s.keys, k)
	return k
}

// sendgridRandom is n random base64url characters.
func sendgridRandom(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

func (s *SendGridServer) sendgridByValue(v string) *sendgridKey {
	if v == "" {
		return nil
	}
	for _, k := range s.keys {
		if k.value == v {
			return k
		}
	}
	return nil
}

func (s *SendGridServer) sendgridByID(id string) *sendgridKey {
	for _, k := range s.keys {
		if k.id == id {
			return k
		}
	}
	return nil
}

func (s *SendGridServer) sendgridRemove(id string) bool {
	for i, k := range s.keys {
		if k.id == id {
			s.keys = slices.Delete(s.keys, i, i+1)
			return true
		}
	}
	return false
}

// sendgridServe applies a queued fault, then routes the request.
func (s *SendGridServer) sendgridServe(w http.ResponseWriter, r *http.Request) {
	f, faulted := s.take(r)
	if faulted && f.before(w, r, sendgridFaultAnswer) {
		return
	}
	if faulted && f.AnswerLost {
		s.sendgridRoute(httptest.NewRecorder(), r)
		lose(w)
		return
	}
	s.sendgridRoute(w, r)
}

func sendgridFaultAnswer(w http.ResponseWriter, status int) {
	sendgridError(w, status, "", strings.ToLower(http.StatusText(status)))
}

// sendgridError answers SendGrid's error shape; field "" is null.
func sendgridError(w http.ResponseWriter, status int, field, message string) {
	type item struct {
		Field   *string `json:"field"`
		Message string  `json:"message"`
	}
	it := item{Message: message}
	if field != "" {
		it.Field = &field
	}
	sendgridJSON(w, status, map[string][]item{"errors": {it}})
}

func sendgridJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *SendGridServer) sendgridRoute(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()

	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	caller := s.sendgridByValue(token)
	if !ok || caller == nil {
		sendgridError(w, http.StatusUnauthorized, "", "The provided authorization grant is invalid, expired, or revoked")
		return
	}
	need := func(scope string) bool {
		if slices.Contains(caller.scopes, scope) {
			return true
		}
		sendgridError(w, http.StatusForbidden, "", "access forbidden")
		return false
	}

	path := r.URL.Path
	switch {
	case path == "/v3/scopes" && r.Method == http.MethodGet:
		sendgridJSON(w, http.StatusOK, map[string][]string{"scopes": slices.Clone(caller.scopes)})
	case path == "/v3/api_keys" && r.Method == http.MethodPost:
		if need(SendGridScopeCreate) {
			s.sendgridCreate(w, r, caller)
		}
	case path == "/v3/api_keys" && r.Method == http.MethodGet:
		if need(SendGridScopeRead) {
			s.sendgridList(w, r)
		}
	case strings.HasPrefix(path, "/v3/api_keys/") && !strings.Contains(path[len("/v3/api_keys/"):], "/"):
		id := path[len("/v3/api_keys/"):]
		switch r.Method {
		case http.MethodGet:
			if !need(SendGridScopeRead) {
				return
			}
			k := s.sendgridByID(id)
			if k == nil {
				sendgridError(w, http.StatusNotFound, "", "unable to find API Key")
				return
			}
			sendgridJSON(w, http.StatusOK, map[string]any{"api_key_id": k.id, "name": k.name, "scopes": slices.Clone(k.scopes)})
		case http.MethodDelete:
			if !need(SendGridScopeDelete) {
				return
			}
			if !s.sendgridRemove(id) {
				sendgridError(w, http.StatusNotFound, "", "unable to find API Key")
				return
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			sendgridError(w, http.StatusMethodNotAllowed, "", "method not allowed")
		}
	case path == "/v3/scopes" || path == "/v3/api_keys":
		sendgridError(w, http.StatusMethodNotAllowed, "", "method not allowed")
	default:
		sendgridError(w, http.StatusNotFound, "", "resource not found")
	}
}

func (s *SendGridServer) sendgridCreate(w http.ResponseWriter, r *http.Request, caller *sendgridKey) {
	var in struct {
		Name   *string  `json:"name"`
		Scopes []string `json:"scopes"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&in); err != nil {
		sendgridError(w, http.StatusBadRequest, "", "invalid JSON")
		return
	}
	if in.Name == nil || *in.Name == "" {
		sendgridError(w, http.StatusBadRequest, "name", "missing required argument")
		return
	}
	if len(s.keys) >= SendGridMaxKeys {
		sendgridError(w, http.StatusForbidden, "", "you have reached the maximum of "+strconv.Itoa(SendGridMaxKeys)+" API keys")
		return
	}
	scopes := slices.Clone(in.Scopes)
	if len(scopes) == 0 {
		scopes = slices.Clone(caller.scopes)
	}
	for _, sc := range scopes {
		if !slices.Contains(caller.scopes, sc) {
			sendgridError(w, http.StatusForbidden, "scopes", "cannot grant a scope the creating key does not hold: "+sc)
			return
		}
	}
	k := s.sendgridNewKey(*in.Name, scopes)
	sendgridJSON(w, http.StatusCreated, map[string]any{
		"api_key": k.value, "api_key_id": k.id, "name": k.name, "scopes": slices.Clone(k.scopes),
	})
}

func (s *SendGridServer) sendgridList(w http.ResponseWriter, r *http.Request) {
	limit := len(s.keys)
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			sendgridError(w, http.StatusBadRequest, "limit", "limit must be a positive integer")
			return
		}
		limit = min(limit, n)
	}
	type item struct {
		ID   string `json:"api_key_id"`
		Name string `json:"name"`
	}
	out := make([]item, 0, limit)
	for _, k := range s.keys[:limit] {
		out = append(out, item{ID: k.id, Name: k.name})
	}
	sendgridJSON(w, http.StatusOK, map[string][]item{"result": out})
}
