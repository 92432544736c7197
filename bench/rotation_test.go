package bench

// BenchmarkRotation (issue 14): one rotation of a SendGrid credential that N
// Hood integrations read from one Vault secret, from the mint to the revoke
// of the old key. Run it alone with
//
//	BENCH=Rotation scripts/bench.sh
//
// Environment: ROTATOR_BENCH_ROTATION_N, the numbers of consuming
// integrations (default "100"); ROTATOR_BENCH_GRACE, the rotation's grace
// (default "1s"; it is waited out and counted apart).
//
// rotator has no command that runs a rotation yet (the admin API and
// `rotator rotate` come later), so the rotation runs in-process: the runtime
// is built from a configuration file with runtime.Build, as `rotator` builds
// it, and its rotation runner runs the rotation. Everything it talks to is
// real and on loopback: OpenBao (the shared Env, whose audit log counts the
// Vault requests), the Hood test server enforcing Hood's documented limits
// as strict sliding windows, and the SendGrid test server behind a counting
// proxy.

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
	"github.com/ocamba-rotator/rotator/internal/provider/providertest"
	"github.com/ocamba-rotator/rotator/internal/rotation"
	"github.com/ocamba-rotator/rotator/internal/runtime"
	"github.com/ocamba-rotator/rotator/internal/secret"
)

func BenchmarkRotation(b *testing.B) {
	grace := time.Second
	if v := os.Getenv("ROTATOR_BENCH_GRACE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			b.Fatalf("ROTATOR_BENCH_GRACE=%q: want a duration of at least 1s (the configuration's smallest grace)", v)
		}
		grace = d
	}
	for _, n := range envInts(b, "ROTATOR_BENCH_ROTATION_N", []int{100}) {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) { benchRotation(b, n, grace) })
	}
}

// providerCall is one request the SendGrid test server received.
type providerCall struct {
	at       time.Time
	endpoint string // "METHOD /path", key ids as {id}
}

// countingProxy forwards to a provider test server and records every request.
type countingProxy struct {
	srv   *httptest.Server
	mu    sync.Mutex
	calls []providerCall
}

func newCountingProxy(target string) (*countingProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	p := &countingProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		if rest, ok := strings.CutPrefix(path, "/v3/api_keys/"); ok && rest != "" {
			path = "/v3/api_keys/{id}"
		}
		p.mu.Lock()
		p.calls = append(p.calls, providerCall{at: time.Now(), endpoint: r.Method + " " + path})
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	return p, nil
}

func (p *countingProxy) take() []providerCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.calls
	p.calls = nil
	return out
}

// rotationWorld is one N: the SendGrid account, the Hood integrations, the
// secrets and the configuration.
type rotationWorld struct {
	n       int
	dir     string
	prefix  string // Vault path prefix inside secret/
	hood    *hoodtest.Server
	sg      *providertest.SendGridServer
	proxy   *countingProxy
	cfgPath string
	ids     []string
}

