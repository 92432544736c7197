package faults_test

// The world of the HA tests (docs/ha.md, issue 8): three `rotator run`
// processes with ha.mode vault against the package's one OpenBao server and
// one Hood test server. Each process reaches Vault through a vaultTap (which
// records every request: method, path, the holder a lease record write
// claims, the answer's status) in front of its own faultProxy, and Hood
// through its own hoodProxy (which records which process sent which
// request, when, and with which settings), so that every PATCH is
// attributed to a process and can be held, dropped or delayed.

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

const (
	// haMount is the KV v2 mount of the lease records (its own mount, so
	// that its max_versions can keep every version of every record without
	// touching the secret/ mount the other tests use).
	haMount    = "ha"
	haLeaseTTL = 8 * time.Second // > hood.timeout (2s) + hood.verify_timeout (3s)
	haInterval = 2 * time.Second
	haSchedule = "@every 2s"
	// haMaxVersions is the lease mount's max_versions: every version of a
	// record stays readable for the attribution of the PATCHes.
	haMaxVersions = 1000
	// haVaultTimeout is vault.timeout: a request into a partition fails
	// after it (shorter than lease_ttl, so that a cut-off holder gives up
	// before its lease expires).
	haVaultTimeout = "3s"
)

var haLabels = []string{"proc-a", "proc-b", "proc-c"}

// haKind is a provider and the mapping of the fixture's secret data
// (auth_token, chat_id) onto its settings.
type haKind struct {
	provider string
	extra    string // YAML entries of the integration
	expect   func(data map[string]string) map[string]string
}

var haKinds = []haKind{
	{"telegram", "", func(d map[string]string) map[string]string {
		return map[string]string{"auth_token": d["auth_token"], "chat_id": d["chat_id"]}
	}},
	{"twilio_sms", `static: {account_sid: "AC1001", default_phone_number: "+15550100"}`, func(d map[string]string) map[string]string {
		return map[string]string{"account_sid": "AC1001", "auth_token": d["auth_token"], "default_phone_number": "+15550100"}
	}},
	{"sendgrid_email", `fields: {api_key: auth_token}, static: {default_sender_email: "ops@example.com"}`, func(d map[string]string) map[string]string {
		return map[string]string{"api_key": d["auth_token"], "default_sender_email": "ops@example.com"}
	}},
	{"mailgun_email", `fields: {api_key: auth_token, sender_name: chat_id}`, func(d map[string]string) map[string]string {
		return map[string]string{"api_key": d["auth_token"], "sender_name": d["chat_id"]}
	}},
}

// haWrite is one value written to a secret path, with its KV version.
type haWrite struct {
	version int
	data    map[string]string
	at      time.Time
}

type haCluster struct {
	t         *testing.T
	f         *fixture
	vs        *vaulttest.Server
	leasePath string
	procs     []*haProc
	kinds     map[string]haKind // by integration name

	mu        sync.Mutex
	writes    map[string][]haWrite // by path
	hoodHook  func(p *haProc, r hoodReq) hoodAction
	vaultHook func(p *haProc, r vaultReq) vaultAction
	// landedHook is called when a record write landed (answered 200),
	// before its answer goes back; true kills the sender, which never gets it.
	landedHook func(p *haProc, r vaultReq) bool
	hoodDelay  time.Duration // max random delay of a PATCH at every hoodProxy
	held       chan struct{} // closed by releaseHeld: lets hoodHold requests go
	daemons    []*daemon     // every process ever started
	watch      string        // watch.interval of every process; "" leaves watch mode off
	rateLimit  string        // hood.rate_limit of every process (YAML flow mapping); "" for the fixture's (no limit reached)
	jitter     string        // jitter of every process's schedule; "" for none
	leaseTTL   time.Duration // ha.lease_ttl of every process; 0 for haLeaseTTL
}

// haMountOnce sets up the lease mount (haMount) once per test binary.
var (
	haMountOnce sync.Once
	haMountErr  error
)

// newHACluster makes the fixture, the lease mount and three processes'
// proxies, and n integrations (providers mixed) with ids from base, each
// with a first value in Vault. start starts the processes. Its Hood test
// server enforces no rate limit.
func newHACluster(t *testing.T, n, base int) *haCluster {
	t.Helper()
	return newHAClusterWith(t, n, base, nil)
}

