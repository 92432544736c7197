package vaulttest_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

// srv is the package's server, started by ForMain.
var srv *vaulttest.Server

func TestMain(m *testing.M) {
	os.Exit(vaulttest.ForMain(m, func(s *vaulttest.Server) int {
		srv = s
		return m.Run()
	}))
}

func TestKVHelpers(t *testing.T) {
	s := vaulttest.Require(t, srv)
	ctx := t.Context()
	if err := s.EnableKV(ctx, "kv1-helpers", 1); err != nil {
		t.Fatal(err)
	}
	if err := s.EnableKV(ctx, "kv2-helpers", 2); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		mount, path string
		writes      int
		wantVersion int
	}{
		{"dev secret/ is kv v2", "secret", "helpers/a", 2, 2},
		{"new kv v2 mount", "kv2-helpers", "b", 3, 3},
		{"kv v1 has no versions", "kv1-helpers", "c", 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got int
			path := tt.path + "-" + uniq() // a new secret on each run (-count)
			for i := range tt.writes {
				v, err := s.PutKV(ctx, tt.mount, path, map[string]any{"n": i})
				if err != nil {
					t.Fatal(err)
				}
				got = v
			}
			if got != tt.wantVersion {
				t.Errorf("version after %d writes: got %d, want %d", tt.writes, got, tt.wantVersion)
			}
			if err := s.DeleteKV(ctx, tt.mount, path); err != nil {
				t.Fatal(err)
			}
		})
	}
	if _, err := s.PutKV(ctx, "sys", "x", map[string]any{"a": "b"}); err == nil {
		t.Error("PutKV on a non-kv mount: got no error, want one")
	}
	if err := s.EnableKV(ctx, "kv3", 3); err == nil {
		t.Error("EnableKV version 3: got no error, want one")
	}
}

