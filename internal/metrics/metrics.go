// Package metrics holds rotator's Prometheus collectors: what a pass, a
// rotation, a Hood or Vault request, watch mode and a configuration reload
// record, on
// the prometheus.Registerer the daemon injects.
package metrics

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocamba-rotator/rotator/internal/admin"
	"github.com/ocamba-rotator/rotator/internal/rotate"
)

// Metric names (docs/reference.md, Metrics).
const (
	RotationsTotal       = "rotator_rotations_total"
	LastSuccessTimestamp = "rotator_last_success_timestamp_seconds"
	ConsecutiveFailures  = "rotator_consecutive_failures"
	SecretVersion        = "rotator_secret_version"
	PassDuration         = "rotator_pass_duration_seconds"
	HoodRequestsTotal    = "rotator_hood_requests_total"
	HoodRequestDuration  = "rotator_hood_request_duration_seconds"
	VaultRequestsTotal   = "rotator_vault_requests_total"
	VaultAuthenticated   = "rotator_vault_authenticated"
	BuildInfo            = "rotator_build_info"
	CredentialAge        = "rotator_credential_age_seconds"
	CredentialMaxAge     = "rotator_credential_max_age_seconds"
)

// Metric names of watch mode (docs/ha.md).
const (
	WatchPollsTotal   = "rotator_watch_polls_total"
	WatchChangesTotal = "rotator_watch_changes_total"
)

// Metric names of configuration reloads.
const (
	ReloadSuccessful       = "rotator_config_last_reload_successful"
	ReloadSuccessTimestamp = "rotator_config_last_reload_success_timestamp_seconds"
)

// The result label values of rotator_watch_polls_total.
const (
	watchPollOK    = "ok"
	watchPollError = "error"
)

const (
	labelIntegration = "integration"
	labelProv        = "provider"
	hoodCodeNoAnswer = "error" // the code label of a Hood attempt that got no HTTP answer
)

// Histogram buckets, in seconds.
var (
	// passDurationBuckets span a pass of one quick integration (0.1s) to a
	// large, rate-limited one (10 minutes).
	passDurationBuckets = []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}
	// hoodRequestBuckets span one Hood API attempt, up to a slow 30s.
	hoodRequestBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
)

// countedResults are the results that rotator_rotations_total counts; every
// retained integration has a series for each of them from the start.
var countedResults = [...]rotate.Result{rotate.ResultPushed, rotate.ResultUnchanged, rotate.ResultFailed}

// Recorder holds rotator's Prometheus collectors, registered on the
// Registerer given to New. It is safe for concurrent use. A nil
// *Recorder ignores every call, so callers that run without metrics (the
// one-shot CLI commands, tests) need no special case.
type Recorder struct {
	rotations           *prometheus.CounterVec
	lastSuccess         *prometheus.GaugeVec
	consecutiveFailures *prometheus.GaugeVec
	secretVersion       *prometheus.GaugeVec
	passDuration        *prometheus.HistogramVec
	hoodRequests        *prometheus.CounterVec
	hoodDuration        *prometheus.HistogramVec
	vaultRequests       *prometheus.CounterVec
	vaultAuthenticated  prometheus.Gauge
	buildInfo           *prometheus.GaugeVec
	watchPolls          *prometheus.CounterVec
	watchChanges        prometheus.Counter
	reloadOK            prometheus.Gauge
	reloadLast          prometheus.Gauge
	credentialMaxAge    *prometheus.GaugeVec
	credentialAge       *prometheus.Desc
	rot                 *rotationSeries
	now                 func() time.Time

	mu sync.Mutex // serialises ObservePass and Retain over the per-integration series
	// series: integration name -> providers it has per-integration series for.
	series map[string]map[string]struct{}
	// retained: name -> provider of the last Retain; nil until Retain is first called.
	retained map[string]string
	// created: integration name -> the created_time of the KV v2 version
	// its last pass read; rotator_credential_age_seconds is now minus it.
	created map[string]time.Time
	// maxAges: integration name -> its max_age, of the last SetMaxAges.
	maxAges map[string]time.Duration
}

