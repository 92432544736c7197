package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

const (
	// maxFileSize bounds what Load reads, so that pointing --config at a
	// device or a huge file fails fast instead of exhausting memory.
	maxFileSize = 16 << 20

	// maxDecodeSteps bounds the work of decoding one document, aliases and
	// merge keys expanded ("billion laughs").
	maxDecodeSteps = 1_000_000
)

// Load reads the configuration file at path and parses it with Parse.
//
// A file that cannot be used at all (missing, a directory, unreadable,
// empty, not YAML, more than one document) is a plain error naming the path.
// Otherwise Load returns the Config, with defaults applied, together with a
// *ValidationError listing every expansion, unknown-key and type problem, or
// nil. Load does not call Validate; LoadAndValidate does both.
func Load(path string, getenv func(string) string) (*Config, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := Parse(data, getenv)
	if err != nil {
		if _, ok := errors.AsType[*ValidationError](err); ok {
			return cfg, err
		}
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return cfg, nil
}

// LoadAndValidate is Load followed by Validate. File errors are returned as
// is; otherwise every problem of both steps comes back in one
// *ValidationError, sorted by line and path. A Validate problem at or under
// a path that already has a Load problem (such as "hood.timeout" after a bad
// duration there) is left out: it would only repeat it. The Config is
// returned even when it has problems, nil only with a file error.
func LoadAndValidate(path string, getenv func(string) string) (*Config, error) {
	cfg, err := Load(path, getenv)
	if cfg == nil {
		return nil, err
	}
	var problems []Problem
	if ve, ok := errors.AsType[*ValidationError](err); ok {
		problems = append(problems, ve.Problems...)
	}
	if verr := cfg.Validate(getenv); verr != nil {
		ve, ok := errors.AsType[*ValidationError](verr)
		if !ok {
			return cfg, verr
		}
		parsed := problems[:len(problems):len(problems)] // Load's problems only: Validate's own never hide each other
		for _, p := range ve.Problems {
			if !coveredBy(p.Path, parsed) {
				problems = append(problems, p)
			}
		}
	}
	if len(problems) == 0 {
		return cfg, nil
	}
	sortProblems(problems)
	return cfg, &ValidationError{Problems: problems}
}

// coveredBy reports whether path is, or lies under, the path of one of
// problems.
func coveredBy(path string, problems []Problem) bool {
	for _, p := range problems {
		if p.Path == "" {
			continue
		}
		if path == p.Path || strings.HasPrefix(path, p.Path+".") || strings.HasPrefix(path, p.Path+"[") {
			return true
		}
	}
	return false
}

// readFile reads the configuration file, explaining why it cannot.
func readFile(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("no configuration file given")
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("config file %s does not exist: %w", path, err)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("config file %s is not accessible (permission denied): %w", path, err)
	case err != nil:
		return nil, fmt.Errorf("config file %s: %w", path, err)
	case fi.IsDir():
		return nil, fmt.Errorf("config file %s is a directory, not a file", path)
	}
	f, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("config file %s is not readable (permission denied): %w", path, err)
	case err != nil:
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	_ = f.Close() // opened read-only: closing it cannot lose anything
	if err != nil {
		return nil, fmt.Errorf("config file %s: reading: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("config file %s is larger than %d MiB", path, maxFileSize>>20)
	}
	return data, nil
}

// Parse parses one YAML document into a Config: it expands ${VAR} in scalar
// values with getenv, decodes strictly (every unknown key is a problem) and
// applies the defaults. A document that is empty, not YAML, not a mapping or
// followed by another document is a plain error. Otherwise Parse returns the
// Config together with a *ValidationError listing every expansion, unknown
// key and type problem, or nil. Parse never calls os.Getenv: a nil getenv
// behaves as an empty environment.
//
// As YAML has it, a plain ${VAR} is fine in block style (key: ${VAR}) but
// must be quoted inside a flow mapping or list ({key: "${VAR}"}).
func Parse(data []byte, getenv func(string) string) (*Config, error) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	root, err := parseDocument(data)
	if err != nil {
		return nil, err
	}
	var problems []Problem
	add := func(p Problem) { problems = append(problems, p) }

	expandTree(root, "", getenv, add)

	cfg := &Config{}
	d := &decoder{
		lines:  map[string]int{},
		given:  map[string]bool{},
		active: map[*yaml.Node]bool{},
		add:    add,
	}
	d.decode(root, reflect.ValueOf(cfg).Elem(), "")
	cfg.lines = d.lines
	cfg.given = d.given
	cfg.ApplyDefaults(getenv)

	if len(problems) > 0 {
		sortProblems(problems)
		return cfg, &ValidationError{Problems: problems}
	}
	return cfg, nil
}

