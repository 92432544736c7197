package secret_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/ocamba-rotator/rotator/internal/secret"
)

const sentinel = "SENTINEL-7f3a9c-do-not-print"

func TestValueNeverPrintsItsText(t *testing.T) {
	v := secret.New(sentinel)
	type wrapper struct {
		Key   string
		Value secret.Value
		Ptr   *secret.Value
		Map   map[string]secret.Value
	}
	w := wrapper{Key: "api_key", Value: v, Ptr: &v, Map: map[string]secret.Value{"k": v}}

	forms := map[string]string{}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%10s", "%-8v"} {
		forms["fmt "+verb+" value"] = fmt.Sprintf(verb, v)
		forms["fmt "+verb+" struct"] = fmt.Sprintf(verb, w)
	}
	forms["String"] = v.String()
	forms["Sprint"] = fmt.Sprint(v, &v)
	forms["error wrap"] = fmt.Errorf("push failed for %v: %w", v, fmt.Errorf("inner %s", v)).Error()

	j, err := json.Marshal(w)
	if err != nil {
		t.Fatalf("json: %v", err)
	}
	forms["json"] = string(j)

	y, err := yaml.Marshal(w)
	if err != nil {
		t.Fatalf("yaml: %v", err)
	}
	forms["yaml"] = string(y)

	for _, h := range []struct {
		name string
		mk   func(*bytes.Buffer) slog.Handler
	}{
		{"slog json", func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) }},
		{"slog text", func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) }},
	} {
		var buf bytes.Buffer
		l := slog.New(h.mk(&buf))
		//nolint:sloglint // attributes on purpose: they must be redacted as well
		l.Info("msg", "value", v, "ptr", &v, "struct", w, slog.Any("any", v), slog.Group("g", "v", v))
		forms[h.name] = buf.String()
	}

	for name, out := range forms {
		if strings.Contains(out, sentinel) {
			t.Errorf("%s: output contains the secret: got %q", name, strings.ReplaceAll(out, sentinel, "<SENTINEL>"))
		}
		if !strings.Contains(out, secret.Redacted) {
			t.Errorf("%s: got %q, want it to contain %q", name, out, secret.Redacted)
		}
	}
}

func TestRevealAndCompare(t *testing.T) {
	a, b := secret.New("x"), secret.New("x")
	if got := a.Reveal(); got != "x" {
		t.Errorf("Reveal: got %q, want %q", got, "x")
	}
	if !a.Equal(b) || a.Equal(secret.New("y")) {
		t.Errorf("Equal: wrong answer")
	}
	if !secret.New("").IsZero() || a.IsZero() {
		t.Errorf("IsZero: wrong answer")
	}
	if a.Len() != 1 {
		t.Errorf("Len: got %d, want 1", a.Len())
	}
}
