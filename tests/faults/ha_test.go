package faults_test

// HA through Vault (docs/ha.md, issue 8), end to end: three `rotator run`
// processes with ha.mode vault share one OpenBao server and one Hood; each
// PATCH is attributed to the process that sent it (its own Hood proxy) and
// checked against the KV v2 versions of the integration's lease record:
// the process that made it must have written the Begin right before it,
// and every Vault version of every secret reaches Hood exactly once.
//
// ROTATOR_HA_KILL_LOOPS sets how many kills TestHAKilledHolder's loop makes
// (default 5; each costs up to lease_ttl + a schedule interval).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/state"
)

const (
	envHAKillLoops     = "ROTATOR_HA_KILL_LOOPS"
	defaultHAKillLoops = 5
	// maxHAKillDelay bounds the random delay between a process's Begin
	// (answered by Vault, seen at its tap) and its SIGKILL; maxHAHoodDelay
	// the random delay of each PATCH at the Hood proxies during the loop,
	// so that kills land before the Begin, between Begin and PATCH, during
	// the PATCH and after the confirmation.
	maxHAKillDelay = 150 * time.Millisecond
	maxHAHoodDelay = 100 * time.Millisecond
	// takeoverSlack is added to lease_ttl + one schedule interval in the
	// deadlines of a takeover (a generous Eventually, not a timing claim).
	takeoverSlack = 60 * time.Second
)

func haKillLoops(t *testing.T) int {
	v := os.Getenv(envHAKillLoops)
	if v == "" {
		return defaultHAKillLoops
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", envHAKillLoops, v)
	}
	return n
}

// patchesOf returns the PATCHes of in that arrived at or after since.
func (c *haCluster) patchesOf(in integ, since time.Time) []hoodReq {
	var out []hoodReq
	for _, p := range c.patches() {
		if p.id == in.id && !p.arrived.Before(since) {
			out = append(out, p)
		}
	}
	return out
}

// checkPushes: since since, every PATCH of ins reached Hood and was
// accepted, carries a whole value written to its path, was made under the
// sender's lease (attribute), and every version written since (all
// versions when since is zero) got exactly one. It returns the accepted
// PATCHes by process.
func (c *haCluster) checkPushes(ins []integ, since time.Time) map[string]int {
	c.t.Helper()
	byProc := map[string]int{}
	for _, in := range ins {
		got := map[int]int{}
		vers := c.leaseVersions(in.name)
		for _, p := range c.patchesOf(in, since) {
			if !p.forwarded {
				continue // held back by a test's hook (the sender was killed): never reached Hood
			}
			if !p.accepted() {
				c.t.Errorf("PATCH of %s by %s: Hood answered %d, want 204", in.name, p.proc, p.status)
				continue
			}
			v, ok := c.versionOf(in, p.settings)
			if !ok {
				c.t.Errorf("PATCH of %s by %s carries settings %v that are no value ever written to its path", in.name, p.proc, slices.Sorted(maps.Keys(p.settings)))
				continue
			}
			got[v]++
			byProc[p.proc]++
			c.attribute(p, in.name, vers, v, false)
		}
		for _, w := range c.written(in) {
			if w.at.Before(since) {
				continue
			}
			if got[w.version] != 1 {
				c.t.Errorf("%s version %d: %d accepted PATCHes, want exactly 1", in.name, w.version, got[w.version])
			}
		}
	}
	return byProc
}

// noFailures: no process's status shows a failed integration among ins.
func (c *haCluster) noFailures(ins []integ) {
	c.t.Helper()
	for _, p := range c.procs {
		st := p.status()
		for _, in := range ins {
			if s := st[in.name]; s.LastResult == "failed" {
				c.t.Errorf("%s: %s failed: %s", p.label, in.name, redact(s.LastError))
			}
		}
	}
}

// logLines counts, over every process ever started, the log lines that
// contain sub.
func (c *haCluster) logLines(sub string) int {
	c.mu.Lock()
	ds := slices.Clone(c.daemons)
	c.mu.Unlock()
	n := 0
	for _, d := range ds {
		for _, l := range strings.Split(d.logs.String(), "\n") {
			if strings.Contains(l, sub) {
				n++
			}
		}
	}
	return n
}

// linesWith returns the log lines of every process that contain sub,
// redacted.
func (c *haCluster) linesWith(sub string) []string {
	c.mu.Lock()
	ds := slices.Clone(c.daemons)
	c.mu.Unlock()
	var out []string
	for _, d := range ds {
		for _, l := range strings.Split(d.logs.String(), "\n") {
			if strings.Contains(l, sub) {
				out = append(out, redact(l))
			}
		}
	}
	return out
}

