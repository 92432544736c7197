package admin_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocamba-rotator/rotator/internal/admin"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/rotation"
	"github.com/ocamba-rotator/rotator/internal/secret"
	"github.com/ocamba-rotator/rotator/internal/testkit"
)

// sentinel is the admin token of the tests: it must never appear in any
// answer, header or log line.
const sentinel = "SENTINEL-admin-7f3a9c-do-not-print"

// fakeService records what the server asks of it.
type fakeService struct {
	calls atomic.Int64

	mu   sync.Mutex
	reqs []rotate.Request

	// rotate, if set, answers Rotate; by default a one-outcome report.
	rotate func(ctx context.Context, req rotate.Request) (rotate.Report, error)
	status []admin.IntegrationStatus
	ready  error

	// runRotation, if set, answers RunRotation; by default a done result.
	runRotation func(ctx context.Context, name string, req rotation.Request) (rotation.Result, error)
	rotReqs     []rotation.Request
	rotations   []rotation.Status
	rotErr      error
}

func (f *fakeService) RunRotation(ctx context.Context, name string, req rotation.Request) (rotation.Result, error) {
	f.calls.Add(1)
	f.mu.Lock()
	f.rotReqs = append(f.rotReqs, req)
	f.mu.Unlock()
	if f.runRotation != nil {
		return f.runRotation(ctx, name, req)
	}
	return rotation.Result{Name: name, Provider: "sendgrid_email", Step: rotation.StepDone, Since: t1, KeyID: "key-2", Version: 3}, nil
}

func (f *fakeService) Rotations(context.Context) ([]rotation.Status, error) {
	return f.rotations, f.rotErr
}

// rotationRequests returns a copy of the requests RunRotation received.
func (f *fakeService) rotationRequests() []rotation.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]rotation.Request(nil), f.rotReqs...)
}

func (f *fakeService) Rotate(ctx context.Context, req rotate.Request) (rotate.Report, error) {
	f.calls.Add(1)
	f.mu.Lock()
	f.reqs = append(f.reqs, req)
	f.mu.Unlock()
	if f.rotate != nil {
		return f.rotate(ctx, req)
	}
	return sampleReport(req), nil
}

func (f *fakeService) Status() []admin.IntegrationStatus { return f.status }

func (f *fakeService) Ready(context.Context) error { return f.ready }

// requests returns a copy of the requests Rotate received.
func (f *fakeService) requests() []rotate.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]rotate.Request(nil), f.reqs...)
}

var (
	t0 = time.Date(2025, 3, 1, 3, 0, 0, 0, time.UTC)
	t1 = t0.Add(3 * time.Second)
)

// sampleReport is a report with one pushed and one failed integration (or
// one "would push" in a dry run).
func sampleReport(req rotate.Request) rotate.Report {
	rep := rotate.Report{Trigger: req.Trigger, DryRun: req.DryRun, Started: t0, Finished: t1}
	if req.DryRun {
		rep.Outcomes = []rotate.Outcome{{Name: "twilio-main", ID: "1161", Provider: "twilio_sms", VaultVersion: 4, Result: rotate.ResultWouldPush, Settings: []string{"auth_token"}}}
		return rep
	}
	rep.Outcomes = []rotate.Outcome{
		{Name: "twilio-main", ID: "1161", Provider: "twilio_sms", VaultPath: "secret/ocamba/twilio-main", VaultVersion: 4, Result: rotate.ResultPushed, Settings: []string{"auth_token"}},
		{Name: "mail", ID: "42", Provider: "sendgrid", VaultPath: "secret/ocamba/mail", VaultVersion: 2, Result: rotate.ResultFailed, Error: "hood: 500", TraceID: "trace-1"},
	}
	return rep
}

type syncBuffer = testkit.SyncBuffer

// newServer returns a server with the sentinel token, svc, a fresh
// registry and a JSON logger writing to the returned buffer.
func newServer(t *testing.T, svc admin.Service, edit func(*admin.Options)) (*admin.Server, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	opts := admin.Options{
		Listen:   "127.0.0.1:0",
		Token:    secret.New(sentinel),
		Service:  svc,
		Gatherer: prometheus.NewRegistry(),
		Logger:   slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if edit != nil {
		edit(&opts)
	}
	s, err := admin.NewServer(opts)
	if err != nil {
		t.Fatalf("NewServer: got error %v, want nil", err)
	}
	return s, logs
}

// call is one request to a handler.
type call struct {
	method, target string
	auth           string // the Authorization header; "" sends none
	body           string
}

// answer is what a handler answered.
type answer struct {
	code   int
	header http.Header
	body   string
}

func serve(t *testing.T, h http.Handler, c call) answer {
	t.Helper()
	return serveCtx(t, context.Background(), h, c)
}

func serveCtx(t *testing.T, ctx context.Context, h http.Handler, c call) answer {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	r := httptest.NewRequestWithContext(ctx, c.method, c.target, body)
	if c.auth != "" {
		r.Header.Set("Authorization", c.auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return answer{code: w.Code, header: w.Header(), body: w.Body.String()}
}

func bearer(tok string) string { return "Bearer " + tok }

// dump is an answer as one string, for the sentinel checks.
func (a answer) dump() string {
	return fmt.Sprintf("%d %v %s", a.code, a.header, a.body)
}
