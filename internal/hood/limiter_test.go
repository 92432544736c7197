package hood

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeLimiter returns a limiter on a FakeClock starting at t0.
func fakeLimiter(burst, perLong int, short, long, margin time.Duration) (*Limiter, *FakeClock, time.Time) {
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	fc := NewFakeClock(t0)
	l := newLimiter(burst, perLong, short, long, margin)
	l.now, l.sleep = fc.Now, fc.Sleep
	return l, fc, t0
}

// startTimes calls Wait n times and returns when each call was let through.
func startTimes(t *testing.T, l *Limiter, fc *FakeClock, n int) []time.Time {
	t.Helper()
	out := make([]time.Time, 0, n)
	for i := range n {
		if err := l.Wait(context.Background()); err != nil {
			t.Fatalf("Wait #%d: got error %v, want nil", i+1, err)
		}
		out = append(out, fc.Now())
	}
	return out
}

func TestLimiterBurstWindow(t *testing.T) {
	l, fc, t0 := fakeLimiter(10, 150, time.Second, time.Minute, 25*time.Millisecond)
	starts := startTimes(t, l, fc, 11)
	for i, s := range starts[:10] {
		if !s.Equal(t0) {
			t.Errorf("start #%d: got t0+%v, want t0 (no wait)", i+1, s.Sub(t0))
		}
	}
	// The 11th waits until the first leaves the 1s+25ms window.
	if got, want := starts[10].Sub(t0), time.Second+25*time.Millisecond; got != want {
		t.Errorf("start #11: got t0+%v, want t0+%v", got, want)
	}
	if got, want := fc.Sleeps(), []time.Duration{time.Second + 25*time.Millisecond}; !slices.Equal(got, want) {
		t.Errorf("sleeps: got %v, want %v", got, want)
	}
}

func TestLimiterLongWindow(t *testing.T) {
	const margin = 25 * time.Millisecond
	l, fc, t0 := fakeLimiter(10, 15, time.Second, time.Minute, margin)
	starts := startTimes(t, l, fc, 17)
	tests := []struct {
		n    int // 1-based start number
		want time.Duration
	}{
		{1, 0}, {10, 0},
		{11, time.Second + margin}, {15, time.Second + margin}, // burst window slid, long window has room
		{16, time.Minute + margin}, // long window full until the first 10 leave
		{17, time.Minute + margin}, // ten left at once, so the burst allows it
	}
	for _, tt := range tests {
		if got := starts[tt.n-1].Sub(t0); got != tt.want {
			t.Errorf("start #%d: got t0+%v, want t0+%v", tt.n, got, tt.want)
		}
	}
}

// TestLimiterNeverExceedsWindows drives the limiter with an irregular
// demand and checks every start against both windows, and that the
// allowance is fully used.
func TestLimiterNeverExceedsWindows(t *testing.T) {
	const (
		burst, perLong = 5, 12
		short, long    = 100 * time.Millisecond, time.Second
		margin         = 5 * time.Millisecond
	)
	l, fc, t0 := fakeLimiter(burst, perLong, short, long, margin)
	var starts []time.Time
	for i := range 60 {
		if i%7 == 3 { // idle now and then
			_ = fc.Sleep(context.Background(), time.Duration(i)*3*time.Millisecond)
		}
		if err := l.Wait(context.Background()); err != nil {
			t.Fatalf("Wait: got %v, want nil", err)
		}
		starts = append(starts, fc.Now())
	}
	for i, s := range starts {
		var inShort, inLong int
		for _, p := range starts[:i] {
			if p.After(s.Add(-short - margin)) {
				inShort++
			}
			if p.After(s.Add(-long - margin)) {
				inLong++
			}
		}
		if inShort >= burst {
			t.Errorf("start #%d at t0+%v: got %d earlier starts in the short window, want < %d", i+1, s.Sub(t0), inShort, burst)
		}
		if inLong >= perLong {
			t.Errorf("start #%d at t0+%v: got %d earlier starts in the long window, want < %d", i+1, s.Sub(t0), inLong, perLong)
		}
	}
	// 60 starts at 12 per 1.005s need at least 4 full long windows and no more
	// than about 5 (the idle pauses add a little).
	if got := starts[len(starts)-1].Sub(t0); got < 4*(long+margin) || got > 5*(long+margin)+time.Second {
		t.Errorf("60 starts took t0+%v, want between %v and %v", got, 4*(long+margin), 5*(long+margin)+time.Second)
	}
}

