package main

// End-to-end tests of the daemon's admin API: forced requests answered
// from reads made after they arrived, GET /v1/plan, /readyz under a probe
// flood, and answers of passes longer than the write timeout. `rotator
// run` in-process against the real OpenBao server and the Hood test server.

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
)

// A forced request that arrives while a forced pass runs is answered from
// Vault reads made after it arrived: a version written meanwhile is the
// one its answer reports pushed.
func TestRunForcedRequestDuringPassReadsAfterArrival(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"971": "telegram"})
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	d := f.startDaemon(f.runConfig("", `schedule: "@every 1h"`, `  - {name: fr, id: "971", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
`))
	eventually(t, 20*time.Second, "start-up pass", func() bool { return f.patchCount("971") == 1 && d.startupDone() })

	// The first forced pass is slowed down in its PATCH: it read version 1.
	f.hood.Inject(hoodtest.Fault{Method: "PATCH", Delay: 2 * time.Second})
	first := make(chan rotateAnswer, 1)
	go func() { first <- d.rotate("/v1/rotate") }()
	eventually(t, 10*time.Second, "the first forced pass's PATCH arrived", func() bool { return f.hood.Count("PATCH") == 2 })

	// The operator writes version 2, then asks for a forced pass.
	if v := f.put("secret", "tg", map[string]any{"auth_token": sentinel + "-v2", "chat_id": "1"}); v != 2 {
		t.Fatalf("vault version written: got %d, want 2", v)
	}
	second := d.rotate("/v1/rotate")
	if len(second.Outcomes) != 1 || second.Outcomes[0].Result != "pushed" || second.Outcomes[0].VaultVersion != 2 {
		t.Errorf("forced request made after version 2 was written: got %+v, want pushed at vault_version 2", second.Outcomes)
	}
	select {
	case a := <-first:
		if len(a.Outcomes) != 1 || a.Outcomes[0].Result != "pushed" || a.Outcomes[0].VaultVersion != 1 {
			t.Errorf("first forced request: got %+v, want pushed at vault_version 1", a.Outcomes)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the first forced request got no answer")
	}
	if got := f.patchCount("971"); got != 3 {
		t.Errorf("PATCHes: got %d, want 3 (start-up, version 1 forced, version 2 forced)", got)
	}
	if f.lastPatchValue("971") != sentinel+"-v2" {
		t.Errorf("the last PATCH does not carry version 2's value")
	}
}

// planAnswer is the part of a GET /v1/plan answer the tests look at.
type planAnswer struct {
	Trigger  string `json:"trigger"`
	DryRun   bool   `json:"dry_run"`
	Outcomes []struct {
		Name         string   `json:"name"`
		Result       string   `json:"result"`
		VaultVersion int      `json:"vault_version"`
		Changed      []string `json:"changed"`
		Settings     []string `json:"settings"`
		Reason       string   `json:"reason"`
		Doubt        string   `json:"doubt"`
	} `json:"outcomes"`
}

// results maps each outcome's name to its result.
func (a planAnswer) results() map[string]string {
	out := map[string]string{}
	for _, o := range a.Outcomes {
		out[o.Name] = o.Result
	}
	return out
}

func (d *runningDaemon) plan(query string) planAnswer {
	d.t.Helper()
	code, body := d.call("GET", "/v1/plan"+query, adminToken)
	if code != 200 {
		d.t.Fatalf("GET /v1/plan%s: got %d %s, want 200", query, code, body)
	}
	var a planAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		d.t.Fatalf("GET /v1/plan%s: %v in %s", query, err, body)
	}
	return a
}

