package bench

// The benchmarks of docs/BENCHMARKS.md (issue #6). Each one drives the real
// rotator binary against a real OpenBao dev server and the Hood test server
// on loopback; nothing here runs without -bench. Run them all with
//
//	make bench        (or: scripts/bench.sh)
//
// Environment:
//
//	ROTATOR_BENCH_N      integrations of BenchmarkRateLimit, a comma-separated list (default 100,450)
//	ROTATOR_BENCH_IDLE   window of BenchmarkFootprint's idle measurement (default 60s; the issue asks 300s)
//	ROTATOR_BENCH_SCALE  integrations of BenchmarkConfigScale (default 100,1000,10000)
//	ROTATOR_BENCH_WATCH  watch.interval values of BenchmarkWatchLatency (default 1s,5s)
//	ROTATOR_BENCH_WATCH_WRITES Vault writes per interval of BenchmarkWatchLatency (default 100)
//	ROTATOR_BENCH_ROTATION_N consuming integrations of BenchmarkRotation (default 100)
//	ROTATOR_BENCH_GRACE  the rotation's grace in BenchmarkRotation (default 1s)
//	ROTATOR_BENCH_FLEET_N integrations of BenchmarkFleetAllowance (default 450)
//	ROTATOR_BENCH_FLEET_KILL when BenchmarkFleetAllowance kills the allowance's holder (default 90s; 0: no kill scenario)
//	ROTATOR_BENCH_PROFILE a directory for a perf profile of one unchanged pass
//	                     and (with -memprofilerate=1) the idle daemon's heap profile
//	ROTATOR_BAO_BIN      the bao binary (default .cache/bin/bao)

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
)

var (
	envOnce sync.Once
	shared  *Env
	envErr  error
)

// sharedEnv builds rotator and starts OpenBao once per `go test` run.
func sharedEnv(b *testing.B) *Env {
	b.Helper()
	envOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		shared, envErr = NewEnv(ctx)
	})
	if envErr != nil {
		b.Fatalf("bench environment: %v", envErr)
	}
	return shared
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared != nil {
		for _, w := range worlds {
			_ = w.Close()
		}
		if err := shared.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: close:", err)
		}
	}
	os.Exit(code)
}

var (
	worldsMu sync.Mutex
	worlds   = map[string]*World{}
)

// world returns the named world, making it on first use: benchmark
// functions run again as b.N grows, the set-up only once.
func world(b *testing.B, name string, n, paths int, opts hoodtest.Options) *World {
	b.Helper()
	worldsMu.Lock()
	defer worldsMu.Unlock()
	if w, ok := worlds[name]; ok {
		return w
	}
	e := sharedEnv(b)
	w, err := e.NewWorld(context.Background(), name, n, paths, opts)
	if err != nil {
		b.Fatalf("world %s: %v", name, err)
	}
	worlds[name] = w
	return w
}

// unlimited is a Hood test server without rate limits.
var unlimited = hoodtest.Options{Burst: -1, PerMinute: -1}

// fast is rotator's rate limit raised far above what a pass needs.
var fast = ConfigOpts{Burst: 1000, PerMinute: 100000}

func envInts(b *testing.B, name string, def []int) []int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			b.Fatalf("%s=%q: want positive integers separated by commas", name, v)
		}
		out = append(out, n)
	}
	return out
}

func run(b *testing.B, e *Env, args ...string) Result {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	r, err := e.Run(ctx, args...)
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Check("rotator " + strings.Join(args, " ")); err != nil {
		b.Fatal(err)
	}
	return r
}

// maxInWindow is the most requests the server saw in any window of size.
func maxInWindow(times []time.Time, size time.Duration) int {
	best, j := 0, 0
	for i := range times {
		for times[i].Sub(times[j]) >= size {
			j++
		}
		best = max(best, i-j+1)
	}
	return best
}

