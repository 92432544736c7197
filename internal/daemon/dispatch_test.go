package daemon

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/rotation"
)

// script is a dispatcher fed one step at a time, as the loop feeds it.
type script struct {
	d     dispatcher
	cfg   *config.Config
	rotID map[*rotAsk]int // the ids of the rotation requests
}

type step func(t *testing.T, s *script)

// arrival is when request id arrived: id seconds after a fixed time.
func arrival(id int) time.Time { return time.Date(2026, 1, 1, 0, 0, id, 0, time.UTC) }

// configOf is a configuration of the integrations named; a name that
// starts with "r" is a rotation.
func configOf(names ...string) *config.Config {
	cfg := &config.Config{}
	for _, n := range names {
		if strings.HasPrefix(n, "r") {
			cfg.Rotations = append(cfg.Rotations, config.Rotation{Name: n})
			continue
		}
		cfg.Integrations = append(cfg.Integrations, config.Integration{Name: n})
	}
	return cfg
}

// ask is admin request id of a kind (push, dry, plan or changed) for only.
func ask(id int, kind string, only ...string) step {
	req := rotate.Request{Only: only, Force: kind == "push" || kind == "dry", DryRun: kind == "dry" || kind == "plan"}
	return func(_ *testing.T, s *script) { s.d.onForced(&forced{req: req, arrived: arrival(id)}) }
}

// askRotation is admin request id for a run (kind "run") or a dry run
// ("dry") of rotation name.
func askRotation(id int, kind, name string) step {
	req := rotation.Request{Begin: kind == "run", DryRun: kind == "dry"}
	return func(_ *testing.T, s *script) {
		a := &rotAsk{name: name, req: req, reply: make(chan rotationAnswer, 1)}
		if s.rotID == nil {
			s.rotID = map[*rotAsk]int{}
		}
		s.rotID[a] = id
		s.d.onRotationAsk(a)
	}
}

func rotTick(names ...string) step {
	return func(_ *testing.T, s *script) { s.d.onRotationTick(names) }
}
func resume(names ...string) step { return func(_ *testing.T, s *script) { s.d.onResume(names) } }
func wake(names ...string) step   { return func(_ *testing.T, s *script) { s.d.onWake(names) } }
func rotationDone() step          { return func(_ *testing.T, s *script) { s.d.rotationDone() } }

func tick(names ...string) step    { return func(_ *testing.T, s *script) { s.d.onTick(names) } }
func changed(names ...string) step { return func(_ *testing.T, s *script) { s.d.onWatch(names) } }
func reload() step                 { return func(_ *testing.T, s *script) { s.d.onReload() } }
func passDone() step               { return func(_ *testing.T, s *script) { s.d.passDone() } }

// reconfigure stands for what a reload installs.
func reconfigure(names ...string) step {
	return func(_ *testing.T, s *script) { s.cfg = configOf(names...) }
}

// next checks the work the dispatcher says to do now (describe's form).
func next(want string) step {
	return func(t *testing.T, s *script) {
		t.Helper()
		if got := s.describe(s.d.next(s.cfg)); got != want {
			t.Errorf("next: got %q, want %q", got, want)
		}
	}
}

// waiting checks the requests answered at shutdown, by id.
func waiting(want string) step {
	return func(t *testing.T, s *script) {
		t.Helper()
		if got := ids(s.d.waiting()); got != want {
			t.Errorf("waiting: got %q, want %q", got, want)
		}
	}
}

// waitingRotations checks the rotation requests answered at shutdown, by id.
func waitingRotations(want string) step {
	return func(t *testing.T, s *script) {
		t.Helper()
		if got := s.rotIDs(s.d.waitingRotations()); got != want {
			t.Errorf("waiting rotations: got %q, want %q", got, want)
		}
	}
}

// rotIDs are the ids of rotation requests (by their arrival).
func (s *script) rotIDs(as []*rotAsk) string {
	var out []string
	for _, a := range as {
		out = append(out, fmt.Sprint(s.rotID[a]))
	}
	return strings.Join(out, ",")
}

