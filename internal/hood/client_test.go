package hood_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/secret"
)

const (
	sentinelToken = "TOKEN-SENTINEL-91c2e7"
	sentinelValue = "VALUE-SENTINEL-4d8b0a"
)

// reply is one scripted answer of scriptServer.
type reply struct {
	status     int
	retryAfter string
	body       string
	reset      bool // drop the connection without an answer
	hang       bool // never answer (until the client gives up)
}

// seen is what scriptServer recorded about one request.
type seen struct {
	method, path, rawPath, query string
	header                       http.Header
	body                         []byte
}

// scriptServer answers the i-th request with replies[i] (the last reply
// repeats) and records every request.
type scriptServer struct {
	*httptest.Server
	mu      sync.Mutex
	replies []reply
	reqs    []seen
}

func newScriptServer(t *testing.T, replies ...reply) *scriptServer {
	t.Helper()
	s := &scriptServer{replies: replies}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *scriptServer) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	i := len(s.reqs)
	s.reqs = append(s.reqs, seen{r.Method, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.Header.Clone(), body})
	rep := reply{status: http.StatusNoContent}
	if len(s.replies) > 0 {
		rep = s.replies[min(i, len(s.replies)-1)]
	}
	s.mu.Unlock()

	switch {
	case rep.reset:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err) // test server only
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST instead of FIN
		}
		_ = conn.Close()
		return
	case rep.hang:
		<-r.Context().Done()
		return
	}
	if rep.retryAfter != "" {
		w.Header().Set("Retry-After", rep.retryAfter)
	}
	if rep.body != "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(rep.status)
	_, _ = io.WriteString(w, rep.body)
}

func (s *scriptServer) requests() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.reqs)
}

// newClient returns a client for base on a fake clock whose jitter is the
// identity (waits are the full backoff), with tiny backoffs.
func newClient(t *testing.T, base string, edit func(*hood.Options)) (*hood.Client, *hood.FakeClock) {
	t.Helper()
	opts := hood.Options{
		BaseURL:        base,
		Timeout:        5 * time.Second,
		Limiter:        documentedLimiter(t),
		MaxAttempts:    config.DefaultMaxAttempts,
		InitialBackoff: 100 * time.Millisecond,
		MaxBackoff:     time.Second,
	}
	if edit != nil {
		edit(&opts)
	}
	c, err := hood.New(opts)
	if err != nil {
		t.Fatalf("New: got error %v, want nil", err)
	}
	fc := hood.NewFakeClock(time.Now())
	hood.UseClock(c, fc)
	hood.SetJitter(c, func(d time.Duration) time.Duration { return d })
	return c, fc
}

func tok() secret.Value { return secret.New(sentinelToken) }

func twilioSettings() map[string]secret.Value {
	return map[string]secret.Value{
		"account_sid":          secret.New("AC0123"),
		"auth_token":           secret.New(sentinelValue),
		"default_phone_number": secret.New("+14155552671"),
	}
}

// newLimiter returns a Limiter of lim.
func newLimiter(t *testing.T, lim hood.Limits) *hood.Limiter {
	t.Helper()
	l, err := hood.NewLimiter(lim)
	if err != nil {
		t.Fatalf("NewLimiter(%+v): got %v, want nil", lim, err)
	}
	return l
}

// documentedLimiter returns a Limiter of Hood's documented limits.
func documentedLimiter(t *testing.T) *hood.Limiter {
	return newLimiter(t, hood.Limits{Burst: config.DefaultBurst, PerMinute: config.DefaultPerMinute})
}

