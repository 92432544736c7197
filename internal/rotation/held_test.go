package rotation_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/rotation"
)

// holdingPasser answers the first pass as if another rotator held the
// consumer named held (unchanged, Recheck soon), and lets every other pass
// through to the engine.
type holdingPasser struct {
	rotation.Passer
	held  string
	mu    sync.Mutex
	calls [][]string
}

func (p *holdingPasser) Pass(ctx context.Context, req rotate.Request) (rotate.Report, error) {
	p.mu.Lock()
	first := len(p.calls) == 0
	p.calls = append(p.calls, slices.Clone(req.Only))
	p.mu.Unlock()
	if !first || !slices.Contains(req.Only, p.held) {
		return p.Passer.Pass(ctx, req)
	}
	req.Only = slices.DeleteFunc(slices.Clone(req.Only), func(n string) bool { return n == p.held })
	rep, err := p.Passer.Pass(ctx, req)
	if err != nil {
		return rep, err
	}
	until := time.Now().Add(300 * time.Millisecond)
	rep.Outcomes = append(rep.Outcomes, rotate.Outcome{Name: p.held, Result: rotate.ResultUnchanged, Reason: "held by dead#1 until soon", Recheck: &until})
	return rep, nil
}

// A consumer another rotator holds when the run pushes (e.g. a holder that
// died mid-push while it ran this rotation, its lease on the integration
// ending a little after its lease on the rotation) is passed over again
// when that lease ends: the run goes on, it is not undone.
func TestConsumerHeldElsewhereIsPassedOverAgain(t *testing.T) {
	w := newWorld(t, kinds[0], 3, "")
	rt, r := w.build(nil)
	defer rt.Close()
	var hp *holdingPasser
	r = rotation.WithPasser(r, func(p rotation.Passer) rotation.Passer {
		hp = &holdingPasser{Passer: p, held: "c1"}
		return hp
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := r.Run(ctx, "rot", rotation.Request{Trigger: "cli", Begin: true})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res.Step == rotation.StepUndone || res.Step == rotation.StepUndoing || res.Step == "" {
		t.Fatalf("run: got step %q (error %q), want it past the push", res.Step, res.Error)
	}
	if len(hp.calls) < 2 || !slices.Equal(hp.calls[1], []string{"c1"}) {
		t.Errorf("passes: got %v, want a second pass over the held consumer c1 alone", hp.calls)
	}
}
