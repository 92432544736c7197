package config

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// expandTree replaces ${VAR} in every scalar value of the tree rooted at n,
// in place. Mapping keys are left alone, and so is everything that is not a
// scalar, so an environment value can never add keys or change the shape of
// the document: it only ever becomes (part of) one string. Alias nodes are
// not followed (their anchor is expanded where it stands).
//
// A plain (unquoted, untagged) scalar that changed loses its resolved tag so
// that it is resolved again from its new text: `kv_version: ${KV}` with KV=1
// decodes as the integer 1, but text that resolves to null (KV=null) stays
// text. The text itself is never parsed as YAML.
//
// Every unset variable and malformed reference is reported as a Problem at
// the value's path; such a value is left exactly as written.
func expandTree(n *yaml.Node, path string, getenv func(string) string, add func(Problem)) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			expandTree(c, path, getenv, add)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			expandTree(c, indexPath(path, i), getenv, add)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			expandTree(v, keyPath(path, k.Value), getenv, add)
		}
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "$") {
			return
		}
		out, errs := expand(n.Value, getenv)
		if len(errs) > 0 {
			for _, e := range errs {
				add(Problem{Path: path, Line: n.Line, Message: e})
			}
			return
		}
		if out == n.Value {
			return
		}
		n.Value = out
		if n.Style&(yaml.TaggedStyle|yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) == 0 {
			n.Tag = ""
			if n.ShortTag() == "!!null" {
				n.Tag = "!!str"
			}
		}
	}
}

// expand replaces ${NAME} in s with getenv(NAME) and $${ with a literal ${.
// A $ not followed by { (as in $VAR or a lone $) is kept as is. Substituted
// text is not scanned again, so expansion is never recursive. It returns one
// message per unset variable or malformed reference.
func expand(s string, getenv func(string) string) (string, []string) {
	var b strings.Builder
	var errs []string
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '$' && strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case c == '$' && strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				errs = append(errs, fmt.Sprintf("malformed %q: missing closing \"}\" (write $${ for a literal ${)", clip(s[i:])))
				b.WriteString(s[i:])
				i = len(s)
				continue
			}
			name := s[i+2 : i+2+end]
			switch {
			case !validEnvName(name):
				errs = append(errs, fmt.Sprintf("malformed \"${%s}\": %q is not a variable name (letters, digits and _, not starting with a digit)", clip(name), clip(name)))
			default:
				v := getenv(name)
				if v == "" {
					errs = append(errs, fmt.Sprintf("environment variable %s is not set or empty", name))
				}
				b.WriteString(v)
			}
			i += 2 + end + 1
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), errs
}

// validEnvName reports whether s is a portable environment variable name.
func validEnvName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// clip shortens s for an error message.
func clip(s string) string {
	const max = 40
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