// New creates rotator's collectors and registers them all on reg.
// rotator_build_info{version,goversion} is set to 1. It fails if reg is nil
// or refuses a collector (for instance, one already registered).
func New(reg prometheus.Registerer, version string) (*Recorder, error) {
	if reg == nil {
		return nil, errors.New("new metrics: nil prometheus.Registerer")
	}
	m := &Recorder{
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: RotationsTotal,
			Help: "Integration rotations by result (pushed, unchanged, failed); dry runs are not counted.",
		}, []string{labelIntegration, labelProv, "result"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: LastSuccessTimestamp,
			Help: "Unix time of the end of the last pass in which the integration was pushed or found unchanged.",
		}, []string{labelIntegration, labelProv}),
		consecutiveFailures: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: ConsecutiveFailures,
			Help: "Failed rotations of the integration since its last success (observed by this process).",
		}, []string{labelIntegration}),
		secretVersion: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: SecretVersion,
			Help: "The Vault KV version of the integration's secret last pushed to Hood.",
		}, []string{labelIntegration}),
		passDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    PassDuration,
			Help:    "Duration of rotation passes (dry runs excluded), by what started them.",
			Buckets: passDurationBuckets,
		}, []string{"trigger"}),
		hoodRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: HoodRequestsTotal,
			Help: `Hood API request attempts by method and HTTP status code ("error" when no answer came).`,
		}, []string{"method", "code"}),
		hoodDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    HoodRequestDuration,
			Help:    "Duration of Hood API request attempts.",
			Buckets: hoodRequestBuckets,
		}, []string{"method"}),
		vaultRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: VaultRequestsTotal,
			Help: "Vault requests by operation and result.",
		}, []string{"operation", "result"}),
		vaultAuthenticated: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: VaultAuthenticated,
			Help: "1 while rotator holds a valid Vault login, 0 otherwise.",
		}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: BuildInfo,
			Help: "Always 1; the labels say which rotator build is running.",
		}, []string{"version", "goversion"}),
		watchPolls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: WatchPollsTotal,
			Help: "Watch mode: KV v2 metadata reads of watched Vault paths, by result (ok, error).",
		}, []string{"result"}),
		watchChanges: prometheus.NewCounter(prometheus.CounterOpts{
			Name: WatchChangesTotal,
			Help: "Watch mode: watched Vault paths seen changed (each one a reason for a watch pass).",
		}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: ReloadSuccessful,
			Help: "1 if the last configuration (re)load succeeded, 0 if it was refused.",
		}),
		reloadLast: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: ReloadSuccessTimestamp,
			Help: "When the configuration in force was loaded.",
		}),
		credentialMaxAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: CredentialMaxAge,
			Help: "The integration's max_age: how old its credential may grow before it is overdue for rotation.",
		}, []string{labelIntegration}),
		credentialAge: prometheus.NewDesc(CredentialAge,
			"Age at scrape time of the KV v2 version of the integration's secret that its last pass read (from Vault's created_time).",
			[]string{labelIntegration}, nil),
		rot:     newRotationSeries(),
		now:     time.Now,
		series:  make(map[string]map[string]struct{}),
		created: make(map[string]time.Time),
		maxAges: make(map[string]time.Duration),
	}
	for _, c := range append([]prometheus.Collector{
		m.rotations, m.lastSuccess, m.consecutiveFailures, m.secretVersion, m.passDuration,
		m.hoodRequests, m.hoodDuration, m.vaultRequests, m.vaultAuthenticated, m.buildInfo,
		m.watchPolls, m.watchChanges, m.reloadOK, m.reloadLast, m.credentialMaxAge, ageCollector{m},
	}, m.rot.collectors()...) {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	m.buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	// Both results from the start, so that rate() works from the first scrape.
	m.watchPolls.WithLabelValues(watchPollOK)
	m.watchPolls.WithLabelValues(watchPollError)
	return m, nil
}

