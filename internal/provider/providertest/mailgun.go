package providertest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"time"
)

// MailgunDefaultKeyLimit is the account key limit of a MailgunServer when
// its options name none. Mailgun's reference says there is a limit but not
// its number; tests that care set their own.
const MailgunDefaultKeyLimit = 20

// MailgunServerOptions configures a MailgunServer.
type MailgunServerOptions struct {
	// KeyLimit is the most keys the account may hold (seeded keys count);
	// creating one more answers 400. 0 = MailgunDefaultKeyLimit.
	KeyLimit int
	// SecretPrefix starts every minted secret (e.g. a sentinel for tests
	// that look for leaks). The rest is random hex.
	SecretPrefix string
}

// MailgunServerKey is a key held by a MailgunServer, for tests' inspection.
type MailgunServerKey struct {
	ID          string
	Secret      string
	Kind        string // "domain", "user", "web"
	Role        string // "admin", "basic", "sending", "developer"
	DomainName  string
	Description string
	CreatedAt   time.Time

	seq int // order of creation
}

// MailgunServer simulates the parts of Mailgun's API that a rotation uses,
// from its public reference:
//
//   - HTTP Basic auth, user "api", password = a key's secret; anything else
//     answers 401 {"message": "Invalid private key"}.
//   - POST /v1/keys (multipart/form-data only; JSON or urlencoded answer
//     400): role (required), kind (default "user"), domain_name (required for
//     kind=domain, and the domain must exist), description, expiration.
//     Answers 200 {"message", "key": {... "secret" ...}}: the only answer
//     that carries a secret. Past the account key limit it answers 400.
//   - GET /v1/keys?domain_name=&kind= → {"items": [...], "total_count": N},
//     oldest first, without secrets. DELETE /v1/keys/{id} → 200 or 404.
//   - GET /v3/domains/{domain} → 200 {"domain": {...}} or 404.
//   - POST /v3/{domain}/messages: validates the form after authenticating
//     (400 {"message": "from parameter is missing"}); never delivers,
//     counts what it would have sent (see Sent).
//
// Decisions where the reference is silent: only admin keys may use
// /v1/keys. A domain key is confined to its own domain. A sending key may
// only POST messages: it is refused (403) at GET /v3/domains/{domain},
// which every other role may read. Error bodies have Mailgun's shape
// {"message": "..."}.
//
// Inject(Fault) misbehaves on any route: Status answers that status with
// Mailgun's error shape, AnswerLost carries the request out and resets the
// connection.
type MailgunServer struct {
	faults
	srv    *httptest.Server
	limit  int
	prefix string

	mu      sync.Mutex
	keys    map[string]*MailgunServerKey // by id
	domains map[string]bool
	seq     int
	sent    int
}

// NewMailgunServer starts a MailgunServer with no keys and no domains (see
// SeedKey and AddDomain). Close it when done.
func NewMailgunServer(opts MailgunServerOptions) *MailgunServer {
	s := &MailgunServer{
		limit:   opts.KeyLimit,
		prefix:  opts.SecretPrefix,
		keys:    map[string]*MailgunServerKey{},
		domains: map[string]bool{},
	}
	if s.limit <= 0 {
		s.limit = MailgunDefaultKeyLimit
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.mailgunServe))
	return s
}

// URL is the server's base URL (in place of https://api.mailgun.net).
func (s *MailgunServer) URL() string { return s.srv.URL }

// Close shuts the server down.
func (s *MailgunServer) Close() { s.srv.Close() }

// AddDomain adds sending domains to the account.
func (s *MailgunServer) AddDomain(names ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range names {
		s.domains[n] = true
	}
}

// SeedManagingKey adds an admin (user) key with secret, as made in
// Mailgun's web app, and returns its id.
func (s *MailgunServer) SeedManagingKey(secretText string) string {
	return s.SeedKey(MailgunServerKey{Kind: "user", Role: "admin", Secret: secretText, Description: "managing key"})
}

// SeedKey adds k (its ID is assigned when empty, CreatedAt when zero) and
// returns its id. It ignores the key limit.
func (s *MailgunServer) SeedKey(k MailgunServerKey) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	k.seq = s.seq
	if k.ID == "" {
		k.ID = s.mailgunNextID()
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = time.Now().UTC()
	}
	if k.Kind == "" {
		k.Kind = "user"
	}
	s.keys[k.ID] = &k
	return k.ID
}

