package main

// End-to-end tests of `rotator once`, `plan` and `validate`: the real
// command-line code against a real OpenBao server (internal/vaulttest) and
// the Hood test server over loopback HTTP.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

// sentinel is a secret value planted in Vault by every test; it must never
// show in any output.
const sentinel = "SENTINEL-9d1e-rotator-never-print"

var vaultSrv *vaulttest.Server

func TestMain(m *testing.M) {
	os.Exit(vaulttest.ForMain(m, func(s *vaulttest.Server) int {
		vaultSrv = s
		if err := s.EnableKV(context.Background(), "kv1", 1); err != nil {
			fmt.Fprintln(os.Stderr, "enable kv1:", err)
			return 1
		}
		return m.Run()
	}))
}

var seq atomic.Int64

// fixture is one test's world: a Vault path prefix, a Hood test server, a
// config file and the environment the command sees.
type fixture struct {
	t         *testing.T
	prefix    string // unique Vault path prefix
	hood      *hoodtest.Server
	hoodToken string
	dir       string
	env       map[string]string
	vs        *vaulttest.Server
	// adminWriteTimeout, if set, is the write timeout of the admin server
	// of the daemons the fixture starts.
	adminWriteTimeout time.Duration
	// rotationRefresh, if set, is how often the daemons the fixture starts
	// read the rotation records again.
	rotationRefresh time.Duration
}

func newFixture(t *testing.T, opts hoodtest.Options) *fixture {
	t.Helper()
	return newFixtureOn(t, vaultSrv, opts)
}