// validOptions are Options that New accepts; each case of
// TestNewRejectsBadOptions spoils one field.
func validOptions(t *testing.T) hood.Options {
	return hood.Options{
		BaseURL: "https://api.ocamba.com", Timeout: config.DefaultHoodTimeout, Limiter: documentedLimiter(t),
		MaxAttempts: config.DefaultMaxAttempts, InitialBackoff: config.DefaultInitialBackoff, MaxBackoff: config.DefaultMaxBackoff,
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	if _, err := hood.New(validOptions(t)); err != nil {
		t.Fatalf("New(validOptions()): got %v, want nil", err)
	}
	tests := []struct {
		name  string
		spoil func(*hood.Options)
		want  string
	}{
		{"empty base", func(o *hood.Options) { o.BaseURL = "" }, "base URL"},
		{"no scheme", func(o *hood.Options) { o.BaseURL = "api.ocamba.com" }, "base URL"},
		{"ftp", func(o *hood.Options) { o.BaseURL = "ftp://api.ocamba.com" }, "base URL"},
		{"no host", func(o *hood.Options) { o.BaseURL = "https://" }, "base URL"},
		{"relative", func(o *hood.Options) { o.BaseURL = "/v1" }, "base URL"},
		{"user info", func(o *hood.Options) { o.BaseURL = "https://user:" + sentinelToken + "@api.ocamba.com" }, "base URL"},
		{"query", func(o *hood.Options) { o.BaseURL = "https://api.ocamba.com/?x=1" }, "base URL"},
		{"fragment", func(o *hood.Options) { o.BaseURL = "https://api.ocamba.com/#f" }, "base URL"},
		{"bad escape", func(o *hood.Options) { o.BaseURL = "https://api.ocamba.com/%zz" + sentinelToken }, "base URL"},
		{"negative timeout", func(o *hood.Options) { o.Timeout = -1 }, "timeout"},
		{"no timeout", func(o *hood.Options) { o.Timeout = 0 }, "timeout"},
		{"no limiter", func(o *hood.Options) { o.Limiter = nil }, "limiter"},
		{"negative attempts", func(o *hood.Options) { o.MaxAttempts = -1 }, "max attempts"},
		{"no attempts", func(o *hood.Options) { o.MaxAttempts = 0 }, "max attempts"},
		{"no initial backoff", func(o *hood.Options) { o.InitialBackoff = 0 }, "initial backoff"},
		{"no max backoff", func(o *hood.Options) { o.MaxBackoff = 0 }, "max backoff"},
		{"user agent newline", func(o *hood.Options) { o.UserAgent = "a\nb" }, "user agent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := validOptions(t)
			tt.spoil(&opts)
			c, err := hood.New(opts)
			if err == nil {
				t.Fatalf("New: got client %v, want error", c)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New: got error %q, want it to name %q", err, tt.want)
			}
			if strings.Contains(err.Error(), sentinelToken) {
				t.Errorf("error %q: got the URL's secret, want it left out", err)
			}
		})
	}
}

