package metrics_test

import (
	"fmt"
	"maps"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/ocamba-rotator/rotator/internal/metrics"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/rotation"
)

// family is one gathered metric family, reduced to what the tests check.
type family struct {
	typ    string // COUNTER, GAUGE, HISTOGRAM
	labels []string
	series []series
}

// series is one gathered series: a counter's or gauge's value, or a
// histogram's count and sum.
type series struct {
	labels map[string]string
	value  float64
	sum    float64
}

// scrape gathers g into families by name.
func scrape(t *testing.T, g prometheus.Gatherer) map[string]family {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := make(map[string]family, len(mfs))
	for _, mf := range mfs {
		f := family{typ: mf.GetType().String()}
		names := map[string]bool{}
		for _, m := range mf.GetMetric() {
			s := series{labels: map[string]string{}}
			for _, lp := range m.GetLabel() {
				s.labels[lp.GetName()] = lp.GetValue()
				names[lp.GetName()] = true
			}
			switch {
			case m.GetCounter() != nil:
				s.value = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				s.value = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				s.value = float64(m.GetHistogram().GetSampleCount())
				s.sum = m.GetHistogram().GetSampleSum()
			}
			f.series = append(f.series, s)
		}
		f.labels = slices.Sorted(maps.Keys(names))
		out[mf.GetName()] = f
	}
	return out
}

// lookup finds the series of name with exactly these labels.
func lookup(fams map[string]family, name string, labels map[string]string) (series, bool) {
	for _, s := range fams[name].series {
		if maps.Equal(s.labels, labels) {
			return s, true
		}
	}
	return series{}, false
}

// sample is one expected series.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

func (s sample) String() string { return fmt.Sprintf("%s%v", s.name, s.labels) }

func checkSamples(t *testing.T, fams map[string]family, present, absent []sample) {
	t.Helper()
	for _, w := range present {
		got, ok := lookup(fams, w.name, w.labels)
		switch {
		case !ok:
			t.Errorf("%s: got no series, want %v", w, w.value)
		case got.value != w.value:
			t.Errorf("%s: got %v, want %v", w, got.value, w.value)
		}
	}
	for _, w := range absent {
		if got, ok := lookup(fams, w.name, w.labels); ok {
			t.Errorf("%s: got %v, want no series", w, got.value)
		}
	}
}

func newMetrics(t *testing.T) (*metrics.Recorder, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	m, err := metrics.New(reg, "v1.2.3")
	if err != nil {
		t.Fatalf("metrics.New: got %v, want nil", err)
	}
	return m, reg
}

// The metric names, types and label names New registers (docs/reference.md;
// internal/daemon checks the whole table, reload gauges included).
var contract = map[string]struct {
	typ    string
	labels []string
}{
	"rotator_rotations_total":                {"COUNTER", []string{"integration", "provider", "result"}},
	"rotator_last_success_timestamp_seconds": {"GAUGE", []string{"integration", "provider"}},
	"rotator_consecutive_failures":           {"GAUGE", []string{"integration"}},
	"rotator_secret_version":                 {"GAUGE", []string{"integration"}},
	"rotator_pass_duration_seconds":          {"HISTOGRAM", []string{"trigger"}},
	"rotator_hood_requests_total":            {"COUNTER", []string{"code", "method"}},
	"rotator_hood_request_duration_seconds":  {"HISTOGRAM", []string{"method"}},
	"rotator_vault_requests_total":           {"COUNTER", []string{"operation", "result"}},
	"rotator_vault_authenticated":            {"GAUGE", nil},
	"rotator_build_info":                     {"GAUGE", []string{"goversion", "version"}},
	"rotator_credential_age_seconds":         {"GAUGE", []string{"integration"}},
	"rotator_credential_max_age_seconds":     {"GAUGE", []string{"integration"}},
	// Watch mode (docs/ha.md).
	"rotator_watch_polls_total":   {"COUNTER", []string{"result"}},
	"rotator_watch_changes_total": {"COUNTER", nil},
	// Configuration reloads.
	"rotator_config_last_reload_successful":                {"GAUGE", nil},
	"rotator_config_last_reload_success_timestamp_seconds": {"GAUGE", nil},
	// Rotations (docs/rotation.md).
	"rotator_rotation_step":                           {"GAUGE", []string{"rotation", "step"}},
	"rotator_rotation_step_started_timestamp_seconds": {"GAUGE", []string{"rotation"}},
	"rotator_rotation_grace_seconds":                  {"GAUGE", []string{"rotation"}},
	"rotator_rotation_runs_total":                     {"COUNTER", []string{"result", "rotation"}},
	"rotator_rotation_last_done_timestamp_seconds":    {"GAUGE", []string{"rotation"}},
}

