package rotation_test

// The world of the rotation tests: a real OpenBao server (internal/vaulttest),
// the Hood test server and the provider test servers over loopback HTTP, and
// the runtime built from a configuration file as `rotator` builds it.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
	"github.com/ocamba-rotator/rotator/internal/provider/providertest"
	"github.com/ocamba-rotator/rotator/internal/rotation"
	"github.com/ocamba-rotator/rotator/internal/runtime"
	"github.com/ocamba-rotator/rotator/internal/secret"
	"github.com/ocamba-rotator/rotator/internal/testkit"
	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

// sentinel starts every credential of these tests: it must never show in a
// log line, audit line, record, result or error.
const sentinel = "SENTINEL-rot-4c2f"

var (
	vaultSrv *vaulttest.Server
	seq      atomic.Int64
)

func TestMain(m *testing.M) {
	os.Exit(vaulttest.ForMain(m, func(s *vaulttest.Server) int {
		vaultSrv = s
		return m.Run()
	}))
}

const twilioSID = "AC0123456789abcdef0123456789abcdef"

// kind is one mintable provider's setup.
type kind struct {
	provider string
	setting  string // the credential's setting
}

var kinds = []kind{
	{"sendgrid_email", "api_key"},
	{"mailgun_email", "api_key"},
	{"twilio_sms", "auth_token"},
}

// world is one test's servers, secret and configuration.
type world struct {
	t         *testing.T
	k         kind
	prefix    string
	dir       string
	hood      *hoodtest.Server
	sg        *providertest.SendGridServer
	mg        *providertest.MailgunServer
	tw        *providertest.TwilioServer
	consumers []string // Hood ids
	cfgPath   string
	logs      *testkit.SyncBuffer
	handID    string // the hand-made key's id (SendGrid, Mailgun)
	hand      secret.Value
	tokenSeq  atomic.Int64

	mu         sync.Mutex
	violations []string
}

