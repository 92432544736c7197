package rotate_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/audit"
	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/state"
)

// sharedState is a local state that behaves, where told to, as a shared
// one (internal/ha) would: a record held elsewhere, a Begin, Confirm or
// Fence that lost the lease. It counts the calls.
type sharedState struct {
	*state.Store
	mu         sync.Mutex
	heldBy     string
	heldUntil  time.Time
	revision   int
	beginErr   error
	confirmErr error
	fenceErr   error
	fenceOK    int // Fence calls that succeed before fenceErr is returned
	suspect    bool
	revisions  []int // Begin's revision arguments
	calls      map[string]int
}

func newSharedState(t *testing.T) *sharedState {
	return &sharedState{Store: newState(t), calls: map[string]int{}}
}

func (s *sharedState) count(call string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[call]
}

func (s *sharedState) called(call string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[call]++
}

func (s *sharedState) Get(name string) (state.Record, bool, error) {
	s.called("get")
	r, ok, err := s.Store.Get(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	r.Revision, r.HeldBy, r.HeldUntil, r.Suspect = s.revision, s.heldBy, s.heldUntil, s.suspect
	return r, ok, err
}

func (s *sharedState) Begin(name, id, provider string, revision int, p state.Pushed) error {
	s.called("begin")
	s.mu.Lock()
	s.revisions = append(s.revisions, revision)
	err := s.beginErr
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.Store.Begin(name, id, provider, revision, p)
}

func (s *sharedState) Confirm(name string, p state.Pushed, a state.Attempt) error {
	s.called("confirm")
	if err := s.Store.Confirm(name, p, a); err != nil {
		return err
	}
	return s.confirmErr
}

func (s *sharedState) Fail(name string, f state.Failure) error {
	s.called("fail")
	return s.Store.Fail(name, f)
}

func (s *sharedState) Note(name string, a state.Attempt) error {
	s.called("note")
	return s.Store.Note(name, a)
}

// LeaseDeadline: a lease that does not run out during a test.
func (s *sharedState) LeaseDeadline(string) (time.Time, bool) { return time.Now().Add(time.Hour), true }

func (s *sharedState) MarkSuspect(name string) error {
	s.called("suspect")
	return nil
}

func (s *sharedState) Fence(name string) error {
	s.called("fence")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.calls["fence"] <= s.fenceOK {
		return nil
	}
	return s.fenceErr
}

// countingAudit counts audit records per event.
type countingAudit struct {
	mu     sync.Mutex
	events map[string]int
}

func (c *countingAudit) Write(r audit.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.events == nil {
		c.events = map[string]int{}
	}
	c.events[r.Event]++
	return nil
}

func (c *countingAudit) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.events {
		n += v
	}
	return n
}

func hoodGets(fh *fakeHood) int {
	fh.mu.Lock()
	defer fh.mu.Unlock()
	return fh.gets
}