// exercise gives every metric at least one series.
func exercise(m *metrics.Recorder) {
	m.Retain(map[string]string{"twilio-main": "twilio_sms", "mail": "sendgrid"})
	m.SetMaxAges(map[string]time.Duration{"twilio-main": time.Hour})
	m.ObservePass(sampleReport(rotate.Request{Trigger: rotate.TriggerSchedule}))
	m.ObserveHood("PATCH", 200, 120*time.Millisecond)
	m.ObserveHood("GET", 0, time.Second)
	m.ObserveVault("read", "ok")
	m.SetVaultAuthenticated(true)
	m.ObserveWatchPoll(true)
	m.ObserveWatchPoll(false)
	m.ObserveWatchChange()
	m.ReloadSucceeded(t1)
	m.RetainRotations(map[string]time.Duration{"sg": 15 * time.Minute})
	m.ObserveRotationStep(rotation.Record{Name: "sg", Step: rotation.StepDone, Since: t1, Current: rotation.Current{Finished: &t1}})
	m.ObserveRotationRun("sg", metrics.RunDone)
}

func TestMetricsContract(t *testing.T) {
	m, reg := newMetrics(t)
	exercise(m)
	fams := scrape(t, reg)
	for name, want := range contract {
		f, ok := fams[name]
		if !ok {
			t.Errorf("%s: got no family, want one", name)
			continue
		}
		if f.typ != want.typ {
			t.Errorf("%s type: got %s, want %s", name, f.typ, want.typ)
		}
		if !slices.Equal(f.labels, want.labels) {
			t.Errorf("%s labels: got %v, want %v", name, f.labels, want.labels)
		}
	}
	for name := range fams {
		if _, ok := contract[name]; !ok {
			t.Errorf("%s: got a family the table above does not name", name)
		}
	}
	checkSamples(t, fams, []sample{
		{"rotator_build_info", map[string]string{"version": "v1.2.3", "goversion": runtime.Version()}, 1},
		{"rotator_vault_authenticated", map[string]string{}, 1},
	}, nil)
}

// The same names and types, as /metrics serves them in the text format.
func TestMetricsEndpoint(t *testing.T) {
	m, reg := newMetrics(t)
	exercise(m)
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	got := struct {
		code int
		body string
	}{rec.Code, rec.Body.String()}
	if got.code != 200 {
		t.Fatalf("status: got %d, want 200", got.code)
	}
	for name, want := range contract {
		line := fmt.Sprintf("# TYPE %s %s", name, strings.ToLower(want.typ))
		if !strings.Contains(got.body, line) {
			t.Errorf("body: got no %q line, want one", line)
		}
	}
	if !strings.Contains(got.body, `rotator_rotations_total{integration="twilio-main",provider="twilio_sms",result="pushed"} 1`) {
		t.Errorf("body: got\n%s\nwant the pushed rotation of twilio-main", got.body)
	}
}

