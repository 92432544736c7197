package main

// End-to-end tests of issue "Hood's real state decides": after a push that
// may have reached Hood without being confirmed, the operator's repair
// (Vault set back to the last good value) is pushed, never reported
// unchanged; plan says why; a failure stays until a confirmed push.

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
)

// verifier makes Hood's credentials test fail for tokens starting "bad"
// and run forever for tokens starting "slow".
func verifier(_, _ string, settings map[string]string) string {
	switch tok := settings["auth_token"]; {
	case strings.HasPrefix(tok, "bad"):
		return "inactive"
	case strings.HasPrefix(tok, "slow"):
		return "testing"
	}
	return "active"
}

func TestOnceRepairAfterUnconfirmedPush(t *testing.T) {
	good := map[string]any{"auth_token": "good-" + sentinel, "chat_id": "1"}
	tests := []struct {
		name     string
		second   string // the auth_token of the failing pass, before the sentinel
		rollback bool
		faults   []hoodtest.Fault // injected for the failing pass
		want     string           // why Hood may hold other settings, in plan's line
	}{
		{name: "verification failed, kept", second: "bad-", want: "a push failed verification and was kept"},
		{name: "verification failed, rollback failed", second: "bad-", rollback: true, faults: []hoodtest.Fault{
			{Method: "PATCH", Delay: time.Nanosecond}, // the push itself goes through
			{Method: "PATCH", Status: 503, Times: -1}, // every attempt of the rollback fails
		}, want: "a rollback failed after it may have reached Hood"},
		{name: "no verdict from the read-back", second: "slow-", want: "a push reached Hood but could not be verified"},
		{name: "PATCH applied, answered 502", second: "next-", faults: []hoodtest.Fault{{Method: "PATCH", AnswerLost: true, Status: 502, Times: -1}},
			want: "a push failed after it may have reached Hood"},
		{name: "PATCH applied, connection reset", second: "next-", faults: []hoodtest.Fault{{Method: "PATCH", AnswerLost: true, Times: -1}},
			want: "a push failed after it may have reached Hood"},
	}
	for _, mode := range []string{"local", "ha"} {
		for _, tt := range tests {
			t.Run(mode+"/"+tt.name, func(t *testing.T) {
				f := newFixture(t, hoodtest.Options{})
				f.addIntegrations(map[string]string{"1401": "telegram"})
				f.hood.SetVerifier(verifier)
				f.put("secret", "tg", good)
				line := `  - {name: tg, id: "1401", provider: telegram, source: {mount: secret, path: "{P}/tg"}}` + "\n"
				if tt.rollback {
					line = strings.Replace(line, "}}", "}, on_verify_failure: rollback}", 1)
				}
				cfg := f.config("", line)
				if mode == "ha" {
					b, err := os.ReadFile(cfg)
					if err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(cfg, append(b, []byte(f.haSection("host-a"))...), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				if r := f.rotator("once", "--config", cfg); r.code != 0 {
					t.Fatalf("first pass: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
				}

				f.put("secret", "tg", map[string]any{"auth_token": tt.second + sentinel, "chat_id": "1"})
				for _, fl := range tt.faults {
					f.hood.Inject(fl)
				}
				if r := f.rotator("once", "--config", cfg); r.code != 1 {
					t.Fatalf("failing pass: exit %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
				}
				f.hood.ClearFaults()
				if in, _ := f.hood.Integration("1401"); tt.second != "bad-" && in.Settings["auth_token"] != tt.second+sentinel {
					t.Fatalf("the failing pass's PATCH did not reach Hood: the case tests nothing")
				}

				// The operator's repair: the last good value, written again.
				f.put("secret", "tg", good)
				f.hood.Reset()
				plan := f.rotator("plan", "--config", cfg)
				if got := summaryLine(plan.stdout, "tg"); !strings.Contains(got, "would push (Hood may hold other settings: "+tt.want) {
					t.Errorf("plan after the repair: got %q, want would push (Hood may hold other settings: %s ...)", got, tt.want)
				}
				r := f.rotator("once", "--config", cfg)
				if got := summaryLine(r.stdout, "tg"); r.code != 0 || !strings.Contains(got, "pushed") {
					t.Errorf("once after the repair: exit %d, got %q, want pushed", r.code, got)
				}
				if in, _ := f.hood.Integration("1401"); in.Settings["auth_token"] != good["auth_token"] || in.EffectiveStatus != "active" {
					t.Errorf("after the repair Hood does not hold the good value (effective_status %s)", in.EffectiveStatus)
				}
				if got := f.hood.Count("PATCH"); got != 1 {
					t.Errorf("PATCHes after the repair: got %d, want 1", got)
				}
				f.hood.Reset()
				if r := f.rotator("once", "--config", cfg); !strings.Contains(summaryLine(r.stdout, "tg"), "unchanged") || f.hood.Count("") != 0 {
					t.Errorf("pass after the confirmed repair: got %q with %d Hood requests, want unchanged with none", summaryLine(r.stdout, "tg"), f.hood.Count(""))
				}
				if mode == "local" {
					checkFilesClean(t, f)
				}
			})
		}
	}
}

// TestSIGKILLAfterPatchThenRepair: a process killed between a PATCH that
// landed and its confirmation leaves Hood holding unconfirmed settings; the
// repair to the last good value is pushed, not reported unchanged.
func TestSIGKILLAfterPatchThenRepair(t *testing.T) {
	bin := rotatorBinary(t)
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"1411": "telegram"})
	good := map[string]any{"auth_token": "good-" + sentinel, "chat_id": "1"}
	f.put("secret", "tg", good)
	cfg := f.config("", `  - {name: tg, id: "1411", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
`)
	if r := f.rotator("once", "--config", cfg); r.code != 0 {
		t.Fatalf("first pass: exit %d\n%s", r.code, r.stdout)
	}
	f.put("secret", "tg", map[string]any{"auth_token": "next-" + sentinel, "chat_id": "1"})
	// The preflight read passes; the read-back after the PATCH hangs.
	f.hood.Inject(hoodtest.Fault{Method: "GET", ID: "1411", Delay: time.Nanosecond})
	f.hood.Inject(hoodtest.Fault{Method: "GET", ID: "1411", Hang: true})
	cmd := exec.Command(bin, "once", "--config", cfg)
	cmd.Env = []string{"VAULT_ADDR=" + f.vs.Addr, "VAULT_TOKEN=" + f.vs.RootToken, "PATH=" + os.Getenv("PATH")}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "the read-back is in flight", func() bool {
		n := 0
		for _, r := range f.hood.Requests() {
			if r.ID == "1411" && r.Method == "GET" {
				n++
			}
		}
		return n == 4 // each pass reads before its PATCH (preflight) and after it (read-back); this one's read-back hangs
	})
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if bytes.Contains(out.Bytes(), []byte(sentinel)) {
		t.Errorf("the killed process printed the sentinel")
	}
	f.hood.ClearFaults()
	if in, _ := f.hood.Integration("1411"); in.Settings["auth_token"] != "next-"+sentinel {
		t.Fatalf("the killed pass's PATCH did not reach Hood: the test tests nothing")
	}

	f.put("secret", "tg", good)
	if got := summaryLine(f.rotator("plan", "--config", cfg).stdout, "tg"); !strings.Contains(got, "Hood may hold other settings: a push was interrupted before its outcome was recorded") {
		t.Errorf("plan after the repair: got %q, want would push naming the interrupted push", got)
	}
	r := f.rotator("once", "--config", cfg)
	if got := summaryLine(r.stdout, "tg"); r.code != 0 || !strings.Contains(got, "pushed") {
		t.Errorf("once after the repair: exit %d, got %q, want pushed", r.code, got)
	}
	if in, _ := f.hood.Integration("1411"); in.Settings["auth_token"] != good["auth_token"] {
		t.Errorf("after the repair Hood does not hold the good value")
	}
	checkFilesClean(t, f)
}

// TestRunFailureStaysUntilConfirmed: in the daemon, a failed push stays
// failed (status, rotator_consecutive_failures) until a push of the current
// settings is confirmed: the repair to the last good value is pushed on the
// schedule, and while Hood fails that push nothing reports it unchanged.
func TestRunFailureStaysUntilConfirmed(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"1421": "telegram"})
	f.hood.SetVerifier(verifier)
	good := map[string]any{"auth_token": "good-" + sentinel, "chat_id": "1"}
	f.put("secret", "tg", good)
	d := f.startDaemon(f.runConfig("", `schedule: "@every 1s"`, `  - {name: tg, id: "1421", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
`))
	defer d.stop()
	eventually(t, 20*time.Second, "the start-up push", func() bool { return f.patchCount("1421") == 1 })

	type status struct {
		LastResult          string `json:"last_result"`
		ConsecutiveFailures int    `json:"consecutive_failures"`
	}
	get := func() status {
		t.Helper()
		code, body := d.call("GET", "/v1/status", adminToken)
		var st []status
		if code != 200 || json.Unmarshal([]byte(body), &st) != nil || len(st) != 1 {
			t.Fatalf("status: %d %s", code, body)
		}
		return st[0]
	}
	failures := func() float64 {
		return d.metric("rotator_consecutive_failures", map[string]string{"integration": "tg"})
	}
	passes := func() float64 {
		return d.metric("rotator_pass_duration_seconds", map[string]string{"trigger": "schedule"})
	}

	f.put("secret", "tg", map[string]any{"auth_token": "bad-" + sentinel, "chat_id": "1"})
	eventually(t, 20*time.Second, "the bad credential failed verification", func() bool { return get().ConsecutiveFailures >= 1 })

	// The repair, but Hood fails its push after applying it.
	f.hood.Inject(hoodtest.Fault{Method: "PATCH", AnswerLost: true, Status: 500, Times: -1})
	f.put("secret", "tg", good)
	after := passes()
	eventually(t, 20*time.Second, "two scheduled passes after the repair", func() bool { return passes() >= after+2 })
	if st, m := get(), failures(); st.LastResult != "failed" || st.ConsecutiveFailures < 2 || m < 2 {
		t.Errorf("while the repair's push fails: status %+v, metric %v; want failed with at least 2 failures", st, m)
	}
	f.hood.ClearFaults()
	eventually(t, 20*time.Second, "a confirmed push clears the failure", func() bool {
		st := get()
		return st.ConsecutiveFailures == 0 && failures() == 0
	})
	if in, _ := f.hood.Integration("1421"); in.Settings["auth_token"] != good["auth_token"] {
		t.Errorf("Hood does not hold the good value")
	}
}