// ObservePass records a finished pass: its duration (Finished-Started, when
// both are set) in rotator_pass_duration_seconds{trigger}, and for each outcome the
// per-integration series. A dry run is skipped entirely: it neither pushes
// nor says anything about the health of a rotation.
//
// Once Retain has been called, outcomes of integrations it did not name
// (with that provider) are ignored, so that a pass finishing after a reload
// cannot bring back the series of a removed integration.
func (m *Recorder) ObservePass(rep rotate.Report) {
	if m == nil || rep.DryRun {
		return
	}
	if !rep.Started.IsZero() && !rep.Finished.IsZero() {
		m.passDuration.WithLabelValues(string(rep.Trigger)).Observe(max(0, rep.Finished.Sub(rep.Started).Seconds()))
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range rep.Outcomes {
		if m.retained != nil {
			if p, ok := m.retained[o.Name]; !ok || p != o.Provider {
				continue
			}
		}
		switch {
		case o.VaultCreated != nil:
			// Whatever the result: the secret was read, and it is what
			// consumers read.
			m.created[o.Name] = *o.VaultCreated
		case o.Result != rotate.ResultFailed:
			// Read, with no created_time (a KV v1 source, say after a
			// reload moved the integration): no age is known any more.
			delete(m.created, o.Name)
		}
		switch o.Result {
		case rotate.ResultPushed, rotate.ResultUnchanged, rotate.ResultFailed:
		default:
			continue // "would push" (or anything new) is not a rotation
		}
		m.track(o.Name, o.Provider)
		m.rotations.WithLabelValues(o.Name, o.Provider, string(o.Result)).Inc()
		switch {
		case o.Result == rotate.ResultFailed:
			m.consecutiveFailures.WithLabelValues(o.Name).Inc()
		case o.Confirms():
			// Pushed, or unchanged from a confirmed push with nothing in
			// doubt: only these clear a failure.
			m.lastSuccess.WithLabelValues(o.Name, o.Provider).Set(unixSeconds(rep.Finished))
			m.consecutiveFailures.WithLabelValues(o.Name).Set(0)
			if o.Result == rotate.ResultPushed {
				m.secretVersion.WithLabelValues(o.Name).Set(float64(o.VaultVersion))
			}
		}
	}
}

// Seed sets the per-integration gauges from a status (the durable state of
// a daemon that just started, or the status in force at a reload), so that
// they do not restart from zero with the process.
func (m *Recorder) Seed(st admin.IntegrationStatus) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.retained != nil {
		if p, ok := m.retained[st.Name]; !ok || p != st.Provider {
			return
		}
	}
	m.track(st.Name, st.Provider)
	m.consecutiveFailures.WithLabelValues(st.Name).Set(float64(st.ConsecutiveFailures))
	if st.LastSuccess != nil {
		m.lastSuccess.WithLabelValues(st.Name, st.Provider).Set(unixSeconds(*st.LastSuccess))
	}
	if st.VaultVersion > 0 {
		m.secretVersion.WithLabelValues(st.Name).Set(float64(st.VaultVersion))
	}
}

// ReloadSucceeded records a configuration put in force at at.
func (m *Recorder) ReloadSucceeded(at time.Time) {
	if m == nil {
		return
	}
	m.reloadOK.Set(1)
	m.reloadLast.Set(float64(at.UnixNano()) / 1e9)
}

// ReloadFailed records a configuration (re)load that was refused.
func (m *Recorder) ReloadFailed() {
	if m != nil {
		m.reloadOK.Set(0)
	}
}

// ObserveHood records one Hood API attempt: its method, its HTTP status
// code (0 when no answer came, recorded as code="error") and its duration.
// Its signature matches hood.Options.Observe.
func (m *Recorder) ObserveHood(method string, code int, d time.Duration) {
	if m == nil {
		return
	}
	c := hoodCodeNoAnswer
	if code != 0 {
		c = strconv.Itoa(code)
	}
	m.hoodRequests.WithLabelValues(method, c).Inc()
	m.hoodDuration.WithLabelValues(method).Observe(max(0, d.Seconds()))
}

// ObserveVault counts one Vault request by operation (e.g. "login", "read")
// and result (e.g. "ok", "error").
func (m *Recorder) ObserveVault(operation, result string) {
	if m == nil {
		return
	}
	m.vaultRequests.WithLabelValues(operation, result).Inc()
}

// ObserveWatchPoll counts one metadata read of a watched Vault path in
// rotator_watch_polls_total{result="ok"|"error"}.
func (m *Recorder) ObserveWatchPoll(ok bool) {
	if m == nil {
		return
	}
	r := watchPollOK
	if !ok {
		r = watchPollError
	}
	m.watchPolls.WithLabelValues(r).Inc()
}

