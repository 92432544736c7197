package main

// End-to-end tests of the Hood rate limiter: a Retry-After holds every
// push of a pass, and a reload keeps the limiter's windows.

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
)

// setHood rewrites the hood section of a configuration file: each old
// string is replaced by its new one.
func (f *fixture) setHood(path string, oldNew ...string) {
	f.t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		f.t.Fatal(err)
	}
	s := string(b)
	for i := 0; i+1 < len(oldNew); i += 2 {
		if !strings.Contains(s, oldNew[i]) {
			f.t.Fatalf("configuration: %q not found", oldNew[i])
		}
		s = strings.Replace(s, oldNew[i], oldNew[i+1], 1)
	}
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		f.t.Fatal(err)
	}
}

// TestOnceRetryAfterHoldsOtherPushes: Hood answers one push's first request
// 429 with Retry-After 2s, longer than max_backoff (1s). That push fails;
// the other push of the pass, already under way, sends nothing more until
// the 2s are over, then succeeds.
func TestOnceRetryAfterHoldsOtherPushes(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"941": "telegram", "942": "telegram"})
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	cfg := f.config("", `  - {name: a, id: "941", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
  - {name: b, id: "942", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
`)
	f.setHood(cfg, "max_backoff: 5s", "max_backoff: 1s")
	// a's read of the integration draws the 429; b's is answered 300ms
	// late, so that b's PATCH comes after the 429.
	f.hood.Inject(hoodtest.Fault{Method: "GET", ID: "941", Status: 429, RetryAfter: "2"})
	f.hood.Inject(hoodtest.Fault{Method: "GET", ID: "942", Delay: 300 * time.Millisecond})

	r := f.rotator("once", "--config", cfg)
	if r.code != exitFailed {
		t.Errorf("exit code: got %d, want %d\n%s%s", r.code, exitFailed, r.stdout, r.stderr)
	}
	if line := summaryLine(r.stdout, "a"); !strings.Contains(line, "failed") || !strings.Contains(line, "429") {
		t.Errorf("a: got %q, want failed with the 429", line)
	}
	if line := summaryLine(r.stdout, "b"); !strings.Contains(line, "pushed") {
		t.Errorf("b: got %q, want pushed after the hold", line)
	}
	var t429 time.Time
	reqs := f.hood.Requests()
	for _, q := range reqs {
		if q.Status == 429 {
			t429 = q.Time
		}
	}
	if t429.IsZero() {
		t.Fatalf("requests: got %+v, want a 429", reqs)
	}
	for _, q := range reqs {
		if q.Status == 429 || q.Fault == "delay" {
			continue
		}
		if q.Time.Before(t429.Add(2 * time.Second)) {
			t.Errorf("%s %s reached Hood %v after the 429, want none before the 2s Retry-After ended", q.Method, q.Path, q.Time.Sub(t429))
		}
	}
	if got := f.patchCount("942"); got != 1 {
		t.Errorf("PATCHes of b: got %d, want 1", got)
	}
}

// TestRunReloadKeepsRateLimiter: a pass just before a reload and one just
// after stay inside Hood's burst window together: the reloaded client
// shares the limiter, with its windows, of the one before.
func TestRunReloadKeepsRateLimiter(t *testing.T) {
	f := newFixture(t, hoodtest.Options{Burst: 2})
	f.addIntegrations(map[string]string{"951": "telegram", "952": "telegram"})
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "1"})
	cfg := f.runConfig("", `schedule: "@every 1h"`, `  - {name: a, id: "951", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
  - {name: b, id: "952", provider: telegram, source: {mount: secret, path: "{P}/tg"}}
`)
	f.setHood(cfg, "verify_timeout: 3s", "verify_timeout: 3s\n  rate_limit: {burst: 2, per_minute: 150}")
	d := f.startDaemon(cfg)
	eventually(t, 20*time.Second, "start-up pass done", func() bool {
		return strings.Contains(d.logs.String(), `"msg":"pass finished","trigger":"startup"`)
	})
	if f.patchCount("951") != 1 || f.patchCount("952") != 1 {
		t.Fatalf("start-up pass: got %d and %d PATCHes, want 1 each", f.patchCount("951"), f.patchCount("952"))
	}

	// A pass of three requests (read, PATCH, read-back) fills the window,
	if a := d.rotate("/v1/rotate/a"); len(a.Outcomes) != 1 || a.Outcomes[0].Result != "pushed" {
		t.Fatalf("forced pass of a: got %+v, want a pushed\n%s", a, d.logs)
	}
	// a reload right after it,
	d.reload <- struct{}{}
	eventually(t, 10*time.Second, "reload applied", func() bool {
		return strings.Contains(d.logs.String(), "configuration reloaded")
	})
	// and a pass of the reloaded configuration right after that.
	if a := d.rotate("/v1/rotate/b"); len(a.Outcomes) != 1 || a.Outcomes[0].Result != "pushed" {
		t.Fatalf("forced pass of b: got %+v, want b pushed", a)
	}
	if n := f.hood.Throttled(); n != 0 {
		t.Errorf("429 answers of Hood's rate limits: got %d, want 0", n)
	}
}
