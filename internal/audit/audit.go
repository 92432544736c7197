// Package audit writes an append-only JSON-lines audit log of rotator's
// pushes, verifications and rollbacks.
//
// Each Record becomes one line, written with a single write(2) on a file
// opened with O_APPEND and then synced, so lines from concurrent writers
// never interleave and existing lines are never rewritten. A Record carries
// names and metadata only: it has no field that can hold a setting's value,
// and the caller must keep values out of Error as well.
package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"
)

// maxPerm is the widest permission an audit log file may have.
const maxPerm fs.FileMode = 0o600

// Record is one audit event. It holds names and metadata, never a value.
type Record struct {
	Time        time.Time `json:"time"`               // when; Write fills in now when zero; written in UTC
	Event       string    `json:"event"`              // "push" | "verify" | "rollback" | "rotation"
	Trigger     string    `json:"trigger"`            // "schedule" | "admin" | "startup" | "cli" | "watch" | "rotation"
	Caller      string    `json:"caller,omitempty"`   // admin client's address
	Integration string    `json:"integration"`        // integration name from the config
	ID          string    `json:"id"`                 // Hood integration id
	Provider    string    `json:"provider"`           // Hood provider
	VaultPath   string    `json:"vault_path"`         // mount/path of the Vault secret
	KVVersion   int       `json:"kv_version"`         // version of the Vault secret that was read
	Settings    []string  `json:"settings,omitempty"` // setting names only, never values
	Result      string    `json:"result"`             // "ok" | "failed" | "rolled_back" ...
	Error       string    `json:"error,omitempty"`    // error text; must not contain a value
	TraceID     string    `json:"trace_id,omitempty"` // Hood's trace id
	Rotation    string    `json:"rotation,omitempty"` // rotation name (event "rotation")
	Step        string    `json:"step,omitempty"`     // rotation step reached (event "rotation")
	KeyID       string    `json:"key_id,omitempty"`   // provider key id of the step, never a value
}

// Log is an open audit log. A Log from Open("") and a nil *Log discard every
// record. Its methods are safe for concurrent use.
type Log struct {
	mu     sync.Mutex
	path   string
	f      *os.File // nil for a no-op log
	closed bool
}

// Open opens the audit log at path for appending, creating it with mode 0600
// if it does not exist. It refuses a directory, any other non-regular file and
// an existing file whose permissions are wider than 0600. An empty path gives
// a no-op Log whose Write does nothing.
func Open(path string) (*Log, error) {
	if path == "" {
		return &Log{}, nil
	}
	// Check before opening so that a wrong file is refused without being
	// created, truncated or otherwise touched.
	if fi, err := os.Stat(path); err == nil {
		if err := check(path, fi); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("audit: stat %q: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, maxPerm)
	if err != nil {
		return nil, fmt.Errorf("audit: open %q: %w", path, err)
	}
	// Check again what was actually opened: the path may have changed since.
	fi, err := f.Stat()
	if err == nil {
		err = check(path, fi)
	} else {
		err = fmt.Errorf("audit: stat %q: %w", path, err)
	}
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return &Log{path: path, f: f}, nil
}

// check refuses a file that is not regular or whose permissions are wider
// than maxPerm.
func check(path string, fi fs.FileInfo) error {
	switch {
	case fi.IsDir():
		return fmt.Errorf("audit: %q is a directory, want a file", path)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("audit: %q is not a regular file (mode %s)", path, fi.Mode())
	case fi.Mode().Perm()&^maxPerm != 0:
		return fmt.Errorf("audit: %q has mode %#o, wider than %#o; run chmod 600 on it",
			path, fi.Mode().Perm(), maxPerm)
	}
	return nil
}

// Write appends r to the log as one JSON line, written with a single write
// and then synced to disk. A zero r.Time becomes the current time; the time
// is written in UTC. Write on a no-op or nil Log does nothing and returns nil,
// even after Close; Write on a closed file Log returns an error wrapping
// os.ErrClosed.
func (l *Log) Write(r Record) error {
	if l == nil {
		return nil
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = r.Time.UTC()

	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r); err != nil { // Encode appends the '\n'
		return fmt.Errorf("audit: encode %s record for %q: %w", r.Event, r.Integration, err)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	if l.closed {
		return fmt.Errorf("audit: write %q: %w", l.path, os.ErrClosed)
	}
	if _, err := l.f.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("audit: write %q: %w", l.path, err)
	}
	if err := l.f.Sync(); err != nil {
		return fmt.Errorf("audit: sync %q: %w", l.path, err)
	}
	return nil
}

// Close closes the log file. Closing a no-op, nil or already closed Log
// returns nil.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil || l.closed {
		return nil
	}
	l.closed = true
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("audit: close %q: %w", l.path, err)
	}
	return nil
}
