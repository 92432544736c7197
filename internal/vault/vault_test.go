package vault_test

// Tests against the real OpenBao server of TestMain (and, for sealing and
// an unreachable Vault, servers of their own).

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/vault"
	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

func TestTokenLogin(t *testing.T) {
	s := vaulttest.Require(t, srv)
	ctx := t.Context()
	h := newHarness(t)
	tok, err := s.CreateToken(ctx, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bad := "s.not-a-real-token-" + sentinel
	h.secret(tok, bad, s.RootToken)

	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "VAULT_TOKEN" {
				return v
			}
			return ""
		}
	}
	tests := []struct {
		name          string
		tokenFile     string // content; "" means no token_file
		noFile        bool   // token_file names a missing file
		getenv        func(string) string
		wantKind      vault.Kind // KindOther means success
		wantRenewable bool
		wantInErr     string
	}{
		{name: "from file, trimmed", tokenFile: "\n  " + tok + " \n", wantRenewable: true},
		{name: "from VAULT_TOKEN", getenv: env(tok), wantRenewable: true},
		{name: "file wins over VAULT_TOKEN", tokenFile: tok, getenv: env(bad), wantRenewable: true},
		{name: "root token: not renewable, no ttl", tokenFile: s.RootToken},
		{name: "bad token in file", tokenFile: bad, wantKind: vault.KindUnauthenticated, wantInErr: "token is invalid, expired or revoked"},
		{name: "bad token in VAULT_TOKEN", getenv: env(bad), wantKind: vault.KindUnauthenticated},
		{name: "empty file", tokenFile: " \n", wantKind: vault.KindInvalid, wantInErr: "is empty"},
		{name: "missing file", noFile: true, wantKind: vault.KindInvalid, wantInErr: "read token_file: open "},
		{name: "no file and no VAULT_TOKEN", wantKind: vault.KindInvalid, wantInErr: "VAULT_TOKEN is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tokenCfg(s.Addr, "")
			switch {
			case tt.noFile:
				cfg.Auth.TokenFile = t.TempDir() + "/missing-token"
			case tt.tokenFile != "":
				cfg.Auth.TokenFile = writeFile(t, "token", tt.tokenFile)
			}
			c := h.client(cfg, tt.getenv)
			err := h.seen(c.Login(ctx))
			if tt.wantKind == vault.KindOther {
				if err != nil {
					t.Fatalf("Login: got %v, want no error", err)
				}
				if !c.Authenticated() {
					t.Error("Authenticated after Login: got false, want true")
				}
				renewable, ttl := c.AuthInfo()
				if renewable != tt.wantRenewable {
					t.Errorf("AuthInfo renewable: got %v, want %v", renewable, tt.wantRenewable)
				}
				if tt.wantRenewable && (ttl <= 0 || ttl > time.Hour) {
					t.Errorf("AuthInfo ttl: got %v, want in (0, 1h]", ttl)
				}
				if !tt.wantRenewable && ttl != 0 {
					t.Errorf("AuthInfo ttl of the root token: got %v, want 0", ttl)
				}
				return
			}
			e := wantKind(t, err, tt.wantKind, nil)
			if e.Op != "login" || e.Method != "token" {
				t.Errorf("error op/method: got %q/%q, want login/token", e.Op, e.Method)
			}
			if !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("error: got %q, want it to contain %q", err, tt.wantInErr)
			}
			if tt.noFile && !strings.Contains(err.Error(), cfg.Auth.TokenFile) {
				t.Errorf("error: got %q, want it to name %s", err, cfg.Auth.TokenFile)
			}
			if c.Authenticated() {
				t.Error("Authenticated after a failed Login: got true, want false")
			}
		})
	}
}

