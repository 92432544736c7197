package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/ha"
	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
	"github.com/ocamba-rotator/rotator/internal/state"
	"github.com/ocamba-rotator/rotator/internal/vault"
)

// TestRunPushesWhatADeadHolderHeldWhenItsLeaseEnds: with ha.mode vault, a
// pass leaves an integration another rotator holds (its push begun) to
// that rotator. When the holder died mid-push, the daemon pushes the
// integration once the lease has ended, without waiting for its next
// schedule (here an hour away).
func TestRunPushesWhatADeadHolderHeldWhenItsLeaseEnds(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"1701": "telegram", "1702": "telegram"})
	f.put("secret", "tg1", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	f.put("secret", "tg2", map[string]any{"auth_token": sentinel + "-2", "chat_id": "2"})

	// The dead holder: a store of another identity begins a push of tg1
	// and is never heard of again; its lease runs out 15 s from now.
	const deadTTL = 15 * time.Second
	dead := deadStore(t, f, deadTTL)
	rec, _, err := dead.Get("tg1")
	if err != nil {
		t.Fatal(err)
	}
	p := state.Pushed{Fingerprint: dead.Fingerprint("1701", "telegram", map[string]string{"auth_token": "other"}), VaultPath: "secret/" + f.prefix + "/tg1", VaultVersion: 1}
	if err := dead.Begin("tg1", "1701", "telegram", rec.Revision, p); err != nil {
		t.Fatalf("the dead holder's Begin: %v", err)
	}
	leaseEnd := time.Now().Add(deadTTL)

	cfg := f.runConfig("", "schedule: \"@every 1h\"\n"+f.haSection("live"), `  - {name: tg1, id: "1701", provider: telegram, source: {mount: secret, path: "{P}/tg1"}}
  - {name: tg2, id: "1702", provider: telegram, source: {mount: secret, path: "{P}/tg2"}}
`)
	d := f.startDaemon(cfg)
	eventually(t, 30*time.Second, "the start-up pass", d.startupDone)
	if got := f.patchCount("1702"); got != 1 {
		t.Errorf("start-up pass: %d PATCHes of tg2, want 1", got)
	}
	if got := f.patchCount("1701"); got != 0 {
		t.Fatalf("start-up pass: %d PATCHes of tg1 while another rotator held it, want 0", got)
	}
	if !strings.Contains(d.logs.String(), `"reason":"held by dead#`) {
		t.Errorf("the start-up pass did not leave tg1 to its holder:\n%s", d.logs)
	}

	eventually(t, deadTTL+30*time.Second, "tg1 pushed after the dead holder's lease ended", func() bool {
		return f.patchCount("1701") == 1
	})
	if early := time.Until(leaseEnd); early > 0 {
		t.Errorf("tg1 pushed %s before the dead holder's lease ended", early)
	}
	if got := f.lastPatchValue("1701"); got != sentinel {
		t.Errorf("tg1's PATCH carries a value other than its secret's (redacted: %t)", got == "")
	}
	time.Sleep(2 * time.Second) // no more passes for it: pushed and confirmed
	if got := f.patchCount("1701"); got != 1 {
		t.Errorf("%d PATCHes of tg1 after the lease ended, want 1", got)
	}
}

// deadStore is a shared store of another rotator, on the fixture's lease path.
func deadStore(t *testing.T, f *fixture, ttl time.Duration) *ha.Store {
	t.Helper()
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(f.vs.RootToken), 0o600); err != nil {
		t.Fatal(err)
	}
	vc, err := vault.New(config.Vault{Address: f.vs.Addr, Auth: config.VaultAuth{Method: "token", TokenFile: file}}, vault.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := vc.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	s, err := ha.New(ha.Options{Vault: vc, Mount: "secret", Path: f.prefix + "/leases", Identity: "dead", TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
