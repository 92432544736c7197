package audit_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/docs"
	"github.com/ocamba-rotator/rotator/internal/audit"
)

// The fields of an audit record are those of the reference's table.
func TestRecordFieldsMatchReference(t *testing.T) {
	var got []string
	for f := range reflect.TypeFor[audit.Record]().Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		got = append(got, name)
	}
	rows, err := docs.Table("## Audit log")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, r := range rows {
		want = append(want, docs.Code(r["field"])...)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("audit record fields: got %q, want %q (docs/reference.md, Audit log)", got, want)
	}
}
