package ha

import (
	"errors"
	"fmt"
	"time"

	"github.com/ocamba-rotator/rotator/internal/state"
	"github.com/ocamba-rotator/rotator/internal/vault"
)

// Begin takes the lease on the integration and records that a push of p
// starts: it writes the record Get returned at revision, with Pending = p,
// ID and Provider set, and this store as the holder until now + TTL, with
// check-and-set on revision. It returns an error that errors.Is
// state.ErrNotHolder, and writes nothing, when the record was not read at
// revision by this store's last Get, when another rotator held a live
// lease at that read, and when the record changed since (the
// check-and-set failed): then this rotator must not push.
func (s *Store) Begin(name, id, provider string, revision int, p state.Pushed) error {
	if s.readOnly {
		return fmt.Errorf("%w: begin integration %q", ErrReadOnly, name)
	}
	if err := checkName(name); err != nil {
		return fmt.Errorf("ha: begin: %w", err)
	}
	now := s.now()
	s.mu.Lock()
	r, ok := s.reads[name]
	delete(s.reads, name) // a read serves one Begin
	s.mu.Unlock()
	switch {
	case !ok:
		return fmt.Errorf("ha: begin integration %q: %w: its record at %s was not read first", name, state.ErrNotHolder, s.where(name))
	case r.Revision != revision:
		return fmt.Errorf("ha: begin integration %q: %w: its record at %s was last read at version %d, not %d",
			name, state.ErrNotHolder, s.where(name), r.Revision, revision)
	case r.HeldBy != "" && now.Before(r.HeldUntil):
		return fmt.Errorf("ha: begin integration %q: %w: held by %s until %s",
			name, state.ErrNotHolder, r.HeldBy, r.HeldUntil.UTC().Format(time.RFC3339Nano))
	}
	rec := own(r)
	rec.ApplyBegin(id, provider, p)
	rec.Name, rec.Updated = name, now.UTC()
	expires := now.Add(s.ttl)

	ctx, cancel := s.ctx()
	defer cancel()
	s.mu.Lock()
	s.begins[name]++
	s.mu.Unlock()
	version, err := s.vault.WriteDoc(ctx, s.mount, s.recordPath(name), newDocument(s.id, expires, rec), revision)
	s.mu.Lock()
	if s.begins[name]--; s.begins[name] == 0 {
		delete(s.begins, name)
	}
	if err == nil {
		s.leases[name] = &lease{version: version, rec: rec, held: true, expires: expires}
	}
	s.mu.Unlock()
	if err != nil {
		if errors.Is(err, vault.ErrConflict) {
			return fmt.Errorf("ha: begin integration %q: %w: the record at %s changed since version %d was read",
				name, state.ErrNotHolder, s.where(name), revision)
		}
		return fmt.Errorf("ha: begin integration %q: write the record at %s: %w", name, s.where(name), err)
	}
	s.log.Debug("lease taken", "integration", name, "record_path", s.where(name), "version", version,
		"until", expires.UTC().Format(time.RFC3339Nano))
	return nil
}

// Fence extends the lease this store holds on the integration to now +
// TTL, with check-and-set on the version it wrote last: the engine calls it
// right before a rollback's PATCH. It returns an error that errors.Is
// state.ErrNotHolder when this store holds no lease on the integration or
// lost it (another rotator wrote the record since).
func (s *Store) Fence(name string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("ha: fence: %w", err)
	}
	s.mu.Lock()
	l := s.leases[name]
	s.mu.Unlock()
	if l == nil || !l.held {
		return fmt.Errorf("ha: fence integration %q: %w: this rotator holds no lease on it", name, state.ErrNotHolder)
	}
	return s.writeHeld("fence", name, l, s.now().Add(s.ttl), nil)
}

// Confirm records that Hood confirmed the push p and its verification
// passed (state.Record.ApplyConfirm) and releases the lease, with
// check-and-set on the version this store wrote last. It returns an error
// that errors.Is state.ErrNotHolder when this store did not begin a push of
// the integration or lost its lease (another rotator wrote the record
// since).
func (s *Store) Confirm(name string, p state.Pushed, a state.Attempt) error {
	return s.finish("confirm", name, func(r *state.Record) { r.ApplyConfirm(p, a) })
}

// Fail records a failed push (state.Record.ApplyFail) and releases the
// lease, as Confirm does.
func (s *Store) Fail(name string, f state.Failure) error {
	return s.finish("fail", name, func(r *state.Record) { r.ApplyFail(f) })
}

