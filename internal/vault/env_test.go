package vault_test

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/vault"
)

// TestEnvironmentIgnored: the VAULT_* variables that vault/api applies by
// itself change nothing (TLS, headers, response wrapping), and each one set
// is named, without its value, in one warning.
func TestEnvironmentIgnored(t *testing.T) {
	const value = "value-not-to-log"
	ignored := map[string]string{
		"VAULT_SKIP_VERIFY":     "true",
		"VAULT_TLS_SERVER_NAME": value + ".invalid",
		"VAULT_HEADERS":         `{"X-From-Env":"` + value + `"}`,
		"VAULT_WRAP_TTL":        "5m",
		"VAULT_MAX_RETRIES":     "3",
	}
	for k, v := range ignored {
		t.Setenv(k, v) // vault/api reads the process environment
	}
	getenv := func(k string) string { return ignored[k] }
	h := newHarness(t)
	h.secret(value)
	tokenFile := writeFile(t, "token", "t-"+sentinel)
	h.secret("t-" + sentinel)

	t.Run("names of the variables set", func(t *testing.T) {
		got := vault.IgnoredEnv(getenv)
		want := []string{"VAULT_HEADERS", "VAULT_MAX_RETRIES", "VAULT_SKIP_VERIFY", "VAULT_TLS_SERVER_NAME", "VAULT_WRAP_TTL"}
		if !slices.Equal(got, want) {
			t.Errorf("IgnoredEnv: got %q, want %q", got, want)
		}
		for _, name := range vault.HonouredEnv() {
			if slices.Contains(vault.IgnoredEnv(func(k string) string { return k }), name) {
				t.Errorf("IgnoredEnv: got %s, which rotator honours", name)
			}
		}
	})

	t.Run("$VAULT_SKIP_VERIFY does not turn off the certificate check", func(t *testing.T) {
		ts := httptest.NewTLSServer(http.HandlerFunc(okVault))
		t.Cleanup(ts.Close)
		err := h.seen(h.client(tokenCfg(ts.URL, tokenFile), getenv).Login(t.Context()))
		wantKind(t, err, vault.KindUnreachable, vault.ErrUnreachable)
		if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("error: got %q, want it to be about the certificate", err)
		}
	})

	t.Run("tls_skip_verify turns it off", func(t *testing.T) {
		ts := httptest.NewTLSServer(http.HandlerFunc(okVault))
		t.Cleanup(ts.Close)
		cfg := tokenCfg(ts.URL, tokenFile)
		cfg.TLSSkipVerify = true
		if err := h.client(cfg, getenv).Login(t.Context()); err != nil {
			t.Fatalf("Login with tls_skip_verify: got %v, want no error", h.seen(err))
		}
		if n := strings.Count(h.logs.String(), "vault.tls_skip_verify is true"); n != 1 {
			t.Errorf("warnings about tls_skip_verify: got %d, want 1", n)
		}
	})

	t.Run("tls_skip_verify with ca_cert is refused", func(t *testing.T) {
		ts := httptest.NewTLSServer(http.HandlerFunc(okVault))
		t.Cleanup(ts.Close)
		cfg := tokenCfg(ts.URL, tokenFile)
		cfg.TLSSkipVerify = true
		cfg.CACert = writeFile(t, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})))
		_, err := vault.New(cfg, h.options(getenv))
		h.note(err)
		wantKind(t, err, vault.KindInvalid, vault.ErrInvalid)
		if want := "tls_skip_verify and ca_cert are both set"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error: got %v, want it to contain %q", err, want)
		}
	})

	t.Run("no header, wrapping or retry from the environment", func(t *testing.T) {
		f, ts := newFake(t, okVault)
		c := h.client(tokenCfg(ts.URL, tokenFile), getenv)
		if _, err := c.ReadKV(t.Context(), "secret", "x", 2); err != nil {
			t.Fatal(h.seen(err))
		}
		for i, r := range f.requests() {
			if got := r.Header.Get("X-From-Env"); got != "" {
				t.Errorf("request %d %s: got an X-From-Env header, want none ($VAULT_HEADERS)", i, r.Path)
			}
			if got := r.Header.Get("X-Vault-Wrap-TTL"); got != "" {
				t.Errorf("request %d %s: got X-Vault-Wrap-TTL %q, want none ($VAULT_WRAP_TTL)", i, r.Path, got)
			}
			if got := r.Header.Get("X-Vault-Request"); got != "true" {
				t.Errorf("request %d %s: got X-Vault-Request %q, want true", i, r.Path, got)
			}
		}
	})

	logs := h.logs.String()
	for name := range ignored {
		if !strings.Contains(logs, "variable="+name) {
			t.Errorf("logs: got no warning naming %s, want one per client", name)
		}
	}
	if strings.Contains(logs, value) {
		t.Error("logs: got the value of an ignored variable, want its name only")
	}
}
