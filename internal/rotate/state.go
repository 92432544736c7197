package rotate

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sort"
	"sync"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/secret"
)

// Pushed is the last push of an integration that Hood confirmed.
type Pushed struct {
	// Fingerprint is an HMAC of the target and the settings pushed, keyed by
	// the state's own random key: equal settings give equal fingerprints,
	// and a fingerprint tells nothing about a value.
	Fingerprint  []byte
	VaultPath    string
	VaultVersion int
	At           time.Time
}

// State remembers the last confirmed push of each integration, for change
// detection.
type State interface {
	Last(name string) (Pushed, bool)
	Confirm(name string, p Pushed) error
	Fingerprint(in config.Integration, settings map[string]secret.Value) []byte
}

// MemoryState is a State held in memory, with an HMAC key drawn at creation.
// It is what a process without a state file uses.
type MemoryState struct {
	key  []byte
	mu   sync.Mutex
	last map[string]Pushed
}

// NewMemoryState returns an empty in-memory state.
func NewMemoryState() *MemoryState {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails on supported platforms
	return &MemoryState{key: key, last: map[string]Pushed{}}
}

// Last implements State.
func (m *MemoryState) Last(name string) (Pushed, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.last[name]
	return p, ok
}

// Confirm implements State.
func (m *MemoryState) Confirm(name string, p Pushed) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last[name] = p
	return nil
}

// Fingerprint implements State.
func (m *MemoryState) Fingerprint(in config.Integration, settings map[string]secret.Value) []byte {
	return Fingerprint(m.key, in, settings)
}

// Fingerprint is the HMAC-SHA256, under key, of an integration's target (id
// and provider) and its settings, names and values, in a canonical order.
func Fingerprint(key []byte, in config.Integration, settings map[string]secret.Value) []byte {
	h := hmac.New(sha256.New, key)
	field := func(s string) {
		var n [8]byte
		l := uint64(len(s))
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(in.ID)
	field(in.Provider)
	names := make([]string, 0, len(settings))
	for k := range settings {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		field(k)
		field(settings[k].Reveal())
	}
	return h.Sum(nil)
}