func TestLimiterHold(t *testing.T) {
	l, fc, t0 := fakeLimiter(10, 150, time.Second, time.Minute, 0)
	l.holdUntil(t0.Add(3*time.Second), "test")
	l.holdUntil(t0.Add(time.Second), "test") // an earlier hold does not shorten it
	starts := startTimes(t, l, fc, 1)
	if got, want := starts[0].Sub(t0), 3*time.Second; got != want {
		t.Errorf("start after hold: got t0+%v, want t0+%v", got, want)
	}
}

func TestLimiterWaitEndsWithContext(t *testing.T) {
	tests := []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 20*time.Millisecond)
		}, context.DeadlineExceeded},
		{"canceled", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLimiter(1, 10, time.Hour, time.Hour, 0) // real clock
			if err := l.Wait(context.Background()); err != nil {
				t.Fatalf("first Wait: got %v, want nil", err)
			}
			ctx, cancel := tt.ctx()
			defer cancel()
			if err := l.Wait(ctx); !errors.Is(err, tt.want) {
				t.Errorf("second Wait: got %v, want %v", err, tt.want)
			}
			l.mu.Lock()
			n := len(l.starts)
			l.mu.Unlock()
			if n != 1 {
				t.Errorf("recorded starts: got %d, want 1 (a failed Wait records none)", n)
			}
		})
	}
}

// TestLimiterInFlightCountsUntilDone checks that a request sent through
// acquire stays inside every window while in flight and then counts from
// when it was done, not from when it was let through.
func TestLimiterInFlightCountsUntilDone(t *testing.T) {
	const short = 100 * time.Millisecond
	l, fc, t0 := fakeLimiter(2, 100, short, time.Hour, 0)
	ctx := context.Background()
	a, err := l.acquire(ctx)
	if err != nil {
		t.Fatalf("acquire a: %v", err)
	}
	if _, err := l.acquire(ctx); err != nil {
		t.Fatalf("acquire b: %v", err)
	}
	if d, _, _ := l.reserve(false); d != blocked {
		t.Fatalf("reserve with 2 in flight: got %v, want blocked", d)
	}

	started := make(chan time.Time)
	go func() {
		if err := l.Wait(ctx); err != nil {
			t.Errorf("Wait: got %v, want nil", err)
		}
		started <- fc.Now()
	}()
	_ = fc.Sleep(ctx, 250*time.Millisecond) // a is answered 250ms after it was let through
	l.done(a)
	if got, want := (<-started).Sub(t0), 250*time.Millisecond+short; got != want {
		t.Errorf("third start: got t0+%v, want t0+%v (a's answer + window)", got, want)
	}
}

func TestLimiterDoneUnknownIDIgnored(t *testing.T) {
	l, fc, t0 := fakeLimiter(1, 10, time.Second, time.Hour, 0)
	l.done(42) // never acquired: no effect, no panic
	starts := startTimes(t, l, fc, 2)
	if got, want := starts[1].Sub(t0), time.Second; got != want {
		t.Errorf("second start: got t0+%v, want t0+%v", got, want)
	}
}

