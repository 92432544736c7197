package rotate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/secret"
	"github.com/ocamba-rotator/rotator/internal/state"
)

// leaser is a State shared by several rotators (internal/ha, ha.mode
// vault): it holds a lease per integration from Begin to the outcome.
type leaser interface {
	// Fence checks the lease this rotator holds (check-and-set on the
	// version it wrote last) and extends it; state.ErrNotHolder when it
	// was taken over.
	Fence(name string) error
	// LeaseDeadline is when the push begun on the integration must be
	// done; false when no lease is held.
	LeaseDeadline(name string) (time.Time, bool)
	// MarkSuspect flags the record: a PATCH of this rotator may have
	// reached Hood after another rotator's push.
	MarkSuspect(name string) error
}

// reserver is a Hood client that can take a request's rate-limit start
// ahead of the request (*hood.Client).
type reserver interface {
	Reserve(ctx context.Context) (context.Context, func(), error)
}

// ErrLeaseDeadline is the reason of a PATCH that did not finish (retries
// included) before the lease this rotator holds on the integration ran
// out: another rotator may take it over and push.
var ErrLeaseDeadline = errors.New("push not finished before the lease ran out")

// leaseLost is fencedPatch's error when the lease was found taken over
// before the PATCH: nothing was sent. Its text is the Fence's.
type leaseLost struct{ error }

func (l leaseLost) Unwrap() error { return l.error }

// notPushed is fencedPatch's error when the lease could not be checked
// before the PATCH (Vault unreachable): nothing was sent.
type notPushed struct{ error }

func (n notPushed) Unwrap() error { return n.error }

// fencedPatch sends settings to Hood. With a shared state (docs/ha.md,
// steps 4-8) the lease is checked right before the PATCH (leaseLost,
// notPushed: nothing sent), the PATCH and its retries are bounded by the
// lease, and the lease is checked and extended again after a PATCH that
// went out, or may have: found taken over, the record is flagged suspect.
// A PATCH that succeeded but whose lease could not be extended for the
// read-back is ErrUnverified.
func (e *Engine) fencedPatch(ctx context.Context, token secret.Value, in config.Integration, settings map[string]secret.Value, o *Outcome) error {
	if e.lease == nil {
		return e.hood.UpdateSettings(ctx, token, in.ID, settings)
	}
	// Take the PATCH's rate-limit start before the fence: the PATCH is
	// bounded by the lease the fence extends, and a wait for a full minute
	// window (after a burst, or a handover) could outlast it.
	if r, ok := e.hood.(reserver); ok {
		rctx, release, err := r.Reserve(ctx)
		if err != nil {
			return err // not sent (hood.ErrNotSent): the pass stopped, or a hold outlasts it
		}
		defer release()
		ctx = rctx
	}
	if err := e.lease.Fence(in.Name); errors.Is(err, state.ErrNotHolder) {
		return leaseLost{err}
	} else if err != nil {
		return notPushed{err}
	}
	err := e.boundedPatch(ctx, token, in, settings)
	if errors.Is(err, hood.ErrNotSent) {
		return err
	}
	ferr := e.lease.Fence(in.Name)
	if errors.Is(ferr, state.ErrNotHolder) {
		e.markSuspect(o, in.Name)
	}
	if err == nil && ferr != nil {
		return fmt.Errorf("%w: the lease could not be extended after the push: %w", ErrUnverified, ferr)
	}
	return err
}

// boundedPatch is the PATCH under a lease: it and its retries are bounded
// by the lease's deadline, so that no request leaves after another rotator
// may have taken the lease over.
func (e *Engine) boundedPatch(ctx context.Context, token secret.Value, in config.Integration, settings map[string]secret.Value) error {
	deadline, ok := e.lease.LeaseDeadline(in.Name)
	if !ok {
		return fmt.Errorf("%w: no lease held on %s", ErrLeaseDeadline, in.Name)
	}
	pctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	err := e.hood.UpdateSettings(pctx, token, in.ID, settings)
	if err != nil && ctx.Err() == nil && errors.Is(pctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%w (lease until %s): %w", ErrLeaseDeadline, stamp(deadline), err)
	}
	return err
}

// markSuspect flags the record after a PATCH that went out (or may have)
// when the lease had been taken over: another rotator may have pushed
// (newer) settings before this PATCH reached Hood, so the next pass, of any
// rotator, pushes again.
func (e *Engine) markSuspect(o *Outcome, name string) {
	if err := e.lease.MarkSuspect(name); err != nil {
		o.Warnings = append(o.Warnings, "a late push may have overwritten another rotator's, and the record could not be flagged: "+err.Error())
		return
	}
	e.log.Warn("push made after the lease was taken over: record flagged, the next pass pushes again", "integration", name)
}

// acquireAllowance waits for the fleet's Hood allowance (ha.mode vault),
// until ctx ends or the pass is told to stop; without a shared state or an
// allowance it returns nil at once.
func (e *Engine) acquireAllowance(ctx context.Context, req Request) error {
	if e.allow == nil || e.lease == nil {
		return nil
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	if req.Stop != nil {
		go func() {
			select {
			case <-req.Stop:
				cancel()
			case <-actx.Done():
			}
		}()
	}
	if err := e.allow.Acquire(actx); err != nil {
		if stopped(req.Stop) {
			return ErrStopping
		}
		return fmt.Errorf("wait for the hood allowance: %w", err)
	}
	return nil
}

// releaseAllowance hands the fleet's Hood allowance over at the end of a
// pass that pushed; a failure is logged (the lease then runs out).
func (e *Engine) releaseAllowance(ctx context.Context, log *slog.Logger) {
	if e.allow == nil {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), allowanceReleaseTimeout)
	defer cancel()
	if err := e.allow.Release(rctx); err != nil {
		log.Warn("hood allowance not released: the other rotators wait for its lease to run out", "error", err.Error())
	}
}

// allowanceReleaseTimeout bounds the release of the allowance.
const allowanceReleaseTimeout = 10 * time.Second