func TestHAScheduledPass(t *testing.T) {
	t.Parallel()
	c := newHACluster(t, 12, 2101)
	c.start(haSchedule)
	started := time.Now()
	c.eventually(90*time.Second, "the start-up passes push and confirm the first value of every integration", func() bool { return c.converged() })
	t.Logf("first values pushed and confirmed %s after the start of the three processes", time.Since(started).Round(10*time.Millisecond))
	pushFrom := c.cost()

	for round := 1; round <= 2; round++ {
		at := time.Now()
		c.rotateAll()
		c.eventually(60*time.Second, fmt.Sprintf("rotation %d: every new value is pushed and confirmed", round), func() bool { return c.converged() })
		t.Logf("rotation %d: the 12 new versions were pushed and confirmed within %s", round, time.Since(at).Round(10*time.Millisecond))
		if d := time.Until(at.Add(3 * time.Second)); d > 0 {
			time.Sleep(d) // the rotations are a few seconds apart
		}
	}
	pushTo := c.cost()

	// Passes with nothing to push: no PATCH, and what they cost in Vault.
	n := len(c.patches())
	quietFrom := c.cost()
	time.Sleep(4 * haInterval)
	quietTo := c.cost()
	if got := len(c.patches()); got != n {
		t.Errorf("%d PATCHes while nothing changed, want none", got-n)
	}

	byProc := c.checkPushes(c.f.integs, time.Time{})
	c.noFailures(c.f.integs)
	t.Logf("accepted PATCHes by process (3 versions x 12 integrations): %v", byProc)
	c.logCost("while pushing 2 rotations (24 pushes)", pushFrom, pushTo)
	c.logCost("passes with nothing to push", quietFrom, quietTo)
	for _, p := range c.procs {
		n := p.tap.counts()
		t.Logf("%s: HMAC key reads %d, writes %d; rotator_vault_requests_total: %s", p.label, n["hmac key read"], n["hmac key write"], strings.Join(p.vaultMetricLines(), "; "))
	}
	writes, refused, gets := 0, 0, 0
	for _, p := range c.procs {
		for _, r := range p.tap.all() {
			switch {
			case r.cat == "record write" && r.status == http.StatusOK:
				writes++
			case r.cat == "record write":
				refused++
			}
		}
	}
	for _, r := range c.hoodReqs() {
		if r.method == http.MethodGet {
			gets++
		}
	}
	t.Logf("over the whole test, for 36 pushes: %d record writes (%.2f per push), %d Begins refused by check-and-set (another process won the race), %d Hood GETs (preflights and read-backs, %.2f per push)",
		writes, float64(writes)/36, refused, gets, float64(gets)/36)
	if l := c.logLines("lease was lost"); l > 0 {
		t.Errorf("%d log lines say a lease was lost before the confirmation, want none (no process was slow)", l)
	}
}

// haReason blanks the times and holders of a reason, so that equal
// reasons group.
var (
	haTimeRE   = regexp.MustCompile(`\d{4}-\d\d-\d\dT[0-9:.]+Z?`)
	haHolderRE = regexp.MustCompile(`proc-[abc]#[0-9a-f]+`)
)

func haReason(s string) string {
	return haHolderRE.ReplaceAllString(haTimeRE.ReplaceAllString(redact(s), "<time>"), "<holder>")
}

func TestHAForcedPass(t *testing.T) {
	t.Parallel()
	c := newHACluster(t, 12, 2201)
	c.start("@every 1h") // only the start-up and the forced passes
	c.eventually(90*time.Second, "the start-up passes push and confirm the first value of every integration", func() bool { return c.converged() })
	client := &http.Client{Timeout: 2 * time.Minute}
	defer client.CloseIdleConnections()

	for _, rotateFirst := range []bool{true, false} {
		what := "after a rotation"
		if !rotateFirst {
			what = "with nothing changed"
			time.Sleep(50 * time.Millisecond) // the new passes arrive after the last confirmation
		} else {
			c.rotateAll()
		}
		mark := time.Now()
		type answer struct {
			code int
			body []byte
			err  error
		}
		// "At once": Hood's answers to the preflight GETs are held until
		// the three requests are on the wire (and 300 ms more, well below
		// hood.timeout), so that no push is confirmed before all three
		// arrived, however the machine schedules the callers.
		c.setHoodHook(func(_ *haProc, r hoodReq) hoodAction {
			if r.method == http.MethodGet {
				return hoodHold
			}
			return hoodForward
		})
		answers := make([]answer, len(c.procs))
		start := make(chan struct{})
		var wg, sent sync.WaitGroup
		for i, p := range c.procs {
			sent.Add(1)
			var once sync.Once
			wg.Go(func() {
				<-start
				answers[i].code, answers[i].body, answers[i].err = p.forceRotate(client, func() { once.Do(sent.Done) })
				once.Do(sent.Done)
			})
		}
		close(start)
		sent.Wait()
		time.Sleep(300 * time.Millisecond)
		c.setHoodHook(nil)
		c.releaseHeld()
		wg.Wait()

		pushed := map[string]int{}
		reasons := map[string]int{}
		for i, a := range answers {
			l := c.procs[i].label
			if a.err != nil || a.code != http.StatusOK {
				t.Errorf("%s: POST /v1/rotate %s: %d %v %s", l, what, a.code, a.err, redact(string(a.body)))
				continue
			}
			c.f.noSentinel("POST /v1/rotate answer of "+l, string(a.body))
			var rep struct {
				Outcomes []haOutcome `json:"outcomes"`
			}
			if err := json.Unmarshal(a.body, &rep); err != nil {
				t.Errorf("%s: POST /v1/rotate answer: %v", l, err)
				continue
			}
			seen := map[string]bool{}
			for _, o := range rep.Outcomes {
				seen[o.Name] = true
				switch o.Result {
				case "pushed":
					pushed[o.Name]++
				case "unchanged":
					reasons[haReason(o.Reason)]++
				default:
					t.Errorf("%s, forced pass %s: %s is %q (%s), want pushed or unchanged", l, what, o.Name, o.Result, redact(o.Error))
				}
				for _, w := range o.Warnings {
					if strings.Contains(w, "lease") {
						t.Errorf("%s, forced pass %s: %s: warning %q", l, what, o.Name, redact(w))
					}
				}
			}
			for _, in := range c.f.integs {
				if !seen[in.name] {
					t.Errorf("%s, forced pass %s: no outcome for %s", l, what, in.name)
				}
			}
		}
		c.eventually(30*time.Second, "every record is released and confirms the latest value", func() bool { return c.converged() })
		byProc := map[string]int{}
		for _, in := range c.f.integs {
			ps := c.patchesOf(in, mark)
			if len(ps) != 1 || !ps[0].accepted() {
				t.Errorf("forced passes %s: %s got %d PATCHes, want exactly 1 (accepted)", what, in.name, len(ps))
			}
			vers := c.leaseVersions(in.name)
			for _, p := range ps {
				byProc[p.proc]++
				if v, ok := c.versionOf(in, p.settings); !ok || v != c.latest(in).version {
					t.Errorf("forced passes %s: the PATCH of %s does not carry its latest value", what, in.name)
				} else {
					c.attribute(p, in.name, vers, v, false)
				}
			}
			if pushed[in.name] != 1 {
				t.Errorf("forced passes %s: %d answers report %s pushed, want exactly 1", what, pushed[in.name], in.name)
			}
		}
		t.Logf("forced passes %s on the 3 processes at once: PATCHes by process %v; unchanged reasons: %v", what, byProc, reasons)
	}
}

