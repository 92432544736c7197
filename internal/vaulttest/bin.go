// Package vaulttest runs a real Vault-compatible server (OpenBao 2.4.0) for
// tests: it builds or reuses the bao binary, starts one server on a free
// loopback port, waits for it to be healthy, offers helpers to set it up (KV
// mounts, policies, tokens, AppRole, seal, audit, namespaces) and stops it
// with its whole process group.
//
// Start runs a dev server (in-memory storage). StartPersistent runs a
// non-dev server with file storage, initialised and unsealed by the
// package, which StopProcess, StartProcess and Restart stop and start again
// on the same address with its data and tokens intact, for tests of a
// Vault that goes away and comes back.
//
// Typical use, one server per test package:
//
//	var srv *vaulttest.Server
//
//	func TestMain(m *testing.M) {
//		os.Exit(vaulttest.ForMain(m, func(s *vaulttest.Server) int {
//			srv = s
//			return m.Run()
//		}))
//	}
//
//	func TestSomething(t *testing.T) {
//		s := vaulttest.Require(t, srv) // skips when ROTATOR_SKIP_VAULT=1 outside CI
//		...
//	}
//
// or one server per test with ForTest or PersistentForTest. Setting
// ROTATOR_SKIP_VAULT=1 skips those tests, except in CI (CI=true), where they
// never skip.
package vaulttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
)

// Environment variables read by this package.
const (
	// EnvBin names a bao binary to use instead of <repo root>/.cache/bin/bao.
	EnvBin = "ROTATOR_BAO_BIN"
	// EnvSkip set to "1" skips the tests that need a server, except in CI.
	EnvSkip = "ROTATOR_SKIP_VAULT"
	// EnvCI is "true" in CI, where tests never skip.
	EnvCI = "CI"
)

// BaoVersion is the OpenBao release built from tools/bao.
const BaoVersion = "2.4.0"

// baoPackage is the main package built from the tools/bao module.
const baoPackage = "github.com/openbao/openbao"

// ErrNoRepoRoot is returned by BinPath when no directory above the working
// directory holds tools/bao/go.mod.
var ErrNoRepoRoot = errors.New("no repository root (a directory holding tools/bao/go.mod) above the working directory")

// BinPath returns the server binary to run, the first of: $ROTATOR_BAO_BIN;
// <repo root>/.cache/bin/bao when it exists; `bao` on PATH (OpenBao), then
// `vault` on PATH (HashiCorp Vault, see IsVault); else <repo root>/.cache/bin/bao
// built from <repo root>/tools/bao. This is the order of scripts/bao.sh,
// which `make test` runs first. The build goes to a temporary file that is
// renamed into place, and a lock file keeps test packages that race for it
// from building it twice. The repo root is the nearest directory above the
// working directory that holds tools/bao/go.mod. A cold build takes minutes;
// `make test` and CI build it first, with progress.
func BinPath() (string, error) {
	return binPath(context.Background())
}

func binPath(ctx context.Context) (string, error) {
	if p := os.Getenv(EnvBin); p != "" {
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("check %s: %w", EnvBin, err)
		}
		return p, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("get working directory: %w", err)
	}
	root, err := repoRoot(wd)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(root, ".cache", "bin", "bao")
	if checkExecutable(bin) == nil {
		return bin, nil
	}
	for _, name := range []string{"bao", "vault"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	if err := build(ctx, root, bin); err != nil {
		return "", err
	}
	return bin, nil
}

// vaultFlavor caches IsVault by binary path.
var vaultFlavor sync.Map // string -> bool

// IsVault reports whether bin is HashiCorp Vault rather than OpenBao: its
// `version` output begins with "Vault ". The helpers then leave out the
// OpenBao-only setting unsafe_allow_api_audit_creation (Vault allows API
// audit devices anyway), turn mlock off in StartPersistent's file, and
// CreateNamespace returns ErrNoNamespaces (namespaces are a Vault Enterprise
// feature). Only OpenBao, the server CI runs, is tested here.
func IsVault(bin string) bool {
	if v, ok := vaultFlavor.Load(bin); ok {
		return v.(bool)
	}
	out, _ := exec.Command(bin, "version").Output()
	is := bytes.HasPrefix(bytes.TrimSpace(out), []byte("Vault "))
	vaultFlavor.Store(bin, is)
	return is
}

// repoRoot walks up from dir to the directory holding tools/bao/go.mod.
func repoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", dir, err)
	}
	for {
		if fi, err := os.Stat(filepath.Join(dir, "tools", "bao", "go.mod")); err == nil && fi.Mode().IsRegular() {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNoRepoRoot
		}
		dir = parent
	}
}

// checkExecutable reports why p is not an executable regular file.
func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", p)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", p)
	}
	return nil
}

// build compiles bao into bin: into a temporary file in bin's directory,
// then renamed over bin, under an exclusive lock on a lock file beside it.
func build(ctx context.Context, root, bin string) error {
	dir := filepath.Dir(bin)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	unlock, err := lockFile(filepath.Join(dir, ".bao.lock"))
	if err != nil {
		return fmt.Errorf("lock bao build: %w", err)
	}
	defer unlock()
	// Another package may have built it while this one waited for the lock.
	if checkExecutable(bin) == nil {
		return nil
	}

	tmp, err := os.CreateTemp(dir, ".bao-*.tmp")
	if err != nil {
		return fmt.Errorf("create temporary binary: %w", err)
	}
	tmpName := tmp.Name()
	_ = tmp.Close()
	defer func() { _ = os.Remove(tmpName) }() // fails (harmlessly) once renamed

	gobin, err := exec.LookPath("go") // `go test` puts its own toolchain's first on PATH
	if err != nil {
		return fmt.Errorf("find the go command: %w", err)
	}
	cmd := exec.CommandContext(ctx, gobin, "build", "-trimpath",
		"-ldflags", "-s -w -X github.com/openbao/openbao/version.fullVersion="+BaoVersion,
		"-o", tmpName, baoPackage)
	cmd.Dir = filepath.Join(root, "tools", "bao")
	cmd.Env = append(os.Environ(), "GOWORK=off")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("build bao in %s: %w\n%s", cmd.Dir, err, tail(out.Bytes(), 40))
	}
	if err := os.Chmod(tmpName, 0o755); err != nil {
		return fmt.Errorf("make bao executable: %w", err)
	}
	if err := os.Rename(tmpName, bin); err != nil {
		return fmt.Errorf("move bao into place: %w", err)
	}
	return nil
}
