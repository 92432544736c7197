package rotate_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/secret"
	"github.com/ocamba-rotator/rotator/internal/state"
)

// losingHood applies a PATCH, then fails it with err: the answer of a PATCH
// that landed was lost.
type losingHood struct {
	*fakeHood
	err error
}

func (h *losingHood) UpdateSettings(ctx context.Context, token secret.Value, id string, s map[string]secret.Value) error {
	if err := h.fakeHood.UpdateSettings(ctx, token, id, s); err != nil {
		return err
	}
	return h.err
}

// unsavedConfirm loses every confirmation: the process died between the
// PATCH and the confirmation.
type unsavedConfirm struct{ *state.Store }

func (unsavedConfirm) Confirm(string, state.Pushed, state.Attempt) error {
	return errors.New("killed before the confirmation")
}

// TestHoodStateDecides: after a push that may have reached Hood without
// being confirmed, an operator sets Vault back to the last good value; the
// next scheduled pass must push it (Hood may hold the other one), not
// report it unchanged, and a dry run must say why.
func TestHoodStateDecides(t *testing.T) {
	good := map[string]string{"auth_token": "good-" + sentinel, "chat_id": "1"}
	next := map[string]string{"auth_token": "next-" + sentinel, "chat_id": "1"}
	bad := map[string]string{"auth_token": "bad-" + sentinel, "chat_id": "1"}
	tests := []struct {
		name      string
		second    map[string]string // what Vault holds for the failing pass
		setup     func(fh *fakeHood, cfg *rotate.Options)
		rollback  bool
		wantDoubt string // in the dry run's and the push's Doubt
	}{
		{"verification failed, kept", bad, nil, false, "a push failed verification and was kept"},
		{"verification failed, rollback failed", bad, nil, true, "a push failed verification and was kept"},
		{"no verdict from the read-back", next, func(fh *fakeHood, _ *rotate.Options) { fh.testing["1000"] = 1000 }, false, "a push reached Hood but could not be verified"},
		{"a 5xx after the PATCH landed", next, func(fh *fakeHood, o *rotate.Options) {
			o.Hood = &losingHood{fh, &hood.APIError{Method: "PATCH", ID: "1000", StatusCode: 502, Attempts: 3}}
		}, false, "a push failed after it may have reached Hood"},
		{"a reset after the PATCH landed", next, func(fh *fakeHood, o *rotate.Options) {
			o.Hood = &losingHood{fh, errors.New("PATCH integration 1000: read: connection reset by peer")}
		}, false, "a push failed after it may have reached Hood"},
		{"killed before the confirmation", next, func(_ *fakeHood, o *rotate.Options) {
			o.State = unsavedConfirm{o.State.(*state.Store)}
		}, false, state.WhyInterrupted},
		{"refused by Hood (nothing landed)", next, func(fh *fakeHood, _ *rotate.Options) {
			fh.fail["1000"] = &hood.APIError{Method: "PATCH", ID: "1000", StatusCode: 400, Attempts: 1}
		}, false, "the last attempt failed at"},
		{"never sent", next, func(fh *fakeHood, _ *rotate.Options) {
			fh.fail["1000"] = fmt.Errorf("PATCH integration 1000: %w", hood.ErrNotSent)
		}, false, "the last attempt failed at"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fv, fh := newFakes()
			fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
			fv.secrets["secret/a"] = good
			cfg := engineConfig(1, func(int) string { return "a" })
			if tt.rollback {
				cfg.Integrations[0].OnVerifyFailure = "rollback" // no versions in Vault: the rollback fails
			}
			st := newState(t)
			if o := onePass(t, rotate.New(cfg, rotate.Options{Vault: fv, Hood: fh, State: st}), rotate.Request{}); o.Result != rotate.ResultPushed {
				t.Fatalf("first pass: got %s %v, want pushed", o.Result, o.Err)
			}

			fv.secrets["secret/a"] = tt.second
			opts := rotate.Options{Vault: fv, Hood: fh, State: st}
			if tt.setup != nil {
				tt.setup(fh, &opts)
			}
			if o := onePass(t, rotate.New(cfg, opts), rotate.Request{}); o.Result == rotate.ResultUnchanged || (o.Result == rotate.ResultPushed && o.Err == nil && tt.name != "killed before the confirmation") {
				t.Fatalf("failing pass: got %s %v, want it to fail", o.Result, o.Err)
			}

			// The operator's repair: Vault back to the last good value.
			fv.secrets["secret/a"] = good
			fh.mu.Lock()
			fh.fail, fh.testing = map[string]error{}, map[string]int{}
			fh.mu.Unlock()
			eng := rotate.New(cfg, rotate.Options{Vault: fv, Hood: fh, State: st})
			plan := onePass(t, eng, rotate.Request{DryRun: true})
			if plan.Result != rotate.ResultWouldPush || !strings.Contains(plan.Doubt, tt.wantDoubt) {
				t.Errorf("dry run: got %s with doubt %q, want would push with doubt %q", plan.Result, plan.Doubt, tt.wantDoubt)
			}
			before := patches(fh)
			o := onePass(t, eng, rotate.Request{Trigger: rotate.TriggerSchedule})
			if o.Result != rotate.ResultPushed || patches(fh) != before+1 || o.Confirmed == nil {
				t.Errorf("scheduled pass after the repair: got %s (%v) with %d PATCHes, want pushed once and confirmed", o.Result, o.Err, patches(fh)-before)
			}
			fh.mu.Lock()
			held := fh.pushes["1000"]["auth_token"]
			fh.mu.Unlock()
			if held != good["auth_token"] {
				t.Errorf("Hood holds another value than the good one")
			}
			// Now Hood's settings are confirmed: nothing to do.
			if o := onePass(t, eng, rotate.Request{}); o.Result != rotate.ResultUnchanged || o.Doubt != "" {
				t.Errorf("pass after the confirmation: got %s (doubt %q), want unchanged", o.Result, o.Doubt)
			}
		})
	}
}

