package main

// End-to-end tests of change detection, verification, rollback, the state
// file and the audit log, with `rotator once` in-process and, for the crash
// test, as a real process killed with SIGKILL.

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
)

func TestOnceChangeDetection(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"1001": "telegram", "1002": "twilio_sms"})
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	f.put("secret", "tw", map[string]any{"account_sid": "AC1", "auth_token": sentinel + "-tw", "default_phone_number": "+1"})
	integrations := `  - {name: tg, id: "1001", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
  - {name: tw, id: "1002", provider: twilio_sms, source: {mount: secret, path: "{P}/tw"}, static: {default_phone_number: "+100"}}
`
	cfg := f.config("", integrations)
	once := func(args ...string) result {
		t.Helper()
		r := f.rotator(append([]string{"once", "--config", cfg}, args...)...)
		if r.code != 0 {
			t.Fatalf("once %v: exit %d\n%s\n%s", args, r.code, r.stdout, r.stderr)
		}
		return r
	}
	once()
	if got := f.hood.Count("PATCH"); got != 2 {
		t.Fatalf("first pass: got %d PATCHes, want 2", got)
	}

	f.hood.Reset()
	r := once()
	if got := f.hood.Count(""); got != 0 {
		t.Errorf("second pass with nothing changed: got %d Hood requests, want 0", got)
	}
	if !strings.Contains(r.stdout, "2 unchanged") {
		t.Errorf("summary: got\n%s\nwant 2 unchanged", r.stdout)
	}

	// A new Vault version: exactly one PATCH.
	f.put("secret", "tg", map[string]any{"auth_token": sentinel + "-v2", "chat_id": "1"})
	if r := f.rotator("plan", "--config", cfg); !strings.Contains(summaryLine(r.stdout, "tg"), "would push (changes: auth_token)") ||
		!strings.Contains(summaryLine(r.stdout, "tw"), "unchanged") {
		t.Errorf("plan after a new version: got\n%s", r.stdout)
	}
	f.hood.Reset()
	once()
	if got, want := f.hood.Count("PATCH"), 1; got != want {
		t.Errorf("after a new Vault version: got %d PATCHes, want %d", got, want)
	}

	// A changed static value: one PATCH.
	cfg = f.config("", strings.Replace(integrations, `"+100"`, `"+200"`, 1))
	f.hood.Reset()
	once()
	if got := f.hood.Count("PATCH"); got != 1 {
		t.Errorf("after a static change: got %d PATCHes, want 1", got)
	}
	if in, _ := f.hood.Integration("1002"); in.Settings["default_phone_number"] != "+200" {
		t.Errorf("static change not pushed")
	}

	// --force pushes everything.
	f.hood.Reset()
	once("--force")
	if got := f.hood.Count("PATCH"); got != 2 {
		t.Errorf("--force: got %d PATCHes, want 2", got)
	}

	// An older version than the one pushed (a Vault restore) is refused.
	ctx := context.Background()
	if err := f.vs.Client().KVv2("secret").DeleteMetadata(ctx, f.prefix+"/tg"); err != nil {
		t.Fatal(err)
	}
	f.put("secret", "tg", map[string]any{"auth_token": sentinel + "-restored", "chat_id": "1"}) // version 1 again
	f.hood.Reset()
	r = f.rotator("once", "--config", cfg)
	if r.code != 1 || !strings.Contains(summaryLine(r.stdout, "tg"), "older than the last pushed one") {
		t.Errorf("older version: got exit %d\n%s\nwant tg refused", r.code, r.stdout)
	}
	if got := f.hood.Count("PATCH"); got != 0 {
		t.Errorf("older version: got %d PATCHes, want 0", got)
	}
	checkFilesClean(t, f)
}

