package daemon

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
)

func TestWakeupsFireEarliestFirst(t *testing.T) {
	var w wakeups
	if w.c() != nil {
		t.Fatal("no wake-up: want a nil channel")
	}
	now := time.Now()
	w.set("late", now.Add(400*time.Millisecond))
	w.set("early", now.Add(20*time.Millisecond))
	w.set("gone", now.Add(10*time.Millisecond))
	w.drop("gone")
	w.set("early", now.Add(50*time.Millisecond)) // replaces
	var got [][]string
	deadline := time.After(5 * time.Second)
	for len(got) < 2 {
		select {
		case at := <-w.c():
			if names := w.due(at); len(names) > 0 {
				got = append(got, names)
			}
		case <-deadline:
			t.Fatalf("wake-ups: got %v by the deadline", got)
		}
	}
	if !slices.Equal(got[0], []string{"early"}) || !slices.Equal(got[1], []string{"late"}) {
		t.Errorf("wake-ups: got %v, want [early] then [late]", got)
	}
	if time.Since(now) < 400*time.Millisecond {
		t.Errorf("late fired after %v, before its time", time.Since(now))
	}
	if w.c() != nil {
		t.Error("all fired: want a nil channel")
	}
	w.set("past", now.Add(-time.Hour)) // due at once
	select {
	case at := <-w.c():
		if names := w.due(at); !slices.Equal(names, []string{"past"}) {
			t.Errorf("a past wake-up: got %v", names)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a past wake-up did not fire")
	}
	w.set("x", now.Add(time.Hour))
	if got := w.without([]string{"a", "x", "b"}); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("without: got %v, want [a b]", got)
	}
	w.stop()
	if w.c() != nil {
		t.Error("stopped: want a nil channel")
	}
}

func TestSchedulerTicksRotations(t *testing.T) {
	cfg := &config.Config{Schedule: "@every 1h", Timezone: "UTC",
		Integrations: []config.Integration{{Name: "a"}},
		Rotations:    []config.Rotation{{Name: "r1", Schedule: "@every 1s"}, {Name: "r2"}, {Name: "r3", Schedule: "@every 1s"}}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ticks, rotTicks := make(chan []string), make(chan []string)
	s, err := newScheduler(ctx, cfg, ticks, rotTicks)
	if err != nil {
		t.Fatal(err)
	}
	s.start()
	defer s.stop()
	defer cancel()
	select {
	case names := <-rotTicks:
		if !slices.Equal(names, []string{"r1", "r3"}) {
			t.Errorf("rotation tick: got %v, want [r1 r3] (r2 has no schedule)", names)
		}
	case names := <-ticks:
		t.Errorf("an integration tick %v, want a rotation tick", names)
	case <-time.After(10 * time.Second):
		t.Fatal("no rotation tick")
	}
	if s.next("r1") != nil {
		t.Error("next: rotations are not integrations")
	}
}
