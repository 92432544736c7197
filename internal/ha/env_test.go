package ha_test

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/ha"
	"github.com/ocamba-rotator/rotator/internal/state"
	"github.com/ocamba-rotator/rotator/internal/testkit"
)

// sentinel is a setting value: it must reach no record, no log line and no
// error.
const sentinel = "SENTINEL-ha-5d1f0b-must-not-leak"

// corrupt is a value planted in a corrupt document: no error quotes it.
const corrupt = "CORRUPT-4e2a-value-of-a-broken-document"

const (
	ttl      = time.Minute
	id       = "1000"
	provider = "telegram"
)

var t0 = time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)

// clock is a settable clock shared by the stores of a test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is one backend (the fake or a real OpenBao) with a fresh path.
type env struct {
	vault ha.Vault
	mount string
	path  string
	clock *clock
	logs  *testkit.SyncBuffer
	// deleteCurrent soft-deletes the current version of the secret at
	// path (in the mount).
	deleteCurrent func(t *testing.T, path string)
	// versions returns the data of every version of every secret under
	// the env's path.
	versions func(t *testing.T) [][]byte
	// errs collects error texts, for the leak check.
	mu   sync.Mutex
	errs []string
}

// store returns a store of the env labelled label, on v when given.
func (e *env) store(t *testing.T, label string, v ...ha.Vault) *ha.Store {
	t.Helper()
	return e.storeWith(t, label, func(o *ha.Options) {
		if len(v) > 0 {
			o.Vault = v[0]
		}
	})
}

// storeWith is store with options edited by edit.
func (e *env) storeWith(t *testing.T, label string, edit func(*ha.Options)) *ha.Store {
	t.Helper()
	opts := ha.Options{
		Vault: e.vault, Mount: e.mount, Path: e.path, Identity: label, TTL: ttl, Now: e.clock.Now,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	edit(&opts)
	s, err := ha.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// seen keeps err's text for the leak check and returns err.
func (e *env) seen(err error) error {
	e.note(err)
	return err
}

// note keeps err's text for the leak check.
func (e *env) note(err error) {
	if err != nil {
		e.mu.Lock()
		e.errs = append(e.errs, err.Error())
		e.mu.Unlock()
	}
}

// rawDoc is a record document as stored.
type rawDoc struct {
	Holder  string       `json:"holder"`
	Expires string       `json:"expires"`
	Record  state.Record `json:"record"`
}

// doc reads the current document of integration name.
func (e *env) doc(t *testing.T, name string) (rawDoc, int) {
	t.Helper()
	var d rawDoc
	v, found, err := e.vault.ReadDoc(t.Context(), e.mount, e.path+"/"+name, &d)
	if err != nil || !found {
		t.Fatalf("read the document of %s: found=%v err=%v", name, found, err)
	}
	return d, v
}

// version returns the current version of integration name's record.
func (e *env) version(t *testing.T, name string) int {
	t.Helper()
	var d rawDoc
	v, _, err := e.vault.ReadDoc(t.Context(), e.mount, e.path+"/"+name, &d)
	if err != nil {
		t.Fatalf("read the document of %s: %v", name, err)
	}
	return v
}

// put writes data over the current version of the secret at path (in the
// env's path).
func (e *env) put(t *testing.T, path string, data map[string]any) int {
	t.Helper()
	var d map[string]any
	cur, _, err := e.vault.ReadDoc(t.Context(), e.mount, e.path+"/"+path, &d)
	if err != nil {
		cur = e.anyVersion(t, path)
	}
	v, err := e.vault.WriteDoc(t.Context(), e.mount, e.path+"/"+path, data, cur)
	if err != nil {
		t.Fatalf("put %s: %v", path, err)
	}
	return v
}

// anyVersion returns the current version of a secret whose data does not
// decode.
func (e *env) anyVersion(t *testing.T, path string) int {
	t.Helper()
	var raw struct{}
	v, _, _ := e.vault.ReadDoc(t.Context(), e.mount, e.path+"/"+path, &raw)
	return v
}

// checkNoLeak fails the test if the sentinel is in a record version, a log
// line or an error seen.
func (e *env) checkNoLeak(t *testing.T) {
	t.Helper()
	for i, v := range e.versions(t) {
		if bytes.Contains(v, []byte(sentinel)) {
			t.Errorf("stored version #%d holds the sentinel", i)
		}
	}
	if strings.Contains(e.logs.String(), sentinel) {
		t.Error("the log holds the sentinel")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, text := range e.errs {
		if strings.Contains(text, sentinel) {
			t.Error("an error holds the sentinel")
		}
	}
}

// get is Get, failing the test on error.
func get(t *testing.T, s *ha.Store, name string) state.Record {
	t.Helper()
	r, _, err := s.Get(name)
	if err != nil {
		t.Fatalf("%s: Get(%s): %v", s.Identity(), name, err)
	}
	return r
}

// settings are an integration's settings, the sentinel among them.
func settings(n int) map[string]string {
	return map[string]string{"auth_token": sentinel + string(rune('a'+n%26)), "chat_id": "42"}
}

// pushedOf is the push of settings(n) as s computes it.
func pushedOf(s *ha.Store, n int, at time.Time) state.Pushed {
	return state.Pushed{
		Fingerprint: s.Fingerprint(id, provider, settings(n)),
		SettingMACs: s.SettingMACs(id, provider, settings(n)),
		VaultPath:   "secret/tg", VaultVersion: n, At: at,
	}
}

func attempt(result string, at time.Time) state.Attempt {
	return state.Attempt{At: at, Trigger: "schedule", Result: result, Settings: []string{"auth_token", "chat_id"}}
}

// wantNotHolder fails the test unless err is a state.ErrNotHolder.
func wantNotHolder(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, state.ErrNotHolder) {
		t.Errorf("%s: got %v, want state.ErrNotHolder", what, err)
	}
}
