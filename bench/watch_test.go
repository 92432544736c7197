package bench

// BenchmarkWatchLatency: watch mode (docs/ha.md), from a Vault write to the
// PATCH that carries the written value. Run it alone with
//
//	BENCH=WatchLatency scripts/bench.sh
//
// Environment: ROTATOR_BENCH_WATCH, the watch.interval values to measure
// (default "1s,5s"); ROTATOR_BENCH_WATCH_WRITES, the number of writes per
// interval value (default 100).

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/testkit"
)

// watchPaths is the number of Vault paths written (one integration each).
const watchPaths = 10

func BenchmarkWatchLatency(b *testing.B) {
	intervals := []time.Duration{time.Second, 5 * time.Second}
	if v := os.Getenv("ROTATOR_BENCH_WATCH"); v != "" {
		intervals = nil
		for _, f := range strings.Split(v, ",") {
			d, err := time.ParseDuration(strings.TrimSpace(f))
			if err != nil || d < time.Second {
				b.Fatalf("ROTATOR_BENCH_WATCH=%q: want durations of at least 1s separated by commas", v)
			}
			intervals = append(intervals, d)
		}
	}
	writes := 100
	if v := os.Getenv("ROTATOR_BENCH_WATCH_WRITES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < watchPaths {
			b.Fatalf("ROTATOR_BENCH_WATCH_WRITES=%q: want an integer of at least %d", v, watchPaths)
		}
		writes = n
	}
	for _, iv := range intervals {
		b.Run("interval="+iv.String(), func(b *testing.B) {
			for i := range b.N {
				benchWatch(b, iv, writes, uint64(i+1))
			}
		})
	}
}

// watchWrite is one Vault write and the PATCH that carried its value.
type watchWrite struct {
	path     int
	value    string    // the value of the first field of the provider
	returned time.Time // when the Vault write returned
	patched  time.Time // arrival of the first PATCH with that value at the Hood test server
}

