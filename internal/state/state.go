// Package state is rotator's durable per-integration state: for each
// integration, the last push Hood confirmed, the last push whose
// verification failed, a push in progress, and the last attempts. It lives in
// one bbolt file (state.path in the configuration).
//
// The file holds no setting value. A push is remembered by HMAC-SHA256
// fingerprints keyed by a random 32-byte key that is drawn when the file is
// created and kept in it, so equal settings give equal fingerprints across
// restarts while a fingerprint tells nothing about a value to whoever lacks
// the key. The file is created with mode 0600 and refused when its mode is
// wider.
//
// File format (schema 1). Bucket "meta" holds "magic" (the text
// "rotator-state"), "schema" (the decimal text "1"), "hmac_key" (32 raw
// bytes) and "created" (RFC 3339 text, UTC). Bucket "integrations" holds one
// JSON-encoded Record per integration, keyed by the integration's name.
// Every write is one bbolt read-write transaction, committed and fsynced
// before the method returns.
package state

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Schema is the version of the file format this package writes and reads.
const Schema = 1

// MaxHistory is the number of attempts a Record keeps.
const MaxHistory = 20

// KeySize is the size of the HMAC key, in bytes.
const KeySize = 32

const (
	// maxPerm is the widest permission a state file may have.
	maxPerm fs.FileMode = 0o600
	// lockTimeout bounds the wait for the file lock another process holds.
	lockTimeout = 2 * time.Second
	// magic identifies a rotator state file.
	magic = "rotator-state"

	// Domain labels keep a fingerprint and a setting MAC from ever being
	// equal, even for a single setting.
	domainFingerprint = "rotator/fingerprint/v1"
	domainSetting     = "rotator/setting/v1"
)

// Bucket and key names.
const (
	bucketMeta         = "meta"
	bucketIntegrations = "integrations"
	keyMagic           = "magic"
	keySchema          = "schema"
	keyHMAC            = "hmac_key"
	keyCreated         = "created"
)

// Errors of Open, for errors.Is.
var (
	// ErrLocked means another process (or another Store in this process)
	// holds the state file open.
	ErrLocked = errors.New("state file locked by another process")
	// ErrPermissions means the state file's mode is wider than 0600.
	ErrPermissions = errors.New("state file permissions too wide")
	// ErrNotStateFile means the file is not a rotator state file.
	ErrNotStateFile = errors.New("not a rotator state file")
	// ErrNewerSchema means the file was written by a newer rotator.
	ErrNewerSchema = errors.New("state file schema is newer than this rotator supports")
	// ErrCorrupt means the file is a rotator state file, or a bbolt file,
	// that is damaged: truncated, or with unreadable pages or records.
	ErrCorrupt = errors.New("state file is damaged")
)

// ErrNotHolder is returned by a shared state's (internal/ha) Begin, Confirm,
// Fail and Fence when another rotator holds or took the integration's lease,
// or when the record changed since it was read: the caller must not push (or
// roll back) on its view of the record. The local Store never returns it.
var ErrNotHolder = errors.New("not the lease holder")

// Pushed is one push of an integration's settings to Hood. It holds MACs of
// the settings, never a value.
type Pushed struct {
	// Fingerprint is Store.Fingerprint of the target and settings pushed.
	Fingerprint []byte `json:"fingerprint"`
	// SettingMACs is Store.SettingMACs of the settings pushed: per setting
	// name, a MAC of its value, so that a plan can tell which names changed.
	SettingMACs  map[string][]byte `json:"setting_macs,omitempty"`
	VaultPath    string            `json:"vault_path"`
	VaultVersion int               `json:"vault_version"`
	At           time.Time         `json:"at"`
}

// MaxUnconfirmed is the number of unconfirmed pushes a Record keeps; older
// ones are dropped (one is enough to push again).
const MaxUnconfirmed = 5

// Doubt is a push that may have reached Hood without being confirmed. Why
// holds names and metadata, never a value.
type Doubt struct {
	Pushed
	Why string `json:"why"`
}

// Failure is the outcome of a push that was not confirmed.
type Failure struct {
	Attempt Attempt
	// Rejected is a push whose verification failed: Hood took it and says
	// its credentials do not work. A scheduled pass does not push the same
	// settings again. Nil otherwise.
	Rejected *Pushed
	// Unconfirmed are the pushes of this attempt that reached Hood, or may
	// have (the push itself, a rollback), without being confirmed.
	Unconfirmed []Doubt
}

