// Package rotation rotates credentials at their provider: it mints a new
// credential, stores it in Vault as a new version of the secret the
// consumers read, pushes it to every consuming Hood integration and
// verifies it there, waits out the grace period and only then revokes the
// old credential. Each step is recorded in Vault before it is taken, so a
// crash, a restart or another rotator resumes the run or undoes it: a
// failure before every consumer is verified puts the old credential back
// everywhere and deletes the new one. No record, log line, audit line or
// error holds a credential.
package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/ocamba-rotator/rotator/internal/audit"
	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/secret"
	"github.com/ocamba-rotator/rotator/internal/vault"
)

// Vault is what a run needs of Vault: the consumers' secret, the managing
// credential and the step records.
type Vault interface {
	Docs
	ReadKV(ctx context.Context, mount, path string, kvVersion int) (*vault.KV, error)
	ReadKVVersion(ctx context.Context, mount, path string, version int) (*vault.KV, error)
}

// Passer runs a pass over some integrations: the engine.
type Passer interface {
	Pass(ctx context.Context, req rotate.Request) (rotate.Report, error)
}

// Auditor receives one record per step.
type Auditor interface {
	Write(r audit.Record) error
}

// ErrUnknownRotation is a name the configuration has no rotation of.
var ErrUnknownRotation = errors.New("unknown rotation")

// errCrash stops a run where a test's Crash hook says, as a crash would:
// nothing more is written.
var errCrash = errors.New("crash injected")

// Options are a Runner's collaborators.
type Options struct {
	Config   *config.Config // validated
	Vault    Vault
	Passer   Passer
	Clients  Clients
	Audit    Auditor // optional
	Logger   *slog.Logger
	Identity string        // the lease holder's name (ha.identity + a random suffix)
	LeaseTTL time.Duration // how long a silent holder keeps a rotation
	Now      func() time.Time
	// OnStep is called after each write of a record (metrics); optional.
	OnStep func(Record)
	// Crash, in tests, is called after each step is recorded (with the
	// step's name) and after each provider call, Vault write and pass
	// (minted, stored in vault, pushed, revoked, restored, discarded); an
	// error stops the run there as a crash would (nothing more written,
	// the lease left to expire).
	Crash func(point string) error
}

// Runner runs rotations. Its methods are safe for concurrent use; the
// lease in each rotation's record keeps two runs of one rotation apart.
type Runner struct {
	o Options
}

// New returns a Runner.
func New(o Options) *Runner {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = config.DefaultLeaseTTL
	}
	return &Runner{o: o}
}

// Request says what a run does.
type Request struct {
	Trigger string // "schedule", "admin", "cli", "startup" (resume), "grace" (the end of grace)
	Caller  string // the admin client's address
	// Begin starts a new rotation when the record is at rest; without it a
	// run only resumes one in progress.
	Begin  bool
	DryRun bool // report the steps a run would take; write and call nothing
}

// Result is where a run left a rotation.
type Result struct {
	Name       string     `json:"name"`
	Provider   string     `json:"provider"`
	Step       Step       `json:"step"`
	Since      time.Time  `json:"since"`
	GraceUntil *time.Time `json:"grace_until,omitempty"`
	KeyID      string     `json:"key_id,omitempty"`  // the current credential's key id, when rotator minted it
	Version    int        `json:"version,omitempty"` // the secret's version the last completed run wrote
	Error      string     `json:"error,omitempty"`   // the run's error, or the last one recorded
	Notes      []string   `json:"notes,omitempty"`
	Plan       []string   `json:"plan,omitempty"` // dry run: the steps a run would take
	DryRun     bool       `json:"dry_run,omitempty"`
}

// run is one run's working set.
type run struct {
	rot       config.Rotation
	req       Request
	l         *lease
	key       string // the secret's key that holds the credential
	consumers []string
	notes     []string
}

// recordPath is where the record of a rotation lives.
func (r *Runner) recordPath(name string) (mount, path string) {
	rr := r.o.Config.RotationRecords
	return rr.Mount, rr.Path + "/" + name
}

