package bench

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/daemon"
)

// footprintWorld is BenchmarkFootprint's world: 100 integrations over 100
// secrets, Hood without limits, the state seeded so that a daemon's
// start-up pass finds nothing to push. It returns the daemon's
// configuration (@every 1m, default rate limits) and its admin address.
func footprintWorld(b *testing.B, e *Env, state string) (*World, string, string) {
	b.Helper()
	w := world(b, "footprint", 100, 100, unlimited)
	admin, err := FreeAddr()
	if err != nil {
		b.Fatal(err)
	}
	seedOpts := fast
	seedOpts.State = state
	base := strings.TrimSuffix(state, ".db")
	seed, err := w.WriteConfig("seed-"+base+".yaml", seedOpts)
	if err != nil {
		b.Fatal(err)
	}
	run(b, e, "once", "--config", seed, "--log-level", "warn")
	cfg, err := w.WriteConfig("run-"+base+".yaml", ConfigOpts{Schedule: "@every 1m", AdminListen: admin, State: state})
	if err != nil {
		b.Fatal(err)
	}
	return w, cfg, admin
}

// BenchmarkIdleTuning: the idle RSS of `rotator run` (100 integrations,
// after its start-up pass and 5 s) under Go runtime settings that need no
// code change, to size the proposals of docs/BENCHMARKS.md.
func BenchmarkIdleTuning(b *testing.B) {
	for _, v := range []string{"default", "GOGC=50", "GOMEMLIMIT=8MiB", "GOMAXPROCS=1"} {
		b.Run(v, func(b *testing.B) {
			e := sharedEnv(b)
			_, cfg, admin := footprintWorld(b, e, "state.db")
			var extra []string
			if v != "default" {
				extra = []string{v}
			}
			var m ProcMem
			for range b.N {
				p, err := e.StartDaemon(cfg, "", extra...)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := WaitReady(p, admin, 30*time.Second); err != nil {
					_ = p.Stop(10 * time.Second)
					b.Fatal(err)
				}
				if err := p.WaitLog(`"msg":"pass finished"`, p.CountInLog(`"msg":"pass finished"`)+1, 30*time.Second); err != nil {
					_ = p.Stop(10 * time.Second)
					b.Fatal(err)
				}
				time.Sleep(5 * time.Second)
				m, err = ReadMem(p.Pid())
				_ = p.Stop(10 * time.Second)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(m.RSS)/1024, "RSS-MiB")
			b.ReportMetric(float64(m.Anon)/1024, "anon-MiB")
			b.ReportMetric(float64(m.File)/1024, "file-MiB")
			b.Logf("%s: RSS %.1f MiB = anon %.1f + file %.1f; %d threads", v, float64(m.RSS)/1024, float64(m.Anon)/1024, float64(m.File)/1024, m.Threads)
		})
	}
}

// BenchmarkDaemonHeap: the live Go heap that an idle `rotator run` holds
// with 100 integrations, measured in-process (the daemon package run inside
// the benchmark binary, like the binary's main does): heap in use after a
// forced GC once the start-up pass finished, minus the same before the
// start. With ROTATOR_BENCH_PROFILE=DIR and -memprofilerate=1 it also
// writes DIR/daemon-heap.pprof (go tool pprof -sample_index=inuse_space).
func BenchmarkDaemonHeap(b *testing.B) {
	e := sharedEnv(b)
	_, cfg, _ := footprintWorld(b, e, "heap.db")
	getenv := func(k string) string {
		switch k {
		case "VAULT_ADDR":
			return e.Vault.Addr
		case "VAULT_TOKEN":
			return e.Vault.RootToken
		}
		return ""
	}
	var live, stacks int64
	for range b.N {
		before := memNow()
		ctx, cancel := context.WithCancel(context.Background())
		logs := &lockedBuffer{}
		done := make(chan error, 1)
		go func() {
			done <- daemon.Run(ctx, daemon.Options{ConfigPath: cfg, Getenv: getenv, Version: "bench",
				Logger: slog.New(slog.NewJSONHandler(logs, nil))})
		}()
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(logs.String(), `"msg":"pass finished"`) {
			if time.Now().After(deadline) {
				cancel()
				b.Fatalf("no pass finished:\n%s", tailLines(logs.String(), 10))
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(time.Second)
		after := memNow()
		if dir := os.Getenv("ROTATOR_BENCH_PROFILE"); dir != "" {
			if err := writeHeapProfile(filepath.Join(dir, "daemon-heap.pprof")); err != nil {
				b.Error(err)
			}
		}
		cancel()
		if err := <-done; err != nil {
			b.Fatal(err)
		}
		live = int64(after.HeapAlloc) - int64(before.HeapAlloc)
		stacks = int64(after.StackInuse) - int64(before.StackInuse)
	}
	b.ReportMetric(float64(live)/1024, "live-heap-KiB")
	b.ReportMetric(float64(stacks)/1024, "stacks-KiB")
	b.Logf("idle daemon, 100 integrations: live heap %.0f KiB, goroutine stacks %.0f KiB (in-process, after GC)", float64(live)/1024, float64(stacks)/1024)
}

func memNow() runtime.MemStats {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// lockedBuffer is a strings.Builder safe for the daemon's concurrent logs.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
