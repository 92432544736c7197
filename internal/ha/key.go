package ha

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/ocamba-rotator/rotator/internal/state"
	"github.com/ocamba-rotator/rotator/internal/vault"
)

// keyRaces bounds how many check-and-set races the creation of the HMAC
// key may lose in a row (each loss is followed by a read of the winner's).
const keyRaces = 3

// keyDoc is the document of the shared HMAC key.
type keyDoc struct {
	Key string `json:"key"` // base64 (standard, padded) of state.KeySize bytes
}

// keyWhere names the key's secret in errors and logs: mount/path.
func (s *Store) keyWhere() string { return s.mount + "/" + s.path + "/" + keyName }

// loadKey reads the shared HMAC key, creating it (check-and-set) when there
// is none, unless it was loaded already. The key is never logged nor put in
// an error.
func (s *Store) loadKey(ctx context.Context) error {
	if s.loadedKey() != nil {
		return nil
	}
	s.loadMu.Lock()
	defer s.loadMu.Unlock()
	if s.loadedKey() != nil {
		return nil
	}
	where := s.keyWhere()
	for range keyRaces {
		var d keyDoc
		version, found, err := s.vault.ReadDoc(ctx, s.mount, s.path+"/"+keyName, &d)
		if err != nil {
			return fmt.Errorf("read the HMAC key at %s: %w", where, err)
		}
		if found {
			key, err := base64.StdEncoding.DecodeString(d.Key)
			if err != nil || len(key) != state.KeySize {
				// The decoding error is left out: it may quote the text.
				return fmt.Errorf("the HMAC key at %s (version %d) is not the base64 of %d bytes", where, version, state.KeySize)
			}
			s.setKey(key)
			return nil
		}
		key := make([]byte, state.KeySize)
		if _, err := rand.Read(key); err != nil {
			return fmt.Errorf("draw an HMAC key: %w", err)
		}
		if s.readOnly {
			s.setKey(key) // throw-away: no record was written under a key that does not exist
			return nil
		}
		if version > 0 {
			// Someone deleted (or destroyed) the key's current version:
			// the fingerprints of every record are lost with it, so every
			// integration is pushed once more. Undeleting it before the
			// first rotator starts keeps them.
			s.log.Warn("the shared HMAC key's current version is deleted: drawing a new key; every integration will be pushed once again",
				"key_path", where, "deleted_version", version)
		}
		_, err = s.vault.WriteDoc(ctx, s.mount, s.path+"/"+keyName, keyDoc{Key: base64.StdEncoding.EncodeToString(key)}, version)
		switch {
		case err == nil:
			s.log.Info("created the shared HMAC key", "key_path", where)
			s.setKey(key)
			return nil
		case errors.Is(err, vault.ErrConflict):
			// Another rotator created it first: read theirs.
			s.log.Debug("another rotator created the shared HMAC key first", "key_path", where)
			continue
		default:
			return fmt.Errorf("create the HMAC key at %s: %w", where, err)
		}
	}
	return fmt.Errorf("create the HMAC key at %s: lost %d check-and-set races in a row", where, keyRaces)
}

func (s *Store) loadedKey() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.key
}

func (s *Store) setKey(key []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key = key
}

// Fingerprint is state.FingerprintWithKey under the shared key.
//
// Before the key is loaded (no Get succeeded yet, e.g. Vault is
// unreachable) it returns 32 fresh random bytes: equal to nothing stored,
// so that change detection can never take settings for already pushed on
// a fingerprint made under another key, and useless to whoever would test
// guessed values against a fingerprint made under a known (zero) key.
func (s *Store) Fingerprint(id, provider string, settings map[string]string) []byte {
	key := s.loadedKey()
	if key == nil {
		return random()
	}
	return state.FingerprintWithKey(key, id, provider, settings)
}

// SettingMACs is state.SettingMACsWithKey under the shared key; before the
// key is loaded, random MACs, for the reasons of Fingerprint.
func (s *Store) SettingMACs(id, provider string, settings map[string]string) map[string][]byte {
	key := s.loadedKey()
	if key == nil {
		out := make(map[string][]byte, len(settings))
		for name := range settings {
			out[name] = random()
		}
		return out
	}
	return state.SettingMACsWithKey(key, id, provider, settings)
}

// random returns 32 random bytes (crypto/rand.Read does not fail).
func random() []byte {
	b := make([]byte, state.KeySize)
	_, _ = rand.Read(b)
	return b
}