func TestUpdateSettingsSendsExactRequest(t *testing.T) {
	tests := []struct {
		name, prefix, wantPath string
	}{
		{"bare base", "", "/v1/hood/integrations/1161"},
		{"base with trailing slash", "/", "/v1/hood/integrations/1161"},
		{"base with path prefix", "/api/hood-proxy", "/api/hood-proxy/v1/hood/integrations/1161"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScriptServer(t, reply{status: http.StatusNoContent})
			c, _ := newClient(t, srv.URL+tt.prefix, func(o *hood.Options) { o.UserAgent = "rotator/test" })

			if err := c.UpdateSettings(context.Background(), tok(), "1161", twilioSettings()); err != nil {
				t.Fatalf("UpdateSettings: got error %v, want nil", err)
			}
			reqs := srv.requests()
			if len(reqs) != 1 {
				t.Fatalf("requests: got %d, want 1", len(reqs))
			}
			r := reqs[0]
			if r.method != http.MethodPatch || r.path != tt.wantPath || r.query != "" {
				t.Errorf("request line: got %s %s?%s, want PATCH %s", r.method, r.path, r.query, tt.wantPath)
			}
			wantHeaders := map[string]string{
				"Authorization": "Bearer " + sentinelToken,
				"Content-Type":  "application/json",
				"Accept":        "application/json",
				"User-Agent":    "rotator/test",
			}
			for k, want := range wantHeaders {
				if got := r.header.Get(k); got != want {
					t.Errorf("header %s: got %q, want %q", k, got, want)
				}
			}
			var got map[string]any
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatalf("body %q: got invalid JSON (%v), want an object", r.body, err)
			}
			want := map[string]any{"settings": map[string]any{
				"account_sid":          "AC0123",
				"auth_token":           sentinelValue,
				"default_phone_number": "+14155552671",
			}}
			if gj, wj := mustJSON(t, got), mustJSON(t, want); gj != wj {
				t.Errorf("body: got %s, want %s", gj, wj)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v) // maps marshal with sorted keys
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return string(b)
}

func TestRequestsRefusedBeforeSending(t *testing.T) {
	srv := newScriptServer(t)
	c, _ := newClient(t, srv.URL, nil)
	ctx := context.Background()

	hostileIDs := []string{"../1", "1?x=", "%2F", "1/2", "١٢", "", "123456789012345678901", " 1", "1 ", "1\n", "+1", "-1", "0x1", "1.0", "..", "1#"}
	type call struct {
		name  string
		run   func() error
		isErr error // nil: any error
	}
	var calls []call
	for _, id := range hostileIDs {
		calls = append(calls,
			call{"patch id " + fmt.Sprintf("%q", id), func() error { return c.UpdateSettings(ctx, tok(), id, twilioSettings()) }, hood.ErrInvalidID},
			call{"get id " + fmt.Sprintf("%q", id), func() error { _, err := c.GetIntegration(ctx, tok(), id); return err }, hood.ErrInvalidID},
		)
	}
	calls = append(calls,
		call{"empty settings", func() error { return c.UpdateSettings(ctx, tok(), "1161", nil) }, nil},
		call{"empty settings name", func() error {
			return c.UpdateSettings(ctx, tok(), "1161", map[string]secret.Value{"": secret.New(sentinelValue)})
		}, nil},
		call{"empty token patch", func() error { return c.UpdateSettings(ctx, secret.Value{}, "1161", twilioSettings()) }, nil},
		call{"empty token get", func() error { _, err := c.GetIntegration(ctx, secret.New(""), "1161"); return err }, nil},
		call{"token with newline", func() error {
			return c.UpdateSettings(ctx, secret.New(sentinelToken+"\r\nX-Evil: 1"), "1161", twilioSettings())
		}, nil},
	)
	for _, tt := range calls {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.run()
			if err == nil {
				t.Fatal("got nil error, want a refusal")
			}
			if tt.isErr != nil && !errors.Is(err, tt.isErr) {
				t.Errorf("error %q: got no %v inside, want it wrapped", err, tt.isErr)
			}
			if s := err.Error(); strings.Contains(s, sentinelToken) || strings.Contains(s, sentinelValue) {
				t.Errorf("error %q: got a secret, want none", s)
			}
		})
	}
	if n := len(srv.requests()); n != 0 {
		t.Errorf("requests reaching the server: got %d, want 0", n)
	}
}

func TestSecretsNeverInErrorsOrLogs(t *testing.T) {
	tests := []struct {
		name    string
		replies []reply
	}{
		{"plain 500", []reply{{status: 500, body: "internal error"}}},
		{"json 400", []reply{{status: 400, body: `{"code":400,"title":"Bad request.","message":"The request body is not valid.","trace_id":"t-1"}`}}},
		{"401 empty", []reply{{status: 401}}},
		{"429 then reset", []reply{{status: 429, retryAfter: "1"}, {reset: true}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScriptServer(t, tt.replies...)
			var logs bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			c, _ := newClient(t, srv.URL, func(o *hood.Options) { o.Logger = logger; o.MaxAttempts = 3 })

			perr := c.UpdateSettings(context.Background(), tok(), "1161", twilioSettings())
			_, gerr := c.GetIntegration(context.Background(), tok(), "1161")
			for _, err := range []error{perr, gerr} {
				if err == nil {
					t.Fatal("got nil error, want the server's failure")
				}
				for _, s := range []string{err.Error(), fmt.Sprintf("%+v", err), fmt.Sprintf("%#v", err)} {
					if strings.Contains(s, sentinelToken) || strings.Contains(s, sentinelValue) {
						t.Errorf("error %q: got a secret, want none", s)
					}
				}
			}
			if logs.Len() == 0 {
				t.Error("logs: got none, want a debug line per attempt")
			}
			if s := logs.String(); strings.Contains(s, sentinelToken) || strings.Contains(s, sentinelValue) {
				t.Errorf("logs: got a secret in\n%s", s)
			}
		})
	}
}