// Run runs the rotation name as far as it can go now: to done or undone,
// or to the end of the grace period (the result's GraceUntil says when to
// run it again). A rotation another rotator holds is ErrBusy.
func (r *Runner) Run(ctx context.Context, name string, req Request) (Result, error) {
	rot, ok := r.o.Config.Rotation(name)
	if !ok {
		return Result{}, fmt.Errorf("%w %q", ErrUnknownRotation, name)
	}
	mount, path := r.recordPath(name)
	if req.DryRun {
		return r.plan(ctx, rot)
	}
	l, err := acquire(ctx, r.o.Vault, mount, path, r.o.Identity, r.o.LeaseTTL, r.o.Now)
	if err != nil {
		return Result{Name: name, Provider: rot.Provider}, fmt.Errorf("rotation %s: %w", name, err)
	}
	rctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go l.keepAlive(rctx, cancel)

	ru := &run{rot: rot, req: req, l: l, key: r.o.Config.CredentialKey(rot)}
	for _, in := range r.o.Config.Consumers(rot) {
		ru.consumers = append(ru.consumers, in.Name)
	}
	err = r.advance(rctx, ru)
	if cause := context.Cause(rctx); errors.Is(cause, ErrLostLease) {
		err = cause
	}
	res := r.result(rot, l.record(), ru.notes, err)
	switch {
	case errors.Is(err, errCrash), errors.Is(err, ErrLostLease):
		return res, fmt.Errorf("rotation %s: %w", name, err)
	case err != nil:
		msg := err.Error()
		_ = l.save(context.WithoutCancel(ctx), func(rec *Record) {
			now := r.o.Now().UTC()
			rec.LastError, rec.ErrorAt = msg, &now
		})
	}
	cancel(nil)
	if rerr := l.release(context.WithoutCancel(ctx)); rerr != nil {
		r.o.Logger.Warn("cannot release the rotation lease: another rotator may take it after it expires",
			"rotation", name, "error", rerr.Error())
	}
	if err != nil {
		return res, fmt.Errorf("rotation %s: %w", name, err)
	}
	return res, nil
}

// advance moves the record step by step until it rests or waits.
func (r *Runner) advance(ctx context.Context, ru *run) error {
	began := false
	for {
		rec := ru.l.record()
		var err error
		switch rec.Step {
		case StepNone, StepDone, StepUndone:
			if began || !ru.req.Begin {
				return nil
			}
			began = true
			err = r.begin(ctx, ru)
		case StepMinting:
			err = r.undo(ctx, ru, "rotator stopped while minting: the new key may exist at the provider")
		case StepStoring:
			err = r.resumeStoring(ctx, ru)
		case StepStored:
			err = r.push(ctx, ru)
		case StepVerified:
			if rec.GraceUntil != nil && r.o.Now().Before(*rec.GraceUntil) {
				return nil
			}
			err = r.confirmAgain(ctx, ru)
		case StepRevoking:
			err = r.revoke(ctx, ru)
		case StepUndoing:
			err = r.undo(ctx, ru, rec.Reason)
		default:
			return fmt.Errorf("record holds unknown step %q", rec.Step)
		}
		if err != nil {
			return err
		}
	}
}

// crash calls the test hook.
func (r *Runner) crash(point string) error {
	if r.o.Crash == nil {
		return nil
	}
	if err := r.o.Crash(point); err != nil {
		return fmt.Errorf("%w at %s: %w", errCrash, point, err)
	}
	return nil
}

// step writes the record moved to step by change, then audits and reports it.
func (r *Runner) step(ctx context.Context, ru *run, step Step, change func(*Record)) error {
	err := ru.l.save(ctx, func(rec *Record) {
		prev := rec.Step
		if change != nil {
			change(rec)
		}
		rec.Name, rec.Provider, rec.Step = ru.rot.Name, ru.rot.Provider, step
		if prev != step {
			rec.Since = r.o.Now().UTC()
		}
	})
	if err != nil {
		return fmt.Errorf("record step %s: %w", step, err)
	}
	rec := ru.l.record()
	keyID := rec.NewKeyID
	if step == StepRevoking || step == StepMinting {
		keyID = rec.OldKeyID
	}
	r.audit(ru, string(step), keyID, rec.Reason)
	r.o.Logger.Info("rotation step", "rotation", ru.rot.Name, "step", string(step), "key_id", keyID)
	if r.o.OnStep != nil {
		r.o.OnStep(rec)
	}
	return r.crash(string(step))
}

