package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
	"github.com/ocamba-rotator/rotator/internal/provider/providertest"
	"github.com/ocamba-rotator/rotator/internal/secret"
)

// `rotator rotate` killed with SIGKILL in the middle of a provider call or
// a push, and while waiting out grace; then started again: once the dead
// process's lease (ha.lease_ttl 5s) has run out, the run ends completed or
// fully undone, with no key left at SendGrid and, checked every 5ms from
// start to end, no consumer ever on a key SendGrid refuses.
func TestRotateSIGKILL(t *testing.T) {
	tests := []struct {
		name   string
		second bool // kill during the second rotation (the first minted the key it revokes)
		stall  func(f *fixture, r *sgRotation)
		step   string // the record's step at which the process is killed
		want   string // where the restarted run ends
	}{
		{"mid-mint", false, func(_ *fixture, r *sgRotation) {
			r.sg.Inject(providertest.Fault{Method: "POST", Path: "/v3/api_keys", Delay: 3 * time.Second})
		}, "minting", "undone"},
		{"mid-push", false, func(f *fixture, _ *sgRotation) {
			f.hood.Inject(hoodtest.Fault{Method: "PATCH", Delay: 3 * time.Second, Times: 1})
		}, "stored", "done"},
		{"in-grace", false, func(*fixture, *sgRotation) {}, "verified", "done"},
		{"mid-revoke", true, func(_ *fixture, r *sgRotation) {
			r.sg.Inject(providertest.Fault{Method: "DELETE", Path: "/v3/api_keys/", Delay: 3 * time.Second})
		}, "revoking", "done"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, hoodtest.Options{})
			r := f.sendgridRotation("1s", "1301", "1302", "1303")
			r.extra += "\nha: {lease_ttl: 5s}"
			cfg := r.config()
			stop := r.watchAccepted(t)
			if tt.second {
				if res := f.rotator("rotate", "sg", "--config", cfg); res.code != exitOK {
					t.Fatalf("first rotation: exit %d\n%s", res.code, res.stdout)
				}
			}
			tt.stall(f, r)
			cmd := exec.Command(rotatorBinary(t), "rotate", "sg", "--config", cfg)
			cmd.Env = []string{"VAULT_ADDR=" + f.vs.Addr, "VAULT_TOKEN=" + f.vs.RootToken, "PATH=" + os.Getenv("PATH")}
			var out syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			eventually(t, 30*time.Second, "the run reaches "+tt.step, func() bool {
				rec := r.record()
				return rec != nil && rec["step"] == tt.step
			})
			time.Sleep(300 * time.Millisecond) // inside the stalled call
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			// Killed mid-call the process holds the lease; while it waits
			// out grace it holds none.
			rec := r.record()
			if held, _ := rec["held_by"].(string); rec["step"] != tt.step || (held != "") != (tt.step != "verified") {
				t.Fatalf("record after SIGKILL: step %v held by %q, want %s, held unless verified", rec["step"], held, tt.step)
			}
			killed := time.Now()
			var res result
			for {
				res = f.rotator("rotate", "sg", "--config", cfg)
				if !strings.Contains(res.stdout+res.stderr, "held by another rotator") || time.Since(killed) > 30*time.Second {
					break
				}
				time.Sleep(250 * time.Millisecond)
			}
			if rec := r.record(); rec["step"] != tt.want {
				t.Fatalf("after the restart: step %v, want %s (exit %d)\n%s\n%s", rec["step"], tt.want, res.code, res.stdout, res.stderr)
			}
			if v := stop(); v != "" {
				t.Errorf("a consumer held a key SendGrid refuses: %s", v)
			}
			cur, _ := r.current()
			if !r.sg.Accepts(secret.New(cur)) || !r.held(cur) {
				t.Errorf("the secret's credential is refused, or not every consumer holds it")
			}
			keep := fmt.Sprint(r.record()["current"].(map[string]any)["key_id"])
			for _, k := range r.sg.Keys() {
				if strings.HasPrefix(k.Name, "rotator-sg-") && k.ID != keep {
					t.Errorf("key %s (%s) left at SendGrid", k.ID, k.Name)
				}
			}
			if strings.Contains(out.String()+res.stdout+res.stderr, sentinel) {
				t.Error("the output holds the sentinel")
			}
		})
	}
}