func TestHAKilledHolder(t *testing.T) {
	t.Parallel()
	c := newHACluster(t, 4, 2301)
	c.start(haSchedule)
	c.eventually(90*time.Second, "the start-up passes push and confirm the first value of every integration", func() bool { return c.converged() })

	// 1. The holder's PATCH never reaches Hood: the process is killed when
	// its PATCH of x arrives at its Hood proxy, which drops it.
	x := c.f.integs[0]
	var victim atomic.Pointer[haProc]
	c.setHoodHook(func(p *haProc, r hoodReq) hoodAction {
		if r.method == http.MethodPatch && r.id == x.id && victim.CompareAndSwap(nil, p) {
			p.kill()
			return hoodDrop
		}
		return hoodForward
	})
	mark := time.Now()
	v := c.rotate(x.name)[x.name]
	c.eventually(30*time.Second, "a process sends the PATCH of the new value of x", func() bool { return victim.Load() != nil })
	a := victim.Load()
	select {
	case <-a.daemon().done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not die of SIGKILL", a.label)
	}
	killAt := a.killTime()
	c.setHoodHook(nil)
	l, ok := c.lease(x.name)
	switch {
	case !ok:
		t.Fatalf("no lease record of %s after the kill", x.name)
	case label(l.holder) != a.label || l.rec.Pending == nil || l.rec.Pending.VaultVersion != v || !l.expires.After(killAt):
		t.Errorf("record of %s after %s was killed: holder %q, pending %v, expires %s (killed at %s); want %s holding it with version %d pending, unexpired",
			x.name, a.label, l.holder, l.rec.Pending != nil, l.expires.Format("15:04:05.000"), killAt.Format("15:04:05.000"), a.label, v)
	}
	t.Logf("killed %s with its PATCH of %s on the way; its lease runs until %s after the kill", a.label, x.name, l.expires.Sub(killAt).Round(10*time.Millisecond))
	c.eventually(haLeaseTTL+haInterval+takeoverSlack, "another process pushes and confirms the new value of x", func() bool { return c.converged(x) })
	var takeover time.Duration
	for _, p := range c.patchesOf(x, mark) {
		switch {
		case p.proc == a.label && p.forwarded:
			t.Errorf("a PATCH of %s from the killed %s reached Hood", x.name, a.label)
		case p.proc != a.label && p.accepted() && takeover == 0:
			takeover = p.arrived.Sub(killAt)
		}
	}
	c.checkPushes([]integ{x}, mark)
	c.checkTakeover("the holder killed with its PATCH dropped", x.name, c.leaseVersions(x.name), l.version)
	if !c.holdsLatest(x) {
		t.Errorf("Hood does not hold the latest value of %s", x.name)
	}
	t.Logf("takeover of %s after the kill of its holder (PATCH dropped): %s (lease_ttl %s, schedule every %s)", x.name, takeover.Round(10*time.Millisecond), haLeaseTTL, haInterval)
	a.start()

	// 2. The holder killed at a random point of its push, N times: each
	// iteration picks one of the kill points (every one once in each run
	// of len(killPoints) iterations, in random order).
	loops := haKillLoops(t)
	var (
		leaseTakeovers, freeTakeovers []time.Duration
		byPoint                       = map[string]int{}
		beforeBegin, afterBegin       int
		patchSent, afterConfirmed     int
		victimAccepted, rePushed      int
	)
	type victimAt struct {
		p   *haProc
		gen int
	}
	var order []int
	for i := range loops {
		if len(order) == 0 {
			order = rand.Perm(len(killPoints))
		}
		point := killPoints[order[0]]
		order = order[1:]
		byPoint[point]++
		x := c.f.integs[i%len(c.f.integs)]
		c.eventually(60*time.Second, "every integration is at rest", func() bool { return c.converged() })
		var vic atomic.Pointer[victimAt]
		c.setVaultHook(func(p *haProc, r vaultReq) vaultAction {
			if point != pointBeforeBegin || r.lease != x.name || !isWrite(r.method) || r.holder == "" {
				return vaultPass
			}
			if !vic.CompareAndSwap(nil, &victimAt{p, r.gen}) {
				return vaultPass
			}
			return vaultKillDrop
		})
		// The Begin that won: its sender is killed before it learns so, or
		// at a random moment after.
		c.setLandedHook(func(p *haProc, r vaultReq) bool {
			if r.lease != x.name || r.holder == "" || (point != pointBeginInFlight && point != pointRandom) {
				return false
			}
			if !vic.CompareAndSwap(nil, &victimAt{p, r.gen}) {
				return false
			}
			if point == pointBeginInFlight {
				return true
			}
			time.AfterFunc(rand.N(maxHAKillDelay+1), func() { p.kill() })
			return false
		})
		c.setHoodHook(func(p *haProc, r hoodReq) hoodAction {
			if r.method != http.MethodPatch || r.id != x.id {
				return hoodForward
			}
			switch point {
			case pointPatchDropped, pointPatchDelivered:
			default:
				return hoodForward
			}
			if !vic.CompareAndSwap(nil, &victimAt{p, r.gen}) {
				return hoodForward
			}
			if point == pointPatchDropped {
				p.kill()
				return hoodDrop
			}
			return hoodKillForward
		})
		if point == pointRandom {
			c.setHoodDelay(maxHAHoodDelay)
		}
		start := time.Now()
		v := c.rotate(x.name)[x.name]
		c.eventually(30*time.Second, fmt.Sprintf("iteration %d (%s): a process is picked to be killed", i, point), func() bool { return vic.Load() != nil })
		va := vic.Load()
		c.eventually(10*time.Second, "the kill", func() bool { return va.p.killTime().After(start) })
		select {
		case <-va.p.daemon().done:
		case <-time.After(30 * time.Second):
			t.Fatalf("iteration %d: %s did not die of SIGKILL", i, va.p.label)
		}
		c.setVaultHook(nil)
		c.setLandedHook(nil)
		c.setHoodHook(nil)
		killAt, restartAt := va.p.killTime(), time.Now()
		// Nothing of the dead process is still on its way to Hood.
		c.eventually(30*time.Second, "the killed process's requests are done", func() bool {
			for _, r := range va.p.hp.all() {
				if r.gen == va.gen && r.fate == "" {
					return false
				}
			}
			return true
		})
		c.setHoodDelay(0)
		va.p.start()
		c.eventually(haLeaseTTL+haInterval+takeoverSlack, fmt.Sprintf("iteration %d (%s): version %d of %s is pushed and confirmed", i, point, v, x.name),
			func() bool { return c.converged(x) })

		vers := c.leaseVersions(x.name)
		bi := -1
		for j := range vers {
			if isBegin(vers, j) && label(vers[j].holder) == va.p.label && vers[j].written.After(start) && vers[j].written.Before(restartAt) {
				bi = j
			}
		}
		vConfirmed := false
		if bi >= 0 {
			// The killed holder's own release, after its Fences, if it made one.
			j := bi + 1
			for j < len(vers) && vers[j].holder == vers[bi].holder && !vers[j].written.After(vers[bi].expires) {
				j++
			}
			vConfirmed = j < len(vers) && vers[j].holder == "" && vers[j].rec.Confirmed != nil && vers[j].rec.Confirmed.VaultVersion == v &&
				vers[j].written.Before(vers[bi].expires)
		}
		var vPatches, others []hoodReq
		for _, p := range c.patchesOf(x, start) {
			if p.proc == va.p.label && p.gen == va.gen {
				vPatches = append(vPatches, p)
				continue
			}
			if p.accepted() {
				if got, ok := c.versionOf(x, p.settings); ok && got == v {
					others = append(others, p)
				} else {
					t.Errorf("iteration %d: %s PATCHed %s with a value other than version %d", i, p.proc, x.name, v)
				}
			}
		}
		vAccepted := slices.ContainsFunc(vPatches, hoodReq.accepted)
		switch {
		case bi < 0:
			beforeBegin++
		case vConfirmed:
			afterConfirmed++
		case len(vPatches) > 0:
			patchSent++
		default:
			afterBegin++
		}
		if vAccepted {
			victimAccepted++
		}
		if len(vPatches) > 1 {
			t.Errorf("iteration %d: the killed %s sent %d PATCHes of %s, want at most 1", i, va.p.label, len(vPatches), x.name)
		}
		switch {
		case len(others) > 1:
			t.Errorf("iteration %d (%s): %d PATCHes of version %d of %s from processes that were not killed, want at most 1", i, point, len(others), v, x.name)
		case vConfirmed && len(others) != 0:
			t.Errorf("iteration %d (%s): %s confirmed version %d of %s before it was killed, yet another process pushed it again", i, point, va.p.label, v, x.name)
		case !vConfirmed && len(others) != 1:
			t.Errorf("iteration %d (%s): version %d of %s was not confirmed by the killed %s: want exactly 1 PATCH from another process, got %d", i, point, v, x.name, va.p.label, len(others))
		}
		if !vConfirmed && vAccepted && len(others) == 1 {
			rePushed++
		}
		wantLease := point == pointBeginInFlight || point == pointPatchDropped || point == pointPatchDelivered
		if wantLease && (bi < 0 || vConfirmed) {
			t.Errorf("iteration %d (%s): want the killed %s's Begin in the record and no confirmation by it; history:%s", i, point, va.p.label, describeVersions(vers))
		}
		if point == pointBeforeBegin && bi >= 0 {
			t.Errorf("iteration %d (%s): the record has a Begin of %s, whose Begin never reached Vault", i, point, va.p.label)
		}
		if len(others) == 1 {
			c.attribute(others[0], x.name, vers, v, false)
			if bi >= 0 && !vConfirmed {
				leaseTakeovers = append(leaseTakeovers, others[0].arrived.Sub(killAt))
				c.checkTakeover(fmt.Sprintf("iteration %d (%s)", i, point), x.name, vers, vers[bi].version)
			} else {
				freeTakeovers = append(freeTakeovers, others[0].arrived.Sub(killAt))
			}
		}
		if !c.holdsLatest(x) {
			t.Errorf("iteration %d: Hood does not hold the latest value of %s", i, x.name)
		}
		if t.Failed() {
			t.Logf("iteration %d (%s): record history of %s:%s", i, point, x.name, describeVersions(vers))
			t.FailNow()
		}
	}
	t.Logf("kill loop: %d iterations, kill points %v; the record shows: killed before its Begin landed=%d, after its Begin before any PATCH=%d, "+
		"with its PATCH sent and no confirmation=%d, after its confirmation=%d; its PATCH accepted by Hood=%d (pushed again by the takeover=%d)",
		loops, byPoint, beforeBegin, afterBegin, patchSent, afterConfirmed, victimAccepted, rePushed)
	t.Logf("takeover after a kill that left a live lease (kill -> the other process's PATCH): %s", durations(leaseTakeovers))
	t.Logf("push after a kill that left no lease (kill -> the other process's PATCH): %s", durations(freeTakeovers))
}