func TestProcessVaultTokenIsNotUsedImplicitly(t *testing.T) {
	s := vaulttest.Require(t, srv)
	ctx := t.Context()
	h := newHarness(t)
	h.secret(s.RootToken)
	if _, err := s.PutKV(ctx, "secret", "implicit/x", map[string]any{"k": sentinel}); err != nil {
		t.Fatal(err)
	}
	// vault/api's NewClient takes $VAULT_TOKEN by itself: it must not be
	// used by a client that is told where its token comes from.
	t.Setenv("VAULT_TOKEN", s.RootToken)
	tests := []struct {
		name     string
		cfg      config.Vault
		wantKind vault.Kind
	}{
		{"token method, Getenv without VAULT_TOKEN", tokenCfg(s.Addr, ""), vault.KindInvalid},
		{"approle with a wrong secret id", config.Vault{Address: s.Addr, Auth: config.VaultAuth{
			Method: "approle", RoleID: "nope", SecretIDFile: writeFile(t, "sid", "wrong")}}, vault.KindUnauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h.client(tt.cfg, nil)
			kv, err := c.ReadKV(ctx, "secret", "implicit/x", 2)
			h.note(err)
			if err == nil {
				t.Fatalf("ReadKV: got data (version %d), want a login error", kv.Version)
			}
			if e := wantKind(t, err, tt.wantKind, nil); e.Op != "login" {
				t.Errorf("op: got %q, want login", e.Op)
			}
		})
	}
}

