package testkit

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// rotatorPackage is the command the end-to-end suites drive.
const rotatorPackage = "github.com/ocamba-rotator/rotator/cmd/rotator"

// BuildRotator builds the rotator command into dir (for a TestMain that
// drives the real binary) with the extra go build flags given (e.g.
// "-race"), and returns the binary's path. It works from any directory of
// the module.
func BuildRotator(dir string, flags ...string) (string, error) {
	bin := filepath.Join(dir, "rotator")
	args := append(append([]string{"build", "-o", bin}, flags...), rotatorPackage)
	out, err := exec.Command(goTool(), args...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return bin, nil
}

// goTool is the go command that runs the tests: go on PATH, else
// $GOROOT/bin/go.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}