// Attempt is one pass's outcome for an integration. It holds names and
// metadata, never a value; Error must not contain one either.
type Attempt struct {
	At           time.Time `json:"at"`
	Trigger      string    `json:"trigger"`
	Result       string    `json:"result"`
	VaultVersion int       `json:"vault_version,omitempty"`
	Error        string    `json:"error,omitempty"`
	TraceID      string    `json:"trace_id,omitempty"`
	Settings     []string  `json:"settings,omitempty"` // names only
}

// Record is the state of one integration.
type Record struct {
	Name     string `json:"name"`
	ID       string `json:"id"`
	Provider string `json:"provider"`
	// Confirmed is the last push Hood confirmed and whose verification
	// passed.
	Confirmed *Pushed `json:"confirmed,omitempty"`
	// Failed is the last push whose verification failed: a scheduled pass
	// does not push the same settings again.
	Failed *Pushed `json:"failed,omitempty"`
	// Pending is a push that was started and is not yet confirmed or failed.
	// It is written before the request to Hood, so after a crash it tells
	// that Hood may hold settings that were never confirmed.
	Pending *Pushed `json:"pending,omitempty"`
	// Unconfirmed lists the pushes since Confirmed whose PATCH reached Hood,
	// or may have, without being confirmed: a verification that failed or
	// gave no verdict, a rollback that failed, a PATCH whose answer was
	// lost, an interrupted push. While it is not empty, Hood may hold any of
	// them rather than Confirmed, so settings equal to Confirmed are pushed
	// again. A confirmation clears it. Newest last, at most MaxUnconfirmed.
	Unconfirmed []Doubt `json:"unconfirmed,omitempty"`
	// Suspect: a PATCH made by a rotator that had lost its lease (ha.mode
	// vault; it was paused or slow with the request on the wire) may have
	// reached Hood after Confirmed was pushed, so Hood may hold older
	// settings than Confirmed says. The next pass pushes even unchanged
	// settings; a confirmation clears it.
	Suspect bool `json:"suspect,omitempty"`
	// History is the last MaxHistory attempts, newest last.
	History []Attempt `json:"history,omitempty"`
	// Updated is when the record was last written.
	Updated time.Time `json:"updated"`

	// The fields below are not persisted: a shared store (internal/ha)
	// sets them when it reads a record.

	// Revision is the version of the shared record that was read, for the
	// check-and-set of Begin; always 0 in the local Store.
	Revision int `json:"-"`
	// HeldBy is the identity of another rotator that holds a live lease on
	// the integration, until HeldUntil; "" when nobody else does.
	HeldBy    string    `json:"-"`
	HeldUntil time.Time `json:"-"`
}

// Store is an open state file. Its methods are safe for concurrent use; the
// file is locked against other processes until Close.
type Store struct {
	db   *bolt.DB
	path string
	key  []byte
}

// Open opens the state file at path, creating it with mode 0600 if it does
// not exist (its directory must exist), and draws the HMAC key when it
// creates the file. An empty existing file is treated as a new one.
//
// Open refuses a path that is not a regular file, a file whose mode is wider
// than 0600 (ErrPermissions), a file another process holds open for more than
// two seconds (ErrLocked), a file that is not a rotator state file
// (ErrNotStateFile), a file of a newer schema (ErrNewerSchema) and a damaged
// file (ErrCorrupt). Before it opens an existing file for writing, it reads
// every page and record of it read-only and runs bbolt's consistency check.
func Open(path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("state: open: no path given")
	}
	created, existing := false, false
	fi, err := os.Stat(path)
	switch {
	case err == nil:
		if err := check(fi); err != nil {
			return nil, fmt.Errorf("state: open %q: %w", path, err)
		}
		existing = fi.Size() > 0
	case errors.Is(err, fs.ErrNotExist):
		dir := filepath.Dir(path)
		if _, err := os.Stat(dir); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("state: create %q: directory %q does not exist: %w", path, dir, err)
			}
			return nil, fmt.Errorf("state: create %q: stat directory: %w", path, err)
		}
		created = true
	default:
		return nil, fmt.Errorf("state: stat %q: %w", path, err)
	}

	if existing {
		if err := inspect(path); err != nil {
			return nil, fmt.Errorf("state: open %q: %w", path, err)
		}
	}
	db, file, err := openDB(path, false)
	if err != nil {
		return nil, fmt.Errorf("state: open %q: %w", path, err)
	}
	if created {
		if err := syncDir(filepath.Dir(path)); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("state: create %q: %w", path, err)
		}
	}
	key, err := load(db, file)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("state: open %q: %w", path, err)
	}
	return &Store{db: db, path: path, key: key}, nil
}

