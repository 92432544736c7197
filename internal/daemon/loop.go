package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/state"
)

// forced is one request for a pass from the admin API: a forced pass, a
// forced dry run or a plan (a dry run with change detection).
type forced struct {
	req     rotate.Request
	arrived time.Time
	reply   chan passResult
}

type passResult struct {
	rep rotate.Report
	err error
}

// running is the pass in progress; the zero value is none (nil done blocks).
type running struct {
	waiters []*forced
	stop    chan struct{}
	cancel  context.CancelFunc
	done    chan passResult
}

// session is the per-configuration machinery: schedules, Vault upkeep, the
// watcher (watch mode) and the rotation metrics' refresh. close waits for
// all of its goroutines.
type session struct {
	sched  *scheduler
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// resume are the rotations in progress when the configuration was put
	// in force, for the loop to resume (takeResume).
	resume []string
}

// takeResume returns the rotations to resume, once.
func (s *session) takeResume() []string {
	r := s.resume
	s.resume = nil
	return r
}

func (s *session) close() {
	s.cancel()
	s.sched.stop()
	s.wg.Wait()
}

// loop owns passes and rotation runs until ctx ends, then shuts down; the
// dispatcher decides.
func (d *Daemon) loop(ctx context.Context, w *world) {
	sess := d.install(ctx, w, nil)
	var disp dispatcher
	var run running
	var rrun rotRunning
	var wakes wakeups
	var held wakeups // integrations another rotator held, due when its lease ends
	disp.onResume(sess.takeResume())
	for {
		w := d.world()
		switch wk, ok := disp.next(w.cfg); {
		case ok && wk.reload:
			sess = d.doReload(ctx, sess)
			disp.onResume(wakes.without(sess.takeResume()))
			continue
		case ok && wk.rot != nil:
			rrun = d.startRotation(ctx, w, *wk.rot)
		case ok:
			run = d.start(ctx, w, wk.req, wk.waiters)
		}
		select {
		case <-ctx.Done():
			wakes.stop()
			held.stop()
			d.shutdown(run, rrun, disp.waiting(), disp.waitingRotations(), sess, &wakes)
			return
		case f := <-d.force:
			disp.onForced(f)
		case a := <-d.rotAsk:
			disp.onRotationAsk(a)
		case names := <-d.ticks:
			disp.onTick(names)
		case names := <-d.rotTicks:
			disp.onRotationTick(names)
		case names := <-d.rotAdrift:
			disp.onResume(wakes.without(names))
		case names := <-d.watchTicks:
			disp.onWatch(names)
		case now := <-wakes.c():
			disp.onWake(wakes.due(now))
		case now := <-held.c():
			disp.onTick(held.due(now))
		case <-d.opts.Reload:
			disp.onReload()
		case r := <-run.done:
			d.finish(run, r)
			followHeld(r, &held)
			run = running{}
			disp.passDone()
		case a := <-rrun.done:
			d.finishRotation(rrun, a, &wakes)
			rrun = rotRunning{}
			disp.rotationDone()
		}
	}
}

// start runs a pass in its own goroutine. The pass does not end with the
// daemon's context: on shutdown it is told to start no new push, and only
// cancelled if the pushes in flight outlast the shutdown timeout.
func (d *Daemon) start(ctx context.Context, w *world, req rotate.Request, waiters []*forced) running {
	passCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r := running{waiters: waiters, stop: make(chan struct{}), cancel: cancel, done: make(chan passResult, 1)}
	req.Stop = r.stop
	if req.Failing == nil {
		req.Failing = d.status.failing
	}
	go func() {
		rep, err := w.Engine.Pass(passCtx, req)
		r.done <- passResult{rep: rep, err: err}
	}()
	return r
}

// finish records a pass and answers the requests that waited for it.
func (d *Daemon) finish(r running, res passResult) {
	r.cancel()
	if res.err == nil {
		d.status.record(res.rep)
		if !res.rep.DryRun {
			d.metrics.ObservePass(res.rep)
		}
	}
	for _, f := range r.waiters {
		f.reply <- res
	}
}

// followHeld sets a wake-up for each integration the pass left to another
// rotator (Outcome.Recheck: the end of that rotator's lease, or now): should
// the holder have died mid-push, the integration is pushed when its lease
// ends, not at its next schedule, which may be hours away. An integration
// the pass settled otherwise loses its wake-up. A dry run settles nothing.
func followHeld(r passResult, held *wakeups) {
	if r.err != nil || r.rep.DryRun {
		return
	}
	for _, o := range r.rep.Outcomes {
		if o.Recheck == nil {
			held.drop(o.Name)
			continue
		}
		held.set(o.Name, o.Recheck.Add(heldMargin))
	}
}

// heldMargin is waited after Outcome.Recheck: a lease's end is compared
// on this process's clock, and a second later the lease has ended by
// whole-second stamps too; a recheck "at once" waits a second for the
// other rotator's pass to settle.
const heldMargin = time.Second