func TestLimiterHoldPastDeadlineFailsAtOnce(t *testing.T) {
	l := newLimiter(10, 150, time.Second, time.Minute, 0) // real clock
	until := time.Now().Add(time.Hour)
	l.holdUntil(until, "Hood answered 429 with Retry-After 1h0m0s to GET integration 7")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Waiting would last until the deadline and end with DeadlineExceeded.
	err := l.Wait(ctx)
	var he *HoldError
	if !errors.As(err, &he) {
		t.Fatalf("Wait: got %v, want a *HoldError", err)
	}
	if !he.Until.Equal(until) || !strings.Contains(he.Why, "Retry-After 1h0m0s") {
		t.Errorf("HoldError: got until %v why %q, want until %v and the hold's reason", he.Until, he.Why, until)
	}
	if !errors.Is(err, ErrNotSent) || MayHaveLanded(err) {
		t.Errorf("HoldError %v: got errors.Is(ErrNotSent) %v, MayHaveLanded %v; want true, false", err, errors.Is(err, ErrNotSent), MayHaveLanded(err))
	}
	l.mu.Lock()
	n := len(l.starts)
	l.mu.Unlock()
	if n != 0 {
		t.Errorf("recorded starts: got %d, want 0", n)
	}
}

func TestLimiterHoldWithinDeadlineWaits(t *testing.T) {
	l, fc, t0 := fakeLimiter(10, 150, time.Second, time.Minute, 0)
	l.holdUntil(t0.Add(3*time.Second), "test")
	// The fake clock's t0 is in the past, so the deadline is a real-time
	// one far ahead: the hold lifts first and the request waits for it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if err := l.Wait(ctx); err != nil {
		t.Fatalf("Wait: got %v, want nil", err)
	}
	if got, want := fc.Now().Sub(t0), 3*time.Second; got != want {
		t.Errorf("start: got t0+%v, want t0+%v", got, want)
	}
}

func TestLimiterSetLimitsKeepsStartsAndHold(t *testing.T) {
	const ns = time.Nanosecond
	tests := []struct {
		name   string
		hold   time.Duration // from t0, 0 = none
		limits Limits
		want   []time.Duration // when the next starts are let through
	}{
		{"burst raised", 0, Limits{Burst: 3, PerMinute: 150, Window: time.Second, LongWindow: time.Minute, Margin: ns},
			[]time.Duration{0, time.Second + ns}},
		{"burst lowered", 0, Limits{Burst: 1, PerMinute: 150, Window: time.Second, LongWindow: time.Minute, Margin: ns},
			[]time.Duration{time.Second + ns, 2*time.Second + 2*ns}},
		{"per minute lowered", 0, Limits{Burst: 10, PerMinute: 3, Window: time.Second, LongWindow: time.Minute, Margin: ns},
			[]time.Duration{0, time.Minute + ns}},
		{"hold kept", 5 * time.Second, Limits{Burst: 10, PerMinute: 150, Window: time.Second, LongWindow: time.Minute, Margin: ns},
			[]time.Duration{5 * time.Second, 5 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, fc, t0 := fakeLimiter(2, 150, time.Second, time.Minute, 0)
			startTimes(t, l, fc, 2) // both windows now hold two starts at t0
			if tt.hold > 0 {
				l.holdUntil(t0.Add(tt.hold), "test")
			}
			if err := l.SetLimits(tt.limits); err != nil {
				t.Fatalf("SetLimits: got %v, want nil", err)
			}
			for i, s := range startTimes(t, l, fc, len(tt.want)) {
				if got := s.Sub(t0); got != tt.want[i] {
					t.Errorf("start #%d after SetLimits: got t0+%v, want t0+%v", i+1, got, tt.want[i])
				}
			}
		})
	}
}

func TestLimitsRejectNegative(t *testing.T) {
	tests := []struct {
		limits Limits
		want   string
	}{
		{Limits{Burst: -1}, "negative burst -1"},
		{Limits{PerMinute: -2}, "negative per minute -2"},
		{Limits{Window: -time.Second}, "negative window -1s"},
		{Limits{LongWindow: -time.Second}, "negative long window -1s"},
		{Limits{Margin: -time.Millisecond}, "negative margin -1ms"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			l := newLimiter(1, 1, time.Second, time.Minute, 0)
			for name, err := range map[string]error{"SetLimits": l.SetLimits(tt.limits), "NewLimiter": func() error { _, err := NewLimiter(tt.limits); return err }()} {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s(%+v): got %v, want an error saying %q", name, tt.limits, err, tt.want)
				}
			}
		})
	}
}