// windowSlack looks at the requests whose start a window bound (the earliest
// moment the server would admit them, given the arrivals before, came after
// the previous request): for those, how long after that moment they came.
// The sum over the window steps is what the pass lost to the client's own
// caution (its margin, stamping requests when they end, timer and pipeline
// delays).
func windowSlack(times []time.Time, l Limits) (bound int, mean, worst time.Duration) {
	var sum time.Duration
	for k := 1; k < len(times); k++ {
		var earliest time.Time
		if k >= l.Burst {
			earliest = times[k-l.Burst].Add(l.Short)
		}
		if k >= l.PerLong {
			if e := times[k-l.PerLong].Add(l.Long); e.After(earliest) {
				earliest = e
			}
		}
		if earliest.IsZero() || !earliest.After(times[k-1]) {
			continue
		}
		bound++
		d := times[k].Sub(earliest)
		sum += d
		worst = max(worst, d)
	}
	if bound > 0 {
		mean = sum / time.Duration(bound)
	}
	return bound, mean, worst
}

// BenchmarkRateLimit (issue #6, 1): a forced pass over N integrations
// against a Hood test server enforcing Scaled (20 per 1s, 300 per 1min) as
// strict sliding windows, rotator configured alike. The figure is the
// pass's wall time over the least time the windows allow for the requests
// it made.
func BenchmarkRateLimit(b *testing.B) {
	for _, n := range envInts(b, "ROTATOR_BENCH_N", []int{100, 450}) {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) { benchRateLimit(b, n) })
	}
}

func benchRateLimit(b *testing.B, n int) {
	e := sharedEnv(b)
	w := world(b, fmt.Sprintf("rate%d", n), n, max(1, n/10), hoodtest.Options{
		Burst: Scaled.Burst, PerMinute: Scaled.PerLong, Window: Scaled.Short, LongWindow: Scaled.Long,
	})
	cfg, err := w.WriteConfig("rate.yaml", ConfigOpts{Burst: Scaled.Burst, PerMinute: Scaled.PerLong})
	if err != nil {
		b.Fatal(err)
	}
	var wall, span, slackMean, slackMax time.Duration
	var reqs, gets, patches, throttled, max1s, max1m, bound int
	b.ResetTimer()
	for range b.N {
		w.Hood.Reset()
		r := run(b, e, "once", "--config", cfg, "--force", "--log-level", "warn")
		if want := fmt.Sprintf("%d integration(s): %d pushed", n, n); r.Summary() != want {
			b.Fatalf("summary %q, want %q", r.Summary(), want)
		}
		got := w.Hood.Requests()
		times := make([]time.Time, len(got))
		for i, q := range got {
			times[i] = q.Time
		}
		wall += r.Wall
		span += times[len(times)-1].Sub(times[0])
		reqs += len(got)
		gets += w.Hood.Count("GET")
		patches += w.Hood.Count("PATCH")
		throttled += w.Hood.Throttled()
		max1s = max(max1s, maxInWindow(times, Scaled.Short))
		max1m = max(max1m, maxInWindow(times, Scaled.Long))
		bound, slackMean, slackMax = windowSlack(times, Scaled)
	}
	b.StopTimer()
	per := float64(b.N)
	R := reqs / b.N
	least := LeastTime(R, Scaled)
	steady := SteadyBucket(Scaled, 1)
	best := BestSafeBucket(R, Scaled)
	burst := SteadyBucket(Scaled, Scaled.Burst)
	b.ReportMetric(wall.Seconds()/per, "wall-s")
	b.ReportMetric(least.Seconds(), "least-s")
	b.ReportMetric(wall.Seconds()/per/least.Seconds(), "wall/least")
	b.ReportMetric(span.Seconds()/per/least.Seconds(), "span/least")
	b.ReportMetric(float64(reqs)/per/float64(n), "req/integration")
	b.ReportMetric(float64(throttled)/per, "429s")
	b.ReportMetric(steady.Span(R).Seconds(), "bucket-s")
	b.Logf("N=%d: %d Hood requests per pass (%d GET + %d PATCH), %.2f per integration; 429s: %d; most in any 1s: %d, in any 1min: %d",
		n, R, gets/b.N, patches/b.N, float64(R)/float64(n), throttled/b.N, max1s, max1m)
	b.Logf("N=%d: least %s; wall %.2fs (%.4f× least); first→last request %.2fs (%.4f× least)",
		n, least, wall.Seconds()/per, wall.Seconds()/per/least.Seconds(), span.Seconds()/per, span.Seconds()/per/least.Seconds())
	b.Logf("N=%d: %d requests were held by a window; they came %s after the server would have admitted them on average (worst %s): rotator's margin is 25ms",
		n, bound, slackMean.Round(100*time.Microsecond), slackMax.Round(100*time.Microsecond))
	b.ReportMetric(float64(slackMean.Microseconds())/1000, "slack-ms")
	b.Logf("N=%d: token bucket at the steady rate (5/s), capacity 1: %.1fs (%.3f× least), 0 rejections; capacity 20: %.1fs but %d of %d requests over a window (429); best safe single bucket (capacity %d, %.3f/s): %.1fs (%.3f× least)",
		n, steady.Span(R).Seconds(), steady.Span(R).Seconds()/least.Seconds(),
		burst.Span(R).Seconds(), Rejections(burst.Times(R), Scaled), R,
		best.Capacity, best.Rate(), best.Span(R).Seconds(), best.Span(R).Seconds()/least.Seconds())
}

