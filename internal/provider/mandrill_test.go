package provider_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/provider"
	"github.com/ocamba-rotator/rotator/internal/provider/providertest"
	"github.com/ocamba-rotator/rotator/internal/secret"
)

const (
	mandrillGoodKey  = "md-GoodKey0123456789abcd"
	mandrillSentinel = "SENTINEL-md-7f3a9c-do-not-print"
	mandrillSentKey  = "md-" + mandrillSentinel
)

func mandrillClient(t *testing.T, base string, timeout time.Duration, log *slog.Logger) *provider.Mandrill {
	t.Helper()
	c, err := provider.NewMandrill(provider.MandrillOptions{BaseURL: base, Timeout: timeout, Logger: log})
	if err != nil {
		t.Fatalf("NewMandrill: got %v, want nil", err)
	}
	return c
}

func TestMandrillCheck(t *testing.T) {
	const deleted = "md-DeletedKey0123456789"
	tests := []struct {
		name        string
		key         string
		fault       *providertest.Fault
		timeout     time.Duration
		wantRefused bool
		wantUnavail int // HTTP status of a *UnavailableError; 0 = none
		wantRetry   time.Duration
		wantTimeout bool
		wantErr     string // substring; "" with no other want = success
		wantPings   int
	}{
		{name: "valid key", key: mandrillGoodKey, wantPings: 1},
		{name: "unknown key", key: "md-Unknown0123456789", wantRefused: true, wantErr: "(HTTP 500): Invalid API key", wantPings: 1},
		{name: "deleted key", key: deleted, wantRefused: true, wantErr: "Invalid API key", wantPings: 1},
		{name: "429 with Retry-After", key: mandrillGoodKey, fault: &providertest.Fault{Status: 429, RetryAfter: "3"},
			wantUnavail: 429, wantRetry: 3 * time.Second, wantErr: "rate limited (HTTP 429), retry after 3s"},
		{name: "503", key: mandrillGoodKey, fault: &providertest.Fault{Status: 503}, wantUnavail: 503, wantErr: "unavailable (HTTP 503)"},
		{name: "500 GeneralError", key: mandrillGoodKey, fault: &providertest.Fault{Method: "POST", Path: "/api/1.0/users/", Status: 500},
			wantUnavail: 500, wantErr: "GeneralError"},
		{name: "slow answer past the timeout", key: mandrillGoodKey, fault: &providertest.Fault{Delay: 3 * time.Second},
			timeout: 200 * time.Millisecond, wantTimeout: true, wantErr: "Client.Timeout"},
		{name: "answer lost", key: mandrillGoodKey, fault: &providertest.Fault{AnswerLost: true}, wantErr: "mandrill_email: users/ping", wantPings: 1},
		{name: "empty key", key: "", wantErr: "empty API key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := providertest.NewMandrillServer()
			defer s.Close()
			s.AddKey(mandrillGoodKey)
			s.AddKey(deleted)
			if !s.DeleteKey(deleted) || s.Accepts(deleted) {
				t.Fatalf("DeleteKey: got the key still valid, want it gone")
			}
			if tc.fault != nil {
				s.Inject(*tc.fault)
			}
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			start := time.Now()
			err := mandrillClient(t, s.URL(), timeout, nil).Check(context.Background(), secret.New(tc.key))
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("Check took %s, want under 2s", el)
			}
			wantErr := tc.wantErr != "" || tc.wantRefused || tc.wantUnavail != 0 || tc.wantTimeout
			switch {
			case !wantErr && err != nil:
				t.Fatalf("Check: got %v, want nil", err)
			case wantErr && err == nil:
				t.Fatalf("Check: got nil, want an error")
			case wantErr:
				if !strings.HasPrefix(err.Error(), "mandrill_email: ") {
					t.Errorf("error: got %q, want it to start with the provider's name", err)
				}
				if tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error: got %q, want it to contain %q", err, tc.wantErr)
				}
			}
			var re *provider.RefusedError
			if got := errors.As(err, &re); got != tc.wantRefused {
				t.Errorf("refused: got %v (%v), want %v", got, err, tc.wantRefused)
			} else if got && (re.Provider != "mandrill_email" || re.Status != 500 || !errors.Is(err, provider.ErrRefused)) {
				t.Errorf("refusal: got %+v, want provider mandrill_email, status 500, Is ErrRefused", re)
			}
			var ue *provider.UnavailableError
			if got := errors.As(err, &ue); got != (tc.wantUnavail != 0) {
				t.Errorf("unavailable: got %v (%v), want %v", got, err, tc.wantUnavail != 0)
			} else if got && (ue.Status != tc.wantUnavail || ue.RetryAfter != tc.wantRetry || ue.RetryDelay() != tc.wantRetry) {
				t.Errorf("unavailable: got status %d retry %s, want %d and %s", ue.Status, ue.RetryAfter, tc.wantUnavail, tc.wantRetry)
			}
			var ne net.Error
			if got := errors.As(err, &ne) && ne.Timeout(); got != tc.wantTimeout {
				t.Errorf("timeout: got %v (%v), want %v", got, err, tc.wantTimeout)
			}
			if got := s.Pings(); got != tc.wantPings {
				t.Errorf("pings on the server: got %d, want %d", got, tc.wantPings)
			}
		})
	}
}

