package main

// End-to-end tests of `rotator run`: the daemon in-process, with its admin
// API over loopback HTTP, against the real OpenBao server and the Hood test
// server.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/ocamba-rotator/rotator/docs"
	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
	"github.com/ocamba-rotator/rotator/internal/testkit"
	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

const adminToken = "admin-token-" + sentinel

// daemon is one `rotator run` started by a test.
type runningDaemon struct {
	t      *testing.T
	f      *fixture
	addr   string
	cancel context.CancelFunc
	done   chan int
	reload chan struct{}
	logs   *syncBuffer
	client *http.Client
}

type syncBuffer = testkit.SyncBuffer

// runConfig writes a daemon configuration: admin on a free port with a
// token file, plus extra top-level YAML and the integrations.
func (f *fixture) runConfig(auth, extra, integrations string) string {
	f.t.Helper()
	tokFile := filepath.Join(f.dir, "admin-token")
	if err := os.WriteFile(tokFile, []byte(adminToken+"\n"), 0o600); err != nil {
		f.t.Fatal(err)
	}
	path := f.config(auth, integrations)
	b, err := os.ReadFile(path)
	if err != nil {
		f.t.Fatal(err)
	}
	head := fmt.Sprintf("admin:\n  listen: 127.0.0.1:0\n  token_file: %s\n%s\n", tokFile, extra)
	if err := os.WriteFile(path, append([]byte(head), b...), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return path
}

func (f *fixture) startDaemon(cfg string, args ...string) *runningDaemon {
	f.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &runningDaemon{t: f.t, f: f, cancel: cancel, done: make(chan int, 1), reload: make(chan struct{}, 1),
		logs: &syncBuffer{}, client: &http.Client{Timeout: time.Minute}}
	addrCh := make(chan string, 1)
	e := env{
		stdout: d.logs, stderr: d.logs,
		getenv:  func(k string) string { return f.env[k] },
		reload:  d.reload,
		started: func(addr string) { addrCh <- addr },

		adminWriteTimeout: f.adminWriteTimeout,
		rotationRefresh:   f.rotationRefresh,
	}
	go func() {
		d.done <- runWith(ctx, append([]string{"run", "--config", cfg, "--log-format", "json", "--log-level", "debug", "--shutdown-timeout", "20s"}, args...), e)
	}()
	select {
	case d.addr = <-addrCh:
	case code := <-d.done:
		f.t.Fatalf("rotator run exited with %d before serving:\n%s", code, d.logs)
	case <-time.After(30 * time.Second):
		f.t.Fatalf("rotator run did not start:\n%s", d.logs)
	}
	f.t.Cleanup(func() {
		d.stop()
		if strings.Contains(d.logs.String(), sentinel) {
			f.t.Errorf("the daemon's log contains the sentinel secret")
		}
	})
	return d
}

// stop sends the equivalent of SIGTERM and returns the exit code.
// startupDone reports whether the start-up pass has finished (its pushes
// confirmed): a forced request sent later is not answered by it.
func (d *runningDaemon) startupDone() bool {
	return strings.Contains(d.logs.String(), `"msg":"pass finished","trigger":"startup"`)
}

func (d *runningDaemon) stop() int {
	d.cancel()
	select {
	case code := <-d.done:
		d.done <- code // later calls get it too
		d.client.CloseIdleConnections()
		return code
	case <-time.After(60 * time.Second):
		d.t.Fatalf("rotator run did not stop")
		return -1
	}
}

// call makes an admin API request; token "" sends none.
func (d *runningDaemon) call(method, path, token string) (int, string) {
	d.t.Helper()
	req, err := http.NewRequest(method, "http://"+d.addr+path, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if bytes.Contains(b, []byte(sentinel)) {
		d.t.Errorf("%s %s: the answer contains the sentinel secret", method, path)
	}
	return resp.StatusCode, string(b)
}

type rotateAnswer struct {
	Trigger  string `json:"trigger"`
	Outcomes []struct {
		Name         string `json:"name"`
		Result       string `json:"result"`
		Error        string `json:"error"`
		VaultVersion int    `json:"vault_version"`
	} `json:"outcomes"`
}

func (d *runningDaemon) rotate(path string) rotateAnswer {
	d.t.Helper()
	code, body := d.call("POST", path, adminToken)
	if code != 200 {
		d.t.Fatalf("POST %s: got %d %s, want 200", path, code, body)
	}
	var a rotateAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		d.t.Fatalf("POST %s: %v in %s", path, err, body)
	}
	return a
}

// metric returns the value of one series from a scrape, or -1.
func (d *runningDaemon) metric(name string, labels map[string]string) float64 {
	d.t.Helper()
	_, body := d.call("GET", "/metrics", "")
	v, found, err := testkit.Metric(strings.NewReader(body), name, labels)
	if err != nil {
		d.t.Fatal(err)
	}
	if !found {
		return -1
	}
	return v
}

// eventually is testkit.Eventually.
var eventually = testkit.Eventually

func (f *fixture) patchCount(id string) int {
	n := 0
	for _, r := range f.hood.Requests() {
		if r.Method == "PATCH" && r.ID == id && r.Status == 204 {
			n++
		}
	}
	return n
}

func TestRunScheduleForceAuthAndMetrics(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"901": "telegram", "902": "sendgrid_email"})
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	f.put("secret", "sg", map[string]any{"api_key": sentinel})
	cfg := f.runConfig("", `schedule: "@every 1s"`, `  - {name: tg, id: "901", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
  - {name: sg, id: "902", provider: sendgrid_email, source: {mount: secret, path: "{P}/sg"}, schedule: "@every 1h", max_age: 720h}
`)
	d := f.startDaemon(cfg)

	// The start-up pass pushes both; scheduled passes then find nothing new.
	eventually(t, 20*time.Second, "start-up pass pushed both", func() bool { return f.patchCount("901") == 1 && f.patchCount("902") == 1 })
	eventually(t, 20*time.Second, "a scheduled pass ran", func() bool {
		return d.metric("rotator_pass_duration_seconds", map[string]string{"trigger": "schedule"}) >= 2
	})
	if got := f.patchCount("901"); got != 1 {
		t.Errorf("PATCHes of an unchanged integration after scheduled passes: got %d, want 1", got)
	}
	// A new Vault version is pushed by the next scheduled pass (of tg only: sg is hourly).
	f.put("secret", "tg", map[string]any{"auth_token": sentinel + "-v2", "chat_id": "1"})
	eventually(t, 20*time.Second, "the scheduled pass pushed version 2", func() bool { return f.patchCount("901") == 2 })
	if got := d.metric("rotator_secret_version", map[string]string{"integration": "tg"}); got != 2 {
		t.Errorf("rotator_secret_version{tg}: got %v, want 2", got)
	}

	// Admin API authentication.
	for _, tc := range []struct {
		token string
		want  int
	}{{"", 401}, {"wrong", 401}, {adminToken + "x", 401}, {adminToken, 200}} {
		if code, _ := d.call("GET", "/v1/status", tc.token); code != tc.want {
			t.Errorf("GET /v1/status with token %q: got %d, want %d", strings.ReplaceAll(tc.token, sentinel, "<S>"), code, tc.want)
		}
	}
	if code, _ := d.call("POST", "/v1/rotate", ""); code != 401 {
		t.Errorf("POST /v1/rotate without a token: got %d, want 401", code)
	}
	if code, _ := d.call("POST", "/v1/rotate/nope", adminToken); code != 404 {
		t.Errorf("POST /v1/rotate/nope: got %d, want 404", code)
	}

	// A forced pass bypasses change detection.
	before := f.patchCount("902")
	a := d.rotate("/v1/rotate/sg")
	if len(a.Outcomes) != 1 || a.Outcomes[0].Result != "pushed" || a.Trigger != "admin" {
		t.Errorf("forced pass of sg: got %+v, want one pushed outcome", a)
	}
	if got := f.patchCount("902"); got != before+1 {
		t.Errorf("PATCHes of sg after a forced pass: got %d, want %d", got, before+1)
	}
	// A dry run pushes nothing.
	if a := d.rotate("/v1/rotate?dry_run=true"); len(a.Outcomes) != 2 || a.Outcomes[0].Result == "pushed" {
		t.Errorf("dry run: got %+v", a)
	}
	if got := f.patchCount("902"); got != before+1 {
		t.Errorf("PATCHes after a dry run: got %d, want %d", got, before+1)
	}

	// Status.
	_, body := d.call("GET", "/v1/status", adminToken)
	var st []map[string]any
	if err := json.Unmarshal([]byte(body), &st); err != nil || len(st) != 2 {
		t.Fatalf("status: %v %s", err, body)
	}
	for _, key := range []string{"name", "id", "provider", "vault_version", "last_attempt", "last_success", "last_result", "consecutive_failures", "next_run"} {
		if _, ok := st[0][key]; !ok {
			t.Errorf("status: key %q missing in %v", key, st[0])
		}
	}
	if st[0]["last_result"] != "pushed" && st[0]["last_result"] != "unchanged" {
		t.Errorf("status of tg: last_result %v", st[0]["last_result"])
	}

	// Credential age: from the created_time of the version read (just
	// written, so seconds old), and max_age where it is set.
	if got := d.metric("rotator_credential_max_age_seconds", map[string]string{"integration": "sg"}); got != 720*3600 {
		t.Errorf("rotator_credential_max_age_seconds{sg}: got %v, want %v", got, 720*3600)
	}
	if got := d.metric("rotator_credential_max_age_seconds", map[string]string{"integration": "tg"}); got != -1 {
		t.Errorf("rotator_credential_max_age_seconds{tg}: got %v, want no series (no max_age)", got)
	}
	for _, n := range []string{"tg", "sg"} {
		if got := d.metric("rotator_credential_age_seconds", map[string]string{"integration": n}); got < 0 || got > 600 {
			t.Errorf("rotator_credential_age_seconds{%s}: got %v, want a few seconds", n, got)
		}
	}

	// Every metric of docs/reference.md, with its type and labels, and no
	// other (the rotation metrics: TestRunRotations).
	checkReferenceMetrics(t, d, "rotator_rotation_")

	if code := d.stop(); code != 0 {
		t.Errorf("exit code: got %d, want 0", code)
	}
}

