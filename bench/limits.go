package bench

import (
	"math"
	"time"
)

// Limits are two rate-limit windows enforced at once, as Hood does: at most
// Burst requests in any span of Short and at most PerLong in any span of
// Long. The windows are strict and sliding: a request at time t counts
// against every later request at u with u-t < size (hoodtest's rule).
type Limits struct {
	Burst   int
	Short   time.Duration
	PerLong int
	Long    time.Duration
}

// Scaled are the limits of the rate-limit benchmark: Hood's documented
// windows (1 s, 1 min) with the counts doubled (20 and 300).
var Scaled = Limits{Burst: 20, Short: time.Second, PerLong: 300, Long: time.Minute}

// Documented are Hood's documented limits, rotator's defaults
// (hood.rate_limit: burst 10, per_minute 150): 10 requests in any second,
// 150 in any minute.
var Documented = Limits{Burst: 10, Short: time.Second, PerLong: 150, Long: time.Minute}

// LeastTime is the least span, from the first request's start to the last
// one's, in which r requests can be sent without any of them being refused
// by l: the greedy schedule, each request as early as both windows allow.
// For Scaled it equals the closed form of the issue,
// 60·⌊(r−1)/300⌋ + ⌊((r−1) mod 300)/20⌋ seconds (see LeastTimeScaled).
func LeastTime(r int, l Limits) time.Duration {
	if r <= 1 {
		return 0
	}
	t := make([]time.Duration, r)
	for k := 1; k < r; k++ {
		var at time.Duration
		if k >= l.Burst {
			at = max(at, t[k-l.Burst]+l.Short)
		}
		if k >= l.PerLong {
			at = max(at, t[k-l.PerLong]+l.Long)
		}
		t[k] = max(at, t[k-1])
	}
	return t[r-1]
}

// LeastTimeScaled is the closed form for Scaled, in seconds.
func LeastTimeScaled(r int) time.Duration {
	if r <= 1 {
		return 0
	}
	s := 60*((r-1)/300) + ((r-1)%300)/20
	return time.Duration(s) * time.Second
}

// LeastTimeClosed is LeastTime in closed form, for limits whose long count
// is a whole number of bursts that fit in the long window (PerLong mod Burst
// = 0 and PerLong/Burst·Short ≤ Long, as in Scaled and Documented): the
// requests go in whole long windows of PerLong, each sent as bursts of Burst
// one Short apart, so
//
//	LeastTime(r) = ⌊(r−1)/PerLong⌋·Long + ⌊((r−1) mod PerLong)/Burst⌋·Short.
//
// For Documented: 60·⌊(r−1)/150⌋ + ⌊((r−1) mod 150)/10⌋ seconds. ok is false
// for limits of another shape.
func LeastTimeClosed(r int, l Limits) (d time.Duration, ok bool) {
	if l.Burst < 1 || l.PerLong%l.Burst != 0 || time.Duration(l.PerLong/l.Burst)*l.Short > l.Long {
		return 0, false
	}
	if r <= 1 {
		return 0, true
	}
	k := r - 1
	return time.Duration(k/l.PerLong)*l.Long + time.Duration((k%l.PerLong)/l.Burst)*l.Short, true
}

// Bucket is a token bucket: Capacity tokens, full at the start, refilled
// with Tokens tokens every Per (a rate kept as a fraction so that the
// schedule is exact); each request takes one token.
type Bucket struct {
	Capacity int
	Tokens   int
	Per      time.Duration
}

// Rate is the refill rate in tokens per second.
func (b Bucket) Rate() float64 { return float64(b.Tokens) / b.Per.Seconds() }

// Times returns the send times of r requests that a bucket lets through as
// early as it can, the first at 0.
func (b Bucket) Times(r int) []time.Duration {
	t := make([]time.Duration, r)
	for k := range t {
		if j := int64(k - b.Capacity + 1); j > 0 {
			// The j-th refilled token arrives at j·Per/Tokens, rounded up.
			n := j * int64(b.Per)
			t[k] = time.Duration((n + int64(b.Tokens) - 1) / int64(b.Tokens))
		}
	}
	return t
}

// Span is the time from the first to the last of r requests through b.
func (b Bucket) Span(r int) time.Duration {
	if r <= b.Capacity {
		return 0
	}
	t := b.Times(r)
	return t[r-1]
}

// Rejections counts the requests sent at times (sorted) that a server
// enforcing l strictly would refuse with 429 (a refused request is not
// counted in the windows, as hoodtest does).
func Rejections(times []time.Duration, l Limits) int {
	var admitted []time.Duration
	refused := 0
	for _, now := range times {
		ok := true
		for _, w := range []struct {
			size  time.Duration
			limit int
		}{{l.Short, l.Burst}, {l.Long, l.PerLong}} {
			in := 0
			for i := len(admitted) - 1; i >= 0 && now-admitted[i] < w.size; i-- {
				in++
			}
			if in >= w.limit {
				ok = false
			}
		}
		if ok {
			admitted = append(admitted, now)
		} else {
			refused++
		}
	}
	return refused
}

// SteadyBucket is the plain token bucket at the steady rate of l (PerLong
// per Long) with the given capacity.
func SteadyBucket(l Limits, capacity int) Bucket {
	return Bucket{Capacity: capacity, Tokens: l.PerLong, Per: l.Long}
}

// BestSafeBucket is the single token bucket that never exceeds either window
// of l and sends r requests in the shortest span. A bucket of capacity c and
// rate ρ lets c + ⌈ρ·w⌉ − 1 requests into a strict window of size w, so it is
// safe when ρ ≤ (limit − c + 1)/w for both windows; every capacity from 1 to
// Burst is tried with the highest safe rate.
func BestSafeBucket(r int, l Limits) Bucket {
	best := Bucket{}
	bestSpan := time.Duration(math.MaxInt64)
	for c := 1; c <= l.Burst; c++ {
		short := Bucket{Capacity: c, Tokens: l.Burst - c + 1, Per: l.Short}
		long := Bucket{Capacity: c, Tokens: l.PerLong - c + 1, Per: l.Long}
		b := long
		// The slower of the two rates: a/s < b/l  <=>  a·l < b·s.
		if int64(short.Tokens)*int64(l.Long) < int64(long.Tokens)*int64(l.Short) {
			b = short
		}
		if s := b.Span(r); s < bestSpan {
			best, bestSpan = b, s
		}
	}
	return best
}
