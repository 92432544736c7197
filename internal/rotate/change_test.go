package rotate_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/rotate"
)

func results(rep rotate.Report) []rotate.Result {
	var out []rotate.Result
	for _, o := range rep.Outcomes {
		out = append(out, o.Result)
	}
	return out
}

func TestChangeDetection(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
	cfg := engineConfig(2, func(int) string { return "a" })
	eng := rotate.New(cfg, rotate.Options{Vault: fv, Hood: fh, State: newState(t)})
	ctx := context.Background()
	pass := func(req rotate.Request) rotate.Report {
		t.Helper()
		rep, err := eng.Pass(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	pushes := func() int { fh.mu.Lock(); defer fh.mu.Unlock(); return len(fh.tokens) }

	if got := results(pass(rotate.Request{})); got[0] != "pushed" || got[1] != "pushed" {
		t.Fatalf("first pass: got %v, want both pushed", got)
	}
	if got := results(pass(rotate.Request{})); got[0] != "unchanged" || got[1] != "unchanged" {
		t.Errorf("second pass: got %v, want both unchanged", got)
	}
	if got := results(pass(rotate.Request{DryRun: true})); got[0] != "unchanged" {
		t.Errorf("dry run with nothing changed: got %v, want unchanged", got)
	}
	if got := pushes(); got != 2 {
		t.Errorf("pushes after an unchanged pass: got %d, want 2", got)
	}

	// A forced pass pushes again, unless the push it would make was already
	// confirmed after it was asked for.
	asked := time.Now()
	if got := results(pass(rotate.Request{Force: true})); got[0] != "pushed" {
		t.Errorf("forced pass: got %v, want pushed", got)
	}
	if got := results(pass(rotate.Request{Force: true, NotBefore: asked})); got[0] != "unchanged" || got[1] != "unchanged" {
		t.Errorf("forced pass after a push that followed its request: got %v, want unchanged", got)
	}
	if got := results(pass(rotate.Request{Force: true, NotBefore: time.Now().Add(time.Hour)})); got[0] != "pushed" {
		t.Errorf("forced pass asked after the last push: got %v, want pushed", got)
	}

	// A changed value is pushed; static changes too.
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel + "-2", "chat_id": "1"}
	if got := results(pass(rotate.Request{})); got[0] != "pushed" || got[1] != "pushed" {
		t.Errorf("after a change in Vault: got %v, want both pushed", got)
	}
	cfg.Integrations[1].Static = map[string]string{"chat_id": "9"}
	if got := results(pass(rotate.Request{})); got[0] != "unchanged" || got[1] != "pushed" {
		t.Errorf("after a static change: got %v, want unchanged, pushed", got)
	}
}

func TestScheduledPassRefusesDowngrade(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	cfg := engineConfig(1, func(int) string { return "a" })
	st := newState(t)
	eng := rotate.New(cfg, rotate.Options{Vault: versioned{fv, 5}, Hood: fh, State: st})
	fv.secrets["secret/a"] = map[string]string{"auth_token": "v5", "chat_id": "1"}
	if rep, _ := eng.Pass(context.Background(), rotate.Request{}); rep.Outcomes[0].Result != "pushed" {
		t.Fatalf("got %v, want pushed", results(rep))
	}
	fv.secrets["secret/a"] = map[string]string{"auth_token": "v4", "chat_id": "1"}
	old := rotate.New(cfg, rotate.Options{Vault: versioned{fv, 4}, Hood: fh, State: st})
	rep, _ := old.Pass(context.Background(), rotate.Request{})
	if o := rep.Outcomes[0]; o.Result != "failed" || !errors.Is(o.Err, rotate.ErrDowngrade) {
		t.Errorf("older version on schedule: got %s %v, want failed with ErrDowngrade", o.Result, o.Err)
	}
	rep, _ = old.Pass(context.Background(), rotate.Request{Force: true})
	if o := rep.Outcomes[0]; o.Result != "pushed" {
		t.Errorf("older version forced: got %s %v, want pushed", o.Result, o.Err)
	}
}

// versioned reports every secret at a fixed KV version.
type versioned struct {
	*fakeVault
	version int
}

func (v versioned) ReadKV(ctx context.Context, mount, path string, kvVersion int) (*vaultKV, error) {
	kv, err := v.fakeVault.ReadKV(ctx, mount, path, kvVersion)
	if err == nil {
		kv.Version = v.version
	}
	return kv, err
}

func TestStopKeepsPushesFromStarting(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
	stop := make(chan struct{})
	close(stop)
	rep, _ := rotate.New(engineConfig(3, func(int) string { return "a" }), rotate.Options{Vault: fv, Hood: fh, State: newState(t)}).
		Pass(context.Background(), rotate.Request{Stop: stop})
	for _, o := range rep.Outcomes {
		if !errors.Is(o.Err, rotate.ErrStopping) {
			t.Errorf("%s: got %v, want ErrStopping", o.Name, o.Err)
		}
	}
	if len(fh.tokens) != 0 {
		t.Errorf("got %d pushes, want 0", len(fh.tokens))
	}
}