// readsWorld is issue #6's 2 and 3: 1,000 integrations over 100 distinct
// Vault paths, a Hood test server without limits.
func readsWorld(b *testing.B) (*World, string) {
	w := world(b, "reads", 1000, 100, unlimited)
	cfg, err := w.WriteConfig("reads.yaml", fast)
	if err != nil {
		b.Fatal(err)
	}
	return w, cfg
}

// passCount runs rotator and counts the Vault requests (OpenBao's audit log)
// and the Hood requests it made.
func passCount(b *testing.B, e *Env, w *World, args ...string) (Result, VaultBreakdown, int) {
	b.Helper()
	mark, err := e.AuditMark()
	if err != nil {
		b.Fatal(err)
	}
	hood0 := w.Hood.Count("")
	r := run(b, e, args...)
	c, err := e.AuditSince(mark)
	if err != nil {
		b.Fatal(err)
	}
	return r, w.Breakdown(c), w.Hood.Count("") - hood0
}

// BenchmarkVaultReads (issue #6, 2): Vault requests per pass, counted from
// OpenBao's file audit log, for 1,000 integrations over 100 paths: a pass
// that pushes everything (fresh state), an unchanged pass, `plan`, and a
// forced pass.
func BenchmarkVaultReads(b *testing.B) {
	e := sharedEnv(b)
	w, cfg := readsWorld(b)
	type step struct {
		name string
		args []string
		want string
	}
	steps := []step{
		{"push", []string{"once", "--config", cfg}, "1000 integration(s): 1000 pushed"},
		{"unchanged", []string{"once", "--config", cfg}, "1000 integration(s): 1000 unchanged"},
		{"plan", []string{"plan", "--config", cfg}, "1000 integration(s): 1000 unchanged"},
		{"forced", []string{"once", "--config", cfg, "--force"}, "1000 integration(s): 1000 pushed"},
	}
	b.ResetTimer()
	for i := range b.N {
		// A rotation of every secret: the first pass has something to push.
		b.StopTimer()
		if err := w.WriteSecrets(context.Background(), fmt.Sprintf("reads-%d", i)); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		for _, s := range steps {
			r, v, hoodReqs := passCount(b, e, w, append(s.args, "--log-level", "warn")...)
			if r.Summary() != s.want {
				b.Fatalf("%s: summary %q, want %q", s.name, r.Summary(), s.want)
			}
			if i == b.N-1 {
				b.ReportMetric(float64(v.Total), "vault-req/"+s.name)
				b.Logf("%-9s %s; %d Hood requests; wall %s", s.name+":", v, hoodReqs, r.Wall.Round(time.Millisecond))
			}
		}
	}
}

