package main

// End-to-end tests of watch mode (docs/ha.md, "Watch mode"): `rotator run`
// in-process with watch.interval 1s and a schedule far away, against the
// real OpenBao server and the Hood test server. Waits are on events (polls
// counted by rotator_watch_polls_total, PATCHes recorded by the Hood test
// server), never on how fast they come.

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
)

// watchExtra is the top-level YAML of the watch tests: no scheduled pass
// during a test, a poll every second.
const watchExtra = "schedule: \"0 3 * * *\"\nwatch:\n  interval: 1s"

// watchDeadline bounds every wait of these tests: generous, so that a
// loaded machine does not fail them.
const watchDeadline = 20 * time.Second

// polls is the number of metadata reads the watcher made (ok and error).
func (d *runningDaemon) polls() float64 {
	d.t.Helper()
	return max(0, d.metric("rotator_watch_polls_total", map[string]string{"result": "ok"})) +
		max(0, d.metric("rotator_watch_polls_total", map[string]string{"result": "error"}))
}

// waitPolls waits until the watcher has made n more metadata reads.
func (d *runningDaemon) waitPolls(n float64) {
	d.t.Helper()
	from := d.polls()
	eventually(d.t, watchDeadline, fmt.Sprintf("%v more watch polls", n), func() bool { return d.polls() >= from+n })
}

// logEntries returns the daemon's JSON log lines whose msg contains msg.
func (d *runningDaemon) logEntries(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(d.logs.String(), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		if m, _ := e["msg"].(string); strings.Contains(m, msg) {
			out = append(out, e)
		}
	}
	return out
}

// passIntegrations returns the integrations whose outcome a pass with the
// given trigger logged, in log order.
func (d *runningDaemon) passIntegrations(trigger string) []string {
	var out []string
	for _, line := range strings.Split(d.logs.String(), "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) != nil {
			continue
		}
		if e["trigger"] == trigger && e["integration"] != nil && e["result"] != nil {
			out = append(out, e["integration"].(string))
		}
	}
	return out
}

// lastPatchValue returns the auth_token of the last PATCH of id that Hood
// answered 204 ("" if none). Tests compare it, never print it.
func (f *fixture) lastPatchValue(id string) string {
	v := ""
	for _, r := range f.hood.Requests() {
		if r.Method == "PATCH" && r.ID == id && r.Status == 204 {
			v, _ = r.Settings["auth_token"].(string)
		}
	}
	return v
}

// (a) and (b): the start-up pass pushes, polls with nothing new push
// nothing, a new KV v2 version is pushed exactly once by a watch pass.
func TestWatchPushesEachNewVersionOnce(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"1101": "telegram"})
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	d := f.startDaemon(f.runConfig("", watchExtra, `  - {name: tg, id: "1101", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
`))

	eventually(t, watchDeadline, "the start-up pass pushed", func() bool { return f.patchCount("1101") == 1 })
	d.waitPolls(3)
	if got := f.hood.Count("PATCH"); got != 1 {
		t.Errorf("PATCHes after 3 polls with nothing new: got %d, want 1 (the start-up pass)", got)
	}
	if got := d.metric("rotator_watch_changes_total", nil); got != 0 {
		t.Errorf("rotator_watch_changes_total with nothing new: got %v, want 0", got)
	}

	f.put("secret", "tg", map[string]any{"auth_token": sentinel + "-v2", "chat_id": "1"})
	eventually(t, watchDeadline, "a watch pass pushed version 2", func() bool { return f.patchCount("1101") == 2 })
	if f.lastPatchValue("1101") != sentinel+"-v2" {
		t.Errorf("the PATCH after the write does not carry the new value")
	}
	d.waitPolls(3)
	if got := f.hood.Count("PATCH"); got != 2 {
		t.Errorf("PATCHes after the write and 3 more polls: got %d, want 2 (exactly one for the write)", got)
	}
	if got := d.metric("rotator_pass_duration_seconds", map[string]string{"trigger": "watch"}); got < 1 {
		t.Errorf("rotator_pass_duration_seconds{trigger=watch}: got %v samples, want at least 1", got)
	}
	if got := d.metric("rotator_watch_changes_total", nil); got != 1 {
		t.Errorf("rotator_watch_changes_total: got %v, want 1", got)
	}
	if got := d.metric("rotator_secret_version", map[string]string{"integration": "tg"}); got != 2 {
		t.Errorf("rotator_secret_version{tg}: got %v, want 2", got)
	}
	if got := d.metric("rotator_watch_polls_total", map[string]string{"result": "error"}); got != 0 {
		t.Errorf("failed polls: got %v, want 0", got)
	}
	if code := d.stop(); code != 0 {
		t.Errorf("exit code: got %d, want 0", code)
	}
}