// TestUnchangedCarriesConfirmation: only an outcome backed by a confirmed
// push says so (Outcome.Confirmed), which is what clears a failure.
func TestUnchangedCarriesConfirmation(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
	eng := rotate.New(engineConfig(1, func(int) string { return "a" }), rotate.Options{Vault: fv, Hood: fh, State: newState(t)})
	pushed := onePass(t, eng, rotate.Request{})
	unchanged := onePass(t, eng, rotate.Request{})
	if pushed.Confirmed == nil || unchanged.Confirmed == nil || !unchanged.Confirmed.Equal(*pushed.Confirmed) {
		t.Errorf("Confirmed: got %v (pushed) and %v (unchanged), want the same confirmation time", pushed.Confirmed, unchanged.Confirmed)
	}
	fv.fail["secret/a"] = errors.New("vault unreachable")
	if o := onePass(t, eng, rotate.Request{}); o.Result != rotate.ResultFailed || o.Confirmed != nil {
		t.Errorf("failed pass: got %s with Confirmed %v, want failed without", o.Result, o.Confirmed)
	}
}

// TestFailingDecidesFromTheCallersBook: a failure that never reached Hood
// (the Vault read) makes the next pass push, to confirm the settings again,
// only for the rotator that counts the integration as failed. A daemon whose
// status book says it is not failing (another rotator of a fleet failed)
// reports it unchanged: one rotator failing before its push on every pass
// cannot make the others push on every pass.
func TestFailingDecidesFromTheCallersBook(t *testing.T) {
	tests := []struct {
		name    string
		failing func(string) (time.Time, bool)
		want    rotate.Result
	}{
		{"no book: the record's failure decides", nil, rotate.ResultPushed},
		{"the book counts it failed", func(string) (time.Time, bool) { return time.Now(), true }, rotate.ResultPushed},
		{"the book knows it is not failing", func(string) (time.Time, bool) { return time.Time{}, true }, rotate.ResultUnchanged},
		{"the book does not know: the record decides", func(string) (time.Time, bool) { return time.Time{}, false }, rotate.ResultPushed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fv, fh := newFakes()
			fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
			fv.secrets["secret/a"] = map[string]string{"auth_token": "good-" + sentinel, "chat_id": "1"}
			cfg := engineConfig(1, func(int) string { return "a" })
			st := newState(t)
			eng := rotate.New(cfg, rotate.Options{Vault: fv, Hood: fh, State: st})
			if o := onePass(t, eng, rotate.Request{}); o.Result != rotate.ResultPushed {
				t.Fatalf("first pass: got %s %v, want pushed", o.Result, o.Err)
			}
			fv.mu.Lock()
			fv.fail["secret/a"] = errors.New("vault unreachable")
			fv.mu.Unlock()
			if o := onePass(t, eng, rotate.Request{}); o.Result != rotate.ResultFailed {
				t.Fatalf("pass with Vault failing: got %s, want failed", o.Result)
			}
			fv.mu.Lock()
			delete(fv.fail, "secret/a")
			fv.mu.Unlock()
			before := patches(fh)
			o := onePass(t, eng, rotate.Request{Trigger: rotate.TriggerSchedule, Failing: tt.failing})
			if o.Result != tt.want {
				t.Fatalf("pass after the failure: got %s (doubt %q), want %s", o.Result, o.Doubt, tt.want)
			}
			if got, want := patches(fh)-before, map[bool]int{true: 1, false: 0}[tt.want == rotate.ResultPushed]; got != want {
				t.Errorf("PATCHes: got %d, want %d", got, want)
			}
			if tt.want == rotate.ResultPushed && !strings.Contains(o.Doubt, "the last attempt failed at") {
				t.Errorf("doubt: got %q, want it to name the failed attempt", o.Doubt)
			}
		})
	}
}

