package rotation_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
	"github.com/ocamba-rotator/rotator/internal/rotation"
)

// crashAt returns a Crash hook that stops the run the first time it
// reaches point, and a func reporting whether it did.
func crashAt(point string) (func(string) error, func() bool) {
	hit := false
	return func(p string) error {
			if p == point && !hit {
				hit = true
				return errors.New("killed")
			}
			return nil
		}, func() bool {
			return hit
		}
}

// After a crash at every step boundary and after every provider call,
// Vault write and pass, a restarted rotator (a new runtime, once the
// crashed holder's lease has run out) ends the rotation completed or fully
// undone: no key left at the provider, every consumer on a credential the
// provider accepts (checked every 2ms throughout), the old credential
// revoked only when the run completed.
func TestCrashAtEveryStep(t *testing.T) {
	forward := []struct {
		point string
		want  rotation.Step
	}{
		{"minting", rotation.StepUndone},
		{"minted", rotation.StepUndone},
		{"storing", rotation.StepUndone},
		{"stored in vault", rotation.StepDone},
		{"stored", rotation.StepDone},
		{"pushed", rotation.StepDone},
		{"verified", rotation.StepDone},
		{"revoking", rotation.StepDone},
		{"revoked", rotation.StepDone},
		{"done", rotation.StepDone},
	}
	for _, k := range kinds {
		for _, tc := range forward {
			t.Run(k.provider+"/"+strings.ReplaceAll(tc.point, " ", "_"), func(t *testing.T) {
				w := newWorld(t, k, 3, "")
				stop := w.watch()
				crash, hit := crashAt(tc.point)
				_, err := w.until(true, crash)
				if !hit() {
					t.Fatalf("the run never reached %s (error %v)", tc.point, err)
				}
				if err == nil || !strings.Contains(err.Error(), "crash injected") {
					t.Fatalf("crashed run: got error %v, want the injected crash", err)
				}
				w.expireLease()
				res := w.finish(false)
				w.settled(t, res, tc.want, stop)
			})
		}
	}
}

// A push that fails on one consumer undoes the run: the old credential back
// in Vault and on every consumer, then the new key deleted. A crash at each
// point of the undo, then a restart, ends in the same undone state.
func TestCrashWhileUndoing(t *testing.T) {
	for _, k := range kinds {
		for _, point := range []string{"", "undoing", "restored", "discarded", "undone"} {
			t.Run(k.provider+"/"+point, func(t *testing.T) {
				w := newWorld(t, k, 3, "")
				stop := w.watch()
				// Hood refuses the second consumer's PATCH until cleared.
				w.hood.Inject(hoodtest.Fault{Method: "PATCH", ID: w.consumers[1], Status: 422, Times: 1})
				crash, hit := crashAt(point)
				res, err := w.run(true, crash)
				if point != "" {
					if !hit() {
						t.Fatalf("the run never reached %s (error %v, step %s)", point, err, res.Step)
					}
					w.expireLease()
					res = w.finish(false)
				} else if err != nil {
					t.Fatalf("run: %v", err)
				}
				w.settled(t, res, rotation.StepUndone, stop)
				if !strings.Contains(res.Error, "undone: ") && !strings.Contains(w.record().LastError, "undone: ") {
					t.Errorf("last error %q does not say the run was undone", w.record().LastError)
				}
				// The next run completes.
				if again := w.finish(true); again.Step != rotation.StepDone {
					t.Errorf("next run: got %s (%s), want done", again.Step, again.Error)
				}
			})
		}
	}
}

// settled checks the end state of a rotation that came to rest.
func (w *world) settled(t *testing.T, res rotation.Result, want rotation.Step, stop func() []string) {
	t.Helper()
	if res.Step != want {
		t.Fatalf("after the restart: got step %q (error %q), want %s", res.Step, res.Error, want)
	}
	if v := stop(); len(v) > 0 {
		t.Errorf("a consumer held a refused credential %d times, first: %s", len(v), v[0])
	}
	rec := w.record()
	if o := w.orphans(rec.Current.KeyID); len(o) > 0 {
		t.Errorf("keys left at the provider: %v", o)
	}
	cur, version := w.current()
	if !w.accepts(cur) {
		t.Errorf("the secret's current credential (version %d) is refused", version)
	}
	for id, v := range w.held() {
		if v != cur {
			t.Errorf("consumer %s does not hold the secret's current credential (version %d)", id, version)
		}
	}
	oldWorks := w.accepts(w.hand.Reveal())
	switch {
	case want == rotation.StepUndone && cur != w.hand.Reveal():
		t.Errorf("undone: the secret does not hold the old credential again")
	case want == rotation.StepUndone && !oldWorks:
		t.Errorf("undone: the old credential was revoked")
	case want == rotation.StepDone && cur == w.hand.Reveal():
		t.Errorf("done: the secret still holds the old credential")
	case want == rotation.StepDone && w.k.provider == "twilio_sms" && oldWorks:
		t.Errorf("done: the old primary still authenticates")
	}
	w.noLeak(fmt.Sprint(res))
}
