package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
)

func TestSchedulerHonoursTimezoneAndOverrides(t *testing.T) {
	cfg := &config.Config{
		Schedule: "0 3 * * *",
		Timezone: "America/New_York",
		Integrations: []config.Integration{
			{Name: "a"},
			{Name: "b", Schedule: "@hourly"},
			{Name: "c"},
		},
	}
	ticks := make(chan []string)
	s, err := newScheduler(context.Background(), cfg, ticks, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.start()
	defer s.stop()

	ny, _ := time.LoadLocation("America/New_York")
	na, nb, nc := s.next("a"), s.next("b"), s.next("c")
	if na == nil || nb == nil || nc == nil {
		t.Fatalf("next runs: got %v %v %v, want all set", na, nb, nc)
	}
	if got := na.In(ny); got.Hour() != 3 || got.Minute() != 0 {
		t.Errorf("next run of a: got %v, want 03:00 New York time", got)
	}
	if !na.Equal(*nc) {
		t.Errorf("a and c share the global schedule: got %v and %v", na, nc)
	}
	if got := nb.In(ny); got.Minute() != 0 || time.Until(got) > time.Hour {
		t.Errorf("next run of b (@hourly): got %v", got)
	}
	if s.next("gone") != nil {
		t.Errorf("next run of an unknown integration: want nil")
	}
}

func TestSchedulerTicksWithJitterStopWithContext(t *testing.T) {
	cfg := &config.Config{Schedule: "@every 1s", Timezone: "UTC", Jitter: config.Duration(time.Hour),
		Integrations: []config.Integration{{Name: "a"}}}
	ctx, cancel := context.WithCancel(context.Background())
	ticks := make(chan []string)
	s, err := newScheduler(ctx, cfg, ticks, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.start()
	// A tick job is now sleeping its jitter (up to an hour); cancelling the
	// context must end it, or stop would block.
	time.Sleep(1500 * time.Millisecond)
	cancel()
	done := make(chan struct{})
	go func() { s.stop(); close(done) }()
	select {
	case <-done:
	case names := <-ticks:
		t.Fatalf("got a tick for %v while the jitter was an hour", names)
	case <-time.After(30 * time.Second):
		t.Fatal("stop did not return: a jittered tick job ignored the context")
	}
}