// BenchmarkUnchangedPass (issue #6, 3): `rotator once` over the same 1,000
// integrations with nothing changed: no Hood request, and its wall time,
// process start and Vault login included. `rotator validate` of the same
// file is timed too: the part of the pass that is process start and
// configuration.
func BenchmarkUnchangedPass(b *testing.B) {
	e := sharedEnv(b)
	w, cfg := readsWorld(b)
	// Make sure the state holds a confirmed push of the current secrets.
	r := run(b, e, "once", "--config", cfg, "--log-level", "warn")
	if !strings.Contains(r.Summary(), "1000 integration(s)") || strings.Contains(r.Summary(), "failed") {
		b.Fatalf("seeding pass: %s", r.Summary())
	}
	var walls []time.Duration
	var vaultReqs, hoodReqs int
	var cpu time.Duration
	var rss int64
	b.ResetTimer()
	for range b.N {
		r, v, h := passCount(b, e, w, "once", "--config", cfg, "--log-level", "warn")
		if r.Summary() != "1000 integration(s): 1000 unchanged" {
			b.Fatalf("summary %q", r.Summary())
		}
		walls = append(walls, r.Wall)
		cpu += r.User + r.Sys
		rss = max(rss, r.MaxRSS)
		vaultReqs += v.Total
		hoodReqs += h
	}
	b.StopTimer()
	var validate []time.Duration
	var validateCPU time.Duration
	for range 5 {
		r := run(b, e, "validate", "--config", cfg)
		validate = append(validate, r.Wall)
		validateCPU += r.User + r.Sys
	}
	med := median(walls)
	cpuPer := cpu / time.Duration(b.N)
	b.ReportMetric(float64(hoodReqs)/float64(b.N), "hood-req/pass")
	b.ReportMetric(float64(vaultReqs)/float64(b.N), "vault-req/pass")
	b.ReportMetric(float64(med.Microseconds())/1000, "median-ms")
	b.ReportMetric(float64(median(validate).Microseconds())/1000, "validate-ms")
	b.ReportMetric(float64(cpuPer.Microseconds())/1000, "cpu-ms")
	b.Logf("unchanged pass over 1000 integrations (100 paths): median %s (min %s, max %s, %d runs), %.0f µs per integration; CPU (user+sys) %s, %.0f µs per integration; max RSS %.1f MiB; %d Hood requests",
		med.Round(time.Millisecond), slices.Min(walls).Round(time.Millisecond), slices.Max(walls).Round(time.Millisecond), len(walls),
		float64(med.Microseconds())/1000, cpuPer.Round(time.Millisecond), float64(cpuPer.Microseconds())/1000, float64(rss)/1024, hoodReqs)
	b.Logf("validate of the same file (process start + configuration, no network): median %s, CPU %s",
		median(validate).Round(time.Millisecond), (validateCPU / 5).Round(time.Millisecond))
	if dir := os.Getenv("ROTATOR_BENCH_PROFILE"); dir != "" {
		perfPass(b, e, dir, cfg)
	}
}

