package hood

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Limiter is a sliding-window log limiter that honours two windows at once.
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
// Hood's limits are per account, so one Limiter must pace every Hood
// request of the process: clients share it through Options.Limiter (see
// Limiters), and SetLimits changes its limits in place, keeping the
// requests it has seen and any hold.
//
// A Limiter is safe for concurrent use.
type Limiter struct {
	burst   int
	perLong int
	short   time.Duration
	long    time.Duration

	now   func() time.Time
	sleep func(context.Context, time.Duration) error

	mu      sync.Mutex
	gate    Gate          // asked before every start; nil: none
	starts  []start       // recorded starts: finished ones inside the long window, and in-flight ones
	hold    time.Time     // no request starts before this instant (a server's Retry-After)
	holdWhy string        // why: the answer that asked for the hold
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
// request can let the next one start; gateAgain when the gate's Start said
// no (the request asks its Acquire again).
const (
	blocked   = time.Duration(-1)
	gateAgain = time.Duration(-2)
)

// Limits are a Limiter's windows. Burst and PerMinute are required; zero
// windows and margin take the defaults named; negative values are errors.
type Limits struct {
	Burst      int           // requests allowed in any Window; required
	PerMinute  int           // requests allowed in any LongWindow; required
	Window     time.Duration // default 1s
	LongWindow time.Duration // default 1m
	Margin     time.Duration // safety margin added to both windows; default 25ms
}

// withDefaults checks l and fills in the defaults.
func (l Limits) withDefaults() (Limits, error) {
	var bad []string
	if l.Burst < 0 {
		bad = append(bad, fmt.Sprintf("burst %d", l.Burst))
	}
	if l.PerMinute < 0 {
		bad = append(bad, fmt.Sprintf("per minute %d", l.PerMinute))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"window", l.Window}, {"long window", l.LongWindow}, {"margin", l.Margin}} {
		if d.v < 0 {
			bad = append(bad, fmt.Sprintf("%s %s", d.name, d.v))
		}
	}
	if len(bad) > 0 {
		return Limits{}, fmt.Errorf("check hood rate limits: negative %s", strings.Join(bad, ", negative "))
	}
	if l.Burst == 0 || l.PerMinute == 0 {
		return Limits{}, errors.New("check hood rate limits: burst and per minute are required")
	}
	l.Window = orDuration(l.Window, DefaultWindow)
	l.LongWindow = orDuration(l.LongWindow, DefaultLongWindow)
	l.Margin = orDuration(l.Margin, DefaultMargin)
	return l, nil
}

// NewLimiter returns a Limiter with the given limits, on the real clock.
func NewLimiter(lim Limits) (*Limiter, error) {
	lim, err := lim.withDefaults()
	if err != nil {
		return nil, err
	}
	return newLimiter(lim.Burst, lim.PerMinute, lim.Window, lim.LongWindow, lim.Margin), nil
}

// SetLimits changes the limits in place: the requests already counted and
// any hold are kept, so a new configuration cannot let a burst through
// that the windows of the old one would have held back.
func (l *Limiter) SetLimits(lim Limits) error {
	lim, err := lim.withDefaults()
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.burst, l.perLong = lim.Burst, lim.PerMinute
	l.short, l.long = lim.Window+lim.Margin, lim.LongWindow+lim.Margin
	// Wake the waiters blocked by in-flight requests: the new limits may
	// let them start.
	close(l.changed)
	l.changed = make(chan struct{})
	return nil
}

