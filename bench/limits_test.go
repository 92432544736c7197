package bench

import (
	"testing"
	"time"
)

// These tests run in a plain `go test ./...` and take milliseconds.

func TestLeastTimeMatchesClosedForm(t *testing.T) {
	for r := 1; r <= 1400; r++ {
		if got, want := LeastTime(r, Scaled), LeastTimeScaled(r); got != want {
			t.Fatalf("LeastTime(%d) = %s, closed form %s", r, got, want)
		}
	}
	for r, want := range map[int]time.Duration{300: 14 * time.Second, 301: 60 * time.Second, 1350: 247 * time.Second} {
		if got := LeastTime(r, Scaled); got != want {
			t.Errorf("LeastTime(%d) = %s, want %s", r, got, want)
		}
	}
}

func TestLeastTimeClosedForm(t *testing.T) {
	for _, l := range []Limits{Scaled, Documented} {
		for r := 1; r <= 1400; r++ {
			got, ok := LeastTimeClosed(r, l)
			if want := LeastTime(r, l); !ok || got != want {
				t.Fatalf("%+v: LeastTimeClosed(%d) = %s (%v), greedy %s", l, r, got, ok, want)
			}
		}
	}
	// Issue 14: 100 consumers, 3 Hood requests each.
	for r, want := range map[int]time.Duration{150: 14 * time.Second, 151: 60 * time.Second, 300: 74 * time.Second, 301: 120 * time.Second} {
		if got := LeastTime(r, Documented); got != want {
			t.Errorf("Documented: LeastTime(%d) = %s, want %s", r, got, want)
		}
	}
	if _, ok := LeastTimeClosed(10, Limits{Burst: 7, Short: time.Second, PerLong: 150, Long: time.Minute}); ok {
		t.Error("LeastTimeClosed accepted limits whose long count is not a whole number of bursts")
	}
}

func TestLeastTimeScheduleIsAdmitted(t *testing.T) {
	// The greedy schedule itself draws no 429 from a strict server, and one
	// request 1ns earlier anywhere would.
	for _, l := range []Limits{Scaled, Documented} {
		for _, r := range []int{11, 21, 151, 300, 301, 1350} {
			times := greedy(r, l)
			if n := Rejections(times, l); n != 0 {
				t.Errorf("%+v, r=%d: greedy schedule has %d rejections", l, r, n)
			}
			if times[r-1] == times[r-2] {
				continue // the last request is not held by a window
			}
			times[r-1] -= time.Nanosecond
			if n := Rejections(times, l); n != 1 {
				t.Errorf("%+v, r=%d: last request 1ns early: %d rejections, want 1", l, r, n)
			}
		}
	}
}

func greedy(r int, l Limits) []time.Duration {
	t := make([]time.Duration, r)
	for k := 1; k < r; k++ {
		t[k] = LeastTime(k+1, l)
	}
	return t
}

func TestBuckets(t *testing.T) {
	steady := SteadyBucket(Scaled, 1)
	if got, want := steady.Span(1350), 269800*time.Millisecond; got != want {
		t.Errorf("steady bucket span for 1350: %s, want %s", got, want)
	}
	for _, r := range []int{300, 1350} {
		if n := Rejections(steady.Times(r), Scaled); n != 0 {
			t.Errorf("steady bucket (capacity 1), r=%d: %d rejections, want 0", r, n)
		}
		burst := SteadyBucket(Scaled, Scaled.Burst)
		if n := Rejections(burst.Times(r), Scaled); r > 300 && n == 0 {
			t.Errorf("steady bucket (capacity 20), r=%d: no rejections, want some", r)
		}
		best := BestSafeBucket(r, Scaled)
		if n := Rejections(best.Times(r), Scaled); n != 0 {
			t.Errorf("best safe bucket %+v, r=%d: %d rejections", best, r, n)
		}
		if best.Span(r) < LeastTime(r, Scaled) {
			t.Errorf("best safe bucket %+v beats the least time for r=%d", best, r)
		}
	}
}
