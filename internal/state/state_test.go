package state_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/ocamba-rotator/rotator/internal/state"
)

// sentinel is a setting value that must never reach the state file.
const sentinel = "S3NTINEL-auth-token-value-7f3a9c"

var t0 = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

// open opens a state file in a fresh directory, or at path when given, and
// closes it at the end of the test.
func open(t *testing.T, path string) *state.Store {
	t.Helper()
	if path == "" {
		path = filepath.Join(t.TempDir(), "state.db")
	}
	s, err := state.Open(path)
	if err != nil {
		t.Fatalf("Open(%q): got error %v, want nil", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newFile creates a valid, closed state file and returns its path.
func newFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := state.Open(path)
	if err != nil {
		t.Fatalf("Open: got error %v, want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: got error %v, want nil", err)
	}
	return path
}

// pushed is a push identified by its Vault version.
func pushed(v int) state.Pushed {
	return state.Pushed{
		Fingerprint:  []byte{byte(v), 0xfe},
		SettingMACs:  map[string][]byte{"auth_token": {byte(v), 1}, "account_sid": {byte(v), 2}},
		VaultPath:    "secret/twilio",
		VaultVersion: v,
		At:           t0.Add(time.Duration(v) * time.Minute),
	}
}

func attempt(result string) state.Attempt {
	return state.Attempt{At: t0, Trigger: "schedule", Result: result, VaultVersion: 3, Settings: []string{"account_sid", "auth_token"}}
}

func TestOpenCreatesFileWithMode0600(t *testing.T) {
	t.Parallel()
	path := newFile(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("mode of a new state file: got %#o, want 0600", got)
	}
}

func TestOpenRefusesWidePermissions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode    fs.FileMode
		wantErr bool
	}{
		{0o600, false},
		{0o644, true},
		{0o640, true},
		{0o604, true},
		{0o660, true},
		{0o666, true},
		{0o700, true},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%#o", tt.mode), func(t *testing.T) {
			t.Parallel()
			path := newFile(t)
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatalf("Chmod: %v", err)
			}
			s, err := state.Open(path)
			if !tt.wantErr {
				if err != nil {
					t.Fatalf("Open: got error %v, want nil", err)
				}
				_ = s.Close()
				return
			}
			if !errors.Is(err, state.ErrPermissions) {
				t.Fatalf("Open: got error %v, want ErrPermissions", err)
			}
			for _, want := range []string{path, fmt.Sprintf("%#o", tt.mode)} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Open: got error %q, want it to name %q", err, want)
				}
			}
		})
	}
}

func TestOpenRefusesBadPaths(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	missing := filepath.Join(dir, "no-such-dir")
	tests := []struct {
		name     string
		path     string
		wantText []string
	}{
		{"missing directory", filepath.Join(missing, "state.db"), []string{missing, "does not exist"}},
		{"a directory", dir, []string{dir, "is a directory"}},
		{"empty path", "", []string{"no path"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := state.Open(tt.path)
			if err == nil {
				_ = s.Close()
				t.Fatalf("Open(%q): got nil error, want one", tt.path)
			}
			for _, want := range tt.wantText {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Open(%q): got error %q, want it to contain %q", tt.path, err, want)
				}
			}
		})
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(%q) after Open: got %v, want the directory still missing", missing, err)
	}
}