// check refuses a file that is not regular or whose permissions are wider
// than maxPerm.
func check(fi fs.FileInfo) error {
	switch {
	case fi.IsDir():
		return errors.New("is a directory, want a file")
	case !fi.Mode().IsRegular():
		return fmt.Errorf("not a regular file (mode %s)", fi.Mode())
	case fi.Mode().Perm()&^maxPerm != 0:
		return fmt.Errorf("%w: mode %#o is wider than %#o; run chmod 600 on the file",
			ErrPermissions, fi.Mode().Perm(), maxPerm)
	}
	return nil
}

// openDB opens the bbolt database at path, read-only or for writing, and
// returns it with its file.
//
// A damaged file can make bbolt panic, or fault on its memory map, while it
// opens; both become ErrCorrupt. Such a panic leaves bbolt's memory map, and
// with it the file lock, in place until the process exits, so Open calls
// openDB for writing only on a file that inspect has checked: read-only,
// bbolt reads nothing but the two meta pages while it opens.
func openDB(path string, readOnly bool) (db *bolt.DB, file *os.File, err error) {
	var hookErr error
	opts := &bolt.Options{
		Timeout:  lockTimeout,
		ReadOnly: readOnly,
		// Check what was actually opened: the path may have changed since
		// the Stat of Open.
		OpenFile: func(name string, flag int, perm fs.FileMode) (*os.File, error) {
			f, err := os.OpenFile(name, flag, perm)
			if err != nil {
				hookErr = err
				return nil, err
			}
			fi, err := f.Stat()
			if err == nil {
				err = check(fi)
			} else {
				err = fmt.Errorf("stat: %w", err)
			}
			if err != nil {
				_ = f.Close()
				hookErr = err
				return nil, err
			}
			file = f
			return f, nil
		},
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if file != nil {
				_ = file.Close()
			}
			db, file, err = nil, nil, fmt.Errorf("%w: unreadable page (%v)", ErrCorrupt, r)
		}
	}()
	db, err = bolt.Open(path, maxPerm, opts)
	if err == nil {
		return db, file, nil
	}
	var errno syscall.Errno
	switch {
	case hookErr != nil:
		return nil, nil, hookErr
	case errors.Is(err, berrors.ErrTimeout):
		return nil, nil, fmt.Errorf("%w (waited %s)", ErrLocked, lockTimeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, nil, fmt.Errorf("%w: not a bbolt database: %w", ErrNotStateFile, err)
	case errors.As(err, &errno):
		return nil, nil, err
	default:
		// Checksum errors, "file size too small" and the like.
		return nil, nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
}

// syncDir fsyncs a directory, so that a file just created in it survives a
// power loss.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	err = d.Sync()
	_ = d.Close() // opened read-only: closing it cannot lose anything
	if err != nil {
		return fmt.Errorf("sync directory %q: %w", dir, err)
	}
	return nil
}

// guard runs fn with faults on the memory map turned into panics, and turns
// a panic, of bbolt on a damaged page or of such a fault, into ErrCorrupt.
// Faults are caught in the calling goroutine only.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: unreadable page (%v)", ErrCorrupt, r)
		}
	}()
	return fn()
}

// inspect opens an existing file read-only and checks it all: the size its
// pages need, the meta bucket, every record, then bbolt's consistency check
// (which also reads the freelist). Every page is read, in this goroutine,
// before the consistency check reads it again in its own.
func inspect(path string) error {
	db, file, err := openDB(path, true)
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }() // opened read-only
	return guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			empty, err := checkMeta(tx, file, nil)
			if err != nil || empty {
				return err
			}
			err = tx.Bucket([]byte(bucketIntegrations)).ForEach(func(k, v []byte) error {
				var r Record
				if err := json.Unmarshal(v, &r); err != nil {
					return fmt.Errorf("%w: decode record %q: %w", ErrCorrupt, k, err)
				}
				return nil
			})
			if err != nil {
				return err
			}
			var first error
			n := 0
			for err := range tx.Check() { // drained: Check's goroutine sends them all
				if first == nil {
					first = err
				}
				n++
			}
			switch {
			case n == 1:
				return fmt.Errorf("%w: bbolt's consistency check failed: %w", ErrCorrupt, first)
			case n > 1:
				return fmt.Errorf("%w: bbolt's consistency check failed: %w (and %d more errors)", ErrCorrupt, first, n-1)
			}
			return nil
		})
	})
}