// Where TestHAKilledHolder's loop kills the process that pushes.
const (
	pointBeforeBegin    = "before its Begin reached Vault"
	pointBeginInFlight  = "when its Begin landed, before it got the answer"
	pointPatchDropped   = "after its Begin, its PATCH never reaching Hood"
	pointPatchDelivered = "with its PATCH on the way (Hood carries it out)"
	pointRandom         = "at a random 0-150 ms after its Begin landed (PATCHes delayed 0-100 ms)"
)

var killPoints = []string{pointBeforeBegin, pointBeginInFlight, pointPatchDropped, pointPatchDelivered, pointRandom}

func TestHAPartitionedHolder(t *testing.T) {
	t.Parallel()
	c := newHACluster(t, 6, 2401)
	y := c.addInteg("y-rollback", "2499", haKinds[0], "on_verify_failure: rollback")
	c.start(haSchedule)
	c.eventually(90*time.Second, "the start-up passes push and confirm the first value of every integration", func() bool { return c.converged() })
	pc := c.procs[2]

	// unchangedAfter: pc's last pass after at found every integration unchanged.
	unchangedAfter := func(at time.Time) bool {
		st := pc.status()
		for _, in := range c.f.integs {
			s := st[in.name]
			if s.LastResult != "unchanged" || s.LastAttempt == nil || !s.LastAttempt.After(at) {
				return false
			}
		}
		return true
	}
	for _, phase := range []string{"cut off from Vault", "lease writes black-holed"} {
		c.eventually(30*time.Second, pc.label+" is idle", func() bool { return pc.tap.idleFor(300 * time.Millisecond) })
		if phase == "cut off from Vault" {
			pc.fp.set(rule{mode: modeDrop})
		} else {
			pc.tap.setBlockLeaseWrites(true)
			// The others are stopped until the cut-off process, which
			// then decides first, has tried to Begin.
			for _, p := range c.procs[:2] {
				p.stop()
			}
		}
		at := time.Now()
		c.rotateAll()
		if phase != "cut off from Vault" {
			c.eventually(30*time.Second, pc.label+" tries to Begin a push", func() bool {
				return slices.ContainsFunc(pc.tap.all(), func(r vaultReq) bool { return r.blocked && r.holder != "" && !r.at.Before(at) })
			})
			for _, p := range c.procs[:2] {
				p.signal(syscall.SIGCONT)
			}
		}
		c.eventually(60*time.Second, phase+": the other processes push and confirm every new value", func() bool { return c.converged() })
		time.Sleep(2 * haInterval)
		byProc := c.checkPushes(c.f.integs, at)
		for _, p := range c.patches() {
			if p.proc == pc.label && !p.arrived.Before(at) {
				t.Errorf("%s, %s: PATCH of %s, want none", phase, pc.label, p.id)
			}
		}
		attempts := 0
		for _, r := range pc.tap.all() {
			if r.blocked && !r.at.Before(at) && r.holder != "" {
				attempts++
			}
		}
		done := len(c.patches())
		heal := time.Now()
		pc.fp.set()
		pc.tap.setBlockLeaseWrites(false)
		c.eventually(90*time.Second, phase+": after the heal, "+pc.label+" reports every integration unchanged", func() bool { return unchangedAfter(heal) })
		// The cut-off process's failures reach the shared records at the
		// heal. A failure is cleared only by a confirmed push, so each
		// integration may get one more PATCH after the heal: of the value
		// already confirmed, never a second one.
		healPushes := map[string]int{}
		for _, p := range c.patches()[done:] {
			healPushes[p.id]++
			for _, in := range c.f.integs {
				if in.id == p.id && !maps.Equal(p.settings, c.kinds[in.name].expect(c.latest(in).data)) {
					t.Errorf("%s: a PATCH of %s after the heal is not of its current value", phase, in.name)
				}
			}
		}
		for id, n := range healPushes {
			if n > 1 {
				t.Errorf("%s: %d PATCHes of %s after the heal, want at most 1 (the push that confirms it again)", phase, n, id)
			}
		}
		t.Logf("%s (%s): PATCHes by process %v; Begin attempts that never reached Vault: %d; back to unchanged %s after the heal; confirming PATCHes after the heal %d",
			pc.label, phase, byProc, attempts, time.Since(heal).Round(10*time.Millisecond), len(c.patches())-done)
	}

	// The holder cut off in the middle of a push whose verification fails:
	// its rollback needs a Fence, which cannot be written; its lease
	// expires, another process takes over, and it makes no second PATCH.
	good := c.latest(y)
	goodSettings := c.kinds[y.name].expect(good.data)
	c.f.hood.SetVerifier(func(id, _ string, s map[string]string) string {
		if id == y.id && !maps.Equal(s, goodSettings) {
			return "inactive"
		}
		return "active"
	})
	defer c.f.hood.SetVerifier(nil)
	rounds := []struct {
		what     string
		full     bool // cut off from Vault entirely, or from the lease records only
		readBack bool // cut off when its read-back arrives (after the Fence that follows the PATCH), not at the PATCH
	}{
		{"lease records cut off at its PATCH", false, false},
		{"cut off from Vault at its PATCH", true, false},
		{"lease records cut off at its read-back (the rollback's Fence fails)", false, true},
	}
	for _, rd := range rounds {
		what, full := rd.what, rd.full
		var victim atomic.Pointer[haProc]
		var cutDone atomic.Bool
		var cutMu sync.Mutex
		var cut time.Time
		cutOff := func(p *haProc) {
			if full {
				p.fp.set(rule{mode: modeDrop})
			} else {
				p.fp.set(rule{prefix: "/v1/" + haMount + "/", mode: modeDrop})
			}
			cutMu.Lock()
			cut = time.Now()
			cutMu.Unlock()
			cutDone.Store(true)
		}
		c.setHoodHook(func(p *haProc, r hoodReq) hoodAction {
			if r.id != y.id {
				return hoodForward
			}
			if r.method == http.MethodPatch && victim.CompareAndSwap(nil, p) && !rd.readBack {
				cutOff(p)
			}
			if r.method == http.MethodGet && rd.readBack && victim.Load() == p && !cutDone.Load() {
				cutOff(p)
			}
			return hoodForward
		})
		before := map[string]integrationStatus{}
		for _, p := range c.procs {
			before[p.label] = p.status()[y.name]
		}
		mark := time.Now()
		bad := c.rotate(y.name)[y.name]
		c.eventually(30*time.Second, what+": a process PATCHes the new value of y and is cut off", cutDone.Load)
		v := victim.Load()
		c.setHoodHook(nil)
		cutMu.Lock()
		cutAt := cut
		cutMu.Unlock()
		l, _ := c.lease(y.name)
		c.eventually(haLeaseTTL+haInterval+takeoverSlack, what+": another process takes over, fails the verification and rolls back", func() bool {
			l, ok := c.lease(y.name)
			return ok && l.holder == "" && l.rec.Failed != nil && l.rec.Failed.VaultVersion == bad && c.holds(y, good.version)
		})
		takeover := time.Since(cutAt)
		c.eventually(90*time.Second, what+": the cut-off holder's pass ends", func() bool {
			s := v.status()[y.name]
			return s.LastAttempt != nil && (before[v.label].LastAttempt == nil || s.LastAttempt.After(*before[v.label].LastAttempt)) && s.LastResult == "failed"
		})
		vs := v.status()[y.name]
		time.Sleep(haInterval)
		heal := time.Now()
		v.fp.set()
		c.eventually(60*time.Second, what+": the healed holder runs a pass", func() bool {
			s := v.status()[y.name]
			return s.LastAttempt != nil && s.LastAttempt.After(heal)
		})
		time.Sleep(2 * haInterval)

		vers := c.leaseVersions(y.name)
		var mine, theirsBad, theirsGood []hoodReq
		for _, p := range c.patchesOf(y, mark) {
			ver, _ := c.versionOf(y, p.settings)
			switch {
			case p.proc == v.label:
				mine = append(mine, p)
			case ver == bad:
				theirsBad = append(theirsBad, p)
				c.attribute(p, y.name, vers, bad, false)
			case ver == good.version:
				theirsGood = append(theirsGood, p)
				c.attribute(p, y.name, vers, good.version, true)
			default:
				t.Errorf("%s: a PATCH of y by %s with version %d", what, p.proc, ver)
			}
		}
		if len(mine) != 1 || !mine[0].accepted() {
			t.Errorf("%s: the cut-off holder %s made %d PATCHes of y, want exactly 1 (the new value; no rollback without a Fence)", what, v.label, len(mine))
		}
		if len(theirsBad) != 1 || len(theirsGood) != 1 {
			t.Errorf("%s: the other processes PATCHed y with the new value %d times and rolled back %d times, want 1 and 1", what, len(theirsBad), len(theirsGood))
		}
		if !c.holds(y, good.version) {
			t.Errorf("%s: Hood does not hold the last good value of y after the rollback", what)
		}
		// The cut-off holder wrote nothing after its Begin (no Fence, no
		// Fail): nothing was written until its lease expired, and the next
		// Begin is another process's.
		bi := -1
		for i := range vers {
			if isBegin(vers, i) && label(vers[i].holder) == v.label && vers[i].written.Before(cutAt) {
				bi = i
			}
		}
		if bi < 0 {
			t.Errorf("%s: no Begin of %s in the record of y; history:%s", what, v.label, describeVersions(vers))
		} else {
			c.checkTakeover(what, y.name, vers, vers[bi].version)
		}
		if label(l.holder) != v.label || l.rec.Pending == nil || l.rec.Pending.VaultVersion != bad {
			t.Errorf("%s: record of y when %s was cut off: holder %q, want %s with version %d pending", what, v.label, l.holder, v.label, bad)
		}
		t.Logf("%s mid-push (%s): takeover and rollback by another process %s after the cut; the cut-off holder reported %s: %s; its PATCHes %d, the others' %d + rollback %d",
			v.label, what, takeover.Round(10*time.Millisecond), vs.LastResult, haReason(vs.LastError), len(mine), len(theirsBad), len(theirsGood))
		if t.Failed() {
			t.Logf("record history of y:%s", describeVersions(vers))
			t.FailNow()
		}
	}
}