// parseDocument parses data into a node tree and returns its top-level
// mapping.
func parseDocument(data []byte) (top *yaml.Node, err error) {
	defer func() {
		// The YAML parser is not ours: never let it take the process down.
		if r := recover(); r != nil {
			top, err = nil, fmt.Errorf("not valid YAML: the parser failed: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("the file is empty: it holds no YAML document")
		}
		if bytes.Contains(data, []byte("${")) && strings.Contains(err.Error(), "did not find expected ',' or") {
			return nil, fmt.Errorf("not valid YAML: %w (inside {...} or [...], quote a value that uses ${VAR}: \"${VAR}\")", err)
		}
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, fmt.Errorf("not valid YAML: %w", err)
	default:
		line := next.Line
		if len(next.Content) > 0 {
			line = next.Content[0].Line
		}
		return nil, fmt.Errorf("more than one YAML document (another one starts at line %d): the configuration must be a single document", line)
	}
	if len(doc.Content) == 0 {
		return nil, errors.New("the file is empty: it holds no YAML document")
	}
	top = doc.Content[0]
	switch {
	case isNull(top):
		return nil, errors.New("the file is empty: its YAML document holds no settings")
	case top.Kind != yaml.MappingNode:
		return nil, fmt.Errorf("not a rotator configuration: the top level is %s, want a mapping of settings (vault:, hood:, integrations:, ...)", shape(top))
	}
	return top, nil
}

// decoder walks a node tree over the config structs, strictly: it makes the
// structs, slices, maps and pointers, records every problem with its path
// and line rather than stopping at the first, and leaves each single value
// to the YAML library (see leafProblem).
//
// The walk is ours because yaml.v3 (v3.0.6), measured, cannot give what
// Load promises: Node.Decode ignores unknown keys, and Decoder.KnownFields,
// which reports them all, works on bytes, not on the ${VAR}-expanded tree;
// its errors carry a line but no path, name a Go type instead of the valid
// keys, and quote the start of the value (a secret in the wrong place); a
// duplicate key leaves the whole mapping undecoded, and an alias cycle
// aborts the whole document with no line. The walk also keeps lines and the
// paths set, which ApplyDefaults and Validate need.
type decoder struct {
	lines  map[string]int      // path -> line of its key (or list item)
	given  map[string]bool     // paths set to a non-null value
	active map[*yaml.Node]bool // alias targets being decoded: cycle guard
	steps  int
	full   bool // maxDecodeSteps reached and reported
	add    func(Problem)
}

// tick counts one step of work and reports whether there is budget left.
func (d *decoder) tick(n *yaml.Node, path string) bool {
	d.steps++
	if d.steps <= maxDecodeSteps {
		return true
	}
	if !d.full {
		d.full = true
		d.add(Problem{Path: path, Line: n.Line, Message: "the document is too large once its aliases are expanded"})
	}
	return false
}

// problem records a problem at path, on the line of its key when known
// (where the eye looks for "path"), else on the line of node n.
func (d *decoder) problem(n *yaml.Node, path, format string, args ...any) {
	line, ok := d.lines[path]
	if !ok {
		line = n.Line
	}
	d.add(Problem{Path: path, Line: line, Message: fmt.Sprintf(format, args...)})
}

// deref follows an alias node to its anchor and marks the anchor active; the
// returned func unmarks it. ok is false (and a problem recorded) for a
// dangling or self-containing alias.
func (d *decoder) deref(n *yaml.Node, path string) (target *yaml.Node, done func(), ok bool) {
	if n.Kind != yaml.AliasNode {
		return n, func() {}, true
	}
	t := n.Alias
	switch {
	case t == nil:
		d.problem(n, path, "alias *%s has no anchor", n.Value)
		return nil, nil, false
	case d.active[t]:
		d.problem(n, path, "alias *%s refers to a node that contains it", n.Value)
		return nil, nil, false
	}
	d.active[t] = true
	return t, func() { delete(d.active, t) }, true
}

// decode decodes n into v, whose YAML path is path; v is addressable. It
// walks pointers, lists, structs and maps; a value of any other kind
// (Duration among them) is a single value, for leafProblem.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if !d.tick(n, path) {
		return
	}
	n, done, ok := d.deref(n, path)
	if !ok {
		return
	}
	defer done()
	switch {
	case isNull(n):
		// an empty value keeps the zero value: the default applies
	case v.Kind() == reflect.Pointer:
		nv := reflect.New(v.Type().Elem())
		d.decode(n, nv.Elem(), path)
		v.Set(nv)
	case v.Kind() == reflect.Slice:
		d.decodeSlice(n, v, path)
	case v.Kind() == reflect.Struct, v.Kind() == reflect.Map:
		d.decodeMapping(n, v, path)
	default:
		if msg := leafProblem(n, v); msg != "" {
			d.problem(n, path, "%s", msg)
			return
		}
		d.given[path] = true
	}
}

