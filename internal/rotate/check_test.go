package rotate_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/provider"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/secret"
)

// fakeChecker refuses an auth_token starting with "refused", cannot check
// one starting with "down", accepts the others, and counts its calls by
// token.
type fakeChecker struct {
	mu    sync.Mutex
	calls map[string]int
}

func (f *fakeChecker) Check(_ context.Context, _, prov string, settings map[string]secret.Value) error {
	tok := settings["auth_token"].Reveal()
	f.mu.Lock()
	f.calls[tok]++
	f.mu.Unlock()
	switch {
	case strings.HasPrefix(tok, "refused"):
		// A careless checker quoting the token: the engine scrubs it.
		return &provider.RefusedError{Provider: prov, Status: 401, Reason: "Unauthorized: " + tok}
	case strings.HasPrefix(tok, "down"):
		return errors.New("telegram: getMe: provider unavailable (HTTP 503)")
	}
	return nil
}

func (f *fakeChecker) total() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		n += c
	}
	return n
}

func TestPassProviderCheck(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	tokens := []string{"refused-" + sentinel, "down-" + sentinel, "plain-" + sentinel, "good-" + sentinel}
	for i, tok := range tokens {
		fv.secrets["secret/"+string(rune('a'+i))] = map[string]string{"auth_token": tok, "chat_id": "1"}
	}
	cfg := engineConfig(len(tokens), func(i int) string { return string(rune('a' + i)) })
	for i := range cfg.Integrations {
		cfg.Integrations[i].ProviderCheck = i != 2 // tg-2 does not opt in
	}
	fc := &fakeChecker{calls: map[string]int{}}
	st := newState(t)
	eng := rotate.New(cfg, rotate.Options{Vault: fv, Hood: fh, State: st, Checker: fc})

	// A dry run asks no provider.
	rep, err := eng.Pass(context.Background(), rotate.Request{Trigger: rotate.TriggerCLI, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range rep.Outcomes {
		if o.Result != rotate.ResultWouldPush {
			t.Errorf("dry run: %s: got %s (%s), want would push", o.Name, o.Result, o.Error)
		}
	}
	if n := fc.total(); n != 0 {
		t.Fatalf("dry run: got %d provider checks, want none", n)
	}

	rep, err = eng.Pass(context.Background(), rotate.Request{Trigger: rotate.TriggerCLI})
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		result rotate.Result
		error  string
		is     error
	}{
		{rotate.ResultFailed, "refused by telegram: Unauthorized: [redacted] (HTTP 401): not pushed", rotate.ErrProviderRefused},
		{rotate.ResultFailed, "could not check with the provider telegram: telegram: getMe: provider unavailable (HTTP 503): not pushed", rotate.ErrProviderUnchecked},
		{rotate.ResultPushed, "", nil},
		{rotate.ResultPushed, "", nil},
	}
	for i, o := range rep.Outcomes {
		w := want[i]
		if o.Result != w.result || o.Error != w.error {
			t.Errorf("%s: got %s %q, want %s %q", o.Name, o.Result, o.Error, w.result, w.error)
		}
		if w.is != nil && !errors.Is(o.Err, w.is) {
			t.Errorf("%s: got %v, want an error wrapping %v", o.Name, o.Err, w.is)
		}
		if strings.Contains(o.Error, sentinel) {
			t.Errorf("%s: the outcome holds the secret", o.Name)
		}
		_, pushed := fh.pushes[o.ID]
		if pushed != (w.result == rotate.ResultPushed) {
			t.Errorf("%s: pushed to Hood: got %v, want %v", o.Name, pushed, !pushed)
		}
		// Failures are noted in the history like every failure before a push.
		rec, _, err := st.Get(o.Name)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(rec.History); w.result == rotate.ResultFailed && (n == 0 || rec.History[n-1].Error != w.error) {
			t.Errorf("%s: history %+v, want the failure last", o.Name, rec.History)
		}
	}
	for i, tok := range tokens {
		if want := map[bool]int{true: 1, false: 0}[i != 2]; fc.calls[tok] != want {
			t.Errorf("tg-%d: got %d provider checks, want %d", i, fc.calls[tok], want)
		}
	}
	if fh.gets != 4 {
		t.Errorf("got %d Hood reads, want 4 (preflight and read-back of the two pushed integrations only)", fh.gets)
	}
}

// An engine built without a checker never pushes an integration that opted
// in to provider_check: it fails closed.
func TestPassProviderCheckNilChecker(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	fv.secrets["secret/a"] = map[string]string{"auth_token": "refused-" + sentinel, "chat_id": "1"}
	cfg := engineConfig(1, func(int) string { return "a" })
	cfg.Integrations[0].ProviderCheck = true
	rep, err := rotate.New(cfg, rotate.Options{Vault: fv, Hood: fh, State: newState(t)}).Pass(context.Background(), rotate.Request{Trigger: rotate.TriggerCLI})
	if err != nil {
		t.Fatal(err)
	}
	// Fail closed: an integration that opted in is never pushed unchecked.
	if o := rep.Outcomes[0]; o.Result != rotate.ResultFailed || !strings.Contains(o.Error, "no provider checker configured") || patches(fh) != 0 {
		t.Errorf("got %s (%s) with %d PATCHes, want failed, not pushed", o.Result, o.Error, patches(fh))
	}
}

// checkerFunc adapts a function to rotate.ProviderChecker.
type checkerFunc func(settings map[string]secret.Value) error

func (f checkerFunc) Check(_ context.Context, _, _ string, settings map[string]secret.Value) error {
	return f(settings)
}

// TestRollbackAsksTheProvider: a rollback is a push too: with
// provider_check, the last good version is not pushed back when the
// provider no longer accepts it (revoked after the rotation).
func TestRollbackAsksTheProvider(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	cfg := engineConfig(1, func(int) string { return "a" })
	cfg.Integrations[0].OnVerifyFailure = "rollback"
	cfg.Integrations[0].ProviderCheck = true
	st := newState(t)
	var revoked sync.Map
	checker := checkerFunc(func(s map[string]secret.Value) error {
		if _, ok := revoked.Load(s["auth_token"].Reveal()); ok {
			return &provider.RefusedError{Provider: "telegram", Status: 401, Reason: "Unauthorized"}
		}
		return nil
	})
	good := map[string]string{"auth_token": "good-" + sentinel, "chat_id": "1"}
	fv.secrets["secret/a"] = good
	fv.versions["secret/a@5"] = good
	eng := rotate.New(cfg, rotate.Options{Vault: versioned{fv, 5}, Hood: fh, State: st, Checker: checker})
	if o := onePass(t, eng, rotate.Request{}); o.Result != rotate.ResultPushed {
		t.Fatalf("version 5: got %s %v, want pushed", o.Result, o.Err)
	}
	revoked.Store(good["auth_token"], true) // the old key is revoked at the provider
	fv.secrets["secret/a"] = map[string]string{"auth_token": "bad-" + sentinel, "chat_id": "1"}
	eng = rotate.New(cfg, rotate.Options{Vault: versioned{fv, 6}, Hood: fh, State: st, Checker: checker})
	before := patches(fh)
	o := onePass(t, eng, rotate.Request{})
	if o.Result != rotate.ResultFailed || o.RolledBack || !strings.Contains(o.Error, "rollback not pushed") || !strings.Contains(o.Error, "refused by") {
		t.Errorf("version 6: got %s rolled_back=%v %q, want failed, the rollback refused by the provider", o.Result, o.RolledBack, o.Error)
	}
	if got := patches(fh) - before; got != 1 {
		t.Errorf("PATCHes: got %d, want 1 (version 6 only, no rollback of a revoked key)", got)
	}
	if strings.Contains(o.Error, sentinel) {
		t.Errorf("the outcome's error carries a secret value")
	}
}
