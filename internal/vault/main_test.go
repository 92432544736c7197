package vault_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/testkit"
	"github.com/ocamba-rotator/rotator/internal/vault"
	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

// srv is the package's OpenBao server, started by ForMain.
var srv *vaulttest.Server

func TestMain(m *testing.M) {
	os.Exit(vaulttest.ForMain(m, func(s *vaulttest.Server) int {
		srv = s
		return m.Run()
	}))
}

// sentinel is the secret value planted in Vault by the tests: it must never
// appear in an error or a log line.
const sentinel = "SENTINEL-vault-9c41e7-must-not-leak"

type syncBuffer = testkit.SyncBuffer

// observed records Options.Observe calls.
type observed struct {
	mu    sync.Mutex
	calls []string // "operation/result"
}

func (o *observed) observe(op, result string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, op+"/"+result)
}

// count returns how many calls were op/result.
func (o *observed) count(call string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, c := range o.calls {
		if c == call {
			n++
		}
	}
	return n
}

func (o *observed) total() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.calls)
}

// harness builds clients whose logs and errors are checked, when the test
// ends, for every secret it was told of (the sentinel always).
type harness struct {
	t       *testing.T
	logs    *syncBuffer
	obs     *observed
	mu      sync.Mutex
	secrets []string
	texts   []string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, logs: &syncBuffer{}, obs: &observed{}, secrets: []string{sentinel}}
	t.Cleanup(h.checkNoLeak)
	return h
}

// secret registers values that must not leak (tokens, secret ids, JWTs).
func (h *harness) secret(vals ...string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.secrets = append(h.secrets, vals...)
}

// seen records an error for the leak check and returns it.
func (h *harness) seen(err error) error {
	h.note(err)
	return err
}

// note records an error for the leak check.
func (h *harness) note(err error) {
	if err != nil {
		h.mu.Lock()
		h.texts = append(h.texts, err.Error())
		h.mu.Unlock()
	}
}

func (h *harness) checkNoLeak() {
	h.mu.Lock()
	defer h.mu.Unlock()
	texts := append([]string{h.logs.String()}, h.texts...)
	for _, text := range texts {
		for i, s := range h.secrets {
			if s != "" && strings.Contains(text, s) {
				// Do not print the text: it holds the secret.
				h.t.Errorf("secret #%d (of %d registered) appears in an error or log line", i, len(h.secrets))
			}
		}
	}
}

// options returns Options wired to the harness, with getenv as Getenv.
func (h *harness) options(getenv func(string) string) vault.Options {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	return vault.Options{
		Logger:  slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Observe: h.obs.observe,
		Getenv:  getenv,
	}
}

// client creates a client for cfg, failing the test on error.
func (h *harness) client(cfg config.Vault, getenv func(string) string) *vault.Client {
	h.t.Helper()
	c, err := vault.New(cfg, h.options(getenv))
	if err != nil {
		h.t.Fatalf("New: %v", h.seen(err))
	}
	return c
}

// writeFile writes content to a new file in a temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tokenCfg is a token-method config reading the token from file.
func tokenCfg(addr, file string) config.Vault {
	return config.Vault{Address: addr, Auth: config.VaultAuth{Method: "token", TokenFile: file}}
}

// wantKind fails the test unless err is a *vault.Error of kind want that
// errors.Is matches to sentinel.
func wantKind(t *testing.T, err error, want vault.Kind, sentinel error) vault.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want kind %q", want)
	}
	var e *vault.Error
	if !errors.As(err, &e) {
		t.Fatalf("got %T (%v), want *vault.Error", err, err)
	}
	if e.Kind != want {
		t.Fatalf("got kind %q (%v), want %q", e.Kind, err, want)
	}
	if sentinel != nil && !errors.Is(err, sentinel) {
		t.Errorf("errors.Is(%v, %v): got false, want true", err, sentinel)
	}
	return *e
}

// uniq returns prefix with a random suffix, for mounts and paths that must
// be new on a server shared by the package's tests (and by -count runs).
func uniq(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}
