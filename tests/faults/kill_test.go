package faults_test

// Process faults: `rotator once` killed with SIGKILL at a random point of a
// pass, over and over. After each kill the state file must open and keep
// every integration it knew, and a follow-up `rotator once` must push
// exactly the integrations whose push the state had not confirmed, so that
// Hood ends up holding every current Vault value: nothing lost, nothing
// pushed twice without cause.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
	"github.com/ocamba-rotator/rotator/internal/state"
	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

const (
	// envKillLoops sets the number of SIGKILL iterations.
	envKillLoops     = "ROTATOR_KILL_LOOPS"
	defaultKillLoops = 50
	// maxKillDelay bounds the random delay between the start of `rotator
	// once` and its SIGKILL; maxHoodDelay the random delay Hood adds to
	// each request, so that kills land at different stages of the pushes.
	maxKillDelay = 300 * time.Millisecond
	maxHoodDelay = 60 * time.Millisecond
	// freshEvery: every freshEvery-th iteration starts without a state
	// file, so that some kills land while rotator creates it.
	freshEvery = 10
)

// slowHood serves the Hood test server with a random delay before each
// request and counts the connections that are not closed yet.
type slowHood struct {
	url  string
	mu   sync.Mutex
	open int
	lost int // requests of dead clients that were dropped
}

func startSlowHood(t *testing.T, h *hoodtest.Server) *slowHood {
	t.Helper()
	s := &slowHood{}
	s.url = serve(t, &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Read the body first: the server then notices a client that
			// goes away (the request's context ends).
			body, err := io.ReadAll(r.Body)
			if err != nil {
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			time.Sleep(rand.N(maxHoodDelay + 1))
			if r.Context().Err() != nil && rand.N(2) == 0 {
				// The client died while its request was on its way: half
				// the time the request is lost with the connection, half the
				// time Hood still carries it out.
				s.mu.Lock()
				s.lost++
				s.mu.Unlock()
				return
			}
			h.Handler().ServeHTTP(w, r)
		}),
		ConnState: func(_ net.Conn, cs http.ConnState) {
			s.mu.Lock()
			defer s.mu.Unlock()
			switch cs {
			case http.StateNew:
				s.open++
			case http.StateClosed, http.StateHijacked:
				s.open--
			}
		},
	})
	return s
}

// dropped returns how many requests of dead clients were dropped.
func (s *slowHood) dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost
}

// idle reports whether every connection has been closed (so that no request
// of a killed process is still being handled).
func (s *slowHood) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open == 0
}

// killStats is what the loop saw; lost must stay zero.
type killStats struct {
	iterations      int
	fresh           int // iterations that started without a state file
	finishedFirst   int // the pass ended before the kill
	beforeHood      int // killed before any Hood request
	beforePatch     int // killed after a preflight GET, before any PATCH
	duringPatches   int // killed with a PATCH sent and not every push confirmed
	afterConfirmed  int // killed after every push was confirmed
	pendingLeft     int // records left with a push begun and not finished
	patchedUnconfd  int // PATCHes Hood accepted whose confirmation the kill prevented
	rePushes        int // of those, pushed again by the follow-up (must equal patchedUnconfd)
	followUpPushes  int // pushes made by the follow-up runs
	followUpSkipped int // integrations the follow-up left alone (confirmed before it)
	unauditedPushes int // PATCHes accepted by Hood with no "push" audit record from the killed run
	lost            int
}

func (s killStats) String() string {
	return fmt.Sprintf("iterations=%d (fresh state file: %d); pass finished before the kill=%d; killed before any Hood request=%d, "+
		"after preflight before any PATCH=%d, during PATCHes=%d, after every push was confirmed=%d; "+
		"records left pending=%d; PATCHes accepted but not confirmed=%d, re-pushed by the follow-up=%d; "+
		"follow-up pushes=%d, follow-up left alone (confirmed)=%d; PATCHes with no audit record=%d; lost=%d",
		s.iterations, s.fresh, s.finishedFirst, s.beforeHood, s.beforePatch, s.duringPatches, s.afterConfirmed,
		s.pendingLeft, s.patchedUnconfd, s.rePushes, s.followUpPushes, s.followUpSkipped, s.unauditedPushes, s.lost)
}