func benchWatch(b *testing.B, interval time.Duration, writes int, seed uint64) {
	e := sharedEnv(b)
	ctx := context.Background()
	name := "watch" + strings.ReplaceAll(interval.String(), ".", "_")
	w := world(b, name, watchPaths, watchPaths, unlimited)
	w.Hood.Reset()
	admin, err := FreeAddr()
	if err != nil {
		b.Fatal(err)
	}
	// A fresh state each run: the start-up pass pushes the world's current
	// secrets, then only the benchmark's writes are pushed.
	state := fmt.Sprintf("state-%d.db", seed)
	cfg, err := w.WriteConfig(fmt.Sprintf("watch-%d.yaml", seed), ConfigOpts{
		Burst: 1000, PerMinute: 100000, Schedule: "0 3 * * *", AdminListen: admin, State: state,
	})
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	_, err = fmt.Fprintf(f, "watch:\n  interval: %s\n", interval)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}

	p, err := e.StartDaemon(cfg, "")
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = p.Stop(30 * time.Second) }()
	if _, err := WaitReady(p, admin, 30*time.Second); err != nil {
		b.Fatal(err)
	}
	if err := p.WaitLog(`"msg":"pass finished"`, 1, 60*time.Second); err != nil {
		b.Fatal(err)
	}
	if got := w.Hood.Count("PATCH"); got != watchPaths {
		b.Fatalf("start-up pass: %d PATCHes, want %d", got, watchPaths)
	}
	patches0 := w.Hood.Count("PATCH")

	kv := e.Vault.Client().KVv2("secret")
	first := make([]string, watchPaths) // the first field of each path's provider
	fields := make([][]string, watchPaths)
	for i := range watchPaths {
		pr, _ := hood.LookupProvider(providerOf(i))
		fields[i] = pr.FieldNames()
		first[i] = fields[i][0]
	}
	// pushed reports whether a PATCH of path i carried value.
	pushed := func(i int, value string) (time.Time, bool) {
		id := IntegrationID(i)
		for _, r := range w.Hood.Requests() {
			if r.Method == "PATCH" && r.ID == id && r.Settings[first[i]] == value {
				return r.Time, true
			}
		}
		return time.Time{}, false
	}

	// Writes at random moments (gaps uniform in [0, interval/2)) to random
	// paths, each path written writes/watchPaths times. A path is written
	// again only once its last write was pushed and at least 1.1 intervals
	// ago: never two writes to a path within one interval, so each write
	// is its own change.
	rng := rand.New(rand.NewPCG(seed, uint64(interval)))
	left := make([]int, watchPaths)
	for i := range left {
		left[i] = writes / watchPaths
	}
	for i := range writes % watchPaths {
		left[i]++
	}
	last := make([]*watchWrite, watchPaths)
	var all []*watchWrite
	mark, err := e.AuditMark()
	if err != nil {
		b.Fatal(err)
	}
	meta0 := scrapeCounter(b, admin, "rotator_vault_requests_total", map[string]string{"operation": "metadata"})
	start := time.Now()
	deadline := start.Add(time.Duration(writes)*interval + 5*time.Minute)
	b.ResetTimer()
	for n := 0; n < writes; {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d writes made before the deadline: pushes are missing", n, writes)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(interval / 2))))
		var ready []int
		for {
			ready = ready[:0]
			for i := range watchPaths {
				if left[i] == 0 {
					continue
				}
				if l := last[i]; l != nil {
					if time.Since(l.returned) < interval*11/10 {
						continue
					}
					if _, ok := pushed(i, l.value); !ok {
						continue
					}
				}
				ready = append(ready, i)
			}
			if len(ready) > 0 || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if len(ready) == 0 {
			continue
		}
		i := ready[rng.IntN(len(ready))]
		tag := fmt.Sprintf("%s-w%03d", name, n)
		data := map[string]any{}
		for _, fl := range fields[i] {
			data[fl] = fmt.Sprintf("%s-%d-%s", tag, i, fl)
		}
		if _, err := kv.Put(ctx, w.SecretPath(i), data); err != nil {
			b.Fatal(err)
		}
		ww := &watchWrite{path: i, value: data[first[i]].(string), returned: time.Now()}
		last[i], all = ww, append(all, ww)
		left[i]--
		n++
	}
	for _, ww := range all {
		for {
			if t, ok := pushed(ww.path, ww.value); ok {
				ww.patched = t
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("write to path %d: no PATCH with its value", ww.path)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	b.StopTimer()
	// One more interval, so that the window ends on whole polls.
	time.Sleep(interval)
	window := time.Since(start)
	meta := scrapeCounter(b, admin, "rotator_vault_requests_total", map[string]string{"operation": "metadata"}) - meta0
	audit, err := e.AuditSince(mark)
	if err != nil {
		b.Fatal(err)
	}
	auditMeta := 0
	for path, c := range audit.ByPath {
		if strings.HasPrefix(path, "secret/metadata/bench/"+w.Name+"/") {
			auditMeta += c
		}
	}
	watchPasses := scrapeCounter(b, admin, "rotator_pass_duration_seconds", map[string]string{"trigger": "watch"})
	passes, err := watchPassDurations(p.Log)
	if err != nil {
		b.Fatal(err)
	}
	extra := w.Hood.Count("PATCH") - patches0 - writes

	lat := make([]time.Duration, len(all))
	for k, ww := range all {
		lat[k] = max(0, ww.patched.Sub(ww.returned))
	}
	slices.Sort(lat)
	pct := func(q float64) time.Duration { return lat[int(math.Ceil(q*float64(len(lat))))-1] }
	p50, p90, p99, worst := pct(0.50), pct(0.90), pct(0.99), lat[len(lat)-1]
	var sum time.Duration
	for _, l := range lat {
		sum += l
	}
	perPath := meta / window.Seconds() / watchPaths
	b.ReportMetric(p50.Seconds(), "p50-s")
	b.ReportMetric(p90.Seconds(), "p90-s")
	b.ReportMetric(p99.Seconds(), "p99-s")
	b.ReportMetric(worst.Seconds(), "max-s")
	b.ReportMetric(perPath, "metadata-req/s/path")
	target := interval + time.Second
	verdict := "met"
	if p99 > target {
		verdict = "MISSED"
	}
	ms := func(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d.Microseconds())/1000) }
	b.Logf("watch.interval %s: %d writes over %d paths in %s; %d watch passes; PATCHes beyond one per write: %d",
		interval, len(all), watchPaths, window.Round(time.Second), int(watchPasses), extra)
	b.Logf("| interval | writes | p50 | p90 | p99 | max | mean | target p99 ≤ | verdict |")
	b.Logf("| %s | %d | %s | %s | %s | %s | %s | %s | %s |", interval, len(all), ms(p50), ms(p90), ms(p99), ms(worst),
		ms(sum/time.Duration(len(lat))), ms(target), verdict)
	if len(passes) > 0 {
		slices.Sort(passes)
		b.Logf("watch passes (rotator's log): median %s, max %s", ms(passes[len(passes)/2]), ms(passes[len(passes)-1]))
		b.ReportMetric(passes[len(passes)-1].Seconds(), "max-pass-s")
	}
	b.Logf("Vault metadata requests in %s: %d by rotator_vault_requests_total, %d in the audit log: %.3f per second per path (1/interval = %.3f)",
		window.Round(time.Millisecond), int(meta), auditMeta, perPath, 1/interval.Seconds())
}

// watchPassDurations reads the durations of the watch passes from rotator's
// JSON log ("pass finished" lines).
func watchPassDurations(log string) ([]time.Duration, error) {
	raw, err := os.ReadFile(log)
	if err != nil {
		return nil, err
	}
	var out []time.Duration
	for _, line := range strings.Split(string(raw), "\n") {
		var e struct {
			Msg, Trigger, Duration string
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Msg != "pass finished" || e.Trigger != "watch" {
			continue
		}
		d, err := time.ParseDuration(e.Duration)
		if err != nil {
			return nil, fmt.Errorf("pass duration %q: %w", e.Duration, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// scrapeCounter sums the series of a counter (or the sample counts of a
// histogram) on rotator's /metrics whose labels include labels.
func scrapeCounter(b *testing.B, addr, name string, labels map[string]string) float64 {
	b.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	v, _, err := testkit.Metric(resp.Body, name, labels)
	if err != nil {
		b.Fatal(err)
	}
	return v
}