// Keys returns the keys the account holds, oldest first.
func (s *MailgunServer) Keys() []MailgunServerKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]MailgunServerKey, 0, len(s.keys))
	for _, k := range s.keys {
		out = append(out, *k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// HasKey reports whether the key id exists.
func (s *MailgunServer) HasKey(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.keys[id]
	return ok
}

// Remove deletes key id behind the API's back (as in the web app) and
// reports whether it existed.
func (s *MailgunServer) Remove(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.keys[id]
	delete(s.keys, id)
	return ok
}

// Accepts reports whether secretText authenticates at all (any key).
func (s *MailgunServer) Accepts(secretText string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mailgunKeyBySecret(secretText) != nil
}

// CanSend reports whether secretText may send messages for domain.
func (s *MailgunServer) CanSend(secretText, domain string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.mailgunKeyBySecret(secretText)
	return k != nil && s.domains[domain] && mailgunDomainOK(k, domain)
}

// Sent is how many messages the server accepted (none is delivered).
func (s *MailgunServer) Sent() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sent
}

func (s *MailgunServer) mailgunNextID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s-%04d", hex.EncodeToString(b[:]), s.seq)
}

func (s *MailgunServer) mailgunKeyBySecret(secretText string) *MailgunServerKey {
	if secretText == "" {
		return nil
	}
	for _, k := range s.keys {
		if k.Secret == secretText {
			return k
		}
	}
	return nil
}

func mailgunDomainOK(k *MailgunServerKey, domain string) bool {
	return k.Kind != "domain" || k.DomainName == domain
}

func mailgunAnswer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func mailgunFail(w http.ResponseWriter, status int, msg string) {
	mailgunAnswer(w, status, map[string]string{"message": msg})
}

func mailgunStatusAnswer(w http.ResponseWriter, status int) {
	mailgunFail(w, status, http.StatusText(status))
}

func (s *MailgunServer) mailgunServe(w http.ResponseWriter, r *http.Request) {
	f, faulted := s.take(r)
	if faulted && f.before(w, r, mailgunStatusAnswer) {
		return
	}
	done := func() bool {
		if faulted && f.AnswerLost {
			lose(w)
			return true
		}
		return false
	}
	user, pass, ok := r.BasicAuth()
	s.mu.Lock()
	var caller *MailgunServerKey
	if ok && user == "api" {
		caller = s.mailgunKeyBySecret(pass)
	}
	var callerCopy MailgunServerKey
	if caller != nil {
		callerCopy = *caller
	}
	s.mu.Unlock()
	if caller == nil {
		if !done() {
			mailgunFail(w, http.StatusUnauthorized, "Invalid private key")
		}
		return
	}
	k := &callerCopy
	path := r.URL.Path
	switch {
	case path == "/v1/keys" && r.Method == http.MethodPost:
		s.mailgunCreate(w, r, k, done)
	case path == "/v1/keys" && r.Method == http.MethodGet:
		s.mailgunList(w, r, k, done)
	case strings.HasPrefix(path, "/v1/keys/") && r.Method == http.MethodDelete:
		s.mailgunDelete(w, strings.TrimPrefix(path, "/v1/keys/"), k, done)
	case strings.HasPrefix(path, "/v3/domains/") && r.Method == http.MethodGet:
		s.mailgunDomain(w, strings.TrimPrefix(path, "/v3/domains/"), k, done)
	case strings.HasPrefix(path, "/v3/") && strings.HasSuffix(path, "/messages") && r.Method == http.MethodPost:
		s.mailgunMessages(w, r, strings.TrimSuffix(strings.TrimPrefix(path, "/v3/"), "/messages"), k, done)
	default:
		if !done() {
			mailgunFail(w, http.StatusNotFound, "Not Found")
		}
	}
}