func TestOpenLocked(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	first, err := state.Open(path)
	if err != nil {
		t.Fatalf("first Open: got error %v, want nil", err)
	}
	second, err := state.Open(path)
	if err == nil {
		_ = second.Close()
		t.Fatal("second Open while the first is open: got nil error, want ErrLocked")
	}
	if !errors.Is(err, state.ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Errorf("second Open: got %v, want ErrLocked naming %q", err, path)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	third, err := state.Open(path)
	if err != nil {
		t.Fatalf("Open after Close: got error %v, want nil", err)
	}
	_ = third.Close()
}

func TestReopenKeepsRecordsAndKey(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	settings := map[string]string{"account_sid": "AC1", "auth_token": sentinel}

	s, err := state.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	fp := s.Fingerprint("1161", "twilio_sms", settings)
	macs := s.SettingMACs("1161", "twilio_sms", settings)
	p := state.Pushed{Fingerprint: fp, SettingMACs: macs, VaultPath: "secret/twilio", VaultVersion: 4, At: t0}
	if err := s.Begin("twilio", "1161", "twilio_sms", 0, p); err != nil {
		t.Fatalf("Begin: %v", err)
	}
	if err := s.Confirm("twilio", p, attempt("pushed")); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	want, _, err := s.Get("twilio")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = open(t, path)
	if got := s.Fingerprint("1161", "twilio_sms", settings); !bytes.Equal(got, fp) {
		t.Errorf("Fingerprint after reopen: got %x, want %x", got, fp)
	}
	if got := s.SettingMACs("1161", "twilio_sms", settings); !reflect.DeepEqual(got, macs) {
		t.Errorf("SettingMACs after reopen: got %x, want %x", got, macs)
	}
	got, ok, err := s.Get("twilio")
	if err != nil || !ok {
		t.Fatalf("Get after reopen: got ok=%v err=%v, want the record", ok, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("record after reopen:\n got %+v\nwant %+v", got, want)
	}

	other := open(t, "")
	if got := other.Fingerprint("1161", "twilio_sms", settings); bytes.Equal(got, fp) {
		t.Errorf("Fingerprint in another file: got %x, the same as the first file's; want a different one", got)
	}
}

func TestOpenEmptyFileIsNew(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s := open(t, path)
	names, err := s.Names()
	if err != nil || len(names) != 0 {
		t.Errorf("Names of an emptied file: got %q, %v; want none", names, err)
	}
}

// populate writes n records of some kilobytes to a new state file and
// returns its path.
func populate(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := state.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	for i := range n {
		name := fmt.Sprintf("integration-%04d", i)
		if err := s.Begin(name, fmt.Sprint(1000+i), "twilio_sms", 0, pushed(i%200)); err != nil {
			t.Fatalf("Begin: %v", err)
		}
		a := attempt("failed")
		a.Error = strings.Repeat(fmt.Sprintf("hood: 503 Service Unavailable for %s; ", name), 60)
		if err := s.Note(name, a); err != nil {
			t.Fatalf("Note: %v", err)
		}
	}
	return path
}

// boltSize returns the size the pages of a bbolt file need and its page size.
func boltSize(t *testing.T, path string) (size int64, page int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	defer db.Close()
	if err := db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	return size, db.Info().PageSize
}

// withBolt runs fn in a bbolt write transaction on the file at path.
func withBolt(t *testing.T, path string, fn func(*bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("bolt.Open: %v", err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatalf("bolt Update: %v", err)
	}
}

func TestOpenRefusesBadFiles(t *testing.T) {
	t.Parallel()
	truncate := func(size func(hwm int64, page int) int64) func(t *testing.T) string {
		return func(t *testing.T) string {
			path := populate(t, 60)
			hwm, page := boltSize(t, path)
			if err := os.Truncate(path, size(hwm, page)); err != nil {
				t.Fatal(err)
			}
			return path
		}
	}
	write := func(data []byte) func(t *testing.T) string {
		return func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "state.db")
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}
	}
	edit := func(fn func(*bolt.Tx) error) func(t *testing.T) string {
		return func(t *testing.T) string {
			path := populate(t, 3)
			withBolt(t, path, fn)
			return path
		}
	}
	garbage := make([]byte, 64<<10)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range garbage {
		garbage[i] = byte(r.Uint32())
	}

	tests := []struct {
		name string
		make func(t *testing.T) string
		want error
	}{
		{"garbage", write(garbage), state.ErrNotStateFile},
		{"short text", write([]byte("hello, world\n")), state.ErrNotStateFile},
		{"truncated inside the second page", truncate(func(_ int64, page int) int64 { return int64(page) + 100 }), state.ErrCorrupt},
		{"truncated to three pages", truncate(func(_ int64, page int) int64 { return 3 * int64(page) }), state.ErrCorrupt},
		{"truncated to half", truncate(func(hwm int64, _ int) int64 { return hwm / 2 }), state.ErrCorrupt},
		{"truncated by one page", truncate(func(hwm int64, page int) int64 { return hwm - int64(page) }), state.ErrCorrupt},
		{"garbage data pages", func(t *testing.T) string {
			path := populate(t, 60)
			_, page := boltSize(t, path)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(3, 4))
			for i := 2 * page; i < len(data); i++ {
				data[i] = byte(r.Uint32())
			}
			return write(data)(t)
		}, state.ErrCorrupt},
		{"garbage freelist page", func(t *testing.T) string {
			path := populate(t, 60)
			// A View on a database opened for writing, whose freelist is
			// loaded: an Update would write a new freelist elsewhere.
			db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
			if err != nil {
				t.Fatalf("bolt.Open: %v", err)
			}
			page, id := db.Info().PageSize, 0
			err = db.View(func(tx *bolt.Tx) error {
				for i := 2; ; i++ {
					info, err := tx.Page(i)
					if err != nil {
						return fmt.Errorf("read page %d: %w", i, err)
					}
					if info == nil {
						return fmt.Errorf("no freelist page below %d", i)
					}
					if info.Type == "freelist" {
						id = i
						return nil
					}
				}
			})
			if cerr := db.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			copy(data[id*page:(id+1)*page], bytes.Repeat([]byte{0xa5}, page))
			return write(data)(t)
		}, state.ErrCorrupt},
		{"another bbolt file", func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "other.db")
			withBolt(t, path, func(tx *bolt.Tx) error {
				b, err := tx.CreateBucket([]byte("sessions"))
				if err != nil {
					return err
				}
				return b.Put([]byte("k"), []byte("v"))
			})
			return path
		}, state.ErrNotStateFile},
		{"no magic", edit(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Delete([]byte("magic")) }), state.ErrNotStateFile},
		{"newer schema", edit(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte("2")) }), state.ErrNewerSchema},
		{"bad schema", edit(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte("one")) }), state.ErrCorrupt},
		{"short key", edit(func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("hmac_key"), []byte("short")) }), state.ErrCorrupt},
		{"no integrations bucket", edit(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("integrations")) }), state.ErrCorrupt},
		{"undecodable record", edit(func(tx *bolt.Tx) error {
			return tx.Bucket([]byte("integrations")).Put([]byte("integration-0001"), []byte("{not json"))
		}), state.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := tt.make(t)
			// Twice: a refused file must not stay locked by the first try.
			for try := range 2 {
				s, err := state.Open(path)
				if err == nil {
					_ = s.Close()
					t.Fatalf("Open try %d: got nil error, want %v", try, tt.want)
				}
				if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), path) {
					t.Fatalf("Open try %d: got %v, want %v naming %q", try, err, tt.want, path)
				}
			}
		})
	}
}