// install puts a configuration in force: schedules, Vault upkeep, the
// watcher, status and metric series. The previous session, if any, is
// closed first.
func (d *Daemon) install(ctx context.Context, w *world, old *session) *session {
	if old != nil {
		old.close()
	}
	// The configuration's rate limits take effect in place: the requests
	// the limiter counted and any Retry-After hold are kept.
	if err := w.Limiter.SetLimits(w.Limits); err != nil {
		// build checked the limits, so this is a bug; the old ones stay.
		d.log.Error("cannot set the hood rate limits", "error", err.Error())
	}
	// ha.mode vault: every Hood request waits for the fleet's allowance.
	w.UseAllowance()
	sctx, cancel := context.WithCancel(ctx)
	sched, err := newScheduler(sctx, w.cfg, d.ticks, d.rotTicks)
	if err != nil {
		// Validate parsed every schedule, so this is a bug; run without schedules.
		d.log.Error("cannot schedule passes", "error", err.Error())
		sched, _ = newScheduler(sctx, &config.Config{Timezone: "UTC"}, d.ticks, d.rotTicks)
	}
	s := &session{sched: sched, cancel: cancel}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		w.Vault.KeepAlive(sctx)
	}()
	s.resume = d.installRotations(sctx, w)
	if w.Rotations != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			d.refreshRotations(sctx, w.Rotations)
		}()
	}
	d.mu.Lock()
	d.cur = w
	d.mu.Unlock()
	providers := map[string]string{}
	maxAges := map[string]time.Duration{}
	for _, in := range w.cfg.Integrations {
		providers[in.Name] = in.Provider
		if age := w.cfg.EffectiveMaxAge(in); age > 0 { // its own, else its rotation's
			maxAges[in.Name] = age
		}
	}
	d.metrics.Retain(providers)
	d.metrics.SetMaxAges(maxAges)
	saved := d.savedRecords(w, d.status.unseeded(w.cfg.Integrations))
	d.status.configure(w.cfg.Integrations, sched.next, func(name string) (state.Record, bool) {
		rec, ok := saved[name]
		return rec, ok
	})
	for _, st := range d.status.list() {
		d.metrics.Seed(st)
	}
	d.startWatcher(sctx, w, s, old == nil) // at start-up, after its baseline
	sched.start()
	return s
}

// doReload loads the configuration file again. An invalid file is refused,
// each problem logged, and the configuration in force stays.
func (d *Daemon) doReload(ctx context.Context, sess *session) *session {
	log := d.log.With("config", d.opts.ConfigPath)
	cfg, err := config.LoadAndValidate(d.opts.ConfigPath, d.opts.Getenv)
	if err == nil && cfg.HA.Mode != d.haMode {
		err = fmt.Errorf("ha.mode changed from %q to %q: restart rotator to change it", d.haMode, cfg.HA.Mode)
	}
	if err != nil {
		d.metrics.ReloadFailed()
		var ve *config.ValidationError
		if errors.As(err, &ve) {
			for _, p := range ve.Problems {
				log.Error("reload refused: invalid configuration", "problem", p.String())
			}
		} else {
			log.Error("reload refused", "error", err.Error())
		}
		return sess
	}
	w, err := d.build(cfg)
	if err == nil {
		var token = d.srv
		t, terr := readAdminToken(cfg.Admin.TokenFile)
		if terr != nil {
			err = terr
		} else {
			token.SetToken(t)
		}
	}
	if err != nil {
		d.metrics.ReloadFailed()
		log.Error("reload refused", "error", err.Error())
		return sess
	}
	if old := d.world(); old != nil {
		if old.cfg.Admin.Listen != cfg.Admin.Listen {
			log.Warn("admin.listen changed: it takes effect at the next restart", "admin_listen", old.cfg.Admin.Listen)
		}
		if old.cfg.State.Path != cfg.State.Path {
			log.Warn("state.path changed: it takes effect at the next restart", "path", old.cfg.State.Path)
		}
		if old.cfg.Audit.Path != cfg.Audit.Path {
			log.Warn("audit.path changed: it takes effect at the next restart", "path", old.cfg.Audit.Path)
		}
	}
	sess = d.install(ctx, w, sess)
	d.metrics.ReloadSucceeded(time.Now())
	log.Info("configuration reloaded", "integrations", len(cfg.Integrations))
	return sess
}

// shutdown stops schedules, lets the pushes in flight or the rotation run
// finish (bounded by the shutdown timeout), answers waiting requests, and
// closes the admin server.
func (d *Daemon) shutdown(run running, rrun rotRunning, waiting []*forced, rotWaiting []*rotAsk, sess *session, wakes *wakeups) {
	close(d.quit)
	d.log.Info("shutting down", "pass_running", run.done != nil, "rotation_running", rrun.done != nil)
	sess.cancel()
	sess.sched.stop()
	if run.done != nil {
		close(run.stop)
		t := time.NewTimer(d.opts.ShutdownTimeout)
		select {
		case res := <-run.done:
			d.finish(run, res)
		case <-t.C:
			d.log.Warn("pushes still in flight after the shutdown timeout: cancelling them", "timeout", d.opts.ShutdownTimeout.String())
			run.cancel()
			d.finish(run, <-run.done)
		}
		t.Stop()
	}
	if rrun.done != nil {
		t := time.NewTimer(d.opts.ShutdownTimeout)
		select {
		case a := <-rrun.done:
			d.finishRotation(rrun, a, wakes)
		case <-t.C:
			// A rotation's record is crash-safe: each step is written to
			// Vault before it is taken, so a run cancelled here is resumed
			// (or undone) at the next start-up, by this rotator or another
			// once its lease expires.
			d.log.Warn("rotation still running after the shutdown timeout: cancelling it; its record lets the next start resume it",
				"rotation", rrun.work.name, "timeout", d.opts.ShutdownTimeout.String())
			rrun.cancel()
			d.finishRotation(rrun, <-rrun.done, wakes)
		}
		t.Stop()
	}
	wakes.stop()
	for _, f := range waiting {
		f.reply <- passResult{err: ErrShuttingDown}
	}
	for _, a := range rotWaiting {
		a.reply <- rotationAnswer{err: ErrShuttingDown}
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.ShutdownTimeout)
	defer cancel()
	if err := d.srv.Shutdown(ctx); err != nil {
		d.log.Warn("admin server shutdown", "error", err.Error())
	}
	sess.wg.Wait()
	d.log.Info("stopped")
}
