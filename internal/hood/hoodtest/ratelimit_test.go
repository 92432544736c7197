package hoodtest_test

import (
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// step is a batch of requests at one moment: advance the clock, then send
// n requests and expect the given statuses and, for 429s, Retry-After.
type step struct {
	advance        time.Duration
	want           []int
	wantRetryAfter string
}

func runSteps(t *testing.T, s *hoodtest.Server, clock *fakeClock, c call, steps []step) {
	t.Helper()
	for i, st := range steps {
		clock.Advance(st.advance)
		for j, want := range st.want {
			a := c.must(t, s)
			if a.status != want {
				t.Fatalf("step %d request %d: got status %d, want %d (body %s)", i, j, a.status, want, a.body)
			}
			if want == http.StatusTooManyRequests {
				checkError(t, a, http.StatusTooManyRequests, "")
				if got := a.header.Get("Retry-After"); got != st.wantRetryAfter {
					t.Errorf("step %d request %d: Retry-After got %q, want %q", i, j, got, st.wantRetryAfter)
				}
			}
		}
	}
}

const (
	ok  = http.StatusOK
	tmr = http.StatusTooManyRequests
)

func TestRateLimits(t *testing.T) {
	tests := []struct {
		name          string
		opts          hoodtest.Options
		steps         []step
		wantThrottled int
	}{
		{
			name: "burst window",
			opts: hoodtest.Options{Burst: 3, Window: 100 * time.Millisecond, PerMinute: -1},
			steps: []step{
				{want: []int{ok, ok, ok, tmr}, wantRetryAfter: "1"},
				{advance: 99 * time.Millisecond, want: []int{tmr}, wantRetryAfter: "1"},
				{advance: time.Millisecond, want: []int{ok, ok, ok, tmr}, wantRetryAfter: "1"},
			},
			wantThrottled: 3,
		},
		{
			name: "rejected requests are not counted",
			opts: hoodtest.Options{Burst: 3, Window: 100 * time.Millisecond, PerMinute: -1},
			steps: []step{
				{want: []int{ok, ok, ok}},
				// Had these counted, the burst at 100ms could admit only one.
				{advance: 50 * time.Millisecond, want: []int{tmr, tmr, tmr}, wantRetryAfter: "1"},
				{advance: 50 * time.Millisecond, want: []int{ok, ok, ok, tmr}, wantRetryAfter: "1"},
			},
			wantThrottled: 4,
		},
		{
			name: "long window, Retry-After rounded up",
			opts: hoodtest.Options{Burst: -1, PerMinute: 5, LongWindow: 3 * time.Second},
			steps: []step{
				{want: []int{ok, ok}},
				{advance: 500 * time.Millisecond, want: []int{ok, ok, ok, tmr}, wantRetryAfter: "3"}, // 2.5s left
				{advance: 1500 * time.Millisecond, want: []int{tmr}, wantRetryAfter: "1"},            // 1s left
				{advance: time.Second, want: []int{ok, ok, tmr}, wantRetryAfter: "1"},                // 0.5s until the next frees
				{advance: 500 * time.Millisecond, want: []int{ok, ok, ok, tmr}, wantRetryAfter: "3"}, // 2.5s again
			},
			wantThrottled: 4,
		},
		{
			name: "both windows",
			opts: hoodtest.Options{Burst: 3, Window: 100 * time.Millisecond, PerMinute: 5, LongWindow: time.Second},
			steps: []step{
				{want: []int{ok, ok, ok, tmr}, wantRetryAfter: "1"},
				{advance: 100 * time.Millisecond, want: []int{ok, ok, tmr}, wantRetryAfter: "1"}, // the long window is full
				{advance: 800 * time.Millisecond, want: []int{tmr}, wantRetryAfter: "1"},
				{advance: 100 * time.Millisecond, want: []int{ok, ok, ok, tmr}, wantRetryAfter: "1"},
			},
			wantThrottled: 4,
		},
		{
			name: "no limits",
			opts: hoodtest.Options{Burst: -1, PerMinute: -1},
			steps: []step{
				{want: []int{ok, ok, ok, ok, ok, ok, ok, ok, ok, ok, ok, ok}},
			},
		},
		{
			name: "documented defaults: 10 per second",
			opts: hoodtest.Options{},
			steps: []step{
				{want: []int{ok, ok, ok, ok, ok, ok, ok, ok, ok, ok, tmr}, wantRetryAfter: "1"},
			},
			wantThrottled: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			opts := tt.opts
			opts.Clock = clock.Now
			opts.Tokens = []string{token}
			s, err := hoodtest.Start(opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			if err := s.AddIntegration("1161", "twilio_sms", nil); err != nil {
				t.Fatal(err)
			}
			runSteps(t, s, clock, get("/v1/hood/integrations/1161"), tt.steps)
			if got := s.Throttled(); got != tt.wantThrottled {
				t.Errorf("Throttled: got %d, want %d", got, tt.wantThrottled)
			}
			total := 0
			for _, st := range tt.steps {
				total += len(st.want)
			}
			if got := s.Count(""); got != total {
				t.Errorf("Count: got %d, want %d (rejected requests are recorded too)", got, total)
			}
		})
	}
}

func TestRateLimitOrder(t *testing.T) {
	clock := newFakeClock()
	s := start(t, hoodtest.Options{Burst: 2, Window: 100 * time.Millisecond, Clock: clock.Now})
	s.Inject(hoodtest.Fault{Status: http.StatusServiceUnavailable, Times: -1})

	// Unauthenticated requests count against the limits too, and the rate
	// limits answer before injected faults.
	bad := get("/v1/hood/integrations/1161")
	bad.token = "wrong"
	if a := bad.must(t, s); a.status != http.StatusServiceUnavailable {
		t.Errorf("first: got %d, want 503 from the fault", a.status)
	}
	if a := get("/v1/hood/nowhere").must(t, s); a.status != http.StatusServiceUnavailable {
		t.Errorf("second: got %d, want 503 from the fault", a.status)
	}
	a := get("/v1/hood/integrations/1161").must(t, s)
	checkError(t, a, http.StatusTooManyRequests, "")
	reqs := s.Requests()
	if got := reqs[2].Fault; got != "" {
		t.Errorf("throttled request's fault: got %q, want none", got)
	}

	// Reset empties the windows and the counters.
	s.Reset()
	s.ClearFaults()
	if got := s.Throttled(); got != 0 {
		t.Errorf("Throttled after Reset: got %d, want 0", got)
	}
	if a := get("/v1/hood/integrations/1161").must(t, s); a.status != http.StatusOK {
		t.Errorf("after Reset: got %d, want 200", a.status)
	}
}

// TestRateLimitRealClock checks the limits against the real clock, with a
// window long enough that the burst cannot leave it during the test.
func TestRateLimitRealClock(t *testing.T) {
	s := start(t, hoodtest.Options{Burst: 3, Window: time.Minute, PerMinute: -1})
	want := []int{ok, ok, ok, tmr, tmr}
	for i, w := range want {
		a := get("/v1/hood/integrations/1161").must(t, s)
		if a.status != w {
			t.Fatalf("request %d: got %d, want %d", i, a.status, w)
		}
		if w == tmr && a.header.Get("Retry-After") == "" {
			t.Errorf("request %d: got no Retry-After, want one", i)
		}
	}
	if got := s.Throttled(); got != 2 {
		t.Errorf("Throttled: got %d, want 2", got)
	}
}
