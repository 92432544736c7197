package audit_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/audit"
)

// sample returns a fully populated record.
func sample() audit.Record {
	return audit.Record{
		Time:        time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC),
		Event:       "push",
		Trigger:     "admin",
		Caller:      "10.0.0.7:51234",
		Integration: "twilio-main",
		ID:          "1161",
		Provider:    "twilio_sms",
		VaultPath:   "secret/ocamba/twilio-main",
		KVVersion:   7,
		Settings:    []string{"account_sid", "auth_token"},
		Result:      "ok",
		TraceID:     "abc123",
	}
}

// open opens a log at path and closes it at the end of the test.
func open(t *testing.T, path string) *audit.Log {
	t.Helper()
	l, err := audit.Open(path)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// readLines returns the lines of the file at path; it fails the test if the
// file does not end with a newline.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if len(b) == 0 {
		return nil
	}
	if b[len(b)-1] != '\n' {
		t.Fatalf("file does not end with a newline: %q", b)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// decode parses one line strictly.
func decode(t *testing.T, line string) audit.Record {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	dec.DisallowUnknownFields()
	var r audit.Record
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("line is not a valid record: %v: %q", err, line)
	}
	return r
}

func TestWriteProducesOneJSONLinePerRecord(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := open(t, path)

	want := []audit.Record{sample(), sample(), sample()}
	want[1].Event, want[1].Result, want[1].Error = "verify", "failed", "hood: 422 invalid\nsecond line <&>"
	want[2].Event, want[2].Trigger, want[2].Caller, want[2].Settings = "rollback", "schedule", "", nil
	for _, r := range want {
		if err := l.Write(r); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}

	lines := readLines(t, path)
	if len(lines) != len(want) {
		t.Fatalf("lines: got %d, want %d: %q", len(lines), len(want), lines)
	}
	for i, line := range lines {
		got := decode(t, line)
		if !got.Time.Equal(want[i].Time) || got.Event != want[i].Event || got.Trigger != want[i].Trigger ||
			got.Caller != want[i].Caller || got.Integration != want[i].Integration || got.ID != want[i].ID ||
			got.Provider != want[i].Provider || got.VaultPath != want[i].VaultPath ||
			got.KVVersion != want[i].KVVersion || strings.Join(got.Settings, ",") != strings.Join(want[i].Settings, ",") ||
			got.Result != want[i].Result || got.Error != want[i].Error || got.TraceID != want[i].TraceID {
			t.Errorf("line %d: got %+v, want %+v", i, got, want[i])
		}
	}
}

func TestWriteOmitsEmptyOptionalFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := open(t, path)
	r := sample()
	r.Caller, r.Settings, r.Error, r.TraceID = "", nil, "", ""
	if err := l.Write(r); err != nil {
		t.Fatalf("Write: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(readLines(t, path)[0]), &m); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	for _, k := range []string{"caller", "settings", "error", "trace_id"} {
		if _, ok := m[k]; ok {
			t.Errorf("key %q: got present, want omitted", k)
		}
	}
	for _, k := range []string{"time", "event", "trigger", "integration", "id", "provider", "vault_path", "kv_version", "result"} {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q: got missing, want present", k)
		}
	}
}

func TestWriteDefaultsTimeToNowUTC(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := open(t, path)
	r := sample()
	r.Time = time.Time{}
	before := time.Now()
	if err := l.Write(r); err != nil {
		t.Fatalf("Write: %v", err)
	}
	after := time.Now()

	line := readLines(t, path)[0]
	got := decode(t, line).Time
	if got.IsZero() || got.Before(before.Add(-time.Second)) || got.After(after.Add(time.Second)) {
		t.Errorf("time: got %v, want between %v and %v", got, before, after)
	}
	if got.Location() != time.UTC {
		t.Errorf("time zone: got %v, want UTC (line %q)", got.Location(), line)
	}
}

func TestWriteConvertsTimeToUTC(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l := open(t, path)
	r := sample()
	r.Time = time.Date(2025, 3, 4, 7, 6, 7, 0, time.FixedZone("X", 2*3600))
	if err := l.Write(r); err != nil {
		t.Fatalf("Write: %v", err)
	}
	line := readLines(t, path)[0]
	if want := `"time":"2025-03-04T05:06:07Z"`; !strings.Contains(line, want) {
		t.Errorf("line: got %q, want it to contain %s", line, want)
	}
}

func TestReopenAppendsNeverTruncates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	for i := range 3 {
		l, err := audit.Open(path)
		if err != nil {
			t.Fatalf("Open #%d: %v", i, err)
		}
		r := sample()
		r.KVVersion = i
		if err := l.Write(r); err != nil {
			t.Fatalf("Write #%d: %v", i, err)
		}
		if err := l.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i, err)
		}
	}
	lines := readLines(t, path)
	if len(lines) != 3 {
		t.Fatalf("lines: got %d, want 3: %q", len(lines), lines)
	}
	for i, line := range lines {
		if got := decode(t, line).KVVersion; got != i {
			t.Errorf("line %d kv_version: got %d, want %d", i, got, i)
		}
	}
}

