// Package hostile_test is part B of the reliability suite: Hood faults, the
// admin API under load and attack, bad input and secret hygiene. Every test
// drives the real rotator binary (built once by TestMain) against a real
// OpenBao server and the Hood test server, over loopback only.
//
// One sentinel value is every secret: each Vault value, the Vault token, the
// Hood API token and the admin token contain it. The helpers check every
// byte rotator writes (stdout, stderr, log lines, admin answers, /metrics,
// the state file and the audit log) for it.
package hostile_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/ocamba-rotator/rotator/internal/audit"
	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
	"github.com/ocamba-rotator/rotator/internal/state"
	"github.com/ocamba-rotator/rotator/internal/testkit"
	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

// sentinel is the one secret value of the suite. No byte rotator writes may
// contain it (nor its base64 or hex forms).
const sentinel = "Zq7Xv-SNTL-9KpW2mRt-n3v3r-4d1f8b"

var (
	rotatorBin string // the binary under test
	vaultSrv   *vaulttest.Server
	// vaultTokenFile holds a Vault token whose id is the sentinel.
	vaultTokenFile string
)

func TestMain(m *testing.M) {
	os.Exit(vaulttest.ForMain(m, func(s *vaulttest.Server) int {
		dir, err := os.MkdirTemp("", "rotator-hostile-*")
		if err != nil {
			fmt.Fprintln(os.Stderr, "hostile:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		if err := buildRotator(dir); err != nil {
			fmt.Fprintln(os.Stderr, "hostile: build rotator:", err)
			return 1
		}
		if s != nil {
			vaultSrv = s
			if err := prepareVault(s, dir); err != nil {
				fmt.Fprintln(os.Stderr, "hostile: prepare vault:", err)
				return 1
			}
		}
		code := m.Run()
		if testing.Verbose() {
			fmt.Printf("hostile: %d outputs, answers and files checked for the sentinel secret\n", leakChecks.Load())
		}
		return code
	}))
}

// buildRotator builds ./cmd/rotator once for the package (with the race
// detector when the tests have it, so a race in the daemon fails the run).
func buildRotator(dir string) error {
	var flags []string
	if raceEnabled {
		flags = append(flags, "-race")
	}
	bin, err := testkit.BuildRotator(dir, flags...)
	rotatorBin = bin
	return err
}

// prepareVault mounts KV v1 at kv1/ and creates a Vault token whose id is
// the sentinel, so that the Vault token is a watched secret too.
func prepareVault(s *vaulttest.Server, dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.EnableKV(ctx, "kv1", 1); err != nil {
		return err
	}
	if _, err := s.CreateTokenWith(ctx, &api.TokenCreateRequest{
		ID: sentinel, Policies: []string{"root"}, NoParent: true, TTL: "24h",
	}); err != nil {
		return err
	}
	vaultTokenFile = filepath.Join(dir, "vault-token")
	return os.WriteFile(vaultTokenFile, []byte(sentinel+"\n"), 0o600)
}

// ---------------------------------------------------------------------------
// Secret hygiene.

// leakForms are the sentinel and encodings of it that must not appear.
var leakForms = func() map[string][]byte {
	s := []byte(sentinel)
	forms := map[string][]byte{
		"plain":        s,
		"base64":       []byte(base64.StdEncoding.EncodeToString(s)),
		"base64 (raw)": []byte(base64.RawStdEncoding.EncodeToString(s)),
		"base64 (url)": []byte(base64.RawURLEncoding.EncodeToString(s)),
		"hex":          []byte(hex.EncodeToString(s)),
		"hex (upper)":  []byte(strings.ToUpper(hex.EncodeToString(s))),
		"lower-case":   []byte(strings.ToLower(sentinel)),
		"first 12":     s[:12],
		"last 12":      s[len(s)-12:],
	}
	// base64 of the sentinel inside a longer value, at each of the three
	// alignments: the characters that encode its bytes only.
	for p := range 3 {
		enc := base64.StdEncoding.EncodeToString(append(make([]byte, p), s...))
		forms[fmt.Sprintf("base64 at offset %d", p)] = []byte(enc[4 : len(enc)-4])
	}
	return forms
}()

// leakChecks counts the byte streams checked, for the report.
var leakChecks atomic.Int64

// noLeak fails the test when b contains the sentinel in any form. It never
// prints b.
func noLeak(t testing.TB, what string, b []byte) {
	t.Helper()
	leakChecks.Add(1)
	for form, needle := range leakForms {
		if bytes.Contains(b, needle) {
			t.Errorf("SECRET LEAK: %s contains the sentinel secret (%s form)", what, form)
		}
	}
}

// redact replaces every form of the sentinel in s, so that a failure
// message never prints a leaked secret (noLeak has already reported it).
func redact(s string) string {
	forms := make([]string, 0, len(leakForms))
	for _, needle := range leakForms {
		forms = append(forms, string(needle))
	}
	sort.Slice(forms, func(i, j int) bool { return len(forms[i]) > len(forms[j]) })
	for _, needle := range forms {
		s = strings.ReplaceAll(s, needle, "[SENTINEL]")
	}
	return s
}

// ---------------------------------------------------------------------------
// Fixture: one test's Hood test server, Vault prefix, files and config.

var seq atomic.Int64

type fixture struct {
	t      *testing.T
	dir    string
	prefix string // unique Vault path prefix
	hood   *hoodtest.Server
	env    []string // more environment for rotator processes
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	vaulttest.Require(t, vaultSrv)
	f := &fixture{t: t, dir: t.TempDir(), prefix: fmt.Sprintf("hostile%d", seq.Add(1))}
	h, err := hoodtest.Start(hoodtest.Options{Tokens: []string{sentinel}})
	if err != nil {
		t.Fatalf("start hood test server: %v", err)
	}
	f.hood = h
	f.put("secret", "hood", map[string]any{"token": sentinel})
	// Runs last (cleanups are LIFO): after every process of the test ended.
	t.Cleanup(func() {
		h.ClearFaults()
		_ = h.Close()
		for _, name := range []string{"state.db", "audit.log"} {
			b, err := os.ReadFile(filepath.Join(f.dir, name))
			if err == nil {
				noLeak(t, name+" bytes", b)
			}
		}
	})
	return f
}

// put writes a secret under the fixture's prefix; returns its KV version.
func (f *fixture) put(mount, path string, data map[string]any) int {
	f.t.Helper()
	v, err := vaultSrv.PutKV(context.Background(), mount, f.prefix+"/"+path, data)
	if err != nil {
		f.t.Fatalf("put %s/%s: %v", mount, path, err)
	}
	return v
}

// addHood adds integrations to the Hood test server: id -> provider.
func (f *fixture) addHood(ids map[string]string) {
	f.t.Helper()
	for id, p := range ids {
		if err := f.hood.AddIntegration(id, p, nil); err != nil {
			f.t.Fatal(err)
		}
	}
}

// cfg says what differs from the default configuration.
type cfg struct {
	timeout       string // hood.timeout; default 2s
	maxAttempts   int    // hood.retry.max_attempts; default 4
	verifyTimeout string // default 2s
	// admin: write an admin block listening on 127.0.0.1:0 with a token
	// file holding the sentinel.
	admin bool
	extra string // more top-level YAML
	// vaultAddr replaces the package's Vault server; vaultCA is
	// vault.ca_cert (none when empty).
	vaultAddr, vaultCA string
	vaultSkipVerify    bool   // vault.tls_skip_verify: true
	hoodURL            string // hood.base_url; default the fixture's Hood test server
	// integrations is a YAML list (lines indented by two spaces); {P} is
	// the fixture's Vault prefix.
	integrations string
}

func (f *fixture) statePath() string { return filepath.Join(f.dir, "state.db") }
func (f *fixture) auditPath() string { return filepath.Join(f.dir, "audit.log") }

// config writes the configuration file and returns its path.
func (f *fixture) config(c cfg) string {
	f.t.Helper()
	if c.timeout == "" {
		c.timeout = "2s"
	}
	if c.maxAttempts == 0 {
		c.maxAttempts = 4
	}
	if c.verifyTimeout == "" {
		c.verifyTimeout = "2s"
	}
	if c.hoodURL == "" {
		c.hoodURL = f.hood.URL()
	}
	if c.vaultAddr == "" {
		c.vaultAddr = vaultSrv.Addr
	}
	ca := ""
	if c.vaultCA != "" {
		ca = "\n  ca_cert: " + c.vaultCA
	}
	if c.vaultSkipVerify {
		ca += "\n  tls_skip_verify: true"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `vault:
  address: %s%s
  auth:
    method: token
    token_file: %s
hood:
  base_url: %s
  allow_insecure_http: true
  token:
    vault: {mount: secret, path: {P}/hood, key: token}
  timeout: %s
  retry: {max_attempts: %d, initial_backoff: 50ms, max_backoff: 2s}
  verify_timeout: %s
schedule: "@every 24h"
state:
  path: %s
audit:
  path: %s
`, c.vaultAddr, ca, vaultTokenFile, c.hoodURL, c.timeout, c.maxAttempts, c.verifyTimeout, f.statePath(), f.auditPath())
	if c.admin {
		tok := filepath.Join(f.dir, "admin-token")
		if err := os.WriteFile(tok, []byte(sentinel+"\n"), 0o600); err != nil {
			f.t.Fatal(err)
		}
		fmt.Fprintf(&b, "admin:\n  listen: 127.0.0.1:0\n  token_file: %s\n", tok)
	}
	if c.extra != "" {
		b.WriteString(c.extra + "\n")
	}
	b.WriteString("integrations:\n" + c.integrations)
	body := strings.ReplaceAll(b.String(), "{P}", f.prefix)
	path := filepath.Join(f.dir, "config.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return path
}

// ---------------------------------------------------------------------------
// Running the binary.

type result struct {
	code           int
	stdout, stderr string
}

// childEnv is the whole environment of a rotator process: nothing of the
// test's own (no VAULT_* variable leaks in).
func childEnv(dir string, extra ...string) []string {
	return append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + dir}, extra...)
}