func ids(fs []*forced) string {
	var out []string
	for _, f := range fs {
		out = append(out, fmt.Sprint(f.arrived.Second()))
	}
	return strings.Join(out, ",")
}

// describe is work in short: "none", "reload", or the trigger, "force"
// and "dry" flags, the integrations, the waiters' ids and NotBefore's id;
// a rotation run is "rotation", its name, trigger, "begin" and "dry"
// flags and its waiters' ids.
func (s *script) describe(w work, ok bool) string {
	switch {
	case !ok:
		return "none"
	case w.reload:
		return "reload"
	case w.rot != nil:
		out := []string{"rotation", w.rot.name, w.rot.req.Trigger}
		if w.rot.req.Begin {
			out = append(out, "begin")
		}
		if w.rot.req.DryRun {
			out = append(out, "dry")
		}
		if len(w.rot.waiters) > 0 {
			out = append(out, "waiters="+s.rotIDs(w.rot.waiters))
		}
		return strings.Join(out, " ")
	}
	out := []string{string(w.req.Trigger)}
	if w.req.Force {
		out = append(out, "force")
	}
	if w.req.DryRun {
		out = append(out, "dry")
	}
	if len(w.req.Only) > 0 {
		out = append(out, strings.Join(w.req.Only, ","))
	}
	if len(w.waiters) > 0 {
		out = append(out, "waiters="+ids(w.waiters))
	}
	if !w.req.NotBefore.IsZero() {
		out = append(out, fmt.Sprint("notbefore=", w.req.NotBefore.Second()))
	}
	return strings.Join(out, " ")
}

// dispatchCase is one script of the dispatcher.
type dispatchCase struct {
	name  string
	steps []step
}

