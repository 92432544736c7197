package hostile_test

// The admin API of `rotator run` under load and attack: 500 concurrent
// forced rotations, wrong tokens, oversized bodies, slow clients, unknown
// paths and methods, and the default bind address.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pushedCount is the number of PATCHes Hood answered 204 for id.
func (f *fixture) pushedCount(id string) int {
	n := 0
	for _, r := range f.requests("PATCH", id) {
		if r.Status == http.StatusNoContent {
			n++
		}
	}
	return n
}

// startAdmin starts a daemon over the given telegram integrations (name ->
// id) and waits until its start-up pass pushed them all.
func (f *fixture) startAdmin(c cfg, ints [][2]string) *daemon {
	f.t.Helper()
	for _, in := range ints {
		c.integrations += f.telegram(in[0], in[1])
	}
	c.admin = true
	d, out := f.startDaemon(f.config(c))
	if d == nil {
		f.t.Fatalf("rotator run exited before serving:\n%s", out)
	}
	eventually(f.t, "the start-up pass confirmed every integration", func() bool {
		st := d.status()
		if len(st) != len(ints) {
			return false
		}
		for _, s := range st {
			if s["last_result"] != "pushed" {
				return false
			}
		}
		return true
	})
	return d
}

func TestAdminConcurrentForcedRotate(t *testing.T) {
	t.Parallel()
	const callers = 500
	ints := [][2]string{{"a", "201"}, {"b", "202"}, {"c", "203"}}
	// A twin daemon that only makes its start-up pass gives the idle
	// goroutine count of this configuration (from a SIGQUIT dump).
	twin := newFixture(t)
	twin.env = []string{"GOTRACEBACK=all"}
	td := twin.startAdmin(cfg{timeout: "90s"}, ints)
	td.hc.CloseIdleConnections()
	idleDump := td.goroutineDump()

	f := newFixture(t)
	f.env = []string{"GOTRACEBACK=all"}
	d := f.startAdmin(cfg{timeout: "90s"}, ints)
	for _, in := range ints {
		if got := f.pushedCount(in[1]); got != 1 {
			t.Fatalf("start-up pass: PATCHes of %s: got %d, want 1", in[1], got)
		}
	}
	idleFDs, haveFDs := openFDs(d.cmd.Process.Pid)
	metrics := d.scrape()
	idleGoroutines, haveGoroutines := metricValue(metrics, "go_goroutines")

	// Slow pushes: Hood's credentials test (run inside the PATCH) waits until
	// every caller's request is on the wire, so all 500 overlap one pass.
	release := make(chan struct{})
	f.hood.SetVerifier(func(string, string, map[string]string) string {
		select {
		case <-release:
		case <-time.After(90 * time.Second):
		}
		return "active"
	})
	defer f.hood.SetVerifier(nil)

	var wrote atomic.Int64
	client := &http.Client{Timeout: 3 * time.Minute, Transport: &http.Transport{DisableKeepAlives: true, MaxIdleConnsPerHost: -1}}
	defer client.CloseIdleConnections()
	type answer struct {
		code int
		body []byte
		err  error
	}
	answers := make([]answer, callers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			<-start
			trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Add(1) }}
			ctx := httptrace.WithClientTrace(context.Background(), trace)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+d.addr+"/v1/rotate", nil)
			if err != nil {
				answers[i].err = err
				return
			}
			req.Header.Set("Authorization", "Bearer "+sentinel)
			resp, err := client.Do(req)
			if err != nil {
				answers[i].err = err
				return
			}
			defer resp.Body.Close()
			answers[i].code = resp.StatusCode
			answers[i].body, answers[i].err = io.ReadAll(resp.Body)
		})
	}
	close(start)
	eventually(t, "all 500 requests written", func() bool { return wrote.Load() == callers })
	time.Sleep(2 * time.Second) // let the server read what is on the wire (not an assertion)
	close(release)
	wg.Wait()

	passes := map[string]int{}
	codes := map[int]int{}
	for i, a := range answers {
		if a.err != nil {
			t.Errorf("caller %d: %v", i, a.err)
			continue
		}
		codes[a.code]++
		noLeak(t, "POST /v1/rotate answer", a.body)
		if a.code != http.StatusOK {
			continue
		}
		var rep struct {
			Started  string `json:"started"`
			Outcomes []struct {
				Name, Result, Reason string
			} `json:"outcomes"`
		}
		if err := json.Unmarshal(a.body, &rep); err != nil {
			t.Errorf("caller %d: answer is not JSON: %v", i, err)
			continue
		}
		passes[rep.Started]++
		if len(rep.Outcomes) != len(ints) {
			t.Errorf("caller %d: got %d outcomes, want %d", i, len(rep.Outcomes), len(ints))
		}
		// A request that arrived while the first forced pass ran waits for
		// the next pass (its reads must be newer than the request), which
		// does not push again what the first confirmed after it arrived.
		for _, o := range rep.Outcomes {
			if o.Result != "pushed" && (o.Result != "unchanged" || !strings.Contains(o.Reason, "after this request arrived")) {
				t.Errorf("caller %d: %s %s (%s), want pushed, or unchanged as pushed after the request arrived", i, o.Name, o.Result, o.Reason)
			}
		}
	}
	if codes[http.StatusOK] != callers {
		t.Errorf("answers: got %v, want %d × 200", codes, callers)
	}
	if len(passes) > 2 {
		t.Errorf("distinct passes reported to the callers: got %d, want at most 2 (the first forced pass, and the one every request that arrived during it shares)", len(passes))
	}
	for _, in := range ints {
		if got := f.pushedCount(in[1]); got != 2 {
			t.Errorf("PATCHes of %s: got %d, want 2 (start-up + one forced pass)", in[1], got)
		}
	}
	if got := f.hood.Throttled(); got != 0 {
		t.Errorf("requests over Hood's limits: got %d, want 0", got)
	}
	for _, s := range d.status() {
		if (s["last_result"] != "pushed" && s["last_result"] != "unchanged") || s["consecutive_failures"] != float64(0) {
			t.Errorf("status of %v: %v / %v failures, want pushed or unchanged / 0", s["name"], s["last_result"], s["consecutive_failures"])
		}
	}

	// Back to idle: no goroutine or connection is left behind.
	client.CloseIdleConnections()
	d.hc.CloseIdleConnections()
	if haveGoroutines {
		eventually(t, "go_goroutines back to its idle level", func() bool {
			v, _ := metricValue(d.scrape(), "go_goroutines")
			return v <= idleGoroutines+5
		})
	} else {
		t.Logf("go_goroutines is not exposed on /metrics (the daemon registers no Go collector): the /metrics check is skipped; goroutines are counted from a SIGQUIT dump and file descriptors from /proc instead")
	}
	if haveFDs {
		var now int
		eventually(t, fmt.Sprintf("open file descriptors back to the idle level (%d)", idleFDs), func() bool {
			now, _ = openFDs(d.cmd.Process.Pid)
			return now <= idleFDs+4
		})
		t.Logf("open file descriptors: %d idle before, %d after %d concurrent forced rotations", idleFDs, now, callers)
	}
	d.hc.CloseIdleConnections()
	after := d.goroutineDump()
	t.Logf("goroutines (SIGQUIT dump): %d in an idle twin daemon, %d in this one after %d concurrent forced rotations", idleDump, after, callers)
	if idleDump == 0 || after == 0 {
		t.Errorf("goroutine dumps: got %d and %d goroutines, want both listed", idleDump, after)
	} else if after > idleDump+10 {
		t.Errorf("goroutines after the burst: got %d, want about the idle level %d (a leak?)", after, idleDump)
	}
}

