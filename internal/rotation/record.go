package rotation

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ocamba-rotator/rotator/internal/secret"
	"github.com/ocamba-rotator/rotator/internal/vault"
)

// Step is where a rotation stands. A run moves a record from rest (none,
// done, undone) through minting → storing → stored → verified → revoking
// → done, or, on a failure before every consumer is verified, through
// undoing → undone.
type Step string

// The steps (docs/rotation.md, Steps).
const (
	StepNone     Step = ""         // never run
	StepMinting  Step = "minting"  // a credential is being created at the provider
	StepStoring  Step = "storing"  // minted; being written to Vault as a new version
	StepStored   Step = "stored"   // in Vault; being pushed to and verified on every consumer
	StepVerified Step = "verified" // every consumer confirmed on it; the old one waits out grace
	StepRevoking Step = "revoking" // the old credential is being revoked at the provider
	StepDone     Step = "done"     // rest: the last run completed
	StepUndoing  Step = "undoing"  // a run failed: Vault and consumers back to the old credential, the new one deleted
	StepUndone   Step = "undone"   // rest: the last run was undone
)

// Steps lists every step, in order, for metrics and docs.
var Steps = []Step{StepMinting, StepStoring, StepStored, StepVerified, StepRevoking, StepDone, StepUndoing, StepUndone}

// atRest reports whether no run is in progress at s.
func (s Step) atRest() bool { return s == StepNone || s == StepDone || s == StepUndone }

// Record is a rotation's step record, the one truth about a run in
// progress: it lives in Vault (KV v2, written with check-and-set) so that a
// restart, a crash or another rotator resumes or undoes the run. It holds
// no credential: the minted one is known by its provider key id and a
// salted hash.
type Record struct {
	Name     string    `json:"name"`
	Provider string    `json:"provider"`
	Step     Step      `json:"step"`
	Since    time.Time `json:"since"` // when Step began
	// Run names the run's credential at the provider: key_prefix + UTC
	// time (SendGrid key name, Mailgun key description).
	Run        string `json:"run,omitempty"`
	OldVersion int    `json:"old_version,omitempty"` // the secret's version the run started from
	OldKeyID   string `json:"old_key_id,omitempty"`  // the old credential's key id, when rotator minted it
	NewKeyID   string `json:"new_key_id,omitempty"`
	// NewHash is HMAC-SHA256(NewSalt, new credential), hex: tells the
	// run's own Vault version from another writer's after a crash.
	NewHash    string     `json:"new_hash,omitempty"`
	NewSalt    string     `json:"new_salt,omitempty"`
	NewVersion int        `json:"new_version,omitempty"` // the secret's version the run wrote
	GraceUntil *time.Time `json:"grace_until,omitempty"`
	// MintRefused says the provider answered the mint with a refusal: it
	// created nothing, so an undo deletes nothing (Twilio has one
	// secondary token per account: deleting it could end one in use).
	MintRefused bool       `json:"mint_refused,omitempty"`
	Reason      string     `json:"reason,omitempty"` // why the run is being undone
	LastError   string     `json:"last_error,omitempty"`
	ErrorAt     *time.Time `json:"error_at,omitempty"`
	// Current is the credential the last completed run left in Vault.
	Current Current `json:"current"`
	// HeldBy and HeldUntil are the lease: one rotator runs a rotation at a
	// time; another may take over only after HeldUntil.
	HeldBy    string    `json:"held_by,omitempty"`
	HeldUntil time.Time `json:"held_until"`
}

