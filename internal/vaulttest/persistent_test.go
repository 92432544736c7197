package vaulttest_test

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

// readK reads secret/<path> with c and returns its value of "k".
func readK(t *testing.T, c *api.Client, path string) (string, error) {
	t.Helper()
	s, err := c.KVv2("secret").Get(t.Context(), path)
	if err != nil {
		return "", err
	}
	v, _ := s.Data["k"].(string)
	return v, nil
}

func TestPersistentRestartKeepsDataAndTokens(t *testing.T) {
	s := vaulttest.PersistentForTest(t)
	ctx := t.Context()

	if v, err := s.PutKV(ctx, "secret", "restart/x", map[string]any{"k": "before"}); err != nil || v != 1 {
		t.Fatalf("write to secret/ (kv v2 mounted by StartPersistent): got version %d, %v; want 1, nil", v, err)
	}
	if err := s.WritePolicy(ctx, "restart-read", `path "secret/data/restart/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	tok, err := s.CreateToken(ctx, []string{"restart-read"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.ClientWithToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := readK(t, c, "restart/x"); err != nil || got != "before" {
		t.Fatalf("read before Restart: got %q, %v; want %q, nil", got, err, "before")
	}
	addr, root := s.Addr, s.RootToken

	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if s.Addr != addr || s.RootToken != root {
		t.Errorf("address or root token after Restart: got changed=%v/%v, want both unchanged", s.Addr != addr, s.RootToken != root)
	}
	if got, err := readK(t, c, "restart/x"); err != nil || got != "before" {
		t.Errorf("read after Restart with a token created before it: got %q, %v; want %q, nil", got, err, "before")
	}
	if v, err := s.PutKV(ctx, "secret", "restart/x", map[string]any{"k": "after"}); err != nil || v != 2 {
		t.Errorf("write after Restart with the root token: got version %d, %v; want 2, nil", v, err)
	}

	// The helpers that need server settings work on a persistent server too.
	audit := filepath.Join(t.TempDir(), "audit.log")
	if err := s.EnableFileAudit(ctx, audit); err != nil {
		t.Errorf("EnableFileAudit: got %v, want no error", err)
	}
	if err := s.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Unseal(ctx); err != nil {
		t.Fatalf("Unseal with the kept key: got %v, want no error", err)
	}
	if got, err := readK(t, c, "restart/x"); err != nil || got != "after" {
		t.Errorf("read after Seal and Unseal: got %q, %v; want %q, nil", got, err, "after")
	}
}

func TestPersistentStopAndStartProcess(t *testing.T) {
	s := vaulttest.PersistentForTest(t)
	ctx := t.Context()
	if _, err := s.PutKV(ctx, "secret", "stop/x", map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	c := s.Client()

	for i := range 2 { // the second stop does nothing
		if err := s.StopProcess(); err != nil {
			t.Fatalf("StopProcess #%d: got %v, want nil", i+1, err)
		}
	}
	_, err := readK(t, c, "stop/x")
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("read while stopped: got %v, want connection refused", err)
	}

	for i := range 2 { // the second start does nothing
		if err := s.StartProcess(ctx); err != nil {
			t.Fatalf("StartProcess #%d: got %v, want nil", i+1, err)
		}
	}
	if got, err := readK(t, c, "stop/x"); err != nil || got != "v" {
		t.Errorf("read after StartProcess: got %q, %v; want %q, nil", got, err, "v")
	}
}

func TestPersistentStopRemovesStorage(t *testing.T) {
	vaulttest.Require(t, srv) // skip with the others
	s, err := vaulttest.StartPersistent(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.StopProcess(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Stop(); err != nil {
			t.Fatalf("Stop #%d after StopProcess: got %v, want nil", i+1, err)
		}
	}
	if _, err := os.Stat(filepath.Dir(s.LogFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("server directory after Stop: got %v, want it removed", err)
	}
	if err := s.StartProcess(t.Context()); !errors.Is(err, vaulttest.ErrStopped) {
		t.Errorf("StartProcess after Stop: got %v, want ErrStopped", err)
	}
	if err := s.Restart(t.Context()); !errors.Is(err, vaulttest.ErrStopped) {
		t.Errorf("Restart after Stop: got %v, want ErrStopped", err)
	}
}

func TestDevServerIsNotRestartable(t *testing.T) {
	s := vaulttest.Require(t, srv)
	ctx := t.Context()
	if err := s.StopProcess(); !errors.Is(err, vaulttest.ErrNotPersistent) {
		t.Errorf("StopProcess on a dev server: got %v, want ErrNotPersistent", err)
	}
	if err := s.StartProcess(ctx); !errors.Is(err, vaulttest.ErrNotPersistent) {
		t.Errorf("StartProcess on a dev server: got %v, want ErrNotPersistent", err)
	}
	if err := s.Restart(ctx); !errors.Is(err, vaulttest.ErrNotPersistent) {
		t.Errorf("Restart on a dev server: got %v, want ErrNotPersistent", err)
	}
	if _, err := s.PutKV(ctx, "secret", "still-running", map[string]any{"k": "v"}); err != nil {
		t.Errorf("write after the refused calls: got %v, want the dev server still running", err)
	}
}

func TestShortLivedTokens(t *testing.T) {
	s := vaulttest.Require(t, srv)
	ctx := t.Context()
	tok, err := s.CreateTokenWith(ctx, &api.TokenCreateRequest{TTL: "30s", ExplicitMaxTTL: "60s"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.ClientWithToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := c.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ttl, _ := sec.TokenTTL()
	if ttl <= 0 || ttl > 30*time.Second {
		t.Errorf("CreateTokenWith ttl: got %v, want in (0, 30s]", ttl)
	}
	if got := sec.Data["explicit_max_ttl"]; fmtNumber(got) != "60" {
		t.Errorf("CreateTokenWith explicit_max_ttl: got %v, want 60", got)
	}

	mount := "approle-ttl-" + uniq()
	roleID, secretID, err := s.EnableAppRole(ctx, mount, "short", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetAppRoleTTL(ctx, mount, "short", 5*time.Second, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	login, err := s.Client().Logical().WriteWithContext(ctx, "auth/"+mount+"/login",
		map[string]any{"role_id": roleID, "secret_id": secretID})
	if err != nil {
		t.Fatalf("approle login after SetAppRoleTTL: %v", err)
	}
	if got := login.Auth.LeaseDuration; got != 5 {
		t.Errorf("approle token ttl: got %ds, want 5s", got)
	}
	if !login.Auth.Renewable {
		t.Error("approle token renewable: got false, want true")
	}
}

// fmtNumber prints a JSON number (json.Number or float64) without decimals.
func fmtNumber(v any) string {
	switch n := v.(type) {
	case interface{ String() string }:
		return n.String()
	case float64:
		return strconv.FormatFloat(n, 'f', -1, 64)
	}
	return "?"
}
