package daemon

import (
	"sync"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/state"
)

// savedBudget bounds how long install waits for the saved records that seed
// the status book: with ha.mode vault they are Vault reads, and a daemon
// whose Vault is down must still start (the passes report the failures).
const savedBudget = 5 * time.Second

// peeker is a shared state (internal/ha) that can read a record without
// touching what it keeps for a push (the read a Begin relies on, its
// leases) and without loading its key: the status book's reads can then
// never interfere with a pass, even when they outlive savedBudget.
type peeker interface {
	Peek(name string) (state.Record, bool, error)
}

// savedRecords reads the durable record of the integrations ins (those the
// status book does not have yet), 8 at a time, for the status book and the
// metrics that survive a restart. A record that cannot be read in time is
// left out (logged), not waited for.
func (d *Daemon) savedRecords(w *world, ins []config.Integration) map[string]state.Record {
	read := w.State.Get
	if p, ok := w.State.(peeker); ok {
		read = p.Peek
	}
	type got struct {
		name string
		rec  state.Record
	}
	ch := make(chan got, len(ins))
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, in := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			rec, ok, err := read(in.Name)
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
