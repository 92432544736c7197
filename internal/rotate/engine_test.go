package rotate_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/secret"
	"github.com/ocamba-rotator/rotator/internal/state"
	"github.com/ocamba-rotator/rotator/internal/vault"
)

// fakeVault serves secrets from memory and counts reads per path.
type fakeVault struct {
	mu      sync.Mutex
	secrets map[string]map[string]string
	fail    map[string]error
	reads   map[string]int
	// versions serves ReadKVVersion: "mount/path@N" -> data.
	versions map[string]map[string]string
	// created is the KV v2 created_time ReadKV answers, by "mount/path".
	created map[string]time.Time
}

func (f *fakeVault) ReadKV(_ context.Context, mount, path string, kvVersion int) (*vault.KV, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := mount + "/" + path
	f.reads[key]++
	if err := f.fail[key]; err != nil {
		return nil, err
	}
	data, ok := f.secrets[key]
	if !ok {
		return nil, &vault.Error{Op: "read", Mount: mount, Path: path, Kind: vault.KindNotFound, Err: vault.ErrNotFound}
	}
	kv := kvOf(data, nil)
	kv.Created = f.created[key]
	return kv, nil
}

// fakeHood records pushes and fails the ids it is told to. Every
// integration is a telegram one unless providers says otherwise; its
// effective_status is "active" unless effective says otherwise.
type fakeHood struct {
	mu        sync.Mutex
	pushes    map[string]map[string]string
	tokens    []string
	fail      map[string]error
	providers map[string]string
	effective map[string]string
	testing   map[string]int      // GETs that answer "testing" first
	schema    map[string][]string // live schema override
	gets      int
}

func (f *fakeHood) GetIntegration(_ context.Context, _ secret.Value, id string) (*hood.Integration, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gets++
	key := f.providers[id]
	if key == "" {
		key = "telegram"
	}
	p, _ := hood.LookupProvider(key)
	in := &hood.Integration{ID: id, Status: "active", EffectiveStatus: "active", Provider: hood.ProviderInfo{Name: p.Name, Type: p.Type}}
	if s := f.effective[id]; s != "" {
		in.EffectiveStatus = s
	}
	if strings.HasPrefix(f.pushes[id]["auth_token"], "bad") {
		in.EffectiveStatus = "inactive" // Hood's credentials test failed
	}
	if f.testing[id] > 0 {
		f.testing[id]--
		in.EffectiveStatus = "testing"
	}
	if s := f.schema[id]; s != nil {
		in.Provider.Settings = nil
		for _, name := range s {
			in.Provider.Settings = append(in.Provider.Settings, hood.SettingInfo{Name: name})
		}
		return in, nil
	}
	for _, fl := range p.Fields {
		in.Provider.Settings = append(in.Provider.Settings, hood.SettingInfo{Name: fl.Name})
	}
	return in, nil
}