// checkFilesClean: the state file and the audit log never hold a value.
func checkFilesClean(t *testing.T, f *fixture) {
	t.Helper()
	for _, name := range []string{"state.db", "audit.log"} {
		b, err := os.ReadFile(filepath.Join(f.dir, name))
		if err != nil {
			t.Errorf("read %s: %v", name, err)
			continue
		}
		if bytes.Contains(b, []byte(sentinel)) {
			t.Errorf("%s contains a secret value", name)
		}
		if fi, _ := os.Stat(filepath.Join(f.dir, name)); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
}

func TestOnceVerifyFailureRollsBack(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"1011": "telegram", "1012": "telegram"})
	f.hood.SetVerifier(func(id, provider string, settings map[string]string) string {
		if strings.HasPrefix(settings["auth_token"], "bad") {
			return "inactive"
		}
		return "active"
	})
	f.put("secret", "rb", map[string]any{"auth_token": "good-" + sentinel, "chat_id": "1"})
	f.put("secret", "keep", map[string]any{"auth_token": "good-" + sentinel, "chat_id": "1"})
	cfg := f.config("", `  - {name: rb, id: "1011", provider: telegram, source: {mount: secret, path: "{P}/rb"}, on_verify_failure: rollback}
  - {name: keep, id: "1012", provider: telegram, source: {mount: secret, path: "{P}/keep"}}
`)
	if r := f.rotator("once", "--config", cfg); r.code != 0 {
		t.Fatalf("first pass: exit %d\n%s", r.code, r.stdout)
	}
	f.put("secret", "rb", map[string]any{"auth_token": "bad-" + sentinel, "chat_id": "1"})
	f.put("secret", "keep", map[string]any{"auth_token": "bad-" + sentinel, "chat_id": "1"})
	r := f.rotator("once", "--config", cfg)
	if r.code != 1 {
		t.Fatalf("pass with bad credentials: exit %d, want 1\n%s", r.code, r.stdout)
	}
	if line := summaryLine(r.stdout, "rb"); !strings.Contains(line, `effective_status "inactive"`) || !strings.Contains(line, "rolled back to version 1") {
		t.Errorf("rb: got %q, want failed verification, rolled back to version 1", line)
	}
	if line := summaryLine(r.stdout, "keep"); !strings.Contains(line, `effective_status "inactive"`) || strings.Contains(line, "rolled back") {
		t.Errorf("keep: got %q, want failed verification, kept", line)
	}
	rb, _ := f.hood.Integration("1011")
	keep, _ := f.hood.Integration("1012")
	if rb.Settings["auth_token"] != "good-"+sentinel || rb.EffectiveStatus != "active" {
		t.Errorf("rb after the rollback: Hood does not hold version 1's value (effective %s)", rb.EffectiveStatus)
	}
	if keep.Settings["auth_token"] != "bad-"+sentinel {
		t.Errorf("keep: Hood should keep the new (failing) value")
	}
	// The failed version is not pushed again on the next pass.
	f.hood.Reset()
	r = f.rotator("once", "--config", cfg)
	if got := f.hood.Count("PATCH"); got != 0 || r.code != 1 {
		t.Errorf("pass after the failure: got %d PATCHes and exit %d, want 0 and 1", got, r.code)
	}
	audit, _ := os.ReadFile(filepath.Join(f.dir, "audit.log"))
	for _, want := range []string{`"event":"rollback"`, `"result":"ok"`, `"event":"verify"`, `"result":"failed"`} {
		if !bytes.Contains(audit, []byte(want)) {
			t.Errorf("audit log: missing %s", want)
		}
	}
	checkFilesClean(t, f)
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// rotatorBinary builds the command once per test run.
func rotatorBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rotator-bin-*")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "rotator")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = err
			binPath = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build rotator: %v\n%s", buildErr, binPath)
	}
	return binPath
}

func TestSIGKILLBetweenPushAndStateRepushesOnlyThatIntegration(t *testing.T) {
	bin := rotatorBinary(t)
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"1021": "telegram", "1022": "telegram", "1023": "telegram"})
	f.put("secret", "k", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	cfg := f.config("", `  - {name: k1, id: "1021", provider: telegram, source: {mount: secret, path: "{P}/k"}}
  - {name: k2, id: "1022", provider: telegram, source: {mount: secret, path: "{P}/k"}}
  - {name: k3, id: "1023", provider: telegram, source: {mount: secret, path: "{P}/k"}}
`)
	// One push at a time, so k1 and k2 are confirmed before k3 starts.
	b, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, bytes.Replace(b, []byte("  verify_timeout: 3s\n"), []byte("  verify_timeout: 3s\n  max_in_flight: 1\n"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	// k3's preflight read passes; its read-back after the PATCH hangs: the
	// PATCH has landed and its confirmation is not written yet.
	f.hood.Inject(hoodtest.Fault{Method: "GET", ID: "1023", Delay: time.Nanosecond})
	f.hood.Inject(hoodtest.Fault{Method: "GET", ID: "1023", Hang: true})

	cmd := exec.Command(bin, "once", "--config", cfg)
	cmd.Env = []string{"VAULT_ADDR=" + f.vs.Addr, "VAULT_TOKEN=" + f.vs.RootToken, "PATH=" + os.Getenv("PATH")}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "k3's read-back is in flight", func() bool {
		n := 0
		for _, r := range f.hood.Requests() {
			if r.ID == "1023" && r.Method == "GET" {
				n++
			}
		}
		return n == 2
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if bytes.Contains(out.Bytes(), []byte(sentinel)) {
		t.Errorf("the killed process printed the sentinel")
	}
	for id, want := range map[string]int{"1021": 1, "1022": 1, "1023": 1} {
		if got := f.patchCount(id); got != want {
			t.Fatalf("before the restart, %s: got %d PATCHes, want %d", id, got, want)
		}
	}

	f.hood.ClearFaults()
	r := f.rotator("once", "--config", cfg)
	if r.code != 0 {
		t.Fatalf("restart: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for id, want := range map[string]int{"1021": 1, "1022": 1, "1023": 2} {
		if got := f.patchCount(id); got != want {
			t.Errorf("after the restart, %s: got %d PATCHes, want %d", id, got, want)
		}
	}
	if line := summaryLine(r.stdout, "k3"); !strings.Contains(line, "pushed") {
		t.Errorf("k3 after the restart: got %q, want pushed", line)
	}
	checkFilesClean(t, f)
}