// A rotation's max_age is the rotator_credential_max_age_seconds of each
// consumer that sets none of its own; a consumer's own wins.
func TestRunRotationMaxAge(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"911": "sendgrid_email", "912": "sendgrid_email"})
	f.put("secret", "sg", map[string]any{"api_key": sentinel})
	extra := strings.ReplaceAll(`rotations:
  - name: sg
    provider: sendgrid_email
    secret: {mount: secret, path: "{P}/sg"}
    manager: {mount: secret, path: "{P}/sendgrid-admin", key: api_key}
    max_age: 2160h
rotation_records: {mount: secret, path: "{P}/rotations"}`, "{P}", f.prefix)
	cfg := f.runConfig("", extra, `  - {name: sg, id: "911", provider: sendgrid_email, source: {mount: secret, path: "{P}/sg"}}
  - {name: sg-own, id: "912", provider: sendgrid_email, source: {mount: secret, path: "{P}/sg"}, max_age: 24h}
`)
	d := f.startDaemon(cfg)
	// The admin server answers before the loop installs the configuration.
	eventually(t, 20*time.Second, "the start-up pass ran", func() bool { return f.patchCount("911") == 1 })
	for name, want := range map[string]float64{"sg": 2160 * 3600, "sg-own": 24 * 3600} {
		if got := d.metric("rotator_credential_max_age_seconds", map[string]string{"integration": name}); got != want {
			t.Errorf("rotator_credential_max_age_seconds{%s}: got %v, want %v", name, got, want)
		}
	}
	if code := d.stop(); code != 0 {
		t.Errorf("exit code: got %d, want 0", code)
	}
}