func TestRetries(t *testing.T) {
	const b = 100 * time.Millisecond // InitialBackoff of newClient
	tests := []struct {
		name         string
		replies      []reply
		maxAttempts  int           // 0: newClient's
		maxBackoff   time.Duration // 0: newClient's
		wantRequests int
		wantSleeps   []time.Duration
		wantStatus   int // 0: success expected
	}{
		{"429 with Retry-After honoured", []reply{{status: 429, retryAfter: "1"}, {status: 204}}, 0, 0, 2, []time.Duration{time.Second}, 0},
		{"429 without Retry-After backs off", []reply{{status: 429}, {status: 204}}, 0, 0, 2, []time.Duration{b}, 0},
		{"500 then 204", []reply{{status: 500}, {status: 204}}, 0, 0, 2, []time.Duration{b}, 0},
		{"503 with Retry-After", []reply{{status: 503, retryAfter: "2"}, {status: 200}}, 0, 10 * time.Second, 2, []time.Duration{2 * time.Second}, 0},
		{"backoff doubles", []reply{{status: 502}, {status: 500}, {status: 504}, {status: 204}}, 0, 0, 4, []time.Duration{b, 2 * b, 4 * b}, 0},
		{"backoff capped", []reply{{status: 500}}, 6, 300 * time.Millisecond, 6, []time.Duration{b, 2 * b, 3 * b, 3 * b, 3 * b}, 500},
		{"attempts bounded", []reply{{status: 503}}, 0, 0, 4, []time.Duration{b, 2 * b, 4 * b}, 503},
		{"Retry-After above MaxBackoff gives up", []reply{{status: 429, retryAfter: "120"}}, 0, 60 * time.Second, 1, nil, 429},
		{"400 not retried", []reply{{status: 400}}, 0, 0, 1, nil, 400},
		{"401 not retried", []reply{{status: 401}}, 0, 0, 1, nil, 401},
		{"403 not retried", []reply{{status: 403}}, 0, 0, 1, nil, 403},
		{"404 not retried", []reply{{status: 404}}, 0, 0, 1, nil, 404},
		{"redirect not followed", []reply{{status: 307}}, 0, 0, 1, nil, 307},
		{"connection reset retried", []reply{{reset: true}, {status: 204}}, 0, 0, 2, []time.Duration{b}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newScriptServer(t, tt.replies...)
			var codes []int
			var mu sync.Mutex
			c, fc := newClient(t, srv.URL, func(o *hood.Options) {
				if tt.maxAttempts != 0 {
					o.MaxAttempts = tt.maxAttempts
				}
				if tt.maxBackoff != 0 {
					o.MaxBackoff = tt.maxBackoff
				}
				o.Observe = func(method string, code int, _ time.Duration) {
					mu.Lock()
					defer mu.Unlock()
					codes = append(codes, code)
				}
			})
			err := c.UpdateSettings(context.Background(), tok(), "1161", twilioSettings())

			if got := len(srv.requests()); got != tt.wantRequests {
				t.Errorf("requests: got %d, want %d", got, tt.wantRequests)
			}
			if got := fc.Sleeps(); !slices.Equal(got, tt.wantSleeps) {
				t.Errorf("waits: got %v, want %v", got, tt.wantSleeps)
			}
			mu.Lock()
			if len(codes) != tt.wantRequests {
				t.Errorf("Observe calls: got %d (%v), want %d", len(codes), codes, tt.wantRequests)
			}
			mu.Unlock()
			if tt.wantStatus == 0 {
				if err != nil {
					t.Errorf("UpdateSettings: got error %v, want nil", err)
				}
				return
			}
			var ae *hood.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("UpdateSettings: got %v, want an *APIError", err)
			}
			if ae.StatusCode != tt.wantStatus || ae.Attempts != tt.wantRequests {
				t.Errorf("APIError: got status %d after %d attempts, want %d after %d", ae.StatusCode, ae.Attempts, tt.wantStatus, tt.wantRequests)
			}
			if tt.wantRequests > 1 && !strings.Contains(err.Error(), fmt.Sprintf("%d attempts", tt.wantRequests)) {
				t.Errorf("error %q: got no attempt count, want %q in it", err, fmt.Sprintf("%d attempts", tt.wantRequests))
			}
		})
	}
}

