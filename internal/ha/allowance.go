package ha

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ocamba-rotator/rotator/internal/vault"
)

// allowanceName is the path, under Options.Path, of the fleet's Hood
// allowance. Integration names are one path segment, so no record can
// collide with it (as with keyName).
const allowanceName = "_meta/hood-allowance"

// Defaults of AllowanceOptions.
const (
	DefaultAllowancePoll    = 250 * time.Millisecond
	DefaultAllowanceMaxPoll = 2 * time.Second
	DefaultAllowanceSkew    = time.Second
)

// Window is the Hood rate limiter of the process as the allowance needs
// it (implemented by *hood.Limiter).
type Window interface {
	Sent() []time.Time     // the starts counted in the long window
	Seed(sent []time.Time) // replace the finished starts counted
	Capacity() int         // requests allowed in the long window
}

// AllowanceOptions configure an Allowance.
type AllowanceOptions struct {
	Vault    Vault
	Mount    string        // KV v2 mount
	Path     string        // the allowance lives at <Path>/_meta/hood-allowance
	Identity string        // this process's name in the document (the Store's Identity)
	TTL      time.Duration // how long a holder keeps it without renewing
	// Skew is added to the send times a holder hands over before the next
	// holder counts them: clock skew between hosts up to Skew cannot let
	// a request through early. Default DefaultAllowanceSkew.
	Skew time.Duration
	// Poll is how soon a rotator that waits reads the document again; the
	// wait doubles with each read that finds the same wait going on, up to
	// MaxPoll. Defaults DefaultAllowancePoll, DefaultAllowanceMaxPoll.
	Poll    time.Duration
	MaxPoll time.Duration
	// Budget is how many requests the holder may send between two writes
	// of the document (each write hands over the send times so far): a
	// holder that dies leaves at most Budget requests the next holder has
	// not been told of, and the next holder counts them as sent at the
	// latest instant they can have been. Default: an eighth of the long
	// window's capacity.
	Budget  int
	Window  Window
	Now     func() time.Time
	Logger  *slog.Logger
	Timeout time.Duration // bounds each Vault request; default DefaultTimeout
}

// Allowance is the fleet's Hood allowance (docs/ha.md, "Rate limits"): a
// lease, in one KV v2 document, that a rotator must hold to send Hood
// requests, so that one rotator at a time uses Hood's whole allowance.
// The holder renews it every TTL/3 and sends nothing once less than TTL/6
// of it is left; on release it writes the send times its limiter counts,
// and the next holder seeds its limiter with them. Its methods are safe
// for concurrent use; it implements hood.Gate.
type Allowance struct {
	o   AllowanceOptions
	log *slog.Logger

	turn chan struct{} // one Acquire at a time talks to Vault

	renewMu sync.Mutex // one write of the lease at a time (renewal, budget)

	mu sync.Mutex
	// granted counts the request starts Start let through; written is
	// granted as it was when the last write that succeeded took its
	// snapshot of the send times: granted - written starts may be missing
	// from the document, and Start keeps it within Budget.
	granted int64
	written int64
	held    bool
	version int       // version of the document this process wrote last
	expires time.Time // end of the lease this process holds
	stop    context.CancelFunc
	renewed chan struct{} // closed when the renewal goroutine ends
}

// allowanceDoc is the document: the lease, and the send times handed over.
type allowanceDoc struct {
	Holder  string  `json:"holder"`  // "" when nobody holds it
	Expires string  `json:"expires"` // RFC 3339, UTC; "" when Holder is ""
	Last    string  `json:"last"`    // who wrote Sent
	Base    int64   `json:"base_ms"` // unix milliseconds
	Sent    []int64 `json:"sent_ms"` // send times, milliseconds after Base
	// Budget is how many requests the holder may send after this write
	// before it writes again (0 in documents of older rotators: a whole
	// long window is assumed). Readers that do not know Unknown count
	// twice it.
	Budget int `json:"budget,omitempty"`
	// Unknown is the most requests the holder may have sent that this
	// write does not list: its budget, counted exactly (hood.Gate's
	// Start). 0 in documents of older rotators, whose count was looser:
	// then twice Budget is assumed.
	Unknown int `json:"unknown_max,omitempty"`
	// TTL is the holder's lease_ttl in milliseconds: it stops sending
	// TTL/6 before Expires (0 in documents of older rotators: the
	// reader's own TTL is assumed).
	TTL int64 `json:"ttl_ms,omitempty"`
}