// fileDigest is the SHA-256 of a file's content ("" when it does not exist).
func fileDigest(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// GET /v1/plan is `rotator plan` against the running daemon: change
// detection honoured, nothing written, no Hood request, values masked.
func TestRunPlan(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"981": "telegram", "982": "sendgrid_email"})
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	f.put("secret", "sg", map[string]any{"api_key": sentinel})
	d := f.startDaemon(f.runConfig("", `schedule: "@every 1h"`, `  - {name: tg, id: "981", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
  - {name: sg, id: "982", provider: sendgrid_email, source: {mount: secret, path: "{P}/sg"}}
`))
	eventually(t, 20*time.Second, "start-up pass pushed both", func() bool { return f.patchCount("981") == 1 && f.patchCount("982") == 1 })
	eventually(t, 20*time.Second, "start-up pass recorded", func() bool {
		return d.metric("rotator_pass_duration_seconds", map[string]string{"trigger": "startup"}) == 1
	})
	statePath, auditPath := filepath.Join(f.dir, "state.db"), filepath.Join(f.dir, "audit.log")
	stateBefore, auditBefore := fileDigest(t, statePath), fileDigest(t, auditPath)
	hoodBefore := f.hood.Count("")

	// Just pushed: unchanged, like `rotator plan` says.
	a := d.plan("")
	if !a.DryRun || a.Trigger != "admin" {
		t.Errorf("plan: got dry_run %v trigger %q, want true admin", a.DryRun, a.Trigger)
	}
	if got := a.results(); got["tg"] != "unchanged" || got["sg"] != "unchanged" || len(got) != 2 {
		t.Errorf("plan after the push: got %v, want both unchanged", got)
	}

	// A new version of tg: would push, with the changed setting named.
	f.put("secret", "tg", map[string]any{"auth_token": sentinel + "-v2", "chat_id": "1"})
	a = d.plan("")
	if got := a.results(); got["tg"] != "would push" || got["sg"] != "unchanged" {
		t.Errorf("plan after a new version of tg: got %v, want tg would push, sg unchanged", got)
	}
	for _, o := range a.Outcomes {
		if o.Name == "tg" && (o.VaultVersion != 2 || strings.Join(o.Changed, ",") != "auth_token") {
			t.Errorf("plan of tg: got version %d changes %v, want version 2 changes [auth_token]", o.VaultVersion, o.Changed)
		}
	}

	// ?only= selects, like `rotator plan --only`.
	for _, tc := range []struct {
		query string
		want  string
	}{
		{"?only=tg", "tg"},
		{"?only=sg,tg", "tg,sg"},
		{"?only=sg&only=tg", "tg,sg"},
	} {
		var names []string
		for _, o := range d.plan(tc.query).Outcomes {
			names = append(names, o.Name)
		}
		if got := strings.Join(names, ","); got != tc.want {
			t.Errorf("GET /v1/plan%s: got outcomes %s, want %s", tc.query, got, tc.want)
		}
	}
	for _, tc := range []struct {
		method, path, token string
		want                int
		body                string
	}{
		{"GET", "/v1/plan?only=nope", adminToken, 404, "nope"},
		{"GET", "/v1/plan?only=tg,nope", adminToken, 404, "nope"},
		{"GET", "/v1/plan?dry_run=false", adminToken, 400, "dry_run"},
		{"GET", "/v1/plan?only=", adminToken, 400, "only"},
		{"GET", "/v1/plan", "", 401, "bearer"},
		{"GET", "/v1/plan", "wrong", 401, "bearer"},
		{"POST", "/v1/plan", adminToken, 405, "POST"},
	} {
		code, body := d.call(tc.method, tc.path, tc.token)
		if code != tc.want || !strings.Contains(body, tc.body) {
			t.Errorf("%s %s: got %d %s, want %d naming %q", tc.method, tc.path, code, body, tc.want, tc.body)
		}
	}

	// The forced dry run stays what it is: sg would be pushed too.
	if got := d.rotate("/v1/rotate/sg?dry_run=true"); len(got.Outcomes) != 1 || got.Outcomes[0].Result != "would push" {
		t.Errorf("forced dry run of sg: got %+v, want would push", got.Outcomes)
	}

	// Nothing written, nothing sent to Hood.
	if got := f.hood.Count(""); got != hoodBefore {
		t.Errorf("Hood requests during the plans: got %d, want 0", got-hoodBefore)
	}
	if got := fileDigest(t, statePath); got != stateBefore {
		t.Errorf("the state file changed during the plans")
	}
	if got := fileDigest(t, auditPath); got != auditBefore {
		t.Errorf("the audit log changed during the plans")
	}
	// A plan is not a pass in the metrics or the status.
	if got := d.metric("rotator_pass_duration_seconds", map[string]string{"trigger": "admin"}); got != -1 && got != 0 {
		t.Errorf("admin passes in the metrics after plans: got %v, want none", got)
	}
	_, body := d.call("GET", "/v1/status", adminToken)
	if strings.Contains(body, "would push") {
		t.Errorf("status after plans: got %s, want no plan result", body)
	}
}

// healthCounter is a reverse proxy in front of OpenBao that counts the
// health requests and can fail them.
type healthCounter struct {
	health atomic.Int64
	down   atomic.Bool
}

