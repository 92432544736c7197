package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
)

// TestConfigurationsThatCannotWorkRefusedBeforeAnyCall: settings that look
// valid but cannot work (a schedule that never fires, a jitter as long as a
// schedule's period, two spellings of one Hood id, an id beyond 64 bits)
// stop validate, plan and once with the YAML path and line, before any
// Hood request, although Vault holds the secrets and Hood the integration.
func TestConfigurationsThatCannotWorkRefusedBeforeAnyCall(t *testing.T) {
	const item = `  - {name: %s, id: "%s", provider: telegram, source: {mount: secret, path: "{P}/tg"}%s}
`
	line := func(name, id, more string) string { return fmt.Sprintf(item, name, id, more) }
	tests := []struct {
		name, integrations, want string
	}{
		{"schedule that never fires",
			line("tg", "1161", `, schedule: "0 0 30 2 *"`),
			`integrations[0].schedule (line 17): schedule "0 0 30 2 *" never fires`},
		{"jitter as long as the schedule's period",
			line("tg", "1161", "") + "jitter: 30m\nschedule: \"@every 30m\"\n",
			`jitter (line 18): must be shorter than the shortest time between two runs of schedule (line 19) "@every 30m" (30m0s), got 30m0s`},
		{"two spellings of one id",
			line("tg", "1161", "") + line("tg-again", "01161", ""),
			`integrations[1].id (line 18): duplicate id: "01161" is Hood integration 1161, as is "1161" at integrations[0].id (line 17)`},
		{"id beyond 64 bits",
			line("tg", "18446744073709551616", ""),
			`integrations[0].id (line 17): must fit in 64 bits (at most 18446744073709551615), got 18446744073709551616`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, hoodtest.Options{})
			f.addIntegrations(map[string]string{"1161": "telegram"})
			f.put("secret", "tg", map[string]any{"auth_token": "tg-" + sentinel, "chat_id": "42"})
			cfg := f.config("", tt.integrations)
			for _, cmd := range []string{"validate", "plan", "once"} {
				r := f.rotator(cmd, "--config", cfg)
				if r.code != 2 {
					t.Errorf("%s: exit code got %d, want 2\n%s%s", cmd, r.code, r.stdout, r.stderr)
				}
				if !strings.Contains(r.stderr, tt.want) {
					t.Errorf("%s: stderr got:\n%s\nwant it to contain %q", cmd, r.stderr, tt.want)
				}
			}
			if got := f.hood.Count(""); got != 0 {
				t.Errorf("Hood requests: got %d, want 0", got)
			}
		})
	}
}