// snap is one integration's state between runs.
type snap struct {
	known            bool // the state file has a record
	confirmedCurrent bool // its last confirmed push is of the current Vault value
	pending          bool // a push was begun and not confirmed or failed
}

// snapshot reads the state file: per integration, whether it is known and
// whether its confirmed push is the current value. A missing file is
// reported as missing (and not created).
func (f *fixture) snapshot() (map[string]snap, bool, error) {
	if _, err := os.Stat(f.path("state.db")); errors.Is(err, os.ErrNotExist) {
		return map[string]snap{}, false, nil
	}
	st, err := state.Open(f.path("state.db"))
	if err != nil {
		return nil, true, err
	}
	defer st.Close()
	stored, err := st.Names()
	if err != nil {
		return nil, true, err
	}
	out := map[string]snap{}
	for _, n := range stored {
		out[n] = snap{known: true}
	}
	for _, in := range f.integs {
		rec, ok, err := st.Get(in.name)
		if err != nil {
			return nil, true, fmt.Errorf("get %s: %w", in.name, err)
		}
		if !ok {
			continue
		}
		fp := st.Fingerprint(in.id, in.provider, f.want(in))
		out[in.name] = snap{
			known:            true,
			confirmedCurrent: rec.Confirmed != nil && bytes.Equal(rec.Confirmed.Fingerprint, fp),
			pending:          rec.Pending != nil,
		}
	}
	return out, true, nil
}

// auditPushes counts the "push" records with result ok in the audit log.
func (f *fixture) auditPushes() map[string]int {
	out := map[string]int{}
	b, _ := os.ReadFile(f.path("audit.log"))
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r struct {
			Event, Result, ID string
		}
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.Event == "push" && r.Result == "ok" {
			out[r.ID]++
		}
	}
	return out
}

func killLoops(t *testing.T) int {
	v := os.Getenv(envKillLoops)
	if v == "" {
		return defaultKillLoops
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", envKillLoops, v)
	}
	return n
}

