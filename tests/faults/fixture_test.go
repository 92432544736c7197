package faults_test

// The world of one test: a Vault path prefix, a Hood test server, a
// configuration file, and rotator run as a real process (`once` to
// completion, or `run` as a daemon driven through its admin API).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
	"github.com/ocamba-rotator/rotator/internal/testkit"
	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

// sentinel is part of every secret value and credential the tests plant:
// it must never appear in rotator's output, logs, state file or audit log.
const sentinel = "SENTINEL-faults-7c2b-never-print"

var seq atomic.Int64

// integ is one configured integration.
type integ struct {
	name, id, provider, path string // path: relative to the fixture's prefix
	// extra: more entries of the integration's YAML flow mapping (e.g.
	// `fields: {api_key: auth_token}, on_verify_failure: rollback`); "" for none.
	extra string
}

type fixture struct {
	t         *testing.T
	vs        *vaulttest.Server
	prefix    string
	dir       string
	hood      *hoodtest.Server
	hoodURL   string // where rotator reaches Hood; default hood.URL()
	hoodToken string
	integs    []integ

	mu      sync.Mutex
	creds   []string // Vault credentials handed to rotator: never printed either
	writes  int
	current map[string]map[string]string   // path -> data last written
	written map[string][]map[string]string // path -> every data written (or tried)
}

// newFixture makes a fixture on vs with a fresh Hood test server (no rate
// limits: the kill loop sends many requests) holding no integration yet.
func newFixture(t *testing.T, vs *vaulttest.Server) *fixture {
	t.Helper()
	h, err := hoodtest.Start(hoodtest.Options{Tokens: []string{"hood-" + sentinel}, Burst: -1, PerMinute: -1})
	if err != nil {
		t.Fatalf("start hood test server: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return newFixtureWith(t, vs, h, h.URL())
}

// newFixtureWith is newFixture with a Hood test server of the caller's,
// served at hoodURL.
func newFixtureWith(t *testing.T, vs *vaulttest.Server, h *hoodtest.Server, hoodURL string) *fixture {
	t.Helper()
	f := &fixture{
		hoodURL:   hoodURL,
		t:         t,
		vs:        vs,
		prefix:    fmt.Sprintf("faults%d", seq.Add(1)),
		dir:       t.TempDir(),
		hood:      h,
		hoodToken: "hood-" + sentinel,
		current:   map[string]map[string]string{},
		written:   map[string][]map[string]string{},
	}
	// The root token, for the token method unless a test writes another.
	f.writeCred("vault-token", vs.RootToken)
	f.writeFile("admin-token", "admin-"+sentinel)
	if _, err := vs.PutKV(context.Background(), "secret", f.prefix+"/hood", map[string]any{"token": f.hoodToken}); err != nil {
		t.Fatalf("put the hood token: %v", err)
	}
	return f
}

// writeFile writes a file of the fixture atomically (rotator never reads
// half of it).
func (f *fixture) writeFile(name, content string) string {
	f.t.Helper()
	p := filepath.Join(f.dir, name)
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(content+"\n"), 0o600); err != nil {
		f.t.Fatal(err)
	}
	if err := os.Rename(tmp, p); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// writeCred writes a Vault credential (a token, a secret id) to a file for
// rotator; it must never appear in rotator's output or files.
func (f *fixture) writeCred(name, cred string) string {
	f.mu.Lock()
	f.creds = append(f.creds, cred)
	f.mu.Unlock()
	return f.writeFile(name, cred)
}

func (f *fixture) path(name string) string { return filepath.Join(f.dir, name) }

// add configures telegram integrations: name, id and Vault path (relative
// to the prefix) each, and adds them to Hood. The paths get a first value.
func (f *fixture) add(specs ...[3]string) {
	f.t.Helper()
	for _, s := range specs {
		in := integ{name: s[0], id: s[1], provider: "telegram", path: s[2]}
		if err := f.hood.AddIntegration(in.id, in.provider, nil); err != nil {
			f.t.Fatal(err)
		}
		f.integs = append(f.integs, in)
		f.mu.Lock()
		_, ok := f.current[in.path]
		f.mu.Unlock()
		if !ok {
			f.mustRotate(in.path)
		}
	}
}

// rotate writes a new value at path (relative to the prefix) and returns its
// KV version. The value is recorded as written before the write is tried, so
// that a write that fails on the client's side but landed in Vault is known.
func (f *fixture) rotate(path string) (int, error) {
	f.mu.Lock()
	f.writes++
	data := map[string]string{
		"auth_token": fmt.Sprintf("%s-%s-%s-w%d", sentinel, f.prefix, path, f.writes),
		"chat_id":    "-100" + path,
	}
	f.written[path] = append(f.written[path], data)
	f.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := f.vs.PutKV(ctx, "secret", f.prefix+"/"+path, map[string]any{"auth_token": data["auth_token"], "chat_id": data["chat_id"]})
	if err != nil {
		return 0, err
	}
	f.mu.Lock()
	f.current[path] = data
	f.mu.Unlock()
	return v, nil
}

// mustRotate is rotate that fails the test on an error.
func (f *fixture) mustRotate(paths ...string) {
	f.t.Helper()
	for _, p := range paths {
		if _, err := f.rotate(p); err != nil {
			f.t.Fatalf("put a new value at %s: %v", p, err)
		}
	}
}

// want returns the settings that integration in must hold: its path's last value.
func (f *fixture) want(in integ) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.current[in.path])
}

