package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestCommandHelp: `rotator --help` and `rotator CMD --help` exit 0 and
// print a usage line, what the command does, and the flags as --flag.
func TestCommandHelp(t *testing.T) {
	tests := []struct {
		cmd   string   // "": rotator itself
		flags []string // besides the common ones
	}{
		{"", nil},
		{"run", []string{"--shutdown-timeout DURATION"}},
		{"once", []string{"--force", "--only NAME[,NAME...]"}},
		{"plan", []string{"--only NAME[,NAME...]"}},
		{"validate", nil},
		{"rotate", []string{"--dry-run"}},
	}
	for _, tt := range tests {
		for _, help := range []string{"--help", "-h"} {
			t.Run(tt.cmd+" "+help, func(t *testing.T) {
				var stdout, stderr bytes.Buffer
				e := env{stdout: &stdout, stderr: &stderr, getenv: func(string) string { return "" }}
				args, usage := []string{help}, "Usage: rotator COMMAND [flags]\n\n"
				if tt.cmd != "" {
					args, usage = []string{tt.cmd, help}, "Usage: rotator "+tt.cmd+" "+commandArgs[tt.cmd]+"[flags]\n\n"
				}
				if code := runWith(context.Background(), args, e); code != exitOK {
					t.Errorf("exit code: got %d, want %d", code, exitOK)
				}
				out := stdout.String() + stderr.String()
				if want := usage; !strings.HasPrefix(out, want) {
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
