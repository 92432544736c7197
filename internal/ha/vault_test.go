package ha_test

// Tests against a real OpenBao dev server (internal/vaulttest), through
// *vault.Client's ReadDoc and WriteDoc.

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/ha"
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

var _ ha.Vault = (*vault.Client)(nil)

// uniq returns prefix with a random suffix, for paths that must be new on
// the server the package's tests share.
func uniq(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// vaultClient returns a logged-in *vault.Client of the root token, logging
// into logs.
func vaultClient(t *testing.T, s *vaulttest.Server, logs *testkit.SyncBuffer) *vault.Client {
	t.Helper()
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte(s.RootToken), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := vault.New(config.Vault{Address: s.Addr, Auth: config.VaultAuth{Method: "token", TokenFile: file}},
		vault.Options{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatalf("vault.New: %v", err)
	}
	if err := c.Login(t.Context()); err != nil {
		t.Fatalf("Login: %v", err)
	}
	return c
}

// vaultEnv is an env on the real server, under a new path of secret/.
func vaultEnv(t *testing.T) *env {
	s := vaulttest.Require(t, srv)
	logs := &testkit.SyncBuffer{}
	e := &env{
		vault: vaultClient(t, s, logs), mount: "secret", path: uniq("rotator") + "/leases",
		clock: &clock{now: t0}, logs: logs,
	}
	e.deleteCurrent = func(t *testing.T, path string) {
		if err := s.DeleteKV(t.Context(), "secret", path); err != nil {
			t.Fatal(err)
		}
	}
	e.versions = func(t *testing.T) [][]byte { return allVersions(t, s, "secret", e.path) }
	return e
}

// allVersions returns the data of every readable version of every secret
// under path, and their metadata.
func allVersions(t *testing.T, s *vaulttest.Server, mount, path string) [][]byte {
	t.Helper()
	c := s.Client()
	var out [][]byte
	var walk func(dir string)
	walk = func(dir string) {
		list, err := c.Logical().ListWithContext(t.Context(), mount+"/metadata/"+dir)
		if err != nil {
			t.Fatalf("list %s: %v", dir, err)
		}
		if list == nil {
			return
		}
		keys, _ := list.Data["keys"].([]any)
		for _, k := range keys {
			name, _ := k.(string)
			if strings.HasSuffix(name, "/") {
				walk(dir + "/" + strings.TrimSuffix(name, "/"))
				continue
			}
			leaf := dir + "/" + name
			meta, err := c.KVv2(mount).GetMetadata(t.Context(), leaf)
			if err != nil {
				t.Fatalf("metadata of %s: %v", leaf, err)
			}
			b, _ := json.Marshal(meta.CustomMetadata)
			out = append(out, b)
			for v := 1; v <= meta.CurrentVersion; v++ {
				sec, err := c.KVv2(mount).GetVersion(t.Context(), leaf, v)
				if err != nil || sec == nil || sec.Data == nil {
					continue // deleted
				}
				b, err := json.Marshal(sec.Data)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, b)
			}
		}
	}
	walk(path)
	if len(out) == 0 {
		t.Fatalf("no secret under %s/%s", mount, path)
	}
	return out
}

func TestScenariosVault(t *testing.T) {
	vaulttest.Require(t, srv)
	runScenarios(t, vaultEnv)
}

func TestRaceBeginVault(t *testing.T) {
	e := vaultEnv(t)
	raceBegin(t, e, 3, 20, 10, 2)
	e.checkNoLeak(t)
}
