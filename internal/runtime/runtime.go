// Package runtime builds what a pass needs from one configuration: the
// Vault and Hood clients, the state, the audit log and the engine. `once`,
// `plan` and the daemon (at start-up and at each reload) all build them here.
package runtime

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/ocamba-rotator/rotator/internal/audit"
	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/ha"
	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/provider"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/rotation"
	"github.com/ocamba-rotator/rotator/internal/state"
	"github.com/ocamba-rotator/rotator/internal/vault"
)

// Options are what Build takes besides the configuration.
type Options struct {
	Logger   *slog.Logger        // required
	Getenv   func(string) string // required
	Version  string              // the Hood User-Agent is "rotator/" + Version
	Limiters *hood.Limiters      // required: the process's Hood rate limiters, one per host
	State    rotate.State        // used unless ha.mode is vault; nil: state.path is opened
	Audit    *audit.Log          // nil: audit.path is opened
	ReadOnly bool                // the ha.mode vault store writes nothing (`plan`)
	Login    bool                // log in to Vault now; on failure every read fails with its error
	// Metrics hooks: vault.Options.Observe and OnAuth, hood.Options.Observe.
	ObserveVault func(operation, result string)
	OnVaultAuth  func(authenticated bool)
	ObserveHood  func(method string, code int, d time.Duration)
	// OnRotationStep is called after each step a rotation records (metrics).
	OnRotationStep func(rotation.Record)
}

// Runtime is everything built from one configuration (the Hood client is
// the engine's).
type Runtime struct {
	Vault  *vault.Client
	State  rotate.State // the local state file, or (ha.mode vault) the records shared through Vault
	Audit  *audit.Log
	Engine *rotate.Engine
	// Rotations runs the configuration's rotations; nil when it has none.
	Rotations *rotation.Runner
	Limiter   *hood.Limiter // paces the Hood client
	Limits    hood.Limits   // the configuration's rate limits
	// Allowance is the fleet's Hood allowance (ha.mode vault, not read
	// only); nil otherwise. UseAllowance makes the limiter ask it.
	Allowance *ha.Allowance
	closers   []func() error
}

// ConfigError is a configuration that cannot be built into clients (a
// command exits 2); other errors of Build are files that cannot be opened.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// Build makes the clients, the state, the audit log and the engine of cfg.
// Close closes what it opened.
func Build(ctx context.Context, cfg *config.Config, opts Options) (*Runtime, error) {
	switch {
	case opts.Limiters == nil:
		return nil, errors.New("build runtime: Options.Limiters is required")
	case opts.Logger == nil:
		return nil, errors.New("build runtime: Options.Logger is required")
	}
	vc, err := vault.New(cfg.Vault, vault.Options{
		Timeout: cfg.Vault.Timeout.D(), Logger: opts.Logger, Getenv: opts.Getenv,
		Observe: opts.ObserveVault, OnAuth: opts.OnVaultAuth,
	})
	if err != nil {
		return nil, &ConfigError{Err: fmt.Errorf("vault: %w", err)}
	}
	var reader rotate.SecretReader = vc
	if opts.Login {
		if err := vc.Login(ctx); err != nil {
			opts.Logger.Error("vault login failed", "error", err.Error())
			reader = failingReader{err: fmt.Errorf("log in to vault: %w", err)}
		}
	}
	rt := &Runtime{Vault: vc, State: opts.State, Audit: opts.Audit}
	hc, err := rt.hood(cfg.Hood, opts)
	if err != nil {
		return nil, &ConfigError{Err: fmt.Errorf("hood: %w", err)}
	}
	if err := rt.open(cfg, opts); err != nil {
		return nil, errors.Join(err, rt.Close())
	}
	checker, err := providerChecker(cfg, opts.Logger)
	if err != nil {
		return nil, errors.Join(&ConfigError{Err: err}, rt.Close())
	}
	eo := rotate.Options{Vault: reader, Hood: hc, State: rt.State, Audit: rt.Audit, Getenv: opts.Getenv, Logger: opts.Logger, Checker: checker}
	if rt.Allowance != nil {
		eo.Allowance = rt.Allowance
	}
	rt.Engine = rotate.New(cfg, eo)
	if rt.Rotations, err = rt.rotations(cfg, opts); err != nil {
		return nil, errors.Join(err, rt.Close())
	}
	return rt, nil
}

// rotations builds the runner of cfg's rotations (nil when it has none):
// its provider clients use provider_api's base URLs, and its lease holder
// is named ha.identity (else the host name) and a random suffix.
func (rt *Runtime) rotations(cfg *config.Config, opts Options) (*rotation.Runner, error) {
	if len(cfg.Rotations) == 0 {
		return nil, nil
	}
	var c rotation.Clients
	var err error
	log := opts.Logger
	if c.SendGrid, err = provider.NewSendGrid(provider.SendGridOptions{BaseURL: cfg.ProviderAPI["sendgrid_email"], Timeout: ProviderCheckTimeout, Logger: log}); err != nil {
		return nil, &ConfigError{Err: fmt.Errorf("provider_api: %w", err)}
	}
	if c.Mailgun, err = provider.NewMailgun(provider.MailgunOptions{BaseURL: cfg.ProviderAPI["mailgun_email"], Timeout: ProviderCheckTimeout, Logger: log}); err != nil {
		return nil, &ConfigError{Err: fmt.Errorf("provider_api: %w", err)}
	}
	tw := cfg.ProviderAPI["twilio_sms"] // one URL serves both Twilio hosts' paths
	c.Twilio = provider.NewTwilio(provider.TwilioOptions{APIURL: tw, AccountsURL: tw, Timeout: ProviderCheckTimeout, Logger: log})
	id, err := ha.NewIdentity(cfg.HA.Identity)
	if err != nil {
		return nil, fmt.Errorf("rotation lease: %w", err)
	}
	return rotation.New(rotation.Options{
		Config: cfg, Vault: rt.Vault, Passer: rt.Engine, Clients: c, Audit: rt.Audit, Logger: log,
		Identity: id, LeaseTTL: cfg.HA.LeaseTTL.D(), OnStep: opts.OnRotationStep,
	}), nil
}

