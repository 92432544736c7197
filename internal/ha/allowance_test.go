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
	"github.com/ocamba-rotator/rotator/internal/vault"
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

// manualClock makes the env's clock one that moves only when told: it
// returns its start and the function that moves it.
func (e *allowanceEnv) manualClock() (time.Time, func(time.Duration)) {
	var mu sync.Mutex
	start := time.Now().Truncate(time.Millisecond)
	now := start
	e.clock = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	return start, func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
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
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
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
	now, advance := e.manualClock()
	const ttl = time.Minute
	wa := &window{sent: []time.Time{now.Add(-10 * time.Second)}, perMin: 80} // budget 10
	wb := &window{perMin: 80}
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
	// since its last write: its budget (Start counts every start), not a
	// whole long window.
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
	if full != 10 {
		t.Errorf("b seeded %v: want 10 (a's budget) sends at %s", seeds[0], at)
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
	wa := &window{perMin: 16} // budget 2
	wb := &window{perMin: 16}
	a := e.allowance(t, "a#1", wa, time.Minute)
	if a.Start() {
		t.Fatal("a: Start let a request through before a held the allowance")
	}
	if err := a.Acquire(t.Context()); err != nil {
		t.Fatal(err)
	}
	// send is the limiter's step: Start, then the start is recorded.
	send := func() {
		t.Helper()
		if !a.Start() {
			t.Fatal("a: Start refused a request within the budget")
		}
		wa.mu.Lock()
		wa.sent = append(wa.sent, time.Now())
		wa.mu.Unlock()
	}
	send()
	if err := a.Acquire(t.Context()); err != nil { // under budget: no write
		t.Fatal(err)
	}
	send()
	if a.Start() { // budget reached: the limiter goes back to Acquire
		t.Fatal("a: Start let a third request through with a budget of 2 and no write")
	}
	if err := a.Acquire(t.Context()); err != nil { // budget reached: a write
		t.Fatal(err)
	}
	if !a.Start() {
		t.Error("a: Start refused a request after the budget's write")
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
	// The two sends handed over, plus the budget at the last instant.
	if got := len(seeds[0]); got != 2+2 {
		t.Errorf("b seeded %d send times, want 4 (2 handed over at a's budget write + 2 unknown)", got)
	}
}

// A document written by an older rotator (a budget, no unknown_max) was
// counted less strictly: its holder may have sent up to twice its budget
// unlisted, and a successor counts that many.
func TestAllowanceOlderDocumentCountsTwiceItsBudget(t *testing.T) {
	e := newAllowanceEnv(t)
	now := time.Now().Truncate(time.Millisecond)
	expires := now.Add(-time.Second)
	doc := map[string]any{"holder": "old#1", "expires": expires.UTC().Format(time.RFC3339Nano), "last": "old#1", "budget": 3}
	if _, err := e.vault.WriteDoc(t.Context(), "secret", e.path+"/_meta/hood-allowance", doc, 0); err != nil {
		t.Fatal(err)
	}
	wb := &window{perMin: 80}
	b := e.allowance(t, "b#2", wb, time.Minute)
	if err := b.Acquire(t.Context()); err != nil {
		t.Fatalf("b: take over: %v", err)
	}
	seeds := wb.seeded()
	if len(seeds) != 1 || len(seeds[0]) != 6 {
		t.Fatalf("b seeded %v, want once with 6 sends (twice the old holder's budget of 3)", seeds)
	}
	if at := expires.Add(-time.Minute / 6).Add(time.Second); !seeds[0][0].Equal(at) {
		t.Errorf("b counted the old holder's sends at %s, want %s (TTL/6 before its lease's end, plus the skew)", seeds[0][0], at)
	}
}

// countingVault counts the reads of the allowance's document.
type countingVault struct {
	ha.Vault
	mu    sync.Mutex
	reads int
}

func (c *countingVault) ReadDoc(ctx context.Context, mount, path string, out any) (int, bool, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return c.Vault.ReadDoc(ctx, mount, path, out)
}

func (c *countingVault) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads
}

// TestAllowanceWaiterBacksOff: a rotator waiting for a holder that keeps
// the allowance reads the document less and less often (Poll doubling up
// to MaxPoll), and still takes it over once it is released.
func TestAllowanceWaiterBacksOff(t *testing.T) {
	e := newAllowanceEnv(t)
	a := e.allowance(t, "a#1", &window{perMin: 10}, time.Minute)
	if err := a.Acquire(t.Context()); err != nil {
		t.Fatalf("a: acquire: %v", err)
	}
	cv := &countingVault{Vault: e.vault}
	b, err := ha.NewAllowance(ha.AllowanceOptions{
		Vault: cv, Mount: "secret", Path: e.path, Identity: "b#2", TTL: time.Minute,
		Poll: 10 * time.Millisecond, MaxPoll: 80 * time.Millisecond, Window: &window{perMin: 10},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Release(context.Background()) })

	const waited = time.Second
	ctx, cancel := context.WithTimeout(t.Context(), waited)
	defer cancel()
	var we *ha.AllowanceWaitError
	if err := b.Acquire(ctx); !errors.As(err, &we) || we.Holder != "a#1" {
		t.Fatalf("b: acquire while a holds it: got %v, want an AllowanceWaitError naming a#1", err)
	}
	// Sleeps of 10, 20, 40 and then 80 ms between reads: at most 1 + 3 +
	// (1000-70)/80 = 15 reads in a second (a fixed 10 ms poll: 100).
	if got := cv.count(); got > 15 || got < 2 {
		t.Errorf("b read the allowance %d times while waiting %s, want 2 to 15", got, waited)
	}

	got := make(chan error, 1)
	go func() { got <- b.Acquire(t.Context()) }()
	time.Sleep(300 * time.Millisecond) // b is at its longest wait by now
	if err := a.Release(t.Context()); err != nil {
		t.Fatalf("a: release: %v", err)
	}
	select {
	case err := <-got:
		if err != nil || !b.Held() {
			t.Fatalf("b: acquire after a's release: %v, held %v", err, b.Held())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("b did not take the allowance after a's release")
	}
}

// conflictOnce answers the first write with a check-and-set conflict
// (another rotator wrote first), writing nothing.
type conflictOnce struct {
	ha.Vault
	mu   sync.Mutex
	done bool
}

func (c *conflictOnce) WriteDoc(ctx context.Context, mount, path string, in any, cas int) (int, error) {
	c.mu.Lock()
	first := !c.done
	c.done = true
	c.mu.Unlock()
	if first {
		return 0, vault.ErrConflict
	}
	return c.Vault.WriteDoc(ctx, mount, path, in, cas)
}

// An Acquire whose take loses a check-and-set race reads again: it
// returns only once it holds the allowance.
func TestAllowanceLostRaceReadsAgain(t *testing.T) {
	e := newAllowanceEnv(t)
	a, err := ha.NewAllowance(ha.AllowanceOptions{
		Vault: &conflictOnce{Vault: e.vault}, Mount: "secret", Path: e.path, Identity: "a#1", TTL: time.Minute,
		Poll: 10 * time.Millisecond, Window: &window{perMin: 16},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Release(context.Background()) })
	if err := a.Acquire(t.Context()); err != nil || !a.Held() {
		t.Fatalf("acquire after a lost race: got %v, held %v; want nil and held", err, a.Held())
	}
}

// A holder whose lease ran short takes it back from itself: it writes its
// own send times (none of its starts since its last write goes unlisted)
// and does not seed its limiter again from the holder before it.
func TestAllowanceTakenBackFromItself(t *testing.T) {
	e := newAllowanceEnv(t)
	now, advance := e.manualClock()
	const ttl = time.Minute
	wb := &window{sent: []time.Time{now.Add(-5 * time.Second)}, perMin: 16}
	wa := &window{perMin: 16} // budget 2
	b := e.allowance(t, "b#2", wb, ttl)
	a := e.allowance(t, "a#1", wa, ttl)
	if err := b.Acquire(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := b.Release(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := a.Acquire(t.Context()); err != nil { // from b: seeded once
		t.Fatal(err)
	}
	send := func(n int) {
		t.Helper()
		for range n {
			if err := a.Acquire(t.Context()); err != nil {
				t.Fatal(err)
			}
			if !a.Start() {
				t.Fatal("a: Start refused a request after Acquire")
			}
			wa.mu.Lock()
			wa.sent = append(wa.sent, e.clock())
			wa.mu.Unlock()
		}
	}
	// No renewal reaches Vault (the fake clock runs ahead of the renewal
	// goroutine's real one): with a sixth of the lease left a stops, and
	// takes it back from itself, before it wrote the document once.
	runShort := func() {
		t.Helper()
		advance(ttl - ttl/6)
		if a.Held() {
			t.Fatal("a holds the allowance with a sixth of its lease left")
		}
	}
	runShort()
	send(4) // the take-back, then a budget write after two starts
	if got := len(wa.seeded()); got != 1 {
		t.Errorf("a seeded its limiter %d times, want once (from b; not again when taking it back from itself)", got)
	}
	runShort()
	send(2) // the take-back with two starts unlisted, then two more
	// a dies; c takes over when the lease has run out: it must count all
	// of a's six starts (listed, or its budget of unlisted ones).
	advance(2 * ttl)
	wc := &window{perMin: 16}
	c := e.allowance(t, "c#3", wc, ttl)
	if err := c.Acquire(t.Context()); err != nil {
		t.Fatal(err)
	}
	seeds := wc.seeded()
	if len(seeds) != 1 {
		t.Fatalf("c seeded %d times, want once", len(seeds))
	}
	aSent := 0
	for _, s := range seeds[0] {
		if !s.Before(wa.sent[0]) { // b's send is older than all of a's
			aSent++
		}
	}
	if aSent < 6 {
		t.Errorf("c counts %d of a's requests, want at least the 6 a sent", aSent)
	}
}

// A dead holder stopped sending a sixth of its own lease_ttl before its
// lease's end: a successor configured with a longer TTL counts its unknown
// requests at that later instant, not at a sixth of its own.
func TestAllowanceDeadHolderStopsByItsOwnTTL(t *testing.T) {
	e := newAllowanceEnv(t)
	now, advance := e.manualClock()
	a := e.allowance(t, "a#1", &window{perMin: 16}, 30*time.Second)
	if err := a.Acquire(t.Context()); err != nil {
		t.Fatal(err)
	}
	expires := now.Add(30 * time.Second)
	advance(31 * time.Second) // a died; its lease ran out
	wb := &window{perMin: 16}
	b := e.allowance(t, "b#2", wb, 2*time.Minute)
	if err := b.Acquire(t.Context()); err != nil {
		t.Fatal(err)
	}
	seeds := wb.seeded()
	if len(seeds) != 1 || len(seeds[0]) != 2 {
		t.Fatalf("b seeded %v, want once with a's budget of 2", seeds)
	}
	if at := expires.Add(-5 * time.Second).Add(time.Second); !seeds[0][0].Equal(at) {
		t.Errorf("b counts a's unknown requests at %s, want %s (a's TTL of 30s / 6 before its end, plus the skew)", seeds[0][0], at)
	}
}
