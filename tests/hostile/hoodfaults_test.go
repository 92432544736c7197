package hostile_test

// Hood faults: what `rotator once` does when the Hood API throttles, fails,
// times out, hangs, resets the connection, refuses the token, lost an
// integration, or accepts a push whose credentials then fail the test. Each
// test counts the requests Hood received and checks the summary, the state
// file and the audit log.

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
)

// telegram writes a telegram secret and returns the YAML line of an
// integration using it.
func (f *fixture) telegram(name, id string) string {
	f.t.Helper()
	f.put("secret", name, map[string]any{"auth_token": sentinel, "chat_id": "42"})
	f.addHood(map[string]string{id: "telegram"})
	return fmt.Sprintf("  - {name: %s, id: %q, provider: telegram, source: {mount: secret, path: \"{P}/%s\"}}\n", name, id, name)
}

// wantPushedCleanly checks the durable traces of a confirmed push: state
// confirmed at version v with nothing pending, audit push+verify ok.
func (f *fixture) wantPushedCleanly(name string, v int) {
	f.t.Helper()
	rec := f.record(name)
	if rec.Confirmed == nil || rec.Confirmed.VaultVersion != v {
		f.t.Errorf("state of %s: confirmed %+v, want a confirmed push of version %d", name, rec.Confirmed, v)
	}
	if rec.Pending != nil {
		f.t.Errorf("state of %s: a push is still pending after a confirmed one", name)
	}
	if got := lastAttempt(rec).Result; got != "pushed" {
		f.t.Errorf("state of %s: last attempt %q, want pushed", name, got)
	}
	if got, want := f.auditEvents(name), []string{"push:ok", "verify:ok"}; !slices.Equal(got, want) {
		f.t.Errorf("audit of %s: got %v, want %v", name, got, want)
	}
}

// wantNotConfirmed checks that a failed push left no confirmation behind
// and recorded the failure.
func (f *fixture) wantNotConfirmed(name string, errContains string) {
	f.t.Helper()
	rec := f.record(name)
	if rec.Confirmed != nil {
		f.t.Errorf("state of %s: got a confirmed push, want none", name)
	}
	a := lastAttempt(rec)
	if a.Result != "failed" || !strings.Contains(a.Error, errContains) {
		f.t.Errorf("state of %s: last attempt %q %q, want failed with %q", name, a.Result, a.Error, errContains)
	}
	// A plan still wants to push it: nothing was lost.
	r := f.plan(f.dir + "/config.yaml")
	wantLine(f.t, r, name, "would push")
}

