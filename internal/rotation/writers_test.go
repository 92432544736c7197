package rotation_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
	"github.com/ocamba-rotator/rotator/internal/provider"
	"github.com/ocamba-rotator/rotator/internal/rotation"
)

// putData writes a new version of the rotated secret: its current data
// with changes.
func (w *world) putData(changes map[string]any) int {
	w.t.Helper()
	s, err := vaultSrv.Client().KVv2("secret").Get(context.Background(), w.prefix+"/cred")
	if err != nil {
		w.t.Fatal(err)
	}
	for k, v := range changes {
		s.Data[k] = v
	}
	return w.put("cred", s.Data)
}

// Another writer changes an unrelated key of the secret during grace (a
// new version, the same credential): the run still confirms the consumers
// and revokes the old credential (Twilio: promotes), and remembers the
// credential by its hash, so the next run knows the key it revokes.
func TestUnrelatedWriteDuringGrace(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.provider, func(t *testing.T) {
			w := newWorld(t, k, 2, "")
			stop := w.watch()
			w.finish(true)
			cred1, _ := w.current()
			res, err := w.run(true, nil)
			if err != nil || res.Step != rotation.StepVerified {
				t.Fatalf("second run: got %s (%v), want verified", res.Step, err)
			}
			cred2, _ := w.current()
			v := w.putData(map[string]any{"note": "changed by hand"})
			res = w.finish(false)
			if res.Step != rotation.StepDone || res.Error != "" {
				t.Fatalf("got %s (error %q), want done", res.Step, res.Error)
			}
			if w.accepts(cred1) {
				t.Error("the first run's credential still works: the second run did not revoke it")
			}
			if rec := w.record(); rec.Current.Version != v {
				t.Errorf("record: current version %d, want %d", rec.Current.Version, v)
			}
			for id, held := range w.held() {
				if held != cred2 {
					t.Errorf("consumer %s is not on the second run's credential", id)
				}
			}
			if vs := stop(); len(vs) > 0 {
				t.Errorf("a consumer held a refused credential: %s", vs[0])
			}
		})
	}
}

// A key named with the rotation's prefix that the secret holds, with no
// record of the run that minted it (the record lost, or moved by a change
// of rotation_records): it is not taken for an orphan, the consumers keep
// a working key throughout, and it is left for a person to delete.
func TestNoOrphanSweepWithoutHistory(t *testing.T) {
	for _, k := range kinds[:2] {
		t.Run(k.provider, func(t *testing.T) {
			w := newWorld(t, k, 2, "")
			// A first run, then its record lost.
			w.finish(true)
			cred, _ := w.current()
			if _, err := vaultSrv.Client().Logical().Delete("secret/metadata/" + w.prefix + "/records/rot"); err != nil {
				t.Fatal(err)
			}
			stop := w.watch()
			res, err := w.run(true, nil)
			if err != nil || res.Step != rotation.StepVerified {
				t.Fatalf("got %s (%v), want verified", res.Step, err)
			}
			if !strings.Contains(strings.Join(res.Notes, "\n"), "orphan keys not looked for") {
				t.Errorf("notes %q do not say orphans were not looked for", res.Notes)
			}
			if res = w.finish(false); res.Step != rotation.StepDone {
				t.Fatalf("got %s (%s), want done", res.Step, res.Error)
			}
			if !w.accepts(cred) {
				t.Error("the key the consumers held was deleted as an orphan")
			}
			if vs := stop(); len(vs) > 0 {
				t.Errorf("a consumer held a refused credential: %s", vs[0])
			}
		})
	}
}

// An undo puts back only the credential: a key another writer changed in
// the secret after the run stored its version stays as written.
func TestUndoKeepsOtherWrites(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.provider, func(t *testing.T) {
			w := newWorld(t, k, 2, "")
			w.hood.Inject(hoodtest.Fault{Method: "PATCH", ID: w.consumers[1], Status: 422, Times: 1})
			res, err := w.run(true, func(point string) error {
				if point == "stored" {
					w.putData(map[string]any{"note": "changed by hand"})
				}
				return nil
			})
			if err != nil || res.Step != rotation.StepUndone {
				t.Fatalf("got %s (%v), want undone", res.Step, err)
			}
			s, err := vaultSrv.Client().KVv2("secret").Get(context.Background(), w.prefix+"/cred")
			if err != nil {
				t.Fatal(err)
			}
			if s.Data["note"] != "changed by hand" || s.Data[k.setting] != w.hand.Reveal() {
				t.Errorf("after the undo: note %v (want kept), credential restored %v", s.Data["note"], s.Data[k.setting] == w.hand.Reveal())
			}
		})
	}
}

// A Twilio account that already has a secondary token rotator did not make
// (another system's): the mint is refused, and the undo leaves that token
// alone.
func TestTwilioForeignSecondaryLeftAlone(t *testing.T) {
	w := newWorld(t, kinds[2], 2, "")
	tw := provider.NewTwilio(provider.TwilioOptions{APIURL: w.tw.URL(), AccountsURL: w.tw.URL(), Timeout: 5 * time.Second})
	foreign, err := tw.CreateSecondary(context.Background(), twilioSID, w.hand)
	if err != nil {
		t.Fatal(err)
	}
	res, err := w.run(true, nil)
	if err != nil || res.Step != rotation.StepUndone {
		t.Fatalf("got %s (%v), want undone", res.Step, err)
	}
	if !strings.Contains(res.Error, "already exists") {
		t.Errorf("error %q does not give Twilio's reason", res.Error)
	}
	if !w.tw.IsSecondary(twilioSID, foreign) {
		t.Error("the other system's secondary token was deleted")
	}
}

// A rotation another rotator holds answers a BusyError naming until when.
func TestBusyUntil(t *testing.T) {
	w := newWorld(t, kinds[0], 1, "")
	crash, _ := crashAt("stored")
	if _, err := w.run(true, crash); err == nil {
		t.Fatal("the crashed run reported no error")
	}
	_, err := w.run(true, nil)
	var be *rotation.BusyError
	if !errors.As(err, &be) || be.Until.Before(time.Now()) || !errors.Is(err, rotation.ErrBusy) {
		t.Fatalf("got %v, want a BusyError until a time to come", err)
	}
	if be.Holder == "" {
		t.Error("the BusyError names no holder")
	}
}
