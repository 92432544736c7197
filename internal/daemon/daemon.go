// Package daemon is `rotator run`: it loads the configuration, keeps the
// Vault login alive, schedules passes with cron, serves the admin API and
// metrics, reloads on request and shuts down gracefully. One goroutine (the
// loop) owns passes: a scheduled pass, a forced pass and a reload never run
// at the same time.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/ocamba-rotator/rotator/internal/admin"
	"github.com/ocamba-rotator/rotator/internal/audit"
	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/ha"
	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/metrics"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/runtime"
	"github.com/ocamba-rotator/rotator/internal/secret"
)

// ErrShuttingDown answers forced passes asked for while the daemon stops.
var ErrShuttingDown = errors.New("rotator is shutting down")

// Options configure Run.
type Options struct {
	ConfigPath string
	Getenv     func(string) string // default os.Getenv
	Logger     *slog.Logger
	// Registry receives every metric and serves /metrics; default: a new one.
	Registry *prometheus.Registry
	Version  string
	// Reload delivers reload requests (SIGHUP).
	Reload <-chan struct{}
	// ShutdownTimeout bounds how long pushes in flight (or a rotation run)
	// may take to finish once shutdown starts, and then the admin server's shutdown. Default
	// config.DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Started, if set, is called once the admin server listens, with its address.
	Started func(adminAddr string)
	// AdminWriteTimeout is the admin server's write timeout (admin.Options.
	// WriteTimeout); default admin.DefaultWriteTimeout. The answer of a pass
	// is written even after a longer pass.
	AdminWriteTimeout time.Duration
	// RotationRefresh is how often the rotation records are read again
	// (metrics, and rotations left in progress by a rotator that died);
	// default one minute.
	RotationRefresh time.Duration
}

// ConfigError is returned by Run when the configuration cannot be used at
// start-up (the process exits 2).
type ConfigError = runtime.ConfigError

// world is everything built from one configuration. Its Limiter is the
// process's one limiter of the Hood host, set to its Limits when the
// configuration is installed.
type world struct {
	cfg *config.Config
	*runtime.Runtime
}

// Daemon is a running `rotator run`.
type Daemon struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics.Recorder
	local   rotate.State // the state file; nil with ha.mode vault
	haMode  string       // ha.mode at start-up: a reload cannot change it
	audit   *audit.Log
	status  *statusBook
	srv     *admin.Server
	// limiters are the Hood rate limiters, one per Hood host, kept for the
	// life of the process: a reload's new client keeps pacing (and holding)
	// the requests of the old one.
	limiters *hood.Limiters
	ready    *readyGate

	mu    sync.RWMutex // guards cur
	cur   *world
	force chan *forced
	ticks chan []string
	// rotAsk carries the admin API's requests for a rotation to the loop;
	// rotTicks the rotations whose schedule fired.
	rotAsk   chan *rotAsk
	rotTicks chan []string
	// rotAdrift carries the rotations in progress that no rotator holds
	// (their holder died) from the refresh to the loop, to resume them.
	rotAdrift chan []string
	// watchTicks carries the integrations whose watched Vault path changed
	// (watch mode) from the session's watcher to the loop.
	watchTicks chan []string
	// watched is what the watchers saw, kept across reloads; used by one
	// session's watcher at a time (see watchMemory).
	watched *watchMemory
	quit    chan struct{} // closed when the loop stops taking requests
}