// watchAccepted checks every 5ms, until the returned func is called, that
// every consumer holds a key SendGrid accepts; the func returns the first
// violation seen ("" for none).
func (r *sgRotation) watchAccepted(t *testing.T) func() string {
	t.Helper()
	done := make(chan struct{})
	var wg sync.WaitGroup
	var first string
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			for _, id := range r.ids {
				in, ok := r.f.hood.Integration(id)
				if ok && !r.sg.Accepts(secret.New(in.Settings["api_key"])) && first == "" {
					first = "integration " + id + " at " + time.Now().Format(time.RFC3339Nano)
				}
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	return func() string {
		close(done)
		wg.Wait()
		return first
	}
}

// A daemon takes up a rotation that another rotator left in progress when
// it was killed, once the dead holder's lease has run out, with no
// schedule or request: a daemon already running finds it unheld when it
// reads the records again (refresh); a daemon started while the lease
// still lives is told it is busy, and looks again when the lease ends.
func TestRunResumesRotationOfDeadHolder(t *testing.T) {
	tests := []struct {
		name         string
		startedFirst bool
		ha           string // the ha section
		lease        time.Duration
	}{
		{"daemon started first", true, "ha: {lease_ttl: 5s}", 5 * time.Second},
		{"daemon started within the lease", false, "ha: {lease_ttl: 5s}", 5 * time.Second},
		// Shared records; the lease must exceed hood.timeout + verify_timeout.
		{"ha mode vault", true, "ha: {mode: vault, mount: secret, path: {P}/ha, lease_ttl: 15s}", 15 * time.Second},
	}
	for _, tt := range tests {
		startedFirst := tt.startedFirst
		// Not parallel: the daemons would listen on the same admin port.
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, hoodtest.Options{})
			if startedFirst {
				f.rotationRefresh = 200 * time.Millisecond
			}
			r := f.sendgridRotation("1s", "1401", "1402")
			r.extra += "\n" + strings.ReplaceAll(tt.ha, "{P}", f.prefix)
			cfg := r.config()
			var d *runningDaemon
			if startedFirst {
				d = f.startDaemon(cfg)
				eventually(t, 20*time.Second, "the start-up pass ran", func() bool { return f.patchCount("1401") >= 1 })
			}
			stop := r.watchAccepted(t)

			// The other rotator: its own state and audit files.
			body, err := os.ReadFile(cfg)
			if err != nil {
				t.Fatal(err)
			}
			other := strings.NewReplacer("state.db", "state-other.db", "audit.log", "audit-other.log").Replace(string(body))
			otherCfg := cfg + ".other"
			if err := os.WriteFile(otherCfg, []byte(other), 0o600); err != nil {
				t.Fatal(err)
			}
			f.hood.Inject(hoodtest.Fault{Method: "PATCH", Delay: 3 * time.Second, Times: 1})
			cmd := exec.Command(rotatorBinary(t), "rotate", "sg", "--config", otherCfg)
			cmd.Env = []string{"VAULT_ADDR=" + f.vs.Addr, "VAULT_TOKEN=" + f.vs.RootToken, "PATH=" + os.Getenv("PATH")}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			eventually(t, 30*time.Second, "the other rotator reaches stored", func() bool {
				rec := r.record()
				return rec != nil && rec["step"] == "stored"
			})
			time.Sleep(300 * time.Millisecond)
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			killed := time.Now()
			if !startedFirst {
				d = f.startDaemon(cfg)
			}
			// In ha.mode vault the killed process may also hold the fleet's
			// Hood allowance: the daemon takes it over when its lease ends
			// (docs/ha.md, "Rate limits"), which costs no more time.
			eventually(t, 45*time.Second, "the daemon completes the rotation", func() bool { return r.record()["step"] == "done" })
			if waited := time.Since(killed); waited < tt.lease-time.Second {
				t.Errorf("resumed %s after the kill, before the dead holder's %s lease ran out", waited, tt.lease)
			}
			if v := stop(); v != "" {
				t.Errorf("a consumer held a key SendGrid refuses: %s", v)
			}
			cur, _ := r.current()
			if !r.held(cur) || !r.sg.Accepts(secret.New(cur)) {
				t.Error("not every consumer holds the secret's credential, or SendGrid refuses it")
			}
			if code := d.stop(); code != 0 {
				t.Errorf("exit code: got %d, want 0", code)
			}
		})
	}
}
