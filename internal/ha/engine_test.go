package ha_test

// The engine (internal/rotate) on shared stores: two rotators, one push.

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/ha"
	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/secret"
	"github.com/ocamba-rotator/rotator/internal/vault"
	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

// source is where the engine reads the integration's secret.
type source interface {
	rotate.SecretReader
	put(t *testing.T, path string, data map[string]string)
}

// fakeSource is an in-memory KV v2 secret store.
type fakeSource struct {
	mu       sync.Mutex
	versions map[string][]map[string]string // "mount/path"
}

func (f *fakeSource) put(_ *testing.T, path string, data map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.versions["secret/"+path] = append(f.versions["secret/"+path], data)
}

func (f *fakeSource) ReadKV(ctx context.Context, mount, path string, _ int) (*vault.KV, error) {
	f.mu.Lock()
	n := len(f.versions[mount+"/"+path])
	f.mu.Unlock()
	return f.ReadKVVersion(ctx, mount, path, n)
}

func (f *fakeSource) ReadKVVersion(_ context.Context, mount, path string, version int) (*vault.KV, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	vs := f.versions[mount+"/"+path]
	if version < 1 || version > len(vs) {
		return nil, &vault.Error{Op: vault.OpRead, Mount: mount, Path: path, Kind: vault.KindNotFound, Err: vault.ErrNotFound}
	}
	kv := &vault.KV{Mount: mount, Path: path, KVVersion: 2, Version: version, Data: map[string]secret.Value{}}
	for k, v := range vs[version-1] {
		kv.Data[k] = secret.New(v)
	}
	return kv, nil
}

// realSource reads the real server through a *vault.Client.
type realSource struct {
	*vault.Client
	srv *vaulttest.Server
}

func (r realSource) put(t *testing.T, path string, data map[string]string) {
	t.Helper()
	m := map[string]any{}
	for k, v := range data {
		m[k] = v
	}
	if _, err := r.srv.PutKV(t.Context(), "secret", path, m); err != nil {
		t.Fatal(err)
	}
}

// fakeHood is one telegram integration. A value starting with "bad" fails
// Hood's credentials test; block, when set, holds PATCHes until closed.
type fakeHood struct {
	mu      sync.Mutex
	patches int
	value   string
	block   chan struct{}
	entered chan struct{}
}

func (h *fakeHood) GetIntegration(_ context.Context, _ secret.Value, id string) (*hood.Integration, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p, _ := hood.LookupProvider(provider)
	in := &hood.Integration{ID: id, Status: "active", EffectiveStatus: "active", Provider: hood.ProviderInfo{Name: p.Name, Type: p.Type}}
	if strings.HasPrefix(h.value, "bad") {
		in.EffectiveStatus = "inactive"
	}
	for _, f := range p.Fields {
		in.Provider.Settings = append(in.Provider.Settings, hood.SettingInfo{Name: f.Name})
	}
	return in, nil
}

