package rotate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ocamba-rotator/rotator/internal/audit"
	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/secret"
	"github.com/ocamba-rotator/rotator/internal/state"
	"github.com/ocamba-rotator/rotator/internal/vault"
)

// Errors a push can fail with, besides Hood's and Vault's own.
var (
	// ErrPreflight: the live integration in Hood does not match the
	// configuration (another provider, a setting its live schema lacks).
	ErrPreflight = errors.New("preflight check failed")
	// ErrVerify: Hood accepted the push but the read-back says the new
	// credentials do not work (effective_status) or the target changed.
	ErrVerify = errors.New("verification failed")
	// ErrUnverified: Hood accepted the push but no verdict could be had
	// (the read-back failed, or the credentials test outlasted
	// hood.verify_timeout). Nothing says the new credentials are bad: no
	// rollback, and the next pass pushes and verifies again.
	ErrUnverified = errors.New("pushed, but not verified")
)

// job is one push of a pass.
type job struct {
	i      int
	in     config.Integration
	built  Built
	pushed state.Pushed
	rec    state.Record
	kv     *vault.KV
}

// pushAll runs the jobs as they are decided, until jobs is closed, with
// at most MaxInFlight in flight; the Hood client's limiter keeps the request
// rate inside Hood's windows. The Hood token is read once, when the first
// job comes (a pass that pushes nothing reads none; it expires and is
// rolled, so every pass that pushes reads it): when it cannot be read,
// every job fails.
func (e *Engine) pushAll(ctx context.Context, req Request, log *slog.Logger, ch <-chan job, outcomes []Outcome) {
	hoodToken := sync.OnceValues(func() (secret.Value, error) {
		t, err := e.hoodToken(ctx)
		if err != nil {
			log.Error("cannot read the Hood token", "error", err.Error())
		}
		return t, err
	})
	workers := max(1, e.cfg.Hood.MaxInFlight)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				o := &outcomes[j.i]
				token, terr := hoodToken()
				switch {
				case terr != nil:
					o.Err = fmt.Errorf("read Hood token: %w", terr)
				case ctx.Err() != nil:
					o.Err = fmt.Errorf("pass stopped before the push: %w", ctx.Err())
				case stopped(req.Stop):
					o.Err = ErrStopping
				default:
					start := e.now()
					e.pushOne(ctx, req, token, j, o)
					o.Duration = e.now().Sub(start)
				}
			}
		}()
	}
	wg.Wait()
}

// lostTo reports a push another rotator kept this one from making (its
// Begin refused, or its lease taken over before the PATCH) as unchanged,
// and reads the record again to say when a pass must look at the
// integration again (Outcome.Recheck): when the other rotator's lease ends,
// should it die mid-push; at once when it left settings other than these,
// or when the record cannot be read; never when the record holds these
// settings, confirmed.
func (e *Engine) lostTo(j job, o *Outcome, reason string) {
	o.Result, o.Reason, o.Changed, o.Doubt = ResultUnchanged, reason, nil, ""
	now := e.now()
	rec, _, err := e.state.Get(j.in.Name)
	switch {
	case err != nil:
		o.Recheck = &now
	case rec.HeldBy != "":
		o.Reason = fmt.Sprintf("%s; held by %s until %s", reason, rec.HeldBy, stamp(rec.HeldUntil))
		o.Recheck = &rec.HeldUntil
	default:
		if v, err := decide(j.in.Name, rec, j.pushed, Request{}); err == nil && v.unchanged != "" {
			return
		}
		o.Recheck = &now
	}
}

// Why an unconfirmed push may have reached Hood (state.Doubt.Why).
const (
	whyVerifyFailed = "a push failed verification and was kept"
	whyUnverified   = "a push reached Hood but could not be verified"
	whyAnswerLost   = "a push failed after it may have reached Hood"
	whyRollback     = "a rollback failed after it may have reached Hood"
)