func (f *fixture) byName(name string) integ {
	f.t.Helper()
	for _, in := range f.integs {
		if in.name == name {
			return in
		}
	}
	f.t.Fatalf("no integration %q", name)
	return integ{}
}

// cfg says how to write a configuration file.
type cfg struct {
	vaultAddr     string // default: the fixture's Vault
	auth          string // the auth block's lines; default: token method with vault-token
	hoodFromVault bool   // the Hood token from Vault (default: $HOOD_TOKEN)
	schedule      string // default "@every 1h"
	maxInFlight   int    // default 4

	// Additions of the HA tests (ha_test.go); the zero values keep the
	// configuration the other tests use.
	file          string // config file name; default "config.yaml"
	hoodURL       string // default the fixture's hoodURL
	hoodTimeout   string // hood.timeout; default "5s"
	verifyTimeout string // hood.verify_timeout; default "3s"
	statePath     string // state.path; default state.db in the fixture's directory
	auditPath     string // audit.path; default audit.log in the fixture's directory
	extra         string // top-level YAML appended before integrations (e.g. an ha: section)
	vaultTimeout  string // vault.timeout; default: not set (the client's default)
	rateLimit     string // hood.rate_limit as a YAML flow mapping; default far above what the tests send
}

// config writes config.yaml and returns its path.
func (f *fixture) config(c cfg) string {
	f.t.Helper()
	if c.vaultAddr == "" {
		c.vaultAddr = f.vs.Addr
	}
	if c.auth == "" {
		c.auth = "method: token\n    token_file: " + f.path("vault-token")
	}
	token := "env: HOOD_TOKEN"
	if c.hoodFromVault {
		token = fmt.Sprintf("vault: {mount: secret, path: %s/hood, key: token}", f.prefix)
	}
	if c.schedule == "" {
		c.schedule = "@every 1h"
	}
	if c.maxInFlight == 0 {
		c.maxInFlight = 4
	}
	if c.file == "" {
		c.file = "config.yaml"
	}
	if c.hoodURL == "" {
		c.hoodURL = f.hoodURL
	}
	if c.hoodTimeout == "" {
		c.hoodTimeout = "5s"
	}
	if c.verifyTimeout == "" {
		c.verifyTimeout = "3s"
	}
	if c.statePath == "" {
		c.statePath = f.path("state.db")
	}
	if c.auditPath == "" {
		c.auditPath = f.path("audit.log")
	}
	if c.rateLimit == "" {
		c.rateLimit = "{burst: 1000, per_minute: 100000}"
	}
	vaultTimeout := ""
	if c.vaultTimeout != "" {
		vaultTimeout = "\n  timeout: " + c.vaultTimeout
	}
	var b strings.Builder
	fmt.Fprintf(&b, `vault:
  address: %s%s
  auth:
    %s
hood:
  base_url: %s
  allow_insecure_http: true
  token:
    %s
  timeout: %s
  rate_limit: %s
  retry: {max_attempts: 2, initial_backoff: 50ms, max_backoff: 200ms}
  max_in_flight: %d
  verify_timeout: %s
schedule: %q
admin:
  listen: 127.0.0.1:0
  token_file: %s
state:
  path: %s
audit:
  path: %s
%sintegrations:
`, c.vaultAddr, vaultTimeout, c.auth, c.hoodURL, token, c.hoodTimeout, c.rateLimit, c.maxInFlight, c.verifyTimeout, c.schedule, f.path("admin-token"), c.statePath, c.auditPath, c.extra)
	for _, in := range f.integs {
		extra := ""
		if in.extra != "" {
			extra = ", " + in.extra
		}
		fmt.Fprintf(&b, "  - {name: %s, id: %q, provider: %s, source: {mount: secret, path: %q}%s}\n", in.name, in.id, in.provider, f.prefix+"/"+in.path, extra)
	}
	p := f.path(c.file)
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return p
}