func TestRecordSemantics(t *testing.T) {
	t.Parallel()
	type step func(s *state.Store) error
	begin := func(v int) step {
		return func(s *state.Store) error { return s.Begin("twilio", "1161", "twilio_sms", 0, pushed(v)) }
	}
	confirm := func(v int) step {
		return func(s *state.Store) error { return s.Confirm("twilio", pushed(v), attempt("pushed")) }
	}
	fail := func(v int) step {
		return func(s *state.Store) error {
			if v == 0 {
				return s.Fail("twilio", state.Failure{Attempt: attempt("failed")})
			}
			p := pushed(v)
			return s.Fail("twilio", state.Failure{Rejected: &p, Attempt: attempt("failed")})
		}
	}
	note := func(result string) step {
		return func(s *state.Store) error { return s.Note("twilio", attempt(result)) }
	}
	// Versions identify pushes; 0 is none.
	tests := []struct {
		name                       string
		steps                      []step
		wantID                     string
		confirmed, failed, pending int
		history                    []string
	}{
		{"begin sets pending", []step{begin(1)}, "1161", 0, 0, 1, nil},
		{"begin then confirm", []step{begin(1), confirm(1)}, "1161", 1, 0, 0, []string{"pushed"}},
		{"begin again replaces pending", []step{begin(1), begin(2)}, "1161", 0, 0, 2, nil},
		{"fail with a push keeps confirmed", []step{begin(1), confirm(1), begin(2), fail(2)}, "1161", 1, 2, 0, []string{"pushed", "failed"}},
		{"fail without a push", []step{begin(1), confirm(1), begin(2), fail(0)}, "1161", 1, 0, 0, []string{"pushed", "failed"}},
		{"fail without a push keeps failed", []step{begin(1), fail(1), fail(0)}, "1161", 0, 1, 0, []string{"failed", "failed"}},
		{"confirm clears failed", []step{begin(1), fail(1), begin(2), confirm(2)}, "1161", 2, 0, 0, []string{"failed", "pushed"}},
		{"note keeps pushes", []step{begin(1), confirm(1), begin(2), note("unchanged")}, "1161", 1, 0, 2, []string{"pushed", "unchanged"}},
		{"note alone creates a record", []step{note("failed")}, "", 0, 0, 0, []string{"failed"}},
		{"confirm alone creates a record", []step{confirm(3)}, "", 3, 0, 0, []string{"pushed"}},
	}
	version := func(p *state.Pushed) int {
		if p == nil {
			return 0
		}
		return p.VaultVersion
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := open(t, "")
			start := time.Now()
			for i, st := range tt.steps {
				if err := st(s); err != nil {
					t.Fatalf("step %d: got error %v, want nil", i, err)
				}
			}
			r, ok, err := s.Get("twilio")
			if err != nil || !ok {
				t.Fatalf("Get: got ok=%v err=%v, want the record", ok, err)
			}
			if r.Name != "twilio" || r.ID != tt.wantID {
				t.Errorf("name, id: got %q, %q, want %q, %q", r.Name, r.ID, "twilio", tt.wantID)
			}
			if got := [3]int{version(r.Confirmed), version(r.Failed), version(r.Pending)}; got != [3]int{tt.confirmed, tt.failed, tt.pending} {
				t.Errorf("confirmed, failed, pending versions: got %v, want %v", got, [3]int{tt.confirmed, tt.failed, tt.pending})
			}
			var results []string
			for _, a := range r.History {
				results = append(results, a.Result)
			}
			if !slices.Equal(results, tt.history) {
				t.Errorf("history: got %q, want %q", results, tt.history)
			}
			if r.Updated.Before(start.Add(-time.Second)) {
				t.Errorf("Updated: got %v, want the time of the last write", r.Updated)
			}
			for _, p := range []*state.Pushed{r.Confirmed, r.Failed, r.Pending} {
				if p != nil && !reflect.DeepEqual(*p, pushed(p.VaultVersion)) {
					t.Errorf("stored push: got %+v, want %+v", *p, pushed(p.VaultVersion))
				}
			}
		})
	}
}