func TestObserveCodes(t *testing.T) {
	srv := newScriptServer(t, reply{reset: true}, reply{status: 500}, reply{status: 204})
	type obs struct {
		method string
		code   int
	}
	var got []obs
	c, _ := newClient(t, srv.URL, func(o *hood.Options) {
		o.Observe = func(method string, code int, d time.Duration) {
			if d < 0 {
				t.Errorf("Observe duration: got %v, want >= 0", d)
			}
			got = append(got, obs{method, code})
		}
	})
	if err := c.UpdateSettings(context.Background(), tok(), "1161", twilioSettings()); err != nil {
		t.Fatalf("UpdateSettings: got %v, want nil", err)
	}
	want := []obs{{"PATCH", 0}, {"PATCH", 500}, {"PATCH", 204}}
	if !slices.Equal(got, want) {
		t.Errorf("Observe: got %v, want %v", got, want)
	}
}

func TestAttemptTimeoutRetriedThenFails(t *testing.T) {
	srv := newScriptServer(t, reply{hang: true})
	c, _ := newClient(t, srv.URL, func(o *hood.Options) {
		o.Timeout = 50 * time.Millisecond
		o.MaxAttempts = 3
	})
	err := c.UpdateSettings(context.Background(), tok(), "1161", twilioSettings())
	if err == nil {
		t.Fatal("UpdateSettings: got nil, want a timeout error")
	}
	if got := len(srv.requests()); got != 3 {
		t.Errorf("requests: got %d, want 3", got)
	}
	if !strings.Contains(err.Error(), "3 attempts") {
		t.Errorf("error %q: got no attempt count, want %q", err, "3 attempts")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %q: got no context.DeadlineExceeded inside, want it wrapped", err)
	}
	var ae *hood.APIError
	if errors.As(err, &ae) {
		t.Errorf("error: got an APIError %v, want a network error", ae)
	}
}

func TestNoWaitPastDeadline(t *testing.T) {
	srv := newScriptServer(t, reply{status: 429, retryAfter: "30"})
	c, fc := newClient(t, srv.URL, func(o *hood.Options) { o.MaxBackoff = time.Minute })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	err := c.UpdateSettings(ctx, tok(), "1161", twilioSettings())
	var ae *hood.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 429 {
		t.Fatalf("UpdateSettings: got %v, want the 429 APIError", err)
	}
	if ae.RetryAfter != 30*time.Second {
		t.Errorf("RetryAfter: got %v, want 30s", ae.RetryAfter)
	}
	if got := fc.Sleeps(); len(got) != 0 {
		t.Errorf("waits: got %v, want none (30s would pass the 10s deadline)", got)
	}
	if got := len(srv.requests()); got != 1 {
		t.Errorf("requests: got %d, want 1", got)
	}
}