func TestObservePass(t *testing.T) {
	const name, prov = "a", "p"
	out := func(r rotate.Result, version int) rotate.Outcome {
		o := rotate.Outcome{Name: name, Provider: prov, VaultVersion: version, Result: r}
		if r == rotate.ResultUnchanged {
			o.Confirmed = &t1 // settings equal to a confirmed push
		}
		return o
	}
	// held is an unchanged that no confirmation backs: another rotator
	// holds the integration.
	held := rotate.Outcome{Name: name, Provider: prov, VaultVersion: 7, Result: rotate.ResultUnchanged, Reason: "held by rotator-b"}
	pass := func(finished time.Time, os ...rotate.Outcome) rotate.Report {
		return rotate.Report{Trigger: rotate.TriggerSchedule, Started: finished.Add(-2 * time.Second), Finished: finished, Outcomes: os}
	}
	dry := pass(t1, out(rotate.ResultWouldPush, 9))
	dry.DryRun = true
	intg := map[string]string{"integration": name}
	intgProv := map[string]string{"integration": name, "provider": prov}
	res := func(r string) map[string]string {
		return map[string]string{"integration": name, "provider": prov, "result": r}
	}
	t2 := t1.Add(time.Hour)

	tests := []struct {
		name    string
		reports []rotate.Report
		present []sample
		absent  []sample
	}{
		{"pushed", []rotate.Report{pass(t1, out(rotate.ResultPushed, 7))}, []sample{
			{"rotator_rotations_total", res("pushed"), 1},
			{"rotator_last_success_timestamp_seconds", intgProv, float64(t1.Unix())},
			{"rotator_consecutive_failures", intg, 0},
			{"rotator_secret_version", intg, 7},
			{"rotator_pass_duration_seconds", map[string]string{"trigger": "schedule"}, 1},
		}, []sample{
			{"rotator_rotations_total", res("failed"), 0},
		}},
		{"failures count up", []rotate.Report{pass(t1, out(rotate.ResultFailed, 7)), pass(t2, out(rotate.ResultFailed, 7))}, []sample{
			{"rotator_rotations_total", res("failed"), 2},
			{"rotator_consecutive_failures", intg, 2},
			{"rotator_pass_duration_seconds", map[string]string{"trigger": "schedule"}, 2},
		}, []sample{
			{"rotator_last_success_timestamp_seconds", intgProv, 0},
			{"rotator_secret_version", intg, 0},
		}},
		{"a success resets the failures", []rotate.Report{pass(t1, out(rotate.ResultFailed, 7)), pass(t1, out(rotate.ResultFailed, 7)), pass(t2, out(rotate.ResultUnchanged, 7))}, []sample{
			{"rotator_rotations_total", res("failed"), 2},
			{"rotator_rotations_total", res("unchanged"), 1},
			{"rotator_consecutive_failures", intg, 0},
			{"rotator_last_success_timestamp_seconds", intgProv, float64(t2.Unix())},
		}, []sample{
			{"rotator_secret_version", intg, 0},
		}},
		{"an unchanged without a confirmation keeps the failures", []rotate.Report{pass(t1, out(rotate.ResultFailed, 7)), pass(t2, held)}, []sample{
			{"rotator_rotations_total", res("failed"), 1},
			{"rotator_rotations_total", res("unchanged"), 1},
			{"rotator_consecutive_failures", intg, 1},
		}, []sample{
			{"rotator_last_success_timestamp_seconds", intgProv, 0},
		}},
		{"unchanged keeps the version pushed", []rotate.Report{pass(t1, out(rotate.ResultPushed, 3)), pass(t2, out(rotate.ResultUnchanged, 4))}, []sample{
			{"rotator_secret_version", intg, 3},
			{"rotator_last_success_timestamp_seconds", intgProv, float64(t2.Unix())},
		}, nil},
		{"a failure keeps the last success", []rotate.Report{pass(t1, out(rotate.ResultPushed, 3)), pass(t2, out(rotate.ResultFailed, 4))}, []sample{
			{"rotator_secret_version", intg, 3},
			{"rotator_last_success_timestamp_seconds", intgProv, float64(t1.Unix())},
			{"rotator_consecutive_failures", intg, 1},
		}, nil},
		{"a dry run is skipped entirely", []rotate.Report{dry}, nil, []sample{
			{"rotator_rotations_total", res("pushed"), 0},
			{"rotator_consecutive_failures", intg, 0},
			{"rotator_pass_duration_seconds", map[string]string{"trigger": "schedule"}, 0},
		}},
		{"would push is not a rotation", []rotate.Report{pass(t1, out(rotate.ResultWouldPush, 3))}, []sample{
			{"rotator_pass_duration_seconds", map[string]string{"trigger": "schedule"}, 1},
		}, []sample{
			{"rotator_rotations_total", res("would push"), 0},
			{"rotator_consecutive_failures", intg, 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newMetrics(t)
			for _, rep := range tt.reports {
				m.ObservePass(rep)
			}
			checkSamples(t, scrape(t, reg), tt.present, tt.absent)
		})
	}
}

func TestPassDuration(t *testing.T) {
	m, reg := newMetrics(t)
	m.ObservePass(rotate.Report{Trigger: rotate.TriggerAdmin, Started: t0, Finished: t0.Add(3 * time.Second)})
	m.ObservePass(rotate.Report{Trigger: rotate.TriggerAdmin, Started: t0, Finished: t0.Add(1500 * time.Millisecond)})
	m.ObservePass(rotate.Report{Trigger: rotate.TriggerAdmin, Finished: t0}) // no start: no duration
	got, ok := lookup(scrape(t, reg), "rotator_pass_duration_seconds", map[string]string{"trigger": "admin"})
	if !ok || got.value != 2 || got.sum != 4.5 {
		t.Errorf("pass duration{trigger=admin}: got count %v sum %v (present %v), want count 2 sum 4.5", got.value, got.sum, ok)
	}
}

func TestObserveHood(t *testing.T) {
	tests := []struct {
		method   string
		code     int
		d        time.Duration
		wantCode string
	}{
		{"PATCH", 200, 50 * time.Millisecond, "200"},
		{"PATCH", 429, time.Second, "429"},
		{"GET", 0, 10 * time.Second, "error"},
		{"GET", 503, 0, "503"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %d", tt.method, tt.code), func(t *testing.T) {
			m, reg := newMetrics(t)
			m.ObserveHood(tt.method, tt.code, tt.d)
			fams := scrape(t, reg)
			checkSamples(t, fams, []sample{
				{"rotator_hood_requests_total", map[string]string{"method": tt.method, "code": tt.wantCode}, 1},
				{"rotator_hood_request_duration_seconds", map[string]string{"method": tt.method}, 1},
			}, nil)
			if got, _ := lookup(fams, "rotator_hood_request_duration_seconds", map[string]string{"method": tt.method}); got.sum != tt.d.Seconds() {
				t.Errorf("duration sum: got %v, want %v", got.sum, tt.d.Seconds())
			}
		})
	}
}