func TestHistoryCapped(t *testing.T) {
	t.Parallel()
	tests := []struct{ attempts, wantLen int }{
		{1, 1},
		{state.MaxHistory, state.MaxHistory},
		{state.MaxHistory + 1, state.MaxHistory},
		{45, state.MaxHistory},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.attempts), func(t *testing.T) {
			t.Parallel()
			s := open(t, "")
			for i := range tt.attempts {
				a := attempt("unchanged")
				a.TraceID = fmt.Sprint(i)
				if err := s.Note("twilio", a); err != nil {
					t.Fatalf("Note %d: %v", i, err)
				}
			}
			r, _, err := s.Get("twilio")
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if len(r.History) != tt.wantLen {
				t.Fatalf("history length: got %d, want %d", len(r.History), tt.wantLen)
			}
			first, last := r.History[0].TraceID, r.History[len(r.History)-1].TraceID
			if want := fmt.Sprint(tt.attempts - tt.wantLen); first != want {
				t.Errorf("oldest attempt kept: got %s, want %s", first, want)
			}
			if want := fmt.Sprint(tt.attempts - 1); last != want {
				t.Errorf("newest attempt (last): got %s, want %s", last, want)
			}
		})
	}
}

func TestNamesAndForget(t *testing.T) {
	t.Parallel()
	s := open(t, "")
	for _, name := range []string{"vonage", "twilio", "sinch"} {
		if err := s.Note(name, attempt("unchanged")); err != nil {
			t.Fatalf("Note(%q): %v", name, err)
		}
	}
	if err := s.Forget("twilio"); err != nil {
		t.Fatalf("Forget: %v", err)
	}
	if err := s.Forget("never-there"); err != nil {
		t.Errorf("Forget of a missing name: got %v, want nil", err)
	}
	names, err := s.Names()
	if err != nil {
		t.Fatalf("Names: %v", err)
	}
	if want := []string{"sinch", "vonage"}; !slices.Equal(names, want) {
		t.Errorf("Names: got %q, want %q", names, want)
	}
	if _, ok, err := s.Get("twilio"); ok || err != nil {
		t.Errorf("Get of a forgotten name: got ok=%v err=%v, want false, nil", ok, err)
	}
	if err := s.Note("", attempt("unchanged")); err == nil {
		t.Error("Note with an empty name: got nil error, want one")
	}
}