// env is the environment of the rotator processes: no VAULT_* variable.
func (f *fixture) env() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + f.dir, "HOOD_TOKEN=" + f.hoodToken}
}

type result struct {
	code           int
	stdout, stderr string
}

// once runs `rotator once` to completion.
func (f *fixture) once(config string, args ...string) result {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, rotatorBin, append([]string{"once", "--config", config, "--log-format", "json"}, args...)...)
	cmd.Env = f.env()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		f.t.Fatalf("rotator once: %v", err)
	}
	f.noSentinel("rotator once stdout", r.stdout)
	f.noSentinel("rotator once stderr", r.stderr)
	return r
}

// noSentinel fails the test when s holds the sentinel or one of the Vault
// credentials (never printing s).
func (f *fixture) noSentinel(what, s string) {
	f.t.Helper()
	if strings.Contains(s, sentinel) {
		f.t.Errorf("%s contains the sentinel secret value", what)
	}
	f.mu.Lock()
	creds := slices.Clone(f.creds)
	f.mu.Unlock()
	for i, c := range creds {
		if strings.Contains(s, c) {
			f.t.Errorf("%s contains Vault credential #%d", what, i)
		}
	}
}

// checkFiles: the state file and the audit log hold no secret value, and
// every audit line is a whole JSON object.
func (f *fixture) checkFiles() {
	f.t.Helper()
	for _, name := range []string{"state.db", "audit.log"} {
		b, err := os.ReadFile(f.path(name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			f.t.Errorf("read %s: %v", name, err)
			continue
		}
		f.noSentinel(name, string(b))
	}
	b, _ := os.ReadFile(f.path("audit.log"))
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		if !json.Valid(sc.Bytes()) {
			f.t.Errorf("audit.log line %d is not a whole JSON object", n)
		}
	}
}

// line returns the summary line of an integration in `once` output.
func line(stdout, name string) string {
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		if fs := strings.Fields(sc.Text()); len(fs) > 0 && fs[0] == name {
			return sc.Text()
		}
	}
	return ""
}

// patch is one PATCH that Hood answered 204.
type patch struct {
	id       string
	settings map[string]string
}

func (f *fixture) patches() []patch { return acceptedPatches(f.hood.Requests()) }

// acceptedPatches returns the PATCHes among reqs that Hood answered 204.
func acceptedPatches(reqs []hoodtest.Request) []patch {
	var out []patch
	for _, r := range reqs {
		if r.Method != http.MethodPatch || r.Status != http.StatusNoContent {
			continue
		}
		out = append(out, patch{id: r.ID, settings: settingStrings(r.Settings)})
	}
	return out
}

// settingStrings is the settings of a PATCH as strings; a value of another
// type becomes its type's name ("<float64>").
func settingStrings(settings map[string]any) map[string]string {
	out := make(map[string]string, len(settings))
	for k, v := range settings {
		s, ok := v.(string)
		if !ok {
			s = fmt.Sprintf("<%T>", v)
		}
		out[k] = s
	}
	return out
}

// expectPushed checks the PATCHes Hood accepted since its last Reset: one
// per named integration, each carrying exactly its path's current value, and
// none for any other; and that Hood holds those values now.
func (f *fixture) expectPushed(names ...string) {
	f.t.Helper()
	want := map[string]integ{}
	for _, n := range names {
		in := f.byName(n)
		want[in.id] = in
	}
	got := map[string]int{}
	for _, p := range f.patches() {
		got[p.id]++
		in, ok := want[p.id]
		if !ok {
			f.t.Errorf("PATCH of integration %s: want none", p.id)
			continue
		}
		if w := f.want(in); !maps.Equal(p.settings, w) {
			f.t.Errorf("PATCH of %s: settings %s, want exactly the current Vault value %s", in.name, describe(p.settings, w), describe(w, w))
		}
	}
	for id, in := range want {
		if got[id] != 1 {
			f.t.Errorf("PATCHes of %s: got %d, want 1", in.name, got[id])
		}
		f.expectHolds(in)
	}
}

// expectHolds checks that Hood holds in's current Vault value.
func (f *fixture) expectHolds(in integ) {
	f.t.Helper()
	got, ok := f.hood.Integration(in.id)
	if w := f.want(in); !ok || !maps.Equal(got.Settings, w) {
		f.t.Errorf("Hood's %s: holds %s, want the current Vault value %s", in.name, describe(got.Settings, w), describe(w, w))
	}
}