// pushOne checks the live integration, pushes, verifies and, when the
// verification fails and the integration asks for it, rolls back. Every
// outcome but a confirmation records what may have reached Hood, so that
// the next pass knows Hood's settings are unknown.
func (e *Engine) pushOne(ctx context.Context, req Request, token secret.Value, j job, o *Outcome) {
	in := j.in
	rec := func(event, result string, err error, version int) audit.Record {
		r := audit.Record{
			Time: e.now(), Event: event, Trigger: string(req.Trigger), Caller: req.Caller,
			Integration: in.Name, ID: in.ID, Provider: in.Provider, VaultPath: o.VaultPath,
			KVVersion: version, Settings: o.Settings, Result: result,
		}
		if err != nil {
			r.Error, r.TraceID = err.Error(), traceID(err)
		}
		return r
	}
	// fail records the failure; landed are the pushes that may have
	// reached Hood, rejected the one whose verification failed.
	fail := func(err error, rejected *state.Pushed, landed ...state.Doubt) {
		o.Err, o.recorded = err, true
		f := state.Failure{Attempt: e.attempt(req, j.pushed.VaultVersion, o.Settings, ResultFailed, err), Rejected: rejected, Unconfirmed: landed}
		if serr := e.state.Fail(in.Name, f); serr != nil {
			o.Warnings = append(o.Warnings, "state not saved: "+serr.Error())
		}
	}
	doubt := func(why string) state.Doubt {
		d := state.Doubt{Pushed: j.pushed, Why: why}
		d.At = e.now()
		return d
	}

	// Durably note the push before making it: a crash from here on leaves
	// it Pending, so the next pass knows Hood may hold it and pushes again.
	// A shared state takes the lease here, on the record version the
	// decision was made on, before any Hood request: of several rotators
	// that decided on the same change, the ones that lose make no Hood
	// request at all.
	// The fleet's Hood allowance comes first: a rotator that waits for it
	// holds no lease on the integration meanwhile, and finds, once it has
	// it, whether another rotator pushed the integration in between.
	if err := e.acquireAllowance(ctx, req); err != nil {
		o.Err = fmt.Errorf("not pushed: %w", err)
		return
	}
	if err := e.state.Begin(in.Name, in.ID, in.Provider, j.rec.Revision, j.pushed); err != nil {
		if errors.Is(err, state.ErrNotHolder) {
			// Another rotator wrote the record since it was read: it
			// pushes, or pushed, the settings; this one does not.
			e.lostTo(j, o, "another rotator changed the record since it was read: not pushed")
			e.log.Debug("push not begun", "integration", in.Name, "error", err.Error())
			return
		}
		o.Err = fmt.Errorf("write state before the push: %w", err)
		return
	}
	// Ask the provider (provider_check), under the lease so that one
	// rotator's failed check cannot make another's push lose its Begin: a
	// credential it refuses, or one it could not judge, is never pushed.
	if err := e.askProvider(ctx, in, j.built.Settings); err != nil {
		fail(err, nil) // releases a shared state's lease
		return
	}
	if stopped(req.Stop) || ctx.Err() != nil { // the check may have taken a while
		fail(ErrStopping, nil)
		return
	}
	live, note, err := e.preflight(ctx, token, in)
	if err != nil {
		fail(err, nil) // releases a shared state's lease
		return
	}
	if note != "" {
		o.Warnings = append(o.Warnings, note)
	}
	err = e.fencedPatch(ctx, token, in, j.built.Settings, o)
	var lost leaseLost
	var unsent notPushed
	switch {
	case errors.As(err, &lost):
		e.lostTo(j, o, "another rotator took the lease over before the PATCH: not pushed")
		e.log.Warn("lease lost before the PATCH: not pushed", "integration", in.Name, "error", err.Error())
		return
	case errors.As(err, &unsent):
		fail(fmt.Errorf("extend the lease before the push: %w", unsent.error), nil)
		return
	case errors.Is(err, ErrUnverified): // pushed; the lease could not be extended for the read-back
		e.writeAudit(o, rec("push", "ok", nil, j.pushed.VaultVersion))
		e.writeAudit(o, rec("verify", "unknown", err, j.pushed.VaultVersion))
		fail(err, nil, doubt(whyUnverified))
		return
	case err != nil:
		e.writeAudit(o, rec("push", "failed", err, j.pushed.VaultVersion))
		if hood.MayHaveLanded(err) {
			fail(err, nil, doubt(whyAnswerLost))
		} else {
			fail(err, nil)
		}
		return
	}
	e.writeAudit(o, rec("push", "ok", nil, j.pushed.VaultVersion))

	verr := e.verify(ctx, token, in, live)
	switch {
	case errors.Is(verr, ErrUnverified):
		e.writeAudit(o, rec("verify", "unknown", verr, j.pushed.VaultVersion))
		fail(verr, nil, doubt(whyUnverified)) // not marked failed: the next pass tries again
		return
	case verr == nil:
		e.writeAudit(o, rec("verify", "ok", nil, j.pushed.VaultVersion))
		e.confirm(req, j, o)
		return
	}
	e.writeAudit(o, rec("verify", "failed", verr, j.pushed.VaultVersion))
	bad := j.pushed
	bad.At = e.now()
	if in.OnVerifyFailure != "rollback" {
		fail(verr, &bad, doubt(whyVerifyFailed))
		return
	}
	landed, rerr := e.rollback(ctx, token, j, live, o)
	if rerr == nil {
		// Hood holds the confirmed rollback: the bad push is no doubt.
		o.RolledBack = true
		e.writeAudit(o, rec("rollback", "ok", nil, versionOf(j.rec.Confirmed)))
		fail(fmt.Errorf("%w; rolled back to version %d", verr, versionOf(j.rec.Confirmed)), &bad)
		return
	}
	e.writeAudit(o, rec("rollback", "failed", rerr, versionOf(j.rec.Confirmed)))
	doubts := []state.Doubt{doubt(whyVerifyFailed)}
	if landed != nil {
		doubts = append(doubts, *landed)
	}
	fail(fmt.Errorf("%w; rollback failed: %w", verr, rerr), &bad, doubts...)
}