// finish writes the outcome of a push begun by this store and releases the
// lease. After a release, one more outcome of the same push may follow (a
// rollback's Confirm, then the Fail of the push it undid), with
// check-and-set on the version the release wrote.
func (s *Store) finish(verb, name string, apply func(*state.Record)) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("ha: %s: %w", verb, err)
	}
	s.mu.Lock()
	l := s.leases[name]
	s.mu.Unlock()
	if l == nil {
		return fmt.Errorf("ha: %s integration %q: %w: this rotator holds no lease on it", verb, name, state.ErrNotHolder)
	}
	rec := own(l.rec)
	apply(&rec)
	rec.Name, rec.Updated = name, s.now().UTC()

	ctx, cancel := s.ctx()
	defer cancel()
	version, err := s.vault.WriteDoc(ctx, s.mount, s.recordPath(name), newDocument("", time.Time{}, rec), l.version)
	s.mu.Lock()
	if s.leases[name] == l {
		if err == nil {
			s.leases[name] = &lease{version: version, rec: rec}
		} else {
			delete(s.leases, name)
		}
	}
	s.mu.Unlock()
	if err != nil {
		if errors.Is(err, vault.ErrConflict) {
			return fmt.Errorf("ha: %s integration %q: %w: the record at %s changed since version %d was written by this rotator (its lease expired and another rotator took it)",
				verb, name, state.ErrNotHolder, s.where(name), l.version)
		}
		return fmt.Errorf("ha: %s integration %q: write the record at %s: %w", verb, name, s.where(name), err)
	}
	s.log.Debug("lease released", "integration", name, "record_path", s.where(name), "version", version, "outcome", verb)
	return nil
}

// writeHeld writes the record of the lease l, changed by apply when not
// nil, still held by this store until expires, with check-and-set on l's
// version, and remembers the new version. A conflict forgets the lease.
func (s *Store) writeHeld(verb, name string, l *lease, expires time.Time, apply func(*state.Record)) error {
	rec := own(l.rec)
	if apply != nil {
		apply(&rec)
		rec.Name, rec.Updated = name, s.now().UTC()
	}
	ctx, cancel := s.ctx()
	defer cancel()
	version, err := s.vault.WriteDoc(ctx, s.mount, s.recordPath(name), newDocument(s.id, expires, rec), l.version)
	conflict := errors.Is(err, vault.ErrConflict)
	s.mu.Lock()
	if s.leases[name] == l {
		switch {
		case err == nil:
			s.leases[name] = &lease{version: version, rec: rec, held: true, expires: expires}
		case conflict:
			delete(s.leases, name)
		}
		// Another error (Vault unreachable...) keeps the lease: the write
		// may not have been made, and a later write is a check-and-set.
	}
	s.mu.Unlock()
	if err != nil {
		if conflict {
			return fmt.Errorf("ha: %s integration %q: %w: the record at %s changed since version %d was written by this rotator (its lease expired and another rotator took it)",
				verb, name, state.ErrNotHolder, s.where(name), l.version)
		}
		return fmt.Errorf("ha: %s integration %q: write the record at %s: %w", verb, name, s.where(name), err)
	}
	return nil
}

// LeaseDeadline is when this store must be done with the push it began on
// the integration: the lease's expiry less a fifth of the TTL, so that its
// last write lands before another rotator may take the lease over. The
// engine bounds the PATCH (and its retries) by it, and extends the lease
// (Fence) before the read-back. ok is false when this store holds no lease
// on the integration.
func (s *Store) LeaseDeadline(name string) (deadline time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.leases[name]
	if l == nil || !l.held {
		return time.Time{}, false
	}
	return l.expires.Add(-s.ttl / 5), true
}

// suspectAttempts bounds MarkSuspect's check-and-set retries.
const suspectAttempts = 5

// MarkSuspect flags the integration's record as suspect (state.Record.Suspect):
// a PATCH of this rotator went out although its lease was taken over (it was
// paused or slow with the request on the wire), so it may have reached Hood
// after another rotator's push of newer settings. The next pass of any
// rotator then pushes even unchanged settings. The flag is written whoever
// holds the lease, with check-and-set on a fresh read (retried a few times):
// a holder in the middle of a push then loses its check-and-set, and its push
// is made again too. The lease fields are written back as read.
func (s *Store) MarkSuspect(name string) error {
	if s.readOnly {
		return fmt.Errorf("%w: mark suspect integration %q", ErrReadOnly, name)
	}
	if err := checkName(name); err != nil {
		return fmt.Errorf("ha: mark suspect: %w", err)
	}
	s.mu.Lock()
	delete(s.leases, name) // whatever this store held is gone
	s.mu.Unlock()
	ctx, cancel := s.ctx()
	defer cancel()
	for range suspectAttempts {
		d, version, found, err := s.read(ctx, name)
		if err != nil {
			return fmt.Errorf("ha: mark integration %q suspect: %w", name, err)
		}
		if !found {
			return nil // no confirmed push to doubt
		}
		holder, expires, err := d.lease()
		if err != nil {
			return fmt.Errorf("ha: mark integration %q suspect: the record at %s (version %d): %w", name, s.where(name), version, err)
		}
		rec := own(d.Record)
		if rec.Suspect {
			return nil
		}
		rec.Suspect = true
		rec.Name, rec.Updated = name, s.now().UTC()
		_, err = s.vault.WriteDoc(ctx, s.mount, s.recordPath(name), newDocument(holder, expires, rec), version)
		if err == nil {
			return nil
		}
		if !errors.Is(err, vault.ErrConflict) {
			return fmt.Errorf("ha: mark integration %q suspect: write the record at %s: %w", name, s.where(name), err)
		}
	}
	return fmt.Errorf("ha: mark integration %q suspect: the record at %s kept changing (%d check-and-set conflicts)", name, s.where(name), suspectAttempts)
}