// leafProblem decodes single value n into v with the library, which calls
// UnmarshalYAML (whose error is the problem) or sets a number or boolean, and
// says what is wrong, "" if nothing. A string takes any single value's text. The tag check is ours:
// measured, the library also takes yes, on and y (and their "no" forms) as
// a boolean and 1.0 as an integer.
func leafProblem(n *yaml.Node, v reflect.Value) string {
	ptr := v.Addr().Interface()
	if _, custom := ptr.(yaml.Unmarshaler); custom {
		if err := n.Decode(ptr); err != nil {
			return err.Error()
		}
		return ""
	}
	if v.Kind() == reflect.String {
		// Any single value is its text, whatever its tag: the library would
		// decode !!binary, and quote a refused value (a secret) in its error.
		if n.Kind != yaml.ScalarNode {
			return "want a single value, got " + shape(n)
		}
		v.SetString(n.Value)
		return ""
	}
	want, tag := "a single value", n.ShortTag()
	switch {
	case v.Kind() == reflect.Bool:
		want, tag = "true or false", "!!bool"
	case v.CanInt():
		want, tag = "an integer", "!!int"
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != tag || n.Decode(ptr) != nil {
		return fmt.Sprintf("want %s, got %s", want, describe(n))
	}
	return ""
}

// decodeMapping decodes mapping n into struct v, one problem per unknown
// key, or into map v, whose keys are strings: any key is accepted.
func (d *decoder) decodeMapping(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.problem(n, path, "want a mapping, got %s", shape(n))
		return
	}
	isMap := v.Kind() == reflect.Map
	fields, names := map[string]int{}, []string(nil)
	if isMap {
		v.Set(reflect.MakeMap(v.Type()))
	} else {
		fields, names = structFields(v.Type())
	}
	for _, p := range d.pairs(n, path) {
		kp := keyPath(path, p.key)
		d.lines[kp] = p.line
		i, ok := fields[p.key]
		switch {
		case isMap:
			ev := reflect.New(v.Type().Elem()).Elem()
			d.decode(p.value, ev, kp)
			v.SetMapIndex(reflect.ValueOf(p.key), ev)
		case !ok:
			d.add(Problem{Path: kp, Line: p.line, Message: "unknown key (valid: " + strings.Join(names, ", ") + ")"})
		default:
			d.decode(p.value, v.Field(i), kp)
		}
	}
}

// decodeSlice decodes list n into slice v.
func (d *decoder) decodeSlice(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.SequenceNode {
		d.problem(n, path, "want a list, got %s", shape(n))
		return
	}
	v.Set(reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content)))
	for i, item := range n.Content {
		ip := indexPath(path, i)
		d.lines[ip] = item.Line
		d.decode(item, v.Index(i), ip)
	}
}