func TestHeldElsewhereIsUnchangedWithoutHood(t *testing.T) {
	until := time.Date(2026, 11, 29, 10, 0, 0, 123e6, time.FixedZone("CET", 3600))
	wantReason := "held by web-2#00aa11bb until 2026-11-29T09:00:00Z"
	tests := []struct {
		name string
		req  rotate.Request
	}{
		{"scheduled", rotate.Request{Trigger: rotate.TriggerSchedule}},
		{"forced", rotate.Request{Trigger: rotate.TriggerAdmin, Force: true}},
		{"dry run", rotate.Request{Trigger: rotate.TriggerCLI, DryRun: true}},
		{"forced dry run", rotate.Request{Trigger: rotate.TriggerCLI, DryRun: true, Force: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fv, fh := newFakes()
			fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
			fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
			st := newSharedState(t)
			st.heldBy, st.heldUntil = "web-2#00aa11bb", until
			au := &countingAudit{}
			eng := rotate.New(engineConfig(2, func(int) string { return "a" }), rotate.Options{Vault: fv, Hood: fh, State: st, Audit: au})
			rep, err := eng.Pass(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range rep.Outcomes {
				if o.Result != rotate.ResultUnchanged || o.Reason != wantReason || o.Err != nil {
					t.Errorf("%s: got %s %q (%v), want unchanged %q", o.Name, o.Result, o.Reason, o.Err, wantReason)
				}
			}
			if n := hoodGets(fh) + patches(fh); n != 0 {
				t.Errorf("Hood requests: got %d, want 0", n)
			}
			for _, call := range []string{"begin", "confirm", "fail", "note"} {
				if n := st.count(call); n != 0 {
					t.Errorf("state %s calls: got %d, want 0", call, n)
				}
			}
			if au.total() != 0 {
				t.Errorf("audit records: got %d, want 0", au.total())
			}
		})
	}
}

func TestBeginGetsTheRevisionRead(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
	st := newSharedState(t)
	st.revision = 7
	eng := rotate.New(engineConfig(1, func(int) string { return "a" }), rotate.Options{Vault: fv, Hood: fh, State: st})
	if o := onePass(t, eng, rotate.Request{}); o.Result != rotate.ResultPushed {
		t.Fatalf("got %s %v, want pushed", o.Result, o.Err)
	}
	if len(st.revisions) != 1 || st.revisions[0] != 7 {
		t.Errorf("Begin's revisions: got %v, want [7]", st.revisions)
	}
}

func TestBeginNotHolderIsUnchanged(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
	st := newSharedState(t)
	st.beginErr = fmt.Errorf("%w: begin integration tg-0: record changed", state.ErrNotHolder)
	au := &countingAudit{}
	eng := rotate.New(engineConfig(1, func(int) string { return "a" }), rotate.Options{Vault: fv, Hood: fh, State: st, Audit: au})
	rep, err := eng.Pass(context.Background(), rotate.Request{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	o := rep.Outcomes[0]
	if o.Result != rotate.ResultUnchanged || o.Err != nil || o.Reason != "another rotator changed the record since it was read: not pushed" {
		t.Errorf("got %s %q (%v), want unchanged because another rotator changed the record", o.Result, o.Reason, o.Err)
	}
	if rep.Failed() != 0 {
		t.Errorf("Failed: got %d, want 0", rep.Failed())
	}
	if n := patches(fh); n != 0 {
		t.Errorf("PATCHes: got %d, want 0", n)
	}
	if n := st.count("fail") + st.count("note") + st.count("confirm"); n != 0 {
		t.Errorf("state writes after the refused Begin: got %d, want 0", n)
	}
	if au.total() != 0 {
		t.Errorf("audit records: got %v, want none", au.events)
	}

	// Any other Begin error is still a failure, and nothing is pushed.
	st.beginErr = fmt.Errorf("write record: connection refused")
	o = onePass(t, eng, rotate.Request{Force: true})
	if o.Result != rotate.ResultFailed || !strings.Contains(o.Error, "write state before the push") {
		t.Errorf("other Begin error: got %s %q, want failed", o.Result, o.Error)
	}
	if n := patches(fh); n != 0 {
		t.Errorf("PATCHes: got %d, want 0", n)
	}
}

func TestConfirmNotHolderIsPushedWithWarning(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
	st := newSharedState(t)
	st.confirmErr = fmt.Errorf("%w: confirm integration tg-0: lease taken", state.ErrNotHolder)
	eng := rotate.New(engineConfig(1, func(int) string { return "a" }), rotate.Options{Vault: fv, Hood: fh, State: st})
	o := onePass(t, eng, rotate.Request{})
	if o.Result != rotate.ResultPushed || o.Err != nil {
		t.Fatalf("got %s %v, want pushed", o.Result, o.Err)
	}
	want := "pushed, but the lease was lost before the confirmation: " + st.confirmErr.Error()
	if len(o.Warnings) != 1 || o.Warnings[0] != want {
		t.Errorf("warnings: got %q, want [%q]", o.Warnings, want)
	}
	if n := patches(fh); n != 1 {
		t.Errorf("PATCHes: got %d, want 1", n)
	}
}

func TestFenceErrorSkipsRollback(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	cfg := engineConfig(1, func(int) string { return "a" })
	cfg.Integrations[0].OnVerifyFailure = "rollback"
	st := newSharedState(t)
	good := map[string]string{"auth_token": "good-" + sentinel, "chat_id": "1"}
	fv.secrets["secret/a"] = good
	fv.versions["secret/a@5"] = good
	if o := onePass(t, rotate.New(cfg, rotate.Options{Vault: versioned{fv, 5}, Hood: fh, State: st}), rotate.Request{}); o.Result != rotate.ResultPushed {
		t.Fatalf("version 5: got %s %v, want pushed", o.Result, o.Err)
	}

	// The Fences before the PATCH and before the read-back succeed; the
	// one before the rollback's PATCH finds the lease taken.
	before := st.count("fence")
	st.fenceOK = before + 2
	st.fenceErr = fmt.Errorf("%w: fence integration tg-0: lease taken", state.ErrNotHolder)
	fv.secrets["secret/a"] = map[string]string{"auth_token": "bad-" + sentinel, "chat_id": "1"}
	au := &countingAudit{}
	o := onePass(t, rotate.New(cfg, rotate.Options{Vault: versioned{fv, 6}, Hood: fh, State: st, Audit: au}), rotate.Request{})
	if o.Result != rotate.ResultFailed || o.RolledBack || !strings.Contains(o.Error, "rollback failed: rollback not pushed: not the lease holder") {
		t.Fatalf("got %s rolled_back=%v %q, want failed with the rollback not pushed", o.Result, o.RolledBack, o.Error)
	}
	if n := st.count("fence") - before; n != 3 {
		t.Errorf("Fence calls: got %d, want 3 (before the PATCH, before the read-back, before the rollback)", n)
	}
	if n := patches(fh); n != 2 {
		t.Errorf("PATCHes: got %d, want 2 (version 5, version 6; no rollback)", n)
	}
	fh.mu.Lock()
	final := fh.pushes["1000"]["auth_token"]
	fh.mu.Unlock()
	if final != "bad-"+sentinel {
		t.Errorf("Hood holds another value than version 6's: a rollback was pushed")
	}
	if au.events["rollback"] != 1 {
		t.Errorf("rollback audit records: got %d, want 1 (failed)", au.events["rollback"])
	}

	// Fenced, the rollback goes through.
	st.fenceErr = nil
	fv.secrets["secret/a"] = map[string]string{"auth_token": "bad2-" + sentinel, "chat_id": "1"}
	o = onePass(t, rotate.New(cfg, rotate.Options{Vault: versioned{fv, 7}, Hood: fh, State: st}), rotate.Request{})
	if !o.RolledBack || st.count("fence") != 9 {
		t.Errorf("with the lease: got rolled_back=%v %q after %d Fences, want rolled back after 9 (before and after each PATCH so far, the rollback's included)", o.RolledBack, o.Error, st.count("fence"))
	}
}

// TestPreflightFailureReleasesTheLease: the lease is taken before any Hood
// request; a refused preflight records the failure under it (Fail), which
// releases it, and nothing is pushed.
func TestPreflightFailureReleasesTheLease(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
	fh.providers["1000"] = "mailgun_email"
	st := newSharedState(t)
	eng := rotate.New(engineConfig(1, func(int) string { return "a" }), rotate.Options{Vault: fv, Hood: fh, State: st})
	o := onePass(t, eng, rotate.Request{})
	if o.Result != rotate.ResultFailed {
		t.Fatalf("got %s, want failed", o.Result)
	}
	if st.count("begin") != 1 || st.count("fail") != 1 || st.count("note") != 0 || st.count("fence") != 0 {
		t.Errorf("state calls: got %v, want one Begin and one Fail, no Note and no Fence", st.calls)
	}
	if n := patches(fh); n != 0 {
		t.Errorf("PATCHes: got %d, want 0", n)
	}
	rec, _, err := st.Store.Get("tg-0")
	if err != nil || len(rec.History) != 1 || !strings.Contains(rec.History[0].Error, "preflight") {
		t.Errorf("history: got %+v (%v), want the preflight failure", rec.History, err)
	}
}

// TestFenceErrorBeforeVerifyIsUnverified: a shared state whose lease cannot
// be extended after the PATCH gives no verdict: no read-back, no
// confirmation, no rollback; the next pass pushes again.
func TestFenceErrorBeforeVerifyIsUnverified(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
	st := newSharedState(t)
	st.fenceOK = 1 // the Fence before the PATCH
	st.fenceErr = fmt.Errorf("%w: fence integration tg-0: lease taken", state.ErrNotHolder)
	eng := rotate.New(engineConfig(1, func(int) string { return "a" }), rotate.Options{Vault: fv, Hood: fh, State: st})
	o := onePass(t, eng, rotate.Request{})
	if o.Result != rotate.ResultFailed || !errors.Is(o.Err, rotate.ErrUnverified) || !errors.Is(o.Err, state.ErrNotHolder) {
		t.Fatalf("got %s %v, want failed with ErrUnverified and ErrNotHolder", o.Result, o.Err)
	}
	if n := st.count("confirm"); n != 0 {
		t.Errorf("Confirm calls: got %d, want 0", n)
	}
	if n := st.count("suspect"); n != 1 {
		t.Errorf("MarkSuspect calls: got %d, want 1 (the PATCH went out after the lease was taken over)", n)
	}
	if n := patches(fh); n != 1 {
		t.Errorf("PATCHes: got %d, want 1", n)
	}
	rec, _, err := st.Store.Get("tg-0")
	if err != nil || rec.Confirmed != nil || rec.Failed != nil {
		t.Errorf("state: got confirmed %v failed %v (%v), want neither: the next pass pushes again", rec.Confirmed, rec.Failed, err)
	}
}

// deadlineState is a shared state whose lease has already run out.
type deadlineState struct {
	*sharedState
	deadline time.Time
}

func (s deadlineState) LeaseDeadline(string) (time.Time, bool) { return s.deadline, true }

// TestPatchBoundedByLease: a PATCH (with its retries) that would run past
// the lease's deadline is not sent, and fails with ErrLeaseDeadline.
func TestPatchBoundedByLease(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
	st := deadlineState{newSharedState(t), time.Now().Add(-time.Second)}
	eng := rotate.New(engineConfig(1, func(int) string { return "a" }), rotate.Options{Vault: fv, Hood: fh, State: st})
	o := onePass(t, eng, rotate.Request{})
	if o.Result != rotate.ResultFailed || !errors.Is(o.Err, rotate.ErrLeaseDeadline) {
		t.Fatalf("got %s %v, want failed with ErrLeaseDeadline", o.Result, o.Err)
	}
	if strings.Contains(o.Error, sentinel) {
		t.Errorf("error holds the secret value")
	}
}

// TestSuspectRecordIsPushedAgain: settings equal to the last confirmed push
// are pushed again, on a schedule, when the record is suspect (a late PATCH
// of a rotator that had lost its lease may have overwritten them in Hood).
func TestSuspectRecordIsPushedAgain(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
	st := newSharedState(t)
	eng := rotate.New(engineConfig(1, func(int) string { return "a" }), rotate.Options{Vault: fv, Hood: fh, State: st})
	if o := onePass(t, eng, rotate.Request{}); o.Result != rotate.ResultPushed {
		t.Fatalf("first pass: got %s %v, want pushed", o.Result, o.Err)
	}
	if o := onePass(t, eng, rotate.Request{}); o.Result != rotate.ResultUnchanged {
		t.Fatalf("second pass: got %s %v, want unchanged", o.Result, o.Err)
	}
	st.suspect = true
	if o := onePass(t, eng, rotate.Request{}); o.Result != rotate.ResultPushed {
		t.Fatalf("suspect record: got %s %v, want pushed again", o.Result, o.Err)
	}
	if n := patches(fh); n != 2 {
		t.Errorf("PATCHes: got %d, want 2", n)
	}
}

// TestFailedPatchAfterTakeoverMarksSuspect: a PATCH that failed on this
// side may still reach Hood: when the lease turns out taken over, the
// record is flagged; a PATCH that never left is not.
func TestFailedPatchAfterTakeoverMarksSuspect(t *testing.T) {
	for _, tt := range []struct {
		name        string
		err         error
		wantFence   int
		wantSuspect int
	}{
		{"timed out on the wire", fmt.Errorf("PATCH integration 1000: send request (attempt 1): %w", context.DeadlineExceeded), 2, 1},
		{"never sent", fmt.Errorf("PATCH integration 1000: wait for rate limit: %w (%w)", context.DeadlineExceeded, hood.ErrNotSent), 1, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fv, fh := newFakes()
			fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
			fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
			fh.fail["1000"] = tt.err
			st := newSharedState(t)
			st.fenceOK = 1 // the Fence before the PATCH
			st.fenceErr = fmt.Errorf("%w: fence integration tg-0: lease taken", state.ErrNotHolder)
			eng := rotate.New(engineConfig(1, func(int) string { return "a" }), rotate.Options{Vault: fv, Hood: fh, State: st})
			if o := onePass(t, eng, rotate.Request{}); o.Result != rotate.ResultFailed {
				t.Fatalf("got %s %v, want failed", o.Result, o.Err)
			}
			if got := st.count("fence"); got != tt.wantFence {
				t.Errorf("Fence calls: got %d, want %d", got, tt.wantFence)
			}
			if got := st.count("suspect"); got != tt.wantSuspect {
				t.Errorf("MarkSuspect calls: got %d, want %d", got, tt.wantSuspect)
			}
		})
	}
}

// TestLeaseLostBeforePatchIsUnchanged: the Fence right before the PATCH
// finds the lease taken over (the rotator was slow between Begin and the
// PATCH): nothing is pushed, and it is not this rotator's failure.
func TestLeaseLostBeforePatchIsUnchanged(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
	st := newSharedState(t)
	st.fenceErr = fmt.Errorf("%w: fence integration tg-0: lease taken", state.ErrNotHolder)
	eng := rotate.New(engineConfig(1, func(int) string { return "a" }), rotate.Options{Vault: fv, Hood: fh, State: st})
	o := onePass(t, eng, rotate.Request{})
	if o.Result != rotate.ResultUnchanged || o.Reason != "another rotator took the lease over before the PATCH: not pushed" {
		t.Fatalf("got %s %q %v, want unchanged, lease taken over before the PATCH", o.Result, o.Reason, o.Err)
	}
	if n := patches(fh); n != 0 {
		t.Errorf("PATCHes: got %d, want 0", n)
	}
	if n := st.count("suspect") + st.count("fail") + st.count("confirm"); n != 0 {
		t.Errorf("state calls: got %v, want no Fail, Confirm or MarkSuspect", st.calls)
	}
}