func newRotationWorld(b *testing.B, e *Env, n int, grace time.Duration) *rotationWorld {
	b.Helper()
	ctx := context.Background()
	w := &rotationWorld{n: n, dir: filepath.Join(e.Dir, fmt.Sprintf("rotation%d", n)), prefix: fmt.Sprintf("bench/rotation%d", n)}
	if err := os.MkdirAll(w.dir, 0o700); err != nil {
		b.Fatal(err)
	}
	w.sg = providertest.NewSendGridServer()
	b.Cleanup(w.sg.Close)
	var err error
	if w.proxy, err = newCountingProxy(w.sg.URL()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.proxy.srv.Close)
	hand := secret.New("SG.bench-hand-made")
	handID := w.sg.SeedKeyValue(hand, "made by hand", "mail.send")
	_, mgr := w.sg.SeedKey("manager", providertest.SendGridScopeCreate, providertest.SendGridScopeRead, providertest.SendGridScopeDelete, "mail.send")

	// Hood's documented limits, strict sliding windows.
	const token = "hood-bench-rotation"
	w.hood, err = hoodtest.Start(hoodtest.Options{Tokens: []string{token},
		Burst: Documented.Burst, PerMinute: Documented.PerLong, Window: Documented.Short, LongWindow: Documented.Long})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = w.hood.Close() })
	// Hood's credentials test: a pushed key is active when SendGrid takes it.
	w.hood.SetVerifier(func(_, _ string, settings map[string]string) string {
		if w.sg.Accepts(secret.New(settings["api_key"])) {
			return "active"
		}
		return "failed"
	})

	put := func(path string, data map[string]any) int {
		v, err := e.Vault.PutKV(ctx, "secret", w.prefix+"/"+path, data)
		if err != nil {
			b.Fatalf("put %s: %v", path, err)
		}
		return v
	}
	put("hood", map[string]any{"token": token})
	put("mgr", map[string]any{"key": mgr.Reveal()})
	version := put("cred", map[string]any{"api_key": hand.Reveal()})
	// The record of an earlier rotation that minted the current key: every
	// rotation but a credential's first knows the old key's id, and revokes
	// it (the first leaves a hand-made key to be deleted by hand).
	seedRecord(b, e, w.prefix+"/records/rot", rotation.Record{Name: "rot", Provider: "sendgrid_email", Step: rotation.StepDone,
		Since: time.Now().UTC(), Current: rotation.Current{Version: version, KeyID: handID}})

	var ins strings.Builder
	for i := range n {
		id := IntegrationID(i)
		if err := w.hood.AddIntegration(id, "sendgrid_email", map[string]string{"api_key": hand.Reveal()}); err != nil {
			b.Fatal(err)
		}
		w.ids = append(w.ids, id)
		fmt.Fprintf(&ins, "  - {name: c%03d, id: %q, provider: sendgrid_email, source: {mount: secret, path: %s/cred}}\n", i, id, w.prefix)
	}
	tokenFile := filepath.Join(w.dir, "vault-token")
	if err := os.WriteFile(tokenFile, []byte(e.Vault.RootToken), 0o600); err != nil {
		b.Fatal(err)
	}
	// hood: every setting but the address and the token is the default
	// (rate_limit 10/150, max_in_flight 4, verify_timeout 30s, retry).
	cfg := fmt.Sprintf(`vault:
  address: %s
  auth: {method: token, token_file: %s}
hood:
  base_url: %s
  allow_insecure_http: true
  token: {vault: {mount: secret, path: %s/hood, key: token}}
state: {path: %s}
audit: {path: %s}
provider_api:
  sendgrid_email: %s
rotation_records: {mount: secret, path: %s/records}
integrations:
%srotations:
  - name: rot
    provider: sendgrid_email
    secret: {mount: secret, path: %s/cred}
    manager: {mount: secret, path: %s/mgr, key: key}
    grace: %s
`, e.Vault.Addr, tokenFile, w.hood.URL(), w.prefix, filepath.Join(w.dir, "state.db"), filepath.Join(w.dir, "audit.jsonl"),
		w.proxy.srv.URL, w.prefix, ins.String(), w.prefix, w.prefix, grace)
	w.cfgPath = filepath.Join(w.dir, "config.yaml")
	if err := os.WriteFile(w.cfgPath, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	return w
}

// seedRecord writes a rotation record to Vault as the runner writes it.
func seedRecord(b *testing.B, e *Env, path string, rec rotation.Record) {
	b.Helper()
	raw, err := json.Marshal(rec)
	if err != nil {
		b.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		b.Fatal(err)
	}
	if _, err := e.Vault.PutKV(context.Background(), "secret", path, data); err != nil {
		b.Fatalf("seed the rotation record: %v", err)
	}
}

// stepAt is when the runner recorded a step.
type stepAt struct {
	step rotation.Step
	at   time.Time
}

// rotationRun is what one rotation measured.
type rotationRun struct {
	start, graceFrom, graceTo, end time.Time
	steps                          []stepAt
	hood                           []hoodtest.Request
	throttled                      int
	provider                       []providerCall
	vault                          AuditCount
	vaultOps                       map[string]int // rotator's own count, by operation
}

func (r rotationRun) total() time.Duration     { return r.end.Sub(r.start) }
func (r rotationRun) graceWait() time.Duration { return r.graceTo.Sub(r.graceFrom) }
func (r rotationRun) active() time.Duration    { return r.total() - r.graceWait() }

// stepTime is when step was first recorded (zero if never).
func (r rotationRun) stepTime(step rotation.Step) time.Time {
	for _, s := range r.steps {
		if s.step == step {
			return s.at
		}
	}
	return time.Time{}
}

