package rotation_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/rotation"
)

// A whole rotation of each mintable provider, twice, against real OpenBao,
// the Hood test server and the provider's test server, checked every 2ms:
// every consumer always holds a credential the provider accepts; the old
// credential is revoked only after every consumer is confirmed on the new
// one; no key is left behind; no credential shows anywhere.
func TestRotationCompletes(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.provider, func(t *testing.T) {
			w := newWorld(t, k, 3, "")
			stop := w.watch()

			first := w.finish(true)
			cred1, v1 := w.current()
			if first.Step != rotation.StepDone {
				t.Fatalf("first run: got step %q (error %q), want done", first.Step, first.Error)
			}
			if cred1 == w.hand.Reveal() || !w.accepts(cred1) {
				t.Fatalf("first run: the secret's credential is the old one or refused")
			}
			for id, v := range w.held() {
				if v != cred1 {
					t.Errorf("first run: consumer %s does not hold the new credential", id)
				}
			}
			switch k.provider {
			case "twilio_sms":
				if w.accepts(w.hand.Reveal()) {
					t.Error("first run: the old primary still authenticates after Promote")
				}
			default:
				// rotator did not mint the hand-made key: it is left, and said so.
				if !w.accepts(w.hand.Reveal()) {
					t.Error("first run: the hand-made key (id unknown to rotator) was revoked")
				}
				if !slices.ContainsFunc(first.Notes, func(n string) bool { return strings.Contains(n, "delete it at the provider by hand") }) {
					t.Errorf("first run: notes %q do not say the old key is left", first.Notes)
				}
			}

			second := w.finish(true)
			cred2, v2 := w.current()
			if second.Step != rotation.StepDone || v2 <= v1 {
				t.Fatalf("second run: got step %q at version %d (error %q), want done past %d", second.Step, v2, second.Error, v1)
			}
			if !w.accepts(cred2) || cred2 == cred1 {
				t.Error("second run: the secret's credential is refused or the first run's")
			}
			if w.accepts(cred1) {
				t.Error("second run: the key the first run minted still works: it was not revoked")
			}
			if o := w.orphans(second.KeyID); len(o) > 0 {
				t.Errorf("keys left at the provider: %v", o)
			}
			if v := stop(); len(v) > 0 {
				t.Errorf("a consumer held a refused credential %d times, first: %s", len(v), v[0])
			}
			rec := w.record()
			if rec.HeldBy != "" || rec.Step != rotation.StepDone || rec.Current.Version != v2 {
				t.Errorf("record: got holder %q step %q current version %d, want none, done, %d", rec.HeldBy, rec.Step, rec.Current.Version, v2)
			}
			a, _ := json.Marshal(first)
			b, _ := json.Marshal(second)
			w.noLeak(string(a), string(b))
		})
	}
}

// A dry run reports the steps and writes nothing: no record, no new
// version, no key, no Hood request.
func TestDryRun(t *testing.T) {
	w := newWorld(t, kinds[0], 2, "")
	keys, patches := len(w.sg.Keys()), w.hood.Count("PATCH")
	_, v := w.current()
	rt, r := w.build(nil)
	defer rt.Close()
	res, err := r.Run(t.Context(), "rot", rotation.Request{DryRun: true, Begin: true})
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if !res.DryRun || len(res.Plan) != 7 || !strings.Contains(res.Plan[4], "2 consumers (c0, c1)") {
		t.Errorf("dry run: got plan %q, want 7 steps naming the 2 consumers", res.Plan)
	}
	if _, v2 := w.current(); v2 != v {
		t.Errorf("the secret moved from version %d to %d", v, v2)
	}
	if n := len(w.sg.Keys()); n != keys {
		t.Errorf("SendGrid holds %d keys, want %d", n, keys)
	}
	if n := w.hood.Count("PATCH"); n != patches {
		t.Errorf("Hood got %d PATCHes, want %d", n, patches)
	}
	if s, _ := vaultSrv.Client().Logical().Read("secret/data/" + w.prefix + "/records/rot"); s != nil {
		t.Error("the dry run wrote a record")
	}
}

// A rotator that dies right after the provider minted the key, before the
// record says which key: once its lease has run out, the next run undoes
// (the step in the record is minting) and deletes the key by the run's
// name. The secret, the consumers and the old credential are untouched.
func TestRotationCrashWhileMintingIsUndone(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.provider, func(t *testing.T) {
			w := newWorld(t, k, 2, "")
			_, before := w.current()
			_, err := w.run(true, func(point string) error {
				if point == "minted" {
					return errors.New("killed")
				}
				return nil
			})
			if err == nil || !strings.Contains(err.Error(), "crash injected") {
				t.Fatalf("run: got %v, want the injected crash", err)
			}
			if rec := w.record(); rec.Step != rotation.StepMinting || rec.HeldBy == "" {
				t.Fatalf("record after the crash: got step %q holder %q, want minting, held", rec.Step, rec.HeldBy)
			}
			if o := w.orphans(""); len(o) == 0 {
				t.Fatal("the crash left no key at the provider: the test would prove nothing")
			}
			if _, err := w.run(false, nil); !errors.Is(err, rotation.ErrBusy) {
				t.Fatalf("run while the lease is live: got %v, want ErrBusy", err)
			}
			w.expireLease()
			res := w.finish(false)
			if res.Step != rotation.StepUndone {
				t.Fatalf("run after the lease ran out: got step %q (error %q), want undone", res.Step, res.Error)
			}
			cred, after := w.current()
			if after != before || cred != w.hand.Reveal() || !w.accepts(cred) {
				t.Errorf("secret: got version %d (want %d) holding the hand-made credential %v, accepted %v", after, before, cred == w.hand.Reveal(), w.accepts(cred))
			}
			if o := w.orphans(""); len(o) > 0 {
				t.Errorf("keys left at the provider: %v", o)
			}
			w.noLeak()
		})
	}
}