// perfPass records one unchanged pass of an unstripped build of rotator
// with `perf record -e cpu-clock -g` into DIR/unchanged-pass.perf.data
// (read it with perf report -i FILE --children --sort sym -g none).
func perfPass(b *testing.B, e *Env, dir, cfg string) {
	perf, err := exec.LookPath("perf")
	if err != nil {
		b.Logf("ROTATOR_BENCH_PROFILE: no perf (Debian package linux-perf): %v", err)
		return
	}
	// In DIR, where perf report finds it after the benchmark removed its own directory.
	bin := filepath.Join(dir, "rotator-symbols")
	cmd := exec.Command(goBin(), "build", "-trimpath", "-o", bin, "./cmd/rotator")
	cmd.Dir, cmd.Env = e.Root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("build rotator with symbols: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "unchanged-pass.perf.data")
	cmd = exec.Command(perf, "record", "-F", "4000", "-e", "cpu-clock", "-g", "-o", data, "--",
		bin, "once", "--config", cfg, "--log-level", "warn")
	cmd.Env, cmd.Dir = e.environ(""), e.Dir
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("perf record: %v\n%s", err, tailLines(string(out), 5))
	}
	b.Logf("perf profile of one unchanged pass: %s (perf report -i %s --children --sort sym -g none)", data, data)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkFootprint (issue #6, 4): binary size, start-to-ready time of
// `rotator run`, and idle RSS and CPU over a window (ROTATOR_BENCH_IDLE,
// default 60s) with 100 integrations scheduled @every 1m, side by side with
// `bao agent` rendering the same 100 secrets every minute.
func BenchmarkFootprint(b *testing.B) {
	e := sharedEnv(b)
	window := time.Minute
	if v := os.Getenv("ROTATOR_BENCH_IDLE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			b.Fatalf("ROTATOR_BENCH_IDLE=%q: want a duration of at least 1s", v)
		}
		window = d
	}
	for range b.N {
		benchFootprint(b, e, window)
	}
}

func benchFootprint(b *testing.B, e *Env, window time.Duration) {
	ctx := context.Background()
	// Sizes: the binary of this run (CGO_ENABLED=0) and a cgo build.
	fi, err := os.Stat(e.Rotator)
	if err != nil {
		b.Fatal(err)
	}
	cgoBin := e.Rotator + "-cgo"
	if err := BuildRotator(ctx, e.Root, cgoBin, true); err != nil {
		b.Fatal(err)
	}
	fc, err := os.Stat(cgoBin)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(fi.Size())/(1<<20), "binary-MiB")
	b.Logf("binary: %d bytes (%.2f MiB) with CGO_ENABLED=0; %d bytes (%.2f MiB) with cgo",
		fi.Size(), float64(fi.Size())/(1<<20), fc.Size(), float64(fc.Size())/(1<<20))

	// The daemon's own configuration keeps the default rate limits; a
	// first pass with raised limits fills its state, so that the daemon's
	// start-up pass finds nothing to push.
	w, cfg, admin := footprintWorld(b, e, "state.db")
	rotTok, err := e.CreateToken(ctx, "rotator")
	if err != nil {
		b.Fatal(err)
	}
	agentTok, err := e.CreateToken(ctx, "agent")
	if err != nil {
		b.Fatal(err)
	}

	// Start-to-ready, five starts.
	var ready []time.Duration
	for range 5 {
		p, err := e.StartDaemon(cfg, rotTok)
		if err != nil {
			b.Fatal(err)
		}
		d, err := WaitReady(p, admin, 30*time.Second)
		if err != nil {
			_ = p.Stop(10 * time.Second)
			b.Fatal(err)
		}
		ready = append(ready, d)
		if err := p.WaitLog(`"msg":"pass finished"`, p.CountInLog(`"msg":"pass finished"`)+1, 30*time.Second); err != nil {
			b.Fatal(err)
		}
		if err := p.Stop(10 * time.Second); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(median(ready).Microseconds())/1000, "ready-ms")
	b.Logf("rotator run start-to-ready (/readyz 200): median %s, min %s, max %s over %d starts",
		median(ready).Round(100*time.Microsecond), slices.Min(ready).Round(100*time.Microsecond), slices.Max(ready).Round(100*time.Microsecond), len(ready))

	// Idle: the daemon after its start-up pass, and the agent after its
	// first rendering, side by side over the same window.
	p, err := e.StartDaemon(cfg, rotTok)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = p.Stop(10 * time.Second) }()
	if _, err := WaitReady(p, admin, 30*time.Second); err != nil {
		b.Fatal(err)
	}
	passes0 := p.CountInLog(`"msg":"pass finished"`)
	if err := p.WaitLog(`"msg":"pass finished"`, passes0+1, 30*time.Second); err != nil {
		b.Fatal(err)
	}
	passes0++
	a, err := e.StartAgent(w, agentTok, time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = a.Stop(10 * time.Second) }()
	rendered, err := a.WaitRendered(60 * time.Second)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("bao agent: all 100 secrets rendered %s after its start", rendered.Round(time.Millisecond))
	if p.Exited() || a.Exited() {
		b.Fatal("a process ended before the window")
	}
	mark, err := e.AuditMark()
	if err != nil {
		b.Fatal(err)
	}
	hood0 := w.Hood.Count("")
	s, err := Watch([]int{p.Pid(), a.Pid()}, window, nil)
	if err != nil {
		b.Fatal(err)
	}
	c, err := e.AuditSince(mark)
	if err != nil {
		b.Fatal(err)
	}
	rot, ag := s[0], s[1]
	passes := p.CountInLog(`"msg":"pass finished"`) - passes0
	mib := func(kib int64) float64 { return float64(kib) / 1024 }
	b.ReportMetric(mib(rot.RSSMean), "rotator-RSS-MiB")
	b.ReportMetric(mib(ag.RSSMean), "agent-RSS-MiB")
	b.ReportMetric(float64(rot.RSSMean)/float64(ag.RSSMean), "RSS-ratio")
	b.ReportMetric(rot.CPU.Seconds(), "rotator-CPU-s")
	b.ReportMetric(ag.CPU.Seconds(), "agent-CPU-s")
	if ag.CPU > 0 {
		b.ReportMetric(rot.CPU.Seconds()/ag.CPU.Seconds(), "CPU-ratio")
	}
	names := make([]string, 0, len(c.ByName))
	for k := range c.ByName {
		names = append(names, fmt.Sprintf("%s: %d", k, c.ByName[k]))
	}
	sort.Strings(names)
	b.Logf("idle window %s (%d samples): rotator RSS mean %.1f MiB, max %.1f, last %.1f (anon %.1f + file %.1f), peak (VmHWM) %.1f, %d threads; CPU %s (%.3f%% of a core); %d scheduled passes, %d Hood requests",
		rot.Window.Round(time.Second), rot.Samples, mib(rot.RSSMean), mib(rot.RSSMax), mib(rot.RSSLast), mib(rot.Last.Anon), mib(rot.Last.File), mib(rot.HWM), rot.Last.Threads, rot.CPU, rot.CPUPercent(), passes, w.Hood.Count("")-hood0)
	b.Logf("idle window %s: bao agent RSS mean %.1f MiB, max %.1f, last %.1f (anon %.1f + file %.1f), peak (VmHWM) %.1f, %d threads; CPU %s (%.3f%% of a core)",
		ag.Window.Round(time.Second), mib(ag.RSSMean), mib(ag.RSSMax), mib(ag.RSSLast), mib(ag.Last.Anon), mib(ag.Last.File), mib(ag.HWM), ag.Last.Threads, ag.CPU, ag.CPUPercent())
	b.Logf("ratios rotator/agent: RSS %.3f (target ≤ 0.125, and ≤ 20 MiB), CPU %.3f; Vault requests in the window by token: %s",
		float64(rot.RSSMean)/float64(ag.RSSMean), rot.CPU.Seconds()/max(ag.CPU.Seconds(), 1e-9), strings.Join(names, ", "))
}