// AllowanceWaitError is the error of an Acquire that ended (its context)
// while another rotator held the allowance.
type AllowanceWaitError struct {
	Holder string    // the holder last seen
	Until  time.Time // the end of its lease last seen
	Err    error     // the context's error
}

func (e *AllowanceWaitError) Error() string {
	return fmt.Sprintf("hood allowance held by %s until %s: %v", e.Holder, e.Until.UTC().Format(time.RFC3339Nano), e.Err)
}

func (e *AllowanceWaitError) Unwrap() error { return e.Err }

// ErrAllowanceLost is the error of a Release after another rotator took
// the allowance over (this process could not renew it in time).
var ErrAllowanceLost = errors.New("ha: the hood allowance was taken over by another rotator")

// NewAllowance returns an Allowance; it makes no Vault request.
func NewAllowance(o AllowanceOptions) (*Allowance, error) {
	o.Mount, o.Path = strings.Trim(o.Mount, "/"), strings.Trim(o.Path, "/")
	switch {
	case o.Vault == nil || o.Window == nil:
		return nil, errors.New("ha: allowance: no Vault client or no limiter")
	case o.Mount == "" || o.Path == "" || o.Identity == "":
		return nil, errors.New("ha: allowance: mount, path and identity are required")
	case o.TTL <= 0 || o.Skew < 0 || o.Poll < 0 || o.MaxPoll < 0 || o.Timeout < 0:
		return nil, fmt.Errorf("ha: allowance: bad durations (ttl %s, skew %s, poll %s, max poll %s, timeout %s)", o.TTL, o.Skew, o.Poll, o.MaxPoll, o.Timeout)
	}
	if o.Skew == 0 {
		o.Skew = DefaultAllowanceSkew
	}
	if o.Poll == 0 {
		o.Poll = DefaultAllowancePoll
	}
	if o.MaxPoll == 0 {
		o.MaxPoll = DefaultAllowanceMaxPoll
	}
	o.MaxPoll = max(o.MaxPoll, o.Poll)
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Budget <= 0 {
		o.Budget = BudgetFor(o.Window.Capacity())
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Allowance{o: o, log: log, turn: make(chan struct{}, 1)}, nil
}

// BudgetFor is the default budget of a holder whose long window allows
// perLong requests: an eighth of them (at least 1).
func BudgetFor(perLong int) int { return max(perLong/8, 1) }

// where names the document in errors and logs.
func (a *Allowance) where() string { return a.o.Mount + "/" + a.o.Path + "/" + allowanceName }

// Held reports whether this process may send now: it holds the allowance
// with more than TTL/6 of it left.
func (a *Allowance) Held() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.validLocked()
}

func (a *Allowance) validLocked() bool {
	return a.held && a.o.Now().Before(a.expires.Add(-a.o.TTL/6))
}

// Start is asked by the limiter in the same step that records a request
// start (hood.Gate): true lets the request start and counts it; false, when
// this process does not hold the allowance, or holds it with less than
// TTL/6 left, or sent Budget requests since its last write, sends the
// limiter back to Acquire (which waits, or writes the document). So a
// holder that dies leaves at most Budget starts its document does not
// list. It takes no lock of the limiter's.
func (a *Allowance) Start() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.validLocked() || a.granted-a.written >= int64(a.o.Budget) {
		return false
	}
	a.granted++
	return true
}

// unwritten counts the starts let through since the snapshot of the last
// write that succeeded.
func (a *Allowance) unwritten() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return int(a.granted - a.written)
}

