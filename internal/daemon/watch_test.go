package daemon

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
)

// fakeMetadata answers CurrentVersion from a table; a path with an error
// set fails.
type fakeMetadata struct {
	mu       sync.Mutex
	versions map[string]int
	errs     map[string]error
	reads    map[string]int
	inFlight int
	maxIn    int
	delay    time.Duration
}

func newFakeMetadata() *fakeMetadata {
	return &fakeMetadata{versions: map[string]int{}, errs: map[string]error{}, reads: map[string]int{}}
}

func (f *fakeMetadata) CurrentVersion(ctx context.Context, mount, path string) (int, error) {
	p := mount + "/" + path
	f.mu.Lock()
	f.reads[p]++
	f.inFlight++
	f.maxIn = max(f.maxIn, f.inFlight)
	delay := f.delay
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.errs[p]; err != nil {
		return 0, err
	}
	return f.versions[p], nil
}

func (f *fakeMetadata) set(p string, v int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.versions[p], f.errs[p] = v, err
}

func watchConfig(interval time.Duration, ins ...config.Integration) *config.Config {
	return &config.Config{Watch: config.Watch{Interval: config.Duration(interval)}, Integrations: ins}
}

func integ(name, mount, path string, kv int) config.Integration {
	return config.Integration{Name: name, Source: config.Source{Mount: mount, Path: path, KVVersion: kv}}
}

// testDaemon is a Daemon with just what the watcher uses; its log is in buf.
func testDaemon(buf *bytes.Buffer) *Daemon {
	return &Daemon{
		log:        slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		watchTicks: make(chan []string, 1),
		watched:    newWatchMemory(),
	}
}

// poll runs one poll and returns what it sent (nil if nothing).
func pollOnce(t *testing.T, d *Daemon, w *watcher) []string {
	t.Helper()
	w.poll(context.Background())
	select {
	case names := <-d.watchTicks:
		return names
	default:
		return nil
	}
}

func TestWatcherBaselineChangesAndFailures(t *testing.T) {
	var buf bytes.Buffer
	d := testDaemon(&buf)
	md := newFakeMetadata()
	md.set("secret/a", 3, nil)
	md.set("secret/b", 1, nil)
	denied := errors.New("permission denied")
	md.set("secret/c", 0, denied)
	cfg := watchConfig(time.Second,
		integ("a1", "secret", "a", 2), integ("b1", "/secret/", "/b/", 2), integ("a2", "secret", "a", 2),
		integ("c1", "secret", "c", 2), integ("v1", "kv1", "old", 1))
	w := d.newWatcher(cfg, md, d.watched)
	if w == nil {
		t.Fatal("newWatcher: got nil, want a watcher")
	}
	if got := len(w.targets); got != 3 {
		t.Errorf("targets: got %d, want 3 (a, b, c; the KV v1 source is not watched)", got)
	}
	if !strings.Contains(buf.String(), "KV v1 sources are not watched") || !strings.Contains(buf.String(), "integrations=1") {
		t.Errorf("log: got\n%s\nwant the count of unwatched integrations", buf.String())
	}

	w.baseline(context.Background())
	if got := strings.Count(buf.String(), "cannot read the metadata"); got != 1 {
		t.Errorf("failure logs after the baseline: got %d, want 1", got)
	}
	// Nothing changed: nothing sent.
	if got := pollOnce(t, d, w); got != nil {
		t.Errorf("poll with nothing changed: sent %v, want nothing", got)
	}
	// A still failing path is not logged again.
	if got := strings.Count(buf.String(), "cannot read the metadata"); got != 1 {
		t.Errorf("failure logs after a second failing poll: got %d, want 1", got)
	}
	// A new version of a: both its integrations, in configuration order.
	md.set("secret/a", 4, nil)
	if got := pollOnce(t, d, w); !slices.Equal(got, []string{"a1", "a2"}) {
		t.Errorf("poll after a write to a: sent %v, want [a1 a2]", got)
	}
	if got := pollOnce(t, d, w); got != nil {
		t.Errorf("next poll: sent %v, want nothing", got)
	}
	// c recovers: it had no baseline, so it counts as changed once.
	md.set("secret/c", 7, nil)
	if got := pollOnce(t, d, w); !slices.Equal(got, []string{"c1"}) {
		t.Errorf("poll after c recovered: sent %v, want [c1]", got)
	}
	if got := strings.Count(buf.String(), "can be read again"); got != 1 {
		t.Errorf("recovery logs: got %d, want 1", got)
	}
	if got := pollOnce(t, d, w); got != nil {
		t.Errorf("next poll: sent %v, want nothing", got)
	}
	if !strings.Contains(buf.String(), "vault_path=secret/c") || !strings.Contains(buf.String(), "error=\"permission denied\"") {
		t.Errorf("log: got\n%s\nwant vault_path and error keys", buf.String())
	}
}

