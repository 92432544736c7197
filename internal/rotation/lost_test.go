package rotation_test

import (
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/provider/providertest"
	"github.com/ocamba-rotator/rotator/internal/rotation"
)

// A provider call carried out whose answer is lost (the connection reset
// after the provider acted): a lost mint is undone and its key found by
// name and deleted; a lost revoke is finished by the next run (or, for
// Twilio's Promote, settled at once by checking both tokens).
func TestLostAnswers(t *testing.T) {
	tests := []struct {
		name       string
		kind       kind
		fault      providertest.Fault
		second     bool          // inject before the second rotation (the first leaves a key rotator minted)
		want       rotation.Step // where the faulted run rests
		thenFinish bool          // a further run completes it
	}{
		{"sendgrid mint", kinds[0], providertest.Fault{Method: "POST", Path: "/v3/api_keys", AnswerLost: true}, false, rotation.StepUndone, false},
		{"sendgrid revoke", kinds[0], providertest.Fault{Method: "DELETE", Path: "/v3/api_keys/", AnswerLost: true}, true, rotation.StepRevoking, true},
		{"mailgun mint", kinds[1], providertest.Fault{Method: "POST", Path: "/v1/keys", AnswerLost: true}, false, rotation.StepUndone, false},
		{"mailgun revoke", kinds[1], providertest.Fault{Method: "DELETE", Path: "/v1/keys/", AnswerLost: true}, true, rotation.StepRevoking, true},
		{"twilio secondary", kinds[2], providertest.Fault{Method: "POST", Path: "/v1/AuthTokens/Secondary", AnswerLost: true}, false, rotation.StepUndone, false},
		{"twilio promote", kinds[2], providertest.Fault{Method: "POST", Path: "/v1/AuthTokens/Promote", AnswerLost: true}, false, rotation.StepDone, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t, tt.kind, 2, "")
			stop := w.watch()
			if tt.second {
				if res := w.finish(true); res.Step != rotation.StepDone {
					t.Fatalf("first rotation: got %s (%s), want done", res.Step, res.Error)
				}
			}
			w.inject(tt.fault)
			res, err := w.until(true, nil)
			if res.Step != tt.want {
				t.Fatalf("faulted run: got step %s (error %v), want %s", res.Step, err, tt.want)
			}
			if tt.want == rotation.StepRevoking && (err == nil || !strings.Contains(err.Error(), "revoke the old credential")) {
				t.Errorf("faulted run: got error %v, want it to say the revoke failed", err)
			}
			if tt.thenFinish {
				res = w.finish(false)
				if res.Step != rotation.StepDone {
					t.Fatalf("next run: got %s (%s), want done", res.Step, res.Error)
				}
			}
			if v := stop(); len(v) > 0 {
				t.Errorf("a consumer held a refused credential %d times, first: %s", len(v), v[0])
			}
			if o := w.orphans(w.record().Current.KeyID); len(o) > 0 {
				t.Errorf("keys left at the provider: %v", o)
			}
			w.noLeak(res.Error)
		})
	}
}

// A minted credential the provider refuses is never pushed: the run is
// undone before any Hood request, and the new key deleted.
func TestRefusedNewCredentialNeverPushed(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.provider, func(t *testing.T) {
			w := newWorld(t, k, 2, "")
			before := w.hood.Count("PATCH")
			res, err := w.run(true, func(point string) error {
				if point == "minted" {
					w.revokeNewest()
				}
				return nil
			})
			if err != nil || res.Step != rotation.StepUndone {
				t.Fatalf("got step %s (error %v), want undone", res.Step, err)
			}
			if want := "undone: check the new credential: sendgrid_email"; k.provider == "sendgrid_email" && !strings.HasPrefix(res.Error, want) ||
				!strings.Contains(res.Error, "check the new credential") || !strings.Contains(res.Error, "refused") {
				t.Errorf("result error %q does not say the provider refused the new credential", res.Error)
			}
			if n := w.hood.Count("PATCH") - before; n != 0 {
				t.Errorf("Hood got %d PATCHes, want none", n)
			}
			if cur, _ := w.current(); cur != w.hand.Reveal() {
				t.Error("the secret does not hold the old credential")
			}
			w.noLeak(res.Error)
		})
	}
}
