package admin_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/docs"
	"github.com/ocamba-rotator/rotator/internal/admin"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/rotation"
)

// registeredRoutes returns the patterns ("GET /healthz") the package's
// code hands to Handle and HandleFunc.
func registeredRoutes(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			lit, isLit := call.Args[0].(*ast.BasicLit)
			if ok && isLit && (sel.Sel.Name == "Handle" || sel.Sel.Name == "HandleFunc") && lit.Kind == token.STRING {
				pattern, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				routes = append(routes, pattern)
			}
			return true
		})
	}
	slices.Sort(routes)
	return routes
}

// The routes of the reference's admin table are the server's, and answer
// with the auth the table says.
func TestRoutesMatchReference(t *testing.T) {
	rows, err := docs.Table("## Admin API")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, r := range rows {
		documented = append(documented, strings.Trim(r["method"], "`")+" "+strings.Trim(r["path"], "`"))
	}
	slices.Sort(documented)
	if got := registeredRoutes(t); !slices.Equal(got, documented) {
		t.Errorf("routes: got %q registered, want %q (docs/reference.md, Admin API)", got, documented)
	}

	s, _ := newServer(t, &fakeService{}, nil)
	for _, r := range rows {
		method, path := strings.Trim(r["method"], "`"), strings.Trim(r["path"], "`")
		target := strings.ReplaceAll(path, "{name}", "twilio-main")
		t.Run(method+" "+path, func(t *testing.T) {
			want := 200
			if r["auth"] == "bearer" {
				want = 401
			}
			if got := serve(t, s.Handler(), call{method: method, target: target}).code; got != want {
				t.Errorf("without a token: got %d, want %d (auth %s)", got, want, r["auth"])
			}
			if got := serve(t, s.Handler(), call{method: method, target: target, auth: bearer(sentinel)}).code; got != 200 {
				t.Errorf("with the token: got %d, want 200", got)
			}
		})
	}
}

// jsonNames returns the JSON names of the fields of the struct types.
func jsonNames(types ...reflect.Type) []string {
	var names []string
	for _, typ := range types {
		for f := range typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if f.IsExported() && name != "-" && !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return names
}

// documentedFields returns the field names of the first column of the
// table under heading ("outcomes[]" is outcomes).
func documentedFields(t *testing.T, heading string) []string {
	t.Helper()
	rows, err := docs.Table(heading)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rows {
		for _, n := range docs.Code(r["field"]) {
			if n = strings.TrimSuffix(n, "[]"); !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	slices.Sort(names)
	return names
}

// The fields of the JSON answers are the reference's.
func TestAnswerFieldsMatchReference(t *testing.T) {
	for _, tc := range []struct {
		heading string
		types   []reflect.Type
	}{
		{"### Report", []reflect.Type{reflect.TypeFor[rotate.Report](), reflect.TypeFor[rotate.Outcome]()}},
		{"### Status", []reflect.Type{reflect.TypeFor[admin.IntegrationStatus]()}},
		{"### Rotation result", []reflect.Type{reflect.TypeFor[rotation.Result]()}},
		{"### Rotations", []reflect.Type{reflect.TypeFor[admin.RotationsAnswer](), reflect.TypeFor[rotation.Status]()}},
	} {
		got, want := jsonNames(tc.types...), documentedFields(t, tc.heading)
		if !slices.Equal(got, want) {
			t.Errorf("%s fields: got %q, want %q (docs/reference.md)", tc.heading, got, want)
		}
	}
}