func TestMandrillCheckServerDown(t *testing.T) {
	s := providertest.NewMandrillServer()
	base := s.URL()
	s.Close()
	err := mandrillClient(t, base, 2*time.Second, nil).Check(context.Background(), secret.New(mandrillSentKey))
	var ope *net.OpError
	if !errors.As(err, &ope) || errors.Is(err, provider.ErrRefused) {
		t.Errorf("Check against a closed server: got %v, want a *net.OpError, not refused", err)
	}
	mandrillNoSentinel(t, "server down", fmt.Sprintf("%v|%+v|%#v", err, err, err))
}

func mandrillHostile(t *testing.T, status int, body func(key string) string, hdr map[string]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		_, _ = io.Copy(&b, r.Body)
		key := strings.TrimSuffix(strings.TrimPrefix(b.String(), `{"key":"`), `"}`)
		for k, v := range hdr {
			w.Header().Set(k, v)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body(key))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestMandrillCheckHostileAnswers(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		body        func(key string) string
		hdr         map[string]string
		wantRefused bool
		wantAPI     string // Name of a *MandrillAPIError
		wantUnavail bool
		wantErr     string
	}{
		{name: "Invalid_Key echoing the key", status: 500, wantRefused: true, wantErr: "Invalid API key " + secret.Redacted,
			body: func(k string) string {
				return `{"status":"error","code":-1,"name":"Invalid_Key","message":"Invalid API key ` + k + `"}`
			}},
		{name: "ValidationError", status: 500, wantAPI: "ValidationError", wantErr: "ValidationError (code -2, HTTP 500): bad " + secret.Redacted,
			body: func(k string) string {
				return `{"status":"error","code":-2,"name":"ValidationError","message":"bad ` + k + `"}`
			}},
		{name: "500 not JSON", status: 500, wantUnavail: true, wantErr: "unavailable (HTTP 500)",
			body: func(k string) string { return "<html>" + k + "</html>" }},
		{name: "502 from a proxy", status: 502, wantUnavail: true, wantErr: "unavailable (HTTP 502)",
			body: func(string) string { return "Bad Gateway" }},
		{name: "401 from a proxy", status: 401, wantRefused: true, wantErr: "Unauthorized",
			body: func(string) string { return "" }},
		{name: "200 not PONG", status: 200, wantErr: `answer (HTTP 200) is "` + secret.Redacted + `", want "PONG!"`,
			body: func(k string) string { return `"` + k + `"` }},
		{name: "200 not a string", status: 200, wantErr: "not a JSON string",
			body: func(k string) string { return `{"PING":"` + k + `"}` }},
		{name: "body past 1 MiB", status: 200, wantErr: "longer than 1048576 bytes",
			body: func(string) string { return strings.Repeat(" ", 1<<20+10) }},
		{name: "404", status: 404, wantErr: "unexpected answer (HTTP 404)",
			body: func(string) string { return "not here" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := mandrillHostile(t, tc.status, tc.body, tc.hdr)
			err := mandrillClient(t, srv.URL, 5*time.Second, nil).Check(context.Background(), secret.New(mandrillSentKey))
			if err == nil {
				t.Fatalf("Check: got nil, want an error")
			}
			if got := errors.Is(err, provider.ErrRefused); got != tc.wantRefused {
				t.Errorf("refused: got %v (%v), want %v", got, err, tc.wantRefused)
			}
			var ae *provider.MandrillAPIError
			if got := errors.As(err, &ae); got != (tc.wantAPI != "") || (got && ae.Name != tc.wantAPI) {
				t.Errorf("API error: got %v (%v), want name %q", got, err, tc.wantAPI)
			}
			var ue *provider.UnavailableError
			if got := errors.As(err, &ue); got != tc.wantUnavail {
				t.Errorf("unavailable: got %v (%v), want %v", got, err, tc.wantUnavail)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error: got %q, want it to contain %q", err, tc.wantErr)
			}
			mandrillNoSentinel(t, tc.name, fmt.Sprintf("%v|%+v|%#v", err, err, err))
		})
	}
}

func TestMandrillRedirectNotFollowed(t *testing.T) {
	var hits atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		_, _ = io.WriteString(w, `"PONG!"`)
	}))
	defer other.Close()
	srv := mandrillHostile(t, http.StatusPermanentRedirect, func(string) string { return "" },
		map[string]string{"Location": other.URL + "/api/1.0/users/ping"})
	err := mandrillClient(t, srv.URL, 5*time.Second, nil).Check(context.Background(), secret.New(mandrillSentKey))
	if err == nil || !strings.Contains(err.Error(), "unexpected answer (HTTP 308)") {
		t.Errorf("Check with a 308: got %v, want an unexpected-answer error", err)
	}
	if got := hits.Load(); got != 0 {
		t.Errorf("requests at the redirect's target: got %d, want 0 (the key must not travel there)", got)
	}
}