// (c): a write to one path runs a pass over its integrations only.
func TestWatchPushesOnlyTheChangedPath(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"1111": "telegram", "1112": "telegram", "1113": "telegram"})
	f.put("secret", "shared", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	f.put("secret", "own", map[string]any{"auth_token": sentinel + "-own", "chat_id": "2"})
	d := f.startDaemon(f.runConfig("", watchExtra, `  - {name: s1, id: "1111", provider: telegram, source: {mount: secret, path: "{P}/shared"}}
  - {name: o1, id: "1113", provider: telegram, source: {mount: secret, path: "{P}/own"}}
  - {name: s2, id: "1112", provider: telegram, source: {mount: secret, path: "{P}/shared"}, static: {chat_id: "3"}}
`))
	eventually(t, watchDeadline, "the start-up pass pushed all three", func() bool {
		return f.patchCount("1111") == 1 && f.patchCount("1112") == 1 && f.patchCount("1113") == 1
	})
	d.waitPolls(2)

	// The shared path: both of its integrations, not the other one.
	f.put("secret", "shared", map[string]any{"auth_token": sentinel + "-v2", "chat_id": "1"})
	eventually(t, watchDeadline, "a watch pass pushed the shared path's integrations", func() bool {
		return f.patchCount("1111") == 2 && f.patchCount("1112") == 2
	})
	d.waitPolls(3)
	if got := d.passIntegrations("watch"); !slices.Equal(got, []string{"s1", "s2"}) {
		t.Errorf("integrations of watch passes: got %v, want [s1 s2]", got)
	}
	// The other path: its integration only.
	f.put("secret", "own", map[string]any{"auth_token": sentinel + "-own-v2", "chat_id": "2"})
	eventually(t, watchDeadline, "a watch pass pushed o1", func() bool { return f.patchCount("1113") == 2 })
	d.waitPolls(3)
	if got := d.passIntegrations("watch"); !slices.Equal(got, []string{"s1", "s2", "o1"}) {
		t.Errorf("integrations of watch passes: got %v, want [s1 s2 o1]", got)
	}
	for id, want := range map[string]int{"1111": 2, "1112": 2, "1113": 2} {
		if got := f.patchCount(id); got != want {
			t.Errorf("PATCHes of %s: got %d, want %d", id, got, want)
		}
	}
	if f.lastPatchValue("1113") != sentinel+"-own-v2" || f.lastPatchValue("1111") != sentinel+"-v2" {
		t.Errorf("the PATCHes do not carry the values written")
	}
	if got := d.metric("rotator_watch_changes_total", nil); got != 2 {
		t.Errorf("rotator_watch_changes_total: got %v, want 2 (one per path written)", got)
	}
}

// (d): a KV v1 source is not polled; its integration is left to the schedule.
func TestWatchDoesNotPollKVv1Sources(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"1121": "telegram", "1122": "telegram"})
	f.put("secret", "v2", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	f.put("kv1", "v1", map[string]any{"auth_token": sentinel + "-kv1", "chat_id": "1"})
	d := f.startDaemon(f.runConfig("", watchExtra, `  - {name: two, id: "1121", provider: telegram, source: {mount: secret, path: "{P}/v2"}}
  - {name: one, id: "1122", provider: telegram, source: {mount: kv1, path: "{P}/v1", kv_version: 1}}
`))
	eventually(t, watchDeadline, "the start-up pass pushed both", func() bool {
		return f.patchCount("1121") == 1 && f.patchCount("1122") == 1
	})
	d.waitPolls(4)
	// A write to the KV v1 secret is not seen (no pass), and no metadata
	// read fails (a KV v1 mount has no metadata endpoint: reading one would).
	f.put("kv1", "v1", map[string]any{"auth_token": sentinel + "-kv1-v2", "chat_id": "1"})
	d.waitPolls(3)
	if got := f.patchCount("1122"); got != 1 {
		t.Errorf("PATCHes of the KV v1 integration after a write: got %d, want 1 (not watched)", got)
	}
	metaOK := d.metric("rotator_vault_requests_total", map[string]string{"operation": "metadata", "result": "ok"})
	metaErr := max(0, d.metric("rotator_vault_requests_total", map[string]string{"operation": "metadata", "result": "error"}))
	pollsOK := d.metric("rotator_watch_polls_total", map[string]string{"result": "ok"})
	if metaErr != 0 || d.metric("rotator_watch_polls_total", map[string]string{"result": "error"}) != 0 {
		t.Errorf("failed metadata reads: got %v, want 0 (only the KV v2 path is polled)", metaErr)
	}
	// Every metadata request is a poll of the one KV v2 path (the only
	// watched path): the KV v1 one makes none.
	if metaOK < 7 || metaOK != pollsOK {
		t.Errorf("metadata requests: got %v ok, with %v ok polls; want equal and at least 7", metaOK, pollsOK)
	}
	logs := d.logEntries("KV v1 sources are not watched")
	if len(logs) != 1 || logs[0]["integrations"] != float64(1) || logs[0]["level"] != "INFO" {
		t.Errorf("log of unwatched integrations: got %v, want one INFO line with integrations=1", logs)
	}
	if got := d.passIntegrations("watch"); len(got) != 0 {
		t.Errorf("watch passes: got %v, want none", got)
	}
}

