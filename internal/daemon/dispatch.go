package daemon

import (
	"slices"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/rotation"
)

// The triggers of rotation runs the daemon makes besides admin and schedule.
const (
	triggerAdmin    = string(rotate.TriggerAdmin)
	triggerSchedule = string(rotate.TriggerSchedule)
	triggerResume   = string(rotate.TriggerStartup) // a rotation in progress when the configuration was put in force
	triggerGrace    = "grace"                       // the end of the grace period (or a retry after a failed run)
)

// dispatcher is the loop's policy, with no goroutines, channels or clock;
// its zero value is ready. One piece of work at a time, a pass or a
// rotation run (which runs passes itself); next come the start-up pass, a
// reload, admin requests for a pass (identical ones share the next pass to
// start), admin requests for a rotation (identical ones share the next
// run), rotations due (schedule, resume, wake-up), schedule ticks (dropped
// if the running push covers them), watch changes.
type dispatcher struct {
	started, reload bool
	pending         [][]*forced     // groups of identical admin requests
	due, watchDue   []string        // names due by schedule, by watch
	run             *rotate.Request // the running pass; nil when none
	asks            [][]*rotAsk     // groups of identical admin requests for a rotation
	rotDue          []rotDue        // rotations due, in arrival order, one entry per name
	rot             *rotWork        // the running rotation run; nil when none
}

// work is what the loop does next: a reload, a pass and its waiters, or a
// rotation run.
type work struct {
	reload  bool
	req     rotate.Request
	waiters []*forced
	rot     *rotWork
}

// rotWork is a run of one rotation and the admin requests it answers.
type rotWork struct {
	name    string
	req     rotation.Request
	waiters []*rotAsk
}

// rotDue is a rotation due to run: by its schedule (Begin), or to resume
// a run in progress (at start-up, at the end of grace).
type rotDue struct {
	name, trigger string
	begin         bool
}

// onForced queues an admin request for the next pass, with the same ones.
func (d *dispatcher) onForced(f *forced) {
	if i := slices.IndexFunc(d.pending, func(g []*forced) bool { return same(g[0].req, f.req) }); i >= 0 {
		d.pending[i] = append(d.pending[i], f)
		return
	}
	d.pending = append(d.pending, []*forced{f})
}

// onTick marks scheduled integrations due, but those the running push covers.
func (d *dispatcher) onTick(names []string) {
	for _, n := range names {
		if (d.run == nil || d.run.DryRun || len(d.run.Only) > 0 && !slices.Contains(d.run.Only, n)) && !slices.Contains(d.due, n) {
			d.due = append(d.due, n)
		}
	}
}

// onWatch marks integrations whose watched Vault path changed due.
func (d *dispatcher) onWatch(names []string) {
	for _, n := range names {
		if !slices.Contains(d.watchDue, n) {
			d.watchDue = append(d.watchDue, n)
		}
	}
}

func (d *dispatcher) onReload() { d.reload = true }

// onRotationAsk queues an admin request for a rotation for its next run,
// with the same ones.
func (d *dispatcher) onRotationAsk(a *rotAsk) {
	if i := slices.IndexFunc(d.asks, func(g []*rotAsk) bool { return g[0].name == a.name && g[0].req.DryRun == a.req.DryRun }); i >= 0 {
		d.asks[i] = append(d.asks[i], a)
		return
	}
	d.asks = append(d.asks, []*rotAsk{a})
}

// onRotationTick marks scheduled rotations due, but one whose run that
// begins a rotation is running.
func (d *dispatcher) onRotationTick(names []string) {
	for _, n := range names {
		if d.rot == nil || d.rot.name != n || !d.rot.req.Begin {
			d.markDue(rotDue{name: n, trigger: triggerSchedule, begin: true})
		}
	}
}

// onResume marks rotations in progress due to resume (never dropped).
func (d *dispatcher) onResume(names []string) {
	for _, n := range names {
		d.markDue(rotDue{name: n, trigger: triggerResume})
	}
}

