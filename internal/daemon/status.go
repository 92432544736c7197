package daemon

import (
	"sync"
	"time"

	"github.com/ocamba-rotator/rotator/internal/admin"
	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/rotate"
)

// statusBook keeps what /v1/status answers, per integration.
type statusBook struct {
	mu   sync.Mutex
	byID map[string]*admin.IntegrationStatus // by integration name
	cfg  []config.Integration
	next func(name string) *time.Time
}

func newStatusBook() *statusBook {
	return &statusBook{byID: map[string]*admin.IntegrationStatus{}}
}

// configure sets the integrations that exist (after a start or a reload):
// status of removed ones is forgotten, that of kept ones stays.
func (b *statusBook) configure(ins []config.Integration, next func(name string) *time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	keep := map[string]*admin.IntegrationStatus{}
	for _, in := range ins {
		st := b.byID[in.Name]
		if st == nil || st.ID != in.ID || st.Provider != in.Provider {
			st = &admin.IntegrationStatus{Name: in.Name, ID: in.ID, Provider: in.Provider}
		}
		keep[in.Name] = st
	}
	b.byID, b.cfg, b.next = keep, ins, next
}

// record updates the book from a pass (not a dry run).
func (b *statusBook) record(rep rotate.Report) {
	if rep.DryRun {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, o := range rep.Outcomes {
		st := b.byID[o.Name]
		if st == nil {
			continue // removed by a reload while the pass ran
		}
		at := o.Started
		st.LastAttempt = &at
		st.LastResult = string(o.Result)
		if o.VaultVersion > 0 {
			st.VaultVersion = o.VaultVersion
		}
		if o.Result == rotate.ResultFailed {
			st.LastError = o.Error
			st.TraceID = o.TraceID
			st.ConsecutiveFailures++
			continue
		}
		done := rep.Finished
		st.LastSuccess = &done
		st.LastError, st.TraceID = "", ""
		st.ConsecutiveFailures = 0
	}
}

// list answers /v1/status, in configuration order.
func (b *statusBook) list() []admin.IntegrationStatus {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]admin.IntegrationStatus, 0, len(b.cfg))
	for _, in := range b.cfg {
		st := *b.byID[in.Name]
		if b.next != nil {
			st.NextRun = b.next(in.Name)
		}
		out = append(out, st)
	}
	return out
}
