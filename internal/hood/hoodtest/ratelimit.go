package hoodtest

import (
	"sort"
	"time"
)

// window is one sliding rate-limit window: at most limit admitted requests
// in any span of size.
type window struct {
	size  time.Duration
	limit int
}

// limiter holds the timestamps of admitted requests, oldest first, and
// checks new requests against every window. It is not safe for concurrent
// use on its own: the Server's mutex guards it.
type limiter struct {
	windows  []window
	longest  time.Duration
	admitted []time.Time
}

// newLimiter builds a limiter; a negative limit disables its window.
func newLimiter(short time.Duration, burst int, long time.Duration, perLong int) limiter {
	var l limiter
	for _, w := range []window{{size: short, limit: burst}, {size: long, limit: perLong}} {
		if w.limit < 0 || w.size <= 0 {
			continue
		}
		l.windows = append(l.windows, w)
		l.longest = max(l.longest, w.size)
	}
	return l
}

// admit admits a request arriving at now, or answers how long until a slot
// frees in every window. A rejected request is not counted.
func (l *limiter) admit(now time.Time) (ok bool, wait time.Duration) {
	if len(l.windows) == 0 {
		return true, 0
	}
	l.prune(now)
	for _, w := range l.windows {
		// In the window: admitted timestamps t with now-t < size.
		first := sort.Search(len(l.admitted), func(i int) bool { return now.Sub(l.admitted[i]) < w.size })
		in := l.admitted[first:]
		if len(in) < w.limit {
			continue
		}
		// Admitting needs len(in)-limit+1 of them to leave the window; the
		// last of those leaves at its time + size.
		leave := in[len(in)-w.limit]
		wait = max(wait, leave.Add(w.size).Sub(now))
	}
	if wait > 0 {
		return false, wait
	}
	if n := len(l.admitted); n > 0 && now.Before(l.admitted[n-1]) {
		// A clock that went backwards: keep the slice sorted.
		now = l.admitted[n-1]
	}
	l.admitted = append(l.admitted, now)
	return true, 0
}

// prune forgets timestamps that left the longest window.
func (l *limiter) prune(now time.Time) {
	first := sort.Search(len(l.admitted), func(i int) bool { return now.Sub(l.admitted[i]) < l.longest })
	if first == 0 {
		return
	}
	l.admitted = append(l.admitted[:0], l.admitted[first:]...)
}

func (l *limiter) reset() { l.admitted = nil }

// retryAfterSeconds is a wait in whole seconds, rounded up, at least 1.
func retryAfterSeconds(wait time.Duration) int64 {
	secs := int64((wait + time.Second - 1) / time.Second)
	return max(secs, 1)
}