func (s *MailgunServer) mailgunCreate(w http.ResponseWriter, r *http.Request, caller *MailgunServerKey, done func() bool) {
	if caller.Role != "admin" {
		if !done() {
			mailgunFail(w, http.StatusForbidden, "Forbidden: this key may not manage keys")
		}
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		if !done() {
			mailgunFail(w, http.StatusBadRequest, "Content-Type must be multipart/form-data")
		}
		return
	}
	if err := r.ParseMultipartForm(1 << 20); err != nil {
		if !done() {
			mailgunFail(w, http.StatusBadRequest, "malformed multipart form")
		}
		return
	}
	role := r.PostFormValue("role")
	kind := r.PostFormValue("kind")
	if kind == "" {
		kind = "user"
	}
	domain := r.PostFormValue("domain_name")
	switch {
	case role == "":
		if !done() {
			mailgunFail(w, http.StatusBadRequest, "role is required")
		}
		return
	case role != "admin" && role != "basic" && role != "sending" && role != "developer":
		if !done() {
			mailgunFail(w, http.StatusBadRequest, "invalid role")
		}
		return
	case kind != "domain" && kind != "user" && kind != "web":
		if !done() {
			mailgunFail(w, http.StatusBadRequest, "invalid kind")
		}
		return
	case kind == "domain" && domain == "":
		if !done() {
			mailgunFail(w, http.StatusBadRequest, "domain_name is required for domain keys")
		}
		return
	}
	s.mu.Lock()
	switch {
	case kind == "domain" && !s.domains[domain]:
		s.mu.Unlock()
		if !done() {
			mailgunFail(w, http.StatusNotFound, "domain not found")
		}
		return
	case len(s.keys) >= s.limit:
		s.mu.Unlock()
		if !done() {
			mailgunFail(w, http.StatusBadRequest, "key limit reached")
		}
		return
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	s.seq++
	k := &MailgunServerKey{
		seq:         s.seq,
		ID:          s.mailgunNextID(),
		Secret:      s.prefix + hex.EncodeToString(b[:]),
		Kind:        kind,
		Role:        role,
		Description: r.PostFormValue("description"),
		CreatedAt:   time.Now().UTC(),
	}
	if kind == "domain" {
		k.DomainName = domain
	}
	s.keys[k.ID] = k
	item := mailgunItem(k)
	s.mu.Unlock()
	if done() {
		return
	}
	item["secret"] = k.Secret
	mailgunAnswer(w, http.StatusOK, map[string]any{"message": "great success", "key": item})
}

func mailgunItem(k *MailgunServerKey) map[string]any {
	return map[string]any{
		"id":          k.ID,
		"kind":        k.Kind,
		"role":        k.Role,
		"domain_name": k.DomainName,
		"description": k.Description,
		"created_at":  k.CreatedAt.Format(time.RFC3339),
		"expires_at":  nil,
		"is_disabled": false,
	}
}

func (s *MailgunServer) mailgunList(w http.ResponseWriter, r *http.Request, caller *MailgunServerKey, done func() bool) {
	if caller.Role != "admin" {
		if !done() {
			mailgunFail(w, http.StatusForbidden, "Forbidden: this key may not manage keys")
		}
		return
	}
	domain, kind := r.URL.Query().Get("domain_name"), r.URL.Query().Get("kind")
	s.mu.Lock()
	ids := make([]string, 0, len(s.keys))
	for id, k := range s.keys {
		if (domain == "" || k.DomainName == domain) && (kind == "" || k.Kind == kind) {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return s.keys[ids[i]].seq < s.keys[ids[j]].seq })
	items := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		items = append(items, mailgunItem(s.keys[id]))
	}
	s.mu.Unlock()
	if !done() {
		mailgunAnswer(w, http.StatusOK, map[string]any{"items": items, "total_count": len(items)})
	}
}

func (s *MailgunServer) mailgunDelete(w http.ResponseWriter, id string, caller *MailgunServerKey, done func() bool) {
	if caller.Role != "admin" {
		if !done() {
			mailgunFail(w, http.StatusForbidden, "Forbidden: this key may not manage keys")
		}
		return
	}
	s.mu.Lock()
	_, ok := s.keys[id]
	delete(s.keys, id)
	s.mu.Unlock()
	if done() {
		return
	}
	if !ok {
		mailgunFail(w, http.StatusNotFound, "key not found")
		return
	}
	mailgunAnswer(w, http.StatusOK, map[string]string{"message": "key deleted"})
}

func (s *MailgunServer) mailgunDomain(w http.ResponseWriter, domain string, caller *MailgunServerKey, done func() bool) {
	if caller.Role == "sending" || !mailgunDomainOK(caller, domain) {
		if !done() {
			mailgunFail(w, http.StatusForbidden, "Forbidden")
		}
		return
	}
	s.mu.Lock()
	ok := s.domains[domain]
	s.mu.Unlock()
	if done() {
		return
	}
	if !ok {
		mailgunFail(w, http.StatusNotFound, "Domain not found")
		return
	}
	mailgunAnswer(w, http.StatusOK, map[string]any{"domain": map[string]any{"name": domain, "state": "active"}})
}

func (s *MailgunServer) mailgunMessages(w http.ResponseWriter, r *http.Request, domain string, caller *MailgunServerKey, done func() bool) {
	s.mu.Lock()
	known := s.domains[domain]
	s.mu.Unlock()
	if !mailgunDomainOK(caller, domain) || (caller.Kind == "domain" && caller.Role != "sending" && caller.Role != "admin") {
		if !done() {
			mailgunFail(w, http.StatusForbidden, "Forbidden")
		}
		return
	}
	if !known {
		if !done() {
			mailgunFail(w, http.StatusNotFound, "Domain not found")
		}
		return
	}
	if err := r.ParseMultipartForm(1 << 20); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		if !done() {
			mailgunFail(w, http.StatusBadRequest, "malformed form")
		}
		return
	}
	for _, field := range []string{"from", "to", "subject"} {
		if r.PostFormValue(field) == "" {
			if !done() {
				mailgunFail(w, http.StatusBadRequest, field+" parameter is missing")
			}
			return
		}
	}
	s.mu.Lock()
	s.sent++
	n := s.sent
	s.mu.Unlock()
	if !done() {
		mailgunAnswer(w, http.StatusOK, map[string]string{"id": fmt.Sprintf("<%d@%s>", n, domain), "message": "Queued. Thank you."})
	}
}
