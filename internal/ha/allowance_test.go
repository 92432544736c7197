package ha_test

// The fleet's Hood allowance against a real OpenBao server.

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/ha"
	"github.com/ocamba-rotator/rotator/internal/testkit"
	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

// window is a fake limiter: Sent returns sent, Seed records what it got.
type window struct {
	mu     sync.Mutex
	sent   []time.Time
	seeds  [][]time.Time
	perMin int
}

func (w *window) Sent() []time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.sent)
}

func (w *window) Seed(s []time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seeds = append(w.seeds, slices.Clone(s))
}

func (w *window) Capacity() int { return w.perMin }

func (w *window) seeded() [][]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.seeds)
}

// allowanceEnv is a path on the package's server shared by the allowances
// of one test.
type allowanceEnv struct {
	vault ha.Vault
	path  string
	clock func() time.Time
}

func newAllowanceEnv(t *testing.T) *allowanceEnv {
	t.Helper()
	vaulttest.Require(t, srv)
	return &allowanceEnv{vault: vaultClient(t, srv, &testkit.SyncBuffer{}), path: uniq("allowance")}
}

// allowance returns an allowance of identity id on the env's path.
func (e *allowanceEnv) allowance(t *testing.T, id string, w *window, ttl time.Duration) *ha.Allowance {
	t.Helper()
	a, err := ha.NewAllowance(ha.AllowanceOptions{
		Vault: e.vault, Mount: "secret", Path: e.path, Identity: id, TTL: ttl,
		Skew: time.Second, Poll: 20 * time.Millisecond, Window: w, Now: e.clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Release(context.Background()) })
	return a
}

func TestAllowanceHandoverSeedsTheNextHolder(t *testing.T) {
	e := newAllowanceEnv(t)
	now := time.Now().Truncate(time.Millisecond)
	wa := &window{sent: []time.Time{now.Add(-30 * time.Second), now.Add(-time.Second)}, perMin: 10}
	wb := &window{perMin: 10}
	a := e.allowance(t, "a#1", wa, time.Minute)
	b := e.allowance(t, "b#2", wb, time.Minute)

	if err := a.Acquire(t.Context()); err != nil {
		t.Fatalf("a: acquire a free allowance: %v", err)
	}
	if len(wa.seeded()) != 0 {
		t.Errorf("a seeded %v from a document nobody wrote", wa.seeded())
	}
	if err := a.Acquire(t.Context()); err != nil || !a.Held() {
		t.Fatalf("a: acquire again while held: %v, held %v", err, a.Held())
	}

	// b waits while a holds it.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	var we *ha.AllowanceWaitError
	if err := b.Acquire(ctx); !errors.As(err, &we) || we.Holder != "a#1" || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("b: acquire while a holds it: got %v, want an AllowanceWaitError naming a#1", err)
	}

	// b waits, a releases: b takes it, seeded with a's send times + skew.
	got := make(chan error, 1)
	go func() { got <- b.Acquire(t.Context()) }()
	time.Sleep(100 * time.Millisecond)
	if err := a.Release(t.Context()); err != nil {
		t.Fatalf("a: release: %v", err)
	}
	if a.Held() {
		t.Error("a still holds the allowance after its release")
	}
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("b: acquire after a's release: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b did not take the allowance a released")
	}
	seeds := wb.seeded()
	want := []time.Time{wa.sent[0].Add(time.Second), wa.sent[1].Add(time.Second)}
	if len(seeds) != 1 || !slices.EqualFunc(seeds[0], want, time.Time.Equal) {
		t.Errorf("b seeded %v, want a's send times a second later %v", seeds, want)
	}

	// b releases and takes it again: its own limiter knows its sends.
	if err := b.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := b.Acquire(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(wb.seeded()); n != 1 {
		t.Errorf("b seeded its limiter %d times, want once (not from its own handover)", n)
	}
}

