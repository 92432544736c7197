package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocamba-rotator/rotator/internal/admin"
	"github.com/ocamba-rotator/rotator/internal/metrics"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/secret"
)

func TestRoutes(t *testing.T) {
	ok := bearer(sentinel)
	tests := []struct {
		name      string
		ready     error
		call      call
		wantCode  int
		wantBody  string // exact, when not ""
		wantJSON  bool   // Content-Type application/json with an "error" key
		wantAllow string
		wantCalls int64
		// wantLocation is the Location header of a redirect.
		wantLocation string
	}{
		{name: "healthz", call: call{method: "GET", target: "/healthz"}, wantCode: 200, wantBody: "ok"},
		{name: "healthz HEAD", call: call{method: "HEAD", target: "/healthz"}, wantCode: 200},
		{name: "healthz wrong method", call: call{method: "POST", target: "/healthz"}, wantCode: 405, wantAllow: "GET, HEAD"},
		{name: "readyz ready", call: call{method: "GET", target: "/readyz"}, wantCode: 200, wantBody: "ready"},
		{name: "readyz not ready", ready: errors.New("vault: not authenticated: permission denied"),
			call: call{method: "GET", target: "/readyz"}, wantCode: 503, wantBody: "vault: not authenticated: permission denied"},
		{name: "metrics", call: call{method: "GET", target: "/metrics"}, wantCode: 200},
		{name: "metrics wrong method", call: call{method: "DELETE", target: "/metrics"}, wantCode: 405, wantAllow: "GET, HEAD"},
		{name: "unknown public path", call: call{method: "GET", target: "/nope"}, wantCode: 404},
		{name: "root", call: call{method: "GET", target: "/"}, wantCode: 404},

		{name: "rotate all", call: call{method: "POST", target: "/v1/rotate", auth: ok}, wantCode: 200, wantCalls: 1},
		{name: "rotate one", call: call{method: "POST", target: "/v1/rotate/twilio-main", auth: ok}, wantCode: 200, wantCalls: 1},
		{name: "rotate unknown name", call: call{method: "POST", target: "/v1/rotate/nope", auth: ok}, wantCode: 404, wantJSON: true, wantCalls: 1},
		{name: "rotate GET", call: call{method: "GET", target: "/v1/rotate", auth: ok}, wantCode: 405, wantJSON: true, wantAllow: "POST"},
		{name: "rotate one GET", call: call{method: "GET", target: "/v1/rotate/twilio-main", auth: ok}, wantCode: 405, wantJSON: true, wantAllow: "POST"},
		{name: "status", call: call{method: "GET", target: "/v1/status", auth: ok}, wantCode: 200},
		{name: "status POST", call: call{method: "POST", target: "/v1/status", auth: ok}, wantCode: 405, wantJSON: true, wantAllow: "GET, HEAD"},
		{name: "unknown v1 path", call: call{method: "GET", target: "/v1/nope", auth: ok}, wantCode: 404, wantJSON: true},
		{name: "v1 itself", call: call{method: "GET", target: "/v1", auth: ok}, wantCode: 404, wantJSON: true},
		{name: "v1 slash", call: call{method: "GET", target: "/v1/", auth: ok}, wantCode: 404, wantJSON: true},
		{name: "rotate two segments", call: call{method: "POST", target: "/v1/rotate/a/b", auth: ok}, wantCode: 404, wantJSON: true},
		{name: "rotate empty name", call: call{method: "POST", target: "/v1/rotate/", auth: ok}, wantCode: 404, wantJSON: true},
		{name: "unclean v1 path redirects", call: call{method: "GET", target: "/v1//status", auth: ok}, wantCode: 307, wantLocation: "/v1/status"},
		{name: "unclean v1 path needs the token", call: call{method: "GET", target: "/v1//status"}, wantCode: 401, wantJSON: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &fakeService{ready: tt.ready}
			svc.rotate = func(_ context.Context, req rotate.Request) (rotate.Report, error) {
				if slices.Contains(req.Only, "nope") {
					return rotate.Report{}, fmt.Errorf("%w: %q", rotate.ErrUnknownIntegration, req.Only)
				}
				return sampleReport(req), nil
			}
			s, _ := newServer(t, svc, nil)
			got := serve(t, s.Handler(), tt.call)
			if got.code != tt.wantCode {
				t.Errorf("status: got %d, want %d (body %q)", got.code, tt.wantCode, got.body)
			}
			if tt.wantBody != "" && got.body != tt.wantBody {
				t.Errorf("body: got %q, want %q", got.body, tt.wantBody)
			}
			if tt.wantJSON {
				if ct := got.header.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type: got %q, want application/json", ct)
				}
				var e struct{ Error string }
				if err := json.Unmarshal([]byte(got.body), &e); err != nil || e.Error == "" {
					t.Errorf("body: got %q (%v), want a JSON object with a non-empty \"error\"", got.body, err)
				}
			}
			if loc := got.header.Get("Location"); loc != tt.wantLocation {
				t.Errorf("Location: got %q, want %q", loc, tt.wantLocation)
			}
			if allow := got.header.Get("Allow"); allow != tt.wantAllow {
				t.Errorf("Allow: got %q, want %q", allow, tt.wantAllow)
			}
			if n := svc.calls.Load(); n != tt.wantCalls {
				t.Errorf("Service.Rotate calls: got %d, want %d", n, tt.wantCalls)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	tests := []struct {
		name     string
		token    string // the configured token; "" configures none
		call     call
		wantCode int
		wantWWW  string
	}{
		{"right token", sentinel, call{method: "GET", target: "/v1/status", auth: bearer(sentinel)}, 200, ""},
		{"scheme is case-insensitive", sentinel, call{method: "GET", target: "/v1/status", auth: "bearer " + sentinel}, 200, ""},
		{"no header", sentinel, call{method: "GET", target: "/v1/status"}, 401, "Bearer"},
		{"empty bearer", sentinel, call{method: "GET", target: "/v1/status", auth: "Bearer "}, 401, "Bearer"},
		{"basic scheme", sentinel, call{method: "GET", target: "/v1/status", auth: "Basic " + sentinel}, 401, "Bearer"},
		{"token without scheme", sentinel, call{method: "GET", target: "/v1/status", auth: sentinel}, 401, "Bearer"},
		{"longer token", sentinel, call{method: "GET", target: "/v1/status", auth: bearer(sentinel + "x")}, 401, "Bearer"},
		{"shorter token", sentinel, call{method: "GET", target: "/v1/status", auth: bearer(sentinel[:len(sentinel)-1])}, 401, "Bearer"},
		{"last byte differs", sentinel, call{method: "GET", target: "/v1/status", auth: bearer(sentinel[:len(sentinel)-1] + "X")}, 401, "Bearer"},
		{"much shorter token", sentinel, call{method: "GET", target: "/v1/status", auth: bearer("a")}, 401, "Bearer"},
		{"POST rotate without token", sentinel, call{method: "POST", target: "/v1/rotate"}, 401, "Bearer"},
		{"POST rotate one with a wrong token", sentinel, call{method: "POST", target: "/v1/rotate/twilio-main", auth: bearer("wrong")}, 401, "Bearer"},
		{"auth before 404", sentinel, call{method: "GET", target: "/v1/nope"}, 401, "Bearer"},
		{"auth before 405", sentinel, call{method: "DELETE", target: "/v1/rotate"}, 401, "Bearer"},
		{"auth on /v1 itself", sentinel, call{method: "GET", target: "/v1"}, 401, "Bearer"},
		{"not configured: status", "", call{method: "GET", target: "/v1/status", auth: bearer(sentinel)}, 403, ""},
		{"not configured: rotate", "", call{method: "POST", target: "/v1/rotate"}, 403, ""},
		{"not configured: unknown path", "", call{method: "GET", target: "/v1/nope"}, 403, ""},
		{"not configured: empty bearer", "", call{method: "GET", target: "/v1/status", auth: "Bearer "}, 403, ""},
		{"public needs no token", sentinel, call{method: "GET", target: "/healthz"}, 200, ""},
		{"public with no token configured", "", call{method: "GET", target: "/metrics"}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &fakeService{}
			s, _ := newServer(t, svc, func(o *admin.Options) { o.Token = secret.New(tt.token) })
			got := serve(t, s.Handler(), tt.call)
			if got.code != tt.wantCode {
				t.Errorf("status: got %d, want %d (body %q)", got.code, tt.wantCode, got.body)
			}
			if www := got.header.Get("WWW-Authenticate"); www != tt.wantWWW {
				t.Errorf("WWW-Authenticate: got %q, want %q", www, tt.wantWWW)
			}
			if tt.wantCode == 403 && !strings.Contains(got.body, "admin token not configured") {
				t.Errorf("body: got %q, want it to say \"admin token not configured\"", got.body)
			}
			if tt.wantCode >= 400 && svc.calls.Load() != 0 {
				t.Errorf("Service.Rotate calls: got %d, want 0", svc.calls.Load())
			}
		})
	}
}

func TestSetToken(t *testing.T) {
	s, _ := newServer(t, &fakeService{}, nil)
	h := s.Handler()
	status := func(auth string) int {
		return serve(t, h, call{method: "GET", target: "/v1/status", auth: auth}).code
	}
	steps := []struct {
		name  string
		set   *string // nil: keep the token
		auth  string
		wantC int
	}{
		{"initial token", nil, bearer(sentinel), 200},
		{"swap to new", ptr("new-token-2"), bearer("new-token-2"), 200},
		{"old token refused", nil, bearer(sentinel), 401},
		{"cleared", ptr(""), bearer("new-token-2"), 403},
		{"set again", ptr(sentinel), bearer(sentinel), 200},
	}
	for _, st := range steps {
		if st.set != nil {
			s.SetToken(secret.New(*st.set))
		}
		if got := status(st.auth); got != st.wantC {
			t.Errorf("%s: got %d, want %d", st.name, got, st.wantC)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestRotateRequest(t *testing.T) {
	tests := []struct {
		name       string
		target     string
		wantCode   int
		wantReq    *rotate.Request // nil: Service.Rotate is not called
		wantDryRun bool            // of the answer
	}{
		{"all", "/v1/rotate", 200, &rotate.Request{Trigger: rotate.TriggerAdmin, Force: true}, false},
		{"dry run", "/v1/rotate?dry_run=true", 200, &rotate.Request{Trigger: rotate.TriggerAdmin, Force: true, DryRun: true}, true},
		{"dry run false", "/v1/rotate?dry_run=false", 200, &rotate.Request{Trigger: rotate.TriggerAdmin, Force: true}, false},
		{"one", "/v1/rotate/twilio-main", 200, &rotate.Request{Trigger: rotate.TriggerAdmin, Force: true, Only: []string{"twilio-main"}}, false},
		{"one dry run", "/v1/rotate/twilio-main?dry_run=true", 200, &rotate.Request{Trigger: rotate.TriggerAdmin, Force: true, DryRun: true, Only: []string{"twilio-main"}}, true},
		{"escaped name", "/v1/rotate/a%2Db", 200, &rotate.Request{Trigger: rotate.TriggerAdmin, Force: true, Only: []string{"a-b"}}, false},
		{"dry_run=1", "/v1/rotate?dry_run=1", 400, nil, false},
		{"dry_run=TRUE", "/v1/rotate?dry_run=TRUE", 400, nil, false},
		{"dry_run empty", "/v1/rotate?dry_run=", 400, nil, false},
		{"dry_run bare", "/v1/rotate?dry_run", 400, nil, false},
		{"dry_run twice", "/v1/rotate?dry_run=true&dry_run=false", 400, nil, false},
		{"misspelt parameter", "/v1/rotate?dryrun=true", 400, nil, false},
		{"extra parameter", "/v1/rotate/twilio-main?dry_run=true&force=false", 400, nil, false},
		{"malformed query", "/v1/rotate?dry_run=%zz", 400, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &fakeService{}
			s, _ := newServer(t, svc, nil)
			got := serve(t, s.Handler(), call{method: "POST", target: tt.target, auth: bearer(sentinel), body: `{"ignored": true}`})
			if got.code != tt.wantCode {
				t.Fatalf("status: got %d, want %d (body %q)", got.code, tt.wantCode, got.body)
			}
			reqs := svc.requests()
			if tt.wantReq == nil {
				if len(reqs) != 0 {
					t.Fatalf("Service.Rotate: got %d calls, want none", len(reqs))
				}
				return
			}
			if len(reqs) != 1 {
				t.Fatalf("Service.Rotate: got %d calls, want 1", len(reqs))
			}
			want := *tt.wantReq
			want.Caller = "192.0.2.1:1234" // httptest's RemoteAddr
			if !reflect.DeepEqual(reqs[0], want) {
				t.Errorf("request: got %+v, want %+v", reqs[0], want)
			}
			var rep rotate.Report
			if err := json.Unmarshal([]byte(got.body), &rep); err != nil {
				t.Fatalf("body: got %q, want a report: %v", got.body, err)
			}
			if rep.DryRun != tt.wantDryRun || rep.Trigger != rotate.TriggerAdmin {
				t.Errorf("report: got trigger %q dry_run %v, want admin %v", rep.Trigger, rep.DryRun, tt.wantDryRun)
			}
		})
	}
}

func TestRotateAnswer(t *testing.T) {
	svc := &fakeService{}
	s, _ := newServer(t, svc, nil)
	got := serve(t, s.Handler(), call{method: "POST", target: "/v1/rotate", auth: bearer(sentinel)})
	if got.code != 200 {
		t.Fatalf("status: got %d, want 200 even though an outcome failed", got.code)
	}
	if ct := got.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal([]byte(got.body), &body); err != nil {
		t.Fatalf("body: %v", err)
	}
	if keys := sortedKeys(body); !slices.Equal(keys, []string{"dry_run", "finished", "outcomes", "started", "trigger"}) {
		t.Errorf("keys: got %v, want dry_run, finished, outcomes, started, trigger", keys)
	}
	var rep rotate.Report
	if err := json.Unmarshal([]byte(got.body), &rep); err != nil {
		t.Fatalf("body: %v", err)
	}
	want := sampleReport(rotate.Request{Trigger: rotate.TriggerAdmin})
	if !reflect.DeepEqual(rep, want) {
		t.Errorf("report: got %+v, want %+v", rep, want)
	}
}

func TestRotateEmptyReport(t *testing.T) {
	svc := &fakeService{rotate: func(context.Context, rotate.Request) (rotate.Report, error) {
		return rotate.Report{Trigger: rotate.TriggerAdmin}, nil
	}}
	s, _ := newServer(t, svc, nil)
	got := serve(t, s.Handler(), call{method: "POST", target: "/v1/rotate", auth: bearer(sentinel)})
	if !strings.Contains(got.body, `"outcomes": []`) {
		t.Errorf("body: got %q, want \"outcomes\": [] (not null)", got.body)
	}
}

func TestRotateServiceError(t *testing.T) {
	svc := &fakeService{rotate: func(context.Context, rotate.Request) (rotate.Report, error) {
		return rotate.Report{}, errors.New("engine exploded near " + sentinel)
	}}
	s, logs := newServer(t, svc, nil)
	got := serve(t, s.Handler(), call{method: "POST", target: "/v1/rotate", auth: bearer(sentinel)})
	if got.code != 500 {
		t.Errorf("status: got %d, want 500", got.code)
	}
	if strings.Contains(got.body, "exploded") {
		t.Errorf("body: got %q, want a generic message without the error's text", got.body)
	}
	if !strings.Contains(logs.String(), "forced pass failed") {
		t.Errorf("log: got %q, want the failure logged", logs.String())
	}
}

func TestRotateBody(t *testing.T) {
	const limit = 16
	tests := []struct {
		name      string
		body      string
		wantCode  int
		wantCalls int64
	}{
		{"no body", "", 200, 1},
		{"at the limit", strings.Repeat("x", limit), 200, 1},
		{"over the limit", strings.Repeat("x", limit+1), 413, 0},
		{"far over the limit", strings.Repeat("x", 10*limit), 413, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := &fakeService{}
			s, _ := newServer(t, svc, func(o *admin.Options) { o.MaxBodyBytes = limit })
			got := serve(t, s.Handler(), call{method: "POST", target: "/v1/rotate/twilio-main", auth: bearer(sentinel), body: tt.body})
			if got.code != tt.wantCode {
				t.Errorf("status: got %d, want %d (body %q)", got.code, tt.wantCode, got.body)
			}
			if n := svc.calls.Load(); n != tt.wantCalls {
				t.Errorf("Service.Rotate calls: got %d, want %d", n, tt.wantCalls)
			}
		})
	}
}

// A client that goes away does not cancel the pass, and nothing is written.
func TestRotateClientGone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var passErr error
	svc := &fakeService{rotate: func(pctx context.Context, req rotate.Request) (rotate.Report, error) {
		cancel() // the client goes away while the pass runs
		passErr = pctx.Err()
		return sampleReport(req), nil
	}}
	s, logs := newServer(t, svc, nil)
	got := serveCtx(t, ctx, s.Handler(), call{method: "POST", target: "/v1/rotate", auth: bearer(sentinel)})
	if passErr != nil {
		t.Errorf("pass context: got %v, want nil (not cancelled by the client)", passErr)
	}
	if got.body != "" {
		t.Errorf("body: got %q, want nothing written", got.body)
	}
	if !strings.Contains(logs.String(), "went away") {
		t.Errorf("log: got %q, want the client's departure logged", logs.String())
	}
}

func TestStatus(t *testing.T) {
	last := time.Date(2025, 3, 1, 3, 0, 0, 0, time.UTC)
	next := last.Add(24 * time.Hour)
	tests := []struct {
		name     string
		status   []admin.IntegrationStatus
		wantBody string
	}{
		{"none", nil, "[]\n"},
		{"one", []admin.IntegrationStatus{{
			Name: "twilio-main", ID: "1161", Provider: "twilio_sms", VaultVersion: 4,
			LastAttempt: &last, LastSuccess: &last, LastResult: "pushed", NextRun: &next,
		}}, `[
  {
    "name": "twilio-main",
    "id": "1161",
    "provider": "twilio_sms",
    "vault_version": 4,
    "last_attempt": "2025-03-01T03:00:00Z",
    "last_success": "2025-03-01T03:00:00Z",
    "last_result": "pushed",
    "last_error": "",
    "consecutive_failures": 0,
    "next_run": "2025-03-02T03:00:00Z"
  }
]
`},
		{"never run, failing", []admin.IntegrationStatus{{
			Name: "mail", ID: "42", Provider: "sendgrid", LastResult: "failed", LastError: "hood: 500", TraceID: "trace-1", ConsecutiveFailures: 3,
		}}, `[
  {
    "name": "mail",
    "id": "42",
    "provider": "sendgrid",
    "vault_version": 0,
    "last_attempt": null,
    "last_success": null,
    "last_result": "failed",
    "last_error": "hood: 500",
    "trace_id": "trace-1",
    "consecutive_failures": 3,
    "next_run": null
  }
]
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newServer(t, &fakeService{status: tt.status}, nil)
			got := serve(t, s.Handler(), call{method: "GET", target: "/v1/status", auth: bearer(sentinel)})
			if got.code != 200 {
				t.Fatalf("status: got %d, want 200", got.code)
			}
			if got.body != tt.wantBody {
				t.Errorf("body: got\n%s\nwant\n%s", got.body, tt.wantBody)
			}
		})
	}
}

func TestRequestLog(t *testing.T) {
	s, logs := newServer(t, &fakeService{}, nil)
	serve(t, s.Handler(), call{method: "POST", target: "/v1/rotate/twilio-main?dry_run=true", auth: bearer(sentinel)})
	serve(t, s.Handler(), call{method: "GET", target: "/v1/status", auth: bearer("wrong-" + sentinel)})
	var lines []map[string]any
	for l := range strings.Lines(logs.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == "admin request" {
			lines = append(lines, m)
		}
	}
	if len(lines) != 2 {
		t.Fatalf("request log lines: got %d, want 2 in\n%s", len(lines), logs)
	}
	for i, want := range []struct {
		method, path string
		status       float64
	}{{"POST", "/v1/rotate/twilio-main", 200}, {"GET", "/v1/status", 401}} {
		l := lines[i]
		if l["method"] != want.method || l["path"] != want.path || l["status"] != want.status {
			t.Errorf("line %d: got %v %v %v, want %s %s %v", i, l["method"], l["path"], l["status"], want.method, want.path, want.status)
		}
		for _, k := range []string{"remote", "duration"} {
			if _, ok := l[k]; !ok {
				t.Errorf("line %d: got no %q key, want one", i, k)
			}
		}
	}
}

// The sentinel token must not appear in any answer or log line, whatever
// the client sends.
func TestTokenNeverShown(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(reg, "test")
	if err != nil {
		t.Fatal(err)
	}
	svc := &fakeService{
		status: []admin.IntegrationStatus{{Name: "twilio-main", ID: "1161", Provider: "twilio_sms"}},
		ready:  errors.New("vault: not authenticated"),
	}
	s, logs := newServer(t, svc, func(o *admin.Options) { o.Gatherer = reg })
	m.ObservePass(sampleReport(rotate.Request{Trigger: rotate.TriggerAdmin}))

	var seen []string
	for _, auth := range []string{"", bearer(sentinel), bearer(sentinel + "x"), bearer(sentinel[1:]), "Basic " + sentinel, sentinel} {
		for _, c := range []call{
			{method: "GET", target: "/healthz"},
			{method: "GET", target: "/readyz"},
			{method: "GET", target: "/metrics"},
			{method: "POST", target: "/v1/rotate"},
			{method: "POST", target: "/v1/rotate?dry_run=true"},
			{method: "POST", target: "/v1/rotate/twilio-main"},
			{method: "POST", target: "/v1/rotate?dry_run=" + sentinel},
			{method: "GET", target: "/v1/status"},
			{method: "GET", target: "/v1/nope"},
			{method: "DELETE", target: "/v1/status"},
		} {
			c.auth = auth
			seen = append(seen, serve(t, s.Handler(), c).dump())
		}
	}
	s.SetToken(secret.New(""))
	seen = append(seen, serve(t, s.Handler(), call{method: "GET", target: "/v1/status", auth: bearer(sentinel)}).dump())
	seen = append(seen, logs.String(), fmt.Sprintf("%+v %#v", s, s))

	for i, text := range seen {
		if strings.Contains(text, sentinel) {
			t.Errorf("output %d: got the sentinel token in %q, want it never shown", i, text)
		}
	}
	if !strings.Contains(logs.String(), "admin request") {
		t.Errorf("logs: got %q, want request lines (the check above would be vacuous)", logs.String())
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