func TestLimitersOnePerHost(t *testing.T) {
	ls := NewLimiters()
	first, err := ls.For("https://api.ocamba.com", Limits{Burst: 5, PerMinute: 150})
	if err != nil {
		t.Fatalf("For: got %v, want nil", err)
	}
	tests := []struct {
		url  string
		same bool
	}{
		{"https://API.Ocamba.com/", true},
		{"https://api.ocamba.com:443/prefix", true},
		{"http://api.ocamba.com", false},
		{"https://api.ocamba.com:8443", false},
		{"https://other.example", false},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			l, err := ls.For(tt.url, Limits{Burst: 10, PerMinute: 150})
			if err != nil {
				t.Fatalf("For(%s): got %v, want nil", tt.url, err)
			}
			if got := l == first; got != tt.same {
				t.Errorf("For(%s) is the limiter of https://api.ocamba.com: got %v, want %v", tt.url, got, tt.same)
			}
		})
	}
	if first.burst != 5 {
		t.Errorf("burst after a second For with other limits: got %d, want 5 (For never changes limits)", first.burst)
	}
	for _, bad := range []struct{ url, want string }{
		{"ftp://api.ocamba.com", "scheme"},
		{"", "empty"},
	} {
		if _, err := ls.For(bad.url, Limits{Burst: 10, PerMinute: 150}); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("For(%q): got %v, want an error saying %q", bad.url, err, bad.want)
		}
	}
	if _, err := ls.For("https://api.ocamba.com", Limits{Burst: -1}); err == nil {
		t.Errorf("For with a negative burst: got nil, want an error")
	}
}

func TestLimitsRequireBurstAndPerMinute(t *testing.T) {
	for _, lim := range []Limits{{}, {Burst: 10}, {PerMinute: 150}} {
		if _, err := NewLimiter(lim); err == nil || !strings.Contains(err.Error(), "burst and per minute are required") {
			t.Errorf("NewLimiter(%+v): got %v, want an error saying burst and per minute are required", lim, err)
		}
	}
	l, err := NewLimiter(Limits{Burst: 10, PerMinute: 150})
	if err != nil {
		t.Fatalf("NewLimiter: got %v, want nil", err)
	}
	if want := DefaultWindow + DefaultMargin; l.short != want {
		t.Errorf("short window with margin: got %v, want %v", l.short, want)
	}
	if want := DefaultLongWindow + DefaultMargin; l.long != want {
		t.Errorf("long window with margin: got %v, want %v", l.long, want)
	}
}

// budgetGate lets budget starts through per Acquire that "writes" (a
// holder's budget, ha.Allowance), and counts what it was asked.
type budgetGate struct {
	mu               sync.Mutex
	budget, left     int
	starts, acquires int
	refused          int
}

func (g *budgetGate) Acquire(context.Context) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.acquires++
	if g.left == 0 {
		g.left = g.budget // the write: a new budget
	}
	return nil
}

func (g *budgetGate) Start() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.left == 0 {
		g.refused++
		return false
	}
	g.left--
	g.starts++
	return true
}

// TestLimiterGateCountsEveryStart: with many requests waiting at once, the
// limiter records a start only when the gate's Start let it through, and a
// refused Start sends the request back to Acquire: the gate knows every
// start (ha.Allowance's budget is exact).
func TestLimiterGateCountsEveryStart(t *testing.T) {
	l := newLimiter(1000, 1000, time.Second, time.Minute, 0) // real clock, windows out of the way
	g := &budgetGate{budget: 3}
	l.SetGate(g)
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			id, err := l.acquire(t.Context())
			if err == nil {
				l.done(id)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("acquire: %v", err)
		}
	}
	if got := len(l.Sent()); got != n || g.starts != n {
		t.Errorf("starts recorded %d, let through by the gate %d, want %d and %d", got, g.starts, n, n)
	}
	if least := n / g.budget; g.acquires < least {
		t.Errorf("the gate was acquired %d times, want at least %d (one budget of %d per acquire)", g.acquires, least, g.budget)
	}
}