// checkReferenceMetrics checks the scrape against the reference's metric
// table; metrics whose name starts with one of absent may have no series
// (a configuration without rotations).
func checkReferenceMetrics(t *testing.T, d *runningDaemon, absent ...string) {
	t.Helper()
	_, body := d.call("GET", "/metrics", "")
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	rows, err := docs.Table("## Metrics")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, r := range rows {
		name, typ := strings.Trim(r["name"], "`"), strings.ToUpper(r["type"])
		want := docs.Code(r["labels"])
		slices.Sort(want)
		documented[name] = true
		fam, ok := fams[name]
		if !ok && !slices.ContainsFunc(absent, func(p string) bool { return strings.HasPrefix(name, p) }) {
			t.Errorf("metric %s: missing from the scrape", name)
		}
		if !ok {
			continue
		}
		if got := fam.GetType().String(); got != typ {
			t.Errorf("metric %s: type %s, want %s", name, got, typ)
		}
		for _, m := range fam.GetMetric() {
			var names []string
			for _, l := range m.GetLabel() {
				names = append(names, l.GetName())
			}
			slices.Sort(names)
			if !slices.Equal(names, want) {
				t.Errorf("metric %s: labels %v, want %v", name, names, want)
			}
		}
	}
	for name := range fams {
		if strings.HasPrefix(name, "rotator_") && !documented[name] {
			t.Errorf("metric %s: in the scrape, want it in docs/reference.md's metric table too", name)
		}
	}
	if got := d.metric("rotator_vault_authenticated", nil); got != 1 {
		t.Errorf("rotator_vault_authenticated: got %v, want 1", got)
	}
}