func TestAppRoleLogin(t *testing.T) {
	s := vaulttest.Require(t, srv)
	ctx := t.Context()
	h := newHarness(t)
	if _, err := s.PutKV(ctx, "secret", "approle/app", map[string]any{"api_key": sentinel}); err != nil {
		t.Fatal(err)
	}
	if err := s.WritePolicy(ctx, "approle-app", `path "secret/data/approle/app" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	roleID, secretID, err := s.EnableAppRole(ctx, "approle-custom", "rotator", []string{"approle-app"})
	if err != nil {
		t.Fatal(err)
	}
	h.secret(secretID)
	goodFile := writeFile(t, "secret-id", secretID+"\n")

	tests := []struct {
		name      string
		auth      config.VaultAuth
		wantKind  vault.Kind // KindOther: success
		wantInErr []string
	}{
		{name: "secret id from file", auth: config.VaultAuth{Mount: "approle-custom", RoleID: roleID, SecretIDFile: goodFile}},
		{name: "mount with slashes", auth: config.VaultAuth{Mount: "/approle-custom/", RoleID: roleID, SecretIDFile: goodFile}},
		{name: "wrong secret id", auth: config.VaultAuth{Mount: "approle-custom", RoleID: roleID, SecretIDFile: writeFile(t, "wrong", "wrong-"+sentinel)},
			wantKind: vault.KindUnauthenticated, wantInErr: []string{"login with approle at auth/approle-custom: unauthenticated: invalid role or secret ID"}},
		{name: "default mount not enabled", auth: config.VaultAuth{RoleID: roleID, SecretIDFile: goodFile},
			wantKind: vault.KindUnauthenticated, wantInErr: []string{"at auth/approle:", "permission denied", "is the approle auth method enabled at auth/approle?"}},
		{name: "missing secret_id_file", auth: config.VaultAuth{Mount: "approle-custom", RoleID: roleID, SecretIDFile: "/nonexistent/secret-id"},
			wantKind: vault.KindInvalid, wantInErr: []string{"read secret_id_file: open /nonexistent/secret-id: no such file or directory"}},
		{name: "empty secret_id_file", auth: config.VaultAuth{Mount: "approle-custom", RoleID: roleID, SecretIDFile: writeFile(t, "empty", "\n")},
			wantKind: vault.KindInvalid, wantInErr: []string{"secret_id_file", "is empty"}},
		{name: "no role_id", auth: config.VaultAuth{Mount: "approle-custom", SecretIDFile: goodFile},
			wantKind: vault.KindInvalid, wantInErr: []string{"auth.role_id is empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.auth.Method = "approle"
			c := h.client(config.Vault{Address: s.Addr, Auth: tt.auth}, nil)
			err := h.seen(c.Login(ctx))
			if tt.wantKind != vault.KindOther {
				wantKind(t, err, tt.wantKind, nil)
				for _, want := range tt.wantInErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error: got %q, want it to contain %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Login: got %v, want no error", err)
			}
			renewable, ttl := c.AuthInfo()
			if !renewable || ttl <= 0 {
				t.Errorf("AuthInfo: got renewable=%v ttl=%v, want true and > 0", renewable, ttl)
			}
			kv, err := c.ReadKV(ctx, "secret", "approle/app", 2)
			if err != nil {
				t.Fatalf("ReadKV allowed by the role's policy: %v", h.seen(err))
			}
			if got := kv.Data["api_key"].Reveal(); got != sentinel {
				t.Error("ReadKV api_key: got a different value, want the one written")
			}
		})
	}
}

func TestReadKV(t *testing.T) {
	s := vaulttest.Require(t, srv)
	ctx := t.Context()
	h := newHarness(t)
	if err := s.EnableKV(ctx, "kv1", 1); err != nil {
		t.Fatal(err)
	}
	p := uniq("ocamba") // new paths on each run
	// Vault runs on this machine: its clock is ours, give or take a second.
	written := time.Now().Add(-time.Second)
	if _, err := s.PutKV(ctx, "secret", p+"/twilio", map[string]any{"auth_token": "old", "account_sid": "AC1"}); err != nil {
		t.Fatal(err)
	}
	if v, err := s.PutKV(ctx, "secret", p+"/twilio", map[string]any{"auth_token": sentinel, "account_sid": "AC1"}); err != nil || v != 2 {
		t.Fatalf("second write: got version %d, %v; want 2", v, err)
	}
	if _, err := s.PutKV(ctx, "kv1", p+"/legacy", map[string]any{"api_key": sentinel}); err != nil {
		t.Fatal(err)
	}
	mixed := map[string]any{
		"api_key": sentinel,
		"port":    8443,
		"ratio":   0.5,
		"enabled": true,
		"nested":  map[string]any{"inner": sentinel},
		"list":    []any{sentinel},
		"nothing": nil,
	}
	if _, err := s.PutKV(ctx, "secret", p+"/mixed", mixed); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutKV(ctx, "kv1", p+"/mixed", mixed); err != nil {
		t.Fatal(err)
	}

	c := h.client(tokenCfg(s.Addr, writeFile(t, "token", s.RootToken)), nil)
	h.secret(s.RootToken)

	tests := []struct {
		name          string
		mount, path   string
		kvVersion     int
		wantVersion   int
		wantKVVersion int
		wantData      map[string]string
		wantNonString map[string]string
	}{
		{"kv v2, second version", "secret", p + "/twilio", 2, 2, 2,
			map[string]string{"auth_token": sentinel, "account_sid": "AC1"}, map[string]string{}},
		{"kv version 0 means 2", "secret", p + "/twilio", 0, 2, 2,
			map[string]string{"auth_token": sentinel, "account_sid": "AC1"}, map[string]string{}},
		{"slashes trimmed", "/secret/", "/" + p + "/twilio/", 2, 2, 2,
			map[string]string{"auth_token": sentinel, "account_sid": "AC1"}, map[string]string{}},
		{"kv v1", "kv1", p + "/legacy", 1, 0, 1,
			map[string]string{"api_key": sentinel}, map[string]string{}},
		{"kv v2 non-string values", "secret", p + "/mixed", 2, 1, 2,
			map[string]string{"api_key": sentinel},
			map[string]string{"port": "number", "ratio": "number", "enabled": "boolean", "nested": "object", "list": "array", "nothing": "null"}},
		{"kv v1 non-string values", "kv1", p + "/mixed", 1, 0, 1,
			map[string]string{"api_key": sentinel},
			map[string]string{"port": "number", "ratio": "number", "enabled": "boolean", "nested": "object", "list": "array", "nothing": "null"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kv, err := c.ReadKV(ctx, tt.mount, tt.path, tt.kvVersion)
			if err != nil {
				t.Fatalf("ReadKV: %v", h.seen(err))
			}
			if kv.Version != tt.wantVersion || kv.KVVersion != tt.wantKVVersion {
				t.Errorf("version, kv version: got %d, %d; want %d, %d", kv.Version, kv.KVVersion, tt.wantVersion, tt.wantKVVersion)
			}
			switch now := time.Now().Add(time.Second); {
			case kv.KVVersion == 1 && !kv.Created.IsZero():
				t.Errorf("created: got %v for KV v1, want zero", kv.Created)
			case kv.KVVersion == 2 && (kv.Created.Before(written) || kv.Created.After(now)):
				t.Errorf("created: got %v, want between %v and %v", kv.Created, written, now)
			}
			if kv.Mount != strings.Trim(tt.mount, "/") || kv.Path != strings.Trim(tt.path, "/") {
				t.Errorf("mount, path: got %q, %q; want them without slashes", kv.Mount, kv.Path)
			}
			if len(kv.Data) != len(tt.wantData) {
				t.Errorf("data keys: got %d, want %d", len(kv.Data), len(tt.wantData))
			}
			for k, want := range tt.wantData {
				got, ok := kv.Data[k]
				if !ok || got.Reveal() != want {
					t.Errorf("data[%q]: present=%v, equal=%v; want present and equal", k, ok, ok && got.Reveal() == want)
				}
			}
			if fmt.Sprint(kv.NonString) != fmt.Sprint(tt.wantNonString) {
				t.Errorf("NonString: got %v, want %v", kv.NonString, tt.wantNonString)
			}
			// Every printed form of the result is free of the sentinel.
			h.note(fmt.Errorf("%v %+v %#v", kv, kv, kv))
		})
	}
}

func TestReadKVNotFound(t *testing.T) {
	s := vaulttest.Require(t, srv)
	ctx := t.Context()
	h := newHarness(t)
	if err := s.EnableKV(ctx, "kv1-notfound", 1); err != nil {
		t.Fatal(err)
	}
	nf := uniq("nf") // new paths on each run
	for _, p := range []string{nf + "/deleted", nf + "/destroyed"} {
		for range 3 {
			if _, err := s.PutKV(ctx, "secret", p, map[string]any{"k": sentinel}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.DeleteKV(ctx, "secret", nf+"/deleted"); err != nil {
		t.Fatal(err)
	}
	if err := s.DestroyKV(ctx, "secret", nf+"/destroyed", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutKV(ctx, "secret", nf+"/v2only", map[string]any{"k": sentinel}); err != nil {
		t.Fatal(err)
	}
	c := h.client(tokenCfg(s.Addr, writeFile(t, "token", s.RootToken)), nil)
	h.secret(s.RootToken)

	tests := []struct {
		name        string
		mount, path string
		kvVersion   int
		wantMsg     string
	}{
		{"kv v2 missing", "secret", nf + "/missing", 2, "read secret/" + nf + "/missing (kv v2): not found"},
		{"kv v2 current version deleted", "secret", nf + "/deleted", 2, "read secret/" + nf + "/deleted (kv v2): not found: current version 3 is deleted"},
		{"kv v2 current version destroyed", "secret", nf + "/destroyed", 2, "read secret/" + nf + "/destroyed (kv v2): not found: current version 3 is destroyed"},
		{"kv v1 missing", "kv1-notfound", nf + "/missing", 1, "read kv1-notfound/" + nf + "/missing (kv v1): not found"},
		{"missing mount (root token: no policy to deny it)", "no-such-mount", "x", 2, "read no-such-mount/x (kv v2): not found"},
		{"kv v2 mount read as kv v1", "secret", nf + "/v2only", 1, "read secret/" + nf + "/v2only (kv v1): not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := h.obs.count("read/error")
			_, err := c.ReadKV(ctx, tt.mount, tt.path, tt.kvVersion)
			h.note(err)
			wantKind(t, err, vault.KindNotFound, vault.ErrNotFound)
			if !strings.HasPrefix(err.Error(), tt.wantMsg) {
				t.Errorf("error: got %q, want it to start with %q", err, tt.wantMsg)
			}
			if got := h.obs.count("read/error") - before; got != 1 {
				t.Errorf("observed read errors: got %d, want 1", got)
			}
		})
	}
}

func TestReadKVPermissionDenied(t *testing.T) {
	s := vaulttest.Require(t, srv)
	ctx := t.Context()
	h := newHarness(t)
	for _, p := range []string{"pd/allowed", "pd/denied"} {
		if _, err := s.PutKV(ctx, "secret", p, map[string]any{"k": sentinel}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.WritePolicy(ctx, "pd-reader", `path "secret/data/pd/allowed" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	tok, err := s.CreateToken(ctx, []string{"pd-reader"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	h.secret(tok)
	c := h.client(tokenCfg(s.Addr, writeFile(t, "token", tok)), nil)
	if err := c.Login(ctx); err != nil {
		t.Fatal(h.seen(err))
	}
	if _, err := c.ReadKV(ctx, "secret", "pd/allowed", 2); err != nil {
		t.Fatalf("allowed path: got %v, want no error", h.seen(err))
	}
	loginsBefore := h.obs.count("login/ok") + h.obs.count("login/error")

	_, err = c.ReadKV(ctx, "secret", "pd/denied", 2)
	h.note(err)
	wantKind(t, err, vault.KindPermissionDenied, vault.ErrPermissionDenied)
	if got, want := err.Error(), "read secret/pd/denied (kv v2): permission denied"; got != want {
		t.Errorf("error: got %q, want %q", got, want)
	}
	if !c.Authenticated() {
		t.Error("Authenticated after a policy denial: got false, want true")
	}
	// The denial costs one token look-up (the token is valid), no login.
	if got := h.obs.count("login/ok") + h.obs.count("login/error") - loginsBefore; got != 1 {
		t.Errorf("login-side requests after the denial: got %d, want 1 (the look-up)", got)
	}
}

func TestReadKVLogsInAgainWhenTheTokenIsRevoked(t *testing.T) {
	s := vaulttest.ForTest(t) // RevokeAllTokens must not disturb other tests
	ctx := t.Context()
	h := newHarness(t)
	h.secret(s.RootToken)
	if _, err := s.PutKV(ctx, "secret", "re/app", map[string]any{"k": sentinel}); err != nil {
		t.Fatal(err)
	}
	if err := s.WritePolicy(ctx, "re-app", `path "secret/data/re/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}

	t.Run("approle logs in again once", func(t *testing.T) {
		roleID, secretID, err := s.EnableAppRole(ctx, "approle", "re", []string{"re-app"})
		if err != nil {
			t.Fatal(err)
		}
		h.secret(secretID)
		c := h.client(config.Vault{Address: s.Addr, Auth: config.VaultAuth{
			Method: "approle", RoleID: roleID, SecretIDFile: writeFile(t, "sid", secretID)}}, nil)
		// No explicit Login: the first read logs in.
		if _, err := c.ReadKV(ctx, "secret", "re/app", 2); err != nil {
			t.Fatalf("first read: %v", h.seen(err))
		}
		if n, err := s.RevokeAllTokens(ctx); err != nil || n == 0 {
			t.Fatalf("revoke: got %d, %v; want at least one token revoked", n, err)
		}
		const readers = 4
		var wg sync.WaitGroup
		errs := make([]error, readers)
		for i := range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = c.ReadKV(ctx, "secret", "re/app", 2)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("read #%d after revocation: got %v, want the client to log in again", i, h.seen(err))
			}
		}
		if !c.Authenticated() {
			t.Error("Authenticated after logging in again: got false, want true")
		}
		if got := h.obs.count("login/ok"); got < 2 {
			t.Errorf("successful logins: got %d, want at least 2", got)
		}
	})

	t.Run("token method re-reads token_file", func(t *testing.T) {
		old, err := s.CreateToken(ctx, []string{"re-app"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		h.secret(old)
		file := writeFile(t, "token", old)
		c := h.client(tokenCfg(s.Addr, file), nil)
		if _, err := c.ReadKV(ctx, "secret", "re/app", 2); err != nil {
			t.Fatalf("first read: %v", h.seen(err))
		}
		if err := s.RevokeToken(ctx, old); err != nil {
			t.Fatal(err)
		}
		_, err = c.ReadKV(ctx, "secret", "re/app", 2)
		h.note(err)
		wantKind(t, err, vault.KindUnauthenticated, vault.ErrUnauthenticated)
		if !strings.Contains(err.Error(), "token no longer valid, and login again failed") {
			t.Errorf("error: got %q, want it to say the token is no longer valid", err)
		}
		if c.Authenticated() {
			t.Error("Authenticated with a revoked token: got true, want false")
		}

		fresh, err := s.CreateToken(ctx, []string{"re-app"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		h.secret(fresh)
		if err := os.WriteFile(file, []byte(fresh), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ReadKV(ctx, "secret", "re/app", 2); err != nil {
			t.Fatalf("read after the token file was renewed: got %v, want no error", h.seen(err))
		}
	})
}

func TestSealed(t *testing.T) {
	s := vaulttest.ForTest(t) // sealing must not disturb other tests
	ctx := t.Context()
	h := newHarness(t)
	h.secret(s.RootToken)
	if _, err := s.PutKV(ctx, "secret", "sealed/x", map[string]any{"k": sentinel}); err != nil {
		t.Fatal(err)
	}
	c := h.client(tokenCfg(s.Addr, writeFile(t, "token", s.RootToken)), nil)
	if err := c.Login(ctx); err != nil {
		t.Fatal(h.seen(err))
	}
	if err := s.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Unseal(context.Background()) })

	_, err := c.ReadKV(ctx, "secret", "sealed/x", 2)
	h.note(err)
	wantKind(t, err, vault.KindSealed, vault.ErrSealed)
	if got, want := err.Error(), "read secret/sealed/x (kv v2): vault is sealed"; got != want {
		t.Errorf("error: got %q, want %q", got, want)
	}
	err = h.seen(c.Login(ctx))
	wantKind(t, err, vault.KindSealed, vault.ErrSealed)
	if !c.Authenticated() {
		t.Error("Authenticated while sealed: got false, want the earlier login to stand")
	}

	if err := s.Unseal(ctx); err != nil {
		t.Fatal(err)
	}
	kv, err := c.ReadKV(ctx, "secret", "sealed/x", 2)
	if err != nil {
		t.Fatalf("read after Unseal: got %v, want no error", h.seen(err))
	}
	if kv.Version != 1 {
		t.Errorf("version after Unseal: got %d, want 1", kv.Version)
	}
}

func TestUnreachable(t *testing.T) {
	vaulttest.Require(t, srv) // skip with the others
	h := newHarness(t)
	ctx := t.Context()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	_ = l.Close()

	t.Run("login to a closed port", func(t *testing.T) {
		c := h.client(tokenCfg(closed, writeFile(t, "token", sentinel)), nil)
		err := h.seen(c.Login(ctx))
		wantKind(t, err, vault.KindUnreachable, vault.ErrUnreachable)
		want := "login with token: vault unreachable at " + closed + ": dial tcp " + strings.TrimPrefix(closed, "http://")
		if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("error: got %q, want it to start with %q and say connection refused", err, want)
		}
	})

	t.Run("read from a server that stopped", func(t *testing.T) {
		s := vaulttest.ForTest(t)
		h.secret(s.RootToken)
		c := h.client(tokenCfg(s.Addr, writeFile(t, "token", s.RootToken)), nil)
		if err := c.Login(ctx); err != nil {
			t.Fatal(h.seen(err))
		}
		if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
		_, err := c.ReadKV(ctx, "secret", "x", 2)
		h.note(err)
		e := wantKind(t, err, vault.KindUnreachable, vault.ErrUnreachable)
		if e.Op != "read" {
			t.Errorf("op: got %q, want read", e.Op)
		}
		want := "read secret/x (kv v2): vault unreachable at " + s.Addr + ": "
		if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("error: got %q, want it to start with %q and say connection refused", err, want)
		}
	})
}

func TestNamespace(t *testing.T) {
	s := vaulttest.Require(t, srv)
	ctx := t.Context()
	h := newHarness(t)
	h.secret(s.RootToken)
	if err := s.CreateNamespace(ctx, "team-a"); err != nil {
		if errors.Is(err, vaulttest.ErrNoNamespaces) {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	nsc := s.Client().WithNamespace("team-a")
	mount := uniq("nskv")
	if err := nsc.Sys().MountWithContext(ctx, mount, &api.MountInput{Type: "kv", Options: map[string]string{"version": "2"}}); err != nil {
		t.Fatal(err)
	}
	var err error
	for range 200 { // a new kv v2 mount takes a moment to accept writes
		if _, err = nsc.KVv2(mount).Put(ctx, "app", map[string]any{"k": sentinel}); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("write in namespace: %v", err)
	}
	file := writeFile(t, "token", s.RootToken)

	cfg := tokenCfg(s.Addr, file)
	cfg.Namespace = "team-a"
	kv, err := h.client(cfg, nil).ReadKV(ctx, mount, "app", 2)
	if err != nil {
		t.Fatalf("read in namespace team-a: %v", h.seen(err))
	}
	if kv.Data["k"].Reveal() != sentinel {
		t.Error("read in namespace: got another value, want the one written there")
	}

	_, err = h.client(tokenCfg(s.Addr, file), nil).ReadKV(ctx, mount, "app", 2)
	h.note(err)
	if err == nil {
		t.Error("read without the namespace: got data, want an error (the mount is in team-a)")
	}
}
