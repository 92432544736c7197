package admin_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/ocamba-rotator/rotator/internal/admin"
	"github.com/ocamba-rotator/rotator/internal/rotate"
)

// newClient returns a client that keeps no idle connection, so that no
// transport goroutine outlives a request.
func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
}

// do sends one request to a started server.
func do(c *http.Client, s *admin.Server, method, path, auth string) (int, string, error) {
	req, err := http.NewRequest(method, "http://"+s.Addr()+path, nil)
	if err != nil {
		return 0, "", err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func TestNewServerOptions(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*admin.Options)
		wantErr string
	}{
		{"defaults", func(o *admin.Options) { *o = admin.Options{Listen: o.Listen, Service: o.Service, Gatherer: o.Gatherer} }, ""},
		{"no listen address", func(o *admin.Options) { o.Listen = "" }, "Listen is required"},
		{"no service", func(o *admin.Options) { o.Service = nil }, "Service is required"},
		{"no gatherer", func(o *admin.Options) { o.Gatherer = nil }, "Gatherer is required"},
		{"negative read header timeout", func(o *admin.Options) { o.ReadHeaderTimeout = -1 }, "ReadHeaderTimeout is negative"},
		{"negative write timeout", func(o *admin.Options) { o.WriteTimeout = -time.Second }, "WriteTimeout is negative"},
		{"negative body limit", func(o *admin.Options) { o.MaxBodyBytes = -1 }, "MaxBodyBytes is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := admin.Options{Listen: "127.0.0.1:0", Service: &fakeService{}, Gatherer: prometheus.NewRegistry()}
			tt.edit(&opts)
			_, err := admin.NewServer(opts)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("got error %v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestServerLifecycle(t *testing.T) {
	defer goleak.VerifyNone(t)
	s, _ := newServer(t, &fakeService{}, nil)
	c := newClient()

	if got := s.Addr(); got != "" {
		t.Errorf("Addr before Start: got %q, want \"\"", got)
	}
	if err := s.Start(); err != nil {
		t.Fatalf("Start: got %v, want nil", err)
	}
	if host, port, err := net.SplitHostPort(s.Addr()); err != nil || host != "127.0.0.1" || port == "0" {
		t.Errorf("Addr: got %q, want 127.0.0.1 and the bound port", s.Addr())
	}
	if err := s.Start(); err == nil {
		t.Errorf("second Start: got nil, want an error")
	}

	for _, tt := range []struct {
		method, path, auth string
		wantCode           int
	}{
		{"GET", "/healthz", "", 200},
		{"GET", "/readyz", "", 200},
		{"GET", "/metrics", "", 200},
		{"GET", "/v1/status", bearer(sentinel), 200},
		{"POST", "/v1/rotate?dry_run=true", bearer(sentinel), 200},
		{"GET", "/v1/status", "", 401},
	} {
		code, body, err := do(c, s, tt.method, tt.path, tt.auth)
		if err != nil || code != tt.wantCode {
			t.Errorf("%s %s: got %d %v (%q), want %d", tt.method, tt.path, code, err, body, tt.wantCode)
		}
	}

	// A second server cannot bind the same address.
	other, _ := newServer(t, &fakeService{}, func(o *admin.Options) { o.Listen = s.Addr() })
	if err := other.Start(); err == nil {
		t.Errorf("Start on a bound address: got nil, want an error")
		_ = other.Shutdown(context.Background())
	}

	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown: got %v, want nil", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("second Shutdown: got %v, want nil", err)
	}
	if err := s.Start(); err == nil {
		t.Errorf("Start after Shutdown: got nil, want an error")
	}
	if _, _, err := do(c, s, "GET", "/healthz", ""); err == nil {
		t.Errorf("request after Shutdown: got an answer, want a connection error")
	}
}

func TestShutdownBeforeStart(t *testing.T) {
	defer goleak.VerifyNone(t)
	s, _ := newServer(t, &fakeService{}, nil)
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown: got %v, want nil", err)
	}
}

// Concurrent forced passes all reach the Service (which, not the server,
// decides how they queue): each call waits until all of them have arrived.
func TestConcurrentRequests(t *testing.T) {
	defer goleak.VerifyNone(t)
	const n = 8
	all := make(chan struct{})
	var arrived atomic.Int64
	svc := &fakeService{}
	svc.rotate = func(ctx context.Context, req rotate.Request) (rotate.Report, error) {
		if arrived.Add(1) == n {
			close(all)
		}
		select {
		case <-all:
			return sampleReport(req), nil
		case <-ctx.Done():
			return rotate.Report{}, ctx.Err()
		}
	}
	s, _ := newServer(t, svc, nil)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	c := newClient()
	codes := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			path := "/v1/rotate"
			if i%2 == 1 {
				path = "/v1/rotate/twilio-main"
			}
			codes[i], _, _ = do(c, s, "POST", path, bearer(sentinel))
		})
	}
	wg.Wait()
	for i, code := range codes {
		if code != 200 {
			t.Errorf("request %d: got %d, want 200", i, code)
		}
	}
	if got := svc.calls.Load(); got != n {
		t.Errorf("Service.Rotate calls: got %d, want %d", got, n)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown: got %v, want nil", err)
	}
}