// load returns the HMAC key of the file just opened for writing, after
// initialising it if it is new.
func load(db *bolt.DB, file *os.File) ([]byte, error) {
	var key []byte
	empty := false
	err := guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			var err error
			empty, err = checkMeta(tx, file, &key)
			return err
		})
	})
	if err != nil || !empty {
		return key, err
	}
	return initialise(db)
}

// checkMeta checks that the file is as large as its pages need and holds a
// meta bucket of a schema this package reads, an HMAC key and an
// integrations bucket; it copies the key to *key when key is not nil. A file
// without any bucket is empty: a new file, to be initialised.
func checkMeta(tx *bolt.Tx, file *os.File, key *[]byte) (empty bool, err error) {
	fi, err := file.Stat()
	if err != nil {
		return false, fmt.Errorf("stat: %w", err)
	}
	if tx.Size() > fi.Size() {
		return false, fmt.Errorf("%w: truncated: the file is %d bytes, its pages need %d", ErrCorrupt, fi.Size(), tx.Size())
	}
	meta := tx.Bucket([]byte(bucketMeta))
	if meta == nil {
		errStop := errors.New("stop")
		if tx.ForEach(func([]byte, *bolt.Bucket) error { return errStop }) == nil {
			return true, nil
		}
		return false, fmt.Errorf("%w: no %s bucket", ErrNotStateFile, bucketMeta)
	}
	if string(meta.Get([]byte(keyMagic))) != magic {
		return false, fmt.Errorf("%w: no rotator magic in the %s bucket", ErrNotStateFile, bucketMeta)
	}
	raw := meta.Get([]byte(keySchema))
	schema, err := strconv.Atoi(string(raw))
	if err != nil || schema < 1 {
		return false, fmt.Errorf("%w: invalid schema version %q", ErrCorrupt, raw)
	}
	if schema > Schema {
		return false, fmt.Errorf("%w: the file has schema %d, this rotator reads schema %d; upgrade rotator",
			ErrNewerSchema, schema, Schema)
	}
	k := meta.Get([]byte(keyHMAC))
	if len(k) != KeySize {
		return false, fmt.Errorf("%w: HMAC key of %d bytes, want %d", ErrCorrupt, len(k), KeySize)
	}
	if tx.Bucket([]byte(bucketIntegrations)) == nil {
		return false, fmt.Errorf("%w: no %s bucket", ErrCorrupt, bucketIntegrations)
	}
	if key != nil {
		*key = slices.Clone(k) // a bbolt value is valid only in its transaction
	}
	return false, nil
}

// initialise writes the meta bucket, with a new HMAC key, and the empty
// integrations bucket of a new file, in one transaction.
func initialise(db *bolt.DB) ([]byte, error) {
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("draw HMAC key: %w", err)
	}
	err := db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucket([]byte(bucketMeta))
		if err != nil {
			return err
		}
		for k, v := range map[string][]byte{
			keyMagic:   []byte(magic),
			keySchema:  []byte(strconv.Itoa(Schema)),
			keyHMAC:    key,
			keyCreated: []byte(time.Now().UTC().Format(time.RFC3339Nano)),
		} {
			if err := meta.Put([]byte(k), v); err != nil {
				return err
			}
		}
		_, err = tx.CreateBucket([]byte(bucketIntegrations))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("initialise: %w", err)
	}
	return key, nil
}

// Close closes the file and releases its lock. The Store's Fingerprint and
// SettingMACs keep working; its other methods return an error.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("state: close %q: %w", s.path, err)
	}
	return nil
}

// Fingerprint is FingerprintWithKey under the file's key.
func (s *Store) Fingerprint(id, provider string, settings map[string]string) []byte {
	return FingerprintWithKey(s.key, id, provider, settings)
}

// SettingMACs is SettingMACsWithKey under the file's key.
func (s *Store) SettingMACs(id, provider string, settings map[string]string) map[string][]byte {
	return SettingMACsWithKey(s.key, id, provider, settings)
}

