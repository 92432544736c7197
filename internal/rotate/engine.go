// Package rotate is rotator's engine: one pass reads each distinct Vault
// secret once, builds every selected integration's settings, pushes them to
// Hood with a bounded number in flight, and reports one outcome per
// integration. One failing integration never stops the others.
package rotate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ocamba-rotator/rotator/internal/audit"
	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/secret"
	"github.com/ocamba-rotator/rotator/internal/state"
	"github.com/ocamba-rotator/rotator/internal/vault"
)

// SecretReader reads Vault KV secrets: the current version, or (for a
// rollback) a given KV v2 version.
type SecretReader interface {
	ReadKV(ctx context.Context, mount, path string, kvVersion int) (*vault.KV, error)
	ReadKVVersion(ctx context.Context, mount, path string, version int) (*vault.KV, error)
}

// Hood is what the engine needs of the Hood API.
type Hood interface {
	UpdateSettings(ctx context.Context, token secret.Value, id string, settings map[string]secret.Value) error
	GetIntegration(ctx context.Context, token secret.Value, id string) (*hood.Integration, error)
}

// Auditor receives one record per push, verification and rollback.
type Auditor interface {
	Write(r audit.Record) error
}

// Trigger says what started a pass.
type Trigger string

// The triggers (docs/reference.md, Results; the `trigger` label of rotator_pass_duration_seconds).
const (
	TriggerSchedule Trigger = "schedule"
	TriggerAdmin    Trigger = "admin"
	TriggerStartup  Trigger = "startup"
	TriggerCLI      Trigger = "cli"
	TriggerWatch    Trigger = "watch"    // watch mode: a watched Vault path changed (docs/ha.md)
	TriggerRotation Trigger = "rotation" // a rotation pushes a new credential to its consumers (docs/rotation.md)
)

// Result is the outcome of one integration in a pass.
type Result string

// The results (docs/reference.md, Results).
const (
	ResultPushed    Result = "pushed"
	ResultUnchanged Result = "unchanged"
	ResultFailed    Result = "failed"
	ResultWouldPush Result = "would push"
)

// ErrUnknownIntegration is returned by Pass when Request.Only names an
// integration that the configuration does not have.
var ErrUnknownIntegration = errors.New("unknown integration")

// Request says what a pass does.
type Request struct {
	Trigger Trigger
	Force   bool     // bypass change detection
	DryRun  bool     // build and report, push nothing, send nothing to Hood
	Only    []string // integration names; empty means all
	Caller  string   // who asked: the admin client's address, for logs and audit
	// NotBefore, with Force: an integration whose last confirmed push, of
	// the very settings it would push now, happened at or after this time
	// is reported unchanged instead of pushed again. A forced request that
	// waited for a running pass sets it to its arrival time, so it does not
	// repeat the pushes that pass made for it.
	NotBefore time.Time `json:"-"`
	// Failing, when set, says which integrations the caller still counts
	// as failed (the daemon's status book), when it knows: since is when
	// the failed attempt was made (zero: not failing). Each is pushed, to
	// be confirmed, even when its settings equal the last confirmed push,
	// unless the record holds a push confirmed after the failure (another
	// rotator's, with ha.mode vault). Where it is nil or does not know,
	// the record's last attempt says it (rotator once and plan). A daemon
	// that knows never pushes because of another rotator's failure, so one
	// rotator failing before its push on every pass cannot make the others
	// push on every pass.
	Failing func(name string) (since time.Time, known bool) `json:"-"`
	// Stop, when closed, keeps pushes that have not started from starting
	// (they fail as "not pushed: shutting down"); pushes in flight finish.
	Stop <-chan struct{} `json:"-"`
}

// ErrDowngrade is the reason a scheduled pass refuses a Vault version older
// than the one last pushed (a restore or a mistaken rollback in Vault).
var ErrDowngrade = errors.New("vault version is older than the last pushed one")

// ErrStopping is the reason of the pushes a stopping pass did not start.
var ErrStopping = errors.New("not pushed: shutting down")

