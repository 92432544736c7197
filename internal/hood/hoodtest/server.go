// Package hoodtest is a test server for the Ocamba Hood API. It follows the
// behaviour Hood's public API documentation describes: bearer authentication,
// the settings-only PATCH that silently drops fields its provider lacks and
// answers 204, the GET of an integration with secret settings masked, the
// list endpoints, the documented error body and both rate limits (burst and
// per minute). Tests drive it through Options and the Server methods:
// integrations, provider names and live schemas, accepted tokens, the
// credentials verifier, injected faults and the log of every request
// received.
package hoodtest

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood"
)

// Defaults of Options.
const (
	DefaultAddr       = "127.0.0.1:0"
	DefaultBurst      = 10
	DefaultPerMinute  = 150
	DefaultWindow     = time.Second
	DefaultLongWindow = time.Minute
	DefaultCompanyID  = "6197120"

	// MaskedValue is what GET answers in place of a secret setting.
	MaskedValue = "********"

	// maxBodyBytes caps a request body; a larger one is answered 400.
	maxBodyBytes = 1 << 20
)

// Options configures a Server. The zero value of every field but Tokens
// selects its default.
type Options struct {
	Addr       string        // listen address; default "127.0.0.1:0"
	Tokens     []string      // accepted bearer tokens (required; at least one)
	Burst      int           // max requests in any Window; default 10; negative = no limit
	PerMinute  int           // max requests in any LongWindow; default 150; negative = no limit
	Window     time.Duration // default 1s
	LongWindow time.Duration // default 1m
	Logger     *slog.Logger  // optional; request log lines never contain settings values

	// CompanyID is the company_id of every integration; default "6197120".
	CompanyID string
	// Clock replaces time.Now for the rate limits and the recorded request
	// times, so that tests can move time by hand; default time.Now.
	Clock func() time.Time
	// ProviderNames sets the provider.name reported for a provider key
	// (for example {"mailgun_email": "Mailgun"}); Hood documents the name
	// for Twilio only. A key missing from it reports the name rotator
	// expects (hood.Provider.Name); "" reports an empty name. Every key must
	// be a known provider. SetProviderName changes it later.
	ProviderNames map[string]string
}

// Integration is a snapshot of one integration held by the server,
// including its stored settings in plain text.
type Integration struct {
	ID, ProviderKey, Status, EffectiveStatus string
	Settings                                 map[string]string
	Patches                                  int // successful PATCH requests
	Name                                     string
}

// Request is what the server recorded about one request it received.
type Request struct {
	Time                   time.Time
	Method, Path, RawQuery string
	ID                     string // integration id from the path, "" on other routes
	Status                 int    // status answered; 0 when no answer was sent (Hang, Reset)
	Authorized             bool   // the request carried one of the accepted bearer tokens
	ContentType            string
	Body                   []byte         // raw body as received
	Settings               map[string]any // decoded "settings" object of a PATCH (nil otherwise)
	Dropped                []string       // settings keys silently omitted because the provider lacks them
	Fault                  string         // name of the injected fault that answered, if any
}

// Verifier decides the effective_status of an integration after a
// successful PATCH, from its merged stored settings.
type Verifier func(id, providerKey string, settings map[string]string) (effectiveStatus string)

// Server is a running (or, from New, not yet listening) Hood test server.
// All methods are safe for concurrent use.
type Server struct {
	logger    *slog.Logger
	clock     func() time.Time
	companyID string
	handler   http.Handler

	quit     chan struct{} // closed by Shutdown and Close: releases Hang and Delay faults
	quitOnce sync.Once

	httpServer *http.Server
	listener   net.Listener
	serveDone  chan struct{}

	mu           sync.Mutex
	tokens       [][]byte
	integrations map[string]*integration
	verifier     Verifier
	faults       []*queuedFault
	requests     []*Request
	throttled    int
	limiter      limiter

	providerNames map[string]string // provider key -> provider.name reported instead of the expected one (under mu)
}

type integration struct {
	Integration
	provider   hood.Provider
	createTime time.Time
}

