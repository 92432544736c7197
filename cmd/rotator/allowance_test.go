package main

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
)

// TestRunThreeRotatorsShareHoodAllowance: three `rotator run` daemons with
// ha.mode vault, each configured with Hood's full limits (2 a second, 40 a
// minute, which the Hood test server enforces strictly), draw no 429 under a
// forced pass sent to one of them nor under scheduled passes that fire on
// all three: they take turns with the fleet's allowance (docs/ha.md, "Rate
// limits").
func TestRunThreeRotatorsShareHoodAllowance(t *testing.T) {
	f := newFixture(t, hoodtest.Options{Burst: 2, PerMinute: 40})
	const n = 4
	var ins strings.Builder
	for i := range n {
		id := fmt.Sprintf("15%02d", i)
		f.addIntegrations(map[string]string{id: "telegram"})
		f.put("secret", fmt.Sprintf("tg%d", i), map[string]any{"auth_token": sentinel, "chat_id": "1"})
		fmt.Fprintf(&ins, "  - {name: tg%d, id: %q, provider: telegram, source: {mount: secret, path: \"{P}/tg%d\"}}\n", i, id, i)
	}
	extra := "schedule: \"@every 3s\"\n" + strings.Replace(f.haSection("fleet"), "lease_ttl: 40s", "lease_ttl: 40s\n  clock_skew: 200ms", 1)
	cfg := f.runConfig("", extra, ins.String())
	f.setHood(cfg, "verify_timeout: 3s", "verify_timeout: 3s\n  rate_limit: {burst: 2, per_minute: 40}")
	var ds []*runningDaemon
	for range 3 {
		ds = append(ds, f.startDaemon(cfg))
	}
	eventually(t, 30*time.Second, "the start-up passes", func() bool {
		for _, d := range ds {
			if !d.startupDone() {
				return false
			}
		}
		return true
	})
	if got := f.hood.Throttled(); got != 0 {
		t.Errorf("start-up passes: Hood answered 429 %d times, want 0", got)
	}

	// A forced pass sent to one rotator.
	before := f.hood.Count("PATCH")
	a := ds[1].rotate("/v1/rotate")
	for _, o := range a.Outcomes {
		if o.Result != "pushed" {
			t.Errorf("forced pass: %s %s (%s), want pushed", o.Name, o.Result, o.Error)
		}
	}
	if got := f.hood.Count("PATCH") - before; got != n {
		t.Errorf("forced pass: %d PATCHes, want %d", got, n)
	}
	if got := f.hood.Throttled(); got != 0 {
		t.Errorf("forced pass: Hood answered 429 %d times, want 0", got)
	}

	// New versions: the scheduled passes of all three pick them up.
	before = f.hood.Count("PATCH")
	for i := range n {
		f.put("secret", fmt.Sprintf("tg%d", i), map[string]any{"auth_token": sentinel + "-v2", "chat_id": "1"})
	}
	eventually(t, 40*time.Second, "the scheduled passes push the new versions", func() bool {
		return f.hood.Count("PATCH")-before >= n
	})
	time.Sleep(4 * time.Second) // one more round of schedules: nothing more to push
	if got := f.hood.Count("PATCH") - before; got != n {
		t.Errorf("scheduled passes: %d PATCHes, want %d (one per integration)", got, n)
	}
	if got := f.hood.Throttled(); got != 0 {
		t.Errorf("scheduled passes: Hood answered 429 %d times, want 0", got)
	}
	taken := 0
	for _, d := range ds {
		taken += strings.Count(d.logs.String(), `"msg":"hood allowance taken"`)
	}
	if taken < 2 {
		t.Errorf("the allowance was taken %d times, want at least 2 (start-up and forced pass)", taken)
	}
}