// run runs the binary to completion (bounded by two minutes) and checks
// its output for the sentinel.
func run(t testing.TB, dir string, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rotatorBin, args...)
	cmd.Env = childEnv(dir, env...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	noLeak(t, "stdout of rotator "+args[0], out.Bytes())
	noLeak(t, "stderr of rotator "+args[0], errb.Bytes())
	r := result{code: cmd.ProcessState.ExitCode(), stdout: redact(out.String()), stderr: redact(errb.String())}
	if err != nil && r.code < 0 {
		t.Fatalf("rotator %s: %v (did not finish within two minutes?)", args[0], err)
	}
	if strings.Contains(r.stderr, "WARNING: DATA RACE") {
		t.Errorf("rotator %s: the race detector reported a data race:\n%s", args[0], r.stderr)
	}
	return r
}

func (f *fixture) run(args ...string) result {
	f.t.Helper()
	return run(f.t, f.dir, f.env, args...)
}

// once runs `rotator once --config cfg` plus args, with JSON logs at debug
// level (the most verbose output, all of it checked).
func (f *fixture) once(cfgPath string, args ...string) result {
	f.t.Helper()
	return f.run(append([]string{"once", "--config", cfgPath, "--log-format", "json", "--log-level", "debug"}, args...)...)
}

func (f *fixture) plan(cfgPath string) result {
	f.t.Helper()
	return f.run("plan", "--config", cfgPath, "--log-format", "json", "--log-level", "debug")
}