// Acquire returns nil at once when this process holds the allowance;
// otherwise it waits until the document is free (released, or its lease
// ran out), takes it with check-and-set, and seeds the limiter with the
// send times the last holder handed over. A *AllowanceWaitError says ctx
// ended first; a Vault error other than a check-and-set conflict is
// returned as is.
func (a *Allowance) Acquire(ctx context.Context) error {
	if a.Held() {
		return a.withinBudget(ctx)
	}
	select {
	case a.turn <- struct{}{}:
	case <-ctx.Done():
		return &AllowanceWaitError{Holder: "another request of this rotator", Until: a.o.Now(), Err: ctx.Err()}
	}
	defer func() { <-a.turn }()
	var last *AllowanceWaitError // the holder last seen
	for polls := 0; ; polls++ {
		if a.Held() {
			return a.withinBudget(ctx)
		}
		busy, err := a.try(ctx)
		switch {
		case err != nil && last != nil && ctx.Err() != nil:
			last.Err = ctx.Err() // ctx ended during a read: still waiting for the holder
			return last
		case err != nil:
			return err
		case busy == nil:
			continue // taken (Held says so), or a check-and-set race lost: read again
		}
		last = busy
		if err := sleep(ctx, a.pollWait(polls, busy.Until)); err != nil {
			busy.Err = err
			return busy
		}
	}
}

// pollWait is how long a rotator that waits for the allowance sleeps
// before its next read: Poll at first, doubling with every read that
// finds it held (by whichever holder), up to MaxPoll (a holder's release
// is seen at most MaxPoll late, while a pass of minutes costs a few reads
// a minute, not four a second), and never past the end of the holder's
// lease.
func (a *Allowance) pollWait(polls int, until time.Time) time.Duration {
	wait := min(a.o.Poll<<min(polls, 16), a.o.MaxPoll)
	return min(wait, max(until.Sub(a.o.Now()), time.Millisecond))
}

// withinBudget writes the document (renewing the lease, with the send
// times so far) once Budget requests were sent since the last write, so
// that the next holder is never told of fewer than all but Budget of them.
func (a *Allowance) withinBudget(ctx context.Context) error {
	if a.unwritten() < a.o.Budget {
		return nil
	}
	for {
		err := a.renewSpent(ctx)
		if err == nil || errors.Is(err, ErrAllowanceLost) {
			return err
		}
		// Vault did not answer: sending on would leave the next holder
		// more unknown requests than the budget it counts; wait and
		// write again (the lease still runs: renewals go on too).
		a.log.Warn("hood send times not handed over: waiting to send more", "path", a.where(), "error", err.Error())
		if serr := sleep(ctx, a.o.Poll); serr != nil {
			return fmt.Errorf("ha: hand the hood send times over before sending more: %w", err)
		}
		if !a.Held() {
			return fmt.Errorf("%w: its lease ran out while its send times could not be handed over", ErrAllowanceLost)
		}
		if a.unwritten() < a.o.Budget {
			return nil // the renewal loop wrote meanwhile
		}
	}
}

// try reads the document and takes the allowance when it is free. It
// returns who holds it when another rotator does, and nil, nil when this
// process holds it now or lost a check-and-set race (to read again).
func (a *Allowance) try(ctx context.Context) (*AllowanceWaitError, error) {
	rctx, cancel := context.WithTimeout(ctx, a.o.Timeout)
	defer cancel()
	var d allowanceDoc
	version, found, err := a.o.Vault.ReadDoc(rctx, a.o.Mount, a.o.Path+"/"+allowanceName, &d)
	if err != nil {
		return nil, fmt.Errorf("ha: read the hood allowance at %s: %w", a.where(), err)
	}
	now := a.o.Now()
	expires, err := d.expiry()
	if err != nil {
		return nil, fmt.Errorf("ha: the hood allowance at %s (version %d): %w", a.where(), version, err)
	}
	if found && d.Holder != "" && d.Holder != a.o.Identity && now.Before(expires) {
		return &AllowanceWaitError{Holder: d.Holder, Until: expires}, nil
	}
	seed, dead := a.seedFrom(d, found, expires)
	until := now.Add(a.o.TTL)
	next, mark := d, int64(0)
	if seed == nil {
		// This process's limiter counts every request that matters (its
		// own, and those it was handed before): the document gets its
		// send times, as a renewal's does, so that none of its starts
		// since its last write goes unlisted.
		a.mu.Lock()
		mark = a.granted // before handover's snapshot, as in renew
		a.mu.Unlock()
		next = a.handover(until)
	} else {
		// The limiter counts the send times handed over once seeded: the
		// document keeps them until this process's first write.
		next.Holder, next.Expires = a.o.Identity, until.UTC().Format(time.RFC3339Nano)
		next.Budget, next.Unknown, next.TTL = a.o.Budget, a.o.Budget, a.o.TTL.Milliseconds()
	}
	nv, err := a.o.Vault.WriteDoc(rctx, a.o.Mount, a.o.Path+"/"+allowanceName, next, version)
	if errors.Is(err, vault.ErrConflict) {
		return nil, nil // another rotator wrote it since: read again
	}
	if err != nil {
		return nil, fmt.Errorf("ha: take the hood allowance at %s: %w", a.where(), err)
	}
	if seed != nil {
		a.o.Window.Seed(seed)
	}
	a.mu.Lock()
	if a.stop != nil {
		a.stop() // the renewal of a lease this process had lost
	}
	a.held, a.version, a.expires = true, nv, until
	if seed == nil {
		a.written = mark
	} else {
		// This process's own earlier starts were handed over at its
		// release, or counted by the holder it now follows as a dead
		// holder's budget: the seeded send times hold them.
		a.written = a.granted
	}
	a.startRenewLocked()
	a.mu.Unlock()
	a.log.Info("hood allowance taken", "path", a.where(), "version", nv, "handed_over", len(seed),
		"dead_holder", dead, "until", until.UTC().Format(time.RFC3339Nano))
	return nil, nil
}