func TestTokensPoliciesAndAppRole(t *testing.T) {
	s := vaulttest.Require(t, srv)
	ctx := t.Context()
	if _, err := s.PutKV(ctx, "secret", "pol/allowed", map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if err := s.WritePolicy(ctx, "helpers-read", `path "secret/data/pol/allowed" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	tok, err := s.CreateToken(ctx, []string{"helpers-read"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.ClientWithToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.KVv2("secret").Get(ctx, "pol/allowed"); err != nil {
		t.Errorf("read allowed by policy: got %v, want no error", err)
	}

	roleID, secretID, err := s.EnableAppRole(ctx, "approle-helpers", "r1", []string{"helpers-read"})
	if err != nil {
		t.Fatal(err)
	}
	// Enabling again (another role) must not fail on the existing mount.
	if _, _, err := s.EnableAppRole(ctx, "approle-helpers", "r2", nil); err != nil {
		t.Fatalf("second role on the same mount: %v", err)
	}
	sec, err := s.Client().Logical().WriteWithContext(ctx, "auth/approle-helpers/login",
		map[string]any{"role_id": roleID, "secret_id": secretID})
	if err != nil {
		t.Fatalf("approle login: %v", err)
	}
	if sec == nil || sec.Auth == nil || !slices.Contains(sec.Auth.Policies, "helpers-read") {
		t.Fatalf("approle login policies: got %+v, want helpers-read among them", sec.Auth)
	}

	n, err := s.RevokeAllTokens(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Errorf("revoked tokens: got %d, want at least 2 (created + approle)", n)
	}
	if _, err := c.KVv2("secret").Get(ctx, "pol/allowed"); err == nil {
		t.Error("read with a revoked token: got no error, want one")
	}
	if _, err := s.Client().Auth().Token().LookupSelfWithContext(ctx); err != nil {
		t.Errorf("root token after RevokeAllTokens: got %v, want it still valid", err)
	}
}

func TestFileAudit(t *testing.T) {
	s := vaulttest.Require(t, srv)
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := s.EnableFileAudit(ctx, path); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutKV(ctx, "secret", "audited/x", map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"path":"secret/data/audited/x"`) {
		t.Errorf("audit log: got no request for secret/data/audited/x in %d bytes", len(b))
	}
}

func TestNamespace(t *testing.T) {
	s := vaulttest.Require(t, srv)
	ctx := t.Context()
	if err := s.CreateNamespace(ctx, "helpers-ns"); err != nil {
		if errors.Is(err, vaulttest.ErrNoNamespaces) {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	c := s.Client().WithNamespace("helpers-ns")
	mount := "kvns-" + uniq()
	if err := c.Sys().MountWithContext(ctx, mount, &api.MountInput{Type: "kv", Options: map[string]string{"version": "1"}}); err != nil {
		t.Fatalf("mount in namespace: %v", err)
	}
	mounts, err := s.Client().Sys().ListMountsWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := mounts[mount+"/"]; ok {
		t.Error("mount made in a namespace: got it in the root namespace too, want it only in helpers-ns")
	}
}

func TestSealUnseal(t *testing.T) {
	s := vaulttest.ForTest(t) // its own server: sealing must not disturb the others
	ctx := t.Context()
	if err := s.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := s.Client().Sys().SealStatusWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Sealed {
		t.Fatal("after Seal: got unsealed, want sealed")
	}
	if err := s.Unseal(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutKV(ctx, "secret", "after-unseal", map[string]any{"k": "v"}); err != nil {
		t.Errorf("write after Unseal: got %v, want no error", err)
	}
}

func TestStopIsIdempotentAndLeavesNothing(t *testing.T) {
	vaulttest.Require(t, srv) // skip with the others
	s, err := vaulttest.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(s.Addr + "/v1/sys/health")
	if err != nil {
		t.Fatalf("health before Stop: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("health before Stop: got %d, want 200", resp.StatusCode)
	}
	for i := range 2 {
		if err := s.Stop(); err != nil {
			t.Fatalf("Stop #%d: got %v, want nil", i+1, err)
		}
	}
	if _, err := http.Get(s.Addr + "/v1/sys/health"); err == nil {
		t.Error("health after Stop: got an answer, want connection refused")
	}
	if _, err := os.Stat(s.LogFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("log file after Stop: got %v, want it removed", err)
	}
}

func TestBinPath(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "fake-bao")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	notExe := filepath.Join(t.TempDir(), "not-exe")
	if err := os.WriteFile(notExe, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		env     string
		wantErr bool
	}{
		{"env names an executable", exe, false},
		{"env names a missing file", filepath.Join(t.TempDir(), "nope"), true},
		{"env names a directory", t.TempDir(), true},
	}
	if runtime.GOOS != "windows" {
		tests = append(tests, struct {
			name    string
			env     string
			wantErr bool
		}{"env names a file that is not executable", notExe, true})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(vaulttest.EnvBin, tt.env)
			got, err := vaulttest.BinPath()
			if (err != nil) != tt.wantErr {
				t.Fatalf("BinPath: got error %v, want error: %v", err, tt.wantErr)
			}
			if err == nil && got != tt.env {
				t.Errorf("BinPath: got %q, want %q", got, tt.env)
			}
		})
	}
}

func TestBinPathOutsideTheRepo(t *testing.T) {
	t.Setenv(vaulttest.EnvBin, "")
	t.Chdir(t.TempDir())
	_, err := vaulttest.BinPath()
	if !errors.Is(err, vaulttest.ErrNoRepoRoot) {
		t.Errorf("BinPath outside the repository: got %v, want ErrNoRepoRoot", err)
	}
}

func TestBinPathInTheRepo(t *testing.T) {
	vaulttest.Require(t, srv) // it may build bao: skip with the server tests
	t.Setenv(vaulttest.EnvBin, "")
	got, err := vaulttest.BinPath()
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(filepath.ToSlash(got), "/.cache/bin/bao") {
		return
	}
	for _, name := range []string{"bao", "vault"} { // no .cache/bin/bao: PATH comes before a build
		if p, err := exec.LookPath(name); err == nil {
			if got != p {
				t.Errorf("BinPath: got %q, want %s on PATH, %q", got, name, p)
			}
			return
		}
	}
	t.Errorf("BinPath: got %q, want <repo root>/.cache/bin/bao", got)
}

// fakeRepo makes a directory that BinPath takes for the repository root
// (it holds tools/bao/go.mod), without .cache/bin/bao, and changes to it.
func fakeRepo(t *testing.T) {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "tools", "bao"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "tools", "bao", "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(root)
}

// fakeServer writes an executable NAME in a new directory that prints
// VERSION for `NAME version`, and returns its path.
func fakeServer(t *testing.T, name, version string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\necho '"+version+"'\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBinPathPrefersPathToABuild(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("shell scripts")
	}
	fakeRepo(t)
	t.Setenv(vaulttest.EnvBin, "")
	bao := fakeServer(t, "bao", "OpenBao v2.4.0 (cgo)")
	vault := fakeServer(t, "vault", "Vault v1.17.2 ('abc'), built 2024-07-05T15:19:12Z")

	t.Setenv("PATH", filepath.Dir(vault)+string(os.PathListSeparator)+filepath.Dir(bao))
	if got, err := vaulttest.BinPath(); err != nil || got != bao {
		t.Errorf("BinPath with bao and vault on PATH: got %q, %v; want %q (bao first)", got, err, bao)
	}
	t.Setenv("PATH", filepath.Dir(vault))
	if got, err := vaulttest.BinPath(); err != nil || got != vault {
		t.Errorf("BinPath with vault on PATH: got %q, %v; want %q", got, err, vault)
	}
	if vaulttest.IsVault(bao) || !vaulttest.IsVault(vault) {
		t.Errorf("IsVault: bao %v, vault %v; want false, true", vaulttest.IsVault(bao), vaulttest.IsVault(vault))
	}
}

// fakeTB records Skip and Fatal, which end the calling goroutine as
// testing.T's do.
type fakeTB struct {
	testing.TB
	skipped, fataled bool
	cleanups         []func()
}

func (f *fakeTB) Helper()               {}
func (f *fakeTB) Skip(...any)           { f.skipped = true; runtime.Goexit() }
func (f *fakeTB) Fatal(...any)          { f.fataled = true; runtime.Goexit() }
func (f *fakeTB) Fatalf(string, ...any) { f.fataled = true; runtime.Goexit() }
func (f *fakeTB) Cleanup(fn func())     { f.cleanups = append(f.cleanups, fn) }
func (f *fakeTB) Failed() bool          { return f.fataled }
func (f *fakeTB) Logf(string, ...any)   {}
func (f *fakeTB) Errorf(string, ...any) { f.fataled = true }

func (f *fakeTB) runCleanups() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
}

// run calls fn with f in a goroutine of its own, as a test would run.
func run(f *fakeTB, fn func(testing.TB)) {
	done := make(chan struct{})
	go func() { defer close(done); fn(f) }()
	<-done
}

func TestSkipOnlyWhenAskedAndNeverInCI(t *testing.T) {
	tests := []struct {
		name, skip, ci string
		wantSkip       bool
	}{
		{"not asked", "", "", false},
		{"asked", "1", "", true},
		{"asked with CI=false", "1", "false", true},
		{"asked in CI", "1", "true", false},
	}
	// Servers are started below only when the run itself does not skip them.
	runSkips := srv == nil
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(vaulttest.EnvSkip, tt.skip)
			t.Setenv(vaulttest.EnvCI, tt.ci)

			f := &fakeTB{TB: t}
			run(f, func(tb testing.TB) { vaulttest.Require(tb, nil) })
			if f.skipped != tt.wantSkip {
				t.Errorf("Require(nil): got skipped=%v, want %v", f.skipped, tt.wantSkip)
			}
			if !tt.wantSkip && !f.fataled {
				t.Error("Require(nil) without skipping: got no failure, want one")
			}

			if runSkips && !tt.wantSkip {
				return
			}
			f = &fakeTB{TB: t}
			var got *vaulttest.Server
			run(f, func(tb testing.TB) { got = vaulttest.ForTest(tb) })
			f.runCleanups()
			if f.skipped != tt.wantSkip {
				t.Errorf("ForTest: got skipped=%v, want %v", f.skipped, tt.wantSkip)
			}
			if !tt.wantSkip && (got == nil || f.fataled) {
				t.Errorf("ForTest: got server %v (failed=%v), want a running server", got, f.fataled)
			}
		})
	}
}

// uniq returns a random suffix for names that must be new on each run.
func uniq() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