// TestHAPausedHolder measures the limit docs/ha.md names: a holder paused
// (SIGSTOP) in the middle of its push for longer than lease_ttl, while a
// newer value is written and pushed by another process once the lease
// expired. Two pause points: right after its Begin landed (before it read
// the answer), and with its PATCH on the wire (the PATCH is held by its
// Hood proxy while it is stopped and delivered late, as a paused sender's
// or a slow network's would be). The test asserts what the design
// promises (the others push the newer value exactly once, only after the
// lease expired; the paused holder makes at most that one late PATCH and
// writes nothing to the record afterwards) and logs what Hood ends up
// holding: the limit itself is not an assertion.
func TestHAPausedHolder(t *testing.T) {
	t.Parallel()
	c := newHACluster(t, 2, 2501)
	c.start(haSchedule)
	c.eventually(90*time.Second, "the start-up passes push and confirm the first value of every integration", func() bool { return c.converged() })
	for i, atPatch := range []bool{false, true} {
		x := c.f.integs[i]
		what := "paused right after its Begin landed"
		if atPatch {
			what = "paused with its PATCH on the wire"
		}
		var victim atomic.Pointer[haProc]
		c.setLandedHook(func(p *haProc, r vaultReq) bool {
			if !atPatch && r.lease == x.name && r.holder != "" && victim.CompareAndSwap(nil, p) {
				p.stop() // its Begin landed; it has not read the answer
			}
			return false
		})
		c.setHoodHook(func(p *haProc, r hoodReq) hoodAction {
			if atPatch && r.method == http.MethodPatch && r.id == x.id && victim.CompareAndSwap(nil, p) {
				p.stop()
				return hoodHold
			}
			return hoodForward
		})
		mark := time.Now()
		stale := c.rotate(x.name)[x.name]
		c.eventually(30*time.Second, what+": a process begins the push of the new value and is paused", func() bool { return victim.Load() != nil })
		v := victim.Load()
		c.setLandedHook(nil)
		c.setHoodHook(nil)
		pausedAt := time.Now()
		passesDone := func() int { return strings.Count(v.daemon().logs.String(), `"msg":"pass finished"`) }
		finished := passesDone()
		time.Sleep(time.Second)
		newer := c.rotate(x.name)[x.name]
		c.eventually(haLeaseTTL+haInterval+takeoverSlack, what+": another process pushes and confirms the newer value after the paused holder's lease expired",
			func() bool { return c.converged(x) })
		takeover := time.Since(pausedAt)
		v.signal(syscall.SIGCONT)
		c.releaseHeld()
		c.eventually(30*time.Second, what+": the resumed holder's pass ends", func() bool { return passesDone() > finished })
		s := v.status()[x.name]
		// A late PATCH that landed after the takeover is seen by the Fence
		// that follows it (the lease is gone): the record is flagged
		// suspect, and the next pass of any process pushes the newer value
		// again. Hood must end with the newer value, confirmed, not suspect.
		c.eventually(haLeaseTTL+3*haInterval+takeoverSlack, what+": Hood ends with the newer value, confirmed and not suspect", func() bool {
			cur, ok := c.lease(x.name)
			return ok && !cur.rec.Suspect && c.converged(x)
		})

		var late, others []hoodReq
		for _, p := range c.patchesOf(x, mark) {
			if p.proc == v.label {
				late = append(late, p)
			} else if p.accepted() {
				others = append(others, p)
			}
		}
		// The paused holder's one stale PATCH (if it went out at all), then
		// only the newer value, from anyone (a repair push).
		for i, p := range late {
			if got, _ := c.versionOf(x, p.settings); i > 0 && got != newer {
				t.Errorf("%s: the paused holder %s's PATCH #%d carries version %d of %s, want only its first to be stale, then the newer %d", what, v.label, i+1, got, x.name, newer)
			}
		}
		for _, p := range others {
			if got, _ := c.versionOf(x, p.settings); got != newer {
				t.Errorf("%s: %s PATCHed version %d of %s, want only the newer %d", what, p.proc, got, x.name, newer)
			}
		}
		stalePushed := len(late) > 0 && late[0].accepted()
		if repairs := len(others) + len(late) - 1; !stalePushed && len(others) != 1 {
			t.Errorf("%s: no late PATCH reached Hood, and the other processes made %d PATCHes of %s, want exactly 1 (the newer value)", what, len(others), x.name)
		} else if stalePushed && repairs < 1 {
			t.Errorf("%s: a late PATCH reached Hood, and no PATCH of the newer value followed it", what)
		}
		vers := c.leaseVersions(x.name)
		bi := -1
		for i := range vers {
			if isBegin(vers, i) && label(vers[i].holder) == v.label && vers[i].written.After(mark) {
				bi = i
				break
			}
		}
		if bi < 0 {
			t.Fatalf("%s: no Begin of the paused %s in the record; history:%s", what, v.label, describeVersions(vers))
		}
		c.checkTakeover(what, x.name, vers, vers[bi].version)
		// After it resumed, the paused holder may note its failure (a
		// history entry, with check-and-set on a fresh read, no lease) or
		// flag the record suspect, but neither takes a lease nor writes an
		// outcome of its stale push, until the record is suspect (then
		// anyone, itself included, pushes the newer value again).
		for j := bi + 1; j < len(vers) && !vers[j-1].rec.Suspect; j++ {
			if l := vers[j]; l.writer == v.label && l.written.After(pausedAt) && (l.holder != "" || !samePushes(vers[j-1].rec, l.rec)) {
				t.Errorf("%s: the paused %s wrote version %d of the record after it resumed, holder %q, changing its pushes; history:%s",
					what, v.label, l.version, l.holder, describeVersions(vers))
			}
		}
		if len(late) > 0 {
			t.Logf("%s: the paused holder's PATCH arrived %s, finished %s; paused at %s; record history:%s", what,
				late[0].arrived.Format("15:04:05.000"), late[0].finished.Format("15:04:05.000"), pausedAt.Format("15:04:05.000"), describeVersions(vers))
		}
		cur, _ := c.lease(x.name)
		holds := "neither value"
		switch {
		case c.holds(x, newer):
			holds = fmt.Sprintf("the newer version %d", newer)
		case c.holds(x, stale):
			holds = fmt.Sprintf("the OLDER version %d, delivered late", stale)
		}
		lateWhat := "no PATCH"
		if len(late) == 1 {
			got, _ := c.versionOf(x, late[0].settings)
			at := late[0].finished
			if at.IsZero() {
				at = late[0].arrived
			}
			lateWhat = fmt.Sprintf("a PATCH of version %d, carried out %s after its lease expired (accepted: %v)", got, at.Sub(vers[bi].expires).Round(10*time.Millisecond), late[0].accepted())
		}
		confirmed := 0
		if cur.rec.Confirmed != nil {
			confirmed = cur.rec.Confirmed.VaultVersion
		}
		t.Logf("%s (%s): takeover with the newer version %s after the pause; the paused holder then sent %s and reported %s: %s. "+
			"Hood holds %s; the record confirms version %d; PATCHes of the newer value: %d by the others, %d by the paused holder",
			what, v.label, takeover.Round(10*time.Millisecond), lateWhat, s.LastResult, haReason(s.LastError),
			holds, confirmed, len(others), max(0, len(late)-1))
	}
}

