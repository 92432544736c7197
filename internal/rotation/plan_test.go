package rotation_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/rotation"
)

func TestPlan(t *testing.T) {
	sg := config.Rotation{Name: "sg", Provider: "sendgrid_email", Secret: config.Source{Mount: "secret", Path: "sg"},
		KeyPrefix: "rotator-sg-", Grace: config.Duration(15 * time.Minute)}
	tw := sg
	tw.Provider = "twilio_sms"
	grace := time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		rot     config.Rotation
		rec     rotation.Record
		version int
		known   bool
		want    []string // substrings, in order, one per step
	}{
		{"first run of a hand-made key", sg, rotation.Record{}, 4, false, []string{
			"check the current credential (version 4 of secret/sg) with sendgrid_email",
			"mint a new credential named rotator-sg-20261206T220000Z",
			"check the new credential",
			"write it as version 5 of secret/sg (check-and-set on version 4)",
			"push it to and verify it on 2 consumers (a, b)",
			"wait the grace period (15m0s)",
			"leave the old key: rotator did not mint it",
		}},
		{"after a completed run", sg, rotation.Record{Step: rotation.StepDone, Current: rotation.Current{Version: 5, KeyID: "k5"}}, 5, true, []string{
			"check the current", "delete orphan keys", "mint", "check the new", "version 6", "push", "wait", "delete the old key k5 at sendgrid_email",
		}},
		{"credential replaced by hand since", sg, rotation.Record{Step: rotation.StepDone, Current: rotation.Current{Version: 5, KeyID: "k5"}}, 6, false, []string{
			"check the current", "mint", "check the new", "version 7", "push", "wait", "leave the old key",
		}},
		{"twilio", tw, rotation.Record{}, 2, false, []string{
			"check the current", "create a secondary auth token", "check the new", "version 3", "push", "wait",
			"promote the secondary auth token (the old primary is refused from then on)",
		}},
		{"crashed while minting", sg, rotation.Record{Step: rotation.StepMinting, Run: "rotator-sg-x"}, 4, false, []string{
			"undo: the run stopped while minting: delete the key named rotator-sg-x if it exists",
		}},
		{"waiting for grace", sg, rotation.Record{Step: rotation.StepVerified, GraceUntil: &grace, OldKeyID: "k4"}, 5, false, []string{
			"resume: wait for the grace period to end (2026-12-06T23:00:00Z)", "confirm every consumer again", "delete the old key k4",
		}},
		{"undoing", sg, rotation.Record{Step: rotation.StepUndoing, OldVersion: 4}, 5, false, []string{
			"undo: restore version 4 in Vault if it holds the new credential, push it back to 2 consumers",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rotation.Plan(tt.rot, tt.rec, tt.version, tt.known, []string{"a", "b"}, "20261206T220000Z")
			if len(got) != len(tt.want) {
				t.Fatalf("got %d steps\n  %s\nwant %d", len(got), strings.Join(got, "\n  "), len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("step %d: got %q, want it to contain %q", i, got[i], w)
				}
			}
			if slices.ContainsFunc(got, func(s string) bool { return s == "" }) {
				t.Errorf("an empty step in %q", got)
			}
		})
	}
}