// rotateOnce runs one whole rotation: a run that begins it and stops at the
// grace period, the wait until the grace ends, and the run that confirms
// the consumers again and revokes the old key (what a daemon does when the
// grace ends). The runtime is built fresh, as a started rotator builds it:
// its rate limiter starts with empty windows, and so does Hood's (Reset).
func rotateOnce(b *testing.B, e *Env, w *rotationWorld) rotationRun {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cfg, err := config.LoadAndValidate(w.cfgPath, func(string) string { return "" })
	if err != nil {
		b.Fatalf("load the configuration: %v", err)
	}
	var logs lockedBuffer
	var mu sync.Mutex
	run := rotationRun{vaultOps: map[string]int{}}
	rt, err := runtime.Build(ctx, cfg, runtime.Options{
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Getenv: func(string) string { return "" }, Version: "bench", Limiters: hood.NewLimiters(),
		ObserveVault: func(op, result string) {
			mu.Lock()
			run.vaultOps[op+" "+result]++
			mu.Unlock()
		},
		OnRotationStep: func(rec rotation.Record) {
			mu.Lock()
			run.steps = append(run.steps, stepAt{rec.Step, time.Now()})
			mu.Unlock()
		},
	})
	if err != nil {
		b.Fatalf("build the runtime: %v", err)
	}
	defer rt.Close()
	if want := (hood.Limits{Burst: Documented.Burst, PerMinute: Documented.PerLong}); rt.Limits != want {
		b.Fatalf("rotator's rate limits: %+v, want the defaults %+v", rt.Limits, want)
	}
	mark, err := e.AuditMark()
	if err != nil {
		b.Fatal(err)
	}
	w.hood.Reset()
	w.proxy.take()

	run.start = time.Now()
	res, err := rt.Rotations.Run(ctx, "rot", rotation.Request{Trigger: "cli", Begin: true})
	if err != nil || res.Step != rotation.StepVerified || res.GraceUntil == nil {
		b.Fatalf("first run: step %q, error %v (%s)\n%s", res.Step, err, res.Error, tailLines(logs.String(), 20))
	}
	run.graceFrom = time.Now()
	time.Sleep(time.Until(*res.GraceUntil))
	run.graceTo = time.Now()
	res, err = rt.Rotations.Run(ctx, "rot", rotation.Request{Trigger: "schedule"})
	run.end = time.Now()
	if err != nil || res.Step != rotation.StepDone {
		b.Fatalf("run after the grace: step %q, error %v (%s)\n%s", res.Step, err, res.Error, tailLines(logs.String(), 20))
	}
	if len(res.Notes) > 0 {
		b.Fatalf("the rotation left notes (the old key not revoked?): %q", res.Notes)
	}

	run.hood, run.throttled = w.hood.Requests(), w.hood.Throttled()
	run.provider = w.proxy.take()
	if run.vault, err = e.AuditSince(mark); err != nil {
		b.Fatal(err)
	}
	w.check(b, e)
	return run
}

// check fails the benchmark unless every consumer holds the secret's new
// credential, SendGrid accepts it, and only it and the manager remain.
func (w *rotationWorld) check(b *testing.B, e *Env) {
	b.Helper()
	s, err := e.Vault.Client().KVv2("secret").Get(context.Background(), w.prefix+"/cred")
	if err != nil {
		b.Fatal(err)
	}
	cur := fmt.Sprint(s.Data["api_key"])
	if !w.sg.Accepts(secret.New(cur)) {
		b.Fatal("SendGrid refuses the secret's new credential")
	}
	for _, id := range w.ids {
		in, ok := w.hood.Integration(id)
		if !ok || in.Settings["api_key"] != cur {
			b.Fatalf("integration %s does not hold the new credential", id)
		}
	}
	if keys := w.sg.Keys(); len(keys) != 2 {
		b.Fatalf("SendGrid holds %d keys after the rotation, want 2 (the manager and the new key): the old one was not revoked", len(keys))
	}
}

// countBy counts items by key, sorted "key: n" strings.
func countBy[T any](items []T, key func(T) string) map[string]int {
	out := map[string]int{}
	for _, it := range items {
		out[key(it)]++
	}
	return out
}

func formatCounts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// vaultPathKind names an audit log path of the rotation world.
func (w *rotationWorld) vaultPathKind(p string) string {
	switch p {
	case "secret/data/" + w.prefix + "/cred":
		return "credential secret"
	case "secret/data/" + w.prefix + "/mgr":
		return "managing key"
	case "secret/data/" + w.prefix + "/hood":
		return "Hood token"
	case "secret/data/" + w.prefix + "/records/rot":
		return "rotation record"
	case "auth/token/lookup-self":
		return "token look-up"
	}
	return p
}

