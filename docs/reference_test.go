package docs_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/docs"
)

func TestCode(t *testing.T) {
	for _, tc := range []struct {
		cell string
		want []string
	}{
		{"`integration`, `provider`, `result`", []string{"integration", "provider", "result"}},
		{"`outcomes[]`", []string{"outcomes[]"}},
		{"none", nil},
		{"", nil},
		{"`a` and an unclosed `b", []string{"a"}},
	} {
		if got := docs.Code(tc.cell); !slices.Equal(got, tc.want) {
			t.Errorf("Code(%q): got %q, want %q", tc.cell, got, tc.want)
		}
	}
}

// The tables the drift tests read are there, with their columns, one name
// in backquotes per row.
func TestTables(t *testing.T) {
	for _, tc := range []struct {
		heading, first string
		columns        []string
		minRows        int
	}{
		{"## Commands", "flag", []string{"commands", "default", "meaning"}, 6},
		{"## Configuration", "key", []string{"type", "default", "meaning"}, 40},
		{"## Admin API", "method", []string{"path", "auth", "answer"}, 7},
		{"### Report", "field", []string{"meaning"}, 10},
		{"### Status", "field", []string{"meaning"}, 8},
		{"### Rotation result", "field", []string{"meaning"}, 10},
		{"### Rotations", "field", []string{"meaning"}, 10},
		{"## Metrics", "name", []string{"type", "labels", "meaning"}, 14},
		{"## Audit log", "field", []string{"meaning"}, 9},
	} {
		rows, err := docs.Table(tc.heading)
		if err != nil {
			t.Errorf("%s: got %v, want a table", tc.heading, err)
			continue
		}
		if len(rows) < tc.minRows {
			t.Errorf("%s: got %d rows, want at least %d", tc.heading, len(rows), tc.minRows)
		}
		for i, r := range rows {
			if c := r[tc.first]; !strings.HasPrefix(c, "`") || len(docs.Code(c)) == 0 {
				t.Errorf("%s row %d: got %s %q, want it in backquotes", tc.heading, i+1, tc.first, c)
			}
			for _, col := range tc.columns {
				if _, ok := r[col]; !ok {
					t.Errorf("%s row %d: got no %q column, want one", tc.heading, i+1, col)
				}
			}
		}
	}
	if _, err := docs.Table("## No such heading"); err == nil {
		t.Errorf("Table of a missing heading: got nil error, want one")
	}
}
