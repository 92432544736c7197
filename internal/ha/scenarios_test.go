package ha_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/ha"
	"github.com/ocamba-rotator/rotator/internal/state"
)

// scenarios run on the fake Vault and on a real OpenBao: two (or more)
// stores of distinct identities on one path.
var scenarios = []struct {
	name string
	run  func(t *testing.T, e *env)
}{
	{"only one Begin per revision", func(t *testing.T, e *env) {
		a, b := e.store(t, "web-1"), e.store(t, "web-2")
		ra, rb := get(t, a, "tg"), get(t, b, "tg")
		if ra.Revision != 0 || rb.Revision != 0 || ra.HeldBy != "" {
			t.Fatalf("new record: got revisions %d, %d and HeldBy %q, want 0, 0 and none", ra.Revision, rb.Revision, ra.HeldBy)
		}
		pa, pb := pushedOf(a, 1, e.clock.Now()), pushedOf(b, 1, e.clock.Now())
		if !bytes.Equal(pa.Fingerprint, pb.Fingerprint) {
			t.Fatal("the two stores' fingerprints of the same settings differ: the key is not shared")
		}
		if err := e.seen(a.Begin("tg", id, provider, ra.Revision, pa)); err != nil {
			t.Fatalf("first Begin: %v", err)
		}
		wantNotHolder(t, "second Begin on the same revision", e.seen(b.Begin("tg", id, provider, rb.Revision, pb)))
		d, v := e.doc(t, "tg")
		if d.Holder != a.Identity() || v != 1 || d.Record.Pending == nil || !bytes.Equal(d.Record.Pending.Fingerprint, pa.Fingerprint) {
			t.Errorf("after Begin: got holder %q version %d pending %v, want %s, 1 and the push", d.Holder, v, d.Record.Pending, a.Identity())
		}
		if exp, err := time.Parse(time.RFC3339Nano, d.Expires); err != nil || !exp.Equal(t0.Add(ttl)) || !strings.HasSuffix(d.Expires, "Z") {
			t.Errorf("expires: got %q (%v), want %s in UTC", d.Expires, err, t0.Add(ttl).Format(time.RFC3339Nano))
		}

		rb = get(t, b, "tg")
		if rb.HeldBy != a.Identity() || !rb.HeldUntil.Equal(t0.Add(ttl)) || rb.Revision != 1 {
			t.Errorf("Get of the other store while held: got HeldBy %q until %v revision %d, want %s until %v revision 1",
				rb.HeldBy, rb.HeldUntil, rb.Revision, a.Identity(), t0.Add(ttl))
		}
		wantNotHolder(t, "Begin on a record held elsewhere", e.seen(b.Begin("tg", id, provider, rb.Revision, pb)))
		if v := e.version(t, "tg"); v != 1 {
			t.Errorf("a refused Begin wrote: version %d, want 1", v)
		}

		e.clock.advance(time.Second)
		if err := e.seen(a.Confirm("tg", pa, attempt("pushed", e.clock.Now()))); err != nil {
			t.Fatalf("Confirm: %v", err)
		}
		rb = get(t, b, "tg")
		if rb.HeldBy != "" || rb.Revision != 2 || rb.Pending != nil || rb.Confirmed == nil {
			t.Fatalf("after Confirm: got %+v, want a released, confirmed record at revision 2", rb)
		}
		if want := b.Fingerprint(id, provider, settings(1)); !bytes.Equal(rb.Confirmed.Fingerprint, want) {
			t.Errorf("confirmed fingerprint: got %x, want the other store's %x", rb.Confirmed.Fingerprint, want)
		}
		if d, _ := e.doc(t, "tg"); d.Holder != "" || d.Expires != "" || len(d.Record.History) != 1 {
			t.Errorf("document after Confirm: got holder %q expires %q, %d attempts; want none, none, 1", d.Holder, d.Expires, len(d.Record.History))
		}
	}},

	{"an expired lease is taken over", func(t *testing.T, e *env) {
		a, b := e.store(t, "web-1"), e.store(t, "web-2")
		ra := get(t, a, "tg")
		pa := pushedOf(a, 1, e.clock.Now())
		if err := e.seen(a.Begin("tg", id, provider, ra.Revision, pa)); err != nil {
			t.Fatalf("Begin: %v", err)
		}
		e.clock.advance(ttl - time.Second)
		if rb := get(t, b, "tg"); rb.HeldBy != a.Identity() {
			t.Fatalf("before the expiry: got HeldBy %q, want %s", rb.HeldBy, a.Identity())
		}
		e.clock.advance(time.Second) // expires == now: expired
		rb := get(t, b, "tg")
		if rb.HeldBy != "" || rb.Pending == nil {
			t.Fatalf("after the expiry: got HeldBy %q, pending %v; want no holder and the pending push", rb.HeldBy, rb.Pending)
		}
		pb := pushedOf(b, 1, e.clock.Now())
		if err := e.seen(b.Begin("tg", id, provider, rb.Revision, pb)); err != nil {
			t.Fatalf("takeover Begin: %v", err)
		}
		if d, v := e.doc(t, "tg"); d.Holder != b.Identity() || v != 2 {
			t.Errorf("after the takeover: got holder %q version %d, want %s, 2", d.Holder, v, b.Identity())
		}
		if err := e.seen(b.Confirm("tg", pb, attempt("pushed", e.clock.Now()))); err != nil {
			t.Errorf("Confirm of the new holder: %v", err)
		}
	}},

	{"a holder whose lease was taken cannot Confirm, Fail or Fence", func(t *testing.T, e *env) {
		a, b := e.store(t, "web-1"), e.store(t, "web-2")
		pa := pushedOf(a, 1, e.clock.Now())
		if err := e.seen(a.Begin("tg", id, provider, get(t, a, "tg").Revision, pa)); err != nil {
			t.Fatalf("Begin: %v", err)
		}
		e.clock.advance(ttl + time.Second)
		pb := pushedOf(b, 2, e.clock.Now())
		if err := e.seen(b.Begin("tg", id, provider, get(t, b, "tg").Revision, pb)); err != nil {
			t.Fatalf("takeover Begin: %v", err)
		}
		wantNotHolder(t, "Fence of the old holder", e.seen(a.Fence("tg")))
		wantNotHolder(t, "Confirm of the old holder", e.seen(a.Confirm("tg", pa, attempt("pushed", e.clock.Now()))))
		wantNotHolder(t, "Fail of the old holder", e.seen(a.Fail("tg", state.Failure{Rejected: &pa, Attempt: attempt("failed", e.clock.Now())})))
		d, v := e.doc(t, "tg")
		if v != 2 || d.Holder != b.Identity() || d.Record.Confirmed != nil || !bytes.Equal(d.Record.Pending.Fingerprint, pb.Fingerprint) {
			t.Errorf("the old holder wrote: got version %d holder %q confirmed %v", v, d.Holder, d.Record.Confirmed)
		}
		if err := e.seen(b.Fence("tg")); err != nil {
			t.Errorf("Fence of the new holder: %v", err)
		}
	}},

	{"a read-only store writes nothing, not even the first key", func(t *testing.T, e *env) {
		ro := e.storeWith(t, "plan", func(o *ha.Options) { o.ReadOnly = true })
		r := get(t, ro, "tg")
		if r.Revision != 0 || r.Confirmed != nil {
			t.Fatalf("Get of a missing record: got %+v, want an empty one", r)
		}
		if v := e.version(t, "_meta/hmac-key"); v != 0 {
			t.Errorf("the read-only store wrote the HMAC key (version %d)", v)
		}
		for what, err := range map[string]error{
			"Begin":       ro.Begin("tg", id, provider, r.Revision, pushedOf(ro, 1, e.clock.Now())),
			"Note":        ro.Note("tg", attempt("failed", e.clock.Now())),
			"MarkSuspect": ro.MarkSuspect("tg"),
		} {
			if !errors.Is(e.seen(err), ha.ErrReadOnly) {
				t.Errorf("%s of a read-only store: got %v, want ErrReadOnly", what, err)
			}
		}
		if v := e.version(t, "tg"); v != 0 {
			t.Errorf("the read-only store wrote the record (version %d)", v)
		}
		// With a key and a record written by a rotator, it reads them.
		a := e.store(t, "web-1")
		ra := get(t, a, "tg") // loads (creates) the key first
		pa := pushedOf(a, 1, e.clock.Now())
		if err := e.seen(a.Begin("tg", id, provider, ra.Revision, pa)); err != nil {
			t.Fatalf("Begin: %v", err)
		}
		if err := e.seen(a.Confirm("tg", pa, attempt("pushed", e.clock.Now()))); err != nil {
			t.Fatalf("Confirm: %v", err)
		}
		ro2 := e.storeWith(t, "plan", func(o *ha.Options) { o.ReadOnly = true })
		r2 := get(t, ro2, "tg")
		if r2.Confirmed == nil || !bytes.Equal(r2.Confirmed.Fingerprint, ro2.Fingerprint(id, provider, settings(1))) {
			t.Errorf("read-only store after a push: got confirmed %v, want the push, with equal fingerprints under the shared key", r2.Confirmed)
		}
	}},

	{"Peek reads without loading the key or touching a push", func(t *testing.T, e *env) {
		a, b := e.store(t, "web-1"), e.store(t, "web-2")
		if r, found, err := b.Peek("tg"); err != nil || found || r.Revision != 0 {
			t.Fatalf("Peek of a missing record: got %+v, %v, %v; want none", r, found, err)
		}
		if v := e.version(t, "_meta/hmac-key"); v != 0 {
			t.Errorf("Peek wrote the HMAC key (version %d)", v)
		}
		ra := get(t, a, "tg")
		pa := pushedOf(a, 1, e.clock.Now())
		if _, _, err := a.Peek("tg"); err != nil { // between the Get and the Begin of a push
			t.Fatalf("Peek: %v", err)
		}
		if err := e.seen(a.Begin("tg", id, provider, ra.Revision, pa)); err != nil {
			t.Fatalf("Begin after a Peek: %v", err)
		}
		if r, found, err := b.Peek("tg"); err != nil || !found || r.HeldBy != a.Identity() || r.Revision != 1 {
			t.Errorf("Peek while held: got HeldBy %q revision %d found %v (%v), want %s, 1, found", r.HeldBy, r.Revision, found, err, a.Identity())
		}
		if err := e.seen(a.Confirm("tg", pa, attempt("pushed", e.clock.Now()))); err != nil {
			t.Errorf("Confirm after Peeks: %v", err)
		}
	}},

	{"a late push marks the record suspect; the next push clears it", func(t *testing.T, e *env) {
		a, b := e.store(t, "web-1"), e.store(t, "web-2")
		pa := pushedOf(a, 1, e.clock.Now())
		if err := e.seen(a.Begin("tg", id, provider, get(t, a, "tg").Revision, pa)); err != nil {
			t.Fatalf("Begin: %v", err)
		}
		// a is paused with its PATCH on the wire; b takes over and pushes
		// the newer version 2, which a's late PATCH then overwrites.
		e.clock.advance(ttl + time.Second)
		pb := pushedOf(b, 2, e.clock.Now())
		if err := e.seen(b.Begin("tg", id, provider, get(t, b, "tg").Revision, pb)); err != nil {
			t.Fatalf("takeover Begin: %v", err)
		}
		if err := e.seen(b.Confirm("tg", pb, attempt("pushed", e.clock.Now()))); err != nil {
			t.Fatalf("Confirm of the new holder: %v", err)
		}
		wantNotHolder(t, "Fence of the late holder", e.seen(a.Fence("tg")))
		if err := e.seen(a.MarkSuspect("tg")); err != nil {
			t.Fatalf("MarkSuspect: %v", err)
		}
		d, v := e.doc(t, "tg")
		if !d.Record.Suspect || d.Holder != "" || v != 4 || d.Record.Confirmed == nil || !bytes.Equal(d.Record.Confirmed.Fingerprint, pb.Fingerprint) {
			t.Fatalf("after MarkSuspect: got suspect %v holder %q version %d, want suspect, no holder, version 4, version 2 still confirmed", d.Record.Suspect, d.Holder, v)
		}
		if err := e.seen(a.MarkSuspect("tg")); err != nil || e.version(t, "tg") != 4 {
			t.Errorf("a second MarkSuspect: got %v and version %d, want no error and no write", err, e.version(t, "tg"))
		}
		rb := get(t, b, "tg")
		if !rb.Suspect {
			t.Fatal("Get: the record is not suspect")
		}
		if err := e.seen(b.Begin("tg", id, provider, rb.Revision, pb)); err != nil {
			t.Fatalf("repair Begin: %v", err)
		}
		if err := e.seen(b.Confirm("tg", pb, attempt("pushed", e.clock.Now()))); err != nil {
			t.Fatalf("repair Confirm: %v", err)
		}
		if d, _ := e.doc(t, "tg"); d.Record.Suspect {
			t.Error("after the repair push: the record is still suspect")
		}
	}},

	{"MarkSuspect breaks a live holder's check-and-set", func(t *testing.T, e *env) {
		a, b := e.store(t, "web-1"), e.store(t, "web-2")
		pa := pushedOf(a, 1, e.clock.Now())
		if err := e.seen(a.Begin("tg", id, provider, get(t, a, "tg").Revision, pa)); err != nil {
			t.Fatalf("Begin: %v", err)
		}
		if err := e.seen(a.Confirm("tg", pa, attempt("pushed", e.clock.Now()))); err != nil {
			t.Fatalf("Confirm: %v", err)
		}
		pb := pushedOf(b, 2, e.clock.Now())
		if err := e.seen(b.Begin("tg", id, provider, get(t, b, "tg").Revision, pb)); err != nil {
			t.Fatalf("Begin of b: %v", err)
		}
		if err := e.seen(a.MarkSuspect("tg")); err != nil {
			t.Fatalf("MarkSuspect: %v", err)
		}
		if d, _ := e.doc(t, "tg"); !d.Record.Suspect || d.Holder != b.Identity() {
			t.Fatalf("after MarkSuspect: got suspect %v holder %q, want suspect and b's lease kept", d.Record.Suspect, d.Holder)
		}
		wantNotHolder(t, "Confirm of the holder after MarkSuspect", e.seen(b.Confirm("tg", pb, attempt("pushed", e.clock.Now()))))
	}},

	{"Fence extends the lease; a rollback's Confirm and Fail follow", func(t *testing.T, e *env) {
		a, b := e.store(t, "web-1"), e.store(t, "web-2")
		good, bad := pushedOf(a, 1, e.clock.Now()), pushedOf(a, 2, e.clock.Now())
		if err := e.seen(a.Begin("tg", id, provider, get(t, a, "tg").Revision, bad)); err != nil {
			t.Fatalf("Begin: %v", err)
		}
		e.clock.advance(ttl - 10*time.Second)
		if err := e.seen(a.Fence("tg")); err != nil {
			t.Fatalf("Fence: %v", err)
		}
		fenced := e.clock.Now().Add(ttl)
		e.clock.advance(20 * time.Second) // past the first expiry
		rb := get(t, b, "tg")
		if rb.HeldBy != a.Identity() || !rb.HeldUntil.Equal(fenced) {
			t.Fatalf("after Fence: got HeldBy %q until %v, want %s until %v", rb.HeldBy, rb.HeldUntil, a.Identity(), fenced)
		}
		wantNotHolder(t, "Begin while fenced", e.seen(b.Begin("tg", id, provider, rb.Revision, good)))
		if err := e.seen(a.Confirm("tg", good, attempt("rolled back", e.clock.Now()))); err != nil {
			t.Fatalf("rollback Confirm: %v", err)
		}
		if err := e.seen(a.Fail("tg", state.Failure{Rejected: &bad, Attempt: attempt("failed", e.clock.Now())})); err != nil {
			t.Fatalf("Fail after the rollback: %v", err)
		}
		d, v := e.doc(t, "tg")
		r := d.Record
		if v != 4 || d.Holder != "" || r.Pending != nil || r.Confirmed == nil || r.Failed == nil ||
			!bytes.Equal(r.Confirmed.Fingerprint, good.Fingerprint) || !bytes.Equal(r.Failed.Fingerprint, bad.Fingerprint) || len(r.History) != 2 {
			t.Errorf("after the rollback: got version %d holder %q record %+v, want 4, none, good confirmed, bad failed, 2 attempts", v, d.Holder, r)
		}
		// The outcome window closes with the next read.
		get(t, a, "tg")
		wantNotHolder(t, "Fail after a new Get", e.seen(a.Fail("tg", state.Failure{Rejected: &bad, Attempt: attempt("failed", e.clock.Now())})))
		wantNotHolder(t, "Fence after the release", e.seen(a.Fence("tg")))
	}},

	{"Note while held elsewhere writes nothing", func(t *testing.T, e *env) {
		a, b := e.store(t, "web-1"), e.store(t, "web-2")
		pa := pushedOf(a, 1, e.clock.Now())
		if err := e.seen(a.Begin("tg", id, provider, get(t, a, "tg").Revision, pa)); err != nil {
			t.Fatalf("Begin: %v", err)
		}
		if err := e.seen(b.Note("tg", attempt("failed", e.clock.Now()))); err != nil {
			t.Fatalf("Note while held elsewhere: got %v, want nil", err)
		}
		if v := e.version(t, "tg"); v != 1 {
			t.Errorf("Note while held elsewhere wrote: version %d, want 1", v)
		}
		if err := e.seen(a.Confirm("tg", pa, attempt("pushed", e.clock.Now()))); err != nil {
			t.Fatalf("Confirm: %v", err)
		}
		if err := e.seen(b.Note("tg", attempt("failed", e.clock.Now()))); err != nil {
			t.Fatalf("Note: %v", err)
		}
		d, v := e.doc(t, "tg")
		if v != 3 || len(d.Record.History) != 2 || d.Record.History[1].Result != "failed" || d.Record.Confirmed == nil || d.Holder != "" {
			t.Errorf("after Note: got version %d, %d attempts, confirmed %v, holder %q; want 3, 2, kept, none", v, len(d.Record.History), d.Record.Confirmed, d.Holder)
		}
		// A note of a new integration creates its record.
		if err := e.seen(b.Note("other", attempt("failed", e.clock.Now()))); err != nil {
			t.Fatalf("Note of a new integration: %v", err)
		}
		if d, v := e.doc(t, "other"); v != 1 || d.Record.Name != "other" || len(d.Record.History) != 1 {
			t.Errorf("new record by Note: got version %d %+v", v, d.Record)
		}
	}},

	{"a Note that loses a race is dropped", func(t *testing.T, e *env) {
		a := e.store(t, "web-1")
		if err := e.seen(a.Note("tg", attempt("failed", e.clock.Now()))); err != nil {
			t.Fatalf("Note: %v", err)
		}
		var once sync.Once
		hooked := hookVault{Vault: e.vault, before: func(op, path string) {
			if op == "write" && strings.HasSuffix(path, "/tg") {
				once.Do(func() {
					e.put(t, "tg", map[string]any{"holder": "", "expires": "", "record": map[string]any{"name": "tg"}})
				})
			}
		}}
		b := e.store(t, "web-2", hooked)
		wantNotHolder(t, "Note after another write", e.seen(b.Note("tg", attempt("failed", e.clock.Now()))))
		if v := e.version(t, "tg"); v != 2 {
			t.Errorf("version: got %d, want 2 (the other write only)", v)
		}
	}},

	{"Begin needs the revision the store read", func(t *testing.T, e *env) {
		a := e.store(t, "web-1")
		p := pushedOf(a, 1, e.clock.Now())
		wantNotHolder(t, "Begin without Get", e.seen(a.Begin("tg", id, provider, 0, p)))
		r := get(t, a, "tg")
		wantNotHolder(t, "Begin at another revision", e.seen(a.Begin("tg", id, provider, r.Revision+1, p)))
		r = get(t, a, "tg")
		if err := e.seen(a.Begin("tg", id, provider, r.Revision, p)); err != nil {
			t.Fatalf("Begin: %v", err)
		}
		wantNotHolder(t, "a second Begin on the same read", e.seen(a.Begin("tg", id, provider, r.Revision, p)))
		if v := e.version(t, "tg"); v != 1 {
			t.Errorf("version: got %d, want 1", v)
		}
		// Held by this very store: a second push does not start.
		if r := get(t, a, "tg"); r.HeldBy != a.Identity() {
			t.Errorf("Get during its own push: got HeldBy %q, want %s", r.HeldBy, a.Identity())
		}
	}},

	{"a deleted record is written again on its version", func(t *testing.T, e *env) {
		a := e.store(t, "web-1")
		if err := e.seen(a.Note("tg", attempt("failed", e.clock.Now()))); err != nil {
			t.Fatalf("Note: %v", err)
		}
		e.deleteCurrent(t, e.path+"/tg")
		r, found, err := a.Get("tg")
		if err != nil || found || r.Revision != 1 || r.Name != "tg" {
			t.Fatalf("Get of a deleted record: got %+v found=%v err=%v, want none at revision 1", r, found, err)
		}
		p := pushedOf(a, 1, e.clock.Now())
		if err := e.seen(a.Begin("tg", id, provider, r.Revision, p)); err != nil {
			t.Fatalf("Begin: %v", err)
		}
		if err := e.seen(a.Confirm("tg", p, attempt("pushed", e.clock.Now()))); err != nil {
			t.Fatalf("Confirm: %v", err)
		}
		if _, v := e.doc(t, "tg"); v != 3 {
			t.Errorf("version: got %d, want 3", v)
		}
	}},

	{"a corrupt record is an error naming its path", func(t *testing.T, e *env) {
		a := e.store(t, "web-1")
		get(t, a, "tg") // loads the key
		for _, bad := range []map[string]any{
			{"holder": "web-9#00000000", "expires": "tomorrow " + corrupt, "record": map[string]any{}},
			{"holder": "", "expires": "", "record": corrupt},
			{"holder": 7, "record": map[string]any{"confirmed": map[string]any{"fingerprint": corrupt}}},
		} {
			e.put(t, "tg", bad)
			_, _, err := a.Get("tg")
			if err == nil || !strings.Contains(err.Error(), e.mount+"/"+e.path+"/tg") || !strings.Contains(err.Error(), `"tg"`) {
				t.Errorf("Get of a corrupt record: got %v, want an error naming integration tg and its path", err)
			}
			nerr := a.Note("tg", attempt("failed", e.clock.Now()))
			if nerr == nil {
				t.Error("Note over a corrupt record: got no error")
			}
			for _, err := range []error{err, nerr} {
				if err != nil && strings.Contains(err.Error(), corrupt) {
					t.Errorf("the error quotes the corrupt value: %v", err)
				}
			}
		}
	}},

	{"a corrupt HMAC key is an error naming its path", func(t *testing.T, e *env) {
		for i, key := range []string{"not base64 " + corrupt, base64.StdEncoding.EncodeToString([]byte(corrupt)), "", "AAAA"} {
			e.put(t, "_meta/hmac-key", map[string]any{"key": key})
			_, _, err := e.store(t, "web-1").Get("tg")
			if err == nil || !strings.Contains(err.Error(), e.mount+"/"+e.path+"/_meta/hmac-key") {
				t.Errorf("key #%d: got %v, want an error naming the key's path", i, err)
			}
			if err != nil && (strings.Contains(err.Error(), corrupt) || strings.Contains(err.Error(), key) && key != "") {
				t.Errorf("key #%d: the error quotes the key: %v", i, err)
			}
			if strings.Contains(e.logs.String(), corrupt) {
				t.Errorf("key #%d: the log quotes the key", i)
			}
		}
	}},

	{"the key is created once when stores race for it", func(t *testing.T, e *env) {
		const n = 4
		bar := newBarrier(n)
		hooked := hookVault{Vault: e.vault, before: func(op, path string) {
			if op == "write" && strings.HasSuffix(path, "/_meta/hmac-key") {
				bar.wait() // every store has read "no key" before any writes
			}
		}}
		stores := make([]*ha.Store, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range stores {
			stores[i] = e.store(t, "web", hooked)
			wg.Go(func() { _, _, errs[i] = stores[i].Get("tg") })
		}
		wg.Wait()
		for i, err := range errs {
			if e.seen(err) != nil {
				t.Fatalf("store %d: Get: %v", i, err)
			}
		}
		want := stores[0].Fingerprint(id, provider, settings(0))
		for i, s := range stores[1:] {
			if got := s.Fingerprint(id, provider, settings(0)); !bytes.Equal(got, want) {
				t.Errorf("store %d: fingerprint differs from store 0's: the key is not shared", i+1)
			}
		}
		if v := e.anyVersion(t, "_meta/hmac-key"); v != 1 {
			t.Errorf("key versions: got %d, want 1", v)
		}
		if stores[0].Identity() == stores[1].Identity() {
			t.Errorf("two stores of one label have the same identity %s", stores[0].Identity())
		}
	}},
}

func runScenarios(t *testing.T, newEnv func(t *testing.T) *env) {
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			e := newEnv(t)
			sc.run(t, e)
			e.checkNoLeak(t)
		})
	}
}