func (f *fakeHood) UpdateSettings(ctx context.Context, token secret.Value, id string, s map[string]secret.Value) error {
	if err := ctx.Err(); err != nil {
		return err // as the real client: nothing is sent on a done context
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = append(f.tokens, token.Reveal())
	if err := f.fail[id]; err != nil {
		return err
	}
	f.pushes[id] = reveal(s)
	return nil
}

func (f *fakeVault) ReadKVVersion(ctx context.Context, mount, path string, version int) (*vault.KV, error) {
	f.mu.Lock()
	data, ok := f.versions[fmt.Sprintf("%s/%s@%d", mount, path, version)]
	f.mu.Unlock()
	if !ok {
		return nil, &vault.Error{Op: "read", Mount: mount, Path: path, Kind: vault.KindNotFound, Err: vault.ErrNotFound}
	}
	kv := kvOf(data, nil)
	kv.Version = version
	return kv, nil
}

func newFakes() (*fakeVault, *fakeHood) {
	return &fakeVault{secrets: map[string]map[string]string{}, fail: map[string]error{}, reads: map[string]int{}, versions: map[string]map[string]string{}},
		&fakeHood{pushes: map[string]map[string]string{}, fail: map[string]error{}, providers: map[string]string{}, effective: map[string]string{}, testing: map[string]int{}, schema: map[string][]string{}}
}

// newState opens a state file in the test's temporary directory.
func newState(t *testing.T) *state.Store {
	t.Helper()
	st, err := state.Open(filepath.Join(t.TempDir(), "state.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func engineConfig(n int, path func(i int) string) *config.Config {
	cfg := &config.Config{Hood: config.Hood{MaxInFlight: 3, VerifyTimeout: config.Duration(time.Second), Token: config.Token{Vault: &config.SecretRef{Mount: "secret", Path: "rotator/hood", Key: "token", KVVersion: 2}}}}
	for i := range n {
		cfg.Integrations = append(cfg.Integrations, config.Integration{
			Name: fmt.Sprintf("tg-%d", i), ID: fmt.Sprint(1000 + i), Provider: "telegram",
			Source: config.Source{Mount: "secret", Path: path(i), KVVersion: 2},
		})
	}
	return cfg
}

func TestPassReadsEachPathOnceAndIsolatesFailures(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
	fv.secrets["secret/b"] = map[string]string{"chat_id": "2"} // auth_token missing: still pushes chat_id (warning)
	fv.fail["secret/c"] = &vault.Error{Op: "read", Mount: "secret", Path: "c", Kind: vault.KindPermissionDenied, Err: vault.ErrPermissionDenied}
	fh.fail["1004"] = errors.New("boom")
	paths := []string{"a", "a", "b", "c", "a", "a"}
	cfg := engineConfig(len(paths), func(i int) string { return paths[i] })

	eng := rotate.New(cfg, rotate.Options{Vault: fv, Hood: fh, State: newState(t)})
	rep, err := eng.Pass(context.Background(), rotate.Request{Trigger: rotate.TriggerCLI})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{"secret/a": 1, "secret/b": 1, "secret/c": 1, "secret/rotator/hood": 1} {
		if got := fv.reads[path]; got != want {
			t.Errorf("reads of %s: got %d, want %d", path, got, want)
		}
	}
	want := []rotate.Result{"pushed", "pushed", "pushed", "failed", "failed", "pushed"}
	for i, o := range rep.Outcomes {
		if o.Result != want[i] {
			t.Errorf("%s: got %s (%s), want %s", o.Name, o.Result, o.Error, want[i])
		}
		if strings.Contains(o.Error, sentinel) || strings.Contains(o.Error, "hood-token") {
			t.Errorf("%s: error holds a secret", o.Name)
		}
	}
	if !errors.Is(rep.Outcomes[3].Err, vault.ErrPermissionDenied) {
		t.Errorf("got %v, want permission denied", rep.Outcomes[3].Err)
	}
	if rep.Failed() != 2 {
		t.Errorf("Failed: got %d, want 2", rep.Failed())
	}
	for _, tok := range fh.tokens {
		if tok != "hood-token" {
			t.Errorf("pushed with token %q, want the one from Vault", tok)
		}
	}
}

func TestPassHoodTokenFailureFailsEveryIntegration(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
	cfg := engineConfig(3, func(int) string { return "a" })
	rep, err := rotate.New(cfg, rotate.Options{Vault: fv, Hood: fh, State: newState(t)}).Pass(context.Background(), rotate.Request{Trigger: rotate.TriggerCLI})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range rep.Outcomes {
		if o.Result != rotate.ResultFailed || !strings.Contains(o.Error, "read Hood token") {
			t.Errorf("%s: got %s %q, want failed reading the Hood token", o.Name, o.Result, o.Error)
		}
	}
	if len(fh.tokens) != 0 {
		t.Errorf("got %d pushes, want none without a token", len(fh.tokens))
	}
}

func TestPassEnvTokenDryRunAndOnly(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
	cfg := engineConfig(3, func(int) string { return "a" })
	cfg.Hood.Token = config.Token{Env: "HOOD_TOKEN"}
	getenv := func(k string) string {
		if k == "HOOD_TOKEN" {
			return "env-token"
		}
		return ""
	}
	eng := rotate.New(cfg, rotate.Options{Vault: fv, Hood: fh, Getenv: getenv, State: newState(t)})

	rep, err := eng.Pass(context.Background(), rotate.Request{DryRun: true, Only: []string{"tg-2", "tg-0"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Outcomes) != 2 || rep.Outcomes[0].Name != "tg-0" || rep.Outcomes[1].Name != "tg-2" {
		t.Fatalf("got outcomes %+v, want tg-0 and tg-2 in config order", rep.Outcomes)
	}
	for _, o := range rep.Outcomes {
		if o.Result != rotate.ResultWouldPush {
			t.Errorf("%s: got %s, want would push", o.Name, o.Result)
		}
	}
	if len(fh.tokens) != 0 {
		t.Errorf("dry run pushed %d times, want 0", len(fh.tokens))
	}

	if _, err := eng.Pass(context.Background(), rotate.Request{Only: []string{"nope"}}); !errors.Is(err, rotate.ErrUnknownIntegration) {
		t.Errorf("got %v, want ErrUnknownIntegration", err)
	}

	rep, _ = eng.Pass(context.Background(), rotate.Request{Only: []string{"tg-1"}})
	if rep.Outcomes[0].Result != rotate.ResultPushed || fh.tokens[0] != "env-token" {
		t.Errorf("got %s with token %q, want pushed with the env token", rep.Outcomes[0].Result, fh.tokens)
	}
}

func TestPassCarriesTheVaultCreatedTime(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
	fv.secrets["secret/v1"] = map[string]string{"auth_token": sentinel, "chat_id": "1"} // no created time, as KV v1
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	fv.created = map[string]time.Time{"secret/a": created}
	fh.fail["1001"] = errors.New("boom")
	paths := []string{"a", "a", "v1"}
	cfg := engineConfig(len(paths), func(i int) string { return paths[i] })
	eng := rotate.New(cfg, rotate.Options{Vault: fv, Hood: fh, State: newState(t)})

	for _, req := range []rotate.Request{{DryRun: true}, {Trigger: rotate.TriggerCLI}, {Trigger: rotate.TriggerCLI}} {
		rep, err := eng.Pass(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		for i, o := range rep.Outcomes {
			switch {
			case paths[i] == "v1" && o.VaultCreated != nil:
				t.Errorf("dry run %v, %s (%s): got created %v, want none", req.DryRun, o.Name, o.Result, *o.VaultCreated)
			case paths[i] == "a" && (o.VaultCreated == nil || !o.VaultCreated.Equal(created)):
				t.Errorf("dry run %v, %s (%s): got created %v, want %v", req.DryRun, o.Name, o.Result, o.VaultCreated, created)
			}
		}
	}
}

// slowState delays each Get, tracks how many run at once, and fails the
// Get of one integration.
type slowState struct {
	rotate.State
	mu         sync.Mutex
	now, peak  int
	failFor    string
	gotRecords []string
}

func (s *slowState) Get(name string) (state.Record, bool, error) {
	s.mu.Lock()
	s.now++
	s.peak = max(s.peak, s.now)
	s.gotRecords = append(s.gotRecords, name)
	s.mu.Unlock()
	time.Sleep(20 * time.Millisecond)
	s.mu.Lock()
	s.now--
	s.mu.Unlock()
	if name == s.failFor {
		return state.Record{}, false, errors.New("vault unreachable")
	}
	return s.State.Get(name)
}

// A pass reads its integrations' records (a Vault request each with a
// shared state) a few at a time, not one after another; a record it cannot
// read fails that integration alone.
func TestPassReadsRecordsConcurrently(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
	fv.fail["secret/bad"] = &vault.Error{Op: "read", Mount: "secret", Path: "bad", Kind: vault.KindPermissionDenied, Err: vault.ErrPermissionDenied}
	const n = 24
	cfg := engineConfig(n, func(i int) string {
		if i == 0 {
			return "bad"
		}
		return "a"
	})
	st := &slowState{State: newState(t), failFor: "tg-5"}
	rep, err := rotate.New(cfg, rotate.Options{Vault: fv, Hood: fh, State: st}).Pass(context.Background(), rotate.Request{Trigger: rotate.TriggerCLI})
	if err != nil {
		t.Fatal(err)
	}
	if st.peak < 2 || st.peak > 8 {
		t.Errorf("records read at once: got %d, want 2 to 8", st.peak)
	}
	if got := len(st.gotRecords); got != n-1 {
		t.Errorf("records read: got %d, want %d (none for the integration whose secret failed)", got, n-1)
	}
	for _, o := range rep.Outcomes {
		want := rotate.ResultPushed
		if o.Name == "tg-0" || o.Name == "tg-5" {
			want = rotate.ResultFailed
		}
		if o.Result != want {
			t.Errorf("%s: got %s (%s), want %s", o.Name, o.Result, o.Error, want)
		}
	}
	if e := rep.Outcomes[5].Error; !strings.HasPrefix(e, "read state: ") {
		t.Errorf("tg-5: got error %q, want it to start with \"read state: \"", e)
	}
}

// losingState refuses every Begin (another rotator wrote the record
// first) and answers the Get after it with what after returns, given the
// push this rotator would have begun.
type losingState struct {
	rotate.State
	mu    sync.Mutex
	lost  map[string]state.Pushed
	after func(p state.Pushed) (state.Record, error)
}

func (s *losingState) Begin(name, _, _ string, _ int, p state.Pushed) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lost[name] = p
	return fmt.Errorf("begin %s: %w: the record changed since it was read", name, state.ErrNotHolder)
}

func (s *losingState) Get(name string) (state.Record, bool, error) {
	s.mu.Lock()
	p, lost := s.lost[name]
	s.mu.Unlock()
	if !lost {
		return s.State.Get(name)
	}
	rec, err := s.after(p)
	return rec, err == nil, err
}

// A push whose Begin another rotator won is unchanged, not pushed; the
// record read again says when a pass must look at it again (Recheck): at
// the end of the winner's lease, at once when the winner left other
// settings or the record cannot be read, never when it holds these
// settings confirmed.
func TestPassLostBeginSaysWhenToRecheck(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	leaseEnd := t0.Add(40 * time.Second)
	tests := []struct {
		name   string
		after  func(p state.Pushed) (state.Record, error)
		want   *time.Time
		reason string
	}{
		{"held by the winner", func(state.Pushed) (state.Record, error) {
			return state.Record{HeldBy: "web-2#1", HeldUntil: leaseEnd}, nil
		}, &leaseEnd, "held by web-2#1 until 2026-12-07T01:00:40Z"},
		{"these settings confirmed", func(p state.Pushed) (state.Record, error) {
			c := p
			c.At = t0
			return state.Record{Confirmed: &c}, nil
		}, nil, ""},
		{"other settings confirmed", func(p state.Pushed) (state.Record, error) {
			c := p
			c.Fingerprint = []byte("an older version's")
			return state.Record{Confirmed: &c}, nil
		}, &t0, ""},
		{"record unreadable", func(state.Pushed) (state.Record, error) {
			return state.Record{}, errors.New("vault unreachable")
		}, &t0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fv, fh := newFakes()
			fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
			fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
			st := &losingState{State: newState(t), lost: map[string]state.Pushed{}, after: tt.after}
			eng := rotate.New(engineConfig(1, func(int) string { return "a" }), rotate.Options{Vault: fv, Hood: fh, State: st, Now: func() time.Time { return t0 }})
			rep, err := eng.Pass(context.Background(), rotate.Request{Trigger: rotate.TriggerSchedule})
			if err != nil {
				t.Fatal(err)
			}
			o := rep.Outcomes[0]
			if o.Result != rotate.ResultUnchanged || len(fh.pushes) != 0 {
				t.Fatalf("got %s (%s) with %d pushes, want unchanged and none", o.Result, o.Error, len(fh.pushes))
			}
			switch {
			case tt.want == nil && o.Recheck != nil:
				t.Errorf("recheck at %s, want none", o.Recheck)
			case tt.want != nil && (o.Recheck == nil || !o.Recheck.Equal(*tt.want)):
				t.Errorf("recheck at %v, want %s", o.Recheck, tt.want)
			}
			if !strings.Contains(o.Reason, tt.reason) {
				t.Errorf("reason %q, want it to contain %q", o.Reason, tt.reason)
			}
		})
	}
}

// signalHood closes pushed at its first PATCH.
type signalHood struct {
	*fakeHood
	once   sync.Once
	pushed chan struct{}
}

func (h *signalHood) UpdateSettings(ctx context.Context, token secret.Value, id string, s map[string]secret.Value) error {
	h.once.Do(func() { close(h.pushed) })
	return h.fakeHood.UpdateSettings(ctx, token, id, s)
}

// lateState answers the Get of one integration only after the first PATCH
// of the pass (or after a timeout, which it records).
type lateState struct {
	rotate.State
	late     string
	pushed   <-chan struct{}
	timedOut bool
}

func (s *lateState) Get(name string) (state.Record, bool, error) {
	if name == s.late {
		select {
		case <-s.pushed:
		case <-time.After(5 * time.Second):
			s.timedOut = true
		}
	}
	return s.State.Get(name)
}

// A pass starts pushing as soon as an integration is decided: the first
// PATCH does not wait for every record to be read.
func TestPassPushesBeforeEveryRecordIsRead(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
	const n = 24
	h := &signalHood{fakeHood: fh, pushed: make(chan struct{})}
	st := &lateState{State: newState(t), late: fmt.Sprintf("tg-%d", n-1), pushed: h.pushed}
	rep, err := rotate.New(engineConfig(n, func(int) string { return "a" }), rotate.Options{Vault: fv, Hood: h, State: st}).
		Pass(context.Background(), rotate.Request{Trigger: rotate.TriggerCLI})
	if err != nil {
		t.Fatal(err)
	}
	if st.timedOut {
		t.Error("the last record was read before any PATCH: the pass waited for every record before pushing")
	}
	for _, o := range rep.Outcomes {
		if o.Result != rotate.ResultPushed {
			t.Errorf("%s: got %s (%s), want pushed", o.Name, o.Result, o.Error)
		}
	}
}

// orderHood records the order of its PATCHes.
type orderHood struct {
	*fakeHood
	mu    sync.Mutex
	order []string
}

func (h *orderHood) UpdateSettings(ctx context.Context, token secret.Value, id string, s map[string]secret.Value) error {
	h.mu.Lock()
	h.order = append(h.order, id)
	h.mu.Unlock()
	return h.fakeHood.UpdateSettings(ctx, token, id, s)
}

// reverseState answers the Gets of earlier integrations later, so that
// records are read out of order.
type reverseState struct {
	rotate.State
	n int
}

func (s *reverseState) Get(name string) (state.Record, bool, error) {
	var i int
	_, _ = fmt.Sscanf(name, "tg-%d", &i)
	time.Sleep(time.Duration(s.n-i) * 3 * time.Millisecond)
	return s.State.Get(name)
}

// Records read out of order are pushed in configuration order (with
// max_in_flight 1, one after another).
func TestPassPushesInConfigurationOrder(t *testing.T) {
	fv, fh := newFakes()
	fv.secrets["secret/rotator/hood"] = map[string]string{"token": "hood-token"}
	fv.secrets["secret/a"] = map[string]string{"auth_token": sentinel, "chat_id": "1"}
	const n = 20
	cfg := engineConfig(n, func(int) string { return "a" })
	cfg.Hood.MaxInFlight = 1
	h := &orderHood{fakeHood: fh}
	_, err := rotate.New(cfg, rotate.Options{Vault: fv, Hood: h, State: &reverseState{State: newState(t), n: n}}).
		Pass(context.Background(), rotate.Request{Trigger: rotate.TriggerCLI})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range n {
		want = append(want, fmt.Sprint(1000+i))
	}
	if !slices.Equal(h.order, want) {
		t.Errorf("PATCH order: got %v, want %v", h.order, want)
	}
}