// Outcome is what happened to one integration in a pass. It never holds a
// secret value: Err's text is built from names and paths only.
type Outcome struct {
	Name         string `json:"name"`
	ID           string `json:"id"`
	Provider     string `json:"provider"`
	VaultPath    string `json:"vault_path"`
	VaultVersion int    `json:"vault_version"`
	// VaultCreated is when the KV v2 version read was written (nil for KV
	// v1, or when the secret could not be read): the credential's age.
	VaultCreated *time.Time `json:"vault_created_at,omitempty"`
	Result       Result     `json:"result"`
	Error        string     `json:"error,omitempty"`
	TraceID      string     `json:"trace_id,omitempty"`
	Settings     []string   `json:"settings,omitempty"` // names of the settings pushed (or to push)
	Warnings     []string   `json:"warnings,omitempty"`
	Reason       string     `json:"reason,omitempty"` // why unchanged
	// Doubt is why Hood may hold settings other than the last confirmed
	// push (an unconfirmed push may have landed, the last attempt failed):
	// the reason a push is made, or would be, even for unchanged settings.
	Doubt string `json:"doubt,omitempty"`
	// Confirmed is when a push of the settings reported was last confirmed:
	// set for pushed, and for unchanged when the settings equal a confirmed
	// push with nothing in doubt since. Only such an outcome clears an
	// integration's failure (an unchanged held by another rotator does not).
	Confirmed *time.Time `json:"confirmed_at,omitempty"`
	// Recheck, for an integration left to another rotator (unchanged),
	// is when a pass must look at it again: when that rotator's lease on
	// it ends (should it die mid-push), or at once when it wrote the
	// record during this pass and left settings other than these.
	Recheck    *time.Time    `json:"recheck_at,omitempty"`
	Changed    []string      `json:"changed,omitempty"` // setting names whose value differs from the last confirmed push
	RolledBack bool          `json:"rolled_back,omitempty"`
	Started    time.Time     `json:"started"`
	Duration   time.Duration `json:"duration_ns"`
	Err        error         `json:"-"`

	recorded bool // the attempt is in the state already
}

// Confirms reports whether the outcome shows that Hood holds the current
// settings through a confirmed push: pushed, or unchanged from a confirmed
// push with nothing in doubt since. Only such an outcome clears a failure;
// an unchanged that is not one (another rotator holds the integration, or
// changed its record) leaves it as it was.
func (o Outcome) Confirms() bool {
	return o.Result == ResultPushed || (o.Result == ResultUnchanged && o.Confirmed != nil)
}