// summaryLine returns the summary line of an integration from `once`/`plan`.
func summaryLine(stdout, name string) string {
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 0 && fields[0] == name {
			return sc.Text()
		}
	}
	return ""
}

// wantLine fails unless the summary line of name contains every want.
func wantLine(t testing.TB, r result, name string, want ...string) {
	t.Helper()
	line := summaryLine(r.stdout, name)
	for _, w := range want {
		if !strings.Contains(line, w) {
			t.Errorf("summary of %s: got %q, want it to contain %q", name, line, w)
		}
	}
}

// ---------------------------------------------------------------------------
// Reading Hood's record, the audit log and the state file.

// requests returns Hood's recorded requests of one method and id ("" = any).
func (f *fixture) requests(method, id string) []hoodtest.Request {
	var out []hoodtest.Request
	for _, r := range f.hood.Requests() {
		if (method == "" || r.Method == method) && (id == "" || r.ID == id) {
			out = append(out, r)
		}
	}
	return out
}

// count counts the requests Hood admitted. The 429s of its own rate limit
// are left out: each `rotator once` is a new process with a new client-side
// limiter, so passes run back to back by a test may meet Hood's window (and
// retry, as they should).
func (f *fixture) count(method, id string) int {
	n := 0
	for _, r := range f.requests(method, id) {
		if !throttled(r) {
			n++
		}
	}
	return n
}