// rotationCases are the scripts of rotation runs: one slot for a pass or
// a rotation run, never both.
var rotationCases = []dispatchCase{
	{"a rotation run never overlaps a pass, nor a pass a rotation run", []step{
		askRotation(1, "run", "r1"), next("startup"), next("none"), passDone(),
		next("rotation r1 admin begin waiters=1"),
		ask(2, "push"), tick("a"), next("none"), rotationDone(),
		next("admin force waiters=2 notbefore=2"), passDone(),
		next("schedule a"), passDone(), next("none"),
	}},
	{"admin requests for a pass go before those for a rotation, which go before rotations due", []step{
		next("startup"), rotTick("r2"), askRotation(1, "run", "r1"), ask(2, "push"), passDone(),
		next("admin force waiters=2 notbefore=2"), passDone(),
		next("rotation r1 admin begin waiters=1"), rotationDone(),
		next("rotation r2 schedule begin"), rotationDone(), next("none"),
	}},
	{"identical rotation requests share a run; a dry run is another kind", []step{
		next("startup"),
		askRotation(1, "run", "r1"), askRotation(2, "dry", "r1"), askRotation(3, "run", "r1"), askRotation(4, "run", "r2"), passDone(),
		next("rotation r1 admin begin waiters=1,3"), rotationDone(),
		next("rotation r1 admin dry waiters=2"), rotationDone(),
		next("rotation r2 admin begin waiters=4"), rotationDone(), next("none"),
	}},
	{"a request arriving during a run of its rotation waits for the next run", []step{
		next("startup"), passDone(), askRotation(1, "run", "r1"), next("rotation r1 admin begin waiters=1"),
		askRotation(2, "run", "r1"), next("none"), rotationDone(),
		next("rotation r1 admin begin waiters=2"),
	}},
	{"resume at start-up, after the start-up pass, and wake-ups do not begin", []step{
		resume("r2", "r1"), next("startup"), passDone(),
		next("rotation r2 startup"), rotationDone(),
		next("rotation r1 startup"), rotationDone(),
		wake("r1"), next("rotation r1 grace"), rotationDone(), next("none"),
	}},
	{"one run per rotation due: a schedule takes a resume's place and begins", []step{
		next("startup"), wake("r1"), rotTick("r1"), resume("r1"), wake("r2"), wake("r2"), passDone(),
		next("rotation r1 schedule begin"), rotationDone(),
		next("rotation r2 grace"), rotationDone(), next("none"),
	}},
	{"an admin run of a rotation covers what was due for it", []step{
		next("startup"), rotTick("r1"), wake("r2"), askRotation(1, "run", "r1"), passDone(),
		next("rotation r1 admin begin waiters=1"), rotationDone(),
		next("rotation r2 grace"), rotationDone(), next("none"),
	}},
	{"an admin dry run covers nothing", []step{
		next("startup"), rotTick("r1"), askRotation(1, "dry", "r1"), passDone(),
		next("rotation r1 admin dry waiters=1"), rotationDone(),
		next("rotation r1 schedule begin"), rotationDone(), next("none"),
	}},
	{"a scheduled tick of the rotation whose run begins is dropped, a wake-up is not", []step{
		next("startup"), passDone(), askRotation(1, "run", "r1"), next("rotation r1 admin begin waiters=1"),
		rotTick("r1", "r2"), wake("r1"), rotationDone(),
		next("rotation r2 schedule begin"), rotationDone(),
		next("rotation r1 grace"), rotationDone(), next("none"),
	}},
	{"a scheduled tick during a resume is kept", []step{
		resume("r1"), next("startup"), passDone(), next("rotation r1 startup"),
		rotTick("r1"), rotationDone(), next("rotation r1 schedule begin"),
	}},
	{"rotations the configuration no longer has are dropped", []step{
		next("startup"), passDone(), rotTick("r9"), wake("r1", "r8"), resume("r7"),
		next("rotation r1 grace"), rotationDone(), next("none"),
	}},
	{"a reload waits for the rotation run and goes first", []step{
		next("startup"), passDone(), rotTick("r1"), next("rotation r1 schedule begin"),
		reload(), askRotation(1, "run", "r2"), next("none"), rotationDone(),
		next("reload"), next("rotation r2 admin begin waiters=1"),
	}},
	{"a rotation removed by a reload: its admin request still runs (and is answered unknown)", []step{
		next("startup"), passDone(), askRotation(1, "run", "r2"), rotTick("r2"), ask(2, "plan"), next("admin dry waiters=2"),
		reload(), passDone(), next("reload"), reconfigure("a", "r1"),
		next("rotation r2 admin begin waiters=1"), rotationDone(), next("none"),
	}},
	{"shutdown answers the waiting rotation requests, not the running run's", []step{
		next("startup"), askRotation(1, "run", "r1"), askRotation(2, "dry", "r1"), passDone(),
		next("rotation r1 admin begin waiters=1"),
		askRotation(3, "run", "r1"), askRotation(4, "run", "r2"),
		waitingRotations("2,3,4"), waiting(""),
	}},
}