func TestMandrillServerAPI(t *testing.T) {
	s := providertest.NewMandrillServer()
	defer s.Close()
	s.AddKey(mandrillGoodKey)
	tests := []struct {
		method, path, body string
		wantStatus         int
		wantBody           string
	}{
		{"POST", "/api/1.0/users/ping", `{"key":"` + mandrillGoodKey + `"}`, 200, `"PONG!"`},
		{"POST", "/api/1.0/users/ping.json", `{"key":"` + mandrillGoodKey + `"}`, 200, `"PONG!"`},
		{"POST", "/api/1.0/users/ping", `{"key":"nope"}`, 500, `{"status":"error","code":-1,"name":"Invalid_Key","message":"Invalid API key"}`},
		{"POST", "/api/1.0/users/ping", `{}`, 500, `"name":"Invalid_Key"`},
		{"POST", "/api/1.0/users/ping", `not json`, 500, `"name":"ValidationError"`},
		{"GET", "/api/1.0/users/ping", ``, 500, `"name":"ValidationError"`},
		{"POST", "/api/1.0/keys/add", `{"key":"` + mandrillGoodKey + `"}`, 500, `"name":"Unknown_Method"`},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(tc.method, s.URL()+tc.path, strings.NewReader(tc.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.wantStatus || !strings.Contains(string(b), tc.wantBody) {
			t.Errorf("%s %s %s: got %d %s, want %d containing %s", tc.method, tc.path, tc.body, resp.StatusCode, b, tc.wantStatus, tc.wantBody)
		}
	}
	// A fault answers with Mandrill's error object, on any route.
	s.Inject(providertest.Fault{Status: 503, RetryAfter: "9"})
	resp, err := http.Post(s.URL()+"/api/1.0/anything", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "9" || !strings.Contains(string(b), `"status":"error"`) {
		t.Errorf("503 fault: got %d Retry-After %q %s, want 503, 9 and the error object", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
}

// TestMandrillSentinel runs every path of the client with a key that holds
// a sentinel and looks for it in errors, printed values and logs.
func TestMandrillSentinel(t *testing.T) {
	for _, h := range []struct {
		name string
		mk   func(io.Writer) slog.Handler
	}{
		{"json", func(w io.Writer) slog.Handler {
			return slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})
		}},
		{"text", func(w io.Writer) slog.Handler {
			return slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})
		}},
	} {
		t.Run(h.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(h.mk(&logs))
			s := providertest.NewMandrillServer()
			defer s.Close()
			s.AddKey(mandrillSentKey)
			down := providertest.NewMandrillServer()
			downURL := down.URL()
			down.Close()
			echo := mandrillHostile(t, 500, func(k string) string {
				return `{"status":"error","code":-1,"name":"Invalid_Key","message":"` + k + `"}`
			}, nil)

			key := secret.New(mandrillSentKey)
			var outs []string
			run := func(name, base string, f *providertest.Fault, timeout time.Duration) {
				if f != nil {
					s.Inject(*f)
				}
				c := mandrillClient(t, base, timeout, log)
				err := c.Check(context.Background(), key)
				outs = append(outs, fmt.Sprintf("%s: %v|%+v|%#v|%#v", name, err, err, err, c))
				if err != nil {
					outs = append(outs, err.Error())
				}
			}
			run("ok", s.URL(), nil, time.Second)
			run("429", s.URL(), &providertest.Fault{Status: 429, RetryAfter: "3"}, time.Second)
			run("500", s.URL(), &providertest.Fault{Status: 500}, time.Second)
			run("timeout", s.URL(), &providertest.Fault{Delay: 2 * time.Second}, 100*time.Millisecond)
			run("answer lost", s.URL(), &providertest.Fault{AnswerLost: true}, time.Second)
			run("down", downURL, nil, time.Second)
			run("echo", echo.URL, nil, time.Second)
			s.DeleteKey(mandrillSentKey)
			run("refused", s.URL(), nil, time.Second)

			if !strings.Contains(logs.String(), "provider check passed") || !strings.Contains(logs.String(), "provider check failed") {
				t.Errorf("logs: got %q, want both outcomes logged", logs.String())
			}
			outs = append(outs, logs.String())
			for _, o := range outs {
				mandrillNoSentinel(t, h.name, o)
			}
		})
	}
}

func mandrillNoSentinel(t *testing.T, what, out string) {
	t.Helper()
	if strings.Contains(out, mandrillSentinel) {
		t.Errorf("%s: got the sentinel in %q, want it nowhere", what, strings.ReplaceAll(out, mandrillSentinel, "<SENTINEL>"))
	}
}