func TestRunConcurrentForcedRequestsCoalesce(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	ids := []string{"911", "912", "913"}
	var b strings.Builder
	for i, id := range ids {
		f.addIntegrations(map[string]string{id: "telegram"})
		fmt.Fprintf(&b, "  - {name: c%d, id: %q, provider: telegram, source: {mount: secret, path: \"{P}/tg\"}}\n", i, id)
	}
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	d := f.startDaemon(f.runConfig("", `schedule: "@every 1h"`, b.String()))
	eventually(t, 20*time.Second, "start-up pass", func() bool { return f.patchCount("913") == 1 && d.startupDone() })

	// Slow pushes, so that every request arrives while the first pass runs.
	f.hood.Inject(hoodtest.Fault{Method: "PATCH", Delay: 700 * time.Millisecond, Times: -1})
	const n = 100
	var wg sync.WaitGroup
	codes := make(chan int, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _ := d.call("POST", "/v1/rotate", adminToken)
			codes <- code
		}()
	}
	wg.Wait()
	close(codes)
	for code := range codes {
		if code != 200 {
			t.Errorf("forced request: got %d, want 200", code)
		}
	}
	for _, id := range ids {
		if got := f.patchCount(id); got != 2 {
			t.Errorf("integration %s: got %d PATCHes, want 2 (start-up + one forced pass for %d requests)", id, got, n)
		}
	}
	// The first request's pass, then one pass for all the requests that
	// arrived while it ran (its reads were older than them); that one
	// finds the pushes made after they arrived and repeats none.
	if got := d.metric("rotator_pass_duration_seconds", map[string]string{"trigger": "admin"}); got != 2 {
		t.Errorf("forced passes: got %v, want 2", got)
	}
}

func TestRunReloadRefusesBrokenConfig(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"921": "telegram", "922": "telegram"})
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	cfg := f.runConfig("", `schedule: "@every 1h"`, `  - {name: r1, id: "921", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
`)
	good, _ := os.ReadFile(cfg)
	d := f.startDaemon(cfg)
	eventually(t, 20*time.Second, "start-up pass", func() bool { return f.patchCount("921") == 1 && d.startupDone() })

	// A broken file is refused; the old configuration stays in force.
	if err := os.WriteFile(cfg, append(bytes.Clone(good), []byte("bogus_key: 1\n")...), 0o600); err != nil {
		t.Fatal(err)
	}
	d.reload <- struct{}{}
	eventually(t, 10*time.Second, "reload refused", func() bool {
		return d.metric("rotator_config_last_reload_successful", nil) == 0
	})
	if !strings.Contains(d.logs.String(), "bogus_key") {
		t.Errorf("the refused reload's problem is not logged")
	}
	if a := d.rotate("/v1/rotate"); len(a.Outcomes) != 1 || a.Outcomes[0].Result != "pushed" {
		t.Errorf("forced pass after a refused reload: got %+v, want r1 pushed", a)
	}

	// A good file adds an integration and removes the old one's series.
	next := strings.Replace(string(good), "name: r1, id: \"921\"", "name: r2, id: \"922\"", 1)
	if err := os.WriteFile(cfg, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	d.reload <- struct{}{}
	eventually(t, 10*time.Second, "reload applied", func() bool {
		return d.metric("rotator_config_last_reload_successful", nil) == 1
	})
	_, body := d.call("GET", "/v1/status", adminToken)
	if !strings.Contains(body, `"r2"`) || strings.Contains(body, `"r1"`) {
		t.Errorf("status after reload: got %s, want r2 only", body)
	}
	if got := d.metric("rotator_rotations_total", map[string]string{"integration": "r1"}); got != -1 {
		t.Errorf("series of the removed integration r1 still exported")
	}
}