func TestFingerprintCanonical(t *testing.T) {
	t.Parallel()
	s := open(t, "")
	type target struct {
		id, provider string
		settings     map[string]string
	}
	base := target{"1161", "twilio_sms", map[string]string{"account_sid": "AC1", "auth_token": "tok"}}
	tests := []struct {
		name      string
		a, b      target
		wantEqual bool
	}{
		{"same", base, target{"1161", "twilio_sms", map[string]string{"auth_token": "tok", "account_sid": "AC1"}}, true},
		{"nil and empty settings", target{"1", "p", nil}, target{"1", "p", map[string]string{}}, true},
		{"name and value boundary", target{"1", "p", map[string]string{"ab": "c"}}, target{"1", "p", map[string]string{"a": "bc"}}, false},
		{"id and provider boundary", target{"ab", "c", nil}, target{"a", "bc", nil}, false},
		{"provider and settings boundary", target{"1", "pa", map[string]string{"": "b"}}, target{"1", "p", map[string]string{"a": "b"}}, false},
		{"value changed", base, target{"1161", "twilio_sms", map[string]string{"account_sid": "AC1", "auth_token": "tok2"}}, false},
		{"setting added", base, target{"1161", "twilio_sms", map[string]string{"account_sid": "AC1", "auth_token": "tok", "x": ""}}, false},
		{"id changed", base, target{"1162", "twilio_sms", base.settings}, false},
		{"provider changed", base, target{"1161", "vonage", base.settings}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fa := s.Fingerprint(tt.a.id, tt.a.provider, tt.a.settings)
			fb := s.Fingerprint(tt.b.id, tt.b.provider, tt.b.settings)
			if len(fa) != 32 {
				t.Errorf("fingerprint length: got %d, want 32", len(fa))
			}
			if got := bytes.Equal(fa, fb); got != tt.wantEqual {
				t.Errorf("fingerprints equal: got %v, want %v (%x, %x)", got, tt.wantEqual, fa, fb)
			}
		})
	}
}

func TestSettingMACs(t *testing.T) {
	t.Parallel()
	s := open(t, "")
	before := map[string]string{"account_sid": "AC1", "auth_token": "old", "from": "+1"}
	after := map[string]string{"account_sid": "AC1", "auth_token": "new", "from": "+1"}
	a := s.SettingMACs("1161", "twilio_sms", before)
	b := s.SettingMACs("1161", "twilio_sms", after)
	var changed []string
	for name := range a {
		if !bytes.Equal(a[name], b[name]) {
			changed = append(changed, name)
		}
	}
	if want := []string{"auth_token"}; !slices.Equal(changed, want) {
		t.Errorf("changed names: got %q, want %q", changed, want)
	}

	tests := []struct {
		name string
		got  []byte
	}{
		{"another id", s.SettingMACs("1162", "twilio_sms", before)["account_sid"]},
		{"another provider", s.SettingMACs("1161", "vonage", before)["account_sid"]},
		{"another name, same value", s.SettingMACs("1161", "twilio_sms", map[string]string{"sid": "AC1"})["sid"]},
		{"the fingerprint of that one setting", s.Fingerprint("1161", "twilio_sms", map[string]string{"account_sid": "AC1"})},
	}
	for _, tt := range tests {
		if bytes.Equal(tt.got, a["account_sid"]) {
			t.Errorf("%s: got the MAC of account_sid %x, want a different one", tt.name, tt.got)
		}
	}
	if got := s.SettingMACs("1161", "twilio_sms", nil); got == nil || len(got) != 0 {
		t.Errorf("SettingMACs of no settings: got %v, want an empty map", got)
	}
}

func TestNoValueInFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	s, err := state.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	settings := map[string]string{"account_sid": "AC-" + sentinel, "auth_token": sentinel}
	p := state.Pushed{
		Fingerprint:  s.Fingerprint("1161", "twilio_sms", settings),
		SettingMACs:  s.SettingMACs("1161", "twilio_sms", settings),
		VaultPath:    "secret/twilio",
		VaultVersion: 7,
		At:           t0,
	}
	steps := []func() error{
		func() error { return s.Begin("twilio", "1161", "twilio_sms", 0, p) },
		func() error { return s.Confirm("twilio", p, attempt("pushed")) },
		func() error { return s.Begin("twilio", "1161", "twilio_sms", 0, p) },
		func() error { return s.Fail("twilio", state.Failure{Rejected: &p, Attempt: attempt("failed")}) },
		func() error { return s.Begin("twilio", "1161", "twilio_sms", 0, p) },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	check := func(when string) {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// The names are there in clear, so a value would be found too.
		if !bytes.Contains(raw, []byte("auth_token")) {
			t.Fatalf("%s: the file does not contain the setting name auth_token; the search proves nothing", when)
		}
		forms := map[string]string{
			"plain":  sentinel,
			"base64": base64.StdEncoding.EncodeToString([]byte(sentinel)),
			"hex":    hex.EncodeToString([]byte(sentinel)),
			"part":   sentinel[:12],
		}
		for form, v := range forms {
			if bytes.Contains(raw, []byte(v)) {
				t.Errorf("%s: got the sentinel value (%s) in the state file, want it absent", when, form)
			}
		}
	}
	check("open")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check("closed")
}

