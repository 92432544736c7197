package rotate

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	"github.com/ocamba-rotator/rotator/internal/audit"
	"github.com/ocamba-rotator/rotator/internal/secret"
	"github.com/ocamba-rotator/rotator/internal/state"
)

// State is the durable per-integration state (internal/state.Store, or
// internal/ha.Store shared by several rotators): the last confirmed push,
// the last push whose verification failed, the push in progress, and a
// short history. It holds HMACs, never values.
//
// The engine calls Get before Fingerprint and SettingMACs (a shared store
// loads its HMAC key on its first Get), and passes to Begin the Revision of
// the record Get returned. A shared store's Begin, Confirm and Fail return
// an error that errors.Is state.ErrNotHolder when another rotator holds or
// took the integration's lease.
type State interface {
	Get(name string) (state.Record, bool, error)
	Begin(name, id, provider string, revision int, p state.Pushed) error
	Confirm(name string, p state.Pushed, a state.Attempt) error
	Fail(name string, f state.Failure) error
	Note(name string, a state.Attempt) error
	Fingerprint(id, provider string, settings map[string]string) []byte
	SettingMACs(id, provider string, settings map[string]string) map[string][]byte
}

// ErrVerifyFailedBefore is the reason a scheduled pass does not push again
// settings whose verification already failed.
var ErrVerifyFailedBefore = fmt.Errorf("these settings failed verification before")

// verdict is change detection's answer for one integration.
type verdict struct {
	// unchanged, when not empty, is why no push is needed (no Hood call).
	unchanged string
	// doubt, when not empty, is why Hood may hold settings other than the
	// last confirmed push: the settings are pushed even if they equal it.
	doubt string
}

// decide applies change detection to one integration; an error means
// refused. The record, not a guess, says what Hood may hold:
//
//   - Unchanged only when the settings equal the last confirmed push and
//     nothing unconfirmed may have reached Hood since (Record.HoodMayDiffer)
//     and the last attempt did not fail: a failure stays until a push of the
//     current settings is confirmed.
//   - Forced, but the last confirmed push of these very settings happened
//     after the request arrived (NotBefore), with no doubt since:
//     unchanged; that push served it.
//   - Not forced, and these settings already failed verification: refused
//     until the secret changes or a pass is forced (no retry loop).
//   - Not forced, and the KV version is older than the last pushed one from
//     the same secret: refused (ErrDowngrade).
func decide(name string, rec state.Record, p state.Pushed, req Request) (verdict, error) {
	c := rec.Confirmed
	doubt := rec.HoodMayDiffer()
	if doubt == "" {
		doubt = req.stillFailing(name, rec)
	}
	same := c != nil && bytes.Equal(c.Fingerprint, p.Fingerprint) && doubt == ""
	switch {
	case same && !req.Force:
		return verdict{unchanged: fmt.Sprintf("settings equal to the push confirmed at %s", stamp(c.At))}, nil
	case same && !req.NotBefore.IsZero() && !c.At.Before(req.NotBefore):
		return verdict{unchanged: fmt.Sprintf("already pushed at %s, after this request arrived", stamp(c.At))}, nil
	case req.Force:
		return verdict{doubt: doubt}, nil
	case rec.Failed != nil && bytes.Equal(rec.Failed.Fingerprint, p.Fingerprint):
		return verdict{}, fmt.Errorf("%w (version %d, at %s): not pushed again on a schedule until the secret changes; force a pass to retry",
			ErrVerifyFailedBefore, rec.Failed.VaultVersion, stamp(rec.Failed.At))
	case c != nil && c.VaultPath == p.VaultPath && p.VaultVersion > 0 && p.VaultVersion < c.VaultVersion:
		return verdict{}, fmt.Errorf("%w: %s is at version %d, version %d was pushed; force a pass to push it anyway",
			ErrDowngrade, p.VaultPath, p.VaultVersion, c.VaultVersion)
	}
	return verdict{doubt: doubt}, nil
}

// stillFailing says why name's last attempt counts as failed with no push
// confirmed since, or "" when it does not: a failure is cleared only by a
// confirmed push (this rotator's, or another's the record holds), so such
// an integration is pushed even when unchanged.
func (r Request) stillFailing(name string, rec state.Record) string {
	a, inRecord := rec.LastFailed()
	failing, since := inRecord, a.At
	if r.Failing != nil {
		if at, known := r.Failing(name); known {
			failing, since = !at.IsZero(), at
		}
	}
	switch {
	case !failing:
		return ""
	case !inRecord && rec.Confirmed != nil && rec.Confirmed.At.After(since):
		// The caller's failure was followed by a confirmed push the
		// record holds (another rotator's): Hood holds those settings. A
		// failure that may have changed them is in the record (a doubt).
		return ""
	case inRecord:
		return fmt.Sprintf("the last attempt failed at %s and no push has been confirmed since", stamp(a.At))
	default: // the caller knows of a failure the record does not hold
		return "the last attempt failed and no push has been confirmed since"
	}
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// changed lists the setting names whose value differs from the last
// confirmed push (all of them when there is none), sorted.
func changed(c *state.Pushed, p state.Pushed) []string {
	var out []string
	for name, mac := range p.SettingMACs {
		if c == nil || !bytes.Equal(c.SettingMACs[name], mac) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// reveal is the one place the engine turns settings into plain text, for
// the state's HMACs.
func reveal(s map[string]secret.Value) map[string]string {
	out := make(map[string]string, len(s))
	for k, v := range s {
		out[k] = v.Reveal()
	}
	return out
}

type noAudit struct{}

func (noAudit) Write(audit.Record) error { return nil }