// audit writes one audit line of the run.
func (r *Runner) audit(ru *run, step, keyID, errText string) {
	if r.o.Audit == nil {
		return
	}
	rec := ru.l.record()
	result := "ok"
	if errText != "" {
		result = "failed"
	}
	err := r.o.Audit.Write(audit.Record{
		Event: "rotation", Trigger: ru.req.Trigger, Caller: ru.req.Caller, Rotation: ru.rot.Name,
		Step: step, Provider: ru.rot.Provider, VaultPath: ru.rot.Secret.Mount + "/" + ru.rot.Secret.Path,
		KVVersion: max(rec.NewVersion, rec.OldVersion), KeyID: keyID, Result: result, Error: errText,
	})
	if err != nil {
		r.o.Logger.Error("cannot write the audit log", "rotation", ru.rot.Name, "error", err.Error())
	}
}

// readSecret reads the current version of the rotation's secret and the
// credential in it.
func (r *Runner) readSecret(ctx context.Context, ru *run) (*vault.KV, secret.Value, error) {
	s := ru.rot.Secret
	kv, err := r.o.Vault.ReadKV(ctx, s.Mount, s.Path, 2)
	if err != nil {
		return nil, secret.Value{}, fmt.Errorf("read the secret: %w", err)
	}
	return kv, kv.Data[ru.key], nil
}

// bind builds the run's minter from the secret's data: the managing
// credential (read now), the domain or the account the consumers use.
func (r *Runner) bind(ctx context.Context, ru *run, kv *vault.KV) (minter, error) {
	var t target
	if m := ru.rot.Manager; m != nil {
		mk, err := r.o.Vault.ReadKV(ctx, m.Mount, m.Path, m.KVVersion)
		if err != nil {
			return nil, fmt.Errorf("read the managing credential: %w", err)
		}
		if t.manager = mk.Data[m.Key]; t.manager.IsZero() {
			return nil, fmt.Errorf("the managing credential %s/%s has no key %q", m.Mount, m.Path, m.Key)
		}
	}
	var err error
	switch ru.rot.Provider {
	case "mailgun_email":
		t.domain, err = r.agreed(ru, kv, "domain")
	case "twilio_sms":
		t.sid, err = r.agreed(ru, kv, "account_sid")
	}
	if err != nil {
		return nil, err
	}
	return r.o.Clients.newMinter(ru.rot.Provider, t)
}

// agreed is the value of setting that every consumer pushes (built from the
// secret as a pass builds it): one account or domain for the whole run.
func (r *Runner) agreed(ru *run, kv *vault.KV, setting string) (string, error) {
	val := ""
	for _, in := range r.o.Config.Consumers(ru.rot) {
		b, err := rotate.BuildSettings(in, kv)
		if err != nil {
			return "", fmt.Errorf("build the settings of consumer %s: %w", in.Name, err)
		}
		v := b.Settings[setting].Reveal()
		switch {
		case v == "":
			return "", fmt.Errorf("consumer %s has no %s setting", in.Name, setting)
		case val != "" && v != val:
			return "", fmt.Errorf("consumers push different %s settings (%s has another): one rotation serves one %s", setting, in.Name, setting)
		}
		val = v
	}
	return val, nil
}