// metricValue returns the value of an unlabelled series in a scrape.
func metricValue(scrape, name string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(scrape))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, name+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v, true
			}
		}
	}
	return 0, false
}

// rawCall makes one admin request with a raw Authorization header value
// (none when auth is "").
func (d *daemon) rawCall(method, path, auth string) (int, http.Header) {
	d.t.Helper()
	req, err := http.NewRequest(method, "http://"+d.addr+path, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	noLeak(d.t, method+" "+path+" answer", b)
	return resp.StatusCode, resp.Header
}

func TestAdminAuth(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := f.startAdmin(cfg{}, [][2]string{{"tg", "211"}})
	before := f.count("", "")

	lastByte := sentinel[:len(sentinel)-1] + string(rune(sentinel[len(sentinel)-1]^1))
	headers := map[string]string{
		"missing":                "",
		"wrong":                  "Bearer not-the-admin-token",
		"last byte differs":      "Bearer " + lastByte,
		"one byte longer":        "Bearer " + sentinel + "x",
		"one byte shorter":       "Bearer " + sentinel[:len(sentinel)-1],
		"much longer":            "Bearer " + strings.Repeat(sentinel, 100),
		"empty bearer":           "Bearer ",
		"basic scheme":           "Basic " + sentinel,
		"no scheme":              sentinel,
		"upper-cased token":      "Bearer " + strings.ToUpper(sentinel),
		"token twice":            "Bearer " + sentinel + " " + sentinel,
		"case-folded first rune": "Bearer z" + sentinel[1:],
	}
	endpoints := [][2]string{
		{"GET", "/v1/status"}, {"POST", "/v1/rotate"}, {"POST", "/v1/rotate/tg"},
		{"POST", "/v1/rotate?dry_run=true"}, {"GET", "/v1/unknown"}, {"DELETE", "/v1/rotate"},
	}
	tried := 0
	for what, h := range headers {
		for _, ep := range endpoints {
			code, hdr := d.rawCall(ep[0], ep[1], h)
			tried++
			if code != http.StatusUnauthorized {
				t.Errorf("%s %s with %s token: got %d, want 401", ep[0], ep[1], what, code)
			}
			if got := hdr.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer") {
				t.Errorf("%s %s with %s token: WWW-Authenticate %q, want Bearer", ep[0], ep[1], what, got)
			}
		}
	}
	t.Logf("%d requests with a wrong or missing token, all refused", tried)
	if got := f.count("", ""); got != before {
		t.Errorf("Hood requests caused by refused admin requests: got %d, want 0", got-before)
	}
	if code, _ := d.call("GET", "/v1/status", sentinel, nil); code != http.StatusOK {
		t.Errorf("GET /v1/status with the token: got %d, want 200", code)
	}
	// The daemon logged the refusals without the tokens (checked at cleanup).
	logs := string(d.logs.Bytes())
	if n := countLogs(logs, "admin request", map[string]string{"status": "401"}); n < tried-len(endpoints) {
		t.Errorf("401 log lines: got %d, want at least %d", n, tried-len(endpoints))
	}
}

