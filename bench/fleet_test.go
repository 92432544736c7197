package bench

// BenchmarkFleetAllowance (issue 15): three `rotator run` processes with
// ha.mode vault on one OpenBao, each configured with Hood's full limits
// (hood.rate_limit {burst: 20, per_minute: 300}), against a Hood test server
// enforcing 20 per 1s and 300 per 1min as strict sliding windows. They share
// the fleet's Hood allowance (docs/ha.md, "Rate limits"). Run it alone with
//
//	BENCH=FleetAllowance scripts/bench.sh
//
// Scenarios, each with three fresh daemons whose start-up pass finds
// everything confirmed (no Hood request), empty Hood windows and no
// allowance document:
//
//	forced     a new version of every secret, then POST /v1/rotate to one replica
//	scheduled  a new version of every secret, then the scheduled passes of all
//	           three fire together (@every 90s, jitter 5s)
//	kill       as forced, the holder SIGKILLed ROTATOR_BENCH_FLEET_KILL after the
//	           trigger; the two others (@every 40s) finish the work
//
// Environment: ROTATOR_BENCH_FLEET_N, integrations (default 450, ten per
// Vault path); ROTATOR_BENCH_FLEET_KILL, when to kill the holder in the kill
// scenario (default 90s; 0 skips the scenario).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
)

const (
	fleetAdminToken = "fleet-bench-admin-token"
	fleetLeaseTTL   = 60 * time.Second // ha.lease_ttl's default
)

// fleetClock is the Hood test server's clock: the real one, except while
// seeding, when every reading is an hour after the previous one, so that
// the windows never refuse the seeding pass.
type fleetClock struct {
	seeding atomic.Bool
	hours   atomic.Int64
}

func (c *fleetClock) now() time.Time {
	if c.seeding.Load() {
		return time.Now().Add(time.Duration(c.hours.Add(1)) * time.Hour)
	}
	return time.Now()
}

// fleetReplica is one daemon of the fleet.
type fleetReplica struct {
	name, cfg, admin, token string
	p                       *Process
}

type fleet struct {
	b     *testing.B
	e     *Env
	w     *World
	base  string // the configuration common to the replicas (integrations, Hood)
	hpath string // ha.path
	toks  map[string]string
}

func (f *fleet) config(name, extra string) string {
	f.b.Helper()
	body, err := os.ReadFile(f.base)
	if err != nil {
		f.b.Fatal(err)
	}
	tokFile := filepath.Join(f.w.Dir, "admin-token")
	if err := os.WriteFile(tokFile, []byte(fleetAdminToken+"\n"), 0o600); err != nil {
		f.b.Fatal(err)
	}
	head := fmt.Sprintf("ha:\n  mode: vault\n  mount: secret\n  path: %s\n  identity: %s\n%s", f.hpath, name, extra)
	path := filepath.Join(f.w.Dir, name+".yaml")
	if err := os.WriteFile(path, append([]byte(head), body...), 0o600); err != nil {
		f.b.Fatal(err)
	}
	return path
}

// begin starts a scenario: the three replicas (start), a new version of
// every secret, empty Hood windows, and the audit log's mark from which
// its Vault requests are counted.
func (f *fleet) begin(ctx context.Context, tag string, schedules [3]string, jitter string) ([]*fleetReplica, int64) {
	f.b.Helper()
	rs := f.start(tag, schedules, jitter)
	if err := f.w.WriteSecrets(ctx, tag); err != nil {
		f.b.Fatal(err)
	}
	f.w.Hood.Reset()
	mark, err := f.e.AuditMark()
	if err != nil {
		f.b.Fatal(err)
	}
	return rs, mark
}

// start starts the three replicas with the given schedules and waits for
// their start-up passes, which must send nothing to Hood.
func (f *fleet) start(tag string, schedules [3]string, jitter string) []*fleetReplica {
	f.b.Helper()
	var rs []*fleetReplica
	hood0 := f.w.Hood.Count("")
	for i, name := range []string{"a", "b", "c"} {
		addr, err := FreeAddr()
		if err != nil {
			f.b.Fatal(err)
		}
		extra := fmt.Sprintf("schedule: %q\njitter: %s\nadmin:\n  listen: %s\n  token_file: %s\n",
			schedules[i], jitter, addr, filepath.Join(f.w.Dir, "admin-token"))
		r := &fleetReplica{name: name, admin: addr, token: f.toks[name]}
		r.cfg = f.config(tag+"-"+name, extra)
		if r.p, err = f.e.StartDaemon(r.cfg, r.token); err != nil {
			f.b.Fatal(err)
		}
		rs = append(rs, r)
	}
	for _, r := range rs {
		if _, err := WaitReady(r.p, r.admin, time.Minute); err != nil {
			f.stop(rs)
			f.b.Fatal(err)
		}
		if err := r.p.WaitLog(`"msg":"pass finished"`, 1, 5*time.Minute); err != nil {
			f.stop(rs)
			f.b.Fatal(err)
		}
	}
	if h := f.w.Hood.Count("") - hood0; h != 0 {
		f.b.Logf("%s: the start-up passes made %d Hood requests (want 0)", tag, h)
	}
	return rs
}