func TestConcurrentWriters(t *testing.T) {
	t.Parallel()
	s := open(t, "")
	const writers, names = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers*names*4)
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range names {
				name := fmt.Sprintf("integration-%d", n)
				settings := map[string]string{"k": fmt.Sprint(g)}
				p := state.Pushed{Fingerprint: s.Fingerprint("1", "p", settings), SettingMACs: s.SettingMACs("1", "p", settings), VaultVersion: g}
				a := attempt("pushed")
				a.TraceID = fmt.Sprintf("g%d", g)
				for _, err := range []error{
					s.Begin(name, "1", "p", 0, p),
					s.Confirm(name, p, a),
				} {
					if err != nil {
						errs <- err
					}
				}
				if _, _, err := s.Get(name); err != nil {
					errs <- err
				}
				if _, err := s.Names(); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent write: got error %v, want nil", err)
	}
	for n := range names {
		name := fmt.Sprintf("integration-%d", n)
		r, ok, err := s.Get(name)
		if err != nil || !ok {
			t.Fatalf("Get(%q): got ok=%v err=%v, want the record", name, ok, err)
		}
		seen := map[string]bool{}
		for _, a := range r.History {
			seen[a.TraceID] = true
		}
		if len(r.History) != writers || len(seen) != writers {
			t.Errorf("%s: got %d attempts from %d writers, want %d from %d (a lost update)", name, len(r.History), len(seen), writers, writers)
		}
		if r.Confirmed == nil || r.Pending != nil {
			t.Errorf("%s: got confirmed %v, pending %v; want a confirmed push and none pending", name, r.Confirmed, r.Pending)
		}
	}
}

func TestWithKeyFunctionsMatchTheStore(t *testing.T) {
	t.Parallel()
	path := newFile(t)
	s := open(t, path)
	settings := map[string]string{"account_sid": "AC1", "auth_token": sentinel}
	fp := s.Fingerprint("1161", "twilio_sms", settings)
	macs := s.SettingMACs("1161", "twilio_sms", settings)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var key []byte
	err = db.View(func(tx *bolt.Tx) error {
		key = slices.Clone(tx.Bucket([]byte("meta")).Get([]byte("hmac_key")))
		return nil
	})
	_ = db.Close()
	if err != nil || len(key) != state.KeySize {
		t.Fatalf("read the key: got %d bytes, %v; want %d", len(key), err, state.KeySize)
	}
	if got := state.FingerprintWithKey(key, "1161", "twilio_sms", settings); !bytes.Equal(got, fp) {
		t.Errorf("FingerprintWithKey: got %x, want the Store's %x", got, fp)
	}
	if got := state.SettingMACsWithKey(key, "1161", "twilio_sms", settings); !reflect.DeepEqual(got, macs) {
		t.Errorf("SettingMACsWithKey: got %x, want the Store's %x", got, macs)
	}
	other := make([]byte, state.KeySize)
	if got := state.FingerprintWithKey(other, "1161", "twilio_sms", settings); bytes.Equal(got, fp) {
		t.Errorf("FingerprintWithKey under another key: got the same fingerprint")
	}
}

func TestTransientFieldsAreNotPersisted(t *testing.T) {
	t.Parallel()
	r := state.Record{Name: "twilio", Revision: 7, HeldBy: "web-1#0011aabb", HeldUntil: t0}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"Revision", "revision", "web-1", "HeldUntil", "held"} {
		if strings.Contains(string(b), bad) {
			t.Errorf("encoded record %s holds %q", b, bad)
		}
	}
	s := open(t, "")
	if err := s.Begin("twilio", "1161", "twilio_sms", 42, pushed(3)); err != nil {
		t.Fatalf("Begin with a revision: %v", err)
	}
	got, ok, err := s.Get("twilio")
	if err != nil || !ok {
		t.Fatalf("Get: got ok=%v err=%v", ok, err)
	}
	if got.Revision != 0 || got.HeldBy != "" || !got.HeldUntil.IsZero() {
		t.Errorf("local record: got Revision %d HeldBy %q HeldUntil %v, want zero values", got.Revision, got.HeldBy, got.HeldUntil)
	}
}
