package daemon

import (
	"slices"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/rotate"
)

// dispatcher is the loop's policy, with no goroutines, channels or clock;
// its zero value is ready. One pass at a time; next come the start-up pass,
// a reload, admin requests (identical ones share the next pass to start),
// schedule ticks (dropped if the running push covers them), watch changes.
type dispatcher struct {
	started, reload bool
	pending         [][]*forced     // groups of identical admin requests
	due, watchDue   []string        // names due by schedule, by watch
	run             *rotate.Request // the running pass; nil when none
}

// work is what the loop does next: a reload, or a pass and its waiters.
type work struct {
	reload  bool
	req     rotate.Request
	waiters []*forced
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

// passDone ends the running pass.
func (d *dispatcher) passDone() { d.run = nil }

// next takes the work to do now, if any; a pass runs until passDone.
func (d *dispatcher) next(cfg *config.Config) (w work, ok bool) {
	switch {
	case d.run != nil:
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

// waiting returns the admin requests that wait for a pass (at shutdown).
func (d *dispatcher) waiting() []*forced { return slices.Concat(d.pending...) }

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
