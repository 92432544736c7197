package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
)

// haSection is an ha section for the fixture's Vault prefix.
func (f *fixture) haSection(identity string) string {
	return "ha:\n  mode: vault\n  mount: secret\n  path: " + f.prefix + "/leases\n  identity: " + identity + "\n  lease_ttl: 40s\n"
}

// TestOnceHAUsesSharedRecords: `rotator once` and `plan` with ha.mode vault
// keep their state in Vault, not in state.path: a second process (another
// identity, no local file) finds what the first pushed, and the record holds
// no value.
func TestOnceHAUsesSharedRecords(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"1301": "telegram"})
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	cfg := f.config("", `  - {name: tg, id: "1301", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
`)
	base, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, identity string) string {
		p := filepath.Join(f.dir, name)
		if err := os.WriteFile(p, append(bytes.Clone(base), []byte(f.haSection(identity))...), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b := write("a.yaml", "host-a"), write("b.yaml", "host-b")

	// plan before any rotator ran: it writes nothing to Vault, not even the key.
	if r := f.rotator("plan", "--config", a); r.code != 0 || !strings.Contains(summaryLine(r.stdout, "tg"), "would push") {
		t.Errorf("plan before any push: exit %d, want tg would push\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if sec, err := f.vs.Client().KVv2("secret").GetMetadata(context.Background(), f.prefix+"/leases/_meta/hmac-key"); err == nil && sec != nil {
		t.Errorf("plan created the shared HMAC key (version %d)", sec.CurrentVersion)
	}
	if r := f.rotator("once", "--config", a); r.code != 0 || !strings.Contains(summaryLine(r.stdout, "tg"), "pushed") {
		t.Fatalf("once on host-a: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(f.dir, "state.db")); err == nil {
		t.Errorf("state.path was created with ha.mode vault")
	}
	f.hood.Reset()
	if r := f.rotator("once", "--config", b); r.code != 0 || !strings.Contains(summaryLine(r.stdout, "tg"), "unchanged") {
		t.Errorf("once on host-b after host-a pushed: exit %d, want tg unchanged\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if got := f.hood.Count(""); got != 0 {
		t.Errorf("host-b made %d Hood requests, want 0", got)
	}

	v := f.put("secret", "tg", map[string]any{"auth_token": sentinel + "-v2", "chat_id": "1"})
	if r := f.rotator("plan", "--config", b); !strings.Contains(summaryLine(r.stdout, "tg"), "would push (changes: auth_token)") {
		t.Errorf("plan on host-b after a new version: got\n%s", r.stdout)
	}
	if r := f.rotator("once", "--config", b); r.code != 0 || !strings.Contains(summaryLine(r.stdout, "tg"), "pushed") {
		t.Errorf("once on host-b after a new version: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}

	sec, err := f.vs.Client().KVv2("secret").Get(context.Background(), f.prefix+"/leases/tg")
	if err != nil {
		t.Fatalf("read the record: %v", err)
	}
	rec, _ := sec.Data["record"].(map[string]any)
	conf, _ := rec["confirmed"].(map[string]any)
	if sec.Data["holder"] != "" || conf == nil || fmt.Sprint(conf["vault_version"]) != strconv.Itoa(v) {
		t.Errorf("record after host-b's push: got holder %v confirmed %v, want no holder and version %d confirmed", sec.Data["holder"], conf, v)
	}
	if raw, err := json.Marshal(sec.Data); err != nil || bytes.Contains(raw, []byte(sentinel)) {
		t.Errorf("the record holds a secret value (or cannot be encoded: %v)", err)
	}
}

// TestRunReloadRefusesHAModeChange: a reload that switches ha.mode is refused
// (the state would change under the daemon's feet); the daemon goes on.
func TestRunReloadRefusesHAModeChange(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"1311": "telegram"})
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	cfg := f.runConfig("", `schedule: "@every 1h"`, `  - {name: r1, id: "1311", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
`)
	good, _ := os.ReadFile(cfg)
	d := f.startDaemon(cfg)
	eventually(t, 20*time.Second, "start-up pass", func() bool { return f.patchCount("1311") == 1 && d.startupDone() })

	if err := os.WriteFile(cfg, append(bytes.Clone(good), []byte(f.haSection("web-1"))...), 0o600); err != nil {
		t.Fatal(err)
	}
	d.reload <- struct{}{}
	eventually(t, 10*time.Second, "reload refused", func() bool {
		return d.metric("rotator_config_last_reload_successful", nil) == 0
	})
	if !strings.Contains(d.logs.String(), `ha.mode changed from \"none\" to \"vault\": restart rotator to change it`) {
		t.Errorf("the refused reload's reason is not logged:\n%s", d.logs.String())
	}
	if a := d.rotate("/v1/rotate"); len(a.Outcomes) != 1 || a.Outcomes[0].Result != "pushed" {
		t.Errorf("forced pass after the refused reload: got %+v, want r1 pushed (local state still in force)", a)
	}
	if strings.Contains(d.logs.String(), sentinel) {
		t.Errorf("the daemon's log holds a secret value")
	}
}