// raceBegin runs stores × goroutines × names Get/Begin/Confirm rounds and
// checks that every revision of every record had exactly one winner.
func raceBegin(t *testing.T, e *env, stores, goroutines, names, rounds int) {
	type win struct {
		name     string
		revision int
	}
	var mu sync.Mutex
	wins := map[win]int{}
	var wg sync.WaitGroup
	for si := range stores {
		s := e.store(t, "web")
		for g := range goroutines {
			wg.Go(func() {
				for round := range rounds {
					for k := range names {
						name := "tg-" + string(rune('a'+(k+g)%names))
						r, _, err := s.Get(name)
						if e.seen(err) != nil {
							t.Errorf("Get: %v", err)
							return
						}
						if r.HeldBy != "" {
							continue
						}
						p := pushedOf(s, si*1000+g*10+round, e.clock.Now())
						err = e.seen(s.Begin(name, id, provider, r.Revision, p))
						if err != nil {
							wantNotHolder(t, "losing Begin", err)
							continue
						}
						mu.Lock()
						wins[win{name, r.Revision}]++
						mu.Unlock()
						if err := e.seen(s.Confirm(name, p, attempt("pushed", e.clock.Now()))); err != nil {
							t.Errorf("Confirm of a winner: %v", err)
						}
					}
				}
			})
		}
	}
	wg.Wait()
	total := 0
	for _, c := range wins {
		total += c
	}
	t.Logf("%d winning Begins over %d integrations", total, names)
	for k := range names {
		name := "tg-" + string(rune('a'+k))
		d, v := e.doc(t, name)
		// Each winner wrote two versions (Begin, Confirm) on the one it
		// read: revisions 0, 2, 4... each won exactly once.
		n := v / 2
		for rev := 0; rev < v; rev += 2 {
			if got := wins[win{name, rev}]; got != 1 {
				t.Errorf("%s revision %d: %d winners, want 1", name, rev, got)
			}
		}
		for w, c := range wins {
			if w.name == name && (w.revision%2 != 0 || w.revision >= v) {
				t.Errorf("%s: %d winners at revision %d, which is not a released version before %d", name, c, w.revision, v)
			}
		}
		if v%2 != 0 || n == 0 || d.Holder != "" || len(d.Record.History) != min(n, state.MaxHistory) {
			t.Errorf("%s: got version %d, holder %q, %d attempts; want an even version > 0, no holder, %d attempts", name, v, d.Holder, len(d.Record.History), min(n, state.MaxHistory))
		}
	}
}
