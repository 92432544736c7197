package daemon

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/metrics"
)

// Watch mode (docs/ha.md): between schedules, a watcher polls the KV v2
// metadata of every distinct KV v2 source of the configuration and tells
// the loop which integrations read a path whose current version changed.
// The loop alone runs passes; the watcher only sends names.

// watchParallel is how many metadata reads a poll makes at a time.
const watchParallel = 8

// metadataReader reads the current version of a KV v2 secret (GET
// <mount>/metadata/<path>). *vault.Client implements it; each call is
// bounded by the client's own request timeout.
type metadataReader interface {
	CurrentVersion(ctx context.Context, mount, path string) (int, error)
}

// seenVersion is the version of a path an integration was last told about
// (or that was current when its baseline was taken).
type seenVersion struct {
	key     string // config.Source.Key() of the path
	version int
}

// watchMemory is what the watchers know across configurations: it belongs
// to the daemon and is handed from one session's watcher to the next's
// (install closes the old session, and so waits for its watcher, before the
// new one uses it), never used by two goroutines at once.
type watchMemory struct {
	// seen is by integration name: an integration added by a reload, or
	// moved to another path, has no baseline even when its path has one.
	seen map[string]seenVersion
	// failing holds the paths (by source key) whose last metadata read
	// failed, so that a failure is logged when it starts and when it ends.
	failing map[string]bool
}

func newWatchMemory() *watchMemory {
	return &watchMemory{seen: map[string]seenVersion{}, failing: map[string]bool{}}
}

// watchTarget is one distinct KV v2 source and the integrations reading it.
type watchTarget struct {
	key         string // config.Source.Key()
	mount, path string // without surrounding slashes
	names       []string
}

// vaultPath is the path as logs name it (mount/path, as in pass outcomes).
func (t watchTarget) vaultPath() string { return t.mount + "/" + t.path }

// watcher polls the targets of one configuration every interval.
type watcher struct {
	reader   metadataReader
	interval time.Duration
	targets  []watchTarget
	mem      *watchMemory
	out      chan<- []string
	log      *slog.Logger
	metrics  *metrics.Recorder
}

// watchTargets groups the integrations of cfg by distinct KV v2 source, in
// configuration order, and counts the integrations whose source is KV v1.
func watchTargets(cfg *config.Config) (targets []watchTarget, unwatched int) {
	index := map[string]int{}
	for _, in := range cfg.Integrations {
		if in.Source.KVVersion == 1 {
			unwatched++
			continue
		}
		key := in.Source.Key()
		i, ok := index[key]
		if !ok {
			i = len(targets)
			index[key] = i
			targets = append(targets, watchTarget{key: key,
				mount: strings.Trim(in.Source.Mount, "/"), path: strings.Trim(in.Source.Path, "/")})
		}
		targets[i].names = append(targets[i].names, in.Name)
	}
	return targets, unwatched
}

// newWatcher returns the watcher of cfg, or nil when watch mode is off or
// no source is KV v2. It forgets what mem knew of integrations and paths
// that cfg no longer has, and logs how many integrations it does not watch.
func (d *Daemon) newWatcher(cfg *config.Config, reader metadataReader, mem *watchMemory) *watcher {
	interval := cfg.Watch.Interval.D()
	if interval <= 0 {
		return nil
	}
	targets, unwatched := watchTargets(cfg)
	keys, names := map[string]bool{}, map[string]bool{}
	for _, t := range targets {
		keys[t.key] = true
		for _, n := range t.names {
			names[n] = true
		}
	}
	for n := range mem.seen {
		if !names[n] {
			delete(mem.seen, n)
		}
	}
	for k := range mem.failing {
		if !keys[k] {
			delete(mem.failing, k)
		}
	}
	if unwatched > 0 {
		d.log.Info("watch: KV v1 sources are not watched: their integrations rotate on their schedules only",
			"integrations", unwatched)
	}
	if len(targets) == 0 {
		return nil
	}
	d.log.Debug("watch: polling KV v2 metadata", "interval", interval.String(), "paths", len(targets))
	return &watcher{reader: reader, interval: interval, targets: targets, mem: mem,
		out: d.watchTicks, log: d.log, metrics: d.metrics}
}

// pollResult is the outcome of one metadata read.
type pollResult struct {
	version int
	err     error
	read    bool // the read was made (false: the poll ended before it)
}