func TestAdminHostileRequests(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	d := f.startAdmin(cfg{}, [][2]string{{"tg", "221"}})
	before := f.count("", "")

	t.Run("oversized body", func(t *testing.T) {
		code, b := d.call("POST", "/v1/rotate", sentinel, bytes.NewReader(make([]byte, 64<<10+1)))
		if code != http.StatusRequestEntityTooLarge {
			t.Errorf("POST /v1/rotate with 64 KiB + 1: got %d %s, want 413", code, b)
		}
		// Chunked, no Content-Length: the same.
		code, b = d.call("POST", "/v1/rotate/tg", sentinel, io.MultiReader(io.LimitReader(zeros{}, 200<<10)))
		if code != http.StatusRequestEntityTooLarge {
			t.Errorf("POST /v1/rotate/tg with a 200 KiB chunked body: got %d %s, want 413", code, b)
		}
	})

	t.Run("unknown paths and methods", func(t *testing.T) {
		for _, c := range []struct {
			method, path, token string
			want                int
		}{
			{"GET", "/", "", 404},
			{"GET", "/nope", "", 404},
			{"GET", "/healthz/x", "", 404},
			{"GET", "/v1", "", 401},
			{"GET", "/v1/nope", "", 401},
			{"GET", "/v1/nope", sentinel, 404},
			{"GET", "/v2/rotate", sentinel, 404},
			{"POST", "/healthz", "", 405},
			{"DELETE", "/metrics", "", 405},
			{"PUT", "/readyz", "", 405},
			{"GET", "/v1/rotate", sentinel, 405},
			{"PUT", "/v1/status", sentinel, 405},
			{"PATCH", "/v1/rotate/tg", sentinel, 405},
			{"POST", "/v1/rotate/no-such-integration", sentinel, 404},
			{"POST", "/v1/rotate/tg/extra", sentinel, 404},
			{"POST", "/v1/rotate/%2e%2e", sentinel, 404},
			{"POST", "/v1/rotate/..%2Fstatus", sentinel, 404},
			{"POST", "/v1/rotate?dryrun=true", sentinel, 400},
			{"POST", "/v1/rotate?dry_run=yes", sentinel, 400},
			{"POST", "/v1/rotate?dry_run=true&dry_run=false", sentinel, 400},
			{"POST", "/v1/rotate?%zz", sentinel, 400},
		} {
			code, b := d.call(c.method, c.path, c.token, nil)
			if code != c.want {
				t.Errorf("%s %s (token %v): got %d %s, want %d", c.method, c.path, c.token != "", code, b, c.want)
			}
		}
	})

	t.Run("oversized header", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+d.addr+"/healthz", nil)
		req.Header.Set("X-Big", strings.Repeat("a", 200<<10))
		resp, err := d.hc.Do(req)
		if err != nil {
			return // the server may close the connection: refused either way
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("a 200 KiB header: got %d, want 431", resp.StatusCode)
		}
	})

	t.Run("slow clients: half a header, part of a body", func(t *testing.T) {
		const slow = 20
		conns := make([]net.Conn, slow)
		for i := range conns {
			c, err := net.Dial("tcp", d.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, "POST /v1/rotate HTTP/1.1\r\nHost: x\r\nAuthorization: Bear"); err != nil {
				t.Fatal(err)
			}
			conns[i] = c
		}
		// And clients that send a whole header with the token, then only
		// part of the body: the read timeout ends them, and no pass starts.
		const slowBody = 5
		bodyConns := make([]net.Conn, slowBody)
		for i := range bodyConns {
			c, err := net.Dial("tcp", d.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			req := "POST /v1/rotate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + sentinel + "\r\nContent-Length: 1000\r\n\r\n0123456789"
			if _, err := io.WriteString(c, req); err != nil {
				t.Fatal(err)
			}
			bodyConns[i] = c
		}
		// The server still serves others meanwhile.
		if code, _ := d.call("GET", "/healthz", "", nil); code != http.StatusOK {
			t.Errorf("GET /healthz while slow clients hold connections: got %d, want 200", code)
		}
		for i, c := range bodyConns {
			_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
			got, err := io.ReadAll(c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("slow body %d: the server kept the connection open for a minute; want it ended by the read timeout", i)
			}
			noLeak(t, "answer to a slow body", got)
			if len(got) > 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 4")) {
				t.Errorf("slow body %d: got %q, want nothing or a 4xx", i, redact(string(got)))
			}
		}
		for i, c := range conns {
			_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
			got, err := io.ReadAll(c)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("slow client %d: the server kept the connection open for a minute; want it closed by the read-header timeout", i)
			}
			// Closed: with nothing, or with a 4xx before closing.
			noLeak(t, "answer to a slow client", got)
			if len(got) > 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 4")) {
				t.Errorf("slow client %d: got %q before the close, want nothing or a 4xx", i, redact(string(got)))
			}
		}
	})

	if got := f.count("", ""); got != before {
		t.Errorf("Hood requests caused by refused admin requests: got %d, want 0", got-before)
	}
	if code, _ := d.call("GET", "/healthz", "", nil); code != http.StatusOK {
		t.Errorf("GET /healthz after the attack: got %d, want 200", code)
	}
	d.status()
	d.scrape()
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestAdminDefaultListenIsLoopback(t *testing.T) {
	t.Parallel()
	const def = "127.0.0.1:9464"
	ln, err := net.Listen("tcp", def)
	if err != nil {
		t.Skipf("port 9464 is taken on this host (%v): cannot check the default bind", err)
	}
	ln.Close()
	f := newFixture(t)
	c := f.config(cfg{integrations: f.telegram("tg", "231")}) // no admin block at all
	d, out := f.startDaemon(c)
	if d == nil {
		if bytes.Contains(out, []byte("address already in use")) {
			t.Skipf("port 9464 was taken before rotator could bind it")
		}
		t.Fatalf("rotator run exited before serving:\n%s", out)
	}
	if d.addr != def {
		t.Fatalf(`"rotator started" admin_listen: got %q, want %q`, d.addr, def)
	}
	if code, _ := d.call("GET", "/healthz", "", nil); code != http.StatusOK {
		t.Errorf("GET /healthz on %s: got %d, want 200", def, code)
	}
	// Without a token file /v1/* is closed to everyone.
	if code, _ := d.call("POST", "/v1/rotate", sentinel, nil); code != http.StatusForbidden {
		t.Errorf("POST /v1/rotate without a token file configured: got %d, want 403", code)
	}
	// Not reachable on the host's other addresses.
	addrs, _ := net.InterfaceAddrs()
	checked := 0
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		target := net.JoinHostPort(ipn.IP.String(), "9464")
		conn, err := net.DialTimeout("tcp", target, 5*time.Second)
		if err == nil {
			conn.Close()
			t.Errorf("the admin API answers on %s, want loopback only", target)
		}
		checked++
	}
	if checked == 0 {
		t.Logf("the host has no non-loopback address: only the logged address was checked")
	}
}