func (h *healthCounter) start(t *testing.T, target string) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/sys/health" {
			h.health.Add(1)
			if h.down.Load() {
				http.Error(w, "proxy: vault down", http.StatusBadGateway)
				return
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// probe is one GET /readyz; it is safe from any goroutine.
func (d *runningDaemon) probe() (int, string, error) {
	resp, err := d.client.Get("http://" + d.addr + "/readyz")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// However many probes ask, /readyz makes at most one Vault health request
// a second; and no answer is older than a second.
func TestRunReadyzProbeFloodIsNoVaultFlood(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	var hc healthCounter
	f.env["VAULT_ADDR"] = hc.start(t, f.vs.Addr)
	f.addIntegrations(map[string]string{"991": "telegram"})
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	d := f.startDaemon(f.runConfig("", `schedule: "@every 1h"`, `  - {name: rz, id: "991", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
`))
	eventually(t, 20*time.Second, "ready", func() bool { code, _, _ := d.probe(); return code == 200 })

	const probers = 50
	before := hc.health.Load()
	start := time.Now()
	var (
		wg     sync.WaitGroup
		probes atomic.Int64
		mu     sync.Mutex
		bad    []string
	)
	for range probers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(start) < 2*time.Second {
				code, body, err := d.probe()
				probes.Add(1)
				if err != nil || code != 200 {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("%d %q %v", code, body, err))
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	requests := hc.health.Load() - before
	if len(bad) > 0 {
		t.Errorf("probes with Vault up: got %v, want 200 ready", bad)
	}
	t.Logf("%d probes over %s: %d Vault health requests", probes.Load(), elapsed.Round(time.Millisecond), requests)
	if limit := int64(math.Ceil(elapsed.Seconds())) + 1; requests > limit {
		t.Errorf("Vault health requests for %d probes over %s: got %d, want at most %d", probes.Load(), elapsed.Round(time.Millisecond), requests, limit)
	}
	if probes.Load() < probers {
		t.Errorf("probes made: got %d, want at least %d", probes.Load(), probers)
	}

	// Vault's health fails: a probe made more than a second later says so.
	hc.down.Store(true)
	time.Sleep(readyAge + 100*time.Millisecond)
	if code, body, err := d.probe(); err != nil || code != 503 || !strings.Contains(body, "vault") {
		t.Errorf("/readyz more than a second after Vault's health failed: got %d %q %v, want 503 naming vault", code, body, err)
	}
	hc.down.Store(false)
	eventually(t, 10*time.Second, "ready again", func() bool { code, _, _ := d.probe(); return code == 200 })
}

// readyAge is how old a /readyz answer may be (README).
const readyAge = time.Second

// A forced pass longer than the admin server's write timeout still answers
// its caller with its whole report.
func TestRunForcedPassLongerThanWriteTimeoutAnswers(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.adminWriteTimeout = time.Second
	f.addIntegrations(map[string]string{"995": "telegram"})
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	d := f.startDaemon(f.runConfig("", `schedule: "@every 1h"`, `  - {name: long, id: "995", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
`))
	eventually(t, 20*time.Second, "start-up pass", func() bool { return f.patchCount("995") == 1 && d.startupDone() })

	f.hood.Inject(hoodtest.Fault{Method: "PATCH", Delay: 3 * time.Second})
	req, err := http.NewRequest("POST", "http://"+d.addr+"/v1/rotate", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := d.client.Do(req)
	if err != nil {
		t.Fatalf("forced pass longer than the write timeout: got error %v, want its answer", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("forced pass longer than the write timeout: reading the answer: %v", err)
	}
	if bytes.Contains(body, []byte(sentinel)) {
		t.Errorf("the answer contains the sentinel secret")
	}
	var a rotateAnswer
	if err := json.Unmarshal(body, &a); resp.StatusCode != 200 || err != nil {
		t.Fatalf("forced pass longer than the write timeout: got %d %s (%v), want 200 and a JSON report", resp.StatusCode, body, err)
	}
	if len(a.Outcomes) != 1 || a.Outcomes[0].Result != "pushed" {
		t.Errorf("forced pass longer than the write timeout: got %+v, want long pushed", a.Outcomes)
	}
	if got := f.patchCount("995"); got != 2 {
		t.Errorf("PATCHes: got %d, want 2", got)
	}
}