// newFixtureOn is newFixture with another Vault server.
func newFixtureOn(t *testing.T, vs *vaulttest.Server, opts hoodtest.Options) *fixture {
	t.Helper()
	f := &fixture{
		vs:        vs,
		t:         t,
		prefix:    fmt.Sprintf("t%d", seq.Add(1)),
		hoodToken: "hood-token-" + sentinel,
		dir:       t.TempDir(),
	}
	opts.Tokens = []string{f.hoodToken}
	h, err := hoodtest.Start(opts)
	if err != nil {
		t.Fatalf("start hood test server: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	f.hood = h
	f.env = map[string]string{"VAULT_ADDR": vs.Addr, "VAULT_TOKEN": vs.RootToken}
	f.put("secret", "rotator/hood", map[string]any{"token": f.hoodToken})
	return f
}

// put writes a secret under the fixture's prefix and returns its version.
func (f *fixture) put(mount, path string, data map[string]any) int {
	f.t.Helper()
	v, err := f.vs.PutKV(context.Background(), mount, f.prefix+"/"+path, data)
	if err != nil {
		f.t.Fatalf("put %s/%s: %v", mount, path, err)
	}
	return v
}

// config writes a configuration file: the common head plus the given
// integrations block (a YAML list, already indented by two spaces); {P} in
// it stands for the fixture's Vault path prefix.
func (f *fixture) config(auth, integrations string) string {
	f.t.Helper()
	if auth == "" {
		auth = "method: token"
	}
	body := fmt.Sprintf(`vault:
  address: ${VAULT_ADDR}
  auth:
    %s
hood:
  base_url: %s
  allow_insecure_http: true
  token:
    vault: {mount: secret, path: {P}/rotator/hood, key: token}
  retry: {max_attempts: 4, initial_backoff: 50ms, max_backoff: 5s}
  verify_timeout: 3s
state:
  path: %s
audit:
  path: %s
integrations:
%s`, auth, f.hood.URL(), filepath.Join(f.dir, "state.db"), filepath.Join(f.dir, "audit.log"), integrations)
	body = strings.ReplaceAll(body, "{P}", f.prefix)
	path := filepath.Join(f.dir, "config.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return path
}

type result struct {
	code           int
	stdout, stderr string
}

// rotator runs the command line in-process with the fixture's environment.
func (f *fixture) rotator(args ...string) result {
	f.t.Helper()
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := runWith(ctx, args, env{stdout: &out, stderr: &errb, getenv: func(k string) string { return f.env[k] }})
	r := result{code: code, stdout: out.String(), stderr: errb.String()}
	for name, s := range map[string]string{"stdout": r.stdout, "stderr": r.stderr} {
		if strings.Contains(s, sentinel) {
			f.t.Errorf("rotator %s: %s contains the sentinel secret", strings.Join(args, " "), name)
		}
	}
	return r
}

// patches returns the decoded bodies of the PATCHes Hood answered 204, by id.
func (f *fixture) patches() map[string][]map[string]any {
	out := map[string][]map[string]any{}
	for _, r := range f.hood.Requests() {
		if r.Method != "PATCH" || r.Status != 204 {
			continue
		}
		var body map[string]any
		if err := json.Unmarshal(r.Body, &body); err != nil {
			f.t.Fatalf("PATCH %s: body is not JSON", r.ID)
		}
		out[r.ID] = append(out[r.ID], body)
	}
	return out
}

func (f *fixture) addIntegrations(ids map[string]string) {
	f.t.Helper()
	for id, provider := range ids {
		if err := f.hood.AddIntegration(id, provider, nil); err != nil {
			f.t.Fatal(err)
		}
	}
}

// summaryLine returns the summary line of an integration.
func summaryLine(stdout, name string) string {
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) > 0 && fields[0] == name {
			return sc.Text()
		}
	}
	return ""
}

func TestOnceAllProvidersExactBodies(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{
		"101": "twilio_sms", "102": "custom_email_provider", "103": "mandrill_email",
		"104": "sendgrid_email", "105": "mitto_sms", "106": "mailgun_email", "107": "telegram",
	})
	f.put("secret", "twilio", map[string]any{"account_sid": "AC0123", "token": sentinel + "-tw", "default_phone_number": "+1415"})
	f.put("secret", "smtp", map[string]any{"username": "u@x", "password": sentinel + "-smtp", "port": "587",
		"sending_domain": "x.example", "default_sender_email": "no@x", "default_sender_name": "X"})
	f.put("secret", "mandrill", map[string]any{"api_key": sentinel + "-md", "default_reply_to_email": "r@x",
		"default_sender_email": "s@x", "default_sender_name": "X", "smtp_username": "smtp"})
	f.put("secret", "sendgrid", map[string]any{"api_key": sentinel + "-sg", "default_reply_to_email": "r@x",
		"default_sender_email": "s@x", "default_sender_name": "X", "owner": "team-a"})
	f.put("kv1", "mitto", map[string]any{"sender_name": "ExampleCo"})
	f.put("secret", "mailgun", map[string]any{"api_key": sentinel + "-mg", "domain": "mg.x", "sender_email": "s@x", "sender_name": "X"})
	f.put("kv1", "telegram", map[string]any{"auth_token": sentinel + "-tg", "chat_id": "-100"})

	cfg := f.config("", `  - {name: twilio, id: "101", provider: twilio_sms, source: {mount: secret, path: "{P}/twilio"}, fields: {auth_token: token}, static: {default_phone_number: "+1999"}}
  - {name: smtp, id: "102", provider: custom_email_provider, source: {mount: secret, path: "{P}/smtp"}}
  - {name: mandrill, id: "103", provider: mandrill_email, source: {mount: secret, path: "{P}/mandrill"}}
  - {name: sendgrid, id: "104", provider: sendgrid_email, source: {mount: secret, path: "{P}/sendgrid"}}
  - {name: mitto, id: "105", provider: mitto_sms, source: {mount: kv1, path: "{P}/mitto", kv_version: 1}}
  - {name: mailgun, id: "106", provider: mailgun_email, source: {mount: secret, path: "{P}/mailgun"}}
  - {name: telegram, id: "107", provider: telegram, source: {mount: kv1, path: "{P}/telegram", kv_version: 1}}
`)
	r := f.rotator("once", "--config", cfg, "--log-level", "debug", "--log-format", "json")
	if r.code != 0 {
		t.Fatalf("exit code: got %d, want 0\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	want := map[string]map[string]any{
		"101": {"account_sid": "AC0123", "auth_token": sentinel + "-tw", "default_phone_number": "+1999"},
		"102": {"username": "u@x", "password": sentinel + "-smtp", "port": "587", "sending_domain": "x.example", "default_sender_email": "no@x", "default_sender_name": "X"},
		"103": {"api_key": sentinel + "-md", "default_reply_to_email": "r@x", "default_sender_email": "s@x", "default_sender_name": "X", "smtp_username": "smtp"},
		"104": {"api_key": sentinel + "-sg", "default_reply_to_email": "r@x", "default_sender_email": "s@x", "default_sender_name": "X"},
		"105": {"sender_name": "ExampleCo"},
		"106": {"api_key": sentinel + "-mg", "domain": "mg.x", "sender_email": "s@x", "sender_name": "X"},
		"107": {"auth_token": sentinel + "-tg", "chat_id": "-100"},
	}
	got := f.patches()
	for id, settings := range want {
		bodies := got[id]
		if len(bodies) != 1 {
			t.Errorf("integration %s: got %d PATCHes, want 1", id, len(bodies))
			continue
		}
		if wantBody := map[string]any{"settings": settings}; !reflect.DeepEqual(bodies[0], wantBody) {
			t.Errorf("integration %s: the body differs from the expected one (keys got %v)", id, keysOf(bodies[0]["settings"]))
		}
	}
	for _, req := range f.hood.Requests() {
		if len(req.Dropped) > 0 {
			t.Errorf("Hood silently dropped %v of integration %s", req.Dropped, req.ID)
		}
	}
	for _, name := range []string{"twilio", "smtp", "mandrill", "sendgrid", "mitto", "mailgun", "telegram"} {
		if line := summaryLine(r.stdout, name); !strings.Contains(line, "pushed") {
			t.Errorf("summary of %s: got %q, want pushed", name, line)
		}
	}
	if line := summaryLine(r.stdout, "twilio"); !strings.Contains(line, " v1 ") {
		t.Errorf("summary of twilio: got %q, want Vault version v1", line)
	}
	if !strings.Contains(r.stderr, `vault key \"owner\"`) {
		t.Errorf("stderr: want a warning about the unmapped key owner, got:\n%s", r.stderr)
	}
}

func keysOf(v any) []string {
	m, _ := v.(map[string]any)
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestOnceAppRoleLogin(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"201": "telegram"})
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	ctx := context.Background()
	policy := fmt.Sprintf(`path "secret/data/%s/*" { capabilities = ["read"] }`, f.prefix)
	if err := vaultSrv.WritePolicy(ctx, "read-"+f.prefix, policy); err != nil {
		t.Fatal(err)
	}
	roleID, secretID, err := vaultSrv.EnableAppRole(ctx, "approle", "rotator-"+f.prefix, []string{"read-" + f.prefix})
	if err != nil {
		t.Fatal(err)
	}
	sidFile := filepath.Join(f.dir, "secret-id")
	if err := os.WriteFile(sidFile, []byte(secretID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	delete(f.env, "VAULT_TOKEN") // AppRole must not fall back to a token
	cfg := f.config(fmt.Sprintf("method: approle\n    role_id: %s\n    secret_id_file: %s", roleID, sidFile),
		`  - {name: tg, id: "201", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
`)
	r := f.rotator("once", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("exit code: got %d, want 0\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if n := len(f.patches()["201"]); n != 1 {
		t.Errorf("got %d PATCHes, want 1", n)
	}

	// A wrong secret id fails every integration with the login's reason, exit 1.
	if err := os.WriteFile(sidFile, []byte("not-the-secret-id"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = f.rotator("once", "--config", cfg)
	if r.code != 1 {
		t.Fatalf("exit code with a bad secret id: got %d, want 1\n%s", r.code, r.stdout)
	}
	if line := summaryLine(r.stdout, "tg"); !strings.Contains(line, "failed: log in to vault") {
		t.Errorf("summary: got %q, want a login failure", line)
	}
}

func TestOnceSharedPathReadOnce(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"301": "telegram", "302": "telegram", "303": "telegram"})
	f.put("secret", "shared", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	auditLog := filepath.Join(f.dir, "audit.log")
	if err := vaultSrv.EnableFileAudit(context.Background(), auditLog); err != nil {
		t.Fatal(err)
	}
	cfg := f.config("", `  - {name: a, id: "301", provider: telegram, source: {mount: secret, path: "{P}/shared"}}
  - {name: b, id: "302", provider: telegram, source: {mount: secret, path: "{P}/shared"}}
  - {name: c, id: "303", provider: telegram, source: {mount: secret, path: "{P}/shared"}, static: {chat_id: "3"}}
`)
	r := f.rotator("once", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("exit code: got %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := countAuditReads(t, auditLog, "secret/data/"+f.prefix+"/shared"); got != 1 {
		t.Errorf("Vault reads of the shared path (from Vault's audit log): got %d, want 1", got)
	}
	if got := countAuditReads(t, auditLog, "secret/data/"+f.prefix+"/rotator/hood"); got != 1 {
		t.Errorf("Vault reads of the Hood token: got %d, want 1", got)
	}
	if n := len(f.patches()); n != 3 {
		t.Errorf("got PATCHes for %d integrations, want 3", n)
	}
	if b, err := os.ReadFile(auditLog); err == nil && bytes.Contains(b, []byte(sentinel)) {
		t.Errorf("the Vault audit log holds the plain secret (it should hold HMACs)")
	}
}

// countAuditReads counts the read requests of a path in a Vault file audit log.
func countAuditReads(t *testing.T, file, path string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read audit log: %v", err)
	}
	n := 0
	for _, line := range bytes.Split(b, []byte("\n")) {
		var e struct {
			Type    string `json:"type"`
			Request struct {
				Operation string `json:"operation"`
				Path      string `json:"path"`
			} `json:"request"`
		}
		if json.Unmarshal(line, &e) != nil {
			continue
		}
		if e.Type == "request" && e.Request.Operation == "read" && e.Request.Path == path {
			n++
		}
	}
	return n
}

func TestOnceMissingKeyFailsOnlyThatIntegration(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"401": "twilio_sms", "402": "sendgrid_email"})
	f.put("secret", "twilio", map[string]any{"account_sid": "AC1", "default_phone_number": "+1"}) // no "token"
	f.put("secret", "sendgrid", map[string]any{"api_key": sentinel})
	cfg := f.config("", `  - {name: twilio, id: "401", provider: twilio_sms, source: {mount: secret, path: "{P}/twilio"}, fields: {auth_token: token}}
  - {name: sendgrid, id: "402", provider: sendgrid_email, source: {mount: secret, path: "{P}/sendgrid"}}
`)
	r := f.rotator("once", "--config", cfg)
	if r.code != 1 {
		t.Fatalf("exit code: got %d, want 1\n%s", r.code, r.stdout)
	}
	if line := summaryLine(r.stdout, "twilio"); !strings.Contains(line, `failed: cannot build settings: vault key "token" (for setting "auth_token") is missing`) {
		t.Errorf("twilio: got %q, want failed for the missing key", line)
	}
	if line := summaryLine(r.stdout, "sendgrid"); !strings.Contains(line, "pushed") {
		t.Errorf("sendgrid: got %q, want pushed", line)
	}
	if got := f.hood.Count("PATCH"); got != 1 {
		t.Errorf("PATCHes: got %d, want 1 (only sendgrid)", got)
	}
}

func TestWrongProviderFieldRefusedBeforeAnyCall(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"501": "mailgun_email"})
	f.put("secret", "mg", map[string]any{"key": sentinel})
	cfg := f.config("", `  - {name: mg, id: "501", provider: mailgun_email, source: {mount: secret, path: "{P}/mg"}, fields: {api_kye: key}}
`)
	for _, cmd := range []string{"validate", "plan", "once"} {
		r := f.rotator(cmd, "--config", cfg)
		if r.code != 2 {
			t.Errorf("%s: exit code got %d, want 2", cmd, r.code)
		}
		if want := "integrations[0].fields.api_kye (line 17): not a setting of provider mailgun_email"; !strings.Contains(r.stderr, want) {
			t.Errorf("%s: stderr got:\n%s\nwant it to contain %q", cmd, r.stderr, want)
		}
	}
	if got := f.hood.Count(""); got != 0 {
		t.Errorf("Hood requests: got %d, want 0", got)
	}
}