// begin starts a rotation: orphans deleted, a credential minted, checked,
// and stored in Vault with check-and-set.
func (r *Runner) begin(ctx context.Context, ru *run) error {
	kv, cur, err := r.readSecret(ctx, ru)
	if err != nil {
		return err
	}
	switch {
	case cur.IsZero():
		return fmt.Errorf("the secret %s/%s has no key %q (the credential its consumers read)", ru.rot.Secret.Mount, ru.rot.Secret.Path, ru.key)
	case len(kv.NonString) > 0:
		return fmt.Errorf("the secret %s/%s holds keys that are not strings (%s): a new version would lose them", ru.rot.Secret.Mount, ru.rot.Secret.Path, joinKeys(kv.NonString))
	}
	m, err := r.bind(ctx, ru, kv)
	if err != nil {
		return err
	}
	if err := m.check(ctx, cur); err != nil {
		return fmt.Errorf("check the current credential: %w", err)
	}
	rec := ru.l.record()
	// Only while the secret holds the credential the last completed run
	// left is the prefix known to name nothing in use but that key: with
	// no history (a first run, a record lost or moved) or a credential
	// written by another hand, no key is deleted.
	oldID := ""
	if rec.Current.holds(cur) {
		oldID = rec.Current.KeyID
		gone, err := m.orphans(ctx, ru.rot.KeyPrefix, rec.Current.KeyID)
		for _, id := range gone {
			r.audit(ru, "orphan deleted", id, "")
			ru.notes = append(ru.notes, "deleted orphan key "+id)
		}
		if err != nil {
			return fmt.Errorf("delete orphan keys: %w", err)
		}
	} else if ru.rot.Provider != "twilio_sms" {
		ru.notes = append(ru.notes, "orphan keys not looked for: the secret's credential is not one a completed run of this rotation left")
	}
	name := ru.rot.KeyPrefix + r.o.Now().UTC().Format("20060102T150405Z")
	err = r.step(ctx, ru, StepMinting, func(rec *Record) {
		*rec = Record{Current: rec.Current, Run: name, OldVersion: kv.Version, OldKeyID: oldID}
	})
	if err != nil {
		return err
	}
	id, next, err := m.mint(ctx, cur, name)
	if cerr := r.crash("minted"); cerr != nil {
		return cerr
	}
	if err != nil && refusal(err) {
		if serr := ru.l.save(ctx, func(rec *Record) { rec.MintRefused = true }); serr != nil {
			return serr
		}
	}
	if err != nil {
		return r.undo(ctx, ru, "mint: "+err.Error())
	}
	if err := m.check(ctx, next); err != nil {
		return r.undoWith(ctx, ru, id, "check the new credential: "+err.Error())
	}
	salt, err := newSalt()
	if err != nil {
		return r.undoWith(ctx, ru, id, err.Error())
	}
	err = r.step(ctx, ru, StepStoring, func(rec *Record) {
		rec.NewKeyID, rec.NewSalt, rec.NewHash = id, salt, hashOf(salt, next)
	})
	if err != nil {
		return err
	}
	data := reveal(kv.Data)
	data[ru.key] = next.Reveal()
	version, err := r.o.Vault.WriteDoc(ctx, ru.rot.Secret.Mount, ru.rot.Secret.Path, data, kv.Version)
	if cerr := r.crash("stored in vault"); cerr != nil {
		return cerr
	}
	if err != nil {
		return r.undo(ctx, ru, "store the new credential: "+err.Error())
	}
	return r.step(ctx, ru, StepStored, func(rec *Record) { rec.NewVersion = version })
}

// undoWith records the id of a credential minted but not stored, then undoes.
func (r *Runner) undoWith(ctx context.Context, ru *run, id, reason string) error {
	if err := ru.l.save(ctx, func(rec *Record) { rec.NewKeyID = id }); err != nil {
		return err
	}
	return r.undo(ctx, ru, reason)
}

// resumeStoring finds out, after a crash, whether the Vault write was made:
// the current version holds the run's credential (its hash matches).
func (r *Runner) resumeStoring(ctx context.Context, ru *run) error {
	kv, cur, err := r.readSecret(ctx, ru)
	if err != nil {
		return err
	}
	rec := ru.l.record()
	if kv.Version > rec.OldVersion && !cur.IsZero() && hashOf(rec.NewSalt, cur) == rec.NewHash {
		return r.step(ctx, ru, StepStored, func(rec *Record) { rec.NewVersion = kv.Version })
	}
	return r.undo(ctx, ru, "rotator stopped while storing the new credential, and Vault does not hold it")
}

