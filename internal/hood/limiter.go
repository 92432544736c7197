package hood

import (
	"context"
	"slices"
	"sync"
	"time"
)

// limiter is a sliding-window log limiter that honours two windows at once.
// A request may start at time t only if fewer than burst requests started in
// (t-short, t] and fewer than perLong started in (t-long, t], where short and
// long already include the safety margin. Unlike a token bucket it never lets
// a burst follow a full long window early, so a long pass can use the whole
// allowance without drawing a 429 from a server that enforces the same
// windows strictly.
//
// A server counts a request when it arrives, which is some time after the
// client let it go. The client therefore records a request it sends through
// acquire as in flight (inside every window) until done, and then as started
// when its answer came (or it failed): no later than that can the server have
// seen it. Network delays then can never squeeze more requests into a server
// window than the limits allow; Margin covers whatever else remains (clock
// granularity, a server counting slightly differently).
//
// A limiter is safe for concurrent use.
type limiter struct {
	burst   int
	perLong int
	short   time.Duration
	long    time.Duration

	now   func() time.Time
	sleep func(context.Context, time.Duration) error

	mu      sync.Mutex
	starts  []start       // recorded starts: finished ones inside the long window, and in-flight ones
	hold    time.Time     // no request starts before this instant (a server's Retry-After)
	nextID  uint64        // id of the next start
	changed chan struct{} // closed and replaced when an in-flight request is done
}

// start is one recorded request start.
type start struct {
	t        time.Time // when it started; unused while in flight
	id       uint64
	inFlight bool
}

// blocked is what reserve returns when only the end of an in-flight
// request can let the next one start.
const blocked = time.Duration(-1)

// newLimiter returns a limiter allowing burst starts per short window and
// perLong per long window, both windows widened by margin, on the real clock.
func newLimiter(burst, perLong int, short, long, margin time.Duration) *limiter {
	return &limiter{
		burst:   burst,
		perLong: perLong,
		short:   short + margin,
		long:    long + margin,
		now:     time.Now,
		sleep:   sleepCtx,
		changed: make(chan struct{}),
	}
}

// Wait blocks until a request may start and records its start now. It
// returns ctx.Err() if the context ends first; no start is recorded then.
func (l *limiter) Wait(ctx context.Context) error {
	_, err := l.wait(ctx, false)
	return err
}

// acquire is Wait for a request about to be sent: the start is recorded as
// in flight and its id must be passed to done once the request is over.
func (l *limiter) acquire(ctx context.Context) (uint64, error) {
	return l.wait(ctx, true)
}

func (l *limiter) wait(ctx context.Context, inFlight bool) (uint64, error) {
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		d, id, changed := l.reserve(inFlight)
		switch {
		case d == 0:
			return id, nil
		case d == blocked:
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-changed:
			}
		default:
			if err := l.sleep(ctx, d); err != nil {
				return 0, err
			}
		}
	}
}

// done records that the in-flight request id is over: it counts from now on
// as started now, the latest moment the server can have received it.
func (l *limiter) done(id uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := slices.IndexFunc(l.starts, func(s start) bool { return s.id == id && s.inFlight })
	if i < 0 {
		return
	}
	l.starts[i] = start{t: l.now(), id: id}
	close(l.changed)
	l.changed = make(chan struct{})
}

// reserve records a start now and returns 0 and its id if one is allowed.
// Otherwise it records nothing and returns how long to wait before asking
// again, or blocked and a channel closed when an in-flight request ends.
func (l *limiter) reserve(inFlight bool) (time.Duration, uint64, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()

	t := l.now()

	// Forget finished starts that left the long window: e <= t-long.
	l.starts = slices.DeleteFunc(l.starts, func(s start) bool {
		return !s.inFlight && !s.t.After(t.Add(-l.long))
	})

	// Starts oldest first; in-flight requests count as starting now, after
	// every finished one, so they are inside every window.
	eff := slices.Clone(l.starts)
	slices.SortStableFunc(eff, func(a, b start) int {
		switch {
		case a.inFlight && b.inFlight:
			return 0
		case a.inFlight:
			return 1
		case b.inFlight:
			return -1
		}
		return a.t.Compare(b.t)
	})

	var until time.Time
	if t.Before(l.hold) {
		until = l.hold
	}
	// The k-th most recent start must leave a window of length w before a
	// new one fits; if that start is in flight, only its end can tell when.
	need := func(k int, w time.Duration) bool {
		n := len(eff)
		if k <= 0 || n < k {
			return true
		}
		e := eff[n-k]
		if e.inFlight {
			return false
		}
		if leave := e.t.Add(w); leave.After(t) && leave.After(until) {
			until = leave
		}
		return true
	}
	if !need(l.perLong, l.long) || !need(l.burst, l.short) {
		return blocked, 0, l.changed
	}
	if until.After(t) {
		return until.Sub(t), 0, nil
	}
	l.nextID++
	l.starts = append(l.starts, start{t: t, id: l.nextID, inFlight: inFlight})
	return 0, l.nextID, nil
}

// holdUntil keeps every request from starting before t, e.g. when the server
// asked for a pause with Retry-After.
func (l *limiter) holdUntil(t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t.After(l.hold) {
		l.hold = t
	}
}

// sleepCtx waits for d or until ctx ends, whichever comes first, and returns
// ctx.Err() in the latter case.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-tm.C:
		return nil
	}
}