func TestObserveVault(t *testing.T) {
	m, reg := newMetrics(t)
	m.ObserveVault("login", "ok")
	m.ObserveVault("read", "error")
	m.ObserveVault("read", "error")
	m.SetVaultAuthenticated(true)
	checkSamples(t, scrape(t, reg), []sample{
		{"rotator_vault_requests_total", map[string]string{"operation": "login", "result": "ok"}, 1},
		{"rotator_vault_requests_total", map[string]string{"operation": "read", "result": "error"}, 2},
		{"rotator_vault_authenticated", map[string]string{}, 1},
	}, nil)
	m.SetVaultAuthenticated(false)
	checkSamples(t, scrape(t, reg), []sample{{"rotator_vault_authenticated", map[string]string{}, 0}}, nil)
}

func TestRetain(t *testing.T) {
	m, reg := newMetrics(t)
	m.Retain(map[string]string{"a": "pa", "b": "pb", "c": "pc"})

	// Pre-initialised at 0: a series for each result, and the failures gauge.
	fams := scrape(t, reg)
	var initial []sample
	for _, n := range []string{"a", "b", "c"} {
		for _, r := range []string{"pushed", "unchanged", "failed"} {
			initial = append(initial, sample{"rotator_rotations_total", map[string]string{"integration": n, "provider": "p" + n, "result": r}, 0})
		}
		initial = append(initial, sample{"rotator_consecutive_failures", map[string]string{"integration": n}, 0})
	}
	checkSamples(t, fams, initial, nil)
	if got := testutil.CollectAndCount(reg, "rotator_rotations_total"); got != 9 {
		t.Errorf("rotations_total series: got %d, want 9", got)
	}

	m.ObservePass(rotate.Report{Trigger: rotate.TriggerSchedule, Started: t0, Finished: t1, Outcomes: []rotate.Outcome{
		{Name: "a", Provider: "pa", Result: rotate.ResultPushed, VaultVersion: 2},
		{Name: "b", Provider: "pb", Result: rotate.ResultPushed, VaultVersion: 5},
		{Name: "c", Provider: "pc", Result: rotate.ResultFailed},
	}})
	// b is removed; c changes provider.
	m.Retain(map[string]string{"a": "pa", "c": "pc2"})
	// A pass of the old configuration that ends after the reload is ignored.
	m.ObservePass(rotate.Report{Trigger: rotate.TriggerSchedule, Started: t0, Finished: t1, Outcomes: []rotate.Outcome{
		{Name: "b", Provider: "pb", Result: rotate.ResultPushed, VaultVersion: 6},
		{Name: "c", Provider: "pc", Result: rotate.ResultPushed, VaultVersion: 6},
	}})

	fams = scrape(t, reg)
	for name, f := range fams {
		for _, s := range f.series {
			if s.labels["integration"] == "b" {
				t.Errorf("%s%v: got a series of the removed integration b, want none", name, s.labels)
			}
			if s.labels["integration"] == "c" && s.labels["provider"] == "pc" {
				t.Errorf("%s%v: got a series of c's old provider, want none", name, s.labels)
			}
		}
	}
	checkSamples(t, fams, []sample{
		{"rotator_rotations_total", map[string]string{"integration": "a", "provider": "pa", "result": "pushed"}, 1},
		{"rotator_rotations_total", map[string]string{"integration": "a", "provider": "pa", "result": "failed"}, 0},
		{"rotator_last_success_timestamp_seconds", map[string]string{"integration": "a", "provider": "pa"}, float64(t1.Unix())},
		{"rotator_secret_version", map[string]string{"integration": "a"}, 2},
		{"rotator_rotations_total", map[string]string{"integration": "c", "provider": "pc2", "result": "pushed"}, 0},
		{"rotator_consecutive_failures", map[string]string{"integration": "c"}, 1},
	}, nil)
	if got := testutil.CollectAndCount(reg, "rotator_rotations_total"); got != 6 {
		t.Errorf("rotations_total series: got %d, want 6", got)
	}

	m.Retain(nil)
	for _, name := range []string{"rotator_rotations_total", "rotator_last_success_timestamp_seconds", "rotator_consecutive_failures", "rotator_secret_version"} {
		if got := testutil.CollectAndCount(reg, name); got != 0 {
			t.Errorf("%s after Retain(nil): got %d series, want 0", name, got)
		}
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := metrics.New(nil, "v1"); err == nil {
		t.Errorf("nil registerer: got nil, want an error")
	}
	reg := prometheus.NewRegistry()
	if _, err := metrics.New(reg, "v1"); err != nil {
		t.Fatalf("first: got %v, want nil", err)
	}
	if _, err := metrics.New(reg, "v1"); err == nil {
		t.Errorf("second on the same registry: got nil, want an error")
	}
}

// A nil *Recorder ignores every call.
func TestNilRecorder(t *testing.T) {
	var m *metrics.Recorder
	m.ObservePass(sampleReport(rotate.Request{Trigger: rotate.TriggerCLI}))
	m.ReloadSucceeded(t1)
	m.ReloadFailed()
	m.ObserveHood("PATCH", 200, time.Second)
	m.ObserveVault("read", "ok")
	m.SetVaultAuthenticated(true)
	m.Retain(map[string]string{"a": "p"})
	m.SetMaxAges(map[string]time.Duration{"a": time.Hour})
	m.RetainRotations(map[string]time.Duration{"a": time.Hour})
	m.ObserveRotationStep(rotation.Record{Name: "a"})
	m.SeedRotation(rotation.Status{Name: "a"})
	m.ObserveRotationRun("a", metrics.RunDone)
}

// rotator_credential_age_seconds is computed at each scrape from the created
// time of the last pass that read the secret, whatever its result; dry
// runs, and outcomes without a created time (KV v1), leave it as it was.
func TestCredentialAge(t *testing.T) {
	m, reg := newMetrics(t)
	now := t1.Add(time.Hour)
	metrics.SetNow(m, func() time.Time { return now })
	created := t0.Add(-24 * time.Hour)
	newer := t0.Add(-time.Hour)
	m.Retain(map[string]string{"a": "pa", "b": "pb", "v1": "pv"})
	m.SetMaxAges(map[string]time.Duration{"a": 48 * time.Hour, "v1": time.Hour, "gone": time.Hour})
	m.ObservePass(rotate.Report{Trigger: rotate.TriggerSchedule, Started: t0, Finished: t1, Outcomes: []rotate.Outcome{
		{Name: "a", Provider: "pa", Result: rotate.ResultUnchanged, VaultCreated: &created},
		{Name: "b", Provider: "pb", Result: rotate.ResultFailed, VaultCreated: &created},
		{Name: "v1", Provider: "pv", Result: rotate.ResultPushed},
	}})
	m.ObservePass(rotate.Report{DryRun: true, Outcomes: []rotate.Outcome{
		{Name: "a", Provider: "pa", Result: rotate.ResultWouldPush, VaultCreated: &newer},
	}})
	age := func(n string) map[string]string { return map[string]string{"integration": n} }
	checkSamples(t, scrape(t, reg), []sample{
		{"rotator_credential_age_seconds", age("a"), now.Sub(created).Seconds()},
		{"rotator_credential_age_seconds", age("b"), now.Sub(created).Seconds()},
		{"rotator_credential_max_age_seconds", age("a"), 48 * 3600},
		{"rotator_credential_max_age_seconds", age("v1"), 3600},
	}, []sample{
		{"rotator_credential_age_seconds", age("v1"), 0},
		{"rotator_credential_max_age_seconds", age("b"), 0},
		{"rotator_credential_max_age_seconds", age("gone"), 0},
	})

	// The age grows between passes; a newer version read brings it down.
	now = now.Add(time.Hour)
	m.ObservePass(rotate.Report{Trigger: rotate.TriggerSchedule, Started: t0, Finished: t1, Outcomes: []rotate.Outcome{
		{Name: "b", Provider: "pb", Result: rotate.ResultPushed, VaultCreated: &newer},
	}})
	checkSamples(t, scrape(t, reg), []sample{
		{"rotator_credential_age_seconds", age("a"), now.Sub(created).Seconds()},
		{"rotator_credential_age_seconds", age("b"), now.Sub(newer).Seconds()},
	}, nil)

	// A pass that read b's secret with no created_time (moved to a KV v1
	// source) ends its age; a failure before any read keeps a's.
	m.ObservePass(rotate.Report{Trigger: rotate.TriggerSchedule, Started: t0, Finished: t1, Outcomes: []rotate.Outcome{
		{Name: "a", Provider: "pa", Result: rotate.ResultFailed},
		{Name: "b", Provider: "pb", Result: rotate.ResultUnchanged},
	}})
	checkSamples(t, scrape(t, reg), []sample{
		{"rotator_credential_age_seconds", age("a"), now.Sub(created).Seconds()},
	}, []sample{
		{"rotator_credential_age_seconds", age("b"), 0},
	})
	m.ObservePass(rotate.Report{Trigger: rotate.TriggerSchedule, Started: t0, Finished: t1, Outcomes: []rotate.Outcome{
		{Name: "b", Provider: "pb", Result: rotate.ResultPushed, VaultCreated: &newer},
	}})

	// Removed integrations lose both series; a new max_age map replaces the old.
	m.Retain(map[string]string{"b": "pb", "v1": "pv"})
	m.SetMaxAges(map[string]time.Duration{"b": time.Minute})
	checkSamples(t, scrape(t, reg), []sample{
		{"rotator_credential_age_seconds", age("b"), now.Sub(newer).Seconds()},
		{"rotator_credential_max_age_seconds", age("b"), 60},
	}, []sample{
		{"rotator_credential_age_seconds", age("a"), 0},
		{"rotator_credential_max_age_seconds", age("a"), 0},
		{"rotator_credential_max_age_seconds", age("v1"), 0},
	})
	m.Retain(nil)
	m.SetMaxAges(nil)
	for _, name := range []string{"rotator_credential_age_seconds", "rotator_credential_max_age_seconds"} {
		if got := testutil.CollectAndCount(reg, name); got != 0 {
			t.Errorf("%s after Retain(nil): got %d series, want 0", name, got)
		}
	}
}

var (
	t0      = time.Date(2025, 3, 1, 3, 0, 0, 0, time.UTC)
	t1      = t0.Add(3 * time.Second)
	created = t0.Add(-time.Hour) // the KV v2 version sampleReport read
)

// sampleReport is a report with one pushed and one failed integration.
func sampleReport(req rotate.Request) rotate.Report {
	return rotate.Report{Trigger: req.Trigger, DryRun: req.DryRun, Started: t0, Finished: t1, Outcomes: []rotate.Outcome{
		{Name: "twilio-main", ID: "1161", Provider: "twilio_sms", VaultPath: "secret/ocamba/twilio-main", VaultVersion: 4, VaultCreated: &created, Result: rotate.ResultPushed, Settings: []string{"auth_token"}},
		{Name: "mail", ID: "42", Provider: "sendgrid", VaultPath: "secret/ocamba/mail", VaultVersion: 2, Result: rotate.ResultFailed, Error: "hood: 500", TraceID: "trace-1"},
	}}
}