func (f *fleet) stop(rs []*fleetReplica) {
	for _, r := range rs {
		_ = r.p.Stop(30 * time.Second)
	}
}

// clean empties the Hood windows and removes the allowance document, so that
// every scenario starts from an idle account.
func (f *fleet) clean() {
	f.b.Helper()
	if err := f.w.Env().Vault.Client().KVv2("secret").DeleteMetadata(context.Background(), f.hpath+"/_meta/hood-allowance"); err != nil {
		f.b.Fatal(err)
	}
	f.w.Hood.Reset()
}

// Env is the world's environment.
func (w *World) Env() *Env { return w.env }

// logEvent is one line of a daemon's JSON log.
type logEvent struct {
	Time    time.Time `json:"time"`
	Msg     string    `json:"msg"`
	Trigger string    `json:"trigger"`
}

func readEvents(path string) []logEvent {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []logEvent
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev logEvent
		if json.Unmarshal(sc.Bytes(), &ev) == nil {
			out = append(out, ev)
		}
	}
	return out
}

// fleetResult is what one scenario measured.
type fleetResult struct {
	name                 string
	wall, span           time.Duration // trigger → last Hood request; first → last Hood request
	reqs, gets, patches  int
	throttled            int
	max1s, max1m         int
	vault                AuditCount
	allowanceW, recordsW int
	taken                int
}

func (f *fleet) measure(name string, t0 time.Time, end time.Time, mark int64, rs []*fleetReplica) fleetResult {
	f.b.Helper()
	got := f.w.Hood.Requests()
	res := fleetResult{name: name, reqs: len(got), throttled: f.w.Hood.Throttled()}
	times := make([]time.Time, len(got))
	for i, q := range got {
		times[i] = q.Time
		switch q.Method {
		case "GET":
			res.gets++
		case "PATCH":
			res.patches++
		}
	}
	if len(times) > 0 {
		res.span = times[len(times)-1].Sub(times[0])
		if end.IsZero() {
			end = times[len(times)-1]
		}
	}
	res.wall = end.Sub(t0)
	res.max1s, res.max1m = maxInWindow(times, Scaled.Short), maxInWindow(times, Scaled.Long)
	c, err := f.e.AuditSince(mark)
	if err != nil {
		f.b.Fatal(err)
	}
	res.vault = c
	for p, n := range c.ByPath {
		switch {
		case strings.HasSuffix(p, "/_meta/hood-allowance"):
			res.allowanceW += n
		case strings.HasPrefix(p, "secret/data/"+f.hpath+"/"):
			res.recordsW += n
		}
	}
	for _, r := range rs {
		res.taken += r.p.CountInLog(`"msg":"hood allowance taken"`)
	}
	return res
}

// logf logs to the benchmark and, as it goes, to stderr: the scenarios take
// many minutes.
func (f *fleet) logf(format string, args ...any) {
	f.b.Helper()
	f.b.Logf(format, args...)
	fmt.Fprintf(os.Stderr, "fleet: "+format+"\n", args...)
}