func (h *fakeHood) UpdateSettings(ctx context.Context, _ secret.Value, _ string, s map[string]secret.Value) error {
	h.mu.Lock()
	block, entered := h.block, h.entered
	h.mu.Unlock()
	if block != nil {
		entered <- struct{}{}
		select {
		case <-block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.patches++
	h.value = s["auth_token"].Reveal()
	return nil
}

func (h *fakeHood) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.patches
}

// engines runs the two-rotator engine scenario on e, reading the secret
// from src.
func engines(t *testing.T, e *env, src source) {
	secretPath := e.path + "-source/tg"
	cfg := &config.Config{
		Hood: config.Hood{MaxInFlight: 2, VerifyTimeout: config.Duration(time.Second), Token: config.Token{Env: "HOOD_TOKEN"}},
		Integrations: []config.Integration{{
			Name: "tg", ID: id, Provider: provider, OnVerifyFailure: "rollback",
			Source: config.Source{Mount: "secret", Path: secretPath, KVVersion: 2},
		}},
	}
	fh := &fakeHood{}
	logger := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	newEngine := func(label string) (*rotate.Engine, *ha.Store) {
		st, err := ha.New(ha.Options{Vault: e.vault, Mount: e.mount, Path: e.path, Identity: label, TTL: ttl, Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		return rotate.New(cfg, rotate.Options{Vault: src, Hood: fh, State: st, Logger: logger,
			Getenv: func(string) string { return "hood-token" }}), st
	}
	a, sa := newEngine("web-1")
	b, _ := newEngine("web-2")
	pass := func(eng *rotate.Engine, req rotate.Request) rotate.Outcome {
		t.Helper()
		rep, err := eng.Pass(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		j, _ := json.Marshal(rep)
		if strings.Contains(string(j), sentinel) {
			t.Error("a report holds the sentinel")
		}
		for _, o := range rep.Outcomes {
			e.note(o.Err)
		}
		return rep.Outcomes[0]
	}

	src.put(t, secretPath, map[string]string{"auth_token": "good-" + sentinel, "chat_id": "42"})
	if o := pass(a, rotate.Request{Trigger: rotate.TriggerSchedule}); o.Result != rotate.ResultPushed || len(o.Warnings) > 0 {
		t.Fatalf("first rotator: got %s %v %q, want pushed", o.Result, o.Err, o.Warnings)
	}
	if o := pass(b, rotate.Request{Trigger: rotate.TriggerSchedule}); o.Result != rotate.ResultUnchanged || !strings.Contains(o.Reason, "equal to the push confirmed") {
		t.Errorf("second rotator: got %s %q %v, want unchanged (the other one pushed)", o.Result, o.Reason, o.Err)
	}
	if n := fh.count(); n != 1 {
		t.Errorf("PATCHes: got %d, want 1", n)
	}

	// While the first rotator's PATCH is in flight, the second one's pass
	// finds the integration held, even forced.
	src.put(t, secretPath, map[string]string{"auth_token": "good2-" + sentinel, "chat_id": "42"})
	fh.mu.Lock()
	fh.block, fh.entered = make(chan struct{}), make(chan struct{}, 1)
	fh.mu.Unlock()
	done := make(chan rotate.Outcome)
	go func() {
		rep, _ := a.Pass(context.Background(), rotate.Request{Trigger: rotate.TriggerSchedule})
		done <- rep.Outcomes[0]
	}()
	<-fh.entered
	o := pass(b, rotate.Request{Trigger: rotate.TriggerAdmin, Force: true})
	if o.Result != rotate.ResultUnchanged || !strings.HasPrefix(o.Reason, "held by "+sa.Identity()+" until ") {
		t.Errorf("while held: got %s %q %v, want unchanged, held by %s", o.Result, o.Reason, o.Err, sa.Identity())
	}
	fh.mu.Lock()
	close(fh.block)
	fh.block = nil
	fh.mu.Unlock()
	if o := <-done; o.Result != rotate.ResultPushed {
		t.Errorf("the holder: got %s %v, want pushed", o.Result, o.Err)
	}
	if n := fh.count(); n != 2 {
		t.Errorf("PATCHes: got %d, want 2", n)
	}

	// A bad version is pushed, fails verification and is rolled back
	// (Fence, PATCH, Confirm, then Fail of the bad push): the other
	// rotator's next scheduled pass does not push it again.
	src.put(t, secretPath, map[string]string{"auth_token": "bad-" + sentinel, "chat_id": "42"})
	o = pass(b, rotate.Request{Trigger: rotate.TriggerSchedule})
	if !o.RolledBack || !errors.Is(o.Err, rotate.ErrVerify) || len(o.Warnings) > 0 {
		t.Fatalf("bad version: got %s rolled_back=%v %v %q, want rolled back without warnings", o.Result, o.RolledBack, o.Err, o.Warnings)
	}
	if n := fh.count(); n != 4 {
		t.Errorf("PATCHes: got %d, want 4 (the bad push and its rollback)", n)
	}
	o = pass(a, rotate.Request{Trigger: rotate.TriggerSchedule})
	if !errors.Is(o.Err, rotate.ErrVerifyFailedBefore) || fh.count() != 4 {
		t.Errorf("other rotator after the rollback: got %s %v with %d PATCHes, want refused as failed before, 4 PATCHes", o.Result, o.Err, fh.count())
	}
	d, _ := e.doc(t, "tg")
	if d.Holder != "" || d.Record.Failed == nil || d.Record.Confirmed == nil || d.Record.Pending != nil {
		t.Errorf("final record: holder %q, %+v; want released, with confirmed and failed pushes", d.Holder, d.Record)
	}
}

func TestEnginesFake(t *testing.T) {
	e := fakeEnv(t)
	engines(t, e, &fakeSource{versions: map[string][]map[string]string{}})
	e.checkNoLeak(t)
}

// TestEnginesVault is also the sentinel test: the setting values, which
// hold the sentinel, reach the records only as HMACs. Every version of
// every record, the key, the logs of the engines, the stores and the
// Vault clients, the reports and the errors are searched.
func TestEnginesVault(t *testing.T) {
	e := vaultEnv(t)
	engines(t, e, realSource{Client: vaultClient(t, srv, e.logs), srv: srv})
	e.checkNoLeak(t)
	versions := e.versions(t)
	if len(versions) < 10 || !strings.Contains(e.logs.String(), "integration done") {
		t.Errorf("the leak check saw %d versions and a log of %d bytes: too little to mean anything", len(versions), len(e.logs.String()))
	}
	// The check finds a planted value.
	e.put(t, "planted", map[string]any{"v": sentinel})
	found := false
	for _, v := range e.versions(t) {
		found = found || strings.Contains(string(v), sentinel)
	}
	if !found {
		t.Error("the leak check does not see a planted sentinel")
	}
}
