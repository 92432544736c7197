package hood

import (
	"context"
	"sync"
	"time"
)

// This file gives the external tests (package hood_test) access to the
// client's unexported time hooks.

// ParseRetryAfter exposes parseRetryAfter.
var ParseRetryAfter = parseRetryAfter

// FakeClock is a manual clock: Sleep advances it at once and records the wait.
type FakeClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps []time.Duration
}

// NewFakeClock returns a FakeClock reading start.
func NewFakeClock(start time.Time) *FakeClock { return &FakeClock{t: start} }

// Now returns the clock's time.
func (f *FakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

// Sleep advances the clock by d, unless ctx has ended.
func (f *FakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
	f.sleeps = append(f.sleeps, d)
	return nil
}

// Sleeps returns every wait recorded so far.
func (f *FakeClock) Sleeps() []time.Duration {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Duration(nil), f.sleeps...)
}

// UseClock makes c (its retries and its rate limiter) run on fc.
func UseClock(c *Client, fc *FakeClock) {
	c.now, c.sleep = fc.Now, fc.Sleep
	c.lim.now, c.lim.sleep = fc.Now, fc.Sleep
}

// SetJitter replaces c's full-jitter function.
func SetJitter(c *Client, fn func(limit time.Duration) time.Duration) { c.jitter = fn }
