package state_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/state"
)

// TestRecordDoubts: every push that may have reached Hood without being
// confirmed stays in the record, across the file being closed and opened,
// until a confirmation.
func TestRecordDoubts(t *testing.T) {
	t.Parallel()
	doubt := func(v int, why string) state.Doubt { return state.Doubt{Pushed: pushed(v), Why: why} }
	type step func(s *state.Store) error
	begin := func(v int) step {
		return func(s *state.Store) error { return s.Begin("twilio", "1161", "twilio_sms", 0, pushed(v)) }
	}
	confirm := func(v int) step {
		return func(s *state.Store) error { return s.Confirm("twilio", pushed(v), attempt("pushed")) }
	}
	fail := func(ds ...state.Doubt) step {
		return func(s *state.Store) error {
			return s.Fail("twilio", state.Failure{Attempt: attempt("failed"), Unconfirmed: ds})
		}
	}
	note := func(result string) step {
		return func(s *state.Store) error { return s.Note("twilio", attempt(result)) }
	}
	many := []step{begin(1), confirm(1)}
	for v := 2; v <= 2+state.MaxUnconfirmed; v++ {
		many = append(many, begin(v), fail(doubt(v, "lost")))
	}
	tests := []struct {
		name        string
		steps       []step
		unconfirmed []int  // versions in Unconfirmed, oldest first
		doubt       string // in HoodMayDiffer; "" for none
		lastFailed  bool
	}{
		{"confirmed: no doubt", []step{begin(1), confirm(1)}, nil, "", false},
		{"an interrupted push is a doubt", []step{begin(1), confirm(1), begin(2)}, nil, state.WhyInterrupted + " (version 2", false},
		{"the next begin keeps the interrupted one", []step{begin(1), confirm(1), begin(2), begin(3)}, []int{2}, state.WhyInterrupted + " (version 3", false},
		{"a failure that may have landed", []step{begin(1), confirm(1), begin(2), fail(doubt(2, "answer lost"))}, []int{2}, "answer lost (version 2, at ", true},
		{"a failure that cannot have landed", []step{begin(1), confirm(1), begin(2), fail()}, nil, "", true},
		{"a push and its rollback", []step{begin(1), confirm(1), begin(2), fail(doubt(2, "kept"), doubt(1, "rollback lost"))}, []int{2, 1}, "rollback lost (version 1", true},
		{"a note keeps the doubt", []step{begin(1), confirm(1), begin(2), fail(doubt(2, "lost")), note("failed")}, []int{2}, "lost (version 2", true},
		{"a confirmation clears it", []step{begin(1), confirm(1), begin(2), fail(doubt(2, "lost")), begin(1), confirm(1)}, nil, "", false},
		{"the newest are kept", many, []int{3, 4, 5, 6, 7}, "lost (version 7", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := newFile(t)
			s, err := state.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			for i, st := range tt.steps {
				if err := st(s); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
			}
			// Read it back from a reopened file: the doubt is durable.
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if s, err = state.Open(path); err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			rec, _, err := s.Get("twilio")
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, d := range rec.Unconfirmed {
				got = append(got, d.VaultVersion)
			}
			if !slices.Equal(got, tt.unconfirmed) {
				t.Errorf("Unconfirmed versions: got %v, want %v", got, tt.unconfirmed)
			}
			doubt := rec.HoodMayDiffer()
			if (tt.doubt == "") != (doubt == "") || !strings.HasPrefix(doubt, tt.doubt) {
				t.Errorf("HoodMayDiffer: got %q, want it to start with %q", doubt, tt.doubt)
			}
			if _, failed := rec.LastFailed(); failed != tt.lastFailed {
				t.Errorf("LastFailed: got %v, want %v", failed, tt.lastFailed)
			}
		})
	}
}

func TestSuspectIsADoubt(t *testing.T) {
	t.Parallel()
	rec := state.Record{Confirmed: &state.Pushed{VaultVersion: 1}, Suspect: true}
	if got := rec.HoodMayDiffer(); !strings.Contains(got, "another rotator") {
		t.Errorf("HoodMayDiffer of a suspect record: got %q, want it to name another rotator's late push", got)
	}
	rec.ApplyConfirm(pushed(2), attempt("pushed"))
	if got := rec.HoodMayDiffer(); got != "" {
		t.Errorf("after a confirmation: got %q, want no doubt", got)
	}
}
