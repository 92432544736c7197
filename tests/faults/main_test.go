// Package faults_test is part A of rotator's reliability suite: Vault faults
// (a fault-injecting proxy in front of Vault, Vault stopped and restarted,
// sealed, tokens revoked, AppRole secret ids rotated, a policy that denies
// one path) and process faults (`rotator once` killed with SIGKILL at random
// points of a pass, many times over).
//
// rotator runs as a real process: TestMain builds the command once, and
// starts one OpenBao dev server for the package (tests that seal or stop
// Vault start their own). Hood is the Hood test server
// (internal/hood/hoodtest). Every secret value carries a sentinel that must
// never appear in any output, log, state file or audit file.
//
// ROTATOR_KILL_LOOPS sets how many SIGKILL iterations TestSIGKILLLoop makes
// (default 50, about 25s). The long setting:
//
//	ROTATOR_KILL_LOOPS=1000 ROTATOR_BAO_BIN=$PWD/.cache/bin/bao \
//	  go test -race -count=1 -timeout 60m -run TestSIGKILLLoop -v ./tests/faults/
//
// The test logs where the kills landed (before any Hood request, before any
// PATCH, during the PATCHes, after every push was confirmed), the re-pushes
// and what was lost (must be nothing).
package faults_test

import (
	"fmt"
	"os"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/testkit"
	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

var (
	// vaultSrv is the package's OpenBao dev server (nil when
	// ROTATOR_SKIP_VAULT=1 asked to skip, outside CI).
	vaultSrv *vaulttest.Server
	// rotatorBin is the rotator command built for this package.
	rotatorBin string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "rotator-faults-bin-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if rotatorBin, err = testkit.BuildRotator(dir); err != nil {
		fmt.Fprintln(os.Stderr, "faults: build rotator:", err)
		return 1
	}
	return vaulttest.ForMain(m, func(s *vaulttest.Server) int {
		vaultSrv = s
		return m.Run()
	})
}