// New builds a server without listening: serve its Handler yourself (for
// example with httptest.NewServer). Start is New plus a listener.
func New(opts Options) (*Server, error) {
	if len(opts.Tokens) == 0 {
		return nil, errors.New("hoodtest: at least one token is required")
	}
	for _, t := range opts.Tokens {
		if t == "" {
			return nil, errors.New("hoodtest: empty token")
		}
	}
	burst, perMinute := opts.Burst, opts.PerMinute
	if burst == 0 {
		burst = DefaultBurst
	}
	if perMinute == 0 {
		perMinute = DefaultPerMinute
	}
	window, longWindow := opts.Window, opts.LongWindow
	if window == 0 {
		window = DefaultWindow
	}
	if longWindow == 0 {
		longWindow = DefaultLongWindow
	}
	if window < 0 || longWindow < 0 {
		return nil, fmt.Errorf("hoodtest: negative rate limit window (%s, %s)", window, longWindow)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	clock := opts.Clock
	if clock == nil {
		clock = time.Now
	}
	companyID := opts.CompanyID
	if companyID == "" {
		companyID = DefaultCompanyID
	}
	names := make(map[string]string, len(opts.ProviderNames))
	for key, name := range opts.ProviderNames {
		if _, ok := hood.LookupProvider(key); !ok {
			return nil, fmt.Errorf("hoodtest: provider names: unknown provider %q", key)
		}
		names[key] = name
	}
	s := &Server{
		logger:        logger,
		clock:         clock,
		companyID:     companyID,
		quit:          make(chan struct{}),
		providerNames: names,
		integrations:  make(map[string]*integration),
		limiter:       newLimiter(window, burst, longWindow, perMinute),
	}
	s.SetTokens(opts.Tokens...)
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s, nil
}

// Start builds a server, listens on opts.Addr and serves in a goroutine.
func Start(opts Options) (*Server, error) {
	s, err := New(opts)
	if err != nil {
		return nil, err
	}
	addr := opts.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("hoodtest: listen on %s: %w", addr, err)
	}
	s.listener = ln
	s.httpServer = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	s.serveDone = make(chan struct{})
	go func() {
		defer close(s.serveDone)
		if err := s.httpServer.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("hoodtest: serve", "error", err.Error())
		}
	}()
	return s, nil
}

// URL is the base URL of a started server, "http://127.0.0.1:port"; "" for
// a server from New.
func (s *Server) URL() string {
	if s.listener == nil {
		return ""
	}
	return "http://" + s.listener.Addr().String()
}

// Handler is the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Shutdown releases hanging and delayed requests, then stops the server
// gracefully (see http.Server.Shutdown).
func (s *Server) Shutdown(ctx context.Context) error {
	s.quitOnce.Do(func() { close(s.quit) })
	if s.httpServer == nil {
		return nil
	}
	if err := s.httpServer.Shutdown(ctx); err != nil {
		return fmt.Errorf("hoodtest: shutdown: %w", err)
	}
	<-s.serveDone
	return nil
}

// Close stops the server at once, closing every connection.
func (s *Server) Close() error {
	s.quitOnce.Do(func() { close(s.quit) })
	if s.httpServer == nil {
		return nil
	}
	if err := s.httpServer.Close(); err != nil {
		return fmt.Errorf("hoodtest: close: %w", err)
	}
	<-s.serveDone
	return nil
}

// SetTokens replaces the accepted bearer tokens (token rotation). With no
// tokens every request is answered 401.
func (s *Server) SetTokens(tokens ...string) {
	bs := make([][]byte, 0, len(tokens))
	for _, t := range tokens {
		if t != "" {
			bs = append(bs, []byte(t))
		}
	}
	s.mu.Lock()
	s.tokens = bs
	s.mu.Unlock()
}

// authorized reports whether the Authorization header carries an accepted token.
func (s *Server) authorized(header string) bool {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	match := 0
	for _, t := range s.tokens {
		match |= subtle.ConstantTimeCompare(t, []byte(token))
	}
	return match == 1
}

// AddIntegration adds (or replaces) an integration with status and
// effective_status "active". id must be decimal digits, providerKey a known
// provider and every settings key a field of that provider.
func (s *Server) AddIntegration(id, providerKey string, settings map[string]string) error {
	if !isDigits(id) {
		return fmt.Errorf("hoodtest: integration id %q is not decimal digits", id)
	}
	p, ok := hood.LookupProvider(providerKey)
	if !ok {
		return fmt.Errorf("hoodtest: unknown provider %q", providerKey)
	}
	stored := make(map[string]string, len(settings))
	for k, v := range settings {
		if !p.HasField(k) {
			return fmt.Errorf("hoodtest: provider %s has no settings field %q", providerKey, k)
		}
		stored[k] = v
	}
	in := &integration{
		Integration: Integration{
			ID:              id,
			ProviderKey:     providerKey,
			Name:            "Integration " + id,
			Status:          "active",
			EffectiveStatus: "active",
			Settings:        stored,
		},
		provider:   p,
		createTime: s.clock().UTC(),
	}
	s.mu.Lock()
	s.integrations[id] = in
	s.mu.Unlock()
	return nil
}

// SetProviderName sets the provider.name the server reports for a provider
// key, in every integration of that provider and in the provider list.
func (s *Server) SetProviderName(providerKey, name string) error {
	if _, ok := hood.LookupProvider(providerKey); !ok {
		return fmt.Errorf("hoodtest: unknown provider %q", providerKey)
	}
	s.mu.Lock()
	s.providerNames[providerKey] = name
	s.mu.Unlock()
	return nil
}

