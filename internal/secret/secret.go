// Package secret holds Value, a string whose every printed, logged or
// serialised form is redacted. The only way to the plain text is Reveal.
package secret

import (
	"fmt"
	"log/slog"
)

// Redacted is what every form of a Value prints instead of its contents.
const Redacted = "[REDACTED]"

// Value is a secret string. Its String, GoString, fmt verbs, JSON, YAML, text
// and slog forms are all Redacted; Reveal returns the plain text and is the
// one place where a secret leaves this type.
type Value struct {
	s string
}

// New wraps s.
func New(s string) Value { return Value{s: s} }

// Reveal returns the plain text. Call it only where the value leaves the
// process for its destination (the Hood request body).
func (v Value) Reveal() string { return v.s }

// IsZero reports whether the value is empty.
func (v Value) IsZero() bool { return v.s == "" }

// Len is the length of the plain text, in bytes.
func (v Value) Len() int { return len(v.s) }

// Equal reports whether two values hold the same text.
func (v Value) Equal(o Value) bool { return v.s == o.s }

// String implements fmt.Stringer.
func (v Value) String() string { return Redacted }

// GoString implements fmt.GoStringer (%#v).
func (v Value) GoString() string { return `secret.Value("` + Redacted + `")` }

// Format implements fmt.Formatter so that no verb (%x, %q, %v, %s…) prints
// the plain text.
func (v Value) Format(f fmt.State, verb rune) {
	switch verb {
	case 'q':
		fmt.Fprintf(f, "%q", Redacted)
	case 'v':
		if f.Flag('#') {
			fmt.Fprint(f, v.GoString())
			return
		}
		fmt.Fprint(f, Redacted)
	default:
		fmt.Fprint(f, Redacted)
	}
}

// MarshalJSON implements json.Marshaler.
func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler (used by map keys, XML, slog's text handler).
func (v Value) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// MarshalYAML implements yaml.Marshaler.
func (v Value) MarshalYAML() (any, error) { return Redacted, nil }

// LogValue implements slog.LogValuer.
func (v Value) LogValue() slog.Value { return slog.StringValue(Redacted) }