// throttled reports whether Hood's rate limit (not an injected fault)
// answered the request.
func throttled(r hoodtest.Request) bool { return r.Status == 429 && r.Fault == "" }

func statuses(rs []hoodtest.Request) []int {
	out := make([]int, len(rs))
	for i, r := range rs {
		out[i] = r.Status
	}
	return out
}

// auditEvents returns "event:result" of each audit record of an integration.
func (f *fixture) auditEvents(name string) []string {
	f.t.Helper()
	b, err := os.ReadFile(f.auditPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		f.t.Fatal(err)
	}
	noLeak(f.t, "audit log", b)
	var out []string
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r audit.Record
		if err := json.Unmarshal(line, &r); err != nil {
			f.t.Fatalf("audit log: a line is not JSON: %v", err)
		}
		if r.Integration == name {
			out = append(out, r.Event+":"+r.Result)
		}
	}
	return out
}

// record reads one integration's state record; only while no rotator
// process holds the file.
func (f *fixture) record(name string) state.Record {
	f.t.Helper()
	b, err := os.ReadFile(f.statePath())
	if err != nil {
		f.t.Fatalf("read state file: %v", err)
	}
	noLeak(f.t, "state file", b)
	st, err := state.Open(f.statePath())
	if err != nil {
		f.t.Fatalf("open state: %v", err)
	}
	defer st.Close()
	r, _, err := st.Get(name)
	if err != nil {
		f.t.Fatal(err)
	}
	for i := range r.History {
		r.History[i].Error = redact(r.History[i].Error)
	}
	return r
}

// lastAttempt returns the result of the newest attempt in a record.
func lastAttempt(r state.Record) state.Attempt {
	if len(r.History) == 0 {
		return state.Attempt{}
	}
	return r.History[len(r.History)-1]
}

// logLines decodes the JSON log lines of an output (others are skipped).
func logLines(out string) []map[string]any {
	var lines []map[string]any
	for _, l := range strings.Split(out, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m != nil {
			lines = append(lines, m)
		}
	}
	return lines
}

// countLogs counts the log lines with message msg whose attributes have
// the given string values.
func countLogs(out, msg string, attrs map[string]string) int {
	n := 0
next:
	for _, m := range logLines(out) {
		if m["msg"] != msg {
			continue
		}
		for k, v := range attrs {
			if fmt.Sprint(m[k]) != v {
				continue next
			}
		}
		n++
	}
	return n
}

// ---------------------------------------------------------------------------
// The daemon.

type daemon struct {
	dumped atomic.Bool // ended by goroutineDump (SIGQUIT): exit code 2 expected
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	logs   *syncBuffer
	done   chan struct{}
	hc     *http.Client
}

type syncBuffer = testkit.SyncBuffer

// startedLine is the JSON log line that carries the admin address.
type startedLine struct {
	Msg   string `json:"msg"`
	Admin string `json:"admin_listen"`
}