func TestAllowanceDeadHolderCountsItsBudget(t *testing.T) {
	e := newAllowanceEnv(t)
	var mu sync.Mutex
	now := time.Now().Truncate(time.Millisecond)
	e.clock = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	const ttl = time.Minute
	wa := &window{sent: []time.Time{now.Add(-10 * time.Second)}, perMin: 40} // budget 10
	wb := &window{perMin: 40}
	a := e.allowance(t, "a#1", wa, ttl)
	b := e.allowance(t, "b#2", wb, ttl)
	if err := a.Acquire(t.Context()); err != nil {
		t.Fatal(err)
	}
	expires := e.clock().Add(ttl)

	// a stops sending TTL/6 before its lease ends, even without renewal.
	advance(ttl - ttl/6)
	if a.Held() {
		t.Error("a holds the allowance with a sixth of its TTL left: it must stop sending")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := b.Acquire(ctx); err == nil {
		t.Fatal("b took a live allowance")
	}

	// a "dies" (no release); once its lease ran out, b takes it over and
	// counts, at the last instant a may have sent, what a may have sent
	// since its last write: twice its budget (requests that passed the
	// gate together), not a whole long window.
	advance(ttl/6 + time.Millisecond)
	if err := b.Acquire(t.Context()); err != nil {
		t.Fatalf("b: take over an expired allowance: %v", err)
	}
	seeds := wb.seeded()
	if len(seeds) != 1 {
		t.Fatalf("b seeded %d times, want once", len(seeds))
	}
	at := expires.Add(-ttl / 6).Add(time.Second)
	var full int
	for _, s := range seeds[0] {
		if s.Equal(at) {
			full++
		}
	}
	if full != 20 {
		t.Errorf("b seeded %v: want 20 (twice a's budget of 10) sends at %s", seeds[0], at)
	}
	// a, back, finds it lost.
	if err := a.Release(t.Context()); !errors.Is(err, ha.ErrAllowanceLost) {
		t.Errorf("a: release after the takeover: got %v, want ErrAllowanceLost", err)
	}
}

func TestAllowanceRenewKeepsIt(t *testing.T) {
	e := newAllowanceEnv(t)
	const ttl = 600 * time.Millisecond // renewed every 200ms
	a := e.allowance(t, "a#1", &window{perMin: 10}, ttl)
	b := e.allowance(t, "b#2", &window{perMin: 10}, ttl)
	if err := a.Acquire(t.Context()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 3*ttl)
	defer cancel()
	if err := b.Acquire(ctx); err == nil {
		t.Fatal("b took an allowance a renews")
	}
	if !a.Held() {
		t.Fatal("a lost an allowance it renews")
	}
	if err := a.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := b.Acquire(t.Context()); err != nil {
		t.Fatalf("b after a's release: %v", err)
	}
}

// A holder writes the document, with its send times, each time it has sent
// its budget since its last write: the next holder is never told of fewer
// than all but a budget of them.
func TestAllowanceWritesAtItsBudget(t *testing.T) {
	e := newAllowanceEnv(t)
	now := time.Now().Truncate(time.Millisecond)
	wa := &window{perMin: 8} // budget 2
	wb := &window{perMin: 8}
	a := e.allowance(t, "a#1", wa, time.Minute)
	if err := a.Acquire(t.Context()); err != nil {
		t.Fatal(err)
	}
	send := func(n int) {
		wa.mu.Lock()
		for range n {
			wa.sent = append(wa.sent, time.Now())
		}
		wa.mu.Unlock()
	}
	send(1)
	if err := a.Acquire(t.Context()); err != nil { // under budget: no write
		t.Fatal(err)
	}
	send(1)
	if err := a.Acquire(t.Context()); err != nil { // budget reached: a write
		t.Fatal(err)
	}
	// a dies; b takes over after the lease: it is told of both sends.
	e.clock = func() time.Time { return now.Add(2 * time.Minute) }
	b := e.allowance(t, "b#2", wb, time.Minute)
	if err := b.Acquire(t.Context()); err != nil {
		t.Fatalf("b: take over: %v", err)
	}
	seeds := wb.seeded()
	if len(seeds) != 1 {
		t.Fatalf("b seeded %d times, want once", len(seeds))
	}
	// The two sends handed over, plus twice the budget at the last instant.
	if got := len(seeds[0]); got != 2+4 {
		t.Errorf("b seeded %d send times, want 6 (2 handed over at a's budget write + 4 unknown)", got)
	}
}
