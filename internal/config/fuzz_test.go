package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/config"
)

// FuzzParse checks that Parse and Validate never panic, whatever the input
// and the environment: run with go test -fuzz=FuzzParse ./internal/config/.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &x {<<: *x}\n"))
	f.Add([]byte("schedule: TZ=UTC\n"))
	f.Add([]byte("ha: {mode: vault, lease_ttl: 0s, identity: \"\"}\nwatch: {interval: -1s}\n"))
	f.Add([]byte("hood: {timeout: 2562047h, verify_timeout: 2562047h}\nha: {mode: vault, mount: m, path: p}\nwatch: {interval: 1s}\n"))
	// Every variable is set; some values look like YAML structure.
	getenv := func(name string) string {
		switch {
		case strings.HasPrefix(name, "E"):
			return ""
		case strings.HasPrefix(name, "N"):
			return "\n  evil: x\n- [1"
		default:
			return name
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse(data, getenv)
		if c == nil {
			if err == nil {
				t.Fatal("got neither a Config nor an error")
			}
			return
		}
		_ = c.Validate(getenv)
		_ = c.Location()
		_ = c.HA.Enabled()
		for _, in := range c.Integrations {
			_ = in.Source.Key()
		}
	})
}