// startDaemon starts `rotator run` and waits for its "rotator started" log
// line; the test's cleanup stops it with SIGTERM and checks its output. It
// returns nil and the output when the process exits before starting.
func (f *fixture) startDaemon(cfgPath string) (*daemon, []byte) {
	f.t.Helper()
	d := &daemon{t: f.t, logs: &syncBuffer{}, done: make(chan struct{}),
		hc: &http.Client{Timeout: 2 * time.Minute}}
	d.cmd = exec.Command(rotatorBin, "run", "--config", cfgPath, "--log-format", "json", "--log-level", "debug", "--shutdown-timeout", "20s")
	d.cmd.Env = childEnv(f.dir, f.env...)
	d.cmd.Dir = f.dir
	d.cmd.Stdout = d.logs
	pr, pw := io.Pipe()
	d.cmd.Stderr = pw
	if err := d.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	addrCh := make(chan string, 1)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		sent := false
		for sc.Scan() {
			line := sc.Bytes()
			_, _ = d.logs.Write(append(bytes.Clone(line), '\n'))
			var l startedLine
			if !sent && json.Unmarshal(line, &l) == nil && l.Msg == "rotator started" {
				addrCh <- l.Admin
				sent = true
			}
		}
		_, _ = io.Copy(d.logs, pr)
	}()
	go func() {
		_ = d.cmd.Wait()
		_ = pw.Close()
		<-scanned // every line is in d.logs before done closes
		close(d.done)
	}()
	select {
	case d.addr = <-addrCh:
	case <-d.done:
		logs := d.logs.Bytes()
		noLeak(f.t, "rotator run's log (stdout and stderr)", logs)
		return nil, []byte(redact(string(logs)))
	case <-time.After(60 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
		f.t.Fatalf("rotator run did not log \"rotator started\" within a minute")
	}
	f.t.Cleanup(func() {
		if code := d.stop(); code != 0 && !d.dumped.Load() {
			f.t.Errorf("rotator run: exit code after SIGTERM: got %d, want 0", code)
		}
		logs := d.logs.Bytes()
		noLeak(f.t, "rotator run's log (stdout and stderr)", logs)
		if bytes.Contains(logs, []byte("WARNING: DATA RACE")) {
			f.t.Errorf("rotator run: the race detector reported a data race:\n%s", redact(string(logs)))
		}
	})
	return d, nil
}

// stop sends SIGTERM (once) and waits for the exit code.
func (d *daemon) stop() int {
	select {
	case <-d.done:
	default:
		_ = d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(90 * time.Second):
			_ = d.cmd.Process.Kill()
			<-d.done
			d.t.Errorf("rotator run did not exit within 90s of SIGTERM; killed")
		}
	}
	d.hc.CloseIdleConnections()
	return d.cmd.ProcessState.ExitCode()
}

// goroutineDump ends the process with SIGQUIT and returns how many
// goroutines the Go runtime listed in its dump (GOTRACEBACK=all).
func (d *daemon) goroutineDump() int {
	d.t.Helper()
	skip := len(d.logs.Bytes())
	d.dumped.Store(true)
	_ = d.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-d.done:
	case <-time.After(60 * time.Second):
		d.t.Fatalf("rotator run did not exit on SIGQUIT")
	}
	dump := string(d.logs.Bytes()[skip:])
	return len(goroutineHeader.FindAllStringIndex(dump, -1))
}

var goroutineHeader = regexp.MustCompile(`(?m)^goroutine [1-9]\d* [^\n]*\[`)

// call makes one admin API request; token "" sends no Authorization header.
// The answer is checked for the sentinel.
func (d *daemon) call(method, path, token string, body io.Reader) (int, []byte) {
	d.t.Helper()
	req, err := http.NewRequest(method, "http://"+d.addr+path, body)
	if err != nil {
		d.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := d.hc.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	noLeak(d.t, method+" "+path+" answer", b)
	for k, vs := range resp.Header {
		noLeak(d.t, method+" "+path+" answer header "+k, []byte(strings.Join(vs, ",")))
	}
	return resp.StatusCode, []byte(redact(string(b)))
}

// scrape returns /metrics, checked for the sentinel.
func (d *daemon) scrape() string {
	d.t.Helper()
	code, b := d.call("GET", "/metrics", "", nil)
	if code != http.StatusOK {
		d.t.Fatalf("GET /metrics: got %d, want 200", code)
	}
	return string(b)
}

// status returns /v1/status, checked for the sentinel.
func (d *daemon) status() []map[string]any {
	d.t.Helper()
	code, b := d.call("GET", "/v1/status", sentinel, nil)
	if code != http.StatusOK {
		d.t.Fatalf("GET /v1/status: got %d, want 200", code)
	}
	var out []map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		d.t.Fatalf("GET /v1/status: %v", err)
	}
	return out
}

// eventually polls cond until it holds; the deadline is generous and only
// bounds a hang.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not true after a minute: %s", what)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// openFDs is the number of open file descriptors of a process (Linux).
func openFDs(pid int) (int, bool) {
	if runtime.GOOS != "linux" {
		return 0, false
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, false
	}
	return len(ents), true
}
