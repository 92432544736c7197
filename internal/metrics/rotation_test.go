package metrics_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/metrics"
	"github.com/ocamba-rotator/rotator/internal/rotation"
)

// stepSamples are the rotator_rotation_step series of name: 1 for cur, 0
// for every other step.
func stepSamples(name, cur string) []sample {
	var out []sample
	for _, s := range append([]string{"none"}, func() []string {
		var l []string
		for _, s := range rotation.Steps {
			l = append(l, string(s))
		}
		return l
	}()...) {
		v := 0.0
		if s == cur {
			v = 1
		}
		out = append(out, sample{"rotator_rotation_step", map[string]string{"rotation": name, "step": s}, v})
	}
	return out
}

func TestRotationSeries(t *testing.T) {
	m, reg := newMetrics(t)
	m.RetainRotations(map[string]time.Duration{"sg": 15 * time.Minute, "tw": time.Hour})

	// Seeded from the records at start: sg never ran, tw done.
	done := t0.Add(-time.Hour)
	m.SeedRotation(rotation.Status{Name: "sg", Step: "none"})
	m.SeedRotation(rotation.Status{Name: "tw", Step: rotation.StepDone, Since: done, Finished: &done})
	m.SeedRotation(rotation.Status{Name: "gone", Step: rotation.StepDone, Since: done}) // not configured
	fams := scrape(t, reg)
	present := append(stepSamples("sg", "none"), stepSamples("tw", "done")...)
	present = append(present,
		sample{"rotator_rotation_grace_seconds", map[string]string{"rotation": "sg"}, 900},
		sample{"rotator_rotation_grace_seconds", map[string]string{"rotation": "tw"}, 3600},
		sample{"rotator_rotation_step_started_timestamp_seconds", map[string]string{"rotation": "tw"}, float64(done.Unix())},
		sample{"rotator_rotation_last_done_timestamp_seconds", map[string]string{"rotation": "tw"}, float64(done.Unix())},
	)
	for _, r := range metrics.RunResults {
		present = append(present, sample{"rotator_rotation_runs_total", map[string]string{"rotation": "sg", "result": r}, 0})
	}
	checkSamples(t, fams, present, []sample{
		{"rotator_rotation_step_started_timestamp_seconds", map[string]string{"rotation": "sg"}, 0},
		{"rotator_rotation_last_done_timestamp_seconds", map[string]string{"rotation": "sg"}, 0},
		{"rotator_rotation_step", map[string]string{"rotation": "gone", "step": "done"}, 1},
	})

	// A run's steps; a status read before the last of them changes nothing.
	m.ObserveRotationStep(rotation.Record{Name: "sg", Step: rotation.StepMinting, Since: t0})
	m.ObserveRotationStep(rotation.Record{Name: "sg", Step: rotation.StepVerified, Since: t1})
	m.SeedRotation(rotation.Status{Name: "sg", Step: rotation.StepStored, Since: t0.Add(time.Second)})
	m.ObserveRotationRun("sg", metrics.RunWaiting)
	fams = scrape(t, reg)
	checkSamples(t, fams, append(stepSamples("sg", "verified"),
		sample{"rotator_rotation_step_started_timestamp_seconds", map[string]string{"rotation": "sg"}, float64(t1.Unix())},
		sample{"rotator_rotation_runs_total", map[string]string{"rotation": "sg", "result": "waiting"}, 1},
	), nil)
	end := t1.Add(15 * time.Minute)
	m.ObserveRotationStep(rotation.Record{Name: "sg", Step: rotation.StepDone, Since: end, Current: rotation.Current{Finished: &end}})
	m.ObserveRotationRun("sg", metrics.RunDone)
	fams = scrape(t, reg)
	checkSamples(t, fams, append(stepSamples("sg", "done"),
		sample{"rotator_rotation_last_done_timestamp_seconds", map[string]string{"rotation": "sg"}, float64(end.Unix())},
		sample{"rotator_rotation_runs_total", map[string]string{"rotation": "sg", "result": "done"}, 1},
	), nil)

	// A reload that removes tw deletes its series; a late step of it is ignored.
	m.RetainRotations(map[string]time.Duration{"sg": time.Minute})
	m.ObserveRotationStep(rotation.Record{Name: "tw", Step: rotation.StepUndone, Since: end})
	m.ObserveRotationRun("tw", metrics.RunUndone)
	fams = scrape(t, reg)
	checkSamples(t, fams, []sample{
		{"rotator_rotation_grace_seconds", map[string]string{"rotation": "sg"}, 60},
		{"rotator_rotation_runs_total", map[string]string{"rotation": "sg", "result": "done"}, 1},
	}, append(stepSamples("tw", "done"),
		sample{"rotator_rotation_grace_seconds", map[string]string{"rotation": "tw"}, 0},
		sample{"rotator_rotation_step_started_timestamp_seconds", map[string]string{"rotation": "tw"}, 0},
		sample{"rotator_rotation_last_done_timestamp_seconds", map[string]string{"rotation": "tw"}, 0},
		sample{"rotator_rotation_runs_total", map[string]string{"rotation": "tw", "result": "done"}, 0},
		sample{"rotator_rotation_runs_total", map[string]string{"rotation": "tw", "result": "undone"}, 1},
		sample{"rotator_rotation_step", map[string]string{"rotation": "tw", "step": "undone"}, 1},
	))
}

func TestRunResult(t *testing.T) {
	until := t1
	for _, tc := range []struct {
		res  rotation.Result
		err  error
		want string
	}{
		{rotation.Result{Step: rotation.StepDone}, nil, "done"},
		{rotation.Result{Step: rotation.StepUndone}, nil, "undone"},
		{rotation.Result{Step: rotation.StepVerified, GraceUntil: &until}, nil, "waiting"},
		{rotation.Result{Step: rotation.StepVerified, GraceUntil: &until}, errors.New("not revoking"), "failed"},
		{rotation.Result{}, fmt.Errorf("rotation sg: %w: web-2", rotation.ErrBusy), "busy"},
		{rotation.Result{Step: rotation.StepStored}, nil, "failed"},
	} {
		if got := metrics.RunResult(tc.res, tc.err); got != tc.want {
			t.Errorf("RunResult(%+v, %v): got %q, want %q", tc.res, tc.err, got, tc.want)
		}
	}
}
