package faults_test

// faultProxy is a loopback HTTP proxy that stands between rotator and Vault
// and misbehaves on request: pass-through, delay, reset the connection,
// answer 500 or 503, or accept the request and never answer. Rules may be
// limited to the requests whose URL path starts with a prefix (one secret
// path, or every KV read), so that one integration's reads fail while the
// login and the other reads go through.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// mode is what the proxy does with a request.
type mode int

const (
	modePass     mode = iota // forward to Vault
	modeDelay                // wait, then forward (unless the client gave up)
	modeReset                // close the connection with a TCP RST, no answer
	mode500                  // answer 500 with a Vault-shaped error body
	mode503                  // answer 503 with a non-seal error body
	modeDrop                 // accept the request and never answer
	modeTruncate             // forward, then send the answer's head and half its body, and close
)

func (m mode) String() string {
	switch m {
	case modePass:
		return "pass"
	case modeDelay:
		return "delay"
	case modeReset:
		return "reset"
	case mode500:
		return "500"
	case mode503:
		return "503"
	case modeDrop:
		return "drop"
	case modeTruncate:
		return "truncate"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// rule applies mode to the requests whose URL path starts with prefix ("":
// every request).
type rule struct {
	prefix string
	mode   mode
	delay  time.Duration // modeDelay
}

// faultProxy is a running proxy. Its methods are safe for concurrent use.
type faultProxy struct {
	URL string // http://127.0.0.1:PORT

	rp        *httputil.ReverseProxy
	transport *http.Transport
	srv       *http.Server
	closed    chan struct{}
	closeOnce sync.Once

	mu      sync.Mutex
	rules   []rule
	release chan struct{} // closed by set: lets the delayed requests go on
	hits    map[mode]int  // requests answered by each mode (pass included)
	paths   []string      // "MODE PATH" of every request, in order
}

// startProxy starts a proxy to target on a free loopback port, passing
// everything through; it is closed when the test ends.
func startProxy(t testing.TB, target string) *faultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("proxy target %q: %v", target, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: listen: %v", err)
	}
	p := &faultProxy{
		URL:       "http://" + ln.Addr().String(),
		transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second},
		closed:    make(chan struct{}),
		release:   make(chan struct{}),
		hits:      map[mode]int{},
	}
	p.rp = httputil.NewSingleHostReverseProxy(u)
	p.rp.Transport = p.transport
	p.rp.ErrorLog = log.New(io.Discard, "", 0)
	// Vault unreachable behind the proxy (stopped, say, while a delayed
	// request waited): the client's connection is reset, as it would be
	// without a proxy, rather than answered 502.
	p.rp.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, _ error) { resetConn(w) }
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = p.srv.Serve(ln) }()
	t.Cleanup(p.close)
	return p
}

// set replaces the rules; the first rule whose prefix matches a request
// decides. No rules: everything passes. The requests that a delay rule
// holds at the time go on at once (to Vault, whatever its state then).
func (p *faultProxy) set(rules ...rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append([]rule(nil), rules...)
	close(p.release)
	p.release = make(chan struct{})
}

// hit returns how many requests mode answered since the proxy started.
func (p *faultProxy) hit(m mode) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[m]
}

// seen returns "MODE PATH" for every request received, in order.
func (p *faultProxy) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.paths...)
}

func (p *faultProxy) close() {
	p.closeOnce.Do(func() {
		close(p.closed)
		_ = p.srv.Close()
		p.transport.CloseIdleConnections()
	})
}

// match picks the rule for a path, records the request, and returns the
// channel that releases it if delayed.
func (p *faultProxy) match(path string) (rule, <-chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := rule{mode: modePass}
	for _, c := range p.rules {
		if strings.HasPrefix(path, c.prefix) {
			r = c
			break
		}
	}
	p.hits[r.mode]++
	p.paths = append(p.paths, r.mode.String()+" "+path)
	return r, p.release
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rl, release := p.match(r.URL.Path)
	switch rl.mode {
	case modePass:
		p.rp.ServeHTTP(w, r)
	case modeDelay:
		t := time.NewTimer(rl.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-release:
		case <-r.Context().Done():
			return // the client gave up: Vault never sees the request
		case <-p.closed:
			return
		}
		p.rp.ServeHTTP(w, r)
	case mode500:
		writeVaultError(w, http.StatusInternalServerError, "internal error injected by the fault proxy")
	case mode503:
		writeVaultError(w, http.StatusServiceUnavailable, "upstream unavailable: injected by the fault proxy")
	case modeReset:
		resetConn(w)
	case modeDrop:
		select {
		case <-r.Context().Done():
		case <-p.closed:
		}
	case modeTruncate:
		rec := httptest.NewRecorder()
		p.rp.ServeHTTP(rec, r)
		truncate(w, rec.Result())
	}
}

