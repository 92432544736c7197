package vaulttest

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// mainStartTimeout bounds ForTest's and ForMain's Start, a cold build of the
// binary included.
const mainStartTimeout = 10 * time.Minute

// skipReason returns why the server tests are to be skipped, or "" when
// they run: ROTATOR_SKIP_VAULT=1 skips them, except in CI (CI=true).
func skipReason() string {
	if os.Getenv(EnvSkip) != "1" {
		return ""
	}
	if os.Getenv(EnvCI) == "true" {
		return ""
	}
	return "vault server tests skipped: " + EnvSkip + "=1 (they never skip in CI)"
}

// ForTest starts a server for one test and stops it when the test ends;
// when the test failed, the server's last log lines are logged first (root
// token and unseal key blanked). With ROTATOR_SKIP_VAULT=1, outside CI, it
// skips the test instead. A server that cannot start fails the test.
func ForTest(t testing.TB) *Server {
	t.Helper()
	return forTest(t, Start)
}

// PersistentForTest is ForTest with a persistent server (StartPersistent):
// file storage that survives Restart, StopProcess and StartProcess. Stop, at
// the end of the test, removes the storage.
func PersistentForTest(t testing.TB) *Server {
	t.Helper()
	return forTest(t, StartPersistent)
}

// forTest starts a server with start for one test.
func forTest(t testing.TB, start func(context.Context) (*Server, error)) *Server {
	t.Helper()
	if why := skipReason(); why != "" {
		t.Skip(why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), mainStartTimeout)
	defer cancel()
	s, err := start(ctx)
	if err != nil {
		t.Fatalf("vaulttest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bao log (last lines):\n%s", s.logTail(30))
		}
		if err := s.Stop(); err != nil {
			t.Errorf("vaulttest: stop: %v", err)
		}
	})
	return s
}

// ForMain runs run with one server for the whole test package and stops the
// server afterwards; use it in TestMain and pass its result to os.Exit. run
// usually keeps the server in a package variable and returns m.Run(); a nil
// run just runs m.Run(). With ROTATOR_SKIP_VAULT=1, outside CI, no server is
// started and run gets nil: tests then call Require, which skips them. A
// server that cannot start makes ForMain print why and return 1 without
// running the tests.
func ForMain(m *testing.M, run func(*Server) int) int {
	if run == nil {
		run = func(*Server) int { return m.Run() }
	}
	if why := skipReason(); why != "" {
		fmt.Fprintln(os.Stderr, "vaulttest: "+why)
		return run(nil)
	}
	ctx, cancel := context.WithTimeout(context.Background(), mainStartTimeout)
	s, err := Start(ctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "vaulttest: %v\n", err)
		return 1
	}
	code := run(s)
	if code != 0 {
		fmt.Fprintf(os.Stderr, "vaulttest: bao log (last lines):\n%s\n", s.logTail(30))
	}
	if err := s.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "vaulttest: stop: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Require returns s, the package's server from ForMain, or skips the test
// when there is none because ROTATOR_SKIP_VAULT=1 asked for that. A nil s
// for any other reason (ForMain not used) fails the test.
func Require(t testing.TB, s *Server) *Server {
	t.Helper()
	if s != nil {
		return s
	}
	if why := skipReason(); why != "" {
		t.Skip(why)
	}
	t.Fatal("vaulttest: no server: start one with ForMain in TestMain, or use ForTest")
	return nil
}