// Current is the credential a completed run left in the secret. Hash and
// Salt tell whether the secret still holds it (a write of another key of
// the secret makes a new version, not a new credential).
type Current struct {
	Version  int        `json:"version,omitempty"`
	KeyID    string     `json:"key_id,omitempty"`
	Hash     string     `json:"hash,omitempty"`
	Salt     string     `json:"salt,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
}

// holds reports whether v is the credential the last completed run left.
func (c Current) holds(v secret.Value) bool {
	return c.Hash != "" && !v.IsZero() && hashOf(c.Salt, v) == c.Hash
}

// hashOf is the hex HMAC-SHA256 of v under the hex salt.
func hashOf(salt string, v secret.Value) string {
	key, _ := hex.DecodeString(salt)
	h := hmac.New(sha256.New, key)
	h.Write([]byte(v.Reveal()))
	return hex.EncodeToString(h.Sum(nil))
}

// newSalt draws a hex salt of 32 random bytes.
func newSalt() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("draw salt: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// ErrBusy is a rotation another rotator holds (its lease is live).
var ErrBusy = errors.New("rotation held by another rotator")

// BusyError is a rotation another rotator holds, until when.
type BusyError struct {
	Holder string
	Until  time.Time
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%s: %s until %s", ErrBusy, e.Holder, e.Until.UTC().Format(time.RFC3339))
}

// Unwrap makes errors.Is(err, ErrBusy) true.
func (e *BusyError) Unwrap() error { return ErrBusy }

// ErrLostLease is a write of the record refused because another rotator
// wrote it since: this rotator must stop the run at once.
var ErrLostLease = errors.New("rotation lease lost: another rotator wrote the record")

// Docs is what the record store needs of Vault.
type Docs interface {
	ReadDoc(ctx context.Context, mount, path string, out any) (version int, found bool, err error)
	WriteDoc(ctx context.Context, mount, path string, in any, cas int) (version int, err error)
}

// lease is one rotation's record, held by this rotator: every write is a
// check-and-set on the version last written, so a rotator that lost the
// lease writes nothing more.
type lease struct {
	docs        Docs
	mount, path string
	id          string
	ttl         time.Duration
	now         func() time.Time

	mu      sync.Mutex
	version int
	rec     Record
}

// readRecord reads a rotation's record (the zero Record when none).
func readRecord(ctx context.Context, docs Docs, mount, path string) (Record, int, error) {
	var rec Record
	version, _, err := docs.ReadDoc(ctx, mount, path, &rec)
	if err != nil {
		return Record{}, 0, fmt.Errorf("read rotation record: %w", err)
	}
	return rec, version, nil
}

// acquire takes the lease on the record at mount/path.
func acquire(ctx context.Context, docs Docs, mount, path, id string, ttl time.Duration, now func() time.Time) (*lease, error) {
	rec, version, err := readRecord(ctx, docs, mount, path)
	if err != nil {
		return nil, err
	}
	if rec.HeldBy != "" && rec.HeldBy != id && now().Before(rec.HeldUntil) {
		return nil, &BusyError{Holder: rec.HeldBy, Until: rec.HeldUntil}
	}
	l := &lease{docs: docs, mount: mount, path: path, id: id, ttl: ttl, now: now, version: version, rec: rec}
	if err := l.save(ctx, func(*Record) {}); err != nil {
		if errors.Is(err, ErrLostLease) {
			return nil, fmt.Errorf("%w: it changed while being taken", ErrBusy)
		}
		return nil, err
	}
	return l, nil
}

// record returns a copy of the record as last written.
func (l *lease) record() Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rec
}

// save applies change to the record and writes it, extending the lease.
func (l *lease) save(ctx context.Context, change func(*Record)) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec := l.rec
	change(&rec)
	rec.HeldBy, rec.HeldUntil = l.id, l.now().Add(l.ttl).UTC()
	return l.writeLocked(ctx, rec)
}

// release writes the record with no holder.
func (l *lease) release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec := l.rec
	rec.HeldBy, rec.HeldUntil = "", time.Time{}
	return l.writeLocked(ctx, rec)
}

func (l *lease) writeLocked(ctx context.Context, rec Record) error {
	version, err := l.docs.WriteDoc(ctx, l.mount, l.path, rec, l.version)
	if errors.Is(err, vault.ErrConflict) {
		return fmt.Errorf("%w (%s/%s changed since version %d)", ErrLostLease, l.mount, l.path, l.version)
	}
	if err != nil {
		return fmt.Errorf("write rotation record: %w", err)
	}
	l.version, l.rec = version, rec
	return nil
}

// keepAlive extends the lease every third of its TTL until ctx ends; a
// lost lease cancels the run through lost.
func (l *lease) keepAlive(ctx context.Context, lost context.CancelCauseFunc) {
	t := time.NewTicker(l.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			err := l.save(ctx, func(*Record) {})
			switch {
			case errors.Is(err, ErrLostLease):
				lost(err)
				return
			case err != nil && !l.now().Before(l.record().HeldUntil.Add(-l.ttl/6)):
				// Renewals failed until the lease is about to run out:
				// another rotator may take it over, so stop acting now.
				lost(fmt.Errorf("%w: it could not be renewed before it ran out: %w", ErrLostLease, err))
				return
			}
		}
	}
}

// AtRest reports whether no run is in progress at s ("none", as Status
// writes StepNone, included).
func (s Step) AtRest() bool { return s.atRest() || s == "none" }