// push pushes the stored credential to every consumer and verifies it there
// (a pass: PATCH, then Hood's effective_status). All confirmed: verified,
// and grace begins. Any other outcome undoes the run.
func (r *Runner) push(ctx context.Context, ru *run) error {
	rec := ru.l.record()
	bad, err := r.passOver(ctx, ru, true, rec.Since, rec.NewVersion)
	if cerr := r.crash("pushed"); cerr != nil {
		return cerr
	}
	if err != nil && ctx.Err() != nil {
		return err // stopped (shutdown, lost lease): the next run pushes again
	}
	if err != nil {
		return r.undo(ctx, ru, "push to the consumers: "+err.Error())
	}
	if len(bad) > 0 {
		return r.undo(ctx, ru, "not every consumer is confirmed on the new credential: "+joinList(bad))
	}
	return r.step(ctx, ru, StepVerified, func(rec *Record) {
		until := r.o.Now().Add(ru.rot.Grace.D()).UTC()
		rec.GraceUntil = &until
	})
}

// passOver runs a pass over the consumers (forced: pushed again unless
// confirmed since notBefore) and returns those not confirmed on version.
// A consumer left to another rotator (its lease on the integration, e.g.
// of a holder that died mid-push while it ran this rotation) is passed
// over again when that lease ends, up to heldRounds times, before it
// counts as not confirmed.
func (r *Runner) passOver(ctx context.Context, ru *run, force bool, notBefore time.Time, version int) ([]string, error) {
	outcomes := map[string]rotate.Outcome{}
	only := ru.consumers
	for round := 0; ; round++ {
		rep, err := r.o.Passer.Pass(ctx, rotate.Request{
			Trigger: rotate.TriggerRotation, Force: force, NotBefore: notBefore, Only: only,
			Caller: "rotation " + ru.rot.Name,
		})
		if err != nil {
			return nil, err
		}
		var held []string
		var until time.Time
		for _, o := range rep.Outcomes {
			outcomes[o.Name] = o
			if o.Recheck != nil && !o.Confirms() {
				held = append(held, o.Name)
				until = later(until, *o.Recheck)
			}
		}
		if len(held) == 0 || round == heldRounds {
			break
		}
		wait := min(max(until.Sub(r.o.Now()), 0)+time.Second, r.o.LeaseTTL+time.Second)
		r.o.Logger.Info("consumers held by another rotator: passing over them again when its lease ends",
			"rotation", ru.rot.Name, "integrations", held, "wait", wait.String())
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
		only = held
	}
	var bad []string
	for _, name := range ru.consumers {
		o, ok := outcomes[name]
		switch {
		case !ok:
			bad = append(bad, name+" (no outcome)")
		case !o.Confirms():
			why := string(o.Result)
			if o.Error != "" {
				why += ": " + o.Error
			} else if o.Reason != "" {
				why += ": " + o.Reason
			}
			bad = append(bad, name+" ("+why+")")
		case o.VaultVersion != version:
			bad = append(bad, fmt.Sprintf("%s (confirmed on version %d, not %d)", name, o.VaultVersion, version))
		}
	}
	return bad, nil
}

// heldRounds bounds the passes over consumers another rotator held.
const heldRounds = 3

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// confirmAgain, at the end of grace, checks that the secret still holds the
// run's credential and every consumer is still confirmed on it, then
// moves to revoking. A consumer not confirmed keeps the run waiting (the
// old credential is never revoked while one may need it); a secret
// changed by another writer ends the run without revoking.
func (r *Runner) confirmAgain(ctx context.Context, ru *run) error {
	rec := ru.l.record()
	kv, cur, err := r.readSecret(ctx, ru)
	if err != nil {
		return err
	}
	if cur.IsZero() || hashOf(rec.NewSalt, cur) != rec.NewHash {
		note := fmt.Sprintf("another writer replaced the credential since the run stored version %d (now version %d): the old key is not revoked", rec.NewVersion, kv.Version)
		ru.notes = append(ru.notes, note)
		return r.step(ctx, ru, StepDone, func(rec *Record) {
			now := r.o.Now().UTC()
			rec.Current = Current{Version: rec.NewVersion, KeyID: rec.NewKeyID, Hash: rec.NewHash, Salt: rec.NewSalt, Finished: &now}
			rec.LastError = note
		})
	}
	// The credential is the run's, at this version or a later one that
	// another writer made by changing other keys: confirm the consumers on
	// the version current now.
	bad, err := r.passOver(ctx, ru, false, time.Time{}, kv.Version)
	if err != nil {
		return fmt.Errorf("confirm the consumers before revoking: %w", err)
	}
	if len(bad) > 0 {
		return fmt.Errorf("not revoking the old credential: not every consumer is confirmed on the new one: %s", joinList(bad))
	}
	return r.step(ctx, ru, StepRevoking, func(rec *Record) { rec.NewVersion = kv.Version })
}