// FingerprintWithKey is the HMAC-SHA256, under key, of an integration's
// target (id and provider) and its settings, names and values: every field
// is length-prefixed and the settings are taken in name order, so equal
// inputs, and only those, give equal fingerprints. Stores that share a key
// (the local Store's file, internal/ha's key in Vault) compute it alike.
func FingerprintWithKey(key []byte, id, provider string, settings map[string]string) []byte {
	h := hmac.New(sha256.New, key)
	field(h, domainFingerprint)
	field(h, id)
	field(h, provider)
	for _, name := range slices.Sorted(maps.Keys(settings)) {
		field(h, name)
		field(h, settings[name])
	}
	return h.Sum(nil)
}

// SettingMACsWithKey returns, for each setting, the HMAC-SHA256 under key of
// the integration's id and provider and the setting's name and value,
// length-prefixed. Comparing two pushes' MACs tells which settings changed
// without telling any value.
func SettingMACsWithKey(key []byte, id, provider string, settings map[string]string) map[string][]byte {
	out := make(map[string][]byte, len(settings))
	for name, value := range settings {
		h := hmac.New(sha256.New, key)
		field(h, domainSetting)
		field(h, id)
		field(h, provider)
		field(h, name)
		field(h, value)
		out[name] = h.Sum(nil)
	}
	return out
}

// field writes s to h prefixed by its length, as 8 bytes little-endian.
func field(h hash.Hash, s string) {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
	h.Write(n[:])
	h.Write([]byte(s))
}

// Get returns the record of the integration name; false if there is none.
func (s *Store) Get(name string) (Record, bool, error) {
	var r Record
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket([]byte(bucketIntegrations)).Get([]byte(name))
		if v == nil {
			return nil
		}
		found = true
		return decode(v, &r)
	})
	if err != nil {
		return Record{}, false, fmt.Errorf("state: get %q: %w", name, err)
	}
	return r, found, nil
}

// Names returns the names of the integrations that have a record, in byte
// order.
func (s *Store) Names() ([]string, error) {
	var names []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketIntegrations)).ForEach(func(k, _ []byte) error {
			names = append(names, string(k))
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("state: list names: %w", err)
	}
	return names, nil
}

// Begin records, durably, that a push of p to the integration is starting:
// it sets the record's ID, Provider and Pending, creating the record if need
// be. Call it before the request to Hood. revision is the record's Revision
// as read, for a shared store's check-and-set; the local Store, the only
// writer of its file, ignores it.
func (s *Store) Begin(name, id, provider string, revision int, p Pushed) error {
	return s.update("begin", name, func(r *Record) { r.ApplyBegin(id, provider, p) })
}

// Confirm records that Hood confirmed the push p and its verification
// passed (Record.ApplyConfirm). A missing record is created.
func (s *Store) Confirm(name string, p Pushed, a Attempt) error {
	return s.update("confirm", name, func(r *Record) { r.ApplyConfirm(p, a) })
}

// Fail records a failed push (Record.ApplyFail). A missing record is
// created.
func (s *Store) Fail(name string, f Failure) error {
	return s.update("fail", name, func(r *Record) { r.ApplyFail(f) })
}

// Note appends a to the history and changes nothing else: an unchanged
// integration, or one that failed before its push. A missing record is
// created.
func (s *Store) Note(name string, a Attempt) error {
	return s.update("note", name, func(r *Record) { r.ApplyNote(a) })
}

// Forget deletes the record of an integration no longer in the
// configuration. Forgetting a name without a record is not an error.
func (s *Store) Forget(name string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte(bucketIntegrations)).Delete([]byte(name))
	})
	if err != nil {
		return fmt.Errorf("state: forget %q: %w", name, err)
	}
	return nil
}

// update reads the record of name, or a new one, applies fn and writes it
// back, all in one transaction.
func (s *Store) update(verb, name string, fn func(*Record)) error {
	if name == "" {
		return fmt.Errorf("state: %s: empty integration name", verb)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketIntegrations))
		var r Record
		if v := b.Get([]byte(name)); v != nil {
			if err := decode(v, &r); err != nil {
				return err
			}
		}
		r.Name = name
		fn(&r)
		r.Updated = time.Now().UTC()
		v, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode record: %w", err)
		}
		return b.Put([]byte(name), v)
	})
	if err != nil {
		return fmt.Errorf("state: %s %q: %w", verb, name, err)
	}
	return nil
}

