package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestCommandHelp: `rotator CMD --help` exits 0 and prints a usage line,
// what the command does, and its flags as --flag.
func TestCommandHelp(t *testing.T) {
	tests := []struct {
		cmd   string
		flags []string // besides the common ones
	}{
		{"run", []string{"--shutdown-timeout DURATION"}},
		{"once", []string{"--force", "--only NAME[,NAME...]"}},
		{"plan", []string{"--only NAME[,NAME...]"}},
		{"validate", nil},
	}
	for _, tt := range tests {
		for _, help := range []string{"--help", "-h"} {
			t.Run(tt.cmd+" "+help, func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				e := env{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
				if code := runWith(context.Background(), []string{tt.cmd, help}, e); code != exitOK {
					t.Errorf("exit code: got %d, want %d", code, exitOK)
				}
				out := stdout.String() + stderr.String()
				if want := "Usage: rotator " + tt.cmd + " [flags]\n\n"; !strings.HasPrefix(out, want) {
					t.Errorf("help: got\n%s\nwant it to start with %q", out, want)
				}
				lines := strings.Split(out, "\n")
				if len(lines) < 3 || lines[2] == "" {
					t.Errorf("help: got\n%s\nwant a one-line description on its third line", out)
				}
				for _, f := range append([]string{"--config FILE", "--log-format FORMAT", "--log-level LEVEL"}, tt.flags...) {
					if !strings.Contains(out, "\n  "+f+" ") {
						t.Errorf("help: got\n%s\nwant a line for %q", out, f)
					}
				}
				for _, l := range lines {
					if strings.HasPrefix(l, "  -") && !strings.HasPrefix(l, "  --") {
						t.Errorf("help line: got %q, want the flag shown as --flag", l)
					}
				}
			})
		}
	}
}