func (f *fleet) report(r fleetResult, n int) {
	least := LeastTime(r.reqs, Scaled)
	ratio := r.wall.Seconds() / least.Seconds()
	names := make([]string, 0, len(r.vault.ByName))
	for k, v := range r.vault.ByName {
		names = append(names, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(names)
	f.b.ReportMetric(r.wall.Seconds(), r.name+"-wall-s")
	f.b.ReportMetric(ratio, r.name+"-wall/least")
	f.b.ReportMetric(float64(r.throttled), r.name+"-429s")
	f.b.ReportMetric(float64(r.reqs)/float64(n), r.name+"-req/integration")
	f.logf("%s: wall %.2fs (trigger → last Hood request), least %s for %d requests: %.4f× least; first → last request %.2fs (%.4f×)",
		r.name, r.wall.Seconds(), least, r.reqs, ratio, r.span.Seconds(), r.span.Seconds()/least.Seconds())
	f.logf("%s: Hood %d requests (%d GET + %d PATCH), %.2f per integration; 429s fleet-wide: %d; most in any 1s: %d, in any 1min: %d; allowance taken %d times",
		r.name, r.reqs, r.gets, r.patches, float64(r.reqs)/float64(n), r.throttled, r.max1s, r.max1m, r.taken)
	f.logf("%s: Vault %d requests (%.2f per integration): %d on the allowance document, %d on lease records; by token: %s",
		r.name, r.vault.Requests, float64(r.vault.Requests)/float64(n), r.allowanceW, r.recordsW, strings.Join(names, ", "))
}

func forcedPass(r *fleetReplica) (pushed int, err error) {
	c := &http.Client{Timeout: 30 * time.Minute}
	req, err := http.NewRequest("POST", "http://"+r.admin+"/v1/rotate", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+fleetAdminToken)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var a struct {
		Outcomes []struct {
			Result string `json:"result"`
		} `json:"outcomes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return 0, fmt.Errorf("POST /v1/rotate: %d: %w", resp.StatusCode, err)
	}
	for _, o := range a.Outcomes {
		if o.Result == "pushed" {
			pushed++
		}
	}
	return pushed, nil
}

func BenchmarkFleetAllowance(b *testing.B) {
	n := envInts(b, "ROTATOR_BENCH_FLEET_N", []int{450})[0]
	kill := 90 * time.Second
	if v := os.Getenv("ROTATOR_BENCH_FLEET_KILL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			b.Fatalf("ROTATOR_BENCH_FLEET_KILL=%q: want a duration", v)
		}
		kill = d
	}
	for range b.N {
		benchFleet(b, n, kill)
	}
}

func benchFleet(b *testing.B, n int, kill time.Duration) {
	ctx := context.Background()
	e := sharedEnv(b)
	clk := &fleetClock{}
	name := fmt.Sprintf("fleet%d-%d", n, time.Now().UnixNano())
	w := world(b, name, n, max(1, n/10), hoodtest.Options{
		Burst: Scaled.Burst, PerMinute: Scaled.PerLong, Window: Scaled.Short, LongWindow: Scaled.Long, Clock: clk.now,
	})
	f := &fleet{b: b, e: e, w: w, hpath: "bench/" + name + "/leases", toks: map[string]string{}}
	var err error
	if f.base, err = w.WriteConfig("base.yaml", ConfigOpts{Burst: Scaled.Burst, PerMinute: Scaled.PerLong, NoAudit: true}); err != nil {
		b.Fatal(err)
	}
	for _, r := range []string{"a", "b", "c"} {
		if f.toks[r], err = e.CreateToken(ctx, "fleet-"+r); err != nil {
			b.Fatal(err)
		}
	}

	// Seeding: one `rotator once` with ha.mode vault confirms every
	// integration in the shared records, the Hood test server's windows
	// out of the way; then the daemons' start-up passes push nothing.
	seedBase, err := w.WriteConfig("seed-base.yaml", ConfigOpts{Burst: 1000, PerMinute: 100000, NoAudit: true})
	if err != nil {
		b.Fatal(err)
	}
	f.base = seedBase
	seed := f.config("seed", "")
	f.base = filepath.Join(w.Dir, "base.yaml")
	clk.seeding.Store(true)
	t := time.Now()
	r := run(b, e, "once", "--config", seed, "--log-level", "warn")
	clk.seeding.Store(false)
	if want := fmt.Sprintf("%d integration(s): %d pushed", n, n); r.Summary() != want {
		b.Fatalf("seeding: %q, want %q", r.Summary(), want)
	}
	f.logf("seeding: every integration pushed and confirmed by one `rotator once` in %s (Hood windows disabled for it)", time.Since(t).Round(time.Millisecond))
	f.clean()

	// (a) A forced pass sent to one replica, every secret changed first.
	{
		rs, mark := f.begin(ctx, "forced", [3]string{"@every 24h", "@every 24h", "@every 24h"}, "0s")
		t0 := time.Now()
		pushed, err := forcedPass(rs[1])
		end := time.Now()
		if err != nil {
			b.Fatal(err)
		}
		if pushed != n {
			b.Errorf("forced: %d pushed, want %d", pushed, n)
		}
		res := f.measure("forced", t0, time.Time{}, mark, rs)
		f.logf("forced: POST /v1/rotate answered %.2fs after it was sent (the confirmations included)", end.Sub(t0).Seconds())
		f.report(res, n)
		f.stop(rs)
		f.clean()
		aWall := res.wall

		// (b) The scheduled passes of all three, every secret changed.
		rs, mark = f.begin(ctx, "scheduled", [3]string{"@every 90s", "@every 90s", "@every 90s"}, "5s")
		// Every integration pushed, then every replica's scheduled pass finished.
		deadline := time.Now().Add(20 * time.Minute)
		for f.w.Hood.Count("PATCH") < n || !allScheduled(rs) {
			if time.Now().After(deadline) {
				b.Fatalf("scheduled: %d PATCHes after 20 minutes", f.w.Hood.Count("PATCH"))
			}
			time.Sleep(time.Second)
		}
		t0 = time.Time{}
		var starts []string
		for _, r := range rs {
			for _, ev := range readEvents(r.p.Log) {
				if ev.Msg == "pass started" && ev.Trigger == "schedule" {
					if t0.IsZero() || ev.Time.Before(t0) {
						t0 = ev.Time
					}
					starts = append(starts, fmt.Sprintf("%s %s", r.name, ev.Time.Format("15:04:05.000")))
					break
				}
			}
		}
		res = f.measure("scheduled", t0, time.Time{}, mark, rs)
		f.logf("scheduled: first scheduled passes started at %s", strings.Join(starts, ", "))
		f.report(res, n)
		f.stop(rs)
		f.clean()

		// (c) As (a), the holder SIGKILLed mid-pass.
		if kill > 0 {
			rs, mark = f.begin(ctx, "kill", [3]string{"@every 24h", "@every 40s", "@every 40s"}, "2s")
			t0 = time.Now()
			go func() { _, _ = forcedPass(rs[0]) }()
			time.Sleep(kill)
			killedAt := time.Since(t0)
			_ = rs[0].p.Cmd.Process.Kill()
			patched := func() int {
				ids := map[string]bool{}
				for _, q := range f.w.Hood.Requests() {
					if q.Method == "PATCH" && q.Status/100 == 2 {
						ids[q.ID] = true
					}
				}
				return len(ids)
			}
			deadline = time.Now().Add(20 * time.Minute)
			for patched() < n {
				if time.Now().After(deadline) {
					b.Fatalf("kill: %d integrations patched after 20 minutes", patched())
				}
				time.Sleep(time.Second)
			}
			// Quiet: no Hood request for a schedule interval and more (the
			// pushes of the dead holder that were never confirmed are made again).
			for last := f.w.Hood.Count(""); ; {
				time.Sleep(50 * time.Second)
				if c := f.w.Hood.Count(""); c == last {
					break
				} else {
					last = c
				}
			}
			res = f.measure("kill", t0, time.Time{}, mark, rs[1:])
			f.logf("kill: holder (replica a) SIGKILLed %.1fs after the trigger; %d Hood requests before the kill; the next Hood request %.1fs after the kill",
				killedAt.Seconds(), countBefore(f.w.Hood.Requests(), t0.Add(killedAt)), firstAfter(f.w.Hood.Requests(), t0.Add(killedAt)).Sub(t0.Add(killedAt)).Seconds())
			f.report(res, n)
			extra := res.wall - aWall
			b.ReportMetric(extra.Seconds(), "kill-extra-s")
			f.logf("kill: %.1fs more than the forced pass without a kill; the allowance's bound is lease_ttl = %s (a survivor takes the allowance over when its lease ends; the pushes the dead holder had begun are rechecked when their leases end)",
				extra.Seconds(), fleetLeaseTTL)
			f.stop(rs[1:])
		}
	}
}

// firstAfter is the arrival of the first request after t (t itself if none).
func firstAfter(rs []hoodtest.Request, t time.Time) time.Time {
	first := t
	for _, q := range rs {
		if q.Time.After(t) && (first.Equal(t) || q.Time.Before(first)) {
			first = q.Time
		}
	}
	return first
}

func countBefore(rs []hoodtest.Request, t time.Time) int {
	k := 0
	for _, q := range rs {
		if q.Time.Before(t) {
			k++
		}
	}
	return k
}

// allScheduled reports whether every replica logged a finished scheduled pass.
func allScheduled(rs []*fleetReplica) bool {
	for _, r := range rs {
		done := false
		for _, ev := range readEvents(r.p.Log) {
			if ev.Msg == "pass finished" && ev.Trigger == "schedule" {
				done = true
				break
			}
		}
		if !done {
			return false
		}
	}
	return true
}