// Report is the result of one pass.
type Report struct {
	Trigger  Trigger   `json:"trigger"`
	DryRun   bool      `json:"dry_run"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Outcomes []Outcome `json:"outcomes"`
}

// Failed counts the failed outcomes.
func (r Report) Failed() int {
	n := 0
	for _, o := range r.Outcomes {
		if o.Result == ResultFailed {
			n++
		}
	}
	return n
}

// Options are the engine's collaborators.
type Options struct {
	Vault  SecretReader
	Hood   Hood
	State  State               // durable state: change detection, verification outcomes, history
	Audit  Auditor             // optional
	Getenv func(string) string // for hood.token.env; default: none set
	Logger *slog.Logger
	Now    func() time.Time
	// Checker asks the provider whether a credential works before the push
	// of an integration with provider_check; nil = no checks.
	Checker ProviderChecker
	// Allowance, with a shared state (ha.mode vault), is the fleet's Hood
	// allowance: taken before a push is begun, released at the end of the
	// pass. nil: none (the limiter alone paces Hood requests).
	Allowance Allowance
}

// Allowance is the lease a rotator of a fleet holds to send Hood requests
// (implemented by *ha.Allowance).
type Allowance interface {
	Acquire(ctx context.Context) error
	Release(ctx context.Context) error
}

// Engine runs passes over one configuration. It is safe for concurrent use,
// but callers (the scheduler) keep passes from overlapping.
type Engine struct {
	cfg     *config.Config
	vault   SecretReader
	hood    Hood
	state   State
	lease   leaser // state, when it is shared (ha.mode vault); nil otherwise
	audit   Auditor
	getenv  func(string) string
	log     *slog.Logger
	now     func() time.Time
	checker ProviderChecker
	allow   Allowance
}

// New returns an engine for a validated configuration.
func New(cfg *config.Config, opts Options) *Engine {
	e := &Engine{cfg: cfg, vault: opts.Vault, hood: opts.Hood, state: opts.State, audit: opts.Audit, getenv: opts.Getenv, log: opts.Logger, now: opts.Now, checker: opts.Checker, allow: opts.Allowance}
	if l, ok := opts.State.(leaser); ok {
		e.lease = l
	}
	if e.audit == nil {
		e.audit = noAudit{}
	}
	if e.getenv == nil {
		e.getenv = func(string) string { return "" }
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	return e
}

type read struct {
	kv  *vault.KV
	err error
}

// Select returns the integrations a request names, in configuration order.
func (e *Engine) Select(only []string) ([]config.Integration, error) {
	if len(only) == 0 {
		return e.cfg.Integrations, nil
	}
	var out []config.Integration
	var unknown []string
	for _, name := range only {
		i := slices.IndexFunc(e.cfg.Integrations, func(in config.Integration) bool { return in.Name == name })
		if i < 0 {
			unknown = append(unknown, name)
			continue
		}
		if !slices.ContainsFunc(out, func(in config.Integration) bool { return in.Name == name }) {
			out = append(out, e.cfg.Integrations[i])
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("%w: %q", ErrUnknownIntegration, unknown)
	}
	// Keep configuration order whatever the order of names.
	slices.SortStableFunc(out, func(a, b config.Integration) int {
		return e.index(a.Name) - e.index(b.Name)
	})
	return out, nil
}

func (e *Engine) index(name string) int {
	return slices.IndexFunc(e.cfg.Integrations, func(in config.Integration) bool { return in.Name == name })
}

// Pass runs one pass. The error is only for a request it cannot run (an
// unknown name); what happened to each integration is in the report.
//
// Without Force, an integration whose settings equal those of its last
// confirmed push is unchanged and costs no Hood call, and a Vault version
// older than the last pushed one is refused (ErrDowngrade). With a shared
// state, an integration another rotator holds (Record.HeldBy) is unchanged
// and costs no Hood call, forced or not; one whose record another rotator
// wrote between Get and Begin is unchanged too, and not pushed.
func (e *Engine) Pass(ctx context.Context, req Request) (Report, error) {
	selected, err := e.Select(req.Only)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Trigger: req.Trigger, DryRun: req.DryRun, Started: e.now()}
	log := e.log.With("trigger", string(req.Trigger), "dry_run", req.DryRun, "force", req.Force)
	if req.Caller != "" {
		log = log.With("caller", req.Caller)
	}
	log.Info("pass started", "integrations", len(selected))

	reads := e.readSources(ctx, selected)

	outcomes := make([]Outcome, len(selected))
	cands := e.build(selected, reads, outcomes)
	jobs := make(chan job)
	go e.decideAhead(cands, req, outcomes, jobs)
	e.pushAll(ctx, req, log, jobs, outcomes)
	// A pass hands the allowance over when it is done (nothing when it
	// does not hold it).
	e.releaseAllowance(ctx, log)

	for i := range outcomes {
		o := &outcomes[i]
		if o.Err != nil {
			o.Result = ResultFailed
			o.Error = o.Err.Error()
			if !req.DryRun && !o.recorded {
				// Failures before any push go into the history too, so a
				// restarted daemon knows how long an integration has failed.
				a := state.Attempt{At: e.now(), Trigger: string(req.Trigger), Result: string(ResultFailed),
					VaultVersion: o.VaultVersion, Error: o.Error, TraceID: traceID(o.Err), Settings: o.Settings}
				if err := e.state.Note(o.Name, a); err != nil {
					o.Warnings = append(o.Warnings, "state not saved: "+err.Error())
				}
			}
			var apiErr *hood.APIError
			if errors.As(o.Err, &apiErr) {
				o.TraceID = apiErr.TraceID
			}
		}
		e.logOutcome(log, *o)
	}
	rep.Outcomes = outcomes
	rep.Finished = e.now()
	log.Info("pass finished", "integrations", len(outcomes), "failed", rep.Failed(), "duration", rep.Finished.Sub(rep.Started).String())
	return rep, nil
}

// candidate is an integration whose settings were built: its record is
// read next, then change detection decides.
type candidate struct {
	i     int // index in the pass's outcomes
	in    config.Integration
	built Built
	kv    *vault.KV
}

// build fills each outcome with what the Vault read and the settings say,
// and returns the integrations whose settings were built.
func (e *Engine) build(selected []config.Integration, reads map[string]read, outcomes []Outcome) []candidate {
	var cands []candidate
	for i, in := range selected {
		o := &outcomes[i]
		*o = Outcome{Name: in.Name, ID: in.ID, Provider: in.Provider, Started: e.now()}
		o.VaultPath = vaultPath(in.Source)
		r := reads[in.Source.Key()]
		if r.err != nil {
			o.Err = r.err
			continue
		}
		o.VaultVersion = r.kv.Version
		if created := r.kv.Created; !created.IsZero() {
			o.VaultCreated = &created
		}
		built, err := BuildSettings(in, r.kv)
		o.Settings, o.Warnings = built.Names(), built.Warnings
		if err != nil {
			o.Err = err
			continue
		}
		cands = append(cands, candidate{i: i, in: in, built: built, kv: r.kv})
	}
	return cands
}

// decideAhead reads the candidates' records, readers at a time, decides
// each, and sends the pushes to make on jobs, in configuration order, then
// closes it. A record is read at most readers integrations ahead of the
// push queue: a pass of hundreds sends its first Hood request after a few
// record reads, not after all of them, and a pass that waits (for the
// fleet's allowance, for Hood's windows) decides the rest on fresh records.
func (e *Engine) decideAhead(cands []candidate, req Request, outcomes []Outcome, jobs chan<- job) {
	defer close(jobs)
	type decided struct {
		j  job
		ok bool
	}
	slots := make([]chan decided, len(cands))
	for k := range slots {
		slots[k] = make(chan decided, 1)
	}
	ahead := make(chan struct{}, readers)
	go func() {
		for k := range cands {
			ahead <- struct{}{} // freed once candidate k-readers was handed on
			go func(c candidate, slot chan<- decided) {
				j, ok := e.decideOne(c, req, &outcomes[c.i])
				slot <- decided{j, ok}
			}(cands[k], slots[k])
		}
	}()
	for k := range cands {
		d := <-slots[k]
		if d.ok {
			jobs <- d.j
		}
		<-ahead
	}
}

// decideOne reads a candidate's record and applies change detection: it
// fills the outcome and returns the push to make, if any. Safe for
// concurrent use on distinct outcomes.
func (e *Engine) decideOne(c candidate, req Request, o *Outcome) (job, bool) {
	rec, _, err := e.state.Get(c.in.Name)
	if err != nil {
		o.Err = fmt.Errorf("read state: %w", err)
		return job{}, false
	}
	if rec.HeldBy != "" {
		// Even when forced: the holder is pushing this integration now.
		o.Result, o.Reason = ResultUnchanged, fmt.Sprintf("held by %s until %s", rec.HeldBy, stamp(rec.HeldUntil))
		o.Recheck = &rec.HeldUntil
		return job{}, false
	}
	plain := reveal(c.built.Settings)
	p := state.Pushed{
		Fingerprint: e.state.Fingerprint(c.in.ID, c.in.Provider, plain),
		SettingMACs: e.state.SettingMACs(c.in.ID, c.in.Provider, plain),
		VaultPath:   o.VaultPath, VaultVersion: c.kv.Version,
	}
	v, err := decide(c.in.Name, rec, p, req)
	switch {
	case err != nil:
		o.Err = err
		return job{}, false
	case v.unchanged != "":
		o.Result, o.Reason = ResultUnchanged, v.unchanged
		at := rec.Confirmed.At
		o.Confirmed = &at
		return job{}, false
	}
	o.Doubt = v.doubt
	o.Changed = changed(rec.Confirmed, p)
	if req.DryRun {
		// A dry run (and the plan) asks no provider: it sends nothing
		// anywhere, and "would push" holds either way, since the real
		// pass checks before its push (provider_check).
		o.Result = ResultWouldPush
		return job{}, false
	}
	return job{i: c.i, in: c.in, built: c.built, pushed: p, rec: rec, kv: c.kv}, true
}

// readers bounds the Vault reads a pass makes at once (secrets, records).
const readers = 8

// inParallel calls f(0) … f(n-1), at most readers at a time, and returns
// when every call has.
func inParallel(n int, f func(int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, readers)
	for k := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			f(k)
		}()
	}
	wg.Wait()
}

func (e *Engine) logOutcome(log *slog.Logger, o Outcome) {
	attrs := []any{
		"integration", o.Name, "id", o.ID, "provider", o.Provider,
		"vault_path", o.VaultPath, "vault_version", o.VaultVersion, "result", string(o.Result),
	}
	for _, w := range o.Warnings {
		log.Warn("integration warning", append(attrs, "warning", w)...)
	}
	if o.Err != nil {
		if o.TraceID != "" {
			attrs = append(attrs, "trace_id", o.TraceID)
		}
		log.Error("integration failed", append(attrs, "error", o.Error)...)
		return
	}
	if o.Reason != "" {
		attrs = append(attrs, "reason", o.Reason)
	}
	if o.Doubt != "" {
		attrs = append(attrs, "doubt", o.Doubt)
	}
	log.Info("integration done", append(attrs, "settings", o.Settings)...)
}

// vaultPath is how outcomes, logs and the state name a secret: mount/path.
func vaultPath(s config.Source) string { return s.Mount + "/" + s.Path }

// readSources reads each distinct secret of the selected integrations once
// (by config.Source.Key), a few at a time.
func (e *Engine) readSources(ctx context.Context, selected []config.Integration) map[string]read {
	var sources []config.Source
	seen := map[string]bool{}
	for _, in := range selected {
		if k := in.Source.Key(); !seen[k] {
			seen[k] = true
			sources = append(sources, in.Source)
		}
	}
	out := make(map[string]read, len(sources))
	var mu sync.Mutex
	inParallel(len(sources), func(k int) {
		src := sources[k]
		kv, err := e.vault.ReadKV(ctx, src.Mount, src.Path, src.KVVersion)
		if err == nil && kv == nil {
			err = fmt.Errorf("read %s: no secret returned", vaultPath(src))
		}
		mu.Lock()
		out[src.Key()] = read{kv: kv, err: err}
		mu.Unlock()
	})
	return out
}

// hoodToken reads the Hood API token: from Vault at every pass (the token
// itself expires and is rolled), or from the environment.
func (e *Engine) hoodToken(ctx context.Context) (secret.Value, error) {
	t := e.cfg.Hood.Token
	if t.Env != "" {
		v := e.getenv(t.Env)
		if v == "" {
			return secret.Value{}, fmt.Errorf("environment variable %s is not set or empty", t.Env)
		}
		return secret.New(v), nil
	}
	if t.Vault == nil {
		return secret.Value{}, errors.New("no Hood token source configured")
	}
	ref := t.Vault
	kv, err := e.vault.ReadKV(ctx, ref.Mount, ref.Path, ref.KVVersion)
	if err != nil {
		return secret.Value{}, err
	}
	if kind, bad := kv.NonString[ref.Key]; bad {
		return secret.Value{}, fmt.Errorf("vault key %q of %s/%s is a %s, want a string", ref.Key, ref.Mount, ref.Path, kind)
	}
	v, ok := kv.Data[ref.Key]
	if !ok || v.IsZero() {
		return secret.Value{}, fmt.Errorf("vault key %q of %s/%s is missing or empty", ref.Key, ref.Mount, ref.Path)
	}
	return v, nil
}