// revoke revokes the old credential and completes the run.
func (r *Runner) revoke(ctx context.Context, ru *run) error {
	rec := ru.l.record()
	s := ru.rot.Secret
	next, err := r.o.Vault.ReadKVVersion(ctx, s.Mount, s.Path, rec.NewVersion)
	if err != nil {
		return fmt.Errorf("read the new credential: %w", err)
	}
	var old secret.Value
	if ru.rot.Provider == "twilio_sms" {
		o, err := r.o.Vault.ReadKVVersion(ctx, s.Mount, s.Path, rec.OldVersion)
		if err != nil {
			return fmt.Errorf("read the old credential: %w", err)
		}
		old = o.Data[ru.key]
	}
	m, err := r.bind(ctx, ru, next)
	if err != nil {
		return err
	}
	note, err := m.revoke(ctx, old, next.Data[ru.key], rec.OldKeyID)
	if cerr := r.crash("revoked"); cerr != nil {
		return cerr
	}
	if err != nil {
		return fmt.Errorf("revoke the old credential: %w", err)
	}
	if note != "" {
		ru.notes = append(ru.notes, note)
	}
	return r.step(ctx, ru, StepDone, func(rec *Record) {
		now := r.o.Now().UTC()
		rec.Current = Current{Version: rec.NewVersion, KeyID: rec.NewKeyID, Hash: rec.NewHash, Salt: rec.NewSalt, Finished: &now}
		rec.LastError, rec.ErrorAt = "", nil
		if note != "" {
			rec.LastError = note
		}
	})
}

// undo puts the old credential back: in Vault (a new version holding the
// old data, when the current version is the run's), then on every consumer
// (a pass), and only then deletes the new credential at the provider. An
// error leaves the run in undoing, to be taken up again.
func (r *Runner) undo(ctx context.Context, ru *run, reason string) error {
	rec := ru.l.record()
	if rec.Step != StepUndoing {
		r.o.Logger.Warn("rotation undone", "rotation", ru.rot.Name, "reason", reason)
		if err := r.step(ctx, ru, StepUndoing, func(rec *Record) { rec.Reason = reason }); err != nil {
			return err
		}
		rec = ru.l.record()
	}
	s := ru.rot.Secret
	kv, cur, err := r.readSecret(ctx, ru)
	if err != nil {
		return err
	}
	restored := kv.Version
	ours := rec.NewHash != "" && !cur.IsZero() && hashOf(rec.NewSalt, cur) == rec.NewHash
	if ours {
		// Only the credential goes back: keys another writer changed
		// since the run stored its version stay as they are.
		old, err := r.o.Vault.ReadKVVersion(ctx, s.Mount, s.Path, rec.OldVersion)
		if err != nil {
			return fmt.Errorf("read the old version %d to restore its credential: %w", rec.OldVersion, err)
		}
		if old.Data[ru.key].IsZero() {
			return fmt.Errorf("the old version %d has no key %q to restore", rec.OldVersion, ru.key)
		}
		data := reveal(kv.Data)
		data[ru.key] = old.Data[ru.key].Reveal()
		if restored, err = r.o.Vault.WriteDoc(ctx, s.Mount, s.Path, data, kv.Version); err != nil {
			return fmt.Errorf("restore the old credential of version %d: %w", rec.OldVersion, err)
		}
		kv.Data[ru.key] = old.Data[ru.key]
	}
	if err := r.crash("restored"); err != nil {
		return err
	}
	// Consumers can hold the new credential only if Vault held it.
	if ours || rec.NewVersion != 0 || kv.Version != rec.OldVersion {
		bad, err := r.passOver(ctx, ru, true, rec.Since, restored)
		if err != nil {
			return fmt.Errorf("push the old credential back: %w", err)
		}
		if len(bad) > 0 {
			return fmt.Errorf("the new credential is kept: not every consumer is confirmed back on the old one: %s", joinList(bad))
		}
	}
	m, err := r.bind(ctx, ru, kv)
	if err != nil {
		return err
	}
	if !rec.MintRefused {
		if err := m.discard(ctx, kv.Data[ru.key], rec.NewKeyID, rec.Run); err != nil {
			return fmt.Errorf("delete the new credential: %w", err)
		}
	}
	if err := r.crash("discarded"); err != nil {
		return err
	}
	return r.step(ctx, ru, StepUndone, func(rec *Record) {
		now := r.o.Now().UTC()
		rec.LastError, rec.ErrorAt = "undone: "+rec.Reason, &now
	})
}

