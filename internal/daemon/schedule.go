package daemon

import (
	"context"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/ocamba-rotator/rotator/internal/config"
)

// scheduler turns the configuration's cron schedules into ticks: lists of
// integration names that are due, and lists of rotation names that are due
// (rotations[].schedule). One cron entry per distinct schedule of each; a
// tick waits a random delay of up to the jitter before it is delivered.
type scheduler struct {
	cron    *cron.Cron
	mu      sync.Mutex
	entries map[string]cron.EntryID // by integration name
}

// newScheduler builds (but does not start) the schedules of cfg. Every tick
// of integrations is sent on ticks, every tick of rotations on rotTicks,
// unless ctx ends first. cfg has been validated, so every spec parses.
func newScheduler(ctx context.Context, cfg *config.Config, ticks, rotTicks chan<- []string) (*scheduler, error) {
	s := &scheduler{
		cron:    cron.New(cron.WithLocation(cfg.Location())),
		entries: map[string]cron.EntryID{},
	}
	bySpec := map[string][]string{}
	for _, in := range cfg.Integrations {
		spec := in.EffectiveSchedule(cfg.Schedule)
		bySpec[spec] = append(bySpec[spec], in.Name)
	}
	ids, err := s.add(ctx, bySpec, cfg.Jitter.D(), ticks)
	if err != nil {
		return nil, err
	}
	for id, names := range ids {
		for _, n := range names {
			s.entries[n] = id
		}
	}
	rotSpecs := map[string][]string{}
	for _, r := range cfg.Rotations {
		if r.Schedule != "" { // "": only when asked
			rotSpecs[r.Schedule] = append(rotSpecs[r.Schedule], r.Name)
		}
	}
	if _, err := s.add(ctx, rotSpecs, cfg.Jitter.D(), rotTicks); err != nil {
		return nil, err
	}
	return s, nil
}

// add adds one cron entry per spec, which sends its names on ch.
func (s *scheduler) add(ctx context.Context, bySpec map[string][]string, jitter time.Duration, ch chan<- []string) (map[cron.EntryID][]string, error) {
	specs := make([]string, 0, len(bySpec))
	for spec := range bySpec {
		specs = append(specs, spec)
	}
	sort.Strings(specs)
	ids := map[cron.EntryID][]string{}
	for _, spec := range specs {
		names := bySpec[spec]
		id, err := s.cron.AddFunc(spec, func() {
			if jitter > 0 {
				t := time.NewTimer(rand.N(jitter))
				defer t.Stop()
				select {
				case <-t.C:
				case <-ctx.Done():
					return
				}
			}
			select {
			case ch <- names:
			case <-ctx.Done():
			}
		})
		if err != nil {
			return nil, err
		}
		ids[id] = names
	}
	return ids, nil
}

func (s *scheduler) start() { s.cron.Start() }

// stop stops the schedules and waits for running tick jobs to return (they
// return at once when the daemon's context is done).
func (s *scheduler) stop() {
	<-s.cron.Stop().Done()
}

// next is the next scheduled run of an integration (before jitter).
func (s *scheduler) next(name string) *time.Time {
	s.mu.Lock()
	id, ok := s.entries[name]
	s.mu.Unlock()
	if !ok {
		return nil
	}
	n := s.cron.Entry(id).Next
	if n.IsZero() {
		return nil
	}
	return &n
}