// onWake marks rotations whose wake-up time came due to resume.
func (d *dispatcher) onWake(names []string) {
	for _, n := range names {
		d.markDue(rotDue{name: n, trigger: triggerGrace})
	}
}

// markDue queues r, or merges it into the entry of its name: a run that
// begins also resumes, so a scheduled run takes a resume's place.
func (d *dispatcher) markDue(r rotDue) {
	i := slices.IndexFunc(d.rotDue, func(x rotDue) bool { return x.name == r.name })
	switch {
	case i < 0:
		d.rotDue = append(d.rotDue, r)
	case r.begin && !d.rotDue[i].begin:
		d.rotDue[i] = r
	}
}

// passDone ends the running pass.
func (d *dispatcher) passDone() { d.run = nil }

// rotationDone ends the running rotation run.
func (d *dispatcher) rotationDone() { d.rot = nil }

// next takes the work to do now, if any; a pass runs until passDone.
func (d *dispatcher) next(cfg *config.Config) (w work, ok bool) {
	switch {
	case d.run != nil || d.rot != nil:
		return w, false
	case !d.started:
		d.started = true
		w.req.Trigger = rotate.TriggerStartup
	case d.reload:
		d.reload = false
		return work{reload: true}, true
	case len(d.pending) > 0:
		w.waiters, d.pending = d.pending[0], d.pending[1:]
		w.req = w.waiters[0].req
		w.req.Trigger = rotate.TriggerAdmin
		if w.req.Force {
			w.req.NotBefore = w.waiters[len(w.waiters)-1].arrived
		}
	case len(d.asks) > 0:
		var g []*rotAsk
		g, d.asks = d.asks[0], d.asks[1:]
		w.rot = &rotWork{name: g[0].name, req: g[0].req, waiters: g}
		w.rot.req.Trigger = triggerAdmin
		if w.rot.req.Begin { // it resumes and begins: what was due is done
			d.rotDue = slices.DeleteFunc(d.rotDue, func(r rotDue) bool { return r.name == w.rot.name })
		}
		d.rot = w.rot
		return w, true
	case d.takeDue(cfg, &w):
		d.rot = w.rot
		return w, true
	default:
		w.req = rotate.Request{Trigger: rotate.TriggerSchedule, Only: take(cfg, &d.due)}
		if len(w.req.Only) == 0 {
			w.req = rotate.Request{Trigger: rotate.TriggerWatch, Only: take(cfg, &d.watchDue)}
		}
		if len(w.req.Only) == 0 {
			return work{}, false
		}
	}
	d.run = &w.req
	return w, true
}

// takeDue takes the first rotation due that cfg still has into w;
// rotations cfg no longer has are dropped.
func (d *dispatcher) takeDue(cfg *config.Config, w *work) bool {
	for len(d.rotDue) > 0 {
		r := d.rotDue[0]
		d.rotDue = d.rotDue[1:]
		if _, ok := cfg.Rotation(r.name); ok {
			w.rot = &rotWork{name: r.name, req: rotation.Request{Trigger: r.trigger, Begin: r.begin}}
			return true
		}
	}
	return false
}

// waiting returns the admin requests that wait for a pass (at shutdown).
func (d *dispatcher) waiting() []*forced { return slices.Concat(d.pending...) }

// waitingRotations returns the admin requests that wait for a rotation
// run (at shutdown).
func (d *dispatcher) waitingRotations() []*rotAsk { return slices.Concat(d.asks...) }

// same says two admin requests are of one kind and name the same integrations.
func same(a, b rotate.Request) bool {
	return a.DryRun == b.DryRun && a.Force == b.Force &&
		slices.Equal(slices.Sorted(slices.Values(a.Only)), slices.Sorted(slices.Values(b.Only)))
}

// take empties due and returns its names that cfg still has, in cfg's order.
func take(cfg *config.Config, due *[]string) (names []string) {
	for _, in := range cfg.Integrations {
		if slices.Contains(*due, in.Name) {
			names = append(names, in.Name)
		}
	}
	*due = nil
	return names
}
