package ha

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ocamba-rotator/rotator/internal/state"
	"github.com/ocamba-rotator/rotator/internal/vault"
)

// document is the data of an integration's record in Vault.
type document struct {
	Holder  string       `json:"holder"`  // "" when nobody holds the lease
	Expires string       `json:"expires"` // RFC 3339, UTC; "" when Holder is ""
	Record  state.Record `json:"record"`
}

// newDocument is the document of rec held by holder until expires, or of
// no holder when holder is "".
func newDocument(holder string, expires time.Time, rec state.Record) document {
	d := document{Holder: holder, Record: rec}
	if holder != "" {
		d.Expires = expires.UTC().Format(time.RFC3339Nano)
	}
	return d
}

// lease returns the document's holder and the end of its lease.
func (d document) lease() (holder string, expires time.Time, err error) {
	if d.Holder == "" {
		return "", time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, d.Expires)
	if err != nil {
		// The parse error is left out: it quotes the text.
		return "", time.Time{}, fmt.Errorf("its lease, held by %s, has an expiry that is not an RFC 3339 time", d.Holder)
	}
	return d.Holder, t.UTC(), nil
}

// own returns a copy of r whose history can be appended to without
// touching r's, and without the fields that are not persisted.
func own(r state.Record) state.Record {
	r.History = slices.Clone(r.History)
	r.Unconfirmed = slices.Clone(r.Unconfirmed)
	r.Revision, r.HeldBy, r.HeldUntil = 0, "", time.Time{}
	return r
}

// read reads the record of name: the document, its version, and whether
// there is one (a deleted current version is none, with its version).
func (s *Store) read(ctx context.Context, name string) (document, int, bool, error) {
	var d document
	version, found, err := s.vault.ReadDoc(ctx, s.mount, s.recordPath(name), &d)
	if err != nil {
		return document{}, 0, false, fmt.Errorf("read the record at %s: %w", s.where(name), err)
	}
	return d, version, found, nil
}

// Get returns the record of the integration name, with its KV v2 version as
// Revision (0 when there is none; a deleted current version's number when
// it is deleted), and false when there is none. When another rotator holds
// a live lease on the integration, HeldBy and HeldUntil say who and until
// when; so they do when this very store holds it, for a push in progress
// (two pushes of one integration never overlap).
//
// The first Get loads the shared HMAC key (reading it, or creating it when
// there is none); until one succeeds, Fingerprint and SettingMACs are
// random.
func (s *Store) Get(name string) (state.Record, bool, error) {
	if err := checkName(name); err != nil {
		return state.Record{}, false, fmt.Errorf("ha: get: %w", err)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	if err := s.loadKey(ctx); err != nil {
		return state.Record{}, false, fmt.Errorf("ha: get integration %q: %w", name, err)
	}
	d, version, found, err := s.read(ctx, name)
	if err != nil {
		return state.Record{}, false, fmt.Errorf("ha: get integration %q: %w", name, err)
	}
	rec := state.Record{Name: name}
	var holder string
	var expires time.Time
	if found {
		if holder, expires, err = d.lease(); err != nil {
			return state.Record{}, false, fmt.Errorf("ha: get integration %q: the record at %s (version %d): %w", name, s.where(name), version, err)
		}
		rec = d.Record
		rec.Name = name
	}
	rec.Revision = version
	now := s.now()

	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leases[name]
	switch {
	case holder == "":
	case !now.Before(expires):
		if holder != s.id {
			s.log.Debug("lease expired: the integration may be taken over", "integration", name,
				"holder", holder, "expired", expires.Format(time.RFC3339Nano), "record_path", s.where(name))
		}
	case holder != s.id, l != nil && l.held, s.begins[name] > 0:
		// Another rotator's live lease, or this store's own for a push
		// in progress (its Begin may not have returned yet).
		rec.HeldBy, rec.HeldUntil = holder, expires
	}
	if l != nil && !l.held {
		delete(s.leases, name) // a new push starts from this read
	}
	s.reads[name] = rec
	return rec, found, nil
}

// Peek returns the record of the integration name as Get does (HeldBy when
// another rotator holds a live lease), but changes nothing this store keeps
// for a push (the read a Begin relies on, its leases) and does not load the
// HMAC key: for status pages and the like, which may run beside a pass.
func (s *Store) Peek(name string) (state.Record, bool, error) {
	if err := checkName(name); err != nil {
		return state.Record{}, false, fmt.Errorf("ha: peek: %w", err)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	d, version, found, err := s.read(ctx, name)
	if err != nil {
		return state.Record{}, false, fmt.Errorf("ha: peek integration %q: %w", name, err)
	}
	rec := state.Record{Name: name}
	if found {
		holder, expires, err := d.lease()
		if err != nil {
			return state.Record{}, false, fmt.Errorf("ha: peek integration %q: the record at %s (version %d): %w", name, s.where(name), version, err)
		}
		rec = d.Record
		rec.Name = name
		if holder != "" && holder != s.id && s.now().Before(expires) {
			rec.HeldBy, rec.HeldUntil = holder, expires
		}
	}
	rec.Revision = version
	return rec, found, nil
}

// Note appends a to the integration's history, with check-and-set on the
// version it reads first. While another rotator holds a live lease on the
// integration it writes nothing and returns nil: the holder writes the
// outcome. A conflict (another rotator wrote the record meanwhile) is an
// error that errors.Is state.ErrNotHolder: the note is dropped.
func (s *Store) Note(name string, a state.Attempt) error {
	if s.readOnly {
		return fmt.Errorf("%w: note integration %q", ErrReadOnly, name)
	}
	if err := checkName(name); err != nil {
		return fmt.Errorf("ha: note: %w", err)
	}
	s.mu.Lock()
	l := s.leases[name]
	s.mu.Unlock()
	if l != nil && l.held {
		// A push of this store is in progress: note it under the lease.
		return s.writeHeld("note", name, l, l.expires, func(r *state.Record) { r.ApplyNote(a) })
	}

	ctx, cancel := s.ctx()
	defer cancel()
	d, version, found, err := s.read(ctx, name)
	if err != nil {
		return fmt.Errorf("ha: note integration %q: %w", name, err)
	}
	var holder string
	var expires time.Time
	rec := state.Record{Name: name}
	if found {
		if holder, expires, err = d.lease(); err != nil {
			return fmt.Errorf("ha: note integration %q: the record at %s (version %d): %w", name, s.where(name), version, err)
		}
		rec = own(d.Record)
	}
	if holder != "" && holder != s.id && s.now().Before(expires) {
		s.log.Debug("note not written: another rotator holds the lease", "integration", name,
			"holder", holder, "until", expires.Format(time.RFC3339Nano))
		return nil
	}
	if holder == s.id {
		// A lease of this store whose push ended without an outcome
		// written (a Begin whose answer was lost): release it.
		holder = ""
	}
	rec.ApplyNote(a)
	rec.Name, rec.Updated = name, s.now().UTC()
	if _, err := s.vault.WriteDoc(ctx, s.mount, s.recordPath(name), newDocument(holder, expires, rec), version); err != nil {
		if errors.Is(err, vault.ErrConflict) {
			return fmt.Errorf("ha: note integration %q: %w: the record at %s changed since version %d was read; note dropped",
				name, state.ErrNotHolder, s.where(name), version)
		}
		return fmt.Errorf("ha: note integration %q: write the record at %s: %w", name, s.where(name), err)
	}
	return nil
}
