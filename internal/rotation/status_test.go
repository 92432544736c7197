package rotation_test

import (
	"context"
	"errors"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/rotation"
)

// A run stopped by a crash leaves its record in progress, held until its
// lease expires: StatusOf and Status say so, and a run that does not
// begin resumes it (here: undoes it) once the lease is free.
func TestStatusOfRunInProgress(t *testing.T) {
	w := newWorld(t, kinds[0], 1, "")
	crash := func(p string) error {
		if p == "storing" {
			return errors.New("power cut")
		}
		return nil
	}
	if _, err := w.run(true, crash); err == nil {
		t.Fatal("run with a crash: got no error")
	}
	rt, r := w.build(nil)
	defer rt.Close()
	ctx := context.Background()
	st, err := r.StatusOf(ctx, "rot")
	if err != nil {
		t.Fatal(err)
	}
	if st.Step != rotation.StepStoring || !st.InProgress() || st.HeldBy == "" || st.Step.AtRest() {
		t.Errorf("after the crash: got step %q held by %q (in progress %v), want storing, held", st.Step, st.HeldBy, st.InProgress())
	}
	if _, err := r.Run(ctx, "rot", rotation.Request{Trigger: "startup"}); !errors.Is(err, rotation.ErrBusy) {
		t.Errorf("run while the crashed run's lease is live: got %v, want ErrBusy", err)
	}
	w.expireLease()
	all, err := r.Status(ctx)
	if err != nil || len(all) != 1 || all[0].HeldBy != "" || all[0].Step != rotation.StepStoring {
		t.Errorf("after the lease expired: got %+v, %v", all, err)
	}
	res, err := r.Run(ctx, "rot", rotation.Request{Trigger: "startup"})
	if err != nil || res.Step != rotation.StepUndone {
		t.Errorf("resume: got step %q, %v; want undone", res.Step, err)
	}
	if st, _ := r.StatusOf(ctx, "rot"); st.InProgress() || !st.Step.AtRest() {
		t.Errorf("after the resume: got step %q in progress", st.Step)
	}
	if _, err := r.StatusOf(ctx, "nope"); !errors.Is(err, rotation.ErrUnknownRotation) {
		t.Errorf("StatusOf an unknown rotation: got %v", err)
	}
	w.noLeak()
}