// SetProviderSettings replaces the live settings schema of one
// integration's provider: the provider.settings names GET reports and the
// only settings fields a PATCH keeps (the others are dropped silently, as
// Hood does). A name the documented provider has keeps its secret flag;
// any other is a plain field. Passing the provider's documented fields
// restores it.
func (s *Server) SetProviderSettings(id string, names ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.integrations[id]
	if !ok {
		return fmt.Errorf("hoodtest: no integration %q", id)
	}
	documented, _ := hood.LookupProvider(in.ProviderKey)
	fields := make([]hood.Field, 0, len(names))
	for _, n := range names {
		f, known := documented.Field(n)
		if !known {
			f = hood.Field{Name: n}
		}
		fields = append(fields, f)
	}
	in.provider.Fields = fields // a new slice: the documented schema is shared
	return nil
}

// RemoveIntegration deletes an integration; later GET and PATCH answer 404.
func (s *Server) RemoveIntegration(id string) {
	s.mu.Lock()
	delete(s.integrations, id)
	s.mu.Unlock()
}

// Integration returns a copy of an integration, stored plain settings included.
func (s *Server) Integration(id string) (Integration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.integrations[id]
	if !ok {
		return Integration{}, false
	}
	return in.snapshot(), true
}

func (in *integration) snapshot() Integration {
	out := in.Integration
	out.Settings = maps.Clone(in.Settings)
	if out.Settings == nil {
		out.Settings = map[string]string{}
	}
	return out
}

// SetVerifier sets the function that decides effective_status after each
// successful PATCH, given the merged stored settings (a copy). nil restores
// the default, which answers "active". It is called without the server's
// lock held, so it may call the Server's methods.
func (s *Server) SetVerifier(f func(id, providerKey string, settings map[string]string) (effectiveStatus string)) {
	s.mu.Lock()
	s.verifier = f
	s.mu.Unlock()
}

// SetEffectiveStatus sets an integration's effective_status (for example
// "inactive" or "testing"). Unknown ids are ignored.
func (s *Server) SetEffectiveStatus(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in, ok := s.integrations[id]; ok {
		in.EffectiveStatus = status
	}
}

// SetStatus sets an integration's status ("active" or "inactive"). Unknown
// ids are ignored.
func (s *Server) SetStatus(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if in, ok := s.integrations[id]; ok {
		in.Status = status
	}
}

// Requests returns a copy of every request received since the start (or the
// last Reset), in order of arrival.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.requests))
	for i, r := range s.requests {
		out[i] = r.clone()
	}
	return out
}

func (r *Request) clone() Request {
	out := *r
	out.Body = append([]byte(nil), r.Body...)
	out.Settings = maps.Clone(r.Settings)
	out.Dropped = append([]string(nil), r.Dropped...)
	if len(out.Dropped) == 0 {
		out.Dropped = nil
	}
	return out
}

// Count is the number of requests received with the given method (any
// method when method is "").
func (s *Server) Count(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if method == "" {
		return len(s.requests)
	}
	n := 0
	for _, r := range s.requests {
		if strings.EqualFold(r.Method, method) {
			n++
		}
	}
	return n
}

// Throttled is the number of 429 answers given by the rate limits (injected
// 429 faults are not counted).
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled
}

// Reset forgets the recorded requests, the throttle count and the requests
// admitted into the rate limit windows. Integrations, tokens, the verifier
// and queued faults are kept.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = nil
	s.throttled = 0
	s.limiter.reset()
}

// ProviderID is the stable provider id the server reports for a provider
// key: twilio_sms is "1000", the others follow from "1001" in the order of
// the documentation's provider table.
func ProviderID(providerKey string) (string, bool) {
	for i, k := range providerOrder() {
		if k == providerKey {
			return strconv.Itoa(1000 + i), true
		}
	}
	return "", false
}

// providerOrder fixes the provider ids: the order of Hood's provider table.
func providerOrder() []string {
	return []string{
		"twilio_sms", "custom_email_provider", "mandrill_email", "sendgrid_email",
		"mitto_sms", "mailgun_email", "telegram",
	}
}

// orderedProviders lists the known providers in provider id order; a
// provider missing from providerOrder comes last, sorted by key.
func orderedProviders() []hood.Provider {
	all := hood.Providers()
	sort.SliceStable(all, func(i, j int) bool { return providerRank(all[i].Key) < providerRank(all[j].Key) })
	return all
}

func providerRank(key string) int {
	order := providerOrder()
	for i, k := range order {
		if k == key {
			return i
		}
	}
	return len(order)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