func TestDispatcher(t *testing.T) {
	tests := []dispatchCase{
		{"start-up pass first, whatever arrived before", []step{
			reload(), ask(1, "push"), tick("a"), changed("b"),
			next("startup"), next("none"), passDone(),
			next("reload"),
			next("admin force waiters=1 notbefore=1"), passDone(),
			next("schedule a"), passDone(),
			next("watch b"), passDone(),
			next("none"),
		}},
		{"one pass at a time", []step{
			next("startup"),
			ask(1, "push"), reload(), tick("a"), changed("a"),
			next("none"), next("none"), passDone(),
			next("reload"), next("admin force waiters=1 notbefore=1"), next("none"),
		}},
		{"a forced request during a pass waits for the next", []step{
			next("startup"), ask(1, "push", "a"), next("none"), passDone(),
			next("admin force a waiters=1 notbefore=1"), passDone(), next("none"),
		}},
		{"a forced request never joins its own kind's running pass", []step{
			next("startup"), passDone(),
			ask(1, "push", "a"), next("admin force a waiters=1 notbefore=1"),
			ask(2, "push", "a"), next("none"), passDone(),
			next("admin force a waiters=2 notbefore=2"),
		}},
		{"identical waiting requests share one pass, NotBefore the latest arrival", []step{
			next("startup"),
			ask(1, "push", "a", "b"), ask(2, "push", "b", "a"), ask(3, "push", "a", "b"), passDone(),
			next("admin force a,b waiters=1,2,3 notbefore=3"), passDone(), next("none"),
		}},
		{"different kinds or integrations do not share, groups run by first arrival", []step{
			next("startup"),
			ask(1, "push", "a"), ask(2, "dry", "a"), ask(3, "plan", "a"), ask(4, "changed", "a"),
			ask(5, "push", "b"), ask(6, "push"), ask(7, "plan", "a"), ask(8, "push", "a"), passDone(),
			next("admin force a waiters=1,8 notbefore=8"), passDone(),
			next("admin force dry a waiters=2 notbefore=2"), passDone(),
			next("admin dry a waiters=3,7"), passDone(),
			next("admin a waiters=4"), passDone(),
			next("admin force b waiters=5 notbefore=5"), passDone(),
			next("admin force waiters=6 notbefore=6"), passDone(),
			next("none"),
		}},
		{"a tick for names the running push covers is dropped", []step{
			next("startup"), tick("a", "b"), passDone(), next("none"),
			ask(1, "push", "a"), next("admin force a waiters=1 notbefore=1"),
			tick("a", "b"), passDone(), next("schedule b"),
		}},
		{"a running dry run or plan covers no tick", []step{
			next("startup"), passDone(),
			ask(1, "dry"), next("admin force dry waiters=1 notbefore=1"), tick("a"), passDone(),
			next("schedule a"), passDone(),
			ask(2, "plan"), next("admin dry waiters=2"), tick("b"), passDone(),
			next("schedule b"),
		}},
		{"watch changes are never dropped", []step{
			next("startup"), changed("a"), passDone(), next("watch a"),
		}},
		{"due names merge into one pass in configuration order", []step{
			next("startup"), passDone(),
			tick("c"), tick("a", "gone"), tick("a"), next("schedule a,c"), passDone(),
			changed("c"), changed("b", "c"), next("watch b,c"), passDone(), next("none"),
		}},
		{"schedule before watch: a name due both ways runs in both", []step{
			next("startup"), passDone(), changed("a", "b"), tick("a"),
			next("schedule a"), passDone(), next("watch a,b"), passDone(), next("none"),
		}},
		{"names the configuration does not have are dropped", []step{
			next("startup"), passDone(),
			tick("gone"), changed("b"), next("watch b"), passDone(),
			tick("gone"), changed("gone"), next("none"),
		}},
		{"a reload waits for the pass and goes before waiting work", []step{
			next("startup"), passDone(), ask(9, "plan"), next("admin dry waiters=9"),
			ask(1, "push"), tick("a"), reload(), reload(), next("none"), passDone(),
			next("reload"), next("admin force waiters=1 notbefore=1"), passDone(),
			next("schedule a"), passDone(), next("none"),
		}},
		{"waiting work runs under the reloaded configuration", []step{
			next("startup"), passDone(), ask(9, "plan"), next("admin dry waiters=9"),
			ask(1, "push", "c"), tick("a", "c"), changed("b", "c"), reload(), passDone(),
			next("reload"), reconfigure("a", "b"),
			next("admin force c waiters=1 notbefore=1"), passDone(),
			next("schedule a"), passDone(), next("watch b"),
		}},
		{"shutdown answers the waiting requests, not the running pass's", []step{
			waiting(""), next("startup"),
			ask(1, "push"), ask(2, "plan"), ask(3, "push"), passDone(),
			next("admin force waiters=1,3 notbefore=3"),
			ask(4, "push"), ask(5, "dry"),
			waiting("2,4,5"),
		}},
	}
	tests = append(tests, rotationCases...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := &script{cfg: configOf("a", "b", "c", "r1", "r2")}
			for _, st := range tc.steps {
				st(t, s)
			}
		})
	}
}
