package daemon

import (
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/rotate"
)

// A pass's integrations held by another rotator get a wake-up at the end
// of the lease (plus heldMargin); the others lose theirs; a dry run or a
// refused request changes nothing.
func TestFollowHeld(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 1, 0, 0, 0, time.UTC)
	until := t0.Add(40 * time.Second)
	rep := rotate.Report{Outcomes: []rotate.Outcome{
		{Name: "a", Result: rotate.ResultUnchanged, Recheck: &until},
		{Name: "b", Result: rotate.ResultPushed},
	}}
	tests := []struct {
		name string
		res  passResult
		had  map[string]time.Time
		want map[string]time.Time
	}{
		{"held and settled", passResult{rep: rep}, map[string]time.Time{"b": t0, "c": t0},
			map[string]time.Time{"a": until.Add(heldMargin), "c": t0}},
		{"dry run", passResult{rep: rotate.Report{DryRun: true, Outcomes: rep.Outcomes}}, map[string]time.Time{"b": t0}, map[string]time.Time{"b": t0}},
		{"refused request", passResult{err: rotate.ErrUnknownIntegration}, nil, map[string]time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w wakeups
			defer w.stop()
			for n, at := range tt.had {
				w.set(n, at)
			}
			followHeld(tt.res, &w)
			if len(w.at) != len(tt.want) {
				t.Fatalf("wake-ups %v, want %v", w.at, tt.want)
			}
			for n, at := range tt.want {
				if got, ok := w.at[n]; !ok || !got.Equal(at) {
					t.Errorf("wake-up of %s: got %v (set %t), want %v", n, got, ok, at)
				}
			}
		})
	}
}
