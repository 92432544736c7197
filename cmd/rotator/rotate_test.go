package main

// End-to-end tests of rotations from the command line and the daemon:
// `rotator rotate` (in-process, and the built binary stopped by SIGINT)
// and `rotator run`'s rotation runs and routes, against the real OpenBao
// server, the Hood test server and the SendGrid test server.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
	"github.com/ocamba-rotator/rotator/internal/provider/providertest"
	"github.com/ocamba-rotator/rotator/internal/secret"
)

// sgRotation is a SendGrid rotation "sg" of one secret read by consumers
// in Hood: its provider test server, the hand-made key they hold, and the
// configuration it takes.
type sgRotation struct {
	f    *fixture
	sg   *providertest.SendGridServer
	hand secret.Value
	ids  []string
	// extra is the top-level YAML it needs (provider_api,
	// rotation_records); integrations the integrations block and the
	// rotations section after it.
	extra, integrations string
}

// sendgridRotation seeds the SendGrid test server (every key it mints
// holds the sentinel), the secret, its managing key and the consumers
// with Hood ids.
func (f *fixture) sendgridRotation(grace string, ids ...string) *sgRotation {
	f.t.Helper()
	r := &sgRotation{f: f, sg: providertest.NewSendGridServer(), ids: ids}
	f.t.Cleanup(r.sg.Close)
	r.sg.SetSecretPrefix("SG." + sentinel + "-")
	r.hand = secret.New("SG." + sentinel + "-hand")
	r.sg.SeedKeyValue(r.hand, "made by hand", "mail.send")
	_, mgr := r.sg.SeedKey("manager", "api_keys.create", "api_keys.read", "api_keys.delete", "mail.send")
	f.put("secret", "sgmgr", map[string]any{"key": mgr.Reveal()})
	f.put("secret", "sg", map[string]any{"api_key": r.hand.Reveal()})
	f.hood.SetVerifier(func(_, _ string, settings map[string]string) string {
		if r.sg.Accepts(secret.New(settings["api_key"])) {
			return "active"
		}
		return "failed"
	})
	var b strings.Builder
	for i, id := range ids {
		if err := f.hood.AddIntegration(id, "sendgrid_email", map[string]string{"api_key": r.hand.Reveal()}); err != nil {
			f.t.Fatal(err)
		}
		fmt.Fprintf(&b, "  - {name: c%d, id: %q, provider: sendgrid_email, source: {mount: secret, path: \"{P}/sg\"}}\n", i, id)
	}
	fmt.Fprintf(&b, `rotations:
  - name: sg
    provider: sendgrid_email
    secret: {mount: secret, path: "{P}/sg"}
    manager: {mount: secret, path: "{P}/sgmgr", key: key}
    grace: %s
    max_age: 720h
`, grace)
	r.integrations = b.String()
	r.extra = fmt.Sprintf("provider_api: {sendgrid_email: %s}\nrotation_records: {mount: secret, path: %s/records}", r.sg.URL(), f.prefix)
	return r
}

// config writes the configuration of `once` and `rotate`.
func (r *sgRotation) config() string {
	r.f.t.Helper()
	path := r.f.config("", r.integrations)
	b, err := os.ReadFile(path)
	if err != nil {
		r.f.t.Fatal(err)
	}
	if err := os.WriteFile(path, append([]byte(r.extra+"\n"), b...), 0o600); err != nil {
		r.f.t.Fatal(err)
	}
	return path
}

// current returns the secret's credential and its version.
func (r *sgRotation) current() (string, int) {
	r.f.t.Helper()
	s, err := r.f.vs.Client().KVv2("secret").Get(context.Background(), r.f.prefix+"/sg")
	if err != nil {
		r.f.t.Fatalf("read the secret: %v", err)
	}
	return fmt.Sprint(s.Data["api_key"]), s.VersionMetadata.Version
}

// record returns the rotation's record as JSON fields (nil when none).
func (r *sgRotation) record() map[string]any {
	r.f.t.Helper()
	s, err := r.f.vs.Client().Logical().Read("secret/data/" + r.f.prefix + "/records/sg")
	if err != nil {
		r.f.t.Fatalf("read the record: %v", err)
	}
	if s == nil || s.Data["data"] == nil {
		return nil
	}
	return s.Data["data"].(map[string]any)
}