func TestOpenKeepsExistingContent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	old := []byte("{\"event\":\"push\"}\n")
	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	l := open(t, path)
	if err := l.Write(sample()); err != nil {
		t.Fatalf("Write: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, old) {
		t.Errorf("file start: got %q, want the old content %q kept", b, old)
	}
	if got := bytes.Count(b, []byte("\n")); got != 2 {
		t.Errorf("lines: got %d, want 2", got)
	}
}

func TestConcurrentWritersProduceWholeLines(t *testing.T) {
	const writers, perWriter = 100, 20
	path := filepath.Join(t.TempDir(), "audit.log")
	l := open(t, path)

	var wg sync.WaitGroup
	errs := make(chan error, writers*perWriter)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				r := sample()
				r.Integration = fmt.Sprintf("writer-%d", w)
				r.KVVersion = i
				r.Error = strings.Repeat("x", 500) // long lines make tearing visible
				if err := l.Write(r); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Write: %v", err)
	}

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := make(map[string]bool)
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		r := decode(t, sc.Text())
		key := fmt.Sprintf("%s/%d", r.Integration, r.KVVersion)
		if seen[key] {
			t.Errorf("record %s: got twice, want once", key)
		}
		seen[key] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scan: %v", err)
	}
	if n != writers*perWriter {
		t.Errorf("lines: got %d, want %d", n, writers*perWriter)
	}
	if len(seen) != writers*perWriter {
		t.Errorf("distinct records: got %d, want %d", len(seen), writers*perWriter)
	}
}

func TestOpenCreatesMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	open(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("mode: got %#o, want 0600", got)
	}
}

func TestOpenAcceptsNarrowerMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o200); err != nil {
		t.Fatal(err)
	}
	l := open(t, path)
	if err := l.Write(sample()); err != nil {
		t.Errorf("Write: got %v, want nil", err)
	}
}

func TestOpenRefusesWiderMode(t *testing.T) {
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o700, 0o666} {
		t.Run(fmt.Sprintf("%#o", mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			content := []byte("existing\n")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			l, err := audit.Open(path)
			if err == nil {
				_ = l.Close()
				t.Fatalf("Open: got nil error, want a refusal")
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, fmt.Sprintf("%#o", mode)) {
				t.Errorf("error: got %q, want it to name %s and mode %#o", msg, path, mode)
			}
			b, _ := os.ReadFile(path)
			if !bytes.Equal(b, content) {
				t.Errorf("content after refusal: got %q, want %q", b, content)
			}
			fi, _ := os.Stat(path)
			if got := fi.Mode().Perm(); got != mode {
				t.Errorf("mode after refusal: got %#o, want %#o (untouched)", got, mode)
			}
		})
	}
}

func TestOpenRefusesDirectory(t *testing.T) {
	dir := t.TempDir()
	l, err := audit.Open(dir)
	if err == nil {
		_ = l.Close()
		t.Fatalf("Open(dir): got nil error, want a refusal")
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "directory") {
		t.Errorf("error: got %q, want it to name %s as a directory", err, dir)
	}
}

func TestOpenMissingParentFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "audit.log")
	l, err := audit.Open(path)
	if err == nil {
		_ = l.Close()
		t.Fatalf("Open: got nil error, want one")
	}
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), path) {
		t.Errorf("error: got %v, want a wrapped os.ErrNotExist naming %s", err, path)
	}
}

func TestEmptyPathIsNoOp(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	l, err := audit.Open("")
	if err != nil {
		t.Fatalf("Open(\"\"): got %v, want nil", err)
	}
	if l == nil {
		t.Fatalf("Open(\"\"): got nil *Log, want a no-op log")
	}
	if err := l.Write(sample()); err != nil {
		t.Errorf("Write: got %v, want nil", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("Close: got %v, want nil", err)
	}
	if err := l.Write(sample()); err != nil {
		t.Errorf("Write after Close: got %v, want nil", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("files in the working directory: got %d, want 0", len(entries))
	}
}

func TestNilLogIsSafe(t *testing.T) {
	var l *audit.Log
	if err := l.Write(sample()); err != nil {
		t.Errorf("Write: got %v, want nil", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("Close: got %v, want nil", err)
	}
}

func TestWriteAfterCloseFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Write(sample()); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Write after Close: got %v, want os.ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: got %v, want nil", err)
	}
	if lines := readLines(t, path); len(lines) != 0 {
		t.Errorf("lines: got %d, want 0", len(lines))
	}
}
