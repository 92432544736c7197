package daemon

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ocamba-rotator/rotator/internal/metrics"
	"github.com/ocamba-rotator/rotator/internal/rotation"
)

// Rotation timing of the daemon.
const (
	// graceMargin is how long after the end of grace a waiting rotation is
	// woken, so that its run never comes before it (a wall clock stepped).
	graceMargin = time.Second
	// rotationRetry is how long after a failed run a rotation in progress
	// (or one a resume could not read) is run again.
	rotationRetry = 5 * time.Minute
	// rotationRefresh is how often the rotation metrics are read again
	// from the records: with several rotators, another one may move them.
	rotationRefresh = time.Minute
)

// rotAsk is one admin request for a rotation: a run, or its plan (DryRun).
type rotAsk struct {
	name  string
	req   rotation.Request
	reply chan rotationAnswer
}

type rotationAnswer struct {
	res rotation.Result
	err error
}

// rotRunning is the rotation run in progress; the zero value is none (nil
// done blocks).
type rotRunning struct {
	work    rotWork
	started time.Time
	cancel  context.CancelFunc
	done    chan rotationAnswer
}

// startRotation runs a rotation in its own goroutine, in the loop's one
// slot: it runs its passes itself, so no pass runs beside it. Like a pass,
// the run does not end with the daemon's context (see shutdown).
func (d *Daemon) startRotation(ctx context.Context, w *world, wk rotWork) rotRunning {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := rotRunning{work: wk, started: time.Now(), cancel: cancel, done: make(chan rotationAnswer, 1)}
	go func() {
		res, err := d.runRotation(rctx, w, wk)
		r.done <- rotationAnswer{res: res, err: err}
	}()
	return r
}

// runRotation makes one run. An operator's request (admin) for a rotation
// in progress resumes it and begins no new one: the answer says so.
func (d *Daemon) runRotation(ctx context.Context, w *world, wk rotWork) (rotation.Result, error) {
	if w.Rotations == nil {
		return rotation.Result{Name: wk.name}, fmt.Errorf("%w %q", rotation.ErrUnknownRotation, wk.name)
	}
	req, note := wk.req, ""
	if req.Begin && req.Trigger == triggerAdmin {
		if st, err := w.Rotations.StatusOf(ctx, wk.name); err == nil && st.InProgress() {
			req.Begin = false
			note = fmt.Sprintf("a run was in progress (step %s): it was resumed, and no new rotation begun", st.Step)
		}
	}
	res, err := w.Rotations.Run(ctx, wk.name, req)
	if note != "" {
		res.Notes = append([]string{note}, res.Notes...)
	}
	return res, err
}

// finishRotation records a run, sets the rotation's wake-up, and answers
// the requests that waited for it.
func (d *Daemon) finishRotation(r rotRunning, a rotationAnswer, wakes *wakeups) {
	r.cancel()
	wk, res, err := r.work, a.res, a.err
	log := d.log.With("rotation", wk.name, "trigger", wk.req.Trigger)
	switch {
	case wk.req.DryRun:
	case errors.Is(err, rotation.ErrUnknownRotation):
		wakes.drop(wk.name) // removed by a reload
	case errors.Is(err, rotation.ErrBusy):
		// The holder finishes it. If the holder died (a crash, or this
		// process before a restart: a new process has a new identity),
		// its lease runs out: look again then.
		log.Info("rotation held by another rotator: left to it", "reason", err.Error())
		d.metrics.ObserveRotationRun(wk.name, metrics.RunBusy)
		if be, ok := errors.AsType[*rotation.BusyError](err); ok {
			wakes.set(wk.name, be.Until.Add(graceMargin))
		}
	default:
		if !wk.req.Begin && err == nil && res.GraceUntil == nil && res.Step.AtRest() && res.Since.Before(r.started) {
			log.Debug("rotation at rest: nothing to resume", "step", string(res.Step))
			wakes.drop(wk.name)
			break
		}
		d.metrics.ObserveRotationRun(wk.name, metrics.RunResult(res, err))
		switch {
		case err != nil:
			log.Error("rotation run failed", "step", string(res.Step), "error", err.Error())
		default:
			log.Info("rotation run finished", "step", string(res.Step), "key_id", res.KeyID, "notes", len(res.Notes))
		}
		switch {
		case err == nil && res.GraceUntil != nil:
			at := res.GraceUntil.Add(graceMargin)
			log.Info("rotation waits for the end of its grace period", "until", at.UTC().Format(time.RFC3339))
			wakes.set(wk.name, at)
		case err != nil && (!res.Step.AtRest() || res.Step == "" && !wk.req.Begin):
			at := time.Now().Add(rotationRetry)
			log.Warn("rotation left in progress: it is run again later", "step", string(res.Step), "until", at.UTC().Format(time.RFC3339))
			wakes.set(wk.name, at)
		default:
			wakes.drop(wk.name)
		}
	}
	for _, w := range wk.waiters {
		w.reply <- a
	}
}