func TestRunShutdownLetsSlowPushFinish(t *testing.T) {
	// Registered first, so it runs last, after every other cleanup: no
	// goroutine of the daemon may outlive it. Idle keep-alive connections of
	// HTTP clients (the test's own Vault client among them) are not leaks.
	ignore := []goleak.Option{goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	}
	t.Cleanup(func() { goleak.VerifyNone(t, ignore...) })
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"931": "telegram"})
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	d := f.startDaemon(f.runConfig("", `schedule: "@every 1h"`, `  - {name: slow, id: "931", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
`))
	eventually(t, 20*time.Second, "start-up pass", func() bool { return f.patchCount("931") == 1 && d.startupDone() })

	f.hood.Inject(hoodtest.Fault{Method: "PATCH", Delay: 2 * time.Second})
	answer := make(chan rotateAnswer, 1)
	go func() { answer <- d.rotate("/v1/rotate") }()
	eventually(t, 10*time.Second, "the slow PATCH arrived", func() bool { return f.hood.Count("PATCH") == 2 })
	if code := d.stop(); code != 0 {
		t.Errorf("exit code: got %d, want 0", code)
	}
	if got := f.patchCount("931"); got != 2 {
		t.Errorf("the PATCH in flight at shutdown: got %d completed, want 2", got)
	}
	select {
	case a := <-answer:
		if len(a.Outcomes) != 1 || a.Outcomes[0].Result != "pushed" {
			t.Errorf("forced pass interrupted by shutdown: got %+v, want pushed", a)
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the forced request got no answer")
	}
}

func TestRunRecoversRevokedTokenByAppRoleLogin(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"941": "telegram"})
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	ctx := context.Background()
	policy := fmt.Sprintf(`path "secret/data/%s/*" { capabilities = ["read"] }`, f.prefix)
	if err := vaultSrv.WritePolicy(ctx, "run-"+f.prefix, policy); err != nil {
		t.Fatal(err)
	}
	roleID, secretID, err := vaultSrv.EnableAppRole(ctx, "approle", "run-"+f.prefix, []string{"run-" + f.prefix})
	if err != nil {
		t.Fatal(err)
	}
	sidFile := filepath.Join(f.dir, "secret-id")
	if err := os.WriteFile(sidFile, []byte(secretID), 0o600); err != nil {
		t.Fatal(err)
	}
	delete(f.env, "VAULT_TOKEN")
	cfg := f.runConfig(fmt.Sprintf("method: approle\n    role_id: %s\n    secret_id_file: %s", roleID, sidFile), `schedule: "@every 1h"`,
		`  - {name: ar, id: "941", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
`)
	d := f.startDaemon(cfg)
	eventually(t, 20*time.Second, "start-up pass", func() bool { return f.patchCount("941") == 1 && d.startupDone() })

	if _, err := vaultSrv.RevokeAllTokens(ctx); err != nil {
		t.Fatal(err)
	}
	f.put("secret", "tg", map[string]any{"auth_token": sentinel + "-v2", "chat_id": "1"})
	a := d.rotate("/v1/rotate")
	if len(a.Outcomes) != 1 || a.Outcomes[0].Result != "pushed" {
		t.Fatalf("forced pass after the token was revoked: got %+v, want pushed after a new AppRole login", a)
	}
	eventually(t, 20*time.Second, "vault authenticated again", func() bool {
		return d.metric("rotator_vault_authenticated", nil) == 1
	})
	if got := d.metric("rotator_vault_requests_total", map[string]string{"operation": "login", "result": "ok"}); got < 2 {
		t.Errorf("successful logins: got %v, want at least 2", got)
	}
}