// held reports whether every consumer holds the credential v in Hood.
func (r *sgRotation) held(v string) bool {
	for _, id := range r.ids {
		in, ok := r.f.hood.Integration(id)
		if !ok || in.Settings["api_key"] != v {
			return false
		}
	}
	return true
}

func TestRotateCommand(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	r := f.sendgridRotation("2s", "1201", "1202")
	cfg := r.config()

	// The command line.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"rotate", "--config", cfg}, "no rotation named"},
		{[]string{"rotate", "nope", "--config", cfg}, `unknown rotation "nope" (configured: sg)`},
		{[]string{"rotate", "sg", "other", "--config", cfg}, `unexpected argument "other"`},
		{[]string{"rotate", "sg", "--bogus", "--config", cfg}, "flag provided but not defined"},
	} {
		if res := f.rotator(tc.args...); res.code != exitInvalid || !strings.Contains(res.stderr, tc.want) {
			t.Errorf("%v: got exit %d, stderr %q; want %d and %q", tc.args, res.code, res.stderr, exitInvalid, tc.want)
		}
	}

	// A dry run writes nothing and asks no provider.
	keysBefore := len(r.sg.Keys())
	res := f.rotator("rotate", "--config", cfg, "sg", "--dry-run")
	if res.code != exitOK || !strings.Contains(res.stdout, "rotation sg (sendgrid_email): at never run; a run would:") ||
		!strings.Contains(res.stdout, "mint a new credential named rotator-sg-") {
		t.Errorf("dry run: got exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	if _, v := r.current(); v != 1 || r.record() != nil || len(r.sg.Keys()) != keysBefore {
		t.Errorf("dry run: the secret is at version %d (want 1), record %v (want none), %d keys (want %d)", v, r.record(), len(r.sg.Keys()), keysBefore)
	}

	// The binary, stopped by SIGINT while it waits out grace: exit 1, the
	// record left at verified, unheld.
	bin := rotatorBinary(t)
	cmd := exec.Command(bin, "rotate", "sg", "--config", cfg, "--log-format", "json")
	cmd.Env = []string{"VAULT_ADDR=" + f.vs.Addr, "VAULT_TOKEN=" + f.vs.RootToken, "PATH=" + os.Getenv("PATH")}
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "rotate waits out grace", func() bool { return strings.Contains(stdout.String(), "waiting for the grace period to end at ") })
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if ee, ok := errors.AsType[*exec.ExitError](err); !ok || ee.ExitCode() != exitFailed {
		t.Errorf("rotate stopped by SIGINT: got %v, want exit %d\n%s\n%s", err, exitFailed, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "stopped while waiting; the old credential is revoked by `rotator rotate sg` or the daemon after ") {
		t.Errorf("rotate stopped by SIGINT: stdout\n%s", stdout.String())
	}
	for name, out := range map[string]string{"stdout": stdout.String(), "stderr": stderr.String()} {
		if strings.Contains(out, sentinel) {
			t.Errorf("the binary's %s holds the sentinel", name)
		}
	}
	rec := r.record()
	if rec["step"] != "verified" || rec["held_by"] != nil && rec["held_by"] != "" {
		t.Fatalf("record after SIGINT: got step %v held by %v, want verified, unheld", rec["step"], rec["held_by"])
	}
	cred, v := r.current()
	if v != 2 || cred == r.hand.Reveal() || !r.held(cred) || !r.sg.Accepts(r.hand) {
		t.Errorf("after SIGINT: version %d (want 2), every consumer on it %v, the old key still valid %v", v, r.held(cred), r.sg.Accepts(r.hand))
	}

	// Run again: it resumes the run (no new rotation), waits out the rest
	// of grace and completes it.
	res = f.rotator("rotate", "sg", "--config", cfg)
	if res.code != exitOK {
		t.Fatalf("rotate after SIGINT: got exit %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	for _, want := range []string{
		"rotation sg: a run is in progress (step verified): resuming it; no new rotation is begun",
		"rotation sg (sendgrid_email): done\n",
		"  key id:  ",
		"  version: 2\n",
		"  note:    the old key was not minted by rotator (its id is unknown): delete it at the provider by hand",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("rotate after SIGINT: stdout\n%s\nwant it to hold %q", res.stdout, want)
		}
	}
	if c2, v2 := r.current(); c2 != cred || v2 != 2 || r.record()["step"] != "done" {
		t.Errorf("rotate after SIGINT: version %d (want 2, the same credential %v), step %v", v2, c2 == cred, r.record()["step"])
	}

	// A third run begins a new rotation and revokes the key the first minted.
	res = f.rotator("rotate", "sg", "--config", cfg)
	c3, v3 := r.current()
	if res.code != exitOK || v3 != 3 || !r.held(c3) || r.sg.Accepts(secret.New(cred)) {
		t.Errorf("second rotation: exit %d, version %d (want 3), consumers on it %v, the first run's key still valid %v\n%s",
			res.code, v3, r.held(c3), r.sg.Accepts(secret.New(cred)), res.stdout)
	}
	if !strings.Contains(res.stdout, "waiting for the grace period to end at ") || strings.Contains(res.stdout, "resuming") {
		t.Errorf("second rotation: stdout\n%s", res.stdout)
	}
	audit, _ := os.ReadFile(f.dir + "/audit.log")
	if bytes.Contains(audit, []byte(sentinel)) || !bytes.Contains(audit, []byte(`"trigger":"cli"`)) {
		t.Errorf("audit log: holds the sentinel, or no cli rotation line")
	}
}