// RunRotation implements admin.Service: it asks the loop for a run (or the
// plan) of the rotation and waits for its result. A run that failed is a
// result whose Error says why.
func (d *Daemon) RunRotation(ctx context.Context, name string, req rotation.Request) (rotation.Result, error) {
	if w := d.world(); w != nil {
		if _, ok := w.cfg.Rotation(name); !ok || w.Rotations == nil {
			return rotation.Result{}, fmt.Errorf("%w %q", rotation.ErrUnknownRotation, name)
		}
	}
	a := &rotAsk{name: name, req: req, reply: make(chan rotationAnswer, 1)}
	select {
	case d.rotAsk <- a:
	case <-d.quit:
		return rotation.Result{}, ErrShuttingDown
	case <-ctx.Done():
		return rotation.Result{}, ctx.Err()
	}
	select {
	case r := <-a.reply:
		switch {
		case r.err == nil, errors.Is(r.err, rotation.ErrBusy), errors.Is(r.err, rotation.ErrUnknownRotation), errors.Is(r.err, ErrShuttingDown):
			return r.res, r.err
		}
		if r.res.Error == "" {
			r.res.Error = r.err.Error()
		}
		if r.res.Name == "" {
			r.res.Name = name
		}
		return r.res, nil
	case <-ctx.Done():
		return rotation.Result{}, ctx.Err()
	}
}

// Rotations implements admin.Service: each configured rotation's record.
func (d *Daemon) Rotations(ctx context.Context) ([]rotation.Status, error) {
	w := d.world()
	switch {
	case w == nil:
		return nil, errors.New("configuration not loaded")
	case w.Rotations == nil:
		return nil, nil
	}
	return w.Rotations.Status(ctx)
}

// installRotations puts the rotations of w in force: their metric series
// (the grace, the runs, the step of each record) and the list of those in
// progress, which the loop resumes. Records that cannot be read are
// resumed too: a run of a rotation at rest that does not begin does nothing.
func (d *Daemon) installRotations(ctx context.Context, w *world) (resume []string) {
	graces := map[string]time.Duration{}
	for _, r := range w.cfg.Rotations {
		graces[r.Name] = r.Grace.D()
	}
	d.metrics.RetainRotations(graces)
	if w.Rotations == nil {
		return nil
	}
	// Bounded like the saved records: a daemon whose Vault is down starts.
	rctx, cancel := context.WithTimeout(ctx, savedBudget)
	defer cancel()
	st, err := w.Rotations.Status(rctx)
	if err != nil {
		d.log.Error("cannot read the rotation records: every rotation is resumed", "error", err.Error())
		for _, r := range w.cfg.Rotations {
			resume = append(resume, r.Name)
		}
		return resume
	}
	for _, s := range st {
		d.metrics.SeedRotation(s)
		if s.InProgress() {
			d.log.Info("rotation in progress: resuming it", "rotation", s.Name, "step", string(s.Step))
			resume = append(resume, s.Name)
		}
	}
	return resume
}

// refreshRotations reads the records again every RotationRefresh until ctx
// ends: for the metrics (another rotator may have moved them), and to
// resume a rotation left in progress by a holder that died (its lease ran
// out): without this a survivor would take it up only at its next
// schedule. One waiting out its grace unheld gets a wake-up at its end.
func (d *Daemon) refreshRotations(ctx context.Context, r *rotation.Runner) {
	every := d.opts.RotationRefresh
	if every <= 0 {
		every = rotationRefresh
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			st, err := r.Status(ctx)
			if err != nil {
				d.log.Debug("cannot read the rotation records", "error", err.Error())
				continue
			}
			var adrift []string
			for _, s := range st {
				d.metrics.SeedRotation(s)
				if s.InProgress() && s.HeldBy == "" {
					adrift = append(adrift, s.Name)
				}
			}
			if len(adrift) == 0 {
				continue
			}
			select {
			case d.rotAdrift <- adrift:
			case <-ctx.Done():
				return
			}
		}
	}
}

// wakeups are the times rotations wait for: the end of their grace, or a
// retry. The loop's one timer fires at the earliest.
type wakeups struct {
	at    map[string]time.Time
	timer *time.Timer
}

// set makes name due at t (replacing its earlier wake-up).
func (w *wakeups) set(name string, t time.Time) {
	if w.at == nil {
		w.at = map[string]time.Time{}
	}
	w.at[name] = t
	w.arm()
}

// drop forgets the wake-up of name.
func (w *wakeups) drop(name string) {
	if _, ok := w.at[name]; ok {
		delete(w.at, name)
		w.arm()
	}
}

// without returns the names that have no wake-up: a rotation that has one
// is run then.
func (w *wakeups) without(names []string) []string {
	return slices.DeleteFunc(names, func(n string) bool {
		_, ok := w.at[n]
		return ok
	})
}

// c fires at the earliest wake-up; nil (never) when there is none.
func (w *wakeups) c() <-chan time.Time {
	if w.timer == nil {
		return nil
	}
	return w.timer.C
}

// due removes and returns the names due at now, in name order.
func (w *wakeups) due(now time.Time) []string {
	var names []string
	for n, t := range w.at {
		if !t.After(now) {
			names = append(names, n)
			delete(w.at, n)
		}
	}
	slices.Sort(names)
	w.arm()
	return names
}

// stop stops the timer.
func (w *wakeups) stop() {
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
}

// arm sets the timer to the earliest wake-up.
func (w *wakeups) arm() {
	w.stop()
	var first time.Time
	for _, t := range w.at {
		if first.IsZero() || t.Before(first) {
			first = t
		}
	}
	if !first.IsZero() {
		w.timer = time.NewTimer(max(0, time.Until(first)))
	}
}