// newLimiter returns a limiter allowing burst starts per short window and
// perLong per long window, both windows widened by margin, on the real clock.
func newLimiter(burst, perLong int, short, long, margin time.Duration) *Limiter {
	return &Limiter{
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
// returns ctx.Err() if the context ends first, and at once a *HoldError if
// a hold lasts past the context's deadline; no start is recorded then.
func (l *Limiter) Wait(ctx context.Context) error {
	_, err := l.wait(ctx, false)
	return err
}

// acquire is Wait for a request about to be sent: the start is recorded as
// in flight and its id must be passed to done once the request is over.
func (l *Limiter) acquire(ctx context.Context) (uint64, error) {
	return l.wait(ctx, true)
}

func (l *Limiter) wait(ctx context.Context, inFlight bool) (uint64, error) {
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if dl, ok := ctx.Deadline(); ok {
			if err := l.outlasts(dl); err != nil {
				return 0, err
			}
		}
		if err := l.askGate(ctx); err != nil {
			return 0, err
		}
		d, id, changed := l.reserve(inFlight)
		switch d {
		case 0:
			return id, nil
		case gateAgain:
			continue // the gate's Acquire waits, or writes, first
		case blocked:
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

// Gate decides whether this process may send Hood requests at all: with
// several rotators sharing one Hood account (ha.mode vault), the one that
// holds the fleet's allowance (ha.Allowance). A Limiter asks its Gate before
// every start, and then paces the request as usual.
type Gate interface {
	// Acquire returns nil at once when this process may send, else waits
	// until it may, or fails (ctx ended, the gate cannot be reached).
	Acquire(ctx context.Context) error
	// Start is asked, with the limiter's lock held, in the step that
	// records a request start the windows allow: true counts the start,
	// false sends the request back to Acquire. So the gate knows every
	// start it let through, however many requests wait at once. It must
	// not call the limiter.
	Start() bool
}

// SetGate makes the limiter ask g before every request start; nil removes
// the gate.
func (l *Limiter) SetGate(g Gate) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.gate = g
}

// askGate waits for the gate, if any.
func (l *Limiter) askGate(ctx context.Context) error {
	l.mu.Lock()
	g := l.gate
	l.mu.Unlock()
	if g == nil {
		return nil
	}
	if err := g.Acquire(ctx); err != nil {
		return fmt.Errorf("wait for the hood allowance: %w", err)
	}
	return nil
}

// Sent returns the starts the limiter counts in its long window, oldest
// first: finished requests at the time they were recorded, in-flight ones
// as now. A rotator that hands the fleet's allowance over passes them on
// (ha.Allowance).
func (l *Limiter) Sent() []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.now()
	out := make([]time.Time, 0, len(l.starts))
	for _, s := range l.starts {
		switch {
		case s.inFlight:
			out = append(out, t)
		case s.t.After(t.Add(-l.long)):
			out = append(out, s.t)
		}
	}
	slices.SortFunc(out, time.Time.Compare)
	return out
}

// Seed replaces the finished starts the limiter counts with sent (those
// still inside the long window): the requests another rotator made before
// it handed the fleet's allowance over. In-flight starts and any hold are
// kept.
func (l *Limiter) Seed(sent []time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.now()
	kept := slices.DeleteFunc(l.starts, func(s start) bool { return !s.inFlight })
	for _, e := range sent {
		if e.After(t.Add(-l.long)) {
			l.nextID++
			kept = append(kept, start{t: e, id: l.nextID})
		}
	}
	l.starts = kept
}

// Capacity is the number of requests the long window allows.
func (l *Limiter) Capacity() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.perLong
}

// done records that the in-flight request id is over: it counts from now on
// as started now, the latest moment the server can have received it.
func (l *Limiter) done(id uint64) {
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
func (l *Limiter) reserve(inFlight bool) (time.Duration, uint64, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.now()
	if d, changed := l.roomLocked(t); d != 0 {
		return d, 0, changed
	}
	if l.gate != nil && !l.gate.Start() {
		return gateAgain, 0, nil
	}
	l.nextID++
	l.starts = append(l.starts, start{t: t, id: l.nextID, inFlight: inFlight})
	return 0, l.nextID, nil
}

// roomLocked returns 0 when a request may start at t, else how long to
// wait, or blocked and a channel closed when an in-flight request ends.
// It forgets the finished starts that left the long window. l.mu is held.
func (l *Limiter) roomLocked(t time.Time) (time.Duration, <-chan struct{}) {
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
		return blocked, l.changed
	}
	if until.After(t) {
		return until.Sub(t), nil
	}
	return 0, nil
}

// outlasts returns a *HoldError if the hold lifts no earlier than deadline:
// a request that must start before then cannot wait for it.
func (l *Limiter) outlasts(deadline time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.now().Before(l.hold) || deadline.After(l.hold) {
		return nil
	}
	return &HoldError{Until: l.hold, Why: l.holdWhy, Deadline: deadline}
}

// holdUntil keeps every request from starting before t, e.g. when the server
// asked for a pause with Retry-After; why says what asked for it. An
// earlier t than the hold in force changes nothing; the result says whether
// the hold was extended.
func (l *Limiter) holdUntil(t time.Time, why string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !t.After(l.hold) {
		return false
	}
	l.hold, l.holdWhy = t, why
	return true
}

// holdFor is holdUntil for d from now on the limiter's clock; it returns
// the end of the hold in force.
func (l *Limiter) holdFor(d time.Duration, why string) (time.Time, bool) {
	until := l.now().Add(d)
	extended := l.holdUntil(until, why)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hold, extended
}

// HoldError is the error of a request that was not sent because every Hood
// request is held (Hood answered 429 with Retry-After) until after the
// request's deadline: it fails at once instead of waiting in vain. When no
// earlier attempt was sent it wraps ErrNotSent (Hood never saw it);
// otherwise it wraps Last, the previous attempt's error.
type HoldError struct {
	Until    time.Time // when the hold lifts
	Why      string    // what asked for the hold
	Deadline time.Time // the request's deadline, no later than Until
	Method   string    // HTTP method of the request; empty from Limiter.Wait
	ID       string    // integration id of the request
	Last     error     // the previous attempt's error; nil when nothing was sent
}

func (e *HoldError) Error() string {
	var b strings.Builder
	if e.Method != "" || e.ID != "" {
		fmt.Fprintf(&b, "%s integration %s: ", e.Method, e.ID)
	}
	fmt.Fprintf(&b, "every Hood request is held until %s", stampMillis(e.Until))
	if e.Why != "" {
		fmt.Fprintf(&b, " (%s)", e.Why)
	}
	fmt.Fprintf(&b, ", past this request's deadline %s", stampMillis(e.Deadline))
	if e.Last == nil {
		b.WriteString(": " + ErrNotSent.Error())
	} else {
		fmt.Fprintf(&b, ": retry not sent (last error: %v)", e.Last)
	}
	return b.String()
}

// Unwrap returns ErrNotSent, or Last when an earlier attempt was sent.
func (e *HoldError) Unwrap() error {
	if e.Last != nil {
		return e.Last
	}
	return ErrNotSent
}

// stampMillis formats t for errors: UTC, to the millisecond.
func stampMillis(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

// Limiters hands out one Limiter per Hood host for the life of a process,
// so that every client built for that host (a reload builds new ones)
// shares the windows and the hold. A Limiters is safe for concurrent use.
type Limiters struct {
	mu     sync.Mutex
	byHost map[string]*Limiter
}

// NewLimiters returns an empty registry.
func NewLimiters() *Limiters {
	return &Limiters{byHost: map[string]*Limiter{}}
}

// For returns the Limiter of baseURL's host (scheme, host and port; the
// path does not matter), created with lim if there is none yet. The limits
// of an existing Limiter are not changed: call SetLimits when the
// configuration that names them takes effect. lim is checked either way.
func (ls *Limiters) For(baseURL string, lim Limits) (*Limiter, error) {
	if _, err := lim.withDefaults(); err != nil {
		return nil, err
	}
	key, err := hostKey(baseURL)
	if err != nil {
		return nil, err
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if l, ok := ls.byHost[key]; ok {
		return l, nil
	}
	l, err := NewLimiter(lim)
	if err != nil {
		return nil, err
	}
	ls.byHost[key] = l
	return l, nil
}

// hostKey is the normalised scheme://host:port of a base URL.
func hostKey(baseURL string) (string, error) {
	u, err := parseBaseURL(baseURL)
	if err != nil {
		return "", err
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host + ":" + port, nil
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
