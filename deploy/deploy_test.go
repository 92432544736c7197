// Package deploy_test checks the deployment files under deploy/, the
// Dockerfile and docs/operations.md: their required properties, their
// consistency with each other and with rotator (its configuration
// validation, its metric names), and the documented Vault set-up against a
// real OpenBao server. scripts/check-deploy.sh runs these tests together
// with the external checkers (systemd-analyze, promtool, the Kubernetes
// schema checks, a Dockerfile linter).
package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/ocamba-rotator/rotator/internal/config"
)

// The tests run in deploy/; paths are relative to the repository root.
const root = ".."

// envStrict, set to 1 (scripts/check-deploy.sh does), turns the skips for a
// missing external tool (promtool) into failures.
const envStrict = "ROTATOR_DEPLOY_STRICT"

func path(rel string) string { return filepath.Join(root, filepath.FromSlash(rel)) }

func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(path(rel))
	if err != nil {
		t.Fatalf("read %s: %v", rel, err)
	}
	return b
}

// yamlDocs decodes every document of a YAML file into generic maps.
func yamlDocs(t *testing.T, rel string) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, rel)))
	var docs []map[string]any
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if m != nil {
			docs = append(docs, m)
		}
	}
	return docs
}

// yamlDoc decodes a file that holds exactly one YAML document.
func yamlDoc(t *testing.T, rel string) map[string]any {
	t.Helper()
	docs := yamlDocs(t, rel)
	if len(docs) != 1 {
		t.Fatalf("%s: want one YAML document, got %d", rel, len(docs))
	}
	return docs[0]
}

// dig follows keys (string for maps, int for lists) through decoded YAML or
// JSON; it returns nil when a step is missing.
func dig(v any, keys ...any) any {
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k < 0 || k >= len(l) {
				return nil
			}
			v = l[k]
		default:
			return nil
		}
	}
	return v
}

func str(v any, keys ...any) string {
	s, _ := dig(v, keys...).(string)
	return s
}

func list(v any, keys ...any) []any {
	l, _ := dig(v, keys...).([]any)
	return l
}

func mapping(v any, keys ...any) map[string]any {
	m, _ := dig(v, keys...).(map[string]any)
	return m
}

// env is a fake environment for config.Parse and Validate.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// parseConfig runs rotator's own loading and validation on a configuration
// document, as `rotator validate` does.
func parseConfig(t *testing.T, name string, data []byte, getenv func(string) string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(data, getenv)
	if err != nil {
		t.Fatalf("%s: config.Parse: %v", name, err)
	}
	if err := cfg.Validate(getenv); err != nil {
		t.Fatalf("%s: Validate: %v", name, err)
	}
	return cfg
}

// tool finds an external program; without it the test is skipped, or
// fails when ROTATOR_DEPLOY_STRICT=1.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv(envStrict) == "1" {
			t.Fatalf("%s not found and %s=1: %v", name, envStrict, err)
		}
		t.Skipf("%s not found (scripts/check-deploy.sh installs it): %v", name, err)
	}
	return p
}

// goTool is the go command that runs these tests.
func goTool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("go") // `go test` puts its own toolchain's first on PATH
	if err != nil {
		t.Fatalf("no go command in PATH: %v", err)
	}
	return p
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// docsOperations is docs/operations.md.
func docsOperations(t *testing.T) string {
	t.Helper()
	return string(readFile(t, "docs/operations.md"))
}

// docBlocks returns the fenced code blocks of docs/operations.md that
// follow a line "<!-- test:NAME -->".
func docBlocks(t *testing.T, name string) string {
	t.Helper()
	lines := strings.Split(docsOperations(t), "\n")
	marker := "<!-- test:" + name + " -->"
	var out []string
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != marker {
			continue
		}
		if i+1 >= len(lines) || !strings.HasPrefix(lines[i+1], "```") {
			t.Fatalf("docs/operations.md:%d: %s is not followed by a code block", i+1, marker)
		}
		j := i + 2
		for ; j < len(lines) && !strings.HasPrefix(lines[j], "```"); j++ {
			out = append(out, lines[j])
		}
		if j == len(lines) {
			t.Fatalf("docs/operations.md:%d: unterminated code block", i+2)
		}
		i = j
	}
	if len(out) == 0 {
		t.Fatalf("docs/operations.md has no block marked %s", marker)
	}
	return strings.Join(out, "\n") + "\n"
}

var (
	headingRE   = regexp.MustCompile(`(?m)^#{1,6} +(.+?) *$`)
	anchorRE    = regexp.MustCompile(`\]\(#([^)]+)\)`)
	repoPathRE  = regexp.MustCompile("`((?:deploy|docs|scripts)/[A-Za-z0-9_./-]*[A-Za-z0-9_])")
	anchorStrip = regexp.MustCompile(`[^\p{L}\p{N} _-]`)
)

// TestDocsLinks: every in-page link of docs/operations.md has its heading
// (GitHub's anchors), and every repository path it names exists.
func TestDocsLinks(t *testing.T) {
	docs := docsOperations(t)
	anchors := map[string]bool{}
	inFence := false
	for _, l := range strings.Split(docs, "\n") {
		if strings.HasPrefix(l, "```") {
			inFence = !inFence
		}
		if m := headingRE.FindStringSubmatch(l); m != nil && !inFence {
			a := strings.ToLower(anchorStrip.ReplaceAllString(m[1], ""))
			anchors[strings.ReplaceAll(a, " ", "-")] = true
		}
	}
	links := anchorRE.FindAllStringSubmatch(docs, -1)
	if len(links) < 10 {
		t.Errorf("docs/operations.md: only %d in-page links found", len(links))
	}
	for _, m := range links {
		if !anchors[m[1]] {
			t.Errorf("docs/operations.md: link #%s has no heading", m[1])
		}
	}
	for _, m := range repoPathRE.FindAllStringSubmatch(docs, -1) {
		p := strings.TrimSuffix(m[1], "/...")
		if strings.Contains(p, "*") {
			continue
		}
		if _, err := os.Stat(path(p)); err != nil {
			t.Errorf("docs/operations.md names %s: %v", p, err)
		}
	}
}
