package daemon

import (
	"sync"
	"time"

	"github.com/ocamba-rotator/rotator/internal/state"
)

// savedBudget bounds how long install waits for the saved records that seed
// the status book: with ha.mode vault they are Vault reads, and a daemon
// whose Vault is down must still start (the passes report the failures).
const savedBudget = 5 * time.Second

// savedRecords reads the durable record of every configured integration, 8
// at a time, for the status book and the metrics that survive a restart. A
// record that cannot be read in time is left out (logged), not waited for.
func (d *Daemon) savedRecords(w *world) map[string]state.Record {
	type got struct {
		name string
		rec  state.Record
	}
	ch := make(chan got, len(w.cfg.Integrations))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, in := range w.cfg.Integrations {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			rec, ok, err := w.state.Get(in.Name)
			switch {
			case err != nil:
				d.log.Warn("cannot read the state of an integration", "integration", in.Name, "error", err.Error())
			case ok:
				ch <- got{in.Name, rec}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(savedBudget)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		d.log.Warn("saved state not read in time: status starts without it for the rest", "budget", savedBudget.String())
	}
	out := map[string]state.Record{}
	for {
		select {
		case g := <-ch:
			out[g.name] = g.rec
		default:
			return out
		}
	}
}