// result reports a record.
func (r *Runner) result(rot config.Rotation, rec Record, notes []string, err error) Result {
	res := Result{Name: rot.Name, Provider: rot.Provider, Step: rec.Step, Since: rec.Since, GraceUntil: rec.GraceUntil,
		KeyID: rec.Current.KeyID, Version: rec.Current.Version, Error: rec.LastError, Notes: notes}
	if rec.Step != StepVerified {
		res.GraceUntil = nil
	}
	if err != nil {
		res.Error = err.Error()
	}
	return res
}

// Status reads every configured rotation's record.
func (r *Runner) Status(ctx context.Context) ([]Status, error) {
	var out []Status
	for _, rot := range r.o.Config.Rotations {
		st, err := r.status(ctx, rot)
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// StatusOf reads the record of the rotation name.
func (r *Runner) StatusOf(ctx context.Context, name string) (Status, error) {
	rot, ok := r.o.Config.Rotation(name)
	if !ok {
		return Status{}, fmt.Errorf("%w %q", ErrUnknownRotation, name)
	}
	return r.status(ctx, rot)
}

// status reads the record of rot.
func (r *Runner) status(ctx context.Context, rot config.Rotation) (Status, error) {
	mount, path := r.recordPath(rot.Name)
	rec, _, err := readRecord(ctx, r.o.Vault, mount, path)
	if err != nil {
		return Status{}, fmt.Errorf("rotation %s: %w", rot.Name, err)
	}
	st := Status{Name: rot.Name, Provider: rot.Provider, Step: rec.Step, Since: rec.Since,
		LastError: rec.LastError, ErrorAt: rec.ErrorAt, KeyID: rec.Current.KeyID, Version: rec.Current.Version,
		Finished: rec.Current.Finished, Schedule: rot.Schedule}
	if rec.Step == StepVerified {
		st.GraceUntil = rec.GraceUntil
	}
	if rec.HeldBy != "" && r.o.Now().Before(rec.HeldUntil) {
		st.HeldBy = rec.HeldBy
	}
	if st.Step == StepNone {
		st.Step = "none"
	}
	return st, nil
}

// Status is one rotation as GET /v1/rotations reports it.
type Status struct {
	Name       string     `json:"name"`
	Provider   string     `json:"provider"`
	Schedule   string     `json:"schedule,omitempty"`
	Step       Step       `json:"step"`
	Since      time.Time  `json:"since"`
	GraceUntil *time.Time `json:"grace_until,omitempty"`
	HeldBy     string     `json:"held_by,omitempty"`
	KeyID      string     `json:"key_id,omitempty"`
	Version    int        `json:"version,omitempty"`
	Finished   *time.Time `json:"finished_at,omitempty"`
	LastError  string     `json:"last_error,omitempty"`
	ErrorAt    *time.Time `json:"error_at,omitempty"`
}

// InProgress reports whether a run is under way (not at rest).
func (s Status) InProgress() bool { return !s.Step.atRest() && s.Step != "none" }

// reveal copies a secret's data into plain strings, to write it to Vault.
func reveal(data map[string]secret.Value) map[string]string {
	out := make(map[string]string, len(data))
	for k, v := range data {
		out[k] = v.Reveal()
	}
	return out
}

func joinKeys(m map[string]string) string {
	return strings.Join(slices.Sorted(maps.Keys(m)), ", ")
}

func joinList(s []string) string { return strings.Join(s, "; ") }