// truncate sends resp's status line and headers, with its full
// Content-Length, and only half its body, then closes the connection: the
// client reads a partial answer.
func truncate(w http.ResponseWriter, resp *http.Response) {
	body, _ := io.ReadAll(resp.Body)
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("fault proxy: connection cannot be hijacked")
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\n", resp.StatusCode, http.StatusText(resp.StatusCode))
	fmt.Fprintf(buf, "Content-Type: %s\r\nContent-Length: %d\r\n\r\n", resp.Header.Get("Content-Type"), len(body))
	_, _ = buf.Write(body[:len(body)/2])
	_ = buf.Flush()
}

// writeVaultError answers as Vault answers errors: {"errors": [...]}.
func writeVaultError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	fmt.Fprintf(w, "{\"errors\":[%q]}\n", msg)
}

// resetConn closes the request's connection with a TCP RST and no answer.
func resetConn(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("fault proxy: connection cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // close sends RST instead of FIN
	}
	_ = conn.Close()
}

// TestFaultProxyModes checks the proxy itself against a trivial upstream,
// so that the Vault tests can trust what it does.
func TestFaultProxyModes(t *testing.T) {
	upstream := serve(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "upstream:"+r.URL.Path)
	})})
	p := startProxy(t, upstream)

	get := func(path string, timeout time.Duration) (int, string, error) {
		c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(p.URL + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}

	if code, body, err := get("/v1/a", 10*time.Second); err != nil || code != 200 || body != "upstream:/v1/a" {
		t.Errorf("pass: got %d %q %v, want 200 upstream:/v1/a", code, body, err)
	}
	for _, tc := range []struct {
		m    mode
		code int
	}{{mode500, 500}, {mode503, 503}} {
		p.set(rule{mode: tc.m})
		if code, body, err := get("/v1/a", 10*time.Second); err != nil || code != tc.code || !strings.Contains(body, `"errors"`) {
			t.Errorf("%v: got %d %q %v, want %d with a Vault error body", tc.m, code, body, err, tc.code)
		}
	}
	p.set(rule{mode: modeReset})
	if _, _, err := get("/v1/a", 10*time.Second); err == nil {
		t.Errorf("reset: got an answer, want a connection error")
	}
	// Drop: no answer however long the client waits (here: its timeout).
	p.set(rule{mode: modeDrop})
	if _, _, err := get("/v1/a", 300*time.Millisecond); !isTimeout(err) {
		t.Errorf("drop: got %v, want a client timeout", err)
	}
	// Delay: a client that waits less than the delay gets nothing, one that
	// waits longer gets the upstream's answer.
	p.set(rule{mode: modeDelay, delay: 500 * time.Millisecond})
	if _, _, err := get("/v1/a", 100*time.Millisecond); !isTimeout(err) {
		t.Errorf("delay, impatient client: got %v, want a client timeout", err)
	}
	if code, body, err := get("/v1/a", 10*time.Second); err != nil || code != 200 || body != "upstream:/v1/a" {
		t.Errorf("delay, patient client: got %d %q %v, want 200 upstream:/v1/a", code, body, err)
	}
	// set releases a request that a delay rule holds.
	p.set(rule{mode: modeDelay, delay: time.Hour})
	held := make(chan string, 1)
	go func() {
		code, body, err := get("/v1/held", time.Minute)
		held <- fmt.Sprintf("%d %s %v", code, body, err)
	}()
	eventually(t, 10*time.Second, "the request is held", func() bool { return slices.Contains(p.seen(), "delay /v1/held") })
	p.set()
	if got := <-held; got != "200 upstream:/v1/held <nil>" {
		t.Errorf("held request after set: got %q, want 200 from upstream", got)
	}
	// A rule limited to a prefix leaves other paths alone.
	p.set(rule{prefix: "/v1/secret/data/x", mode: mode500})
	if code, _, _ := get("/v1/secret/data/x/y", 10*time.Second); code != 500 {
		t.Errorf("prefix rule, matching path: got %d, want 500", code)
	}
	if code, body, err := get("/v1/secret/data/z", 10*time.Second); err != nil || code != 200 || body != "upstream:/v1/secret/data/z" {
		t.Errorf("prefix rule, other path: got %d %q %v, want 200 from upstream", code, body, err)
	}
	// Truncate: the head says the whole length, half the body comes.
	p.set(rule{mode: modeTruncate})
	if code, body, err := get("/v1/abcdefgh", 10*time.Second); err == nil || (code == 200 && body == "upstream:/v1/abcdefgh") {
		t.Errorf("truncate: got %d %q %v, want a partial body and an error", code, body, err)
	}
	for _, m := range []mode{modePass, modeDelay, modeReset, mode500, mode503, modeDrop, modeTruncate} {
		if p.hit(m) == 0 {
			t.Errorf("mode %v: no request recorded", m)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return err != nil && (errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded))
}