// newWorld seeds a credential made by hand, n consumers holding it in Hood,
// and a configuration with the rotation "rot" of its secret.
func newWorld(t *testing.T, k kind, n int, extra string) *world {
	t.Helper()
	vaulttest.Require(t, vaultSrv)
	w := &world{t: t, k: k, prefix: fmt.Sprintf("r%d", seq.Add(1)), dir: t.TempDir(), logs: &testkit.SyncBuffer{}}
	h, err := hoodtest.Start(hoodtest.Options{Tokens: []string{"hood-" + sentinel}, Burst: -1, PerMinute: -1})
	if err != nil {
		t.Fatalf("start hood test server: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	w.hood = h
	w.put("hood", map[string]any{"token": "hood-" + sentinel})

	data := map[string]any{}
	providerAPI := ""
	manager := ""
	switch k.provider {
	case "sendgrid_email":
		w.sg = providertest.NewSendGridServer()
		t.Cleanup(w.sg.Close)
		w.sg.SetSecretPrefix("SG." + sentinel + "-")
		w.hand = secret.New("SG." + sentinel + "-hand")
		w.handID = w.sg.SeedKeyValue(w.hand, "made by hand", "mail.send")
		_, mgr := w.sg.SeedKey("manager", "api_keys.create", "api_keys.read", "api_keys.delete", "mail.send")
		w.put("mgr", map[string]any{"key": mgr.Reveal()})
		providerAPI, manager = w.sg.URL(), "manager: {mount: secret, path: "+w.prefix+"/mgr, key: key}"
		data["api_key"] = w.hand.Reveal()
	case "mailgun_email":
		w.mg = providertest.NewMailgunServer(providertest.MailgunServerOptions{SecretPrefix: sentinel + "-"})
		t.Cleanup(w.mg.Close)
		w.mg.AddDomain("mg.example.com")
		w.hand = secret.New(sentinel + "-hand")
		w.handID = w.mg.SeedKey(providertest.MailgunServerKey{Kind: "domain", Role: "sending", DomainName: "mg.example.com", Secret: w.hand.Reveal(), Description: "made by hand"})
		w.put("mgr", map[string]any{"key": sentinel + "-manager"})
		w.mg.SeedManagingKey(sentinel + "-manager")
		providerAPI, manager = w.mg.URL(), "manager: {mount: secret, path: "+w.prefix+"/mgr, key: key}"
		data["api_key"], data["domain"] = w.hand.Reveal(), "mg.example.com"
	case "twilio_sms":
		w.tw = providertest.NewTwilioServer(providertest.TwilioServerOptions{NewToken: func() string {
			return fmt.Sprintf("%s-tok%d", sentinel, w.tokenSeq.Add(1))
		}})
		t.Cleanup(w.tw.Close)
		w.hand = secret.New(sentinel + "-primary")
		w.tw.SeedAccount(twilioSID, w.hand)
		providerAPI, manager = w.tw.URL(), "dedicated_account: true"
		data["auth_token"], data["account_sid"] = w.hand.Reveal(), twilioSID
	}
	w.put("cred", data)
	h.SetVerifier(func(_, _ string, settings map[string]string) string {
		if w.accepts(settings[k.setting]) {
			return "active"
		}
		return "failed"
	})

	var integrations strings.Builder
	for i := range n {
		id := fmt.Sprint(9001 + i)
		settings := map[string]string{}
		for key, v := range data {
			settings[key] = fmt.Sprint(v)
		}
		if err := h.AddIntegration(id, k.provider, settings); err != nil {
			t.Fatal(err)
		}
		w.consumers = append(w.consumers, id)
		fmt.Fprintf(&integrations, "  - {name: c%d, id: %q, provider: %s, source: {mount: secret, path: %s/cred}}\n", i, id, k.provider, w.prefix)
	}
	body := fmt.Sprintf(`vault:
  address: %s
  auth: {method: token, token_file: %s}
hood:
  base_url: %s
  allow_insecure_http: true
  token: {vault: {mount: secret, path: %s/hood, key: token}}
  rate_limit: {burst: 1000, per_minute: 100000}
  retry: {max_attempts: 2, initial_backoff: 10ms, max_backoff: 50ms}
  timeout: 1s
  verify_timeout: 2s
state: {path: %s}
audit: {path: %s}
provider_api:
  %s: %s
rotation_records: {mount: secret, path: %s/records}
integrations:
%srotations:
  - name: rot
    provider: %s
    secret: {mount: secret, path: %s/cred}
    grace: 300ms
    %s
%s`, vaultSrv.Addr, w.write("token", vaultSrv.RootToken), h.URL(), w.prefix,
		filepath.Join(w.dir, "state.db"), filepath.Join(w.dir, "audit.log"),
		k.provider, providerAPI, w.prefix, integrations.String(), k.provider, w.prefix, manager, extra)
	w.cfgPath = w.write("config.yaml", body)
	return w
}

func (w *world) write(name, body string) string {
	w.t.Helper()
	p := filepath.Join(w.dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return p
}

func (w *world) put(path string, data map[string]any) int {
	w.t.Helper()
	v, err := vaultSrv.PutKV(context.Background(), "secret", w.prefix+"/"+path, data)
	if err != nil {
		w.t.Fatalf("put %s: %v", path, err)
	}
	return v
}

// accepts reports whether the provider accepts the credential value now.
func (w *world) accepts(v string) bool {
	switch w.k.provider {
	case "sendgrid_email":
		return w.sg.Accepts(secret.New(v))
	case "mailgun_email":
		return w.mg.CanSend(v, "mg.example.com")
	default:
		return w.tw.Authenticates(twilioSID, secret.New(v))
	}
}

// held returns the credential each consumer holds in Hood.
func (w *world) held() map[string]string {
	out := map[string]string{}
	for _, id := range w.consumers {
		in, ok := w.hood.Integration(id)
		if !ok {
			w.t.Fatalf("integration %s is gone", id)
		}
		out[id] = in.Settings[w.k.setting]
	}
	return out
}

// watch checks, until stop, that every consumer holds a credential the
// provider accepts (the continuous check).
func (w *world) watch() (stop func() []string) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			for id, v := range w.held() {
				if !w.accepts(v) {
					w.mu.Lock()
					w.violations = append(w.violations, "integration "+id+" holds a credential the provider refuses")
					w.mu.Unlock()
				}
			}
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	return func() []string {
		close(done)
		wg.Wait()
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.violations
	}
}

// build builds the runtime from the configuration, as a (re)started rotator does.
func (w *world) build(crash func(string) error) (*runtime.Runtime, *rotation.Runner) {
	w.t.Helper()
	cfg, err := config.LoadAndValidate(w.cfgPath, func(string) string { return "" })
	if err != nil {
		w.t.Fatalf("load the configuration: %v", err)
	}
	log := slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rt, err := runtime.Build(context.Background(), cfg, runtime.Options{
		Logger: log, Getenv: func(string) string { return "" }, Version: "test", Limiters: hood.NewLimiters(),
	})
	if err != nil {
		w.t.Fatalf("build the runtime: %v", err)
	}
	if rt.Rotations == nil {
		w.t.Fatal("runtime has no rotation runner")
	}
	r := rotation.WithCrash(rt.Rotations, crash)
	return rt, r
}

// run builds a runtime and runs the rotation once (Begin), then closes it.
func (w *world) run(begin bool, crash func(string) error) (rotation.Result, error) {
	w.t.Helper()
	rt, r := w.build(crash)
	defer rt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return r.Run(ctx, "rot", rotation.Request{Trigger: "cli", Begin: begin})
}

// finish runs the rotation until it rests, waiting out grace.
func (w *world) finish(begin bool) rotation.Result {
	w.t.Helper()
	res, err := w.until(begin, nil)
	if err != nil {
		w.t.Fatalf("run: %v", err)
	}
	return res
}

// until runs the rotation until it rests, waiting out grace, or until a
// run fails.
func (w *world) until(begin bool, crash func(string) error) (rotation.Result, error) {
	w.t.Helper()
	for range 20 {
		res, err := w.run(begin, crash)
		if err != nil {
			return res, err
		}
		if res.GraceUntil == nil {
			return res, nil
		}
		begin = false
		time.Sleep(time.Until(*res.GraceUntil) + 10*time.Millisecond)
	}
	w.t.Fatal("the rotation did not come to rest in 20 runs")
	return rotation.Result{}, nil
}

// record reads the rotation's record from Vault.
func (w *world) record() rotation.Record {
	w.t.Helper()
	s, err := vaultSrv.Client().Logical().Read("secret/data/" + w.prefix + "/records/rot")
	if err != nil || s == nil {
		w.t.Fatalf("read the record: %v", err)
	}
	return recordOf(w.t, s.Data["data"])
}

// expireLease makes the record's lease run out, as the TTL passing after a
// crash does.
func (w *world) expireLease() {
	w.t.Helper()
	c := vaultSrv.Client()
	s, err := c.Logical().Read("secret/data/" + w.prefix + "/records/rot")
	if err != nil || s == nil {
		w.t.Fatalf("read the record: %v", err)
	}
	data := s.Data["data"].(map[string]any)
	data["held_until"] = time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	if _, err := c.Logical().Write("secret/data/"+w.prefix+"/records/rot", map[string]any{"data": data}); err != nil {
		w.t.Fatalf("expire the lease: %v", err)
	}
}

// current reads the credential the secret holds now, and its version.
func (w *world) current() (string, int) {
	w.t.Helper()
	s, err := vaultSrv.Client().KVv2("secret").Get(context.Background(), w.prefix+"/cred")
	if err != nil {
		w.t.Fatalf("read the secret: %v", err)
	}
	return fmt.Sprint(s.Data[w.k.setting]), s.VersionMetadata.Version
}

// orphans returns the provider's keys with the rotation's prefix other than keep.
func (w *world) orphans(keep string) []string {
	var out []string
	switch w.k.provider {
	case "sendgrid_email":
		for _, k := range w.sg.Keys() {
			if strings.HasPrefix(k.Name, "rotator-rot-") && k.ID != keep {
				out = append(out, k.ID)
			}
		}
	case "mailgun_email":
		for _, k := range w.mg.Keys() {
			if strings.HasPrefix(k.Description, "rotator-rot-") && k.ID != keep {
				out = append(out, k.ID)
			}
		}
	case "twilio_sms":
		if w.tw.HasSecondary(twilioSID) {
			out = append(out, "secondary auth token")
		}
	}
	return out
}

// noLeak fails the test if the sentinel shows in the logs, the audit log or
// the rotation's record.
func (w *world) noLeak(extra ...string) {
	w.t.Helper()
	audit, _ := os.ReadFile(filepath.Join(w.dir, "audit.log"))
	s, _ := vaultSrv.Client().Logical().Read("secret/data/" + w.prefix + "/records/rot")
	rec := ""
	if s != nil {
		rec = fmt.Sprint(s.Data)
	}
	for name, text := range map[string]string{"log": w.logs.String(), "audit log": string(audit), "record": rec, "results": strings.Join(extra, "\n")} {
		if strings.Contains(text, sentinel) {
			w.t.Errorf("the %s holds a credential (sentinel %q)", name, sentinel)
		}
	}
	if !bytes.Contains(audit, []byte(`"event":"rotation"`)) {
		w.t.Errorf("the audit log has no rotation line:\n%s", audit)
	}
}

// recordOf decodes a record read from Vault.
func recordOf(t *testing.T, data any) rotation.Record {
	t.Helper()
	b, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	var rec rotation.Record
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatalf("decode the record: %v", err)
	}
	return rec
}

// inject queues a fault on the provider's test server.
func (w *world) inject(f providertest.Fault) {
	switch w.k.provider {
	case "sendgrid_email":
		w.sg.Inject(f)
	case "mailgun_email":
		w.mg.Inject(f)
	default:
		w.tw.Inject(f)
	}
}

// revokeNewest makes the provider refuse the credential minted last, as if
// revoked behind rotator's back.
func (w *world) revokeNewest() {
	switch w.k.provider {
	case "sendgrid_email":
		keys := w.sg.Keys()
		w.sg.Remove(keys[len(keys)-1].ID)
	case "mailgun_email":
		keys := w.mg.Keys()
		w.mg.Remove(keys[len(keys)-1].ID)
	default:
		w.tw.DropSecondary(twilioSID)
	}
}

// haMode rewrites the configuration with ha.mode vault (records under the
// world's prefix): rotators built afterwards share state through Vault.
func (w *world) haMode() {
	w.t.Helper()
	body, err := os.ReadFile(w.cfgPath)
	if err != nil {
		w.t.Fatal(err)
	}
	w.write("config.yaml", string(body)+strings.ReplaceAll(haExtra, "HA", w.prefix+"/ha"))
}
