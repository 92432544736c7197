package rotate_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/secret"
	"github.com/ocamba-rotator/rotator/internal/vault"
)

// fakeVault serves secrets from memory and counts reads per path.
type fakeVault struct {
	mu      sync.Mutex
	secrets map[string]map[string]string
	fail    map[string]error
	reads   map[string]int
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
	return kvOf(data, nil), nil
}

// fakeHood records pushes and fails the ids it is told to.
type fakeHood struct {
	mu     sync.Mutex
	pushes map[string]map[string]string
	tokens []string
	fail   map[string]error
}

func (f *fakeHood) UpdateSettings(_ context.Context, token secret.Value, id string, s map[string]secret.Value) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = append(f.tokens, token.Reveal())
	if err := f.fail[id]; err != nil {
		return err
	}
	f.pushes[id] = reveal(s)
	return nil
}

func newFakes() (*fakeVault, *fakeHood) {
	return &fakeVault{secrets: map[string]map[string]string{}, fail: map[string]error{}, reads: map[string]int{}},
		&fakeHood{pushes: map[string]map[string]string{}, fail: map[string]error{}}
}

func engineConfig(n int, path func(i int) string) *config.Config {
	cfg := &config.Config{Hood: config.Hood{MaxInFlight: 3, Token: config.Token{Vault: &config.SecretRef{Mount: "secret", Path: "rotator/hood", Key: "token", KVVersion: 2}}}}
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

	eng := rotate.New(cfg, rotate.Options{Vault: fv, Hood: fh})
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
	rep, err := rotate.New(cfg, rotate.Options{Vault: fv, Hood: fh}).Pass(context.Background(), rotate.Request{Trigger: rotate.TriggerCLI})
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
	eng := rotate.New(cfg, rotate.Options{Vault: fv, Hood: fh, Getenv: getenv})

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
