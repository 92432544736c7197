package ha_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/ha"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/state"
	"github.com/ocamba-rotator/rotator/internal/testkit"
)

var _ rotate.State = (*ha.Store)(nil)

// fakeEnv is an env on a new fake Vault.
func fakeEnv(t *testing.T) *env {
	f := newFakeVault()
	return &env{
		vault: f, mount: "secret", path: "rotator/leases",
		clock: &clock{now: t0}, logs: &testkit.SyncBuffer{},
		deleteCurrent: func(t *testing.T, path string) { f.deleteCurrent("secret", path) },
		versions:      func(*testing.T) [][]byte { return f.allVersions() },
	}
}

func TestScenariosFake(t *testing.T) {
	runScenarios(t, fakeEnv)
}

func TestRaceBeginFake(t *testing.T) {
	e := fakeEnv(t)
	raceBegin(t, e, 3, 20, 10, 3)
	e.checkNoLeak(t)
}

func TestNewChecksOptions(t *testing.T) {
	f := newFakeVault()
	ok := ha.Options{Vault: f, Mount: "secret", Path: "rotator/leases", Identity: "web-1", TTL: time.Minute}
	tests := []struct {
		name string
		edit func(*ha.Options)
		want string // "" means no error
	}{
		{"valid", func(*ha.Options) {}, ""},
		{"slashes trimmed", func(o *ha.Options) { o.Mount, o.Path = "/secret/", "/rotator/leases/" }, ""},
		{"no vault", func(o *ha.Options) { o.Vault = nil }, "no Vault client"},
		{"no mount", func(o *ha.Options) { o.Mount = "/" }, "no KV v2 mount"},
		{"no path", func(o *ha.Options) { o.Path = "" }, "no path"},
		{"empty segment", func(o *ha.Options) { o.Path = "rotator//leases" }, "empty segment"},
		{"no ttl", func(o *ha.Options) { o.TTL = 0 }, "not positive"},
		{"negative timeout", func(o *ha.Options) { o.Timeout = -time.Second }, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := ok
			tt.edit(&o)
			_, err := ha.New(o)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if len(f.allVersions()) != 0 {
		t.Error("New wrote to Vault")
	}
}

func TestIdentity(t *testing.T) {
	f := newFakeVault()
	pattern := regexp.MustCompile(`^web-1#[0-9a-f]{8}$`)
	seen := map[string]bool{}
	for range 5 {
		s, err := ha.New(ha.Options{Vault: f, Mount: "secret", Path: "p", Identity: "web-1", TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if !pattern.MatchString(s.Identity()) || seen[s.Identity()] {
			t.Errorf("Identity: got %q, want web-1#<8 new hex digits>", s.Identity())
		}
		seen[s.Identity()] = true
	}
	s, err := ha.New(ha.Options{Vault: f, Mount: "secret", Path: "p", TTL: time.Minute})
	if err != nil || !regexp.MustCompile(`^.+#[0-9a-f]{8}$`).MatchString(s.Identity()) {
		t.Errorf("default label: got %q, %v; want <host name>#<8 hex digits>", s.Identity(), err)
	}
}

func TestFingerprintBeforeTheKeyIsRandom(t *testing.T) {
	e := fakeEnv(t)
	s := e.store(t, "web-1")
	a, b := s.Fingerprint(id, provider, settings(0)), s.Fingerprint(id, provider, settings(0))
	if len(a) != 32 || bytes.Equal(a, b) {
		t.Errorf("fingerprints without a key: got %x and %x, want 32 random bytes each", a, b)
	}
	m1, m2 := s.SettingMACs(id, provider, settings(0)), s.SettingMACs(id, provider, settings(0))
	if len(m1) != 2 || bytes.Equal(m1["auth_token"], m2["auth_token"]) {
		t.Errorf("setting MACs without a key: got %x and %x, want random ones per name", m1, m2)
	}
	get(t, s, "tg")
	var k struct{ Key string }
	if _, _, err := e.vault.ReadDoc(t.Context(), "secret", "rotator/leases/_meta/hmac-key", &k); err != nil {
		t.Fatal(err)
	}
	key, _ := base64.StdEncoding.DecodeString(k.Key)
	if len(key) != state.KeySize {
		t.Fatalf("stored key: %d bytes, want %d", len(key), state.KeySize)
	}
	if got, want := s.Fingerprint(id, provider, settings(0)), state.FingerprintWithKey(key, id, provider, settings(0)); !bytes.Equal(got, want) {
		t.Errorf("Fingerprint: got %x, want state.FingerprintWithKey under the stored key %x", got, want)
	}
	if strings.Contains(e.logs.String(), k.Key) {
		t.Error("the key is in the log")
	}
}

func TestKeyReadFailureFailsGetAndIsRetried(t *testing.T) {
	e := fakeEnv(t)
	f := e.vault.(*fakeVault)
	f.failWrites = errUnreachable
	s := e.store(t, "web-1")
	if _, _, err := s.Get("tg"); !errors.Is(err, errUnreachable) || !strings.Contains(err.Error(), "secret/rotator/leases/_meta/hmac-key") {
		t.Fatalf("Get with Vault refusing writes: got %v, want the key creation error naming its path", err)
	}
	f.mu.Lock()
	f.failWrites = nil
	f.mu.Unlock()
	if _, _, err := s.Get("tg"); err != nil {
		t.Fatalf("Get once Vault is back: %v", err)
	}
}

func TestDeletedKeyIsDrawnAgain(t *testing.T) {
	e := fakeEnv(t)
	get(t, e.store(t, "web-1"), "tg")
	e.deleteCurrent(t, "rotator/leases/_meta/hmac-key")
	s := e.store(t, "web-2")
	get(t, s, "tg")
	if v := e.anyVersion(t, "_meta/hmac-key"); v != 2 {
		t.Errorf("key version: got %d, want 2", v)
	}
	if !strings.Contains(e.logs.String(), "current version is deleted") {
		t.Error("no warning about the deleted key")
	}
}

func TestWriteErrors(t *testing.T) {
	e := fakeEnv(t)
	f := e.vault.(*fakeVault)
	a := e.store(t, "web-1")
	p := pushedOf(a, 1, e.clock.Now())

	r := get(t, a, "tg")
	f.failWrites = errUnreachable
	err := a.Begin("tg", id, provider, r.Revision, p)
	if err == nil || errors.Is(err, state.ErrNotHolder) || !strings.Contains(err.Error(), "secret/rotator/leases/tg") {
		t.Errorf("Begin with Vault unreachable: got %v, want a write error naming the path, not ErrNotHolder", err)
	}
	f.failWrites = nil
	if err := a.Begin("tg", id, provider, get(t, a, "tg").Revision, p); err != nil {
		t.Fatalf("Begin: %v", err)
	}
	f.failWrites = errUnreachable
	if err := a.Fence("tg"); err == nil || errors.Is(err, state.ErrNotHolder) {
		t.Errorf("Fence with Vault unreachable: got %v, want a write error", err)
	}
	f.failWrites = nil
	if err := a.Fence("tg"); err != nil {
		t.Errorf("Fence once Vault is back: got %v, want the lease kept", err)
	}
	f.failWrites = errUnreachable
	if err := a.Confirm("tg", p, attempt("pushed", e.clock.Now())); err == nil || errors.Is(err, state.ErrNotHolder) {
		t.Errorf("Confirm with Vault unreachable: got %v, want a write error", err)
	}
	f.failWrites = nil
	wantNotHolder(t, "Confirm after a failed Confirm", a.Confirm("tg", p, attempt("pushed", e.clock.Now())))
	if err := a.Note("tg", attempt("failed", e.clock.Now())); err != nil {
		t.Errorf("Note: %v", err)
	}
	if d, _ := e.doc(t, "tg"); d.Holder != "" {
		t.Errorf("a Note over this store's own stale lease: got holder %q, want it released", d.Holder)
	}
}

func TestBadNames(t *testing.T) {
	s := fakeEnv(t).store(t, "web-1")
	for _, name := range []string{"", "a/b", ".."} {
		if _, _, err := s.Get(name); err == nil {
			t.Errorf("Get(%q): got no error", name)
		}
		if err := s.Note(name, state.Attempt{}); err == nil {
			t.Errorf("Note(%q): got no error", name)
		}
	}
}