// seedFrom returns the send times the limiter must count before this
// process sends (nil: keep its own), and the holder whose lease ran out
// without a release ("" if none). The times handed over are shifted later
// by Skew. A holder that died may have sent, after its last write, up to
// the document's Unknown (twice its Budget in a document of an older
// rotator; a whole long window in one without a budget) until TTL/6 before
// its lease's end, when it had to stop: those are counted as sent at that
// instant.
func (a *Allowance) seedFrom(d allowanceDoc, found bool, expires time.Time) ([]time.Time, string) {
	if !found || d.Holder == a.o.Identity {
		return nil, "" // taken back from itself: its limiter counted them
	}
	dead := ""
	if d.Holder != "" && d.Holder != a.o.Identity {
		dead = d.Holder
	}
	if dead == "" && (d.Last == a.o.Identity || d.Last == "") {
		return nil, "" // this process's limiter counted them itself
	}
	out := make([]time.Time, 0, len(d.Sent))
	for _, ms := range d.Sent {
		out = append(out, time.UnixMilli(d.Base+ms).Add(a.o.Skew))
	}
	if dead != "" {
		ttl := a.o.TTL
		if d.TTL > 0 {
			ttl = time.Duration(d.TTL) * time.Millisecond // the dead holder's own
		}
		at := expires.Add(-ttl / 6).Add(a.o.Skew)
		unknown := a.o.Window.Capacity()
		switch {
		case d.Unknown > 0:
			unknown = min(d.Unknown, unknown)
		case d.Budget > 0: // a document of an older rotator
			unknown = min(2*d.Budget, unknown)
		}
		for range unknown {
			out = append(out, at)
		}
	}
	return out, dead
}

// expiry parses the document's lease end (zero when nobody holds it).
func (d allowanceDoc) expiry() (time.Time, error) {
	if d.Holder == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, d.Expires)
	if err != nil {
		return time.Time{}, fmt.Errorf("its lease, held by %s, has an expiry that is not an RFC 3339 time", d.Holder)
	}
	return t, nil
}

// handover is the document this process writes: held until until (zero:
// released), with its limiter's send times.
func (a *Allowance) handover(until time.Time) allowanceDoc {
	d := allowanceDoc{Last: a.o.Identity}
	if !until.IsZero() {
		d.Holder, d.Expires = a.o.Identity, until.UTC().Format(time.RFC3339Nano)
		d.Budget, d.Unknown, d.TTL = a.o.Budget, a.o.Budget, a.o.TTL.Milliseconds()
	}
	sent := a.o.Window.Sent()
	if len(sent) > 0 {
		d.Base = sent[0].UnixMilli()
		d.Sent = make([]int64, len(sent))
		for i, t := range sent {
			// Rounded up: a send time handed over is never earlier.
			d.Sent[i] = (t.Sub(time.UnixMilli(d.Base)) + time.Millisecond - 1).Milliseconds()
		}
	}
	return d
}

