package daemon

import (
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/state"
)

// TestStatusBookFailureStaysUntilConfirmed: only an outcome that a
// confirmed push backs clears an integration's failure.
func TestStatusBookFailureStaysUntilConfirmed(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	confirmed := t0.Add(time.Minute)
	failed := rotate.Outcome{Name: "a", Result: rotate.ResultFailed, Error: "verification failed", Started: t0}
	held := rotate.Outcome{Name: "a", Result: rotate.ResultUnchanged, Reason: "held by rotator-b until then"}
	unchanged := rotate.Outcome{Name: "a", Result: rotate.ResultUnchanged, Confirmed: &confirmed}
	pushed := rotate.Outcome{Name: "a", Result: rotate.ResultPushed, Confirmed: &confirmed}
	tests := []struct {
		name     string
		outcomes []rotate.Outcome
		want     int
		wantErr  string
	}{
		{"failures count", []rotate.Outcome{failed, failed}, 2, "verification failed"},
		{"an unchanged held elsewhere keeps the failure", []rotate.Outcome{failed, held}, 1, "verification failed"},
		{"an unchanged from a confirmed push clears it", []rotate.Outcome{failed, unchanged}, 0, ""},
		{"a push clears it", []rotate.Outcome{failed, held, pushed}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newStatusBook()
			b.configure([]config.Integration{{Name: "a", ID: "1"}}, nil, func(string) (state.Record, bool) { return state.Record{}, false })
			for i, o := range tt.outcomes {
				b.record(rotate.Report{Started: t0, Finished: t0.Add(time.Duration(i) * time.Second), Outcomes: []rotate.Outcome{o}})
			}
			st := b.list()[0]
			if st.ConsecutiveFailures != tt.want || st.LastError != tt.wantErr {
				t.Errorf("got %d failures, last error %q; want %d, %q", st.ConsecutiveFailures, st.LastError, tt.want, tt.wantErr)
			}
			if since, known := b.failing("a"); !since.IsZero() != (tt.want > 0) || !known {
				t.Errorf("failing since: got %v (known %v), want failing %v (known)", since, known, tt.want > 0)
			}
		})
	}
}

// TestStatusBookFailingUnknownUntilAnAttempt: before any attempt, and with no
// saved record read, the book does not know whether an integration is
// failing (the record then decides); a seeded failure is known.
func TestStatusBookFailingUnknownUntilAnAttempt(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	b := newStatusBook()
	saved := map[string]state.Record{"seeded": {History: []state.Attempt{{At: at, Result: "failed", Error: "x"}}}}
	b.configure([]config.Integration{{Name: "new", ID: "1"}, {Name: "seeded", ID: "2"}}, nil, func(n string) (state.Record, bool) {
		r, ok := saved[n]
		return r, ok
	})
	if since, known := b.failing("new"); !since.IsZero() || known {
		t.Errorf("new: got failing since %v known %v, want not known", since, known)
	}
	if since, known := b.failing("seeded"); !since.Equal(at) || !known {
		t.Errorf("seeded: got failing since %v known %v, want a known failure at %v", since, known, at)
	}
	if _, known := b.failing("removed"); known {
		t.Errorf("an integration the book does not have: known, want not known")
	}
}