// samePushes reports whether two records have the same confirmed, failed
// and pending pushes.
func samePushes(a, b state.Record) bool {
	same := func(x, y *state.Pushed) bool {
		if x == nil || y == nil {
			return x == nil && y == nil
		}
		return bytes.Equal(x.Fingerprint, y.Fingerprint) && x.VaultVersion == y.VaultVersion && x.At.Equal(y.At)
	}
	return same(a.Confirmed, b.Confirmed) && same(a.Failed, b.Failed) && same(a.Pending, b.Pending)
}

// TestHAWatch: three processes in watch mode (1s) and no scheduled pass
// during the test: every write is seen by the three watchers, and each Vault
// version is still pushed exactly once, by the process holding the lease.
func TestHAWatch(t *testing.T) {
	t.Parallel()
	c := newHACluster(t, 6, 2601)
	c.watch = "1s"
	c.start("0 3 * * *")
	c.eventually(90*time.Second, "the start-up passes push and confirm the first value of every integration", func() bool { return c.converged() })
	for round := 1; round <= 2; round++ {
		at := time.Now()
		c.rotateAll()
		c.eventually(30*time.Second, fmt.Sprintf("rotation %d: the watchers see every new value, and it is pushed and confirmed", round), func() bool { return c.converged() })
		t.Logf("rotation %d: the 6 new versions were pushed and confirmed within %s (watch.interval 1s)", round, time.Since(at).Round(10*time.Millisecond))
		time.Sleep(1500 * time.Millisecond) // the watchers' next polls see nothing new
	}
	byProc := c.checkPushes(c.f.integs, time.Time{})
	c.noFailures(c.f.integs)
	t.Logf("accepted PATCHes by process (3 versions x 6 integrations): %v", byProc)
	for _, p := range c.procs {
		d := p.daemon()
		changes := d.metric("rotator_watch_changes_total")
		passes := d.metric("rotator_pass_duration_seconds_count", `trigger="watch"`)
		if changes < 6 || passes < 1 {
			t.Errorf("%s: rotator_watch_changes_total %v and %v watch passes, want at least 6 changes (every path, once per rotation at least) and a watch pass", p.label, changes, passes)
		}
		t.Logf("%s: %v watch changes seen, %v watch passes, %v metadata polls", p.label, changes, passes, d.metric("rotator_watch_polls_total", `result="ok"`))
	}
}