// describe names a settings map without its values: each key, and whether
// its value equals that of ref.
func describe(s, ref map[string]string) string {
	keys := slices.Sorted(maps.Keys(s))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		switch v, ok := ref[k]; {
		case !ok:
			parts = append(parts, k+"=<unexpected key>")
		case s[k] == "":
			parts = append(parts, k+"=<empty>")
		case s[k] == v:
			parts = append(parts, k+"=<current>")
		default:
			parts = append(parts, k+"=<other value>")
		}
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// checkAllPatchesWhole: every PATCH Hood accepted in the whole test carries
// a whole value that was written to its integration's path at some point:
// never an empty or partial read.
func (f *fixture) checkAllPatchesWhole() {
	f.t.Helper()
	f.checkPatchesWhole(f.hood.Requests())
}

// checkPatchesWhole is checkAllPatchesWhole for the accepted PATCHes of reqs.
func (f *fixture) checkPatchesWhole(reqs []hoodtest.Request) {
	f.t.Helper()
	byID := map[string]integ{}
	for _, in := range f.integs {
		byID[in.id] = in
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, p := range acceptedPatches(reqs) {
		in, ok := byID[p.id]
		if !ok {
			f.t.Errorf("PATCH %d: unknown integration %s", i, p.id)
			continue
		}
		ok = false
		for _, w := range f.written[in.path] {
			if maps.Equal(p.settings, w) {
				ok = true
				break
			}
		}
		if !ok {
			f.t.Errorf("PATCH %d of %s: settings %v are not a whole value ever written to its Vault path", i, in.name, slices.Sorted(maps.Keys(p.settings)))
		}
	}
}

// eventually is testkit.Eventually.
var eventually = testkit.Eventually

type syncBuffer = testkit.SyncBuffer

// daemon is a `rotator run` process.
type daemon struct {
	f      *fixture
	cmd    *exec.Cmd
	logs   *syncBuffer
	addr   string
	done   chan struct{}
	client *http.Client
}

// startDaemon starts `rotator run` and waits until its admin API serves.
func (f *fixture) startDaemon(config string) *daemon {
	f.t.Helper()
	d := &daemon{f: f, logs: &syncBuffer{}, done: make(chan struct{}), client: &http.Client{Timeout: 30 * time.Second}}
	d.cmd = exec.Command(rotatorBin, "run", "--config", config, "--log-format", "json", "--shutdown-timeout", "10s")
	d.cmd.Env = f.env()
	d.cmd.Stdout, d.cmd.Stderr = d.logs, d.logs
	if err := d.cmd.Start(); err != nil {
		f.t.Fatalf("start rotator run: %v", err)
	}
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	f.t.Cleanup(func() {
		if !d.exited() {
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		d.client.CloseIdleConnections()
		f.noSentinel("rotator run's log", d.logs.String())
		if f.t.Failed() {
			f.t.Logf("rotator run's log (last lines):\n%s", redact(tailLines(d.logs.String(), 25)))
		}
	})
	eventually(f.t, 30*time.Second, "rotator run serves its admin API", func() bool {
		if d.exited() {
			f.t.Fatalf("rotator run exited before serving:\n%s", redact(d.logs.String()))
		}
		d.addr = d.adminAddr()
		return d.addr != ""
	})
	return d
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// adminAddr finds the admin address in the "rotator started" log line.
func (d *daemon) adminAddr() string {
	sc := bufio.NewScanner(strings.NewReader(d.logs.String()))
	for sc.Scan() {
		var l struct {
			Msg   string `json:"msg"`
			Admin string `json:"admin_listen"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "rotator started" {
			return l.Admin
		}
	}
	return ""
}

// addrRE matches a loopback address with its port.
var addrRE = regexp.MustCompile(`127\.0\.0\.1:\d+`)

// failureReasons counts the reasons of the "integration failed" log lines,
// with the integration's own secret path and the addresses blanked so that
// equal causes group.
func (d *daemon) failureReasons() map[string]int {
	out := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(d.logs.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct {
			Msg       string `json:"msg"`
			Error     string `json:"error"`
			VaultPath string `json:"vault_path"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != "integration failed" {
			continue
		}
		reason := l.Error
		if l.VaultPath != "" {
			reason = strings.ReplaceAll(reason, l.VaultPath, "<path>")
		}
		out[addrRE.ReplaceAllString(redact(reason), "ADDR")]++
	}
	return out
}

// logReasons logs the failure reasons the daemon gave.
func (d *daemon) logReasons(t *testing.T) {
	t.Helper()
	reasons := d.failureReasons()
	keys := slices.Sorted(maps.Keys(reasons))
	for _, k := range keys {
		t.Logf("failure reason given %d times: %s", reasons[k], k)
	}
}

// stop sends SIGTERM and returns the exit code.
func (d *daemon) stop() int {
	d.f.t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil && !d.exited() {
		d.f.t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-d.done:
	case <-time.After(60 * time.Second):
		d.f.t.Fatalf("rotator run did not stop after SIGTERM")
	}
	return d.cmd.ProcessState.ExitCode()
}

// integrationStatus is one entry of GET /v1/status.
type integrationStatus struct {
	Name                string     `json:"name"`
	VaultVersion        int        `json:"vault_version"`
	LastAttempt         *time.Time `json:"last_attempt"`
	LastResult          string     `json:"last_result"`
	LastError           string     `json:"last_error"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
}

func (d *daemon) get(path string, auth bool) (int, []byte) {
	d.f.t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+d.addr+path, nil)
	if err != nil {
		d.f.t.Fatal(err)
	}
	if auth {
		req.Header.Set("Authorization", "Bearer admin-"+sentinel)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		d.f.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	d.f.noSentinel("GET "+path, string(b))
	return resp.StatusCode, b
}

// status returns /v1/status by integration name.
func (d *daemon) status() map[string]integrationStatus {
	d.f.t.Helper()
	code, b := d.get("/v1/status", true)
	if code != http.StatusOK {
		d.f.t.Fatalf("GET /v1/status: got %d %s, want 200", code, b)
	}
	var list []integrationStatus
	if err := json.Unmarshal(b, &list); err != nil {
		d.f.t.Fatalf("GET /v1/status: %v in %s", err, b)
	}
	out := map[string]integrationStatus{}
	for _, s := range list {
		out[s.Name] = s
	}
	return out
}

// metric returns the sum of the samples of a metric whose label set
// contains every given `name="value"` pair, from a scrape of /metrics.
func (d *daemon) metric(name string, labels ...string) float64 {
	d.f.t.Helper()
	sum := 0.0
	for _, l := range d.samples(name) {
		ok := true
		for _, lb := range labels {
			ok = ok && strings.Contains(l, lb)
		}
		if !ok {
			continue
		}
		var v float64
		if _, err := fmt.Sscanf(l[strings.LastIndexByte(l, ' ')+1:], "%g", &v); err == nil {
			sum += v
		}
	}
	return sum
}

// samples returns the sample lines of a metric from a scrape of /metrics.
func (d *daemon) samples(name string) []string {
	d.f.t.Helper()
	_, b := d.get("/metrics", false)
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") {
			out = append(out, l)
		}
	}
	return out
}

// failingWith reports whether every named integration's last pass failed
// with an error containing each of subs, at least n times in a row.
func failingWith(st map[string]integrationStatus, names []string, n int, subs ...string) bool {
	for _, name := range names {
		s := st[name]
		if s.LastResult != "failed" || s.ConsecutiveFailures < n {
			return false
		}
		for _, sub := range subs {
			if !strings.Contains(s.LastError, sub) {
				return false
			}
		}
	}
	return true
}

func names(ins []integ) []string {
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = in.name
	}
	sort.Strings(out)
	return out
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// redact blanks the sentinel in process output that a failing test prints
// (the Vault credentials are test-only tokens of a throw-away server).
func redact(s string) string { return strings.ReplaceAll(s, sentinel, "[SENTINEL]") }

// show is a result for a failure message, sentinel blanked.
func (r result) show() string {
	return fmt.Sprintf("exit %d\n--- stdout ---\n%s--- stderr (last lines) ---\n%s", r.code, redact(r.stdout), redact(tailLines(r.stderr, 15)))
}

// serve serves srv on a free loopback port until the test ends and returns
// its URL. A server without an ErrorLog logs nothing.
func serve(t testing.TB, srv *http.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if srv.ErrorLog == nil {
		srv.ErrorLog = log.New(io.Discard, "", 0)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// copyLog returns a copy of each request of a log that mu guards, in order.
func copyLog[T any](mu *sync.Mutex, log *[]*T) []T {
	mu.Lock()
	defer mu.Unlock()
	out := make([]T, len(*log))
	for i, r := range *log {
		out[i] = *r
	}
	return out
}
