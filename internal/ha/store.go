package ha

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/state"
)

// DefaultTimeout bounds the Vault requests of one Store call when
// Options.Timeout is 0.
const DefaultTimeout = 30 * time.Second

// keyName is the path, under Options.Path, of the shared HMAC key.
const keyName = "_meta/hmac-key"

// Vault is what the shared store needs of Vault (implemented by *vault.Client).
type Vault interface {
	ReadDoc(ctx context.Context, mount, path string, out any) (version int, found bool, err error)
	WriteDoc(ctx context.Context, mount, path string, in any, cas int) (version int, err error)
}

// Options configure a Store.
type Options struct {
	Vault    Vault
	Mount    string        // KV v2 mount
	Path     string        // records at <Path>/<integration name>, key at <Path>/_meta/hmac-key
	Identity string        // label; the store appends "#" + 8 random hex digits (default label: the host name)
	TTL      time.Duration // lease length
	Now      func() time.Time
	Logger   *slog.Logger
	// Timeout bounds the Vault requests of each Store call (default 30s);
	// Store methods have no context because rotate.State has none.
	Timeout time.Duration
	// ReadOnly makes a store that never writes (`rotator plan`): when there
	// is no HMAC key yet it uses a throw-away one (nothing was pushed under
	// a key that does not exist, so everything would be pushed), and every
	// method that writes returns ErrReadOnly.
	ReadOnly bool
}

// ErrReadOnly is returned by the writing methods of a read-only Store.
var ErrReadOnly = errors.New("ha: read-only store (a dry run writes nothing)")

// Store is the state shared by several rotators through Vault. It
// implements rotate.State, and Fence. Its methods are safe for concurrent
// use.
type Store struct {
	vault    Vault
	mount    string
	path     string
	id       string
	ttl      time.Duration
	now      func() time.Time
	log      *slog.Logger
	timeout  time.Duration
	readOnly bool

	loadMu sync.Mutex // one load of the HMAC key at a time

	mu     sync.Mutex
	key    []byte                  // nil until loaded
	reads  map[string]state.Record // per integration, the record the last Get returned (with its Revision)
	leases map[string]*lease       // per integration, the version this store wrote last
	begins map[string]int          // per integration, Begins of this store in flight
}

// lease is the version of a record this store wrote last, with its
// content: the next write of the same store is a check-and-set on it.
type lease struct {
	version int
	rec     state.Record
	// held: the version names this store as the holder (Begin, Fence). A
	// version written by Confirm or Fail released the lease: it allows
	// only one more outcome of the same push (a rollback's Confirm is
	// followed by the Fail of the push it undid), until the next Get.
	held    bool
	expires time.Time
}

// New returns a Store. It checks the options and makes no Vault request:
// the HMAC key is read (or created) by the first Get.
func New(opts Options) (*Store, error) {
	mount := strings.Trim(opts.Mount, "/")
	path := strings.Trim(opts.Path, "/")
	switch {
	case opts.Vault == nil:
		return nil, errors.New("ha: no Vault client")
	case mount == "":
		return nil, errors.New("ha: no KV v2 mount")
	case strings.Contains(mount, "//"):
		return nil, fmt.Errorf("ha: mount %q has an empty segment", opts.Mount)
	case path == "":
		return nil, errors.New("ha: no path for the records")
	case strings.Contains(path, "//"):
		return nil, fmt.Errorf("ha: path %q has an empty segment", opts.Path)
	case opts.TTL <= 0:
		return nil, fmt.Errorf("ha: lease TTL %s is not positive", opts.TTL)
	case opts.Timeout < 0:
		return nil, fmt.Errorf("ha: timeout %s is negative", opts.Timeout)
	}
	id, err := NewIdentity(opts.Identity)
	if err != nil {
		return nil, err
	}
	s := &Store{
		vault: opts.Vault, mount: mount, path: path,
		id:  id,
		ttl: opts.TTL, now: opts.Now, log: opts.Logger, timeout: opts.Timeout, readOnly: opts.ReadOnly,
		reads: map[string]state.Record{}, leases: map[string]*lease{}, begins: map[string]int{},
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	return s, nil
}

// Identity is this store's name in the records it holds: the label of
// Options.Identity, "#", and 8 random hex digits drawn by New, so that a
// restarted process never takes an old lease for its own.
func (s *Store) Identity() string { return s.id }

// ctx bounds the Vault requests of one Store call.
func (s *Store) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.timeout)
}

// recordPath is the path, in the mount, of an integration's record.
func (s *Store) recordPath(name string) string { return s.path + "/" + name }

// where names an integration's record in errors and logs: mount/path.
func (s *Store) where(name string) string { return s.mount + "/" + s.recordPath(name) }

// checkName refuses a name that is not one path segment.
func checkName(name string) error {
	switch {
	case name == "":
		return errors.New("empty integration name")
	case strings.Contains(name, "/"), name == ".", name == "..":
		return fmt.Errorf("integration name %q is not a single path segment", name)
	}
	return nil
}

// NewIdentity is the name a process writes in the leases it holds: label
// (default: the host name, config.DefaultIdentity when unknown), "#", and 8 random hex
// digits, so that a restarted process never takes its predecessor's lease
// for its own.
func NewIdentity(label string) (string, error) {
	if label == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = config.DefaultIdentity
		}
		label = h
	}
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("ha: draw the identity suffix: %w", err)
	}
	return label + "#" + hex.EncodeToString(b[:]), nil
}
