package rotation_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/rotation"
)

// haExtra puts two rotators of one world in ha.mode vault: shared records,
// a 5s lease.
const haExtra = "ha: {mode: vault, mount: secret, path: HA, lease_ttl: 5s}\n"

// Two rotators started together run a rotation once: one holds it, the
// other is told it is busy; one key is minted.
func TestHATwoRotatorsOneRun(t *testing.T) {
	w := newWorld(t, kinds[0], 3, "")
	w.haMode()
	stop := w.watch()
	keys := len(w.sg.Keys())
	var wg sync.WaitGroup
	results := make([]error, 2)
	steps := make([]rotation.Step, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rt, r := w.build(nil)
			defer rt.Close()
			res, err := r.Run(context.Background(), "rot", rotation.Request{Trigger: "schedule", Begin: true})
			results[i], steps[i] = err, res.Step
		}()
	}
	wg.Wait()
	busy := 0
	for i, err := range results {
		switch {
		case errors.Is(err, rotation.ErrBusy):
			busy++
		case err != nil:
			t.Errorf("rotator %d: %v", i, err)
		}
	}
	if busy != 1 {
		t.Fatalf("got %d rotators told busy (errors %v, steps %v), want 1", busy, results, steps)
	}
	res := w.finish(false)
	if res.Step != rotation.StepDone {
		t.Fatalf("got %s (%s), want done", res.Step, res.Error)
	}
	if got := len(w.sg.Keys()) - keys; got != 1 {
		t.Errorf("got %d new keys at SendGrid, want 1", got)
	}
	if v := stop(); len(v) > 0 {
		t.Errorf("a consumer held a refused credential %d times, first: %s", len(v), v[0])
	}
}

// The holder killed after storing the new credential: the other rotator is
// kept out while the lease lives, then takes the rotation over and
// completes it.
func TestHAHolderKilled(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.provider, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, k, 3, "")
			w.haMode()
			stop := w.watch()
			crash, hit := crashAt("stored")
			if _, err := w.run(true, crash); !hit() || err == nil {
				t.Fatalf("the holder was not killed at stored (error %v)", err)
			}
			killed := time.Now()
			if _, err := w.run(false, nil); !errors.Is(err, rotation.ErrBusy) {
				t.Fatalf("the other rotator while the lease lives: got %v, want ErrBusy", err)
			}
			var res rotation.Result
			for {
				r, err := w.until(false, nil)
				if err == nil {
					res = r
					break
				}
				if !errors.Is(err, rotation.ErrBusy) || time.Since(killed) > 15*time.Second {
					t.Fatalf("take-over: %v", err)
				}
				time.Sleep(200 * time.Millisecond)
			}
			if waited := time.Since(killed); waited < 4*time.Second {
				t.Errorf("taken over after %s, before the 5s lease ran out", waited)
			}
			w.settled(t, res, rotation.StepDone, stop)
		})
	}
}
