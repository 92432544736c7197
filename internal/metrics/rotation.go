package metrics

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocamba-rotator/rotator/internal/rotation"
)

// Metric names of rotations (docs/rotation.md).
const (
	RotationStep        = "rotator_rotation_step"
	RotationStepStarted = "rotator_rotation_step_started_timestamp_seconds"
	RotationGrace       = "rotator_rotation_grace_seconds"
	RotationRunsTotal   = "rotator_rotation_runs_total"
	RotationLastDone    = "rotator_rotation_last_done_timestamp_seconds"
)

// The result label values of rotator_rotation_runs_total.
const (
	RunDone    = "done"    // the run completed the rotation
	RunUndone  = "undone"  // the run undid it: the old credential is back everywhere
	RunWaiting = "waiting" // the run waits for the end of the grace period
	RunFailed  = "failed"  // the run stopped on an error (the record says where it stands)
	RunBusy    = "busy"    // another rotator holds the rotation
)

// RunResults are the results rotator_rotation_runs_total counts; every
// configured rotation has a series for each of them from the start.
var RunResults = []string{RunDone, RunUndone, RunWaiting, RunFailed, RunBusy}

// stepNone is the step label of a rotation never run.
const stepNone = "none"

const labelRotation = "rotation"

// rotationSeries are the per-rotation collectors.
type rotationSeries struct {
	step     *prometheus.GaugeVec
	started  *prometheus.GaugeVec
	grace    *prometheus.GaugeVec
	runs     *prometheus.CounterVec
	lastDone *prometheus.GaugeVec

	mu sync.Mutex
	// since: rotation name -> when the step its gauges show began; an
	// observation of an older step (a status read before a step this
	// process wrote) is ignored.
	since map[string]time.Time
	// retained: the configured rotations; nil until RetainRotations.
	retained map[string]bool
}

func newRotationSeries() *rotationSeries {
	return &rotationSeries{
		step: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: RotationStep,
			Help: `1 for the step the rotation's record is at, 0 for the others ("none": never run).`,
		}, []string{labelRotation, "step"}),
		started: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: RotationStepStarted,
			Help: "Unix time the rotation's current step began.",
		}, []string{labelRotation}),
		grace: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: RotationGrace,
			Help: "The rotation's configured grace: how long the old credential stays valid once every consumer is confirmed on the new one.",
		}, []string{labelRotation}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RotationRunsTotal,
			Help: "Runs of the rotation by this process, by where each left it (done, undone, waiting, failed, busy).",
		}, []string{labelRotation, "result"}),
		lastDone: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: RotationLastDone,
			Help: "Unix time the last run of the rotation that completed it finished.",
		}, []string{labelRotation}),
		since: make(map[string]time.Time),
	}
}

func (s *rotationSeries) collectors() []prometheus.Collector {
	return []prometheus.Collector{s.step, s.started, s.grace, s.runs, s.lastDone}
}

// stepLabels are the step label values: "none" and every step.
func stepLabels() []string {
	out := []string{stepNone}
	for _, s := range rotation.Steps {
		out = append(out, string(s))
	}
	return out
}

// RetainRotations says which rotations are configured (name -> grace), at
// start and after each reload: rotator_rotation_grace_seconds is set for
// each, each gets its rotator_rotation_runs_total series (every result, at
// 0 if new), and every series of another rotation is deleted.
func (m *Recorder) RetainRotations(graces map[string]time.Duration) {
	if m == nil {
		return
	}
	s := m.rot
	s.mu.Lock()
	defer s.mu.Unlock()
	for name := range s.retained {
		if _, ok := graces[name]; !ok {
			s.deleteLocked(name)
		}
	}
	for name := range s.since {
		if _, ok := graces[name]; !ok {
			s.deleteLocked(name)
		}
	}
	s.retained = make(map[string]bool, len(graces))
	for name, g := range graces {
		s.retained[name] = true
		s.grace.WithLabelValues(name).Set(g.Seconds())
		for _, r := range RunResults {
			s.runs.WithLabelValues(name, r)
		}
	}
}

func (s *rotationSeries) deleteLocked(name string) {
	l := prometheus.Labels{labelRotation: name}
	s.step.DeletePartialMatch(l)
	s.runs.DeletePartialMatch(l)
	s.started.DeleteLabelValues(name)
	s.grace.DeleteLabelValues(name)
	s.lastDone.DeleteLabelValues(name)
	delete(s.since, name)
}

// ObserveRotationStep records a step a run wrote; its signature matches
// runtime.Options.OnRotationStep.
func (m *Recorder) ObserveRotationStep(rec rotation.Record) {
	if m == nil {
		return
	}
	m.rot.set(rec.Name, rec.Step, rec.Since, rec.Current.Finished)
}

// SeedRotation sets a rotation's series from its record's status (at start,
// at each reload, and when the records are read again), unless they show a
// step that began later.
func (m *Recorder) SeedRotation(st rotation.Status) {
	if m == nil {
		return
	}
	m.rot.set(st.Name, st.Step, st.Since, st.Finished)
}

func (s *rotationSeries) set(name string, step rotation.Step, since time.Time, finished *time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retained != nil && !s.retained[name] {
		return
	}
	if prev, ok := s.since[name]; ok && since.Before(prev) {
		return
	}
	s.since[name] = since
	cur := string(step)
	if step == rotation.StepNone {
		cur = stepNone
	}
	for _, l := range stepLabels() {
		v := 0.0
		if l == cur {
			v = 1
		}
		s.step.WithLabelValues(name, l).Set(v)
	}
	if since.IsZero() {
		s.started.DeleteLabelValues(name)
	} else {
		s.started.WithLabelValues(name).Set(unixSeconds(since))
	}
	if finished != nil {
		s.lastDone.WithLabelValues(name).Set(unixSeconds(*finished))
	}
}

// ObserveRotationRun counts one run of a rotation in
// rotator_rotation_runs_total{rotation,result} (result: RunResult's).
func (m *Recorder) ObserveRotationRun(name, result string) {
	if m == nil {
		return
	}
	s := m.rot
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.retained != nil && !s.retained[name] {
		return
	}
	s.runs.WithLabelValues(name, result).Inc()
}

// RunResult classifies where a run left its rotation: busy (another
// rotator holds it), failed (an error), waiting (grace), done or undone.
func RunResult(res rotation.Result, err error) string {
	switch {
	case errors.Is(err, rotation.ErrBusy):
		return RunBusy
	case err != nil:
		return RunFailed
	case res.GraceUntil != nil:
		return RunWaiting
	case res.Step == rotation.StepDone:
		return RunDone
	case res.Step == rotation.StepUndone:
		return RunUndone
	}
	return RunFailed // a run that rests at none or mid-way without an error: nothing it could finish
}