// ProviderCheckTimeout bounds one check with a provider (provider_check).
const ProviderCheckTimeout = 15 * time.Second

// providerChecker is the one place the provider checks of
// integrations[].provider_check are built: nil when no integration asks
// for them. The mail server of each custom_email_provider that asks is its
// smtp_host, its certificate checked against smtp_ca_cert when set (read
// here: a file that holds no certificate is a configuration error).
func providerChecker(cfg *config.Config, log *slog.Logger) (rotate.ProviderChecker, error) {
	if !slices.ContainsFunc(cfg.Integrations, func(in config.Integration) bool { return in.ProviderCheck }) {
		return nil, nil
	}
	smtp := map[string]provider.SMTPOptions{}
	for i, in := range cfg.Integrations {
		if !in.ProviderCheck || in.Provider != provider.SMTPProvider {
			continue
		}
		o := provider.SMTPOptions{Host: in.SMTPHost}
		if in.SMTPCACert != "" {
			pool, err := loadCAs(in.SMTPCACert)
			if err != nil {
				return nil, fmt.Errorf("integrations[%d].smtp_ca_cert: %w", i, err)
			}
			o.TLSConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		smtp[in.Name] = o
	}
	c, err := provider.NewChecker(cfg.ProviderAPI, smtp, ProviderCheckTimeout, log)
	if err != nil {
		return nil, fmt.Errorf("provider checks: %w", err)
	}
	return c, nil
}

// loadCAs reads the PEM file of CA certificates at path.
func loadCAs(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// hood builds the Hood client of h, paced by the one limiter of its host.
func (rt *Runtime) hood(h config.Hood, opts Options) (hc *hood.Client, err error) {
	rt.Limits = hood.Limits{Burst: h.RateLimit.Burst, PerMinute: h.RateLimit.PerMinute}
	if rt.Limiter, err = opts.Limiters.For(h.BaseURL, rt.Limits); err != nil {
		return nil, err
	}
	return hood.New(hood.Options{
		BaseURL: h.BaseURL, Timeout: h.Timeout.D(), Limiter: rt.Limiter,
		MaxAttempts: h.Retry.MaxAttempts, InitialBackoff: h.Retry.InitialBackoff.D(), MaxBackoff: h.Retry.MaxBackoff.D(),
		UserAgent: "rotator/" + opts.Version, Logger: opts.Logger, Observe: opts.ObserveHood,
	})
}

// open builds the state (the records shared through Vault with ha.mode
// vault, else opts.State or the state file) and opens the audit log.
func (rt *Runtime) open(cfg *config.Config, opts Options) error {
	switch {
	case cfg.HA.Enabled():
		o := ha.OptionsFrom(cfg.HA, rt.Vault, opts.Logger)
		o.ReadOnly = opts.ReadOnly
		st, err := ha.New(o)
		if err != nil {
			return &ConfigError{Err: fmt.Errorf("ha: %w", err)}
		}
		rt.State = st
		if !opts.ReadOnly {
			if rt.Allowance, err = ha.NewAllowance(ha.AllowanceOptionsFrom(cfg, rt.Vault, rt.Limiter, st.Identity(), opts.Logger)); err != nil {
				return &ConfigError{Err: fmt.Errorf("ha: %w", err)}
			}
		}
	case rt.State == nil:
		st, err := state.Open(cfg.State.Path)
		if err != nil {
			return fmt.Errorf("open state: %w", err)
		}
		rt.State, rt.closers = st, append(rt.closers, st.Close)
	}
	if rt.Audit == nil {
		al, err := audit.Open(cfg.Audit.Path)
		if err != nil {
			return fmt.Errorf("open audit log: %w", err)
		}
		rt.Audit, rt.closers = al, append(rt.closers, al.Close)
	}
	return nil
}

// UseAllowance makes the process's Hood limiter ask this configuration's
// allowance before every request (ha.mode vault), or nothing (otherwise).
// The daemon calls it when it puts the configuration in force.
func (rt *Runtime) UseAllowance() {
	if rt.Allowance != nil {
		rt.Limiter.SetGate(rt.Allowance)
		return
	}
	rt.Limiter.SetGate(nil)
}

// Close closes the state file and the audit log if Build opened them.
func (rt *Runtime) Close() error {
	var errs []error
	for _, c := range rt.closers {
		errs = append(errs, c())
	}
	rt.closers = nil
	return errors.Join(errs...)
}

// failingReader stands in for Vault when the login failed: every read fails
// with the login's error.
type failingReader struct{ err error }

func (f failingReader) ReadKV(context.Context, string, string, int) (*vault.KV, error) {
	return nil, f.err
}

func (f failingReader) ReadKVVersion(context.Context, string, string, int) (*vault.KV, error) {
	return nil, f.err
}