// Callers that give up while their forced pass runs: the pass still
// finishes once, nothing is pushed twice, and the connections are freed.
func TestAdminCallersGoAway(t *testing.T) {
	t.Parallel()
	const callers = 100
	f := newFixture(t)
	ints := [][2]string{{"a", "241"}, {"b", "242"}}
	d := f.startAdmin(cfg{timeout: "90s"}, ints)
	idleFDs, haveFDs := openFDs(d.cmd.Process.Pid)

	release := make(chan struct{})
	f.hood.SetVerifier(func(string, string, map[string]string) string {
		select {
		case <-release:
		case <-time.After(90 * time.Second):
		}
		return "active"
	})
	defer f.hood.SetVerifier(nil)

	var wrote atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var wg sync.WaitGroup
	var gone atomic.Int64
	for range callers {
		wg.Go(func() {
			trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Add(1) }}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost, "http://"+d.addr+"/v1/rotate", nil)
			req.Header.Set("Authorization", "Bearer "+sentinel)
			resp, err := client.Do(req)
			if err != nil {
				gone.Add(1)
				return
			}
			resp.Body.Close()
		})
	}
	eventually(t, "all requests written", func() bool { return wrote.Load() == callers })
	time.Sleep(time.Second) // let the server read them (not an assertion)
	cancel()
	wg.Wait()
	if gone.Load() != callers {
		t.Fatalf("callers that gave up: got %d, want %d (the pass must not finish before the gate opens)", gone.Load(), callers)
	}
	close(release)
	eventually(t, "the abandoned forced pass pushed each integration once", func() bool {
		return f.pushedCount("241") == 2 && f.pushedCount("242") == 2
	})
	// The requests that arrived during that pass waited for the next one,
	// which finds their settings pushed after they arrived: unchanged.
	eventually(t, "the pass is recorded", func() bool {
		for _, s := range d.status() {
			if s["last_result"] != "pushed" && s["last_result"] != "unchanged" {
				return false
			}
		}
		return true
	})
	if haveFDs {
		eventually(t, fmt.Sprintf("open file descriptors back to the idle level (%d)", idleFDs), func() bool {
			now, _ := openFDs(d.cmd.Process.Pid)
			return now <= idleFDs+4
		})
	}
	// The daemon goes on serving: one more forced pass, one more push each.
	code, _ := d.call("POST", "/v1/rotate", sentinel, nil)
	if code != http.StatusOK {
		t.Fatalf("POST /v1/rotate after the callers left: got %d, want 200", code)
	}
	for _, id := range []string{"241", "242"} {
		if got := f.pushedCount(id); got != 3 {
			t.Errorf("PATCHes of %s: got %d, want 3 (start-up, the abandoned pass, the last one)", id, got)
		}
	}
	if n := countLogs(string(d.logs.Bytes()), "admin client went away before the pass finished", nil); n != callers {
		t.Logf("log lines about callers that went away: %d of %d", n, callers)
	}
}