// startRenewLocked starts the goroutine that renews the lease every TTL/3.
func (a *Allowance) startRenewLocked() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	a.stop, a.renewed = cancel, done
	go func() {
		defer close(done)
		a.renewLoop(ctx)
	}()
}

// renewLoop renews until ctx ends or the lease is lost; a failed write is
// tried again every Poll (the holder stops sending on its own at TTL/6
// before the end).
func (a *Allowance) renewLoop(ctx context.Context) {
	wait := a.o.TTL / 3
	for {
		if sleep(ctx, wait) != nil {
			return
		}
		err := a.renew(ctx)
		switch {
		case err == nil:
			wait = a.o.TTL / 3
		case errors.Is(err, ErrAllowanceLost):
			a.log.Warn("hood allowance lost: no hood request until it is taken again", "path", a.where(), "error", err.Error())
			return
		case ctx.Err() != nil:
			return
		default:
			a.log.Warn("hood allowance not renewed, trying again", "path", a.where(), "error", err.Error())
			wait = a.o.Poll
		}
	}
}

// renewSpent is renew for a spent budget: of several requests that found
// it spent at once, the first writes and the others find it written.
func (a *Allowance) renewSpent(ctx context.Context) error {
	a.renewMu.Lock()
	defer a.renewMu.Unlock()
	if a.unwritten() < a.o.Budget {
		return nil
	}
	return a.renewLocked(ctx)
}

// renew extends the lease to now + TTL with check-and-set on the version
// written last, handing over the send times so far (so that the next
// holder knows them even if this process dies).
func (a *Allowance) renew(ctx context.Context) error {
	a.renewMu.Lock()
	defer a.renewMu.Unlock()
	return a.renewLocked(ctx)
}

// renewLocked is renew with renewMu held.
func (a *Allowance) renewLocked(ctx context.Context) error {
	a.mu.Lock()
	// mark is taken before handover's snapshot of the send times: a start
	// let through in between is both listed and counted as unlisted.
	version, held, mark := a.version, a.held, a.granted
	a.mu.Unlock()
	if !held {
		return ErrAllowanceLost
	}
	until := a.o.Now().Add(a.o.TTL)
	rctx, cancel := context.WithTimeout(ctx, a.o.Timeout)
	defer cancel()
	nv, err := a.o.Vault.WriteDoc(rctx, a.o.Mount, a.o.Path+"/"+allowanceName, a.handover(until), version)
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case errors.Is(err, vault.ErrConflict):
		if a.version == version {
			a.held = false
		}
		return fmt.Errorf("%w: the document at %s changed since version %d", ErrAllowanceLost, a.where(), version)
	case err != nil:
		return fmt.Errorf("ha: renew the hood allowance at %s: %w", a.where(), err)
	}
	if a.held && a.version == version {
		a.version, a.expires, a.written = nv, until, mark
	}
	return nil
}

// Release hands the allowance over: it stops the renewal and writes the
// document free, with the send times the limiter counts, with
// check-and-set on the version written last. Nothing happens when this
// process does not hold it. ErrAllowanceLost says another rotator took it
// over meanwhile.
func (a *Allowance) Release(ctx context.Context) error {
	a.mu.Lock()
	stop, renewed := a.stop, a.renewed
	a.stop, a.renewed = nil, nil
	a.mu.Unlock()
	if stop == nil {
		return nil
	}
	stop()
	<-renewed
	a.renewMu.Lock() // after the renewal goroutine ended: it takes renewMu
	defer a.renewMu.Unlock()
	a.mu.Lock()
	version, held := a.version, a.held
	a.held = false
	a.mu.Unlock()
	if !held {
		return ErrAllowanceLost
	}
	rctx, cancel := context.WithTimeout(ctx, a.o.Timeout)
	defer cancel()
	d := a.handover(time.Time{})
	_, err := a.o.Vault.WriteDoc(rctx, a.o.Mount, a.o.Path+"/"+allowanceName, d, version)
	switch {
	case errors.Is(err, vault.ErrConflict):
		return fmt.Errorf("%w: the document at %s changed since version %d", ErrAllowanceLost, a.where(), version)
	case err != nil:
		return fmt.Errorf("ha: release the hood allowance at %s: %w", a.where(), err)
	}
	a.log.Info("hood allowance released", "path", a.where(), "handed_over", len(d.Sent))
	return nil
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
