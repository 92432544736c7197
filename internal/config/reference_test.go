package config_test

import (
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/ocamba-rotator/rotator/docs"
	"github.com/ocamba-rotator/rotator/internal/config"
)

// decoderKeys returns every key path the decoder accepts, with its type as
// the reference writes it: the decoder takes a struct field by its yaml
// tag, so the paths follow from the Config type. A list of mappings adds
// "[]" to the path; a map (fields, static) is one key, whatever its own
// keys.
func decoderKeys(t *testing.T) map[string]string {
	t.Helper()
	keys := map[string]string{}
	var walk func(typ reflect.Type, prefix string)
	walk = func(typ reflect.Type, prefix string) {
		for f := range typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			switch {
			case !f.IsExported() || name == "-":
				continue
			case name == "":
				// The decoder would take it under its lower-cased name, which
				// no table lists: every field says its key.
				t.Fatalf("%s%s: an exported field with no yaml tag", prefix, f.Name)
			}
			path, ft := prefix+name, f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case ft == reflect.TypeFor[config.Duration]():
				keys[path] = "duration"
			case ft.Kind() == reflect.Struct:
				walk(ft, path+".")
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				walk(ft.Elem(), path+"[].")
			case ft.Kind() == reflect.Map:
				keys[path] = "map"
			case ft.Kind() == reflect.String, ft.Kind() == reflect.Bool, ft.Kind() == reflect.Int:
				keys[path] = ft.Kind().String()
			default:
				t.Fatalf("%s: a %s; teach decoderKeys its type", path, ft)
			}
		}
	}
	walk(reflect.TypeFor[config.Config](), "")
	return keys
}

// exampleKeys returns the key paths config.example.yaml writes, the
// commented-out ones included, and the file with those uncommented. free
// are the paths whose own keys are free (fields, static).
//
// The example shows a key commented out when it belongs to another login
// method or excludes a key that is set ("# role: rotator"): such a line is
// a lower-case key and a value without spaces, which tells it from the
// prose of the comments ("# token: a file holding the token.").
func exampleKeys(t *testing.T, free map[string]bool) (map[string]bool, []byte) {
	t.Helper()
	commentedKey := regexp.MustCompile(`(?m)^(\s*)# ([a-z_]+: \S+)\s*$`)
	data, err := os.ReadFile("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data = commentedKey.ReplaceAll(data, []byte("$1$2"))
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("config.example.yaml, its commented-out keys uncommented: %v", err)
	}
	keys := map[string]bool{}
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		switch {
		case free[path] || n.Kind == yaml.ScalarNode:
			keys[path] = true
		case n.Kind == yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if path != "" {
					p = path + "." + p
				}
				walk(n.Content[i+1], p)
			}
		case n.Kind == yaml.SequenceNode:
			for _, item := range n.Content {
				walk(item, path+"[]")
			}
		}
	}
	walk(doc.Content[0], "")
	return keys, data
}

// The keys the decoder accepts are those of the reference's configuration
// table, with the same types, and those config.example.yaml shows.
func TestKeysMatchReferenceAndExample(t *testing.T) {
	decoder := decoderKeys(t)
	rows, err := docs.Table("## Configuration")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]string{}
	for _, r := range rows {
		documented[strings.Trim(r["key"], "`")] = r["type"]
	}
	free := map[string]bool{}
	for k, typ := range decoder {
		free[k] = typ == "map"
	}
	example, uncommented := exampleKeys(t, free)

	for _, k := range slices.Sorted(maps.Keys(decoder)) {
		switch typ, ok := documented[k]; {
		case !ok:
			t.Errorf("%s: got it accepted by the decoder, want it in docs/reference.md's configuration table too", k)
		case typ != decoder[k]:
			t.Errorf("%s: got type %q in docs/reference.md, want %q", k, typ, decoder[k])
		}
		if !example[k] {
			t.Errorf("%s: got it accepted by the decoder, want it in config.example.yaml too", k)
		}
	}
	for k := range documented {
		if _, ok := decoder[k]; !ok {
			t.Errorf("%s: got it in docs/reference.md's configuration table, want it accepted by the decoder", k)
		}
	}
	for k := range example {
		if _, ok := decoder[k]; !ok {
			t.Errorf("%s: got it in config.example.yaml, want it accepted by the decoder", k)
		}
	}

	// The decoder itself takes every key of the example, the commented-out
	// ones too.
	getenv := func(string) string { return "x" }
	if _, err := config.Parse(uncommented, getenv); err != nil {
		t.Errorf("config.example.yaml, its commented-out keys uncommented: got %v, want it decoded", err)
	}
}