// A client that sends half a header is disconnected after ReadHeaderTimeout.
func TestSlowClientDisconnected(t *testing.T) {
	defer goleak.VerifyNone(t)
	s, _ := newServer(t, &fakeService{}, func(o *admin.Options) { o.ReadHeaderTimeout = 200 * time.Millisecond })
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: rotator\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	// Generous: the server must hang up long before this.
	if err := conn.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Errorf("read: got %v, want EOF (the server closing the connection)", err)
	}
	if strings.Contains(string(got), "200 OK") {
		t.Errorf("answer: got %q, want no answer to an incomplete request", got)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown: got %v, want nil", err)
	}
}

// Shutdown waits for a forced pass in progress, whose client gets its
// answer.
func TestShutdownWaitsForPass(t *testing.T) {
	defer goleak.VerifyNone(t)
	entered, release := make(chan struct{}), make(chan struct{})
	svc := &fakeService{}
	svc.rotate = func(_ context.Context, req rotate.Request) (rotate.Report, error) {
		close(entered)
		<-release
		return sampleReport(req), nil
	}
	s, _ := newServer(t, svc, nil)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	type result struct {
		code int
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		code, body, err := do(newClient(), s, "POST", "/v1/rotate", bearer(sentinel))
		res <- result{code, body, err}
	}()
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	close(release)

	r := <-res
	if r.err != nil || r.code != 200 || !strings.Contains(r.body, `"outcomes"`) {
		t.Errorf("answer: got %d %v %q, want 200 with the report", r.code, r.err, r.body)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: got %v, want nil", err)
	}
}

// A Shutdown whose context ends first closes the connections and cancels
// the pass in progress.
func TestShutdownDeadlineCancelsPass(t *testing.T) {
	defer goleak.VerifyNone(t)
	entered := make(chan struct{})
	passErr := make(chan error, 1)
	svc := &fakeService{}
	svc.rotate = func(ctx context.Context, _ rotate.Request) (rotate.Report, error) {
		close(entered)
		<-ctx.Done()
		passErr <- ctx.Err()
		return rotate.Report{}, ctx.Err()
	}
	s, _ := newServer(t, svc, nil)
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	clientDone := make(chan struct{})
	go func() {
		defer close(clientDone)
		_, _, _ = do(newClient(), s, "POST", "/v1/rotate", bearer(sentinel))
	}()
	<-entered

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // already past its deadline
	if err := s.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown: got %v, want context.Canceled", err)
	}
	if err := <-passErr; !errors.Is(err, context.Canceled) {
		t.Errorf("pass context: got %v, want context.Canceled", err)
	}
	<-clientDone
}
