package daemon

import (
	"sync"
	"time"

	"github.com/ocamba-rotator/rotator/internal/admin"
	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/state"
)

// statusBook keeps what /v1/status answers, per integration.
type statusBook struct {
	mu   sync.Mutex
	byID map[string]*admin.IntegrationStatus // by integration name
	// failedAt is when the last failed attempt of each failing
	// integration was made (rotate.Request.Failing).
	failedAt map[string]time.Time
	cfg      []config.Integration
	next     func(name string) *time.Time
}

func newStatusBook() *statusBook {
	return &statusBook{byID: map[string]*admin.IntegrationStatus{}, failedAt: map[string]time.Time{}}
}

// unseeded lists the integrations of ins whose status configure would
// start from their durable state: those it does not have yet (or whose id
// or provider changed).
func (b *statusBook) unseeded(ins []config.Integration) []config.Integration {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []config.Integration
	for _, in := range ins {
		if st := b.byID[in.Name]; st == nil || st.ID != in.ID || st.Provider != in.Provider {
			out = append(out, in)
		}
	}
	return out
}

// configure sets the integrations that exist (after a start or a reload):
// status of removed ones is forgotten, that of kept ones stays, and that of
// new ones starts from their durable state (so a restart keeps it).
func (b *statusBook) configure(ins []config.Integration, next func(name string) *time.Time, saved func(name string) (state.Record, bool)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	keep := map[string]*admin.IntegrationStatus{}
	failedAt := map[string]time.Time{}
	for _, in := range ins {
		st := b.byID[in.Name]
		at, failing := b.failedAt[in.Name]
		if st == nil || st.ID != in.ID || st.Provider != in.Provider {
			st = &admin.IntegrationStatus{Name: in.Name, ID: in.ID, Provider: in.Provider}
			at, failing = time.Time{}, false
			if rec, ok := saved(in.Name); ok && (rec.ID == "" || rec.ID == in.ID) {
				seed(st, rec)
				if st.ConsecutiveFailures > 0 {
					at, failing = *st.LastAttempt, true
				}
			}
		}
		keep[in.Name] = st
		if failing {
			failedAt[in.Name] = at
		}
	}
	b.byID, b.failedAt, b.cfg, b.next = keep, failedAt, ins, next
}

// seed fills a status from an integration's durable record.
func seed(st *admin.IntegrationStatus, rec state.Record) {
	if c := rec.Confirmed; c != nil {
		at := c.At
		st.LastSuccess, st.VaultVersion = &at, c.VaultVersion
	}
	if n := len(rec.History); n > 0 {
		last := rec.History[n-1]
		at := last.At
		st.LastAttempt, st.LastResult = &at, last.Result
		if last.Result == string(rotate.ResultFailed) {
			st.LastError, st.TraceID = last.Error, last.TraceID
		}
		for i := n - 1; i >= 0 && rec.History[i].Result == string(rotate.ResultFailed); i-- {
			st.ConsecutiveFailures++
		}
	}
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
		st.LastResult, st.LastReason = string(o.Result), o.Reason
		if o.VaultVersion > 0 {
			st.VaultVersion = o.VaultVersion
		}
		switch {
		case o.Result == rotate.ResultFailed:
			st.LastError = o.Error
			st.TraceID = o.TraceID
			st.ConsecutiveFailures++
			if at.IsZero() {
				at = rep.Finished
			}
			b.failedAt[o.Name] = at
		case o.Confirms():
			// Only a confirmed push of the current settings clears a
			// failure: an unchanged that is not one (another rotator holds
			// the integration) leaves it as it was.
			done := rep.Finished
			st.LastSuccess = &done
			st.LastError, st.TraceID = "", ""
			st.ConsecutiveFailures = 0
			delete(b.failedAt, o.Name)
		}
	}
}

// failing reports when name's last attempt failed with no push confirmed
// since (zero: it is not failing), and whether the book knows
// (rotate.Request.Failing): it does not for an integration with no attempt
// yet whose saved record could not be read, and the record then decides.
func (b *statusBook) failing(name string) (since time.Time, known bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.byID[name]
	if st == nil || st.LastAttempt == nil {
		return time.Time{}, false
	}
	return b.failedAt[name], true
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