// read reads the current version of every target, watchParallel at a time.
// When ctx ends, reads not yet started are not made, and reads it cut short
// count as not made: they say nothing about the path (and are neither
// logged nor counted in the metrics).
func (w *watcher) read(ctx context.Context) []pollResult {
	res := make([]pollResult, len(w.targets))
	sem := make(chan struct{}, watchParallel)
	var wg sync.WaitGroup
	for i, t := range w.targets {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			v, err := w.reader.CurrentVersion(ctx, t.mount, t.path)
			if err != nil && ctx.Err() != nil {
				return
			}
			res[i] = pollResult{version: v, err: err, read: true}
			w.metrics.ObserveWatchPoll(err == nil)
		}()
	}
	wg.Wait()
	return res
}

// note logs a path that starts or stops failing.
func (w *watcher) note(t watchTarget, r pollResult) {
	switch {
	case !r.read:
	case r.err != nil && !w.mem.failing[t.key]:
		w.mem.failing[t.key] = true
		w.log.Warn("watch: cannot read the metadata of a Vault path: its changes are not seen until it can",
			"vault_path", t.vaultPath(), "error", r.err.Error())
	case r.err == nil && w.mem.failing[t.key]:
		delete(w.mem.failing, t.key)
		w.log.Info("watch: the metadata of a Vault path can be read again", "vault_path", t.vaultPath())
	}
}

// baseline reads every path once and records its version for its
// integrations, without reporting anything: the start-up pass reads the
// secrets after it. A path that cannot be read keeps no baseline, so its
// first successful read counts as a change.
func (w *watcher) baseline(ctx context.Context) {
	res := w.read(ctx)
	unread := 0
	for i, t := range w.targets {
		r := res[i]
		w.note(t, r)
		if !r.read {
			unread++
		}
		if !r.read || r.err != nil {
			continue
		}
		for _, n := range t.names {
			w.mem.seen[n] = seenVersion{key: t.key, version: r.version}
		}
	}
	if unread > 0 {
		cause := "ended"
		if err := context.Cause(ctx); err != nil {
			cause = err.Error()
		}
		w.log.Warn("watch: baseline cut short: the paths not read count as changed when first read",
			"paths", unread, "error", cause)
	}
}

// poll reads every path and sends the loop the integrations whose path
// changed since they last saw it (or that have no baseline). The versions
// are recorded only once the loop took the names: a poll cut short by the
// end of the session leaves them for the next watcher to find.
func (w *watcher) poll(ctx context.Context) {
	res := w.read(ctx)
	var (
		names   []string
		changed int
		commit  = map[string]seenVersion{}
	)
	for i, t := range w.targets {
		r := res[i]
		w.note(t, r)
		if !r.read || r.err != nil {
			continue
		}
		now := seenVersion{key: t.key, version: r.version}
		hit := false
		for _, n := range t.names {
			if s, ok := w.mem.seen[n]; !ok || s != now {
				names = append(names, n)
				commit[n] = now
				hit = true
			}
		}
		if hit {
			changed++
			w.log.Debug("watch: Vault path changed", "vault_path", t.vaultPath(), "vault_version", r.version)
		}
	}
	if len(names) == 0 {
		return
	}
	select {
	case w.out <- names:
	case <-ctx.Done():
		return
	}
	for n, s := range commit {
		w.mem.seen[n] = s
	}
	for range changed {
		w.metrics.ObserveWatchChange()
	}
}

// run polls every interval until ctx ends.
func (w *watcher) run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.poll(ctx)
		}
	}
}

// startWatcher starts the watcher of a session (watch mode on, and some
// source is KV v2). At start-up it first takes the baseline, synchronously,
// so that the start-up pass reads every secret after it; the baseline is
// bounded by one Vault request timeout: a path it could not read counts as
// changed the first time it is read.
func (d *Daemon) startWatcher(ctx context.Context, w *world, s *session, startup bool) {
	wt := d.newWatcher(w.cfg, w.Vault, d.watched)
	if wt == nil {
		return
	}
	if startup {
		limit := w.cfg.Vault.Timeout.D()
		if limit <= 0 {
			limit = config.DefaultVaultTimeout
		}
		bctx, cancel := context.WithTimeout(ctx, limit)
		wt.baseline(bctx)
		cancel()
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		wt.run(ctx)
	}()
}