func TestPlanPushesNothing(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"601": "telegram"})
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	cfg := f.config("", `  - {name: tg, id: "601", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
`)
	r := f.rotator("plan", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("exit code: got %d, want 0\n%s", r.code, r.stderr)
	}
	if line := summaryLine(r.stdout, "tg"); !strings.Contains(line, "would push (changes: auth_token, chat_id)") {
		t.Errorf("plan: got %q, want would push with the setting names", line)
	}
	if got := f.hood.Count(""); got != 0 {
		t.Errorf("Hood requests: got %d, want 0", got)
	}
}

func TestOnceHoodFaults(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"701": "telegram", "702": "telegram", "703": "telegram"})
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	cfg := f.config("", `  - {name: throttled, id: "701", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
  - {name: flaky, id: "702", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
  - {name: broken, id: "703", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
`)
	f.hood.Inject(hoodtest.Fault{Method: "PATCH", ID: "701", Status: 429, RetryAfter: "1"})
	f.hood.Inject(hoodtest.Fault{Method: "PATCH", ID: "702", Status: 500})
	f.hood.Inject(hoodtest.Fault{Method: "PATCH", ID: "703", Status: 400, Times: -1})
	r := f.rotator("once", "--config", cfg)
	if r.code != 1 {
		t.Fatalf("exit code: got %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	perID := map[string][]hoodtest.Request{} // PATCHes by integration id
	for _, req := range f.hood.Requests() {
		if req.Method == "PATCH" {
			perID[req.ID] = append(perID[req.ID], req)
		}
	}
	if got := len(perID["701"]); got != 2 {
		t.Errorf("429 with Retry-After: got %d requests, want 2", got)
	} else if gap := perID["701"][1].Time.Sub(perID["701"][0].Time); gap < 900*time.Millisecond {
		t.Errorf("429 with Retry-After 1: retried after %v, want at least 1s", gap)
	}
	if got := len(perID["702"]); got != 2 {
		t.Errorf("500 then success: got %d requests, want 2", got)
	}
	if got := len(perID["703"]); got != 1 {
		t.Errorf("400: got %d requests, want 1 (no retry)", got)
	}
	for name, want := range map[string]string{"throttled": "pushed", "flaky": "pushed", "broken": "failed: "} {
		if line := summaryLine(r.stdout, name); !strings.Contains(line, want) {
			t.Errorf("%s: got %q, want %q", name, line, want)
		}
	}
	if line := summaryLine(r.stdout, "broken"); !strings.Contains(line, "trace_id") {
		t.Errorf("broken: got %q, want Hood's trace_id in the reason", line)
	}

	// An expired Hood token: 401 for every integration, one request each.
	f.hood.ClearFaults()
	f.hood.Reset()
	f.hood.SetTokens("a-newer-token")
	r = f.rotator("once", "--config", cfg, "--force")
	if r.code != 1 {
		t.Fatalf("exit code with a rejected token: got %d, want 1", r.code)
	}
	if got := f.hood.Count(""); got != 3 {
		t.Errorf("requests with a rejected token: got %d, want 3 (one read per integration, no retry, no push)", got)
	}
	for _, name := range []string{"throttled", "flaky", "broken"} {
		if line := summaryLine(r.stdout, name); !strings.Contains(line, "401") {
			t.Errorf("%s: got %q, want a 401 failure", name, line)
		}
	}
}

func TestOnceSixtyIntegrationsWithinDocumentedLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about a minute of rate-limited requests")
	}
	f := newFixture(t, hoodtest.Options{Burst: 10, PerMinute: 150}) // the documented limits
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	var b strings.Builder
	for i := range 60 {
		id := fmt.Sprint(8000 + i)
		f.addIntegrations(map[string]string{id: "telegram"})
		fmt.Fprintf(&b, "  - {name: tg-%d, id: %q, provider: telegram, source: {mount: secret, path: \"{P}/tg\"}}\n", i, id)
	}
	cfg := f.config("", b.String())
	r := f.rotator("once", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("exit code: got %d, want 0\n%s", r.code, r.stdout)
	}
	if got := f.hood.Throttled(); got != 0 {
		t.Errorf("429 answers: got %d, want 0", got)
	}
	if got := f.hood.Count("PATCH"); got != 60 {
		t.Errorf("PATCHes: got %d, want 60", got)
	}
	if got := f.hood.Count("GET"); got != 120 {
		t.Errorf("GETs: got %d, want 120 (a preflight and a verification per integration)", got)
	}
	if !strings.Contains(r.stdout, "60 integration(s): 60 pushed") {
		t.Errorf("summary: got\n%s", r.stdout)
	}
}

