package main

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
)

// logEntries returns the JSON log lines of stderr with the given message.
func logEntries(t *testing.T, stderr, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(stderr))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var e map[string]any
		if json.Unmarshal(sc.Bytes(), &e) == nil && e["msg"] == msg {
			out = append(out, e)
		}
	}
	return out
}

// Hood documents the provider name for Twilio only: rotator decides on the
// live provider settings. A name other than the one expected, with the
// provider's settings, is pushed and verified with a warning; settings
// that differ fail that integration only, naming both lists.
func TestOnceProviderDecidedOnLiveSettings(t *testing.T) {
	f := newFixture(t, hoodtest.Options{ProviderNames: map[string]string{
		"mailgun_email": "Mailgun EU", "telegram": "telegram_bot", "sendgrid_email": "sendgrid",
	}})
	f.addIntegrations(map[string]string{
		"801": "mailgun_email", "802": "telegram", "803": "sendgrid_email", "804": "twilio_sms", "805": "mandrill_email",
	})
	// Hood's sendgrid_email gained a field: its settings are not the documented ones.
	if err := f.hood.SetProviderSettings("803", "api_key", "default_reply_to_email", "default_sender_email", "default_sender_name", "region"); err != nil {
		t.Fatal(err)
	}
	f.put("secret", "mailgun", map[string]any{"api_key": sentinel + "-mg", "domain": "mg.x", "sender_email": "s@x", "sender_name": "X"})
	f.put("secret", "telegram", map[string]any{"auth_token": sentinel + "-tg", "chat_id": "-100"})
	f.put("secret", "sendgrid", map[string]any{"api_key": sentinel + "-sg", "default_sender_email": "s@x"})
	f.put("secret", "twilio", map[string]any{"account_sid": "AC1", "auth_token": sentinel + "-tw", "default_phone_number": "+1"})
	cfg := f.config("", `  - {name: mailgun, id: "801", provider: mailgun_email, source: {mount: secret, path: "{P}/mailgun"}}
  - {name: telegram, id: "802", provider: telegram, source: {mount: secret, path: "{P}/telegram"}}
  - {name: sendgrid, id: "803", provider: sendgrid_email, source: {mount: secret, path: "{P}/sendgrid"}}
  - {name: twilio, id: "804", provider: twilio_sms, source: {mount: secret, path: "{P}/twilio"}}
  - {name: not-sendgrid, id: "805", provider: sendgrid_email, source: {mount: secret, path: "{P}/sendgrid"}}
`)
	r := f.rotator("once", "--config", cfg, "--log-format", "json")
	if r.code != 1 {
		t.Fatalf("exit code: got %d, want 1 (two integrations fail)\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}

	tests := []struct {
		name, id string
		pushed   bool
		want     []string // in the summary line
		warning  string   // the integration's warning in the log; "" = none
	}{
		{name: "mailgun", id: "801", pushed: true, want: []string{"pushed (api_key, domain, sender_email, sender_name)"},
			warning: `integration 801: Hood names the provider "Mailgun EU" (provider id 1005), rotator expected "mailgun"; its settings match provider mailgun_email`},
		{name: "telegram", id: "802", pushed: true, want: []string{"pushed (auth_token, chat_id)"},
			warning: `integration 802: Hood names the provider "telegram_bot" (provider id 1006), rotator expected "telegram"; its settings match provider telegram`},
		{name: "twilio", id: "804", pushed: true, want: []string{"pushed"}},
		{name: "sendgrid", id: "803", want: []string{
			"failed: preflight check failed: integration 803 in Hood is not a sendgrid_email integration",
			`Hood's provider "sendgrid" (provider id 1003) has settings api_key, default_reply_to_email, default_sender_email, default_sender_name, region;`,
			`provider sendgrid_email (expected name "sendgrid") has api_key, default_reply_to_email, default_sender_email, default_sender_name`,
		}},
		{name: "not-sendgrid", id: "805", want: []string{
			"failed: preflight check failed: integration 805 in Hood is not a sendgrid_email integration",
			`Hood's provider "mandrill" (provider id 1002) has settings api_key, default_reply_to_email, default_sender_email, default_sender_name, smtp_username;`,
			"they are the settings of provider mandrill_email",
		}},
	}
	warnings := map[string][]string{}
	for _, e := range logEntries(t, r.stderr, "integration warning") {
		name, _ := e["integration"].(string)
		w, _ := e["warning"].(string)
		warnings[name] = append(warnings[name], w)
	}
	patches := f.patches()
	for _, tt := range tests {
		line := summaryLine(r.stdout, tt.name)
		for _, want := range tt.want {
			if !strings.Contains(line, want) {
				t.Errorf("%s: got summary %q, want it to contain %q", tt.name, line, want)
			}
		}
		wantPatches := 0
		if tt.pushed {
			wantPatches = 1
		}
		if got := len(patches[tt.id]); got != wantPatches {
			t.Errorf("%s: got %d PATCHes, want %d", tt.name, got, wantPatches)
		}
		var got []string
		for _, w := range warnings[tt.name] {
			if strings.Contains(w, "Hood names the provider") {
				got = append(got, w)
			}
		}
		switch {
		case tt.warning == "" && len(got) > 0:
			t.Errorf("%s: got warnings %q, want no provider name warning", tt.name, got)
		case tt.warning != "" && (len(got) != 1 || got[0] != tt.warning):
			t.Errorf("%s: got provider name warnings %q, want exactly %q", tt.name, got, tt.warning)
		}
	}
	for _, e := range logEntries(t, r.stderr, "integration failed") {
		if e["integration"] == "sendgrid" && !strings.Contains(e["error"].(string), "region") {
			t.Errorf("sendgrid: got logged error %q, want it to name the live settings", e["error"])
		}
	}
	// Verified: the confirmed pushes are not made again.
	f.hood.Reset()
	r = f.rotator("once", "--config", cfg, "--log-format", "json")
	for _, name := range []string{"mailgun", "telegram", "twilio"} {
		if line := summaryLine(r.stdout, name); !strings.Contains(line, "unchanged") {
			t.Errorf("second pass, %s: got %q, want unchanged", name, line)
		}
	}
}

// The read-back after the PATCH decides on the live settings too: Hood
// renaming the provider meanwhile is no failure; its settings changing is
// a failed verification naming both lists.
func TestOnceReadBackDecidedOnLiveSettings(t *testing.T) {
	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"811": "mailgun_email", "812": "telegram"})
	// The verifier runs while the PATCH is answered: what it changes is
	// what the read-back sees, and the preflight did not.
	f.hood.SetVerifier(func(id, _ string, _ map[string]string) string {
		var err error
		switch id {
		case "811":
			err = f.hood.SetProviderName("mailgun_email", "Mailgun (new)")
		case "812":
			err = f.hood.SetProviderSettings(id, "auth_token", "chat_id", "thread_id")
		}
		if err != nil {
			t.Errorf("verifier: %v", err)
		}
		return "active"
	})
	f.put("secret", "mailgun", map[string]any{"api_key": sentinel + "-mg", "domain": "mg.x", "sender_email": "s@x", "sender_name": "X"})
	f.put("secret", "telegram", map[string]any{"auth_token": sentinel + "-tg", "chat_id": "-100"})
	cfg := f.config("", `  - {name: mailgun, id: "811", provider: mailgun_email, source: {mount: secret, path: "{P}/mailgun"}}
  - {name: telegram, id: "812", provider: telegram, source: {mount: secret, path: "{P}/telegram"}}
`)
	r := f.rotator("once", "--config", cfg)
	if r.code != 1 {
		t.Fatalf("exit code: got %d, want 1 (telegram fails)\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if line := summaryLine(r.stdout, "mailgun"); !strings.Contains(line, "pushed") {
		t.Errorf("mailgun: got %q, want pushed (a new provider name at the read-back is no failure)", line)
	}
	line := summaryLine(r.stdout, "telegram")
	for _, want := range []string{
		"failed: verification failed: integration 812 in Hood is not a telegram integration",
		`Hood's provider "telegram" (provider id 1006) has settings auth_token, chat_id, thread_id; provider telegram (expected name "telegram") has auth_token, chat_id`,
	} {
		if !strings.Contains(line, want) {
			t.Errorf("telegram: got %q, want it to contain %q", line, want)
		}
	}
	for id, want := range map[string]int{"811": 1, "812": 1} {
		if got := len(f.patches()[id]); got != want {
			t.Errorf("integration %s: got %d PATCHes, want %d", id, got, want)
		}
	}
}