// The daemon's book counts an integration failed; the record holds a push
// of the current settings confirmed after that failure (another rotator's,
// with ha.mode vault): Hood holds them, and the pass does not push them
// again. A confirmation from before the failure does not clear it.
func TestFailingClearedByALaterConfirmationInTheRecord(t *testing.T) {
	tests := []struct {
		name  string
		since func(confirmed time.Time) time.Time
		want  rotate.Result
	}{
		{"failed before the confirmation", func(c time.Time) time.Time { return c.Add(-time.Second) }, rotate.ResultUnchanged},
		{"failed after the confirmation", func(c time.Time) time.Time { return c.Add(time.Second) }, rotate.ResultPushed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fv, fh := newFakes()
			fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
			fv.secrets["secret/a"] = map[string]string{"auth_token": "good-" + sentinel, "chat_id": "1"}
			st := newState(t)
			eng := rotate.New(engineConfig(1, func(int) string { return "a" }), rotate.Options{Vault: fv, Hood: fh, State: st})
			o := onePass(t, eng, rotate.Request{})
			if o.Result != rotate.ResultPushed || o.Confirmed == nil {
				t.Fatalf("first pass: got %s %v, want pushed and confirmed", o.Result, o.Err)
			}
			since := tt.since(*o.Confirmed)
			before := patches(fh)
			o = onePass(t, eng, rotate.Request{Trigger: rotate.TriggerSchedule, Failing: func(string) (time.Time, bool) { return since, true }})
			if o.Result != tt.want {
				t.Fatalf("got %s (doubt %q), want %s", o.Result, o.Doubt, tt.want)
			}
			if got, want := patches(fh)-before, map[bool]int{true: 1, false: 0}[tt.want == rotate.ResultPushed]; got != want {
				t.Errorf("PATCHes: got %d, want %d", got, want)
			}
		})
	}
}