func TestHood429(t *testing.T) {
	t.Parallel()
	t.Run("with Retry-After", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		c := f.config(cfg{integrations: f.telegram("tg", "101")})
		f.hood.Inject(hoodtest.Fault{Method: http.MethodPatch, Status: http.StatusTooManyRequests, RetryAfter: "1"})
		r := f.once(c)
		if r.code != 0 {
			t.Fatalf("exit code: got %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		wantLine(t, r, "tg", "pushed")
		patches := f.requests("PATCH", "101")
		if got, want := statuses(patches), []int{429, 204}; !slices.Equal(got, want) {
			t.Fatalf("PATCH statuses: got %v, want %v", got, want)
		}
		// A lower bound only: the retry came no sooner than Retry-After.
		if gap := patches[1].Time.Sub(patches[0].Time); gap < 950*time.Millisecond {
			t.Errorf("retry after a 429 with Retry-After: 1 came %v later, want at least 1s", gap)
		}
		if got := f.count("GET", "101"); got != 2 {
			t.Errorf("GETs (preflight, read-back): got %d, want 2", got)
		}
		if got := f.hood.Throttled(); got != 0 {
			t.Errorf("requests over Hood's limits: got %d, want 0", got)
		}
		f.wantPushedCleanly("tg", 1)
	})
	t.Run("Retry-After beyond max_backoff", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		c := f.config(cfg{integrations: f.telegram("tg", "103")})
		f.hood.Inject(hoodtest.Fault{Method: http.MethodPatch, Status: http.StatusTooManyRequests, RetryAfter: "3600", Times: -1})
		r := f.once(c)
		if r.code != 1 {
			t.Fatalf("exit code: got %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		// Documented: a Retry-After longer than max_backoff ends the retries.
		wantLine(t, r, "tg", "failed", "429")
		if got := f.count("PATCH", "103"); got != 1 {
			t.Errorf("PATCHes: got %d, want 1 (a wait over max_backoff is not made)", got)
		}
		f.wantNotConfirmed("tg", "429")
	})
	t.Run("without Retry-After", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		c := f.config(cfg{integrations: f.telegram("tg", "102")})
		f.hood.Inject(hoodtest.Fault{Method: http.MethodPatch, Status: http.StatusTooManyRequests, Times: 2})
		r := f.once(c)
		if r.code != 0 {
			t.Fatalf("exit code: got %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		wantLine(t, r, "tg", "pushed")
		if got, want := statuses(f.requests("PATCH", "102")), []int{429, 429, 204}; !slices.Equal(got, want) {
			t.Errorf("PATCH statuses: got %v, want %v", got, want)
		}
		if got := f.hood.Throttled(); got != 0 {
			t.Errorf("requests over Hood's limits: got %d, want 0", got)
		}
		f.wantPushedCleanly("tg", 1)
	})
}

func TestHood5xxBurst(t *testing.T) {
	t.Parallel()
	t.Run("shorter than max_attempts", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		c := f.config(cfg{integrations: f.telegram("tg", "111")})
		for _, code := range []int{500, 502, 503} {
			f.hood.Inject(hoodtest.Fault{Method: http.MethodPatch, Status: code})
		}
		r := f.once(c)
		if r.code != 0 {
			t.Fatalf("exit code: got %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		wantLine(t, r, "tg", "pushed")
		if got, want := statuses(f.requests("PATCH", "111")), []int{500, 502, 503, 204}; !slices.Equal(got, want) {
			t.Errorf("PATCH statuses: got %v, want %v", got, want)
		}
		if in, _ := f.hood.Integration("111"); in.Patches != 1 {
			t.Errorf("PATCHes applied by Hood: got %d, want 1", in.Patches)
		}
		f.wantPushedCleanly("tg", 1)
	})
	t.Run("longer than max_attempts", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		c := f.config(cfg{integrations: f.telegram("tg", "112") + f.telegram("ok", "113")})
		f.hood.Inject(hoodtest.Fault{Method: http.MethodPatch, ID: "112", Status: 503, Times: -1})
		r := f.once(c)
		if r.code != 1 {
			t.Fatalf("exit code: got %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		wantLine(t, r, "tg", "failed", "503", "4 attempts")
		wantLine(t, r, "ok", "pushed")
		// Exactly max_attempts PATCHes, no read-back, nothing else: no storm.
		if got, want := statuses(f.requests("PATCH", "112")), []int{503, 503, 503, 503}; !slices.Equal(got, want) {
			t.Errorf("PATCH statuses: got %v, want %v", got, want)
		}
		if got := f.count("", "112"); got != 5 {
			t.Errorf("requests for 112: got %d, want 5 (1 preflight GET + 4 PATCH)", got)
		}
		if got := f.hood.Throttled(); got != 0 {
			t.Errorf("requests over Hood's limits: got %d, want 0", got)
		}
		f.wantNotConfirmed("tg", "503")
		if got, want := f.auditEvents("tg"), []string{"push:failed"}; !slices.Equal(got, want) {
			t.Errorf("audit of tg: got %v, want %v", got, want)
		}
		f.wantPushedCleanly("ok", 1)

		// The outage ends: the next ordinary pass pushes it, and only it.
		f.hood.ClearFaults()
		f.hood.Reset()
		r = f.once(c)
		if r.code != 0 {
			t.Fatalf("after the outage: exit code %d, want 0\n%s", r.code, r.stdout)
		}
		wantLine(t, r, "tg", "pushed")
		wantLine(t, r, "ok", "unchanged")
		if got := f.count("PATCH", ""); got != 1 {
			t.Errorf("PATCHes after the outage: got %d, want 1", got)
		}
	})
}

func TestHoodTimeoutAndHang(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		fault hoodtest.Fault
	}{
		{"delay beyond hood.timeout", hoodtest.Fault{Method: http.MethodPatch, Delay: 5 * time.Second}},
		{"hang once", hoodtest.Fault{Method: http.MethodPatch, Hang: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			c := f.config(cfg{timeout: "300ms", integrations: f.telegram("tg", "121")})
			f.hood.Inject(tt.fault)
			r := f.once(c)
			if r.code != 0 {
				t.Fatalf("exit code: got %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			wantLine(t, r, "tg", "pushed")
			// The first attempt got no answer (0), the retry 204.
			if got, want := statuses(f.requests("PATCH", "121")), []int{0, 204}; !slices.Equal(got, want) {
				t.Errorf("PATCH statuses: got %v, want %v", got, want)
			}
			if in, _ := f.hood.Integration("121"); in.Patches != 1 {
				t.Errorf("PATCHes applied by Hood: got %d, want 1", in.Patches)
			}
			if !strings.Contains(r.stderr, "timed out after 300ms") {
				t.Errorf("log: want the attempt's timeout reported (\"timed out after 300ms\")")
			}
			f.wantPushedCleanly("tg", 1)
		})
	}
	t.Run("hang on every attempt", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		c := f.config(cfg{timeout: "300ms", integrations: f.telegram("tg", "122") + f.telegram("ok", "123")})
		f.hood.Inject(hoodtest.Fault{Method: http.MethodPatch, ID: "122", Hang: true, Times: -1})
		r := f.once(c) // returns: bounded by timeout × attempts plus backoffs
		if r.code != 1 {
			t.Fatalf("exit code: got %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		wantLine(t, r, "tg", "failed", "timed out")
		wantLine(t, r, "ok", "pushed")
		if got, want := statuses(f.requests("PATCH", "122")), []int{0, 0, 0, 0}; !slices.Equal(got, want) {
			t.Errorf("PATCH statuses: got %v, want %v (max_attempts, none answered)", got, want)
		}
		if got := f.count("GET", "122"); got != 1 {
			t.Errorf("GETs of 122: got %d, want 1 (no read-back after a failed PATCH)", got)
		}
		f.wantNotConfirmed("tg", "timed out")
		f.wantPushedCleanly("ok", 1)
	})
}

func TestHoodConnectionReset(t *testing.T) {
	t.Parallel()
	t.Run("once on the PATCH", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		c := f.config(cfg{integrations: f.telegram("tg", "131")})
		f.hood.Inject(hoodtest.Fault{Method: http.MethodPatch, Reset: true})
		r := f.once(c)
		if r.code != 0 {
			t.Fatalf("exit code: got %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		wantLine(t, r, "tg", "pushed")
		if got, want := statuses(f.requests("PATCH", "131")), []int{0, 204}; !slices.Equal(got, want) {
			t.Errorf("PATCH statuses: got %v, want %v", got, want)
		}
		f.wantPushedCleanly("tg", 1)
	})
	t.Run("every preflight GET", func(t *testing.T) {
		t.Parallel()
		f := newFixture(t)
		c := f.config(cfg{integrations: f.telegram("tg", "132") + f.telegram("ok", "133")})
		f.hood.Inject(hoodtest.Fault{Method: http.MethodGet, ID: "132", Reset: true, Times: -1})
		r := f.once(c)
		if r.code != 1 {
			t.Fatalf("exit code: got %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		wantLine(t, r, "tg", "failed", "132")
		wantLine(t, r, "ok", "pushed")
		// rotator makes exactly max_attempts attempts. On the wire there
		// may be more: Go's http.Transport replays an idempotent GET once by
		// itself when a reused keep-alive connection dies before answering
		// (see the report), so up to two requests per attempt.
		if got := countLogs(r.stderr, "hood request", map[string]string{"method": "GET", "id": "132"}); got != 4 {
			t.Errorf("GET attempts of 132 logged by rotator: got %d, want 4 (max_attempts)", got)
		}
		if got := f.count("GET", "132"); got < 4 || got > 8 {
			t.Errorf("GETs of 132 on the wire: got %d, want 4 to 8", got)
		} else if got > 4 {
			t.Logf("GETs of 132 on the wire: %d for 4 attempts (transport replays on reused connections)", got)
		}
		if got := f.count("PATCH", "132"); got != 0 {
			t.Errorf("PATCHes of 132 after a failed preflight: got %d, want 0", got)
		}
		f.wantNotConfirmed("tg", "132")
		if got := f.auditEvents("tg"); len(got) != 0 {
			t.Errorf("audit of tg: got %v, want nothing (no push was made)", got)
		}
	})
}

func TestHoodExpiredToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.config(cfg{integrations: f.telegram("a", "141") + f.telegram("b", "142") + f.telegram("c", "143")})
	if r := f.once(c); r.code != 0 {
		t.Fatalf("first pass: exit code %d, want 0\n%s", r.code, r.stdout)
	}
	// The token in Vault expired: Hood now takes another one.
	f.hood.SetTokens("another-token-not-in-vault")
	f.hood.Reset()
	r := f.once(c, "--force")
	if r.code != 1 {
		t.Fatalf("exit code: got %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, name := range []string{"a", "b", "c"} {
		wantLine(t, r, name, "failed", "401")
	}
	// One request per integration: a 401 is not retried, and nothing is
	// pushed after a refused preflight.
	for _, id := range []string{"141", "142", "143"} {
		if got := statuses(f.requests("", id)); !slices.Equal(got, []int{401}) {
			t.Errorf("requests for %s: got statuses %v, want exactly [401]", id, got)
		}
	}
	for _, name := range []string{"a", "b", "c"} {
		rec := f.record(name)
		if rec.Confirmed == nil || rec.Confirmed.VaultVersion != 1 {
			t.Errorf("state of %s: the earlier confirmed push is gone", name)
		}
		if a := lastAttempt(rec); a.Result != "failed" || !strings.Contains(a.Error, "401") {
			t.Errorf("state of %s: last attempt %q %q, want failed with 401", name, a.Result, a.Error)
		}
		if got, want := f.auditEvents(name), []string{"push:ok", "verify:ok"}; !slices.Equal(got, want) {
			t.Errorf("audit of %s: got %v, want only the first push %v", name, got, want)
		}
	}

	// The token is rolled in Vault: the next pass reads it again and works.
	rolled := sentinel + "-rolled"
	f.put("secret", "hood", map[string]any{"token": rolled})
	f.hood.SetTokens(rolled)
	f.hood.Reset()
	r = f.once(c, "--force")
	if r.code != 0 {
		t.Fatalf("after rolling the token: exit code %d, want 0\n%s", r.code, r.stdout)
	}
	if got := f.count("PATCH", ""); got != 3 {
		t.Errorf("PATCHes with the rolled token: got %d, want 3", got)
	}
}

func TestHoodDeletedIntegration(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.config(cfg{integrations: f.telegram("a", "151") + f.telegram("gone", "152") + f.telegram("c", "153")})
	f.hood.RemoveIntegration("152")
	r := f.once(c)
	if r.code != 1 {
		t.Fatalf("exit code: got %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	wantLine(t, r, "gone", "failed", "152", "404")
	wantLine(t, r, "a", "pushed")
	wantLine(t, r, "c", "pushed")
	if got := statuses(f.requests("", "152")); !slices.Equal(got, []int{404}) {
		t.Errorf("requests for 152: got statuses %v, want exactly [404] (no retry, no PATCH)", got)
	}
	f.wantNotConfirmed("gone", "404")
	f.wantPushedCleanly("a", 1)
	f.wantPushedCleanly("c", 1)
}

func TestHoodVerificationFails(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.config(cfg{integrations: f.telegram("bad", "161") + f.telegram("ok", "162")})
	f.hood.Inject(hoodtest.Fault{ID: "161", VerifyStatus: "inactive"})
	r := f.once(c)
	if r.code != 1 {
		t.Fatalf("exit code: got %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	wantLine(t, r, "bad", "failed", "verification failed", "inactive")
	wantLine(t, r, "ok", "pushed")
	if got, want := statuses(f.requests("PATCH", "161")), []int{204}; !slices.Equal(got, want) {
		t.Errorf("PATCH statuses: got %v, want %v", got, want)
	}
	rec := f.record("bad")
	if rec.Confirmed != nil || rec.Failed == nil || rec.Failed.VaultVersion != 1 {
		t.Errorf("state of bad: confirmed %v, failed %v; want no confirmed push and a failed one at version 1",
			rec.Confirmed != nil, rec.Failed)
	}
	if got, want := f.auditEvents("bad"), []string{"push:ok", "verify:failed"}; !slices.Equal(got, want) {
		t.Errorf("audit of bad: got %v, want %v", got, want)
	}

	// The next ordinary pass does not push the same settings again.
	r = f.once(c)
	wantLine(t, r, "bad", "failed", "failed verification before")
	wantLine(t, r, "ok", "unchanged")
	if got := f.count("PATCH", "161"); got != 1 {
		t.Errorf("PATCHes of bad after a non-forced pass: got %d, want still 1", got)
	}
	if got := f.count("", "162"); got != 3 {
		t.Errorf("requests for ok: got %d, want still 3 (unchanged costs no call)", got)
	}
	if got := len(f.auditEvents("bad")); got != 2 {
		t.Errorf("audit records of bad after the refused pass: got %d, want still 2", got)
	}

	// A forced pass tries again (Hood's test now passes).
	r = f.once(c, "--force", "--only", "bad")
	if r.code != 0 {
		t.Fatalf("forced pass: exit code %d, want 0\n%s", r.code, r.stdout)
	}
	wantLine(t, r, "bad", "pushed")
	if got := f.count("PATCH", "161"); got != 2 {
		t.Errorf("PATCHes of bad after a forced pass: got %d, want 2", got)
	}

	// A new Vault version fails too; the one after it is pushed by an
	// ordinary pass: a new version tries again, the same one does not.
	f.hood.Inject(hoodtest.Fault{ID: "161", VerifyStatus: "inactive"})
	f.put("secret", "bad", map[string]any{"auth_token": sentinel + "-v2", "chat_id": "42"})
	r = f.once(c)
	wantLine(t, r, "bad", "failed", "verification failed")
	r = f.once(c)
	wantLine(t, r, "bad", "failed", "failed verification before")
	if got := f.count("PATCH", "161"); got != 3 {
		t.Errorf("PATCHes of bad after version 2 failed and a second pass: got %d, want 3", got)
	}
	f.put("secret", "bad", map[string]any{"auth_token": sentinel + "-v3", "chat_id": "42"})
	r = f.once(c)
	if r.code != 0 {
		t.Fatalf("version 3: exit code %d, want 0\n%s", r.code, r.stdout)
	}
	wantLine(t, r, "bad", "pushed", "v3")
	if rec := f.record("bad"); rec.Confirmed == nil || rec.Confirmed.VaultVersion != 3 {
		t.Errorf("state of bad: want version 3 confirmed")
	}
}

// The PATCH succeeds (204) but the verification cannot read the
// integration back: every read-back GET answers 503 (an outage longer than
// max_attempts), or hangs past hood.timeout. Nothing says the new
// credentials are bad: rotator reports the push unverified, does not roll
// back to the old ones, and the next ordinary pass tries again.
func TestHoodReadBackOutage(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, mode string
		fault      hoodtest.Fault
	}{
		{"503 burst, rollback", "rollback", hoodtest.Fault{Status: 503, Times: 4}},
		{"503 burst, keep", "keep", hoodtest.Fault{Status: 503, Times: 4}},
		{"hang, rollback", "rollback", hoodtest.Fault{Hang: true, Times: 4}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			f.put("secret", "tw", map[string]any{"auth_token": sentinel + "-v1", "account_sid": "AC1", "default_phone_number": "+1"})
			f.addHood(map[string]string{"601": "twilio_sms"})
			c := f.config(cfg{timeout: "300ms", integrations: "  - {name: tw, id: \"601\", provider: twilio_sms, source: {mount: secret, path: \"{P}/tw\"}, on_verify_failure: " + tt.mode + "}\n"})
			if r := f.once(c); r.code != 0 {
				t.Fatalf("version 1: exit code %d, want 0\n%s", r.code, r.stdout)
			}
			f.put("secret", "tw", map[string]any{"auth_token": sentinel + "-v2", "account_sid": "AC1", "default_phone_number": "+1"})
			f.hood.Reset()
			// The preflight GET goes through; the read-backs fail.
			f.hood.Inject(hoodtest.Fault{Method: http.MethodGet, ID: "601", Name: "preflight-ok"})
			fault := tt.fault
			fault.Method, fault.ID = http.MethodGet, "601"
			f.hood.Inject(fault)
			r := f.once(c)
			if r.code != 1 {
				t.Fatalf("exit code: got %d, want 1\n%s", r.code, r.stdout)
			}
			wantLine(t, r, "tw", "failed", "not verified")
			if line := summaryLine(r.stdout, "tw"); strings.Contains(line, "rolled back") {
				t.Errorf("summary: got %q, want no rollback without a verdict", line)
			}
			if got := f.pushedCount("601"); got != 1 {
				t.Errorf("PATCHes after the read-back outage: got %d, want 1 (no rollback push)", got)
			}
			if in, _ := f.hood.Integration("601"); in.Settings["auth_token"] != sentinel+"-v2" {
				t.Errorf("Hood does not hold version 2 after a read-back outage: the new credentials were rolled back without a verdict")
			}
			if got := f.auditEvents("tw"); slices.Contains(got, "rollback:ok") {
				t.Errorf("audit: got %v, want no rollback", got)
			}
			// The outage is over: the next ordinary pass completes the rotation.
			f.hood.Reset()
			r = f.once(c)
			if r.code != 0 {
				t.Fatalf("next ordinary pass: exit code %d, want 0: %s", r.code, summaryLine(r.stdout, "tw"))
			}
			wantLine(t, r, "tw", "pushed", "v2")
			if rec := f.record("tw"); rec.Confirmed == nil || rec.Confirmed.VaultVersion != 2 || rec.Pending != nil {
				t.Errorf("state after the outage: want version 2 confirmed and nothing pending")
			}
		})
	}
}