// confirm records a push whose verification passed.
func (e *Engine) confirm(req Request, j job, o *Outcome) {
	p := j.pushed
	p.At = e.now()
	if err := e.state.Confirm(j.in.Name, p, e.attempt(req, p.VaultVersion, o.Settings, ResultPushed, nil)); errors.Is(err, state.ErrNotHolder) {
		// The lease expired and another rotator took it: it pushes the
		// same settings again.
		o.Warnings = append(o.Warnings, "pushed, but the lease was lost before the confirmation: "+err.Error())
	} else if err != nil {
		// The push stays Pending in the state: the next pass pushes again.
		o.Warnings = append(o.Warnings, "pushed, but the state was not saved: "+err.Error())
	}
	o.Result = ResultPushed
	at := p.At
	o.Confirmed = &at
}

// attempt is the history entry of a push.
func (e *Engine) attempt(req Request, version int, settings []string, result Result, err error) state.Attempt {
	a := state.Attempt{At: e.now(), Trigger: string(req.Trigger), Result: string(result), VaultVersion: version, Settings: settings}
	if err != nil {
		a.Error = err.Error()
		a.TraceID = traceID(err)
	}
	return a
}

func versionOf(p *state.Pushed) int {
	if p == nil {
		return 0
	}
	return p.VaultVersion
}

func traceID(err error) string {
	var apiErr *hood.APIError
	if errors.As(err, &apiErr) {
		return apiErr.TraceID
	}
	return ""
}

func (e *Engine) writeAudit(o *Outcome, r audit.Record) {
	if err := e.audit.Write(r); err != nil {
		o.Warnings = append(o.Warnings, "audit record not written: "+err.Error())
		e.log.Error("cannot write the audit log", "integration", r.Integration, "error", err.Error())
	}
}

// preflight reads the integration from Hood and checks it against the
// configuration before anything is pushed: the live provider's settings
// must be the configured provider's (a provider name other than the one
// expected is only a note, returned for the outcome's warnings), and every
// setting to push must be in the live provider's schema (Hood drops unknown
// settings silently).
func (e *Engine) preflight(ctx context.Context, token secret.Value, in config.Integration) (live *hood.Integration, note string, err error) {
	live, err = e.hood.GetIntegration(ctx, token, in.ID)
	if err != nil {
		return nil, "", fmt.Errorf("read integration %s from Hood: %w", in.ID, err)
	}
	// The live settings list must equal the configured provider's, and
	// BuildSettings builds only that provider's settings: no setting pushed
	// can be one Hood would drop silently.
	note, err = checkProvider(in, live)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrPreflight, err)
	}
	return live, note, nil
}

// checkProvider decides whether the live integration's provider is the
// configured one, on its settings schema (hood.MatchLive): Hood documents
// provider names for Twilio only. note is set when Hood names the provider
// otherwise than rotator expects.
func checkProvider(in config.Integration, live *hood.Integration) (note string, err error) {
	p, ok := hood.LookupProvider(in.Provider)
	if !ok {
		return "", fmt.Errorf("integration %s: unknown provider %q", in.ID, in.Provider)
	}
	note, err = hood.MatchLive(p, live.Provider)
	if err != nil {
		return "", fmt.Errorf("integration %s in Hood is not a %s integration: %w", in.ID, in.Provider, err)
	}
	if note != "" {
		note = fmt.Sprintf("integration %s: %s", in.ID, note)
	}
	return note, nil
}

// Verification outcomes of effective_status.
var failedStatuses = []string{"inactive", "failed", "error", "invalid", "disabled"}