// newHAClusterWith is newHACluster with a Hood test server of the caller's
// (its own rate limits): the processes reach it through their hoodProxies.
// nil is newHACluster's.
func newHAClusterWith(t *testing.T, n, base int, hs *hoodtest.Server) *haCluster {
	t.Helper()
	vs := vaulttest.Require(t, vaultSrv)
	// The lease mount is set up once for the parallel tests: OpenBao's
	// in-memory storage refuses concurrent writes of one mount's config.
	haMountOnce.Do(func() {
		ctx := context.Background()
		if haMountErr = vs.EnableKV(ctx, haMount, 2); haMountErr != nil {
			return
		}
		if _, err := vs.Client().Logical().WriteWithContext(ctx, haMount+"/config", map[string]any{"max_versions": haMaxVersions}); err != nil {
			haMountErr = fmt.Errorf("set max_versions of %s: %w", haMount, err)
		}
	})
	if haMountErr != nil {
		t.Fatal(haMountErr)
	}
	var f *fixture
	if hs == nil {
		f = newFixture(t, vs)
	} else {
		f = newFixtureWith(t, vs, hs, hs.URL())
	}
	c := &haCluster{t: t, f: f, vs: vs, leasePath: f.prefix + "/leases", kinds: map[string]haKind{}, writes: map[string][]haWrite{}, held: make(chan struct{})}
	for i := range n {
		k := haKinds[i%len(haKinds)]
		c.addInteg(fmt.Sprintf("i%02d-%s", i, strings.SplitN(k.provider, "_", 2)[0]), fmt.Sprint(base+i), k, "")
	}
	for i, label := range haLabels {
		p := &haProc{c: c, label: label, idx: i}
		p.fp = startProxy(t, vs.Addr)
		p.tap = startVaultTap(t, c, p)
		p.hp = startHoodProxy(t, c, p)
		c.procs = append(c.procs, p)
	}
	// Registered first, so it runs last: after every process was killed.
	t.Cleanup(c.checkSentinel)
	return c
}

// addInteg configures one more integration (before start) and writes its
// first value.
func (c *haCluster) addInteg(name, id string, k haKind, extra string) integ {
	c.t.Helper()
	if err := c.f.hood.AddIntegration(id, k.provider, nil); err != nil {
		c.t.Fatal(err)
	}
	e := k.extra
	if extra != "" {
		e = strings.TrimPrefix(e+", "+extra, ", ")
	}
	in := integ{name: name, id: id, provider: k.provider, path: name, extra: e}
	c.f.integs = append(c.f.integs, in)
	c.kinds[name] = k
	c.rotate(name)
	return in
}

// ttl is the processes' ha.lease_ttl.
func (c *haCluster) ttl() time.Duration {
	if c.leaseTTL != 0 {
		return c.leaseTTL
	}
	return haLeaseTTL
}

// haYAML is the ha section of a process's configuration.
func (c *haCluster) haYAML(label string) string {
	y := fmt.Sprintf("ha:\n  mode: vault\n  mount: %s\n  path: %s\n  identity: %s\n  lease_ttl: %s\n", haMount, c.leasePath, label, c.ttl())
	if c.watch != "" {
		y += "watch:\n  interval: " + c.watch + "\n"
	}
	if c.jitter != "" {
		y += "jitter: " + c.jitter + "\n"
	}
	return y
}

// start writes each process's configuration and starts the three.
func (c *haCluster) start(schedule string) {
	c.t.Helper()
	for _, p := range c.procs {
		p.config = c.f.config(cfg{
			file: "config-" + p.label + ".yaml", vaultAddr: p.tap.url, hoodURL: p.hp.url,
			hoodTimeout: "2s", verifyTimeout: "3s", schedule: schedule, vaultTimeout: haVaultTimeout,
			statePath: c.f.path("state-" + p.label + ".db"), auditPath: c.f.path("audit-" + p.label + ".log"),
			extra: c.haYAML(p.label), rateLimit: c.rateLimit,
		})
	}
	for _, p := range c.procs {
		p.start()
	}
}

// rotate writes a new value to each named integration's path and returns
// the new KV versions by name.
func (c *haCluster) rotate(names ...string) map[string]int {
	c.t.Helper()
	out := map[string]int{}
	for _, n := range names {
		in := c.f.byName(n)
		v, err := c.f.rotate(in.path)
		if err != nil {
			c.t.Fatalf("write a new value of %s: %v", n, err)
		}
		c.mu.Lock()
		c.writes[in.path] = append(c.writes[in.path], haWrite{version: v, data: c.f.want(in), at: time.Now()})
		c.mu.Unlock()
		out[n] = v
	}
	return out
}

func (c *haCluster) rotateAll() map[string]int { return c.rotate(names(c.f.integs)...) }

// latest is the last value written for in.
func (c *haCluster) latest(in integ) haWrite {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.writes[in.path]
	return w[len(w)-1]
}

// written returns every value written for in, oldest first.
func (c *haCluster) written(in integ) []haWrite {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.writes[in.path])
}

