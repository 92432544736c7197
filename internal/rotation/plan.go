package rotation

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
)

// plan is a dry run: the steps a run would take now, from the record and
// the secret's current version. It writes nothing and asks no provider.
func (r *Runner) plan(ctx context.Context, rot config.Rotation) (Result, error) {
	mount, path := r.recordPath(rot.Name)
	rec, _, err := readRecord(ctx, r.o.Vault, mount, path)
	if err != nil {
		return Result{Name: rot.Name, Provider: rot.Provider}, fmt.Errorf("rotation %s: %w", rot.Name, err)
	}
	kv, err := r.o.Vault.ReadKV(ctx, rot.Secret.Mount, rot.Secret.Path, 2)
	if err != nil {
		return Result{Name: rot.Name, Provider: rot.Provider}, fmt.Errorf("rotation %s: read the secret: %w", rot.Name, err)
	}
	var consumers []string
	for _, in := range r.o.Config.Consumers(rot) {
		consumers = append(consumers, in.Name)
	}
	res := r.result(rot, rec, nil, nil)
	res.DryRun = true
	known := rec.Current.holds(kv.Data[r.o.Config.CredentialKey(rot)])
	res.Plan = Plan(rot, rec, kv.Version, known, consumers, r.o.Now().UTC().Format("20060102T150405Z"))
	return res, nil
}

// Plan lists the steps a run of rot would take from rec, with the secret
// at version and the consumers named; known says the secret holds the
// credential the last completed run left; stamp is the time in a new key's
// name.
func Plan(rot config.Rotation, rec Record, version int, known bool, consumers []string, stamp string) []string {
	who := fmt.Sprintf("%d consumers (%s)", len(consumers), strings.Join(consumers, ", "))
	secretAt := rot.Secret.Mount + "/" + rot.Secret.Path
	revoke := "revoke the old credential at " + rot.Provider
	switch {
	case rot.Provider == "twilio_sms":
		revoke = "promote the secondary auth token (the old primary is refused from then on)"
	case rec.Step.atRest() && known && rec.Current.KeyID != "":
		revoke = "delete the old key " + rec.Current.KeyID + " at " + rot.Provider
	case rec.Step.atRest():
		revoke = "leave the old key: rotator did not mint it (its id is unknown); delete it by hand"
	case rec.OldKeyID != "":
		revoke = "delete the old key " + rec.OldKeyID + " at " + rot.Provider
	}
	mint := fmt.Sprintf("mint a new credential named %s%s at %s", rot.KeyPrefix, stamp, rot.Provider)
	if rot.Provider == "twilio_sms" {
		mint = "create a secondary auth token at twilio_sms (primary and secondary both authenticate)"
	}
	forward := []string{
		fmt.Sprintf("check the current credential (version %d of %s) with %s", version, secretAt, rot.Provider),
		mint,
		"check the new credential with " + rot.Provider,
		fmt.Sprintf("write it as version %d of %s (check-and-set on version %d)", version+1, secretAt, version),
		"push it to and verify it on " + who,
		"wait the grace period (" + rot.Grace.D().String() + "), confirm every consumer again",
		revoke,
	}
	switch rec.Step {
	case StepNone, StepDone, StepUndone:
		if rot.Provider != "twilio_sms" && known {
			forward = append(forward[:1], append([]string{"delete orphan keys named " + rot.KeyPrefix + "* that no run holds"}, forward[1:]...)...)
		}
		return forward
	case StepMinting:
		return []string{"undo: the run stopped while minting: delete the key named " + rec.Run + " if it exists"}
	case StepStoring:
		return []string{"resume: if Vault holds the new credential, push it to " + who + "; otherwise undo"}
	case StepStored:
		return append([]string{"resume: push version " + fmt.Sprint(rec.NewVersion) + " to and verify it on " + who}, forward[5:]...)
	case StepVerified:
		wait := "resume: wait for the grace period to end"
		if rec.GraceUntil != nil {
			wait += " (" + rec.GraceUntil.UTC().Format(time.RFC3339) + ")"
		}
		return []string{wait, "confirm every consumer again: " + who, revoke}
	case StepRevoking:
		return []string{"resume: " + revoke}
	case StepUndoing:
		return []string{"undo: restore version " + fmt.Sprint(rec.OldVersion) + " in Vault if it holds the new credential, push it back to " + who + ", then delete the new credential"}
	}
	return nil
}