// verify reads the integration back after a push: the provider's settings
// must still be the configured provider's and effective_status must be
// active. A status that is neither active nor failed (a credentials test in
// progress) is waited for, up to hood.verify_timeout. An integration that was inactive before the
// push (switched off by its owner) is not expected to become active.
func (e *Engine) verify(ctx context.Context, token secret.Value, in config.Integration, before *hood.Integration) error {
	deadline := e.now().Add(e.cfg.Hood.VerifyTimeout.D())
	interval := min(max(e.cfg.Hood.VerifyTimeout.D()/15, 100*time.Millisecond), 2*time.Second)
	for {
		got, err := e.hood.GetIntegration(ctx, token, in.ID)
		if err != nil {
			return fmt.Errorf("%w: read integration %s back: %w", ErrUnverified, in.ID, err)
		}
		if _, err := checkProvider(in, got); err != nil {
			return fmt.Errorf("%w: %w", ErrVerify, err)
		}
		status := strings.ToLower(got.EffectiveStatus)
		switch {
		case status == "active":
			return nil
		case strings.EqualFold(before.Status, "inactive"):
			return nil // switched off by its owner: nothing to test
		case slices.Contains(failedStatuses, status):
			return fmt.Errorf("%w: Hood reports effective_status %q for integration %s after the push: the new credentials do not work", ErrVerify, got.EffectiveStatus, in.ID)
		}
		if !e.now().Add(interval).Before(deadline) {
			return fmt.Errorf("%w: effective_status of integration %s still %q after %s", ErrUnverified, in.ID, got.EffectiveStatus, e.cfg.Hood.VerifyTimeout.D())
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %w", ErrUnverified, ctx.Err())
		case <-t.C:
		}
	}
}

// rollback pushes the last known-good settings again: the Vault KV version
// recorded as last confirmed, read from Vault (never from the state file),
// built with the integration's current mapping, then verified. landed is
// the rollback's push when it failed after its PATCH may have reached Hood.
func (e *Engine) rollback(ctx context.Context, token secret.Value, j job, live *hood.Integration, o *Outcome) (landed *state.Doubt, err error) {
	good := j.rec.Confirmed
	switch {
	case good == nil:
		return nil, errors.New("no earlier confirmed push to roll back to")
	case j.in.Source.KVVersion != 2 || good.VaultVersion == 0:
		return nil, errors.New("KV v1 keeps no versions to roll back to")
	case good.VaultPath != o.VaultPath:
		return nil, fmt.Errorf("the last good push came from %s, not %s", good.VaultPath, o.VaultPath)
	}
	kv, err := e.vault.ReadKVVersion(ctx, j.in.Source.Mount, j.in.Source.Path, good.VaultVersion)
	if err != nil {
		return nil, err
	}
	b, err := BuildSettings(j.in, kv)
	if err != nil {
		return nil, fmt.Errorf("version %d: %w", good.VaultVersion, err)
	}
	plain := reveal(b.Settings)
	p := state.Pushed{
		Fingerprint:  e.state.Fingerprint(j.in.ID, j.in.Provider, plain),
		SettingMACs:  e.state.SettingMACs(j.in.ID, j.in.Provider, plain),
		VaultPath:    o.VaultPath,
		VaultVersion: good.VaultVersion,
	}
	doubt := func() *state.Doubt {
		d := state.Doubt{Pushed: p, Why: whyRollback}
		d.At = e.now()
		return &d
	}
	if err := e.askProvider(ctx, j.in, b.Settings); err != nil {
		return nil, fmt.Errorf("rollback not pushed: %w", err)
	}
	// With a shared state: no lease, no rollback PATCH.
	var lost leaseLost
	var unsent notPushed
	switch err := e.fencedPatch(ctx, token, j.in, b.Settings, o); {
	case errors.As(err, &lost):
		return nil, fmt.Errorf("rollback not pushed: %w", lost.error)
	case errors.As(err, &unsent):
		return nil, fmt.Errorf("rollback not pushed: %w", unsent.error)
	case errors.Is(err, ErrUnverified):
		return doubt(), err
	case err != nil && hood.MayHaveLanded(err):
		return doubt(), err
	case err != nil:
		return nil, err
	}
	if err := e.verify(ctx, token, j.in, live); err != nil {
		return doubt(), fmt.Errorf("after rolling back: %w", err)
	}
	p.At = e.now()
	a := state.Attempt{At: e.now(), Trigger: "rollback", Result: "rolled back", VaultVersion: good.VaultVersion, Settings: b.Names()}
	if err := e.state.Confirm(j.in.Name, p, a); err != nil {
		// Hood holds the rollback, but the state does not say so.
		return doubt(), fmt.Errorf("rolled back, but the state was not saved: %w", err)
	}
	return nil, nil
}

func stopped(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}