// versionOf returns the KV version whose value settings are (the settings
// in's provider pushes for it), or false when they are none ever written.
func (c *haCluster) versionOf(in integ, settings map[string]string) (int, bool) {
	k := c.kinds[in.name]
	for _, w := range c.written(in) {
		if maps.Equal(k.expect(w.data), settings) {
			return w.version, true
		}
	}
	return 0, false
}

// holds reports whether Hood holds the settings of version v of in.
func (c *haCluster) holds(in integ, v int) bool {
	for _, w := range c.written(in) {
		if w.version == v {
			got, ok := c.f.hood.Integration(in.id)
			return ok && maps.Equal(got.Settings, c.kinds[in.name].expect(w.data))
		}
	}
	return false
}

func (c *haCluster) holdsLatest(ins ...integ) bool {
	for _, in := range ins {
		if !c.holds(in, c.latest(in).version) {
			return false
		}
	}
	return true
}

// confirmed reports whether in's lease record is released with version v
// confirmed.
func (c *haCluster) confirmed(in integ, v int) bool {
	l, ok := c.lease(in.name)
	return ok && l.holder == "" && l.rec.Confirmed != nil && l.rec.Confirmed.VaultVersion == v && l.rec.Pending == nil
}

// converged reports whether Hood holds every integration's latest value and
// every record confirms it, released.
func (c *haCluster) converged(ins ...integ) bool {
	if len(ins) == 0 {
		ins = c.f.integs
	}
	if !c.holdsLatest(ins...) {
		return false
	}
	for _, in := range ins {
		if !c.confirmed(in, c.latest(in).version) {
			return false
		}
	}
	return true
}

// eventually is testkit.Eventually with a slower poll (the conditions read
// Vault).
func (c *haCluster) eventually(within time.Duration, what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *haCluster) setHoodHook(h func(p *haProc, r hoodReq) hoodAction) {
	c.mu.Lock()
	c.hoodHook = h
	c.mu.Unlock()
}

func (c *haCluster) setVaultHook(h func(p *haProc, r vaultReq) vaultAction) {
	c.mu.Lock()
	c.vaultHook = h
	c.mu.Unlock()
}

func (c *haCluster) setLandedHook(h func(p *haProc, r vaultReq) bool) {
	c.mu.Lock()
	c.landedHook = h
	c.mu.Unlock()
}

// releaseHeld lets the requests held by hoodHold go on to Hood.
func (c *haCluster) releaseHeld() {
	c.mu.Lock()
	close(c.held)
	c.held = make(chan struct{})
	c.mu.Unlock()
}

func (c *haCluster) setHoodDelay(d time.Duration) {
	c.mu.Lock()
	c.hoodDelay = d
	c.mu.Unlock()
}

// hoodReqs returns every request of every process to Hood, by arrival.
func (c *haCluster) hoodReqs() []hoodReq {
	var out []hoodReq
	for _, p := range c.procs {
		out = append(out, p.hp.all()...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].arrived.Before(out[j].arrived) })
	return out
}

// patches returns the PATCHes of every process, by arrival.
func (c *haCluster) patches() []hoodReq {
	var out []hoodReq
	for _, r := range c.hoodReqs() {
		if r.method == http.MethodPatch {
			out = append(out, r)
		}
	}
	return out
}

// durations summarises measured durations: min, median, max.
func durations(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	r := func(d time.Duration) string { return d.Round(10 * time.Millisecond).String() }
	return fmt.Sprintf("n=%d min=%s median=%s max=%s", len(s), r(s[0]), r(s[len(s)/2]), r(s[len(s)-1]))
}

// costSnapshot is what each process asked Vault, by category, and how many
// passes it ran.
type costSnapshot map[string]struct {
	cats   map[string]int
	passes float64
}

func (c *haCluster) cost() costSnapshot {
	out := costSnapshot{}
	for _, p := range c.procs {
		out[p.label] = struct {
			cats   map[string]int
			passes float64
		}{p.tap.counts(), p.daemon().metric("rotator_pass_duration_seconds_count")}
	}
	return out
}

// costBetween logs the Vault requests per pass between two snapshots.
func (c *haCluster) logCost(what string, a, b costSnapshot) {
	c.t.Helper()
	cats := map[string]int{}
	passes := 0.0
	for l := range b {
		passes += b[l].passes - a[l].passes
		for k, n := range b[l].cats {
			cats[k] += n - a[l].cats[k]
		}
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(cats)) {
		if cats[k] == 0 {
			continue
		}
		per := "n/a"
		if passes > 0 {
			per = fmt.Sprintf("%.2f", float64(cats[k])/passes)
		}
		parts = append(parts, fmt.Sprintf("%s=%d (%s/pass)", k, cats[k], per))
	}
	c.t.Logf("Vault requests, %s, %d integrations, %.0f passes of the 3 processes: %s", what, len(c.f.integs), passes, strings.Join(parts, ", "))
}
