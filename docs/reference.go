// Package docs holds rotator's reference, reference.md, and reads its
// tables, so that tests hold the code to what the reference says (the
// metrics, the configuration keys, the admin routes). It is imported by
// tests only.
package docs

import (
	_ "embed" // reference.md
	"fmt"
	"strings"
)

//go:embed reference.md
var reference string

// Row is one row of a table: its cells by column header, in lower case.
type Row map[string]string

// Table returns the rows of the first table under heading (a whole line,
// such as "## Metrics"), before the next heading of the same or a higher
// level.
func Table(heading string) ([]Row, error) {
	lines, err := section(heading)
	if err != nil {
		return nil, err
	}
	var header []string
	var rows []Row
	for _, l := range lines {
		l = strings.TrimSpace(l)
		switch {
		case !strings.HasPrefix(l, "|"):
			if header != nil {
				return rows, nil
			}
		case header == nil:
			header = cells(l)
			for i, h := range header {
				header[i] = strings.ToLower(h)
			}
		case strings.Trim(l, "|-: ") == "": // the separator row
		default:
			row := Row{}
			for i, c := range cells(l) {
				if i < len(header) {
					row[header[i]] = c
				}
			}
			rows = append(rows, row)
		}
	}
	if header == nil {
		return nil, fmt.Errorf("reference.md: no table under %q", heading)
	}
	return rows, nil
}

// section returns the lines under heading, up to the next heading of the
// same or a higher level.
func section(heading string) ([]string, error) {
	level := len(heading) - len(strings.TrimLeft(heading, "#"))
	lines := strings.Split(reference, "\n")
	for i, l := range lines {
		if l != heading {
			continue
		}
		for j := i + 1; j < len(lines); j++ {
			if n := len(lines[j]) - len(strings.TrimLeft(lines[j], "#")); n > 0 && n <= level && strings.HasPrefix(lines[j][n:], " ") {
				return lines[i+1 : j], nil
			}
		}
		return lines[i+1:], nil
	}
	return nil, fmt.Errorf("reference.md: no heading %q", heading)
}

// cells splits a table row on the '|' that are not escaped as "\|".
func cells(row string) []string {
	row = strings.TrimSuffix(strings.TrimPrefix(row, "|"), "|")
	parts := strings.Split(strings.ReplaceAll(row, `\|`, "\x00"), "|")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(strings.ReplaceAll(p, "\x00", "|"))
	}
	return parts
}

// Code returns the code spans of a cell, in order: Code("`a`, `b`") is
// [a b], Code("none") is empty.
func Code(cell string) []string {
	var out []string
	parts := strings.Split(cell, "`")
	for i := 1; i < len(parts)-1; i += 2 {
		out = append(out, parts[i])
	}
	return out
}