// rotationsAnswer is GET /v1/rotations.
type rotationsAnswer struct {
	Rotations []struct {
		Name       string     `json:"name"`
		Step       string     `json:"step"`
		GraceUntil *time.Time `json:"grace_until"`
		HeldBy     string     `json:"held_by"`
		KeyID      string     `json:"key_id"`
		Version    int        `json:"version"`
	} `json:"rotations"`
}

// step is the step GET /v1/rotations reports for the one rotation, or ""
// while the daemon has not put its configuration in force.
func (d *runningDaemon) step() string {
	d.t.Helper()
	if code, _ := d.call("GET", "/v1/rotations", adminToken); code != 200 {
		return ""
	}
	return d.rotations().Rotations[0].Step
}

func (d *runningDaemon) rotations() rotationsAnswer {
	d.t.Helper()
	code, body := d.call("GET", "/v1/rotations", adminToken)
	var a rotationsAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil || code != 200 || len(a.Rotations) != 1 {
		d.t.Fatalf("GET /v1/rotations: got %d %s (%v)\n%s", code, body, err, d.logs)
	}
	return a
}

// rotationResult is the part of a rotation result the tests look at.
type rotationResult struct {
	Name       string     `json:"name"`
	Step       string     `json:"step"`
	GraceUntil *time.Time `json:"grace_until"`
	Plan       []string   `json:"plan"`
	DryRun     bool       `json:"dry_run"`
	Notes      []string   `json:"notes"`
	Error      string     `json:"error"`
}

