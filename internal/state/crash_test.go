package state_test

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/state"
)

// The helper process's environment: the state file and the round number.
const (
	helperPathEnv  = "ROTATOR_STATE_HELPER_PATH"
	helperRoundEnv = "ROTATOR_STATE_HELPER_ROUND"
	ackPrefix      = "ack "
)

// TestHelperProcess is not a test: run by TestCrashKeepsAcknowledgedWrites
// with helperPathEnv set, it writes records to the state file in a loop and
// prints each name once its write has returned, until it is killed.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperPathEnv)
	if path == "" {
		return
	}
	round := os.Getenv(helperRoundEnv)
	s, err := state.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	for i := range 100_000 {
		name := fmt.Sprintf("round-%s-%06d", round, i)
		settings := map[string]string{"auth_token": sentinel, "n": fmt.Sprint(i)}
		p := state.Pushed{
			Fingerprint:  s.Fingerprint("1161", "twilio_sms", settings),
			SettingMACs:  s.SettingMACs("1161", "twilio_sms", settings),
			VaultPath:    "secret/twilio",
			VaultVersion: i,
			At:           time.Now(),
		}
		a := state.Attempt{At: time.Now(), Trigger: "schedule", Result: "pushed", VaultVersion: i, Settings: []string{"auth_token", "n"}}
		for _, err := range []error{
			s.Begin(name, "1161", "twilio_sms", 0, p),
			s.Confirm(name, p, a),
			// Rewrite an older record too, so pages are freed and reused.
			s.Note(fmt.Sprintf("round-%s-%06d", round, i/2), a),
		} {
			if err != nil {
				fmt.Fprintln(os.Stderr, "helper:", err)
				os.Exit(3)
			}
		}
		if _, err := fmt.Println(ackPrefix + name); err != nil {
			os.Exit(4) // the test is gone
		}
	}
	os.Exit(0)
}

// TestCrashKeepsAcknowledgedWrites kills a writing process at a random moment,
// 20 times over one file, and checks after each kill that the file opens and
// holds every record whose write had returned.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 20 processes")
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.db")
	var acked []string
	for round := range 20 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		cmd.Env = append(os.Environ(), helperPathEnv+"="+path, fmt.Sprintf("%s=%02d", helperRoundEnv, round))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start helper: %v", err)
		}
		lines := bufio.NewScanner(stdout)
		ack := func() bool {
			for lines.Scan() {
				if name, ok := strings.CutPrefix(lines.Text(), ackPrefix); ok {
					acked = append(acked, name)
					return true
				}
			}
			return false
		}
		// A random moment: after a random number of acknowledged writes,
		// and a random fraction of a write later.
		n := 1 + rand.IntN(40)
		for i := range n {
			if !ack() {
				_ = cmd.Wait()
				t.Fatalf("round %d: helper stopped after %d of %d writes: %s", round, i, n, stderr.String())
			}
		}
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatalf("round %d: kill helper: %v", round, err)
		}
		for ack() { // writes acknowledged before the kill landed
		}
		if err := cmd.Wait(); err == nil || stderr.Len() > 0 {
			t.Fatalf("round %d: helper: got exit %v, stderr %q; want killed", round, err, stderr.String())
		}

		s, err := state.Open(path)
		if err != nil {
			t.Fatalf("round %d: Open after kill: got error %v, want nil", round, err)
		}
		names, err := s.Names()
		if err != nil {
			t.Fatalf("round %d: Names: %v", round, err)
		}
		for _, name := range acked {
			r, ok, err := s.Get(name)
			if err != nil || !ok {
				t.Errorf("round %d: acknowledged record %s: got ok=%v err=%v, want it", round, name, ok, err)
				continue
			}
			if r.Confirmed == nil || r.Pending != nil {
				t.Errorf("round %d: acknowledged record %s: got confirmed %v, pending %v; want confirmed and none pending", round, name, r.Confirmed, r.Pending)
			}
		}
		if len(names) < len(acked) {
			t.Errorf("round %d: got %d records, want at least the %d acknowledged", round, len(names), len(acked))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if t.Failed() {
			return
		}
	}
	t.Logf("%d acknowledged writes survived 20 kills", len(acked))
}