func TestRunVaultOutageAndRecovery(t *testing.T) {
	vs := vaulttest.PersistentForTest(t)
	f := newFixtureOn(t, vs, hoodtest.Options{})
	f.addIntegrations(map[string]string{"951": "telegram"})
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	d := f.startDaemon(f.runConfig("", `schedule: "@every 1s"`,
		`  - {name: vo, id: "951", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
`))
	eventually(t, 20*time.Second, "start-up pass", func() bool { return f.patchCount("951") == 1 && d.startupDone() })
	if code, body := d.call("GET", "/readyz", ""); code != 200 {
		t.Fatalf("/readyz with Vault up: got %d %s, want 200", code, body)
	}

	if err := vs.StopProcess(); err != nil {
		t.Fatal(err)
	}
	// A /readyz answer may be up to a second old (probes share health checks).
	eventually(t, 10*time.Second, "/readyz 503 naming vault with Vault down", func() bool {
		code, body := d.call("GET", "/readyz", "")
		return code == 503 && strings.Contains(body, "vault")
	})
	a := d.rotate("/v1/rotate")
	if len(a.Outcomes) != 1 || a.Outcomes[0].Result != "failed" || !strings.Contains(a.Outcomes[0].Error, "unreachable") {
		t.Errorf("forced pass with Vault down: got %+v, want failed: unreachable", a)
	}
	eventually(t, 20*time.Second, "scheduled passes fail while Vault is down", func() bool {
		return d.metric("rotator_consecutive_failures", map[string]string{"integration": "vo"}) >= 2
	})
	if code, _ := d.call("GET", "/healthz", ""); code != 200 {
		t.Errorf("/healthz with Vault down: got %d, want 200 (the process is serving)", code)
	}

	if err := vs.StartProcess(context.Background()); err != nil {
		t.Fatal(err)
	}
	f.put("secret", "tg", map[string]any{"auth_token": sentinel + "-v2", "chat_id": "1"})
	eventually(t, 30*time.Second, "a scheduled pass pushed the new version after Vault came back", func() bool { return f.patchCount("951") == 2 })
	eventually(t, 10*time.Second, "/readyz 200 again", func() bool { code, _ := d.call("GET", "/readyz", ""); return code == 200 })
	// The PATCH is answered before its pass ends (read-back, state, report):
	// the gauge follows when the pass is recorded.
	eventually(t, 10*time.Second, "consecutive failures back to 0 after recovery", func() bool {
		return d.metric("rotator_consecutive_failures", map[string]string{"integration": "vo"}) == 0
	})
	if got := d.metric("rotator_consecutive_failures", map[string]string{"integration": "vo"}); got != 0 {
		t.Errorf("consecutive failures after recovery: got %v, want 0", got)
	}
}

func TestRunStatusSurvivesRestart(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"961": "telegram", "962": "telegram"})
	f.put("secret", "ok", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	f.put("secret", "broken", map[string]any{"chat_id": "1"}) // auth_token mapped below but missing
	cfg := f.runConfig("", `schedule: "@every 1h"`, `  - {name: ok, id: "961", provider: telegram, source: {mount: secret, path: "{P}/ok"}}
  - {name: broken, id: "962", provider: telegram, source: {mount: secret, path: "{P}/broken"}, fields: {auth_token: token}}
`)
	status := func(d *runningDaemon) map[string]map[string]any {
		_, body := d.call("GET", "/v1/status", adminToken)
		var list []map[string]any
		if err := json.Unmarshal([]byte(body), &list); err != nil {
			t.Fatalf("status: %v", err)
		}
		out := map[string]map[string]any{}
		for _, s := range list {
			out[s["name"].(string)] = s
		}
		return out
	}
	for run := 1; run <= 2; run++ {
		d := f.startDaemon(cfg)
		eventually(t, 20*time.Second, "the start-up pass", func() bool {
			return d.metric("rotator_pass_duration_seconds", map[string]string{"trigger": "startup"}) == 1
		})
		st := status(d)
		if got := st["broken"]["consecutive_failures"]; got != float64(run) {
			t.Errorf("start %d: consecutive failures of broken: got %v, want %d (counted across restarts)", run, got, run)
		}
		if got := d.metric("rotator_consecutive_failures", map[string]string{"integration": "broken"}); got != float64(run) {
			t.Errorf("start %d: rotator_consecutive_failures{broken}: got %v, want %d", run, got, run)
		}
		if got, _ := st["broken"]["last_error"].(string); !strings.Contains(got, `vault key "token"`) {
			t.Errorf("start %d: last_error of broken: got %q", run, got)
		}
		if st["ok"]["last_success"] == nil || st["ok"]["vault_version"] != float64(1) {
			t.Errorf("start %d: status of ok: got %v, want a last success at version 1", run, st["ok"])
		}
		if code := d.stop(); code != 0 {
			t.Fatalf("exit code: got %d", code)
		}
	}
	if got := f.patchCount("961"); got != 1 {
		t.Errorf("PATCHes of ok across two starts: got %d, want 1 (the second start finds it unchanged)", got)
	}
}