// A mix of forced requests (every integration, single ones, dry runs)
// overlapping one slow pass: whatever pass starts first, the others wait and
// do not repeat a push confirmed after they arrived, so each integration
// is pushed exactly once more.
func TestAdminConcurrentMixedRequests(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ints := [][2]string{{"a", "251"}, {"b", "252"}, {"c", "253"}}
	d := f.startAdmin(cfg{timeout: "90s"}, ints)

	release := make(chan struct{})
	f.hood.SetVerifier(func(string, string, map[string]string) string {
		select {
		case <-release:
		case <-time.After(90 * time.Second):
		}
		return "active"
	})
	defer f.hood.SetVerifier(nil)

	paths := map[string]int{"/v1/rotate": 100, "/v1/rotate/a": 100, "/v1/rotate/b": 50, "/v1/rotate?dry_run=true": 50, "/v1/rotate/c?dry_run=true": 20}
	total := 0
	for _, n := range paths {
		total += n
	}
	var wrote atomic.Int64
	client := &http.Client{Timeout: 3 * time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
	var mu sync.Mutex
	codes := map[string]map[int]int{}
	for path := range paths {
		codes[path] = map[int]int{}
	}
	var wg sync.WaitGroup
	for path, n := range paths {
		for range n {
			wg.Go(func() {
				trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Add(1) }}
				req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodPost, "http://"+d.addr+path, nil)
				req.Header.Set("Authorization", "Bearer "+sentinel)
				code := -1
				if resp, err := client.Do(req); err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					noLeak(t, "POST "+path+" answer", b)
					code = resp.StatusCode
				}
				mu.Lock()
				codes[path][code]++
				mu.Unlock()
			})
		}
	}
	eventually(t, "all requests written", func() bool { return wrote.Load() == int64(total) })
	time.Sleep(2 * time.Second) // let the server read them (not an assertion)
	close(release)
	wg.Wait()
	for path, n := range paths {
		if codes[path][http.StatusOK] != n {
			t.Errorf("POST %s: answers %v, want %d × 200", path, codes[path], n)
		}
	}
	for _, in := range ints {
		if got := f.pushedCount(in[1]); got != 2 {
			t.Errorf("PATCHes of %s: got %d, want 2 (start-up + exactly one for %d overlapping forced requests)", in[0], got, total)
		}
	}
}