func benchRotation(b *testing.B, n int, grace time.Duration) {
	e := sharedEnv(b)
	w := newRotationWorld(b, e, n, grace)
	var runs []rotationRun
	b.ResetTimer()
	for range b.N {
		runs = append(runs, rotateOnce(b, e, w))
	}
	b.StopTimer()
	// Figures of the last rotation (b.N is 1 unless -benchtime asks more).
	r := runs[len(runs)-1]
	var total, active time.Duration
	for _, x := range runs {
		total += x.total()
		active += x.active()
	}
	per := time.Duration(len(runs))
	total, active = total/per, active/per

	R := len(r.hood)
	least := LeastTime(R, Documented)
	if closed, ok := LeastTimeClosed(R, Documented); !ok || closed != least {
		b.Fatalf("closed form %s (%v) differs from the greedy schedule %s", closed, ok, least)
	}
	times := make([]time.Time, R)
	before, after := 0, 0
	for i, q := range r.hood {
		times[i] = q.Time
		if q.Time.Before(r.graceTo) {
			before++
		} else {
			after++
		}
	}
	byMethod := countBy(r.hood, func(q hoodtest.Request) string { return q.Method })
	stored, verified := r.stepTime(rotation.StepStored), r.stepTime(rotation.StepVerified)
	var span time.Duration
	if R > 1 {
		span = times[R-1].Sub(times[0])
	}
	bound, slackMean, slackMax := windowSlack(times, Documented)
	providerBefore := countBy(slices.DeleteFunc(slices.Clone(r.provider), func(c providerCall) bool { return !c.at.Before(r.graceTo) }),
		func(c providerCall) string { return c.endpoint })
	providerAfter := countBy(slices.DeleteFunc(slices.Clone(r.provider), func(c providerCall) bool { return c.at.Before(r.graceTo) }),
		func(c providerCall) string { return c.endpoint })
	vaultKinds := map[string]int{}
	for p, c := range r.vault.ByPath {
		vaultKinds[w.vaultPathKind(p)] += c
	}

	b.ReportMetric(total.Seconds(), "wall-s")
	b.ReportMetric(active.Seconds(), "wall-no-grace-s")
	b.ReportMetric(least.Seconds(), "least-s")
	b.ReportMetric(active.Seconds()/least.Seconds(), "wall/least")
	b.ReportMetric(float64(R), "hood-req")
	b.ReportMetric(float64(R)/float64(n), "hood-req/consumer")
	b.ReportMetric(float64(r.throttled), "429s")
	b.ReportMetric(float64(len(r.provider)), "provider-calls")
	b.ReportMetric(float64(r.vault.Requests), "vault-req")

	b.Logf("N=%d, grace %s: wall %.2fs = %.2fs of work + %.2fs waiting out the grace; least time for %d Hood requests under 10/1s and 150/1min: %s; wall without grace ÷ least = %.4f",
		n, grace, total.Seconds(), active.Seconds(), r.graceWait().Seconds(), R, least, active.Seconds()/least.Seconds())
	b.Logf("N=%d: Hood requests %d (%s), %.2f per consumer; %d before the grace ends, %d after; 429s: %d; most in any 1s: %d, in any 1min: %d",
		n, R, formatCounts(byMethod), float64(R)/float64(n), before, after, r.throttled, maxInWindow(times, time.Second), maxInWindow(times, time.Minute))
	if R > 1 {
		b.Logf("N=%d: first → last Hood request %.2fs (%.4f× least); %d requests held by a window came %s after the server would have admitted them on average (worst %s)",
			n, span.Seconds(), span.Seconds()/least.Seconds(), bound, slackMean.Round(100*time.Microsecond), slackMax.Round(100*time.Microsecond))
	}
	var steps []string
	prev := r.start
	for _, s := range r.steps {
		steps = append(steps, fmt.Sprintf("%q +%s", s.step, s.at.Sub(prev).Round(time.Millisecond)))
		prev = s.at
	}
	b.Logf("N=%d: steps (time since the previous one): start, %s; end of the run +%s", n, strings.Join(steps, ", "), r.end.Sub(prev).Round(time.Millisecond))
	b.Logf("N=%d: push pass (stored → verified) %.2fs; before it (start → stored) %s; after the grace (grace end → done) %s",
		n, verified.Sub(stored).Seconds(), stored.Sub(r.start).Round(time.Millisecond), r.end.Sub(r.graceTo).Round(time.Millisecond))
	b.Logf("N=%d: provider calls %d: before the grace %s; after it %s", n, len(r.provider), formatCounts(providerBefore), formatCounts(providerAfter))
	b.Logf("N=%d: Vault requests %d (audit log): %s; rotator's own count: %s", n, r.vault.Requests, formatCounts(vaultKinds), formatCounts(r.vaultOps))
}
