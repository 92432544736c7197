package runtime_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/audit"
	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/runtime"
	"github.com/ocamba-rotator/rotator/internal/state"
)

const minimal = `
vault: {address: "http://127.0.0.1:8200", auth: {token_file: /t}}
hood: {token: {env: HOOD_TOKEN}}
integrations:
  - {name: tg, id: "1", provider: telegram, source: {mount: secret, path: tg}}
`

func getenv(string) string { return "" }

// newConfig is the minimal configuration with state.path and audit.path in
// a fresh directory.
func newConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(minimal), getenv)
	if err != nil {
		t.Fatalf("Parse: got %v, want nil", err)
	}
	dir := t.TempDir()
	cfg.State.Path, cfg.Audit.Path = filepath.Join(dir, "state.db"), filepath.Join(dir, "audit.log")
	return cfg
}

func options() runtime.Options {
	return runtime.Options{Logger: slog.New(slog.DiscardHandler), Getenv: getenv, Version: "test", Limiters: hood.NewLimiters()}
}

// smtpCheck makes integrations[0] a custom_email_provider checked on
// smtp.example.com with its CA in caCert.
func smtpCheck(caCert string) func(*config.Config) {
	return func(c *config.Config) {
		in := &c.Integrations[0]
		in.Provider, in.ProviderCheck, in.SMTPHost, in.SMTPCACert = "custom_email_provider", true, "smtp.example.com", caCert
	}
}

// writeFile writes data to a new file and returns its path.
func writeFile(t *testing.T, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBuildRefuses(t *testing.T) {
	tests := []struct {
		name       string
		spoil      func(*config.Config)
		want       string
		configErr  bool // a *runtime.ConfigError (exit 2), else a file that cannot be opened (exit 1)
		stateAfter bool // state.path exists afterwards
	}{
		{"unreadable vault.ca_cert", func(c *config.Config) { c.Vault.CACert = filepath.Join(t.TempDir(), "missing.pem") }, "vault: ", true, false},
		{"hood.base_url not http", func(c *config.Config) { c.Hood.BaseURL = "ftp://api.ocamba.com" }, "hood: ", true, false},
		{"state.path in a missing directory", func(c *config.Config) { c.State.Path = filepath.Join(t.TempDir(), "no", "state.db") }, "open state: ", false, false},
		{"audit.path a directory", func(c *config.Config) { c.Audit.Path = t.TempDir() }, "open audit log: ", false, true},
		{"unreadable smtp_ca_cert", smtpCheck(filepath.Join(t.TempDir(), "missing.pem")), "integrations[0].smtp_ca_cert: open ", true, true},
		{"smtp_ca_cert holds no certificate", smtpCheck(writeFile(t, "not a certificate")), "holds no PEM certificate", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := newConfig(t)
			tt.spoil(cfg)
			rt, err := runtime.Build(context.Background(), cfg, options())
			if err == nil {
				rt.Close()
				t.Fatalf("Build: got nil error, want one saying %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Build: got %q, want it to contain %q", err, tt.want)
			}
			var ce *runtime.ConfigError
			if got := errors.As(err, &ce); got != tt.configErr {
				t.Errorf("Build: got ConfigError %v, want %v (%v)", got, tt.configErr, err)
			}
			if tt.stateAfter {
				// The state file opened before the failure was closed: it opens again.
				st, err := state.Open(cfg.State.Path)
				if err != nil {
					t.Fatalf("state.Open after the failed Build: got %v, want nil", err)
				}
				st.Close()
			}
		})
	}
}

// TestBuildOpensOnlyWhatItIsNotGiven: Build opens state.path and audit.path
// unless given a state and an audit log, and Close closes only what it opened.
func TestBuildOpensOnlyWhatItIsNotGiven(t *testing.T) {
	cfg := newConfig(t)
	rt, err := runtime.Build(context.Background(), cfg, options())
	if err != nil {
		t.Fatalf("Build: got %v, want nil", err)
	}
	if rt.Vault == nil || rt.Engine == nil || rt.Limiter == nil || rt.State == nil || rt.Audit == nil {
		t.Fatalf("Build: got %+v, want every part built", rt)
	}
	if want := (hood.Limits{Burst: config.DefaultBurst, PerMinute: config.DefaultPerMinute}); rt.Limits != want {
		t.Errorf("Limits: got %+v, want %+v", rt.Limits, want)
	}
	if err := rt.Close(); err != nil {
		t.Errorf("Close: got %v, want nil", err)
	}

	// Given a state and an audit log, Build opens neither path (both
	// would fail) and Close leaves them open.
	st, err := state.Open(cfg.State.Path)
	if err != nil {
		t.Fatalf("state.Open after Close: got %v, want nil (Close closes the state it opened)", err)
	}
	defer st.Close()
	al, err := audit.Open(filepath.Join(t.TempDir(), "given.log"))
	if err != nil {
		t.Fatalf("audit.Open: %v", err)
	}
	defer al.Close()
	cfg.State.Path, cfg.Audit.Path = filepath.Join(t.TempDir(), "no", "state.db"), t.TempDir()
	opts := options()
	opts.State, opts.Audit = st, al
	given, err := runtime.Build(context.Background(), cfg, opts)
	if err != nil {
		t.Fatalf("Build with a state and an audit log: got %v, want nil", err)
	}
	if given.State != st || given.Audit != al {
		t.Errorf("Build: got state %p, audit %p, want the given %p, %p", given.State, given.Audit, st, al)
	}
	again, err := runtime.Build(context.Background(), cfg, opts)
	if err != nil {
		t.Fatalf("second Build: got %v, want nil", err)
	}
	if again.Limiter != given.Limiter {
		t.Error("Limiter of a second Build with the same Limiters: got a new one, want the same")
	}
	if err := given.Close(); err != nil {
		t.Errorf("Close: got %v, want nil", err)
	}
	if _, _, err := st.Get("tg"); err != nil {
		t.Errorf("given state after Close: got %v, want it still open", err)
	}
	if err := al.Write(audit.Record{Event: "test"}); err != nil {
		t.Errorf("given audit log after Close: got %v, want it still open", err)
	}
}

// TestBuildNeedsItsOptions: a missing limiter registry or logger is an
// error naming the option, never a nil-pointer panic.
func TestBuildNeedsItsOptions(t *testing.T) {
	tests := []struct {
		name string
		edit func(*runtime.Options)
		want string
	}{
		{"no limiters", func(o *runtime.Options) { o.Limiters = nil }, "Options.Limiters is required"},
		{"no logger", func(o *runtime.Options) { o.Logger = nil }, "Options.Logger is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := options()
			tt.edit(&opts)
			rt, err := runtime.Build(context.Background(), newConfig(t), opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
			if rt != nil {
				t.Errorf("got a runtime, want none")
			}
		})
	}
}
