package metrics_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocamba-rotator/rotator/docs"
	"github.com/ocamba-rotator/rotator/internal/metrics"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/rotation"
)

// describer is a registry that remembers what was registered on it, so
// that every metric is named even before it has a series.
type describer struct {
	*prometheus.Registry
	collectors []prometheus.Collector
}

func (r *describer) Register(c prometheus.Collector) error {
	r.collectors = append(r.collectors, c)
	return r.Registry.Register(c)
}

func (r *describer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// names returns the names of every metric registered on r.
func (r *describer) names(t *testing.T) []string {
	t.Helper()
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	var names []string
	for _, c := range r.collectors {
		ch := make(chan *prometheus.Desc)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			m := fqName.FindStringSubmatch(d.String())
			if m == nil {
				t.Fatalf("cannot read the name of %s", d)
			}
			names = append(names, m[1])
		}
	}
	slices.Sort(names)
	return names
}

// registerLikeRun registers the metrics on reg as Run does, and gives each
// of them a series.
func registerLikeRun(t *testing.T, reg prometheus.Registerer) {
	t.Helper()
	m, err := metrics.New(reg, "test")
	if err != nil {
		t.Fatalf("metrics.New: got %v, want nil", err)
	}
	t0 := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	m.Retain(map[string]string{"a": "twilio_sms"})
	m.SetMaxAges(map[string]time.Duration{"a": time.Hour})
	created := t0.Add(-time.Minute)
	m.ObservePass(rotate.Report{Trigger: rotate.TriggerSchedule, Started: t0, Finished: t0.Add(time.Second), Outcomes: []rotate.Outcome{
		{Name: "a", Provider: "twilio_sms", VaultVersion: 3, VaultCreated: &created, Result: rotate.ResultPushed},
	}})
	m.ObserveHood("PATCH", 204, time.Second)
	m.ObserveVault("read", "ok")
	m.SetVaultAuthenticated(true)
	m.ObserveWatchPoll(true)
	m.ObserveWatchChange()
	m.ReloadSucceeded(t0)
	m.RetainRotations(map[string]time.Duration{"r": time.Minute})
	m.ObserveRotationStep(rotation.Record{Name: "r", Step: rotation.StepDone, Since: t0, Current: rotation.Current{Finished: &t0}})
}

// The metrics the daemon registers are those of the reference's metric
// table, with its types and label names, and no other.
func TestMetricsMatchReference(t *testing.T) {
	rows, err := docs.Table("## Metrics")
	if err != nil {
		t.Fatal(err)
	}
	type metric struct{ typ, labels string }
	want := map[string]metric{}
	for _, r := range rows {
		labels := docs.Code(r["labels"])
		slices.Sort(labels)
		want[strings.Trim(r["name"], "`")] = metric{r["type"], strings.Join(labels, ",")}
	}

	reg := &describer{Registry: prometheus.NewPedanticRegistry()}
	registerLikeRun(t, reg)
	names := reg.names(t)
	for _, name := range names {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: got it registered, want it in docs/reference.md's metric table too", name)
		}
	}
	for name := range want {
		if !slices.Contains(names, name) {
			t.Errorf("%s: got it in docs/reference.md's metric table, want it registered", name)
		}
	}

	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	got := map[string]metric{}
	for _, f := range fams {
		var labels []string
		for _, l := range f.GetMetric()[0].GetLabel() {
			labels = append(labels, l.GetName())
		}
		slices.Sort(labels)
		got[f.GetName()] = metric{strings.ToLower(f.GetType().String()), strings.Join(labels, ",")}
	}
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("%s: got no series, want one (give it one in registerLikeRun)", name)
		case g != w:
			t.Errorf("%s: got type %s, labels [%s]; want type %s, labels [%s] (docs/reference.md)", name, g.typ, g.labels, w.typ, w.labels)
		}
	}
}
