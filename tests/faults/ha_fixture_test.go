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
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/ocamba-rotator/rotator/internal/state"
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
}

// haMountOnce sets up the lease mount (haMount) once per test binary.
var (
	haMountOnce sync.Once
	haMountErr  error
)

// newHACluster makes the fixture, the lease mount and three processes'
// proxies, and n integrations (providers mixed) with ids from base, each
// with a first value in Vault. start starts the processes.
func newHACluster(t *testing.T, n, base int) *haCluster {
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
	f := newFixture(t, vs)
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

// haYAML is the ha section of a process's configuration.
func (c *haCluster) haYAML(label string) string {
	y := fmt.Sprintf("ha:\n  mode: vault\n  mount: %s\n  path: %s\n  identity: %s\n  lease_ttl: %s\n", haMount, c.leasePath, label, haLeaseTTL)
	if c.watch != "" {
		y += "watch:\n  interval: " + c.watch + "\n"
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
			extra: c.haYAML(p.label),
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

// ---- lease records ----

// leaseVersion is one KV v2 version of a lease record.
//
// OpenBao gives a version's created_time to the second only, too coarse to
// order the writes against the PATCHes; written is when the write was
// made: when the writer's request reached its Vault tap (writer is then the
// process) for a write whose answer the tap saw, else the time the writer
// put in the record (the later of record.updated and expires - lease_ttl:
// a Fence moves only expires, a release or a note only updated).
type leaseVersion struct {
	version int
	created time.Time // Vault's created_time (to the second)
	written time.Time
	writer  string // the writing process's label; "" when the tap saw no answer
	holder  string
	expires time.Time
	rec     state.Record
	raw     string // the version's data as JSON (HMACs and names only)
}

// label is the identity part of a holder ("proc-a#3f9a2c10": "proc-a").
func label(holder string) string {
	l, _, _ := strings.Cut(holder, "#")
	return l
}

func parseLease(s *api.KVSecret) (leaseVersion, error) {
	var l leaseVersion
	if s == nil || s.Data == nil {
		return l, errors.New("no data")
	}
	if s.VersionMetadata != nil {
		l.version, l.created = s.VersionMetadata.Version, s.VersionMetadata.CreatedTime
	}
	raw, _ := json.Marshal(s.Data)
	l.raw = string(raw)
	l.holder, _ = s.Data["holder"].(string)
	if e, _ := s.Data["expires"].(string); e != "" {
		t, err := time.Parse(time.RFC3339Nano, e)
		if err != nil {
			return l, fmt.Errorf("expires %q: %w", e, err)
		}
		l.expires = t
	}
	var recJSON []byte
	switch r := s.Data["record"].(type) {
	case string:
		recJSON = []byte(r)
	case nil:
	default:
		recJSON, _ = json.Marshal(r)
	}
	if len(recJSON) > 0 {
		if err := json.Unmarshal(recJSON, &l.rec); err != nil {
			return l, fmt.Errorf("record: %w", err)
		}
	}
	return l, nil
}

func (c *haCluster) recordPath(name string) string { return c.leasePath + "/" + name }

// lease reads the current version of an integration's record.
func (c *haCluster) lease(name string) (leaseVersion, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := c.vs.Client().KVv2(haMount).Get(ctx, c.recordPath(name))
	if errors.Is(err, api.ErrSecretNotFound) {
		return leaseVersion{}, false
	}
	if err != nil {
		c.t.Errorf("read the lease record of %s: %v", name, err)
		return leaseVersion{}, false
	}
	l, err := parseLease(s)
	if err != nil {
		c.t.Errorf("lease record of %s: %v", name, err)
		return l, false
	}
	return l, true
}

// leaseVersions reads every version of a record (at path, relative to the
// lease path), oldest first.
func (c *haCluster) versionsAt(path string) []leaseVersion {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kv := c.vs.Client().KVv2(haMount)
	list, err := kv.GetVersionsAsList(ctx, c.leasePath+"/"+path)
	if errors.Is(err, api.ErrSecretNotFound) {
		return nil
	}
	if err != nil {
		c.t.Errorf("list the versions of record %s: %v", path, err)
		return nil
	}
	var out []leaseVersion
	for _, m := range list {
		if m.Destroyed || !m.DeletionTime.IsZero() {
			c.t.Errorf("record %s: version %d was deleted or destroyed", path, m.Version)
			continue
		}
		s, err := kv.GetVersion(ctx, c.leasePath+"/"+path, m.Version)
		if err != nil {
			c.t.Errorf("read version %d of record %s: %v", m.Version, path, err)
			continue
		}
		l, err := parseLease(s)
		if err != nil {
			c.t.Errorf("version %d of record %s: %v", m.Version, path, err)
			continue
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	// When each version was written, and by whom.
	type seen struct {
		at   time.Time
		proc string
	}
	byVersion := map[int]seen{}
	name := path
	for _, p := range c.procs {
		for _, r := range p.tap.all() {
			if r.lease == name && isWrite(r.method) && r.version > 0 {
				byVersion[r.version] = seen{r.at, r.proc}
			}
		}
	}
	for i := range out {
		l := &out[i]
		if s, ok := byVersion[l.version]; ok {
			l.written, l.writer = s.at, s.proc
			continue
		}
		l.written = l.rec.Updated
		if l.holder != "" && l.expires.Add(-haLeaseTTL).After(l.written) {
			l.written = l.expires.Add(-haLeaseTTL)
		}
	}
	return out
}

func (c *haCluster) leaseVersions(name string) []leaseVersion { return c.versionsAt(name) }

// isBegin: a version that takes the lease (its holder differs from the
// previous version's; a Fence keeps the holder).
func isBegin(vers []leaseVersion, i int) bool {
	return vers[i].holder != "" && (i == 0 || vers[i-1].holder != vers[i].holder)
}

// describeVersions is a record's history for a failure message: version,
// holder, created, pending and confirmed versions (no values exist there).
func describeVersions(vers []leaseVersion) string {
	var b strings.Builder
	for _, l := range vers {
		w := l.writer
		if w == "" {
			w = "?"
		}
		fmt.Fprintf(&b, "\n    v%d written %s by %s holder=%q expires=%s", l.version, l.written.Format("15:04:05.000"), w, l.holder, l.expires.Format("15:04:05.000"))
		if p := l.rec.Pending; p != nil {
			fmt.Fprintf(&b, " pending=v%d", p.VaultVersion)
		}
		if p := l.rec.Confirmed; p != nil {
			fmt.Fprintf(&b, " confirmed=v%d", p.VaultVersion)
		}
		if p := l.rec.Failed; p != nil {
			fmt.Fprintf(&b, " failed=v%d", p.VaultVersion)
		}
	}
	return b.String()
}

// attribute checks that the PATCH p (of KV version v; a rollback PATCH when
// rollback) was made under a lease its sender held: the last version of the
// record written before the PATCH arrived is held by the sender's identity,
// unexpired at that moment, and (but for a rollback) is the Begin of that
// holding or the Fence right after it (made right before the PATCH), both
// with version v pending. It returns the Begin version.
func (c *haCluster) attribute(p hoodReq, name string, vers []leaseVersion, v int, rollback bool) (leaseVersion, bool) {
	c.t.Helper()
	i := -1
	for j, l := range vers {
		if !l.written.After(p.arrived) {
			i = j
		}
	}
	fail := func(why string) (leaseVersion, bool) {
		c.t.Errorf("PATCH of %s (version %d, rollback %v) by %s at %s: %s; record history:%s",
			name, v, rollback, p.proc, p.arrived.Format("15:04:05.000"), why, describeVersions(vers))
		return leaseVersion{}, false
	}
	if i < 0 {
		return fail("no version of the lease record was written before it")
	}
	l := vers[i]
	if l.holder == "" || label(l.holder) != p.proc || (l.writer != "" && l.writer != p.proc) {
		return fail(fmt.Sprintf("the record version before it (v%d) is held by %q, written by %q, not by the sender", l.version, l.holder, l.writer))
	}
	if !l.expires.After(p.arrived) {
		return fail(fmt.Sprintf("the sender's lease (v%d) expired at %s, before the PATCH", l.version, l.expires.Format("15:04:05.000")))
	}
	b := i
	for b > 0 && !isBegin(vers, b) {
		b--
	}
	if !rollback {
		// Begin, then the Fence right before the PATCH (the same holding,
		// the same pending push): the version before the PATCH is one of them.
		if i-b > 1 {
			return fail(fmt.Sprintf("the version before it (v%d) is neither the Begin of the holding (v%d) nor the Fence right after it", l.version, vers[b].version))
		}
		for _, w := range vers[b : i+1] {
			if pd := w.rec.Pending; pd == nil || pd.VaultVersion != v {
				return fail(fmt.Sprintf("version v%d of the holding does not have version %d pending", w.version, v))
			}
		}
	}
	return vers[b], true
}

// checkTakeover: after version begin of a record (a Begin, or a later
// version of the same holding, whose holder died or was cut off before it
// released the lease), nobody else wrote
// the record until that lease (as its holder's Fences extended it)
// expired, and the next Begin is another holder's.
func (c *haCluster) checkTakeover(what, name string, vers []leaseVersion, begin int) {
	c.t.Helper()
	bi := slices.IndexFunc(vers, func(l leaseVersion) bool { return l.version == begin })
	// A version of the holding after its Begin (the Fence right before
	// the PATCH) names the same holding: go back to its Begin.
	for bi > 0 && vers[bi].holder != "" && !isBegin(vers, bi) {
		bi--
	}
	if bi < 0 || !isBegin(vers, bi) {
		c.t.Errorf("%s: version %d of the record of %s is not a Begin; history:%s", what, begin, name, describeVersions(vers))
		return
	}
	b := vers[bi]
	// The holder's own Fences (same holder) extend its lease.
	exp, j := b.expires, bi+1
	for ; j < len(vers) && vers[j].holder == b.holder; j++ {
		if vers[j].expires.After(exp) {
			exp = vers[j].expires
		}
	}
	for _, l := range vers[j:] {
		if l.written.Before(exp) {
			c.t.Errorf("%s: version %d of the record of %s was written at %s, during the lease of %s (until %s); history:%s",
				what, l.version, name, l.written.Format("15:04:05.000"), b.holder, exp.Format("15:04:05.000"), describeVersions(vers))
			return
		}
	}
	for j := bi + 1; j < len(vers); j++ {
		if isBegin(vers, j) {
			if vers[j].holder == b.holder {
				c.t.Errorf("%s: the Begin after version %d of %s is by the same holder %s", what, begin, name, b.holder)
			}
			return
		}
	}
	c.t.Errorf("%s: no Begin after version %d of the record of %s: nobody took over; history:%s", what, begin, name, describeVersions(vers))
}

// checkSentinel: no lease record version, HMAC key version, lease write
// sent to Vault, process log or audit log holds the sentinel or a Vault
// credential.
func (c *haCluster) checkSentinel() {
	versions, writes := 0, 0
	for _, in := range c.f.integs {
		for _, l := range c.leaseVersions(in.name) {
			versions++
			c.f.noSentinel(fmt.Sprintf("lease record %s version %d", in.name, l.version), l.raw)
		}
	}
	for _, l := range c.versionsAt("_meta/hmac-key") {
		versions++
		c.f.noSentinel(fmt.Sprintf("HMAC key record version %d", l.version), l.raw)
	}
	for _, p := range c.procs {
		for _, r := range p.tap.all() {
			if r.body != "" {
				writes++
				c.f.noSentinel("a lease write of "+p.label, r.body)
			}
		}
		b, _ := os.ReadFile(c.f.path("audit-" + p.label + ".log"))
		c.f.noSentinel("audit log of "+p.label, string(b))
	}
	c.mu.Lock()
	ds := slices.Clone(c.daemons)
	c.mu.Unlock()
	for _, d := range ds {
		c.f.noSentinel("log of a rotator process", d.logs.String())
	}
	c.t.Logf("sentinel: checked %d record versions (lease records and HMAC key), %d record writes as sent, 3 audit logs, the logs of %d processes", versions, writes, len(ds))
}

// ---- processes ----

type haProc struct {
	c      *haCluster
	label  string
	idx    int
	fp     *faultProxy
	tap    *vaultTap
	hp     *hoodProxy
	config string

	mu       sync.Mutex
	d        *daemon
	gen      int // instance: incremented by each start
	killedAt time.Time
}

// start starts a new instance of the process (the last one must have ended).
func (p *haProc) start() *daemon {
	p.c.t.Helper()
	p.mu.Lock()
	p.gen++
	p.mu.Unlock()
	d := p.c.f.startDaemon(p.config)
	p.mu.Lock()
	p.d = d
	p.mu.Unlock()
	p.c.mu.Lock()
	p.c.daemons = append(p.c.daemons, d)
	p.c.mu.Unlock()
	return d
}

func (p *haProc) daemon() *daemon {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.d
}

func (p *haProc) curGen() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.gen
}

// kill sends SIGKILL to the running instance (from any goroutine).
func (p *haProc) kill() time.Time {
	p.mu.Lock()
	d := p.d
	p.mu.Unlock()
	at := time.Now()
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	p.mu.Lock()
	p.killedAt = at
	p.mu.Unlock()
	return at
}

// signal sends sig to the running instance (SIGSTOP, SIGCONT).
func (p *haProc) signal(sig syscall.Signal) {
	p.mu.Lock()
	d := p.d
	p.mu.Unlock()
	_ = d.cmd.Process.Signal(sig)
}

// stop sends SIGSTOP and waits (up to 2s) until every thread of the
// process is stopped (/proc/<pid>/task/*/stat state T).
func (p *haProc) stop() {
	p.mu.Lock()
	d := p.d
	p.mu.Unlock()
	_ = d.cmd.Process.Signal(syscall.SIGSTOP)
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", d.cmd.Process.Pid))
		stopped := len(tasks) > 0
		for _, task := range tasks {
			b, err := os.ReadFile(task)
			// The state follows the command name in parentheses.
			i := bytes.LastIndexByte(b, ')')
			if err != nil || i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
				stopped = false
				break
			}
		}
		if stopped {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func (p *haProc) killTime() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.killedAt
}

// haStatus is one entry of GET /v1/status, with the attempt's time.
type haStatus struct {
	Name                string     `json:"name"`
	VaultVersion        int        `json:"vault_version"`
	LastAttempt         *time.Time `json:"last_attempt"`
	LastResult          string     `json:"last_result"`
	LastError           string     `json:"last_error"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
}

func (p *haProc) status() map[string]haStatus {
	p.c.t.Helper()
	code, b := p.daemon().get("/v1/status", true)
	if code != http.StatusOK {
		p.c.t.Fatalf("%s: GET /v1/status: got %d, want 200", p.label, code)
	}
	var list []haStatus
	if err := json.Unmarshal(b, &list); err != nil {
		p.c.t.Fatalf("%s: GET /v1/status: %v", p.label, err)
	}
	out := map[string]haStatus{}
	for _, s := range list {
		out[s.Name] = s
	}
	return out
}

// haOutcome is one outcome of a POST /v1/rotate answer.
type haOutcome struct {
	Name     string   `json:"name"`
	Result   string   `json:"result"`
	Error    string   `json:"error"`
	Reason   string   `json:"reason"`
	Warnings []string `json:"warnings"`
}

// forceRotate POSTs /v1/rotate (from any goroutine: no test calls).
// wrote, when not nil, is called once the request is on the wire.
func (p *haProc) forceRotate(client *http.Client, wrote func()) (int, []byte, error) {
	ctx := context.Background()
	if wrote != nil {
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { wrote() }})
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.daemon().addr+"/v1/rotate", nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer admin-"+sentinel)
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// vaultMetricLines returns the rotator_vault_requests_total samples.
func (p *haProc) vaultMetricLines() []string {
	_, b := p.daemon().get("/metrics", false)
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "rotator_vault_requests_total{") {
			out = append(out, sc.Text())
		}
	}
	return out
}

// ---- the tap in front of each process's Vault fault proxy ----

type vaultReq struct {
	proc, method, path string
	gen                int
	cat                string // what was asked: "record read", "record write", "secret read", ...
	lease              string // integration name, for a record request
	holder             string // record write: the holder it claims ("" releases)
	body               string // record write: the body (HMACs and names)
	at, done           time.Time
	status             int  // 0: no answer
	version            int  // record write answered 200: the version written
	blocked            bool // never forwarded (blockLeaseWrites)
	fate               string
}

// vaultAction is what a vaultTap hook makes of a request.
type vaultAction int

const (
	vaultPass     vaultAction = iota
	vaultKillDrop             // kill the sender; the request never reaches Vault
)

type vaultTap struct {
	c   *haCluster
	p   *haProc
	url string
	srv *http.Server

	mu               sync.Mutex
	reqs             []*vaultReq
	inflight         int
	blockLeaseWrites bool
}

func startVaultTap(t *testing.T, c *haCluster, p *haProc) *vaultTap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	v := &vaultTap{c: c, p: p, url: "http://" + ln.Addr().String()}
	v.srv = &http.Server{Handler: v, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = v.srv.Serve(ln) }()
	t.Cleanup(func() { _ = v.srv.Close() })
	return v
}

func isWrite(method string) bool {
	return method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch
}

// category names a Vault request; lease is the integration of a record.
func (c *haCluster) category(method, path string) (cat, lease string) {
	rw := "read"
	if isWrite(method) {
		rw = "write"
	} else if method != http.MethodGet {
		rw = strings.ToLower(method)
	}
	data := "/v1/" + haMount + "/data/" + c.leasePath + "/"
	switch {
	case strings.HasPrefix(path, data+"_meta/"):
		return "hmac key " + rw, ""
	case strings.HasPrefix(path, data):
		return "record " + rw, strings.TrimPrefix(path, data)
	case strings.HasPrefix(path, "/v1/"+haMount+"/"):
		return "lease mount other " + rw, ""
	case strings.HasPrefix(path, "/v1/secret/data/"):
		return "secret " + rw, ""
	case strings.HasPrefix(path, "/v1/secret/metadata/"):
		return "secret metadata " + rw, ""
	case strings.HasPrefix(path, "/v1/auth/"):
		return "auth", ""
	}
	return "other " + rw, ""
}

func (v *vaultTap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	rq := &vaultReq{proc: v.p.label, gen: v.p.curGen(), method: r.Method, path: r.URL.Path, at: time.Now()}
	rq.cat, rq.lease = v.c.category(r.Method, r.URL.Path)
	leaseWrite := rq.lease != "" && isWrite(r.Method)
	if leaseWrite {
		var b struct {
			Data struct {
				Holder string `json:"holder"`
			} `json:"data"`
		}
		_ = json.Unmarshal(body, &b)
		rq.holder, rq.body = b.Data.Holder, string(body)
	}
	v.mu.Lock()
	v.reqs = append(v.reqs, rq)
	v.inflight++
	block := v.blockLeaseWrites && leaseWrite
	rq.blocked = block
	snap := *rq
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		v.inflight--
		rq.done = time.Now()
		v.mu.Unlock()
	}()
	v.c.mu.Lock()
	hook := v.c.vaultHook
	v.c.mu.Unlock()
	act := vaultPass
	if hook != nil {
		act = hook(v.p, snap)
	}
	switch act {
	case vaultKillDrop:
		v.p.kill()
		v.mu.Lock()
		rq.fate = "dropped"
		v.mu.Unlock()
		return
	}
	if block {
		<-r.Context().Done() // a black hole: the write never reaches Vault
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	if !leaseWrite {
		sw := &haStatusWriter{ResponseWriter: w}
		v.p.fp.ServeHTTP(sw, r)
		v.mu.Lock()
		rq.status = sw.status
		v.mu.Unlock()
		return
	}
	// A record write: its answer is held until the landed hook had its
	// say (it may kill the sender, which then never learns that its write
	// landed).
	rec := httptest.NewRecorder()
	v.p.fp.ServeHTTP(rec, r)
	version := 0
	if rec.Code == http.StatusOK {
		var a struct {
			Data struct {
				Version int `json:"version"`
			} `json:"data"`
		}
		if json.Unmarshal(rec.Body.Bytes(), &a) == nil {
			version = a.Data.Version
		}
	}
	v.mu.Lock()
	rq.status, rq.version = rec.Code, version
	snap = *rq
	v.mu.Unlock()
	v.c.mu.Lock()
	landed := v.c.landedHook
	v.c.mu.Unlock()
	if version > 0 && landed != nil && landed(v.p, snap) {
		v.p.kill()
		v.mu.Lock()
		rq.fate = "landed, answer withheld: the sender was killed"
		v.mu.Unlock()
		return
	}
	maps.Copy(w.Header(), rec.Header())
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func (v *vaultTap) setBlockLeaseWrites(b bool) {
	v.mu.Lock()
	v.blockLeaseWrites = b
	v.mu.Unlock()
}

// all returns every request recorded, in order of arrival.
func (v *vaultTap) all() []vaultReq {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]vaultReq, len(v.reqs))
	for i, r := range v.reqs {
		out[i] = *r
	}
	return out
}

// idleFor reports whether no request is in flight and none ended within d.
func (v *vaultTap) idleFor(d time.Duration) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.inflight > 0 {
		return false
	}
	for _, r := range v.reqs {
		if time.Since(r.done) < d {
			return false
		}
	}
	return true
}

// counts counts the requests by category.
func (v *vaultTap) counts() map[string]int {
	out := map[string]int{}
	for _, r := range v.all() {
		switch {
		case r.cat == "record write" && r.status == http.StatusOK:
			out["record write ok"]++
		case r.cat == "record write" && r.status == http.StatusBadRequest:
			out["record write refused (check-and-set)"]++
		case r.cat == "record write":
			out["record write failed"]++
		default:
			out[r.cat]++
		}
	}
	return out
}

// haStatusWriter remembers the status written; it lets the fault proxy
// hijack the connection.
type haStatusWriter struct {
	http.ResponseWriter
	status  int
	capture bool // keep the body (a record write's answer: its version)
	body    bytes.Buffer
}

func (s *haStatusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *haStatusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	if s.capture && s.body.Len() < 1<<16 {
		s.body.Write(b)
	}
	return s.ResponseWriter.Write(b)
}

func (s *haStatusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *haStatusWriter) Flush() { _ = http.NewResponseController(s.ResponseWriter).Flush() }

func (s *haStatusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(s.ResponseWriter).Hijack()
}

// ---- the proxy in front of Hood, one per process ----

type hoodAction int

const (
	hoodForward     hoodAction = iota
	hoodDrop                   // never forwarded: held until the client goes away
	hoodKillForward            // kill the sender, then forward the request: Hood carries it out
	hoodHold                   // hold the request until releaseHeld, then forward it (whether or not the sender waits)
)

type hoodReq struct {
	proc      string
	gen       int
	method    string
	id        string
	settings  map[string]string // PATCH: the settings sent (plain: never print)
	arrived   time.Time
	finished  time.Time
	forwarded bool
	status    int    // Hood's answer; 0 when not forwarded
	fate      string // "forwarded", "dropped", "lost" (client gone during the delay)
}

func (r hoodReq) accepted() bool { return r.forwarded && r.status == http.StatusNoContent }

type hoodProxy struct {
	c   *haCluster
	p   *haProc
	url string
	srv *http.Server

	mu   sync.Mutex
	reqs []*hoodReq
}

func startHoodProxy(t *testing.T, c *haCluster, p *haProc) *hoodProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hoodProxy{c: c, p: p, url: "http://" + ln.Addr().String()}
	h.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go func() { _ = h.srv.Serve(ln) }()
	t.Cleanup(func() { _ = h.srv.Close() })
	return h
}

func (h *hoodProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	rq := &hoodReq{proc: h.p.label, gen: h.p.curGen(), method: r.Method, arrived: time.Now()}
	if id, ok := strings.CutPrefix(r.URL.Path, "/v1/hood/integrations/"); ok {
		rq.id = id
	}
	if r.Method == http.MethodPatch {
		var b struct {
			Settings map[string]any `json:"settings"`
		}
		_ = json.Unmarshal(body, &b)
		rq.settings = map[string]string{}
		for k, v := range b.Settings {
			s, ok := v.(string)
			if !ok {
				s = fmt.Sprintf("<%T>", v)
			}
			rq.settings[k] = s
		}
	}
	h.mu.Lock()
	h.reqs = append(h.reqs, rq)
	snap := *rq
	h.mu.Unlock()

	h.c.mu.Lock()
	hook, delay, held := h.c.hoodHook, h.c.hoodDelay, h.c.held
	h.c.mu.Unlock()
	act := hoodForward
	if hook != nil {
		act = hook(h.p, snap)
	}
	if act == hoodDrop {
		h.mu.Lock()
		rq.fate = "dropped"
		h.mu.Unlock()
		<-r.Context().Done()
		return
	}
	if act == hoodKillForward {
		h.p.kill()
		r = r.WithContext(context.WithoutCancel(r.Context()))
	}
	if act == hoodHold {
		<-held
		r = r.WithContext(context.WithoutCancel(r.Context()))
	}
	if r.Method == http.MethodPatch && delay > 0 {
		time.Sleep(rand.N(delay + 1))
		if r.Context().Err() != nil && rand.N(2) == 0 {
			// The sender died while its PATCH was on its way: half the
			// time the request is lost with the connection.
			h.mu.Lock()
			rq.fate = "lost"
			h.mu.Unlock()
			return
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	sw := &haStatusWriter{ResponseWriter: w}
	h.c.f.hood.Handler().ServeHTTP(sw, r)
	h.mu.Lock()
	rq.forwarded, rq.status, rq.finished, rq.fate = true, sw.status, time.Now(), "forwarded"
	h.mu.Unlock()
}

// all returns every request recorded, in order of arrival.
func (h *hoodProxy) all() []hoodReq {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]hoodReq, len(h.reqs))
	for i, r := range h.reqs {
		out[i] = *r
	}
	return out
}

// ---- figures ----

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