func TestSIGKILLLoop(t *testing.T) {
	vs := vaulttest.Require(t, vaultSrv)
	loops := killLoops(t)
	h, err := hoodtest.New(hoodtest.Options{Tokens: []string{"hood-" + sentinel}, Burst: -1, PerMinute: -1})
	if err != nil {
		t.Fatal(err)
	}
	slow := startSlowHood(t, h)
	f := newFixtureWith(t, vs, h, slow.url)
	f.add([3]string{"k1", "1101", "k1"}, [3]string{"k2", "1102", "k2"}, [3]string{"k3", "1103", "k3"}, [3]string{"k4", "1104", "k4"})
	config := f.config(cfg{maxInFlight: 2})
	paths := []string{"k1", "k2", "k3", "k4"}

	// A first, whole pass: every integration known and confirmed.
	if r := f.once(config); r.code != 0 {
		t.Fatalf("first pass: %s", r.show())
	}

	var st killStats
	defer func() {
		t.Logf("SIGKILL loop: %v; requests of killed runs dropped on their way to Hood: %d", st, slow.dropped())
	}()
	for i := range loops {
		st.iterations++
		f.mustRotate(paths...) // every iteration has work: a new version of every secret
		if i%freshEvery == freshEvery-1 {
			st.fresh++
			if err := os.Remove(f.path("state.db")); err != nil {
				t.Fatal(err)
			}
		}
		before, _, err := f.snapshot()
		if err != nil {
			t.Fatalf("iteration %d: state before the run: %v", i, err)
		}
		audited := f.auditPushes()
		h.Reset()

		// The run to kill.
		cmd := exec.Command(rotatorBin, "once", "--config", config, "--log-format", "json")
		cmd.Env = f.env()
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		finishedFirst := false
		select {
		case <-exited:
			finishedFirst = true
		case <-time.After(rand.N(maxKillDelay + 1)):
			_ = cmd.Process.Signal(syscall.SIGKILL) // fails only if it just ended
			<-exited
			finishedFirst = cmd.ProcessState.Exited() // ended on its own, not by the signal
		}
		f.noSentinel(fmt.Sprintf("iteration %d: output of the killed run", i), out.String())
		eventually(t, 30*time.Second, "Hood finished every request of the killed run", slow.idle)

		// The state file opens and has lost no integration.
		after, exists, err := f.snapshot()
		if err != nil {
			st.lost++
			t.Fatalf("iteration %d: the state file does not open after SIGKILL: %v", i, err)
		}
		for _, in := range f.integs {
			if before[in.name].known && !after[in.name].known {
				st.lost++
				t.Errorf("iteration %d: %s was in the state file before the run, missing after the kill", i, in.name)
			}
			if after[in.name].pending {
				st.pendingLeft++
			}
		}

		// Where the kill landed.
		killedRun := h.Requests()
		f.checkPatchesWhole(killedRun)
		sent, accepted := map[string]bool{}, map[string]bool{}
		sawGet := false
		for _, r := range killedRun {
			switch r.Method {
			case http.MethodPatch:
				sent[r.ID] = true
				accepted[r.ID] = accepted[r.ID] || r.Status == http.StatusNoContent
			case http.MethodGet:
				sawGet = true
			}
		}
		allConfirmed := true
		for _, in := range f.integs {
			allConfirmed = allConfirmed && after[in.name].confirmedCurrent
		}
		switch {
		case finishedFirst:
			st.finishedFirst++
		case allConfirmed:
			st.afterConfirmed++
		case len(sent) > 0:
			st.duringPatches++
		case sawGet:
			st.beforePatch++
		default:
			st.beforeHood++
		}
		nowAudited := f.auditPushes()
		for _, in := range f.integs {
			if accepted[in.id] && nowAudited[in.id] == audited[in.id] {
				st.unauditedPushes++
			}
		}

		// Confirmed means Hood holds it.
		for _, in := range f.integs {
			if after[in.name].confirmedCurrent {
				if got, _ := h.Integration(in.id); !maps.Equal(got.Settings, f.want(in)) {
					st.lost++
					t.Errorf("iteration %d: the state confirms %s's current value, Hood holds %s", i, in.name, describe(got.Settings, f.want(in)))
				}
			}
		}

		// The follow-up pushes exactly what was not confirmed.
		h.Reset()
		r := f.once(config)
		if r.code != 0 {
			st.lost++
			t.Fatalf("iteration %d: follow-up run (state file existed after the kill: %v): %s", i, exists, r.show())
		}
		count := map[string]int{}
		for _, p := range f.patches() {
			count[p.id]++
		}
		for _, in := range f.integs {
			want := 1
			if after[in.name].confirmedCurrent {
				want = 0
			}
			if count[in.id] != want {
				t.Errorf("iteration %d: follow-up PATCHed %s %d times, want %d (confirmed with the current value before it: %v)",
					i, in.name, count[in.id], want, after[in.name].confirmedCurrent)
			}
			if want == 1 {
				st.followUpPushes++
				if accepted[in.id] {
					st.patchedUnconfd++
					if count[in.id] == 1 {
						st.rePushes++
					}
				}
				if l := line(r.stdout, in.name); !strings.Contains(l, "pushed") {
					t.Errorf("iteration %d: follow-up for %s: got %q, want pushed", i, in.name, redact(l))
				}
			} else {
				st.followUpSkipped++
				if l := line(r.stdout, in.name); !strings.Contains(l, "unchanged") {
					t.Errorf("iteration %d: follow-up for %s: got %q, want unchanged", i, in.name, redact(l))
				}
			}
			if got, _ := h.Integration(in.id); !maps.Equal(got.Settings, f.want(in)) {
				st.lost++
				t.Errorf("iteration %d: after the follow-up, Hood's %s holds %s, want the current Vault value", i, in.name, describe(got.Settings, f.want(in)))
			}
		}
		f.checkPatchesWhole(h.Requests())
		eventually(t, 30*time.Second, "Hood finished every request of the follow-up run", slow.idle)
		if t.Failed() {
			t.FailNow()
		}
	}
	f.checkFiles()
	if st.lost != 0 {
		t.Errorf("lost: %d, want 0", st.lost)
	}
}
