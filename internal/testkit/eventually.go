package testkit

import (
	"testing"
	"time"
)

// Eventually polls cond every 50ms until it holds, failing the test with
// what after within. It is for waiting on another process or goroutine, not
// for asserting how fast something is.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
