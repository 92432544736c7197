package ha_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ocamba-rotator/rotator/internal/ha"
	"github.com/ocamba-rotator/rotator/internal/vault"
)

// fakeVault is an in-memory KV v2 engine with exact check-and-set: versions
// count from 1 per secret, cas 0 creates only, any other cas must be the
// current version (deleted or not).
type fakeVault struct {
	mu      sync.Mutex
	secrets map[string]*fakeSecret // "mount/path"
	// failWrites, when set, fails every write with it (before CAS).
	failWrites error
}

type fakeSecret struct {
	versions [][]byte // JSON data of versions 1..n
	deleted  map[int]bool
}

func newFakeVault() *fakeVault { return &fakeVault{secrets: map[string]*fakeSecret{}} }

func (f *fakeVault) ReadDoc(_ context.Context, mount, path string, out any) (int, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.secrets[mount+"/"+path]
	if s == nil || len(s.versions) == 0 {
		return 0, false, nil
	}
	cur := len(s.versions)
	if s.deleted[cur] {
		return cur, false, nil
	}
	if err := json.Unmarshal(s.versions[cur-1], out); err != nil {
		return cur, true, &vault.Error{Op: vault.OpRead, Mount: mount, Path: path, KVVersion: 2, Kind: vault.KindInvalid,
			Detail: fmt.Sprintf("version %d: data does not decode into %T", cur, out), Err: vault.ErrInvalid}
	}
	return cur, true, nil
}

func (f *fakeVault) WriteDoc(_ context.Context, mount, path string, in any, cas int) (int, error) {
	b, err := json.Marshal(in)
	if err != nil || !strings.HasPrefix(string(b), "{") {
		return 0, &vault.Error{Op: vault.OpWrite, Mount: mount, Path: path, Kind: vault.KindInvalid, Err: vault.ErrInvalid}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failWrites != nil {
		return 0, f.failWrites
	}
	s := f.secrets[mount+"/"+path]
	if s == nil {
		s = &fakeSecret{deleted: map[int]bool{}}
		f.secrets[mount+"/"+path] = s
	}
	if cas != len(s.versions) {
		return 0, &vault.Error{Op: vault.OpWrite, Mount: mount, Path: path, KVVersion: 2, Kind: vault.KindConflict,
			Detail: fmt.Sprintf("expected version %d is not the current version", cas), Err: vault.ErrConflict}
	}
	s.versions = append(s.versions, b)
	return len(s.versions), nil
}

// deleteCurrent soft-deletes the current version of mount/path.
func (f *fakeVault) deleteCurrent(mount, path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.secrets[mount+"/"+path]
	s.deleted[len(s.versions)] = true
}

// allVersions returns the data of every version of every secret.
func (f *fakeVault) allVersions() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]byte
	for _, s := range f.secrets {
		out = append(out, s.versions...)
	}
	return out
}

// hookVault calls before ahead of every request of its Vault.
type hookVault struct {
	ha.Vault
	before func(op, path string)
}

func (h hookVault) ReadDoc(ctx context.Context, mount, path string, out any) (int, bool, error) {
	h.before("read", path)
	return h.Vault.ReadDoc(ctx, mount, path, out)
}

func (h hookVault) WriteDoc(ctx context.Context, mount, path string, in any, cas int) (int, error) {
	h.before("write", path)
	return h.Vault.WriteDoc(ctx, mount, path, in, cas)
}

// barrier lets n goroutines through together, or each after a timeout.
type barrier struct {
	mu      sync.Mutex
	n       int
	arrived int
	all     chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, all: make(chan struct{})} }

func (b *barrier) wait() {
	b.mu.Lock()
	b.arrived++
	if b.arrived == b.n {
		close(b.all)
	}
	b.mu.Unlock()
	select {
	case <-b.all:
	case <-time.After(5 * time.Second):
	}
}

var errUnreachable = &vault.Error{Op: vault.OpWrite, Kind: vault.KindUnreachable, Detail: "connection refused", Err: errors.New("dial tcp: connection refused")}