func TestCommandLineErrors(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	cfg := f.config("", `  - {name: tg, id: "1", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
`)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "Usage:"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"once"}, 2, "no configuration file"},
		{[]string{"once", "--config", cfg, "--only", "nope"}, 2, `unknown integration: ["nope"]`},
		{[]string{"once", "--config", cfg, "--log-level", "loud"}, 2, `--log-level: "loud"`},
		{[]string{"once", "--config", filepath.Join(f.dir, "missing.yaml")}, 2, "missing.yaml"},
		{[]string{"plan", "--config", cfg, "--force"}, 2, "flag provided but not defined: -force"},
		{[]string{"validate", "--config", cfg}, 0, "valid, 1 integration(s)"},
		{[]string{"version"}, 0, "rotator dev"},
		{[]string{"run", "--help"}, 0, "-shutdown-timeout"},
		{[]string{"once", "-h"}, 0, "-force"},
		{[]string{"--help"}, 0, "Usage:"},
		{[]string{"run", "--config", filepath.Join(f.dir, "missing.yaml")}, 2, "missing.yaml"},
		{[]string{"run"}, 2, "no configuration file"},
	}
	for _, tt := range tests {
		r := f.rotator(tt.args...)
		if r.code != tt.code {
			t.Errorf("rotator %v: exit code got %d, want %d", tt.args, r.code, tt.code)
		}
		if !strings.Contains(r.stdout+r.stderr, tt.want) {
			t.Errorf("rotator %v: output got\n%s%s\nwant it to contain %q", tt.args, r.stdout, r.stderr, tt.want)
		}
	}
	// --config falls back to $ROTATOR_CONFIG.
	f.env["ROTATOR_CONFIG"] = cfg
	if r := f.rotator("validate"); r.code != 0 {
		t.Errorf("validate with $ROTATOR_CONFIG: got %d, want 0\n%s", r.code, r.stderr)
	}
}