// (e): a policy without metadata read: the denial is logged once (not at
// every poll), and the schedule still rotates.
func TestWatchMetadataDeniedLoggedOnceScheduleWorks(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"1131": "telegram"})
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	ctx := context.Background()
	policy := fmt.Sprintf(`path "secret/data/%s/*" { capabilities = ["read"] }`, f.prefix)
	if err := vaultSrv.WritePolicy(ctx, "nometa-"+f.prefix, policy); err != nil {
		t.Fatal(err)
	}
	tok, err := vaultSrv.CreateToken(ctx, []string{"nometa-" + f.prefix}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f.env["VAULT_TOKEN"] = tok
	d := f.startDaemon(f.runConfig("", "schedule: \"@every 2s\"\nwatch:\n  interval: 1s", `  - {name: tg, id: "1131", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
`))
	eventually(t, watchDeadline, "the start-up pass pushed", func() bool { return f.patchCount("1131") == 1 })
	eventually(t, watchDeadline, "3 denied polls", func() bool {
		return d.metric("rotator_watch_polls_total", map[string]string{"result": "error"}) >= 3
	})
	logs := d.logEntries("cannot read the metadata")
	if len(logs) != 1 {
		t.Fatalf("logs of the failing metadata read: got %d, want 1 (when it starts failing)", len(logs))
	}
	want := "secret/" + f.prefix + "/tg"
	if logs[0]["vault_path"] != want || !strings.Contains(fmt.Sprint(logs[0]["error"]), "denied") {
		t.Errorf("log of the failing metadata read: got vault_path %v, error %v; want %s and a permission denial", logs[0]["vault_path"], logs[0]["error"], want)
	}
	if got := d.metric("rotator_watch_polls_total", map[string]string{"result": "ok"}); got != 0 {
		t.Errorf("successful polls: got %v, want 0", got)
	}

	// The schedule still rotates.
	f.put("secret", "tg", map[string]any{"auth_token": sentinel + "-v2", "chat_id": "1"})
	eventually(t, watchDeadline, "a scheduled pass pushed version 2", func() bool { return f.patchCount("1131") == 2 })
	if f.lastPatchValue("1131") != sentinel+"-v2" {
		t.Errorf("the scheduled PATCH does not carry the new value")
	}
	if got := d.metric("rotator_pass_duration_seconds", map[string]string{"trigger": "watch"}); got > 0 {
		t.Errorf("watch passes with metadata denied: got %v, want none", got)
	}
	if got := len(d.logEntries("cannot read the metadata")); got != 1 {
		t.Errorf("logs of the failing metadata read at the end: got %d, want 1", got)
	}
}

// (f): a write made while a pass runs is pushed after it: watch names are
// queued, not dropped like schedule ticks for the integrations in flight.
func TestWatchWriteDuringRunningPassIsPushed(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"1141": "telegram"})
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	d := f.startDaemon(f.runConfig("", watchExtra, `  - {name: tg, id: "1141", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
`))
	eventually(t, watchDeadline, "the start-up pass pushed", func() bool { return f.patchCount("1141") == 1 })

	// The next PATCH takes 4 seconds: the watch pass of version 2 is slow.
	f.hood.Inject(hoodtest.Fault{Method: "PATCH", Delay: 4 * time.Second})
	f.put("secret", "tg", map[string]any{"auth_token": sentinel + "-v2", "chat_id": "1"})
	eventually(t, watchDeadline, "the slow PATCH of version 2 arrived", func() bool { return f.hood.Count("PATCH") == 2 })
	// Version 3, written while that pass runs (its PATCH is not answered yet).
	f.put("secret", "tg", map[string]any{"auth_token": sentinel + "-v3", "chat_id": "1"})
	if got := f.patchCount("1141"); got != 1 {
		t.Fatalf("the slow PATCH was answered before version 3 was written (got %d answered PATCHes): the test proves nothing", got)
	}
	eventually(t, watchDeadline, "version 3 pushed after the running pass", func() bool { return f.patchCount("1141") == 3 })
	if f.lastPatchValue("1141") != sentinel+"-v3" {
		t.Errorf("the last PATCH does not carry version 3")
	}
	// The pass records its outcome after its read-back, so a while after
	// the PATCH was answered.
	eventually(t, watchDeadline, "rotator_secret_version{tg} at 3", func() bool {
		return d.metric("rotator_secret_version", map[string]string{"integration": "tg"}) == 3
	})
	if got := d.metric("rotator_pass_duration_seconds", map[string]string{"trigger": "watch"}); got < 2 {
		t.Errorf("watch passes: got %v, want at least 2", got)
	}
}
