package faults_test

// The fleet's Hood allowance (docs/ha.md, "Rate limits"; issue 15) with
// three real `rotator run` processes: each is configured with Hood's full
// limits, which the Hood test server enforces strictly, and they take turns
// with the allowance document in Vault.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
)

const (
	// allowanceBurst and allowancePerMinute are the Hood test server's
	// limits (strict sliding windows of 1s and 1min, the windows of the
	// rotators' own limiter) and every process's hood.rate_limit.
	allowanceBurst     = 2
	allowancePerMinute = 40
	// allowanceN integrations, 3 Hood requests per push (preflight GET,
	// PATCH, read-back GET): the start-up passes and the forced pass send
	// 2 x 18 = 36 requests within about 20s, so the scheduled passes' 18
	// find 4 left in the minute and send the other 14 in the next one,
	// paced by the send times handed over to the restarted processes.
	allowanceN = 6
	// allowanceSchedule is the schedule of the scheduled passes, with
	// allowanceJitter: shorter than a pass that pushes (at least 10s at 2
	// a second), so that the passes of all three fire during it.
	allowanceSchedule = "@every 4s"
	allowanceJitter   = "1s"
)

// TestHAAllowanceFullLimits: three `rotator run` processes with ha.mode
// vault, each configured with Hood's full limits (hood.rate_limit 2 a
// second and 40 a minute, exactly what the Hood test server enforces),
// draw zero 429 answers fleet-wide (issue 15: "a test with three processes
// shows zero 429 under a forced pass and under a scheduled pass at the full
// configured limits"), because they take turns with the fleet's Hood
// allowance (docs/ha.md, "Rate limits"):
//
//  1. the start-up passes of the three push the first value of every
//     integration;
//  2. a forced pass (POST /v1/rotate) sent to one process, after a new
//     version of every secret, pushes each integration exactly once;
//  3. the three are restarted on a short schedule (with jitter), so that
//     their send times reach the new processes only through the allowance
//     document; after a new version of every secret, the scheduled passes
//     of all three fire and each integration gets exactly one PATCH.
//
// Each phase pushes 6 integrations, 18 Hood requests (preflight GET, PATCH,
// read-back GET each): 9 times the burst, and the 54 of the three phases
// exceed the minute's 40, so the holder of the scheduled passes finds the
// long window nearly full and waits for it, counting send times that only
// the allowance document told it. Also asserted: 3 Hood requests per push
// in each phase and no integration failed.
//
// Compare cmd/rotator's TestRunThreeRotatorsShareHoodAllowance, the same
// with three daemons in one process.
//
// ha.lease_ttl is the cluster's 8s: the holder may wait up to 41s for room
// in the minute window between an integration's preflight and its PATCH,
// longer than the lease that bounds the PATCH. The PATCH's start is taken
// (hood.Client.Reserve) before the fence that extends the lease, so the
// wait does not eat into it: no "push not finished before the lease ran
// out", and no integration pushed twice (both seen before that change).
func TestHAAllowanceFullLimits(t *testing.T) {
	t.Parallel()
	started := time.Now()
	h, err := hoodtest.Start(hoodtest.Options{Tokens: []string{"hood-" + sentinel}, Burst: allowanceBurst, PerMinute: allowancePerMinute})
	if err != nil {
		t.Fatalf("start hood test server: %v", err)
	}
	t.Cleanup(func() { _ = h.Close() })
	c := newHAClusterWith(t, allowanceN, 2701, h)
	c.rateLimit = fmt.Sprintf("{burst: %d, per_minute: %d}", allowanceBurst, allowancePerMinute)
	const taken = `"msg":"hood allowance taken"`

	// no429 checks the 429s Hood answered so far, fleet-wide (and by
	// process, as the Hood proxies saw them).
	no429 := func(what string) {
		t.Helper()
		if got := h.Throttled(); got != 0 {
			by := map[string]int{}
			for _, r := range c.hoodReqs() {
				if r.status == http.StatusTooManyRequests {
					by[r.proc]++
				}
			}
			t.Errorf("%s: Hood answered 429 %d times, want 0 (by process: %v)", what, got, by)
		}
	}

	// converge waits until Hood holds every integration's latest value and
	// every record confirms it; on a timeout it reports the 429s first.
	converge := func(within time.Duration, what string) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !c.converged() {
			if time.Now().After(deadline) {
				no429(what)
				t.Fatalf("after %v: %s: not every latest value is pushed and confirmed", within, what)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	// passes counts the log lines of p's running instance that say a pass
	// with the trigger started or finished.
	passes := func(p *haProc, msg, trigger string) int {
		n := 0
		for _, l := range strings.Split(p.daemon().logs.String(), "\n") {
			if strings.Contains(l, `"msg":"`+msg+`"`) && strings.Contains(l, `"trigger":"`+trigger+`"`) {
				n++
			}
		}
		return n
	}
	// startupDone waits until the start-up pass of every running instance
	// has finished: those that waited for the allowance too.
	startupDone := func(what string) {
		t.Helper()
		c.eventually(60*time.Second, what, func() bool {
			for _, p := range c.procs {
				if passes(p, "pass finished", "startup") == 0 {
					return false
				}
			}
			return true
		})
	}

	// 1. The start-up passes.
	c.start("@every 1h") // only the start-up passes and the forced pass
	converge(90*time.Second, "start-up passes")
	startupDone("the start-up passes of the three finish")
	no429("start-up passes")
	t.Logf("start-up passes: %d Hood requests, every first value pushed and confirmed %s after the start", h.Count(""), time.Since(started).Round(10*time.Millisecond))

	// 2. A forced pass sent to one process, after a new version of every
	// secret.
	takenBefore := c.logLines(taken)
	reqsBefore := h.Count("")
	mark := time.Now() // the new versions are written after it
	c.rotateAll()
	sent := time.Now()
	client := &http.Client{Timeout: 2 * time.Minute}
	defer client.CloseIdleConnections()
	fp := c.procs[1]
	code, body, err := fp.forceRotate(client, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("%s: POST /v1/rotate: %d %v %s", fp.label, code, err, redact(string(body)))
	}
	answered := time.Since(sent)
	c.f.noSentinel("POST /v1/rotate answer of "+fp.label, string(body))
	var rep struct {
		Outcomes []haOutcome `json:"outcomes"`
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		t.Fatalf("%s: POST /v1/rotate answer: %v", fp.label, err)
	}
	if got := len(rep.Outcomes); got != allowanceN {
		t.Errorf("forced pass: %d outcomes, want %d", got, allowanceN)
	}
	for _, o := range rep.Outcomes {
		if o.Result != "pushed" {
			t.Errorf("forced pass: %s is %q (%s%s), want pushed", o.Name, o.Result, redact(o.Error), redact(o.Reason))
		}
	}
	converge(30*time.Second, "forced pass")
	for _, in := range c.f.integs {
		ps := c.patchesOf(in, mark)
		if len(ps) != 1 || !ps[0].accepted() || ps[0].proc != fp.label {
			t.Errorf("forced pass: %s got %d PATCHes (%s), want exactly 1, accepted, from %s", in.name, len(ps), fates(ps), fp.label)
		}
	}
	c.checkPushes(c.f.integs, mark)
	if got := h.Count("") - reqsBefore; got != 3*allowanceN {
		t.Errorf("forced pass: %d Hood requests, want %d (3 per push)", got, 3*allowanceN)
	}
	no429("forced pass")
	if got := c.logLines(taken) - takenBefore; got < 1 {
		t.Errorf("forced pass: the allowance was taken %d times, want at least 1", got)
	}
	t.Logf("forced pass on %s: answered %s after it was sent; %d Hood requests (the test's %d to %d); allowance taken %d times",
		fp.label, answered.Round(10*time.Millisecond), h.Count("")-reqsBefore, reqsBefore+1, h.Count(""), c.logLines(taken)-takenBefore)

	// 3. Scheduled passes on all three, restarted: their own limiters
	// start empty, the allowance document hands the send times over.
	c.jitter = allowanceJitter
	for _, p := range c.procs {
		if code := p.daemon().stop(); code != 0 {
			t.Errorf("%s: exit code %d after SIGTERM, want 0", p.label, code)
		}
	}
	c.start(allowanceSchedule)
	scheduled := func(p *haProc) int { return passes(p, "pass started", "schedule") }
	startupDone("the restarted processes finish their start-up passes")
	takenBefore, reqsBefore = c.logLines(taken), h.Count("")
	passesBefore := map[string]int{}
	for _, p := range c.procs {
		passesBefore[p.label] = scheduled(p)
	}
	mark = time.Now()
	c.rotateAll()
	converge(90*time.Second, "scheduled passes")
	pushed := time.Since(mark)
	time.Sleep(2 * 5 * time.Second) // two more rounds of the schedule (4s + jitter): nothing more to push
	for _, p := range c.procs {
		if got := scheduled(p) - passesBefore[p.label]; got < 1 {
			t.Errorf("%s: %d scheduled passes started after the new versions, want at least 1", p.label, got)
		}
	}
	byProc := map[string]int{}
	for _, in := range c.f.integs {
		ps := c.patchesOf(in, mark)
		if len(ps) != 1 || !ps[0].accepted() {
			t.Errorf("scheduled passes: %s got %d PATCHes (%s), want exactly 1, accepted", in.name, len(ps), fates(ps))
		}
		for _, p := range ps {
			byProc[p.proc]++
		}
	}
	c.checkPushes(c.f.integs, mark)
	c.noFailures(c.f.integs)
	if got := h.Count("") - reqsBefore; got != 3*allowanceN {
		t.Errorf("scheduled passes: %d Hood requests, want %d (3 per push)", got, 3*allowanceN)
	}
	no429("scheduled passes")
	if got := c.logLines(taken) - takenBefore; got < 1 {
		t.Errorf("scheduled passes: the allowance was taken %d times, want at least 1", got)
	}
	passesBy := map[string]int{}
	for _, p := range c.procs {
		passesBy[p.label] = scheduled(p) - passesBefore[p.label]
	}
	t.Logf("scheduled passes: every new value pushed and confirmed %s after the new versions; %d Hood requests; PATCHes by process %v; scheduled passes started by process %v; allowance taken %d times",
		pushed.Round(10*time.Millisecond), h.Count("")-reqsBefore, byProc, passesBy, c.logLines(taken)-takenBefore)
	if got := c.logLines(`"msg":"integration failed"`); got != 0 {
		t.Errorf("%d log lines say an integration failed, want none:\n%s", got, strings.Join(c.linesWith(`"msg":"integration failed"`), "\n"))
	}

	// The whole test: the fleet used the allowance up to Hood's limits,
	// never beyond.
	sec, minute := busiest(h.Requests(), time.Second), busiest(h.Requests(), time.Minute)
	if sec > allowanceBurst || minute > allowancePerMinute {
		t.Errorf("Hood admitted %d requests in one second and %d in one minute, above its limits (%d, %d)", sec, minute, allowanceBurst, allowancePerMinute)
	}
	t.Logf("whole test: %d Hood requests (%d GET, %d PATCH), 429s %d; most admitted in any 1s: %d, in any 1min: %d (limits %d, %d); %s",
		h.Count(""), h.Count(http.MethodGet), h.Count(http.MethodPatch), h.Throttled(), sec, minute, allowanceBurst, allowancePerMinute, time.Since(started).Round(10*time.Millisecond))
	for _, l := range c.versionsAt("_meta/hood-allowance") {
		c.f.noSentinel(fmt.Sprintf("hood allowance record version %d", l.version), l.raw)
	}
}

// busiest is the most requests Hood admitted (answered other than 429) in
// any window of size.
func busiest(reqs []hoodtest.Request, size time.Duration) int {
	var at []time.Time
	for _, r := range reqs {
		if r.Status != http.StatusTooManyRequests {
			at = append(at, r.Time)
		}
	}
	slices.SortFunc(at, time.Time.Compare)
	most := 0
	for i := range at {
		n := 0
		for j := i; j < len(at) && at[j].Sub(at[i]) < size; j++ {
			n++
		}
		most = max(most, n)
	}
	return most
}

// fates describes PATCHes for a failure message: sender and Hood's answer.
func fates(ps []hoodReq) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = fmt.Sprintf("%s: %d", p.proc, p.status)
	}
	return strings.Join(parts, ", ")
}