// pair is one entry of a mapping.
type pair struct {
	key   string
	line  int
	value *yaml.Node
}

// pairs returns the entries of mapping n with merge keys (<<) resolved:
// the entries of n itself, then those merged in that n does not set; every
// key appears once. A key written twice in n is a problem.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	var out []pair
	var merges []*yaml.Node
	seen := map[string]int{} // key -> line of its first entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if !d.tick(k, path) {
			return out
		}
		line, dup := seen[k.Value]
		switch {
		case isMergeKey(k):
			merges = append(merges, val)
		case k.Kind != yaml.ScalarNode:
			d.problem(k, path, "a key must be a single value, got %s", shape(k))
		case dup:
			d.problem(k, keyPath(path, k.Value), "duplicate key (first at line %d)", line)
		default:
			seen[k.Value] = k.Line
			out = append(out, pair{key: k.Value, line: k.Line, value: val})
		}
	}
	put := func(p pair) {
		if _, ok := seen[p.key]; !ok {
			seen[p.key] = p.line
			out = append(out, p)
		}
	}
	for _, m := range slices.Backward(merges) { // of two merge keys, the last wins
		d.merge(m, path, put)
	}
	return out
}

// merge feeds put the entries that merge key value val brings in: a
// mapping, or a list of mappings of which the first listed wins.
func (d *decoder) merge(val *yaml.Node, path string, put func(pair)) {
	t, done, ok := d.deref(val, path)
	if !ok {
		return
	}
	defer done()
	items := []*yaml.Node{t}
	if t.Kind == yaml.SequenceNode {
		items = t.Content
	}
	for _, item := range items {
		item, idone, ok := d.deref(item, path)
		if !ok {
			continue
		}
		if item.Kind == yaml.MappingNode {
			for _, p := range d.pairs(item, path) {
				put(p)
			}
		} else {
			d.problem(item, path, "a merge key (<<) takes a mapping or a list of mappings, got %s", shape(item))
		}
		idone()
	}
}

// structFields maps the yaml names of t's exported fields to their index,
// and returns the names sorted.
func structFields(t reflect.Type) (map[string]int, []string) {
	fields := map[string]int{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = i
		names = append(names, name)
	}
	sort.Strings(names)
	return fields, names
}

// isNull reports whether n is an empty value ("", ~ or null, unquoted).
// A scalar that ${VAR} expansion produced is never null.
func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// isMergeKey reports whether k is the YAML merge key <<.
func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge"
}

// shape names what kind of node n is ("a mapping", "a list", "a single
// value"), for "want X, got Y" messages. It never shows a value: a value
// written where a mapping was wanted could be a secret in the wrong place.
func shape(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a single value"
	case yaml.AliasNode:
		return "an alias"
	case yaml.DocumentNode:
		return "a document"
	}
	return "nothing"
}

// describe is shape, except that a scalar is shown quoted: for settings
// that hold numbers, booleans and durations, never secrets.
func describe(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return strconv.Quote(clip(n.Value))
	}
	return shape(n)
}

// keyPath is the path of key under parent: parent.key, or parent["a key"]
// when the key is not made of letters, digits, '-' and '_'.
func keyPath(parent, key string) string {
	plain := key != ""
	for i := 0; i < len(key) && plain; i++ {
		c := key[i]
		plain = c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
	}
	switch {
	case !plain:
		return parent + "[" + strconv.Quote(key) + "]"
	case parent == "":
		return key
	default:
		return parent + "." + key
	}
}

// indexPath is the path of item i of the list at parent: parent[i].
func indexPath(parent string, i int) string {
	return parent + "[" + strconv.Itoa(i) + "]"
}

// parentPath is the path one level up from path, "" at the top.
func parentPath(path string) string {
	if strings.HasSuffix(path, "\"]") {
		if i := strings.LastIndex(path, "[\""); i >= 0 {
			return path[:i]
		}
	}
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}