// ObserveWatchChange counts one watched Vault path seen changed in
// rotator_watch_changes_total.
func (m *Recorder) ObserveWatchChange() {
	if m == nil {
		return
	}
	m.watchChanges.Inc()
}

// SetVaultAuthenticated sets rotator_vault_authenticated to 1 or 0.
func (m *Recorder) SetVaultAuthenticated(ok bool) {
	if m == nil {
		return
	}
	v := 0.0
	if ok {
		v = 1
	}
	m.vaultAuthenticated.Set(v)
}

// Retain says which integrations are configured (name -> provider), at
// start and after each reload. Every per-integration series of any other
// integration, or of a kept integration under another provider, is deleted.
// Each kept integration gets its rotator_rotations_total series for pushed,
// unchanged and failed (at 0 if new) and its rotator_consecutive_failures
// series, so that rate() and alerts work from the first scrape. Existing
// values of kept series are left as they are.
func (m *Recorder) Retain(integrations map[string]string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, providers := range m.series {
		keep, kept := integrations[name]
		for p := range providers {
			if kept && p == keep {
				continue
			}
			m.rotations.DeletePartialMatch(prometheus.Labels{labelIntegration: name, labelProv: p})
			m.lastSuccess.DeleteLabelValues(name, p)
			delete(providers, p)
		}
		if !kept {
			m.consecutiveFailures.DeleteLabelValues(name)
			m.secretVersion.DeleteLabelValues(name)
			delete(m.series, name)
		}
	}
	for name := range m.created {
		if _, kept := integrations[name]; !kept {
			delete(m.created, name)
		}
	}
	for name := range m.maxAges {
		if _, kept := integrations[name]; !kept {
			delete(m.maxAges, name)
			m.credentialMaxAge.DeleteLabelValues(name)
		}
	}
	m.retained = make(map[string]string, len(integrations))
	for name, p := range integrations {
		m.retained[name] = p
		m.track(name, p)
		for _, r := range countedResults {
			m.rotations.WithLabelValues(name, p, string(r))
		}
		m.consecutiveFailures.WithLabelValues(name)
	}
}

// SetMaxAges says the max_age of each integration that sets one (name ->
// max_age), at start and after each reload:
// rotator_credential_max_age_seconds{integration} is set for each of them
// and deleted for every other integration. Once Retain has been called,
// integrations it did not name are left out.
func (m *Recorder) SetMaxAges(maxAges map[string]time.Duration) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for name := range m.maxAges {
		if _, ok := maxAges[name]; !ok {
			delete(m.maxAges, name)
			m.credentialMaxAge.DeleteLabelValues(name)
		}
	}
	for name, d := range maxAges {
		if _, ok := m.retained[name]; m.retained != nil && !ok {
			continue
		}
		m.maxAges[name] = d
		m.credentialMaxAge.WithLabelValues(name).Set(d.Seconds())
	}
}

// ageCollector exports rotator_credential_age_seconds, computed at each
// scrape from the created times of the last passes, so that the age grows
// between passes.
type ageCollector struct{ m *Recorder }

// Describe implements prometheus.Collector.
func (c ageCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.m.credentialAge }

// Collect implements prometheus.Collector.
func (c ageCollector) Collect(ch chan<- prometheus.Metric) {
	c.m.mu.Lock()
	defer c.m.mu.Unlock()
	now := c.m.now()
	for name, created := range c.m.created {
		// max: a Vault clock ahead of ours is no negative age.
		ch <- prometheus.MustNewConstMetric(c.m.credentialAge, prometheus.GaugeValue, max(0, now.Sub(created).Seconds()), name)
	}
}

// track notes that name has series under provider p. m.mu must be held.
func (m *Recorder) track(name, p string) {
	ps := m.series[name]
	if ps == nil {
		ps = make(map[string]struct{}, 1)
		m.series[name] = ps
	}
	ps[p] = struct{}{}
}

// unixSeconds is t as fractional Unix seconds.
func unixSeconds(t time.Time) float64 {
	return float64(t.UnixNano()) / float64(time.Second)
}
