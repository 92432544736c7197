package main

import (
	"bytes"
	"context"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/docs"
)

// The flags of each command are those of the reference's flag table.
func TestFlagsMatchReference(t *testing.T) {
	rows, err := docs.Table("## Commands")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{}
	for _, r := range rows {
		name, _, _ := strings.Cut(strings.TrimPrefix(strings.Trim(r["flag"], "`"), "--"), " ")
		for _, cmd := range docs.Code(r["commands"]) {
			want[cmd] = append(want[cmd], name)
		}
	}
	flagLine := regexp.MustCompile(`(?m)^  --(\S+)`)
	for _, cmd := range []string{"run", "once", "plan", "validate", "rotate"} {
		var stderr bytes.Buffer
		e := env{stdout: &bytes.Buffer{}, stderr: &stderr, getenv: func(string) string { return "" }}
		if code := runWith(context.Background(), []string{cmd, "-h"}, e); code != exitOK {
			t.Fatalf("%s -h: got exit %d, want %d", cmd, code, exitOK)
		}
		var got []string
		for _, m := range flagLine.FindAllStringSubmatch(stderr.String(), -1) {
			got = append(got, m[1])
		}
		slices.Sort(got)
		slices.Sort(want[cmd])
		if !slices.Equal(got, want[cmd]) {
			t.Errorf("%s flags: got %q, want %q (docs/reference.md, Commands)", cmd, got, want[cmd])
		}
	}
}