func TestCancelDuringRetryWait(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	// Real clock, long backoff: only the cancellation can end the wait. The
	// caller gives up once the answer is in, while the client waits to retry.
	c, err := hood.New(hood.Options{
		BaseURL: srv.URL, Timeout: config.DefaultHoodTimeout, Limiter: documentedLimiter(t),
		MaxAttempts: config.DefaultMaxAttempts, InitialBackoff: time.Hour, MaxBackoff: time.Hour,
		Observe: func(string, int, time.Duration) { cancel() },
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	hood.SetJitter(c, func(d time.Duration) time.Duration { return d })

	err = c.UpdateSettings(ctx, tok(), "1161", twilioSettings())
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v: got no context.Canceled inside, want it wrapped", err)
	}
	var ae *hood.APIError
	if !errors.As(err, &ae) || ae.StatusCode != 503 {
		t.Errorf("error %v: got no 503 APIError inside, want the last failure wrapped", err)
	}
	if got := hits.Load(); got != 1 {
		t.Errorf("requests: got %d, want 1", got)
	}
}

func TestLogsPerAttempt(t *testing.T) {
	srv := newScriptServer(t,
		reply{status: 500, body: `{"code":500,"title":"Internal error.","trace_id":"trace-abc"}`},
		reply{status: 204})
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, _ := newClient(t, srv.URL, func(o *hood.Options) { o.Logger = logger })
	if err := c.UpdateSettings(context.Background(), tok(), "1161", twilioSettings()); err != nil {
		t.Fatalf("UpdateSettings: got %v, want nil", err)
	}
	type line struct {
		Level, Msg, Method, TraceID, IntegrationID string
		Status, Attempt                            int
		Wait                                       any
	}
	var got []line
	for _, raw := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			t.Fatalf("log line %q: %v", raw, err)
		}
		l := line{Level: str(m["level"]), Method: str(m["method"]), TraceID: str(m["trace_id"]), IntegrationID: str(m["id"]), Wait: m["wait"]}
		if f, ok := m["status"].(float64); ok {
			l.Status = int(f)
		}
		if f, ok := m["attempt"].(float64); ok {
			l.Attempt = int(f)
		}
		got = append(got, l)
	}
	want := []line{
		{Level: "DEBUG", Method: "PATCH", IntegrationID: "1161", Status: 500, Attempt: 1, TraceID: "trace-abc"},
		{Level: "WARN", Method: "PATCH", IntegrationID: "1161", Attempt: 1, Wait: "100ms"},
		{Level: "DEBUG", Method: "PATCH", IntegrationID: "1161", Status: 204, Attempt: 2},
	}
	if len(got) != len(want) {
		t.Fatalf("log lines: got %d\n%s\nwant %d", len(got), logs.String(), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("log line %d: got %+v, want %+v", i+1, got[i], want[i])
		}
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// strictServer enforces the same two windows as the client, by arrival
// time, and answers 429 to any request over either.
type strictServer struct {
	mu            sync.Mutex
	burst, perMin int
	short, long   time.Duration
	arrivals      []time.Time
	ok, limited   int
}

func (s *strictServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	s.mu.Lock()
	now := time.Now()
	var inShort, inLong int
	for _, a := range s.arrivals {
		if a.After(now.Add(-s.short)) {
			inShort++
		}
		if a.After(now.Add(-s.long)) {
			inLong++
		}
	}
	over := inShort >= s.burst || inLong >= s.perMin
	if over {
		s.limited++
	} else {
		s.ok++
		s.arrivals = append(s.arrivals, now)
	}
	s.mu.Unlock()
	if over {
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func TestLimiterAgainstStrictServer(t *testing.T) {
	t.Parallel()
	ss := &strictServer{burst: 5, perMin: 12, short: 100 * time.Millisecond, long: time.Second}
	srv := httptest.NewServer(ss)
	defer srv.Close()
	c, err := hood.New(hood.Options{
		BaseURL: srv.URL, Limiter: newLimiter(t, hood.Limits{
			Burst: 5, PerMinute: 12, Window: 100 * time.Millisecond, LongWindow: time.Second, Margin: 5 * time.Millisecond,
		}),
		MaxAttempts: 1, // a 429 must surface, not be retried away
		Timeout:     config.DefaultHoodTimeout, InitialBackoff: config.DefaultInitialBackoff, MaxBackoff: config.DefaultMaxBackoff,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	const requests, workers = 30, 3
	jobs := make(chan int)
	errs := make(chan error, requests)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range jobs {
				errs <- c.UpdateSettings(context.Background(), tok(), "1161", twilioSettings())
			}
		})
	}
	for i := range requests {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("UpdateSettings: got %v, want nil", err)
		}
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.limited != 0 || ss.ok != requests {
		t.Errorf("server: got %d accepted and %d answered 429, want %d and 0", ss.ok, ss.limited, requests)
	}
}

func TestRedirectNotFollowed(t *testing.T) {
	elsewhere := newScriptServer(t)
	for _, code := range []int{301, 302, 307, 308} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, elsewhere.URL+r.URL.Path, code)
			}))
			defer srv.Close()
			c, _ := newClient(t, srv.URL, nil)
			err := c.UpdateSettings(context.Background(), tok(), "1161", twilioSettings())
			var ae *hood.APIError
			if !errors.As(err, &ae) || ae.StatusCode != code {
				t.Errorf("UpdateSettings: got %v, want an APIError with status %d", err, code)
			}
		})
	}
	if n := len(elsewhere.requests()); n != 0 {
		t.Errorf("requests at the redirect target: got %d, want 0", n)
	}
}