func decode(v []byte, r *Record) error {
	if err := json.Unmarshal(v, r); err != nil {
		return fmt.Errorf("decode record: %w", err)
	}
	return nil
}

// The Apply methods are how Begin, Confirm, Fail and Note change a record,
// shared by the local Store and internal/ha's shared store. They set neither
// Name nor Updated: the store does.

// ApplyBegin sets ID, Provider and Pending: a push of p is starting. A
// Pending push still there was interrupted (a crash between its PATCH and
// its outcome): it may have reached Hood, so it moves to Unconfirmed.
func (r *Record) ApplyBegin(id, provider string, p Pushed) {
	r.ID, r.Provider = id, provider
	if r.Pending != nil {
		r.addDoubt(Doubt{Pushed: *r.Pending, Why: WhyInterrupted})
	}
	r.Pending = pushed(p)
}

// WhyInterrupted is the Doubt of a push whose outcome was never recorded.
const WhyInterrupted = "a push was interrupted before its outcome was recorded"

// ApplyConfirm records that Hood confirmed the push p and its verification
// passed: Confirmed becomes p, Pending and Failed are cleared and a is
// appended to the history.
func (r *Record) ApplyConfirm(p Pushed, a Attempt) {
	r.Confirmed, r.Pending, r.Failed, r.Suspect = pushed(p), nil, nil, false
	r.Unconfirmed = nil
	r.addAttempt(a)
}

// ApplyFail records a failed push: Failed becomes f.Rejected when it is not
// nil, f.Unconfirmed are added to Unconfirmed, Pending is cleared and
// f.Attempt is appended to the history. Confirmed is kept.
func (r *Record) ApplyFail(f Failure) {
	if f.Rejected != nil {
		r.Failed = pushed(*f.Rejected)
	}
	for _, d := range f.Unconfirmed {
		r.addDoubt(d)
	}
	r.Pending = nil
	r.addAttempt(f.Attempt)
}

// HoodMayDiffer says why Hood may hold settings other than Confirmed: an
// unconfirmed push (the newest), an interrupted one, or a late push of
// another rotator (Suspect). It is "" when nothing unconfirmed may have
// landed since the last confirmed push. A Pending push counts: the caller
// skips a record whose lease another rotator holds (HeldBy) before asking.
func (r Record) HoodMayDiffer() string {
	switch {
	case r.Pending != nil:
		return describe(Doubt{Pushed: *r.Pending, Why: WhyInterrupted})
	case len(r.Unconfirmed) > 0:
		return describe(r.Unconfirmed[len(r.Unconfirmed)-1])
	case r.Suspect:
		return "a push of another rotator, made after it had lost its lease, may have overwritten the confirmed one"
	}
	return ""
}

func describe(d Doubt) string {
	what := "settings"
	if d.VaultVersion > 0 {
		what = fmt.Sprintf("version %d", d.VaultVersion)
	}
	if d.At.IsZero() {
		return fmt.Sprintf("%s (%s)", d.Why, what)
	}
	return fmt.Sprintf("%s (%s, at %s)", d.Why, what, d.At.UTC().Format(time.RFC3339))
}

// LastFailed reports whether the newest attempt of the history failed.
func (r Record) LastFailed() (Attempt, bool) {
	if n := len(r.History); n > 0 && r.History[n-1].Result == "failed" {
		return r.History[n-1], true
	}
	return Attempt{}, false
}

// addDoubt appends d to Unconfirmed, keeping the last MaxUnconfirmed.
func (r *Record) addDoubt(d Doubt) {
	d.At = d.At.UTC()
	r.Unconfirmed = append(r.Unconfirmed, d)
	if n := len(r.Unconfirmed); n > MaxUnconfirmed {
		r.Unconfirmed = slices.Clone(r.Unconfirmed[n-MaxUnconfirmed:])
	}
}

// ApplyNote appends a to the history, keeping the last MaxHistory attempts.
func (r *Record) ApplyNote(a Attempt) { r.addAttempt(a) }

// pushed returns a copy of p, for a record, with its time in UTC.
func pushed(p Pushed) *Pushed {
	p.At = p.At.UTC()
	return &p
}

// addAttempt appends a to the history, keeping the last MaxHistory attempts.
func (r *Record) addAttempt(a Attempt) {
	a.At = a.At.UTC()
	r.History = append(r.History, a)
	if n := len(r.History); n > MaxHistory {
		r.History = slices.Clone(r.History[n-MaxHistory:])
	}
}