// Run runs the daemon until ctx ends, then shuts down gracefully and
// returns nil. A configuration that cannot be used at start-up is a
// *ConfigError; an admin address that cannot be bound is another error.
func Run(ctx context.Context, opts Options) error {
	if opts.Getenv == nil {
		opts.Getenv = os.Getenv
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
		// The Go runtime's and the process's own metrics (goroutines,
		// memory, file descriptors) beside rotator's.
		opts.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = config.DefaultShutdownTimeout
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	d := &Daemon{
		opts:       opts,
		log:        opts.Logger,
		status:     newStatusBook(),
		ready:      newReadyGate(),
		force:      make(chan *forced),
		ticks:      make(chan []string),
		rotAsk:     make(chan *rotAsk),
		rotTicks:   make(chan []string),
		rotAdrift:  make(chan []string),
		watchTicks: make(chan []string),
		watched:    newWatchMemory(),
		limiters:   hood.NewLimiters(),
		quit:       make(chan struct{}),
	}
	cfg, err := config.LoadAndValidate(opts.ConfigPath, opts.Getenv)
	if err != nil {
		return &ConfigError{Err: err}
	}
	if d.metrics, err = metrics.New(opts.Registry, opts.Version); err != nil {
		return err
	}
	d.haMode = cfg.HA.Mode
	w, err := d.build(cfg) // opens the state file and the audit log for the process
	if err != nil {
		return err
	}
	defer func() {
		if err := w.Close(); err != nil {
			d.log.Error("cannot close the state file or the audit log", "error", err.Error())
		}
	}()
	if !cfg.HA.Enabled() {
		d.local = w.State
	}
	d.audit = w.Audit
	token, err := readAdminToken(cfg.Admin.TokenFile)
	if err != nil {
		return &ConfigError{Err: err}
	}
	d.srv, err = admin.NewServer(admin.Options{
		Listen: cfg.Admin.Listen, Token: token, Service: d, Gatherer: opts.Registry, Logger: d.log,
		WriteTimeout: opts.AdminWriteTimeout,
	})
	if err != nil {
		return fmt.Errorf("build admin server: %w", err)
	}
	if err := d.srv.Start(); err != nil {
		return fmt.Errorf("start admin server on %s: %w", cfg.Admin.Listen, err)
	}
	d.log.Info("rotator started", "version", opts.Version, "admin_listen", d.srv.Addr(),
		"integrations", len(cfg.Integrations), "rotations", len(cfg.Rotations), "schedule", cfg.Schedule)
	if opts.Started != nil {
		opts.Started(d.srv.Addr())
	}
	d.metrics.ReloadSucceeded(time.Now())
	d.loop(ctx, w)
	return nil
}

// build makes the clients and the engine of a configuration, around the
// process's Hood limiters, state file and audit log.
func (d *Daemon) build(cfg *config.Config) (*world, error) {
	rt, err := runtime.Build(context.Background(), cfg, runtime.Options{
		Logger: d.log, Getenv: d.opts.Getenv, Version: d.opts.Version, Limiters: d.limiters,
		State: d.local, Audit: d.audit,
		ObserveVault: d.metrics.ObserveVault, OnVaultAuth: d.metrics.SetVaultAuthenticated, ObserveHood: d.metrics.ObserveHood,
		OnRotationStep: d.metrics.ObserveRotationStep,
	})
	if err != nil {
		return nil, err
	}
	if st, ok := rt.State.(*ha.Store); ok { // ha.mode vault: records and leases in Vault (docs/ha.md)
		d.log.Info("ha: records and leases shared through Vault; state.path is not used", "identity", st.Identity(),
			"mount", cfg.HA.Mount, "path", cfg.HA.Path, "lease_ttl", cfg.HA.LeaseTTL.D().String())
	}
	return &world{cfg: cfg, Runtime: rt}, nil
}

// readAdminToken reads admin.token_file; no file means no token (403).
func readAdminToken(path string) (secret.Value, error) {
	if path == "" {
		return secret.Value{}, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return secret.Value{}, fmt.Errorf("admin.token_file: %w", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return secret.Value{}, fmt.Errorf("admin.token_file: %s is empty", path)
	}
	return secret.New(t), nil
}

func (d *Daemon) world() *world {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.cur
}

// Rotate implements admin.Service: it asks the loop for the pass req
// describes (forced, a forced dry run, or a plan: a dry run without Force)
// and waits for its report. The pass starts after the request arrived, so
// every Vault read behind the answer was made after that.
func (d *Daemon) Rotate(ctx context.Context, req rotate.Request) (rotate.Report, error) {
	if w := d.world(); w != nil {
		if _, err := w.Engine.Select(req.Only); err != nil {
			return rotate.Report{}, err
		}
	}
	f := &forced{req: req, arrived: time.Now(), reply: make(chan passResult, 1)}
	select {
	case d.force <- f:
	case <-d.quit:
		return rotate.Report{}, ErrShuttingDown
	case <-ctx.Done():
		return rotate.Report{}, ctx.Err()
	}
	select {
	case r := <-f.reply:
		return filter(r.rep, req.Only), r.err
	case <-ctx.Done():
		return rotate.Report{}, ctx.Err()
	}
}

// Status implements admin.Service.
func (d *Daemon) Status() []admin.IntegrationStatus { return d.status.list() }

// Ready implements admin.Service: the configuration is loaded, the Vault
// login succeeded and Vault answers its health check. Probes share health
// checks (readyGate): at most one Vault request per second.
func (d *Daemon) Ready(ctx context.Context) error {
	w := d.world()
	if w == nil {
		return errors.New("configuration not loaded")
	}
	if !w.Vault.Authenticated() {
		return errors.New("vault: not authenticated")
	}
	if err := d.ready.check(ctx, w.Vault); err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	return nil
}

// filter keeps the outcomes of the named integrations (all when none named):
// a request that shared a pass gets its own part of the report.
func filter(rep rotate.Report, only []string) rotate.Report {
	if len(only) == 0 {
		return rep
	}
	want := map[string]bool{}
	for _, n := range only {
		want[n] = true
	}
	out := rep
	out.Outcomes = nil
	for _, o := range rep.Outcomes {
		if want[o.Name] {
			out.Outcomes = append(out.Outcomes, o)
		}
	}
	return out
}