// scaleResult is one point of BenchmarkConfigScale, for the linearity log.
type scaleResult struct {
	n         int
	wall, cpu time.Duration
	maxRSS    int64
}

var (
	scaleMu      sync.Mutex
	scaleResults = map[string][]scaleResult{}
)

// BenchmarkConfigScale (issue #6, 5): `rotator validate` and `rotator plan`
// over 100, 1,000 and 10,000 integrations (ROTATOR_BENCH_SCALE), ten per
// Vault path: time and peak RSS (getrusage of the child), per integration.
func BenchmarkConfigScale(b *testing.B) {
	sizes := envInts(b, "ROTATOR_BENCH_SCALE", []int{100, 1000, 10000})
	for _, cmd := range []string{"validate", "plan"} {
		for _, n := range sizes {
			b.Run(fmt.Sprintf("%s/N=%d", cmd, n), func(b *testing.B) { benchScale(b, cmd, n) })
		}
	}
}

func benchScale(b *testing.B, cmd string, n int) {
	e := sharedEnv(b)
	w := world(b, fmt.Sprintf("scale%d", n), n, max(1, n/10), unlimited)
	cfg, err := w.WriteConfig("scale.yaml", ConfigOpts{})
	if err != nil {
		b.Fatal(err)
	}
	hood0 := w.Hood.Count("")
	mark, err := e.AuditMark()
	if err != nil {
		b.Fatal(err)
	}
	var wall, cpu time.Duration
	var rss int64
	b.ResetTimer()
	for range b.N {
		r := run(b, e, cmd, "--config", cfg, "--log-level", "warn")
		wall += r.Wall
		cpu += r.User + r.Sys
		rss = max(rss, r.MaxRSS)
	}
	b.StopTimer()
	if h := w.Hood.Count("") - hood0; h != 0 {
		b.Fatalf("%s made %d Hood requests", cmd, h)
	}
	c, err := e.AuditSince(mark)
	if err != nil {
		b.Fatal(err)
	}
	avg := wall / time.Duration(b.N)
	avgCPU := cpu / time.Duration(b.N)
	b.ReportMetric(float64(avg.Microseconds())/float64(n), "µs/integration")
	b.ReportMetric(float64(avgCPU.Microseconds())/float64(n), "cpu-µs/integration")
	if rss > 0 {
		b.ReportMetric(float64(rss)/1024, "maxRSS-MiB")
		b.ReportMetric(float64(rss)/float64(n), "KiB/integration")
	} else {
		b.Logf("no peak RSS: install GNU time (%s)", TimeBin)
	}

	scaleMu.Lock()
	defer scaleMu.Unlock()
	res := slices.DeleteFunc(scaleResults[cmd], func(r scaleResult) bool { return r.n == n })
	res = append(res, scaleResult{n: n, wall: avg, cpu: avgCPU, maxRSS: rss})
	slices.SortFunc(res, func(x, y scaleResult) int { return x.n - y.n })
	scaleResults[cmd] = res
	b.Logf("%s N=%d: %s per run (%.1f µs per integration), CPU %s (%.1f µs per integration), max RSS %.1f MiB; %d Vault requests per run",
		cmd, n, avg.Round(100*time.Microsecond), float64(avg.Microseconds())/float64(n),
		avgCPU.Round(100*time.Microsecond), float64(avgCPU.Microseconds())/float64(n), float64(rss)/1024, c.Requests/b.N)
	for i := 1; i < len(res); i++ {
		p, q := res[i-1], res[i]
		dn := float64(q.n - p.n)
		b.Logf("%s N=%d→%d: marginal %.1f µs wall, %.1f µs CPU and %.2f KiB max RSS per added integration",
			cmd, p.n, q.n, float64((q.wall-p.wall).Microseconds())/dn, float64((q.cpu-p.cpu).Microseconds())/dn, float64(q.maxRSS-p.maxRSS)/dn)
	}
}

// BenchmarkConfigLoad: config.LoadAndValidate in-process over 1,000 and
// 10,000 integrations (no process start, no Vault): the configuration's
// share of BenchmarkConfigScale, with allocations (-benchmem).
func BenchmarkConfigLoad(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			var sb strings.Builder
			sb.WriteString("vault:\n  address: http://127.0.0.1:8200\n  auth: {method: token}\n")
			sb.WriteString("hood:\n  base_url: http://127.0.0.1:1\n  allow_insecure_http: true\n  token:\n    env: HOOD_TOKEN\n")
			sb.WriteString("state:\n  path: state.db\nintegrations:\n")
			for i := range n {
				p := i / 10
				fmt.Fprintf(&sb, "  - {name: i%05d, id: %q, provider: %s, source: {mount: secret, path: bench/s%05d}}\n",
					i, IntegrationID(i), providerOf(p), p)
			}
			path := filepath.Join(b.TempDir(), "config.yaml")
			if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := config.LoadAndValidate(path, func(string) string { return "set" }); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/float64(n), "µs/integration")
		})
	}
}