func TestRunRotations(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	r := f.sendgridRotation("1s", "1211")

	// A run left at verified by a `rotate` stopped in grace.
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- runWith(ctx, []string{"rotate", "sg", "--config", r.config()}, env{stdout: &out, stderr: &errb, getenv: func(k string) string { return f.env[k] }})
	}()
	eventually(t, 30*time.Second, "rotate waits out grace", func() bool { return strings.Contains(out.String(), "waiting for the grace period") })
	cancel()
	if code := <-done; code != exitFailed || strings.Contains(out.String()+errb.String(), sentinel) {
		t.Fatalf("rotate stopped: got exit %d (want 1), or the sentinel shows\n%s", code, out.String())
	}
	cred, _ := r.current()

	// The daemon resumes it at start-up and finishes it at the end of grace.
	d := f.startDaemon(f.runConfig("", `schedule: "@every 1h"`+"\n"+r.extra, r.integrations))
	eventually(t, 30*time.Second, "the run resumed at start-up is done", func() bool { return d.step() == "done" })
	if c, v := r.current(); c != cred || v != 2 || !r.held(cred) {
		t.Errorf("after the resume: version %d (want 2), the same credential %v, held %v", v, c == cred, r.held(cred))
	}
	if !strings.Contains(d.logs.String(), `"msg":"rotation in progress: resuming it","rotation":"sg","step":"verified"`) {
		t.Errorf("the resume at start-up is not logged")
	}

	// Routes: auth, unknown rotation, dry run.
	if code, _ := d.call("POST", "/v1/rotations/sg", ""); code != 401 {
		t.Errorf("POST /v1/rotations/sg without a token: got %d, want 401", code)
	}
	if code, body := d.call("POST", "/v1/rotations/nope", adminToken); code != 404 || !strings.Contains(body, `unknown rotation \"nope\"`) {
		t.Errorf("POST /v1/rotations/nope: got %d %s, want 404", code, body)
	}
	code, body := d.call("POST", "/v1/rotations/sg?dry_run=true", adminToken)
	var dry rotationResult
	if err := json.Unmarshal([]byte(body), &dry); err != nil || code != 200 || !dry.DryRun || len(dry.Plan) < 5 || dry.Step != "done" {
		t.Errorf("dry run: got %d %s", code, body)
	}
	if _, v := r.current(); v != 2 {
		t.Errorf("dry run: the secret moved to version %d", v)
	}

	// A run: waiting for grace, then finished by the wake-up.
	code, body = d.call("POST", "/v1/rotations/sg", adminToken)
	var run rotationResult
	if err := json.Unmarshal([]byte(body), &run); err != nil || code != 200 || run.Step != "verified" || run.GraceUntil == nil {
		t.Fatalf("POST /v1/rotations/sg: got %d %s, want 200 verified with grace_until", code, body)
	}
	eventually(t, 30*time.Second, "the wake-up finished the run", func() bool { return d.step() == "done" })
	c3, v3 := r.current()
	if v3 != 3 || !r.held(c3) || r.sg.Accepts(secret.New(cred)) {
		t.Errorf("after the wake-up: version %d (want 3), held %v, the previous key still valid %v", v3, r.held(c3), r.sg.Accepts(secret.New(cred)))
	}
	sg := map[string]string{"rotation": "sg"}
	with := func(k, v string) map[string]string { return map[string]string{"rotation": "sg", k: v} }
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"rotator_rotation_step", with("step", "done"), 1},
		{"rotator_rotation_step", with("step", "verified"), 0},
		{"rotator_rotation_step", with("step", "none"), 0},
		{"rotator_rotation_grace_seconds", sg, 1},
		{"rotator_rotation_runs_total", with("result", "waiting"), 2},
		{"rotator_rotation_runs_total", with("result", "done"), 2},
		{"rotator_rotation_runs_total", with("result", "failed"), 0},
	} {
		if got := d.metric(c.name, c.labels); got != c.want {
			t.Errorf("%s%v: got %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if got := d.metric("rotator_credential_max_age_seconds", map[string]string{"integration": "c0"}); got != 720*3600 {
		t.Errorf("rotator_credential_max_age_seconds of the consumer: got %v, want the rotation's max_age", got)
	}
	if got := d.metric("rotator_rotation_last_done_timestamp_seconds", sg); got < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("rotator_rotation_last_done_timestamp_seconds: got %v, want a moment ago", got)
	}

	// Another rotator holds it: 409, counted busy, nothing run.
	rec := r.record()
	rec["held_by"], rec["held_until"] = "web-2#0a1b2c3d", time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)
	if _, err := f.vs.Client().Logical().Write("secret/data/"+f.prefix+"/records/sg", map[string]any{"data": rec}); err != nil {
		t.Fatal(err)
	}
	if code, body := d.call("POST", "/v1/rotations/sg", adminToken); code != 409 || !strings.Contains(body, "web-2#0a1b2c3d") {
		t.Errorf("POST while another rotator holds it: got %d %s, want 409", code, body)
	}
	if a := d.rotations(); a.Rotations[0].HeldBy != "web-2#0a1b2c3d" {
		t.Errorf("GET /v1/rotations: held_by %q", a.Rotations[0].HeldBy)
	}
	if got := d.metric("rotator_rotation_runs_total", with("result", "busy")); got != 1 {
		t.Errorf("busy runs: got %v, want 1", got)
	}
	if _, v := r.current(); v != 3 {
		t.Errorf("a busy run moved the secret to version %d", v)
	}

	checkReferenceMetrics(t, d)
	if code := d.stop(); code != 0 {
		t.Errorf("exit code: got %d, want 0", code)
	}
}