func TestWatcherReloadKeepsBaselinesAndSeesNewOnes(t *testing.T) {
	var buf bytes.Buffer
	d := testDaemon(&buf)
	md := newFakeMetadata()
	md.set("secret/a", 3, nil)
	md.set("secret/b", 5, nil)
	w := d.newWatcher(watchConfig(time.Second, integ("a1", "secret", "a", 2)), md, d.watched)
	w.baseline(context.Background())

	// A reload adds b2 on a new path and a3 on a known path; a1 keeps its baseline.
	w = d.newWatcher(watchConfig(time.Second, integ("a1", "secret", "a", 2), integ("a3", "secret", "a", 2), integ("b2", "secret", "b", 2)), md, d.watched)
	if got := pollOnce(t, d, w); !slices.Equal(got, []string{"a3", "b2"}) {
		t.Errorf("first poll after the reload: sent %v, want [a3 b2] (no baseline)", got)
	}
	if got := pollOnce(t, d, w); got != nil {
		t.Errorf("next poll: sent %v, want nothing", got)
	}
	// A reload that removes a3 forgets it; adding it back makes it new again.
	d.newWatcher(watchConfig(time.Second, integ("a1", "secret", "a", 2)), md, d.watched)
	if _, ok := d.watched.seen["a3"]; ok {
		t.Errorf("a3 kept a baseline after a reload removed it")
	}
	// Watch off, or only KV v1 sources: no watcher.
	if w := d.newWatcher(watchConfig(0, integ("a1", "secret", "a", 2)), md, d.watched); w != nil {
		t.Errorf("watch.interval 0: got a watcher")
	}
	if w := d.newWatcher(watchConfig(time.Second, integ("v", "kv", "x", 1)), md, d.watched); w != nil {
		t.Errorf("only KV v1 sources: got a watcher")
	}
}

// A poll whose names the loop did not take (the session ended) records
// nothing: the next watcher sees the change again.
func TestWatcherPollCutShortKeepsTheChange(t *testing.T) {
	var buf bytes.Buffer
	d := testDaemon(&buf)
	d.watchTicks = make(chan []string) // nobody receives
	md := newFakeMetadata()
	md.set("secret/a", 1, nil)
	cfg := watchConfig(time.Second, integ("a1", "secret", "a", 2))
	w := d.newWatcher(cfg, md, d.watched)
	w.baseline(context.Background())
	md.set("secret/a", 2, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	w.poll(ctx)
	if got := d.watched.seen["a1"].version; got != 1 {
		t.Errorf("version recorded after an undelivered poll: got %d, want 1", got)
	}
	d.watchTicks = make(chan []string, 1)
	w = d.newWatcher(cfg, md, d.watched)
	if got := pollOnce(t, d, w); !slices.Equal(got, []string{"a1"}) {
		t.Errorf("next session's poll: sent %v, want [a1]", got)
	}
}

func TestWatcherReadsEightAtATimeAndStopsWithContext(t *testing.T) {
	var buf bytes.Buffer
	d := testDaemon(&buf)
	md := newFakeMetadata()
	md.delay = 50 * time.Millisecond
	var ins []config.Integration
	for i := range 20 {
		p := string(rune('a' + i))
		md.set("secret/"+p, 1, nil)
		ins = append(ins, integ("i"+p, "secret", p, 2))
	}
	w := d.newWatcher(watchConfig(20*time.Millisecond, ins...), md, d.watched)
	w.baseline(context.Background())
	if md.maxIn != watchParallel {
		t.Errorf("reads in flight at once: got %d, want %d", md.maxIn, watchParallel)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.run(ctx); close(done) }()
	time.Sleep(150 * time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the watcher did not stop with its context")
	}
}

// A baseline cut short by its deadline logs no path as failing and leaves
// the paths it did not read without a baseline.
func TestWatcherBaselineCutShort(t *testing.T) {
	var buf bytes.Buffer
	d := testDaemon(&buf)
	md := newFakeMetadata()
	md.set("secret/a", 1, nil)
	md.delay = time.Second
	w := d.newWatcher(watchConfig(time.Second, integ("a1", "secret", "a", 2)), md, d.watched)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	w.baseline(ctx)
	if strings.Contains(buf.String(), "cannot read the metadata") || !strings.Contains(buf.String(), "baseline cut short") {
		t.Errorf("log: got\n%s\nwant the cut-short baseline, no failing path", buf.String())
	}
	md.mu.Lock()
	md.delay = 0
	md.mu.Unlock()
	if got := pollOnce(t, d, w); !slices.Equal(got, []string{"a1"}) {
		t.Errorf("first poll after a cut-short baseline: sent %v, want [a1]", got)
	}
}