func TestRetryAfterHoldsOtherRequests(t *testing.T) {
	srv := newScriptServer(t, reply{status: 429, retryAfter: "3"}, reply{status: 204})
	c, fc := newClient(t, srv.URL, func(o *hood.Options) { o.MaxAttempts = 1; o.MaxBackoff = 10 * time.Second })
	var ae *hood.APIError
	if err := c.UpdateSettings(context.Background(), tok(), "1161", twilioSettings()); !errors.As(err, &ae) || ae.StatusCode != 429 {
		t.Fatalf("first UpdateSettings: got %v, want the 429 APIError", err)
	}
	if err := c.UpdateSettings(context.Background(), tok(), "1162", twilioSettings()); err != nil {
		t.Fatalf("second UpdateSettings: got %v, want nil", err)
	}
	if got, want := fc.Sleeps(), []time.Duration{3 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("waits: got %v, want %v (the next request waits out Retry-After)", got, want)
	}
}

// TestErrNotSent: a request whose context ends before it leaves (here:
// already ended) is marked ErrNotSent; one cut short on the wire is not
// (Hood may have seen it).
func TestErrNotSent(t *testing.T) {
	srv := newScriptServer(t, reply{hang: true})
	c, _ := newClient(t, srv.URL, func(o *hood.Options) { o.MaxAttempts = 1 })

	done, cancel := context.WithCancel(context.Background())
	cancel()
	err := c.UpdateSettings(done, tok(), "1161", twilioSettings())
	if !errors.Is(err, hood.ErrNotSent) || !errors.Is(err, context.Canceled) {
		t.Errorf("context ended before the first attempt: got %v, want ErrNotSent and context.Canceled", err)
	}
	if got := len(srv.requests()); got != 0 {
		t.Errorf("requests: got %d, want 0", got)
	}

	ctx, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	err = c.UpdateSettings(ctx, tok(), "1161", twilioSettings())
	if err == nil || errors.Is(err, hood.ErrNotSent) {
		t.Errorf("context ended during the attempt: got %v, want an error that is not ErrNotSent", err)
	}
	if got := len(srv.requests()); got != 1 {
		t.Errorf("requests: got %d, want 1", got)
	}
}
