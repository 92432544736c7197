package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
	"github.com/ocamba-rotator/rotator/internal/provider/providertest"
	"github.com/ocamba-rotator/rotator/internal/secret"
)

// With provider_check, `rotator once` asks SendGrid and Telegram (their
// test servers) before any push: a refused key is never sent to Hood and
// its integration fails naming the provider's reason; accepted keys, and an
// integration that did not opt in, are pushed. No output, log, state or
// audit line holds a secret.
func TestOnceProviderCheck(t *testing.T) {
	sg := providertest.NewSendGridServer()
	t.Cleanup(sg.Close)
	tg := providertest.NewTelegramServer()
	t.Cleanup(tg.Close)

	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{
		"801": "sendgrid_email", "802": "sendgrid_email", "803": "telegram", "804": "telegram", "805": "telegram",
	})
	sgGood := sentinel + "-sg-good"
	sg.SeedKeyValue(secret.New(sgGood), "hood", "mail.send")
	tgGood := "7001:" + sentinel + "-tg-good"
	tg.AddBot(tgGood, providertest.TelegramBot{})
	f.put("secret", "sg-bad", map[string]any{"api_key": sentinel + "-sg-bad"})
	f.put("secret", "sg-good", map[string]any{"api_key": sgGood})
	f.put("secret", "tg-bad", map[string]any{"auth_token": "7002:" + sentinel + "-tg-bad", "chat_id": "1"})
	f.put("secret", "tg-good", map[string]any{"auth_token": tgGood, "chat_id": "1"})
	tgPlain := "7003:" + sentinel + "-tg-plain"
	tg.AddBot(tgPlain, providertest.TelegramBot{})
	f.put("secret", "tg-plain", map[string]any{"auth_token": tgPlain, "chat_id": "1"})
	cfg := f.config("", `  - {name: sg-bad, id: "801", provider: sendgrid_email, provider_check: true, source: {mount: secret, path: "{P}/sg-bad"}}
  - {name: sg-good, id: "802", provider: sendgrid_email, provider_check: true, source: {mount: secret, path: "{P}/sg-good"}}
  - {name: tg-bad, id: "803", provider: telegram, provider_check: true, source: {mount: secret, path: "{P}/tg-bad"}}
  - {name: tg-good, id: "804", provider: telegram, provider_check: true, source: {mount: secret, path: "{P}/tg-good"}}
  - {name: tg-plain, id: "805", provider: telegram, source: {mount: secret, path: "{P}/tg-plain"}}
provider_api:
  sendgrid_email: `+sg.URL()+`
  telegram: `+tg.URL()+`
`)

	// plan asks no provider.
	if r := f.rotator("plan", "--config", cfg); r.code != 0 {
		t.Fatalf("plan: exit code got %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if n := tg.Calls("getMe"); n != 0 {
		t.Errorf("plan: got %d Telegram checks, want none", n)
	}

	r := f.rotator("once", "--config", cfg, "--log-level", "debug", "--log-format", "json")
	if r.code != 1 {
		t.Fatalf("exit code: got %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for name, want := range map[string]string{
		"sg-bad":   "failed: refused by sendgrid_email: The provided authorization grant is invalid, expired, or revoked (HTTP 401): not pushed",
		"tg-bad":   "failed: refused by telegram: Unauthorized (HTTP 401): not pushed",
		"sg-good":  "pushed",
		"tg-good":  "pushed",
		"tg-plain": "pushed",
	} {
		if line := summaryLine(r.stdout, name); !strings.Contains(line, want) {
			t.Errorf("%s: got %q, want it to contain %q", name, line, want)
		}
	}
	patches := f.patches()
	for id, want := range map[string]int{"801": 0, "802": 1, "803": 0, "804": 1, "805": 1} {
		if got := len(patches[id]); got != want {
			t.Errorf("integration %s: got %d PATCHes, want %d", id, got, want)
		}
	}
	for _, req := range f.hood.Requests() {
		if req.ID == "801" || req.ID == "803" {
			t.Errorf("Hood got %s for refused integration %s, want no request at all", req.Method, req.ID)
		}
	}
	// The server counts the calls of known tokens: tg-good's only, since
	// tg-plain (a known token too) did not opt in.
	if n := tg.Calls("getMe"); n != 1 {
		t.Errorf("Telegram checks of known tokens: got %d, want 1 (tg-plain did not opt in)", n)
	}
	for _, file := range []string{"state.db", "audit.log"} {
		data, err := os.ReadFile(filepath.Join(f.dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), sentinel) {
			t.Errorf("%s holds the sentinel secret", file)
		}
	}
	if !strings.Contains(r.stderr, "refused by telegram: Unauthorized") {
		t.Errorf("the log does not name the refusal:\n%s", r.stderr)
	}

}

// With provider_check, `rotator once` logs in to a custom_email_provider's
// mail server (smtp_host, the port setting, its CA in smtp_ca_cert) before
// any push: a refused password is never sent to Hood and its integration
// fails naming the server's reply; the accepted one is pushed. The server
// gets STARTTLS before any AUTH and no mail; no output, state or audit line
// holds the password.
func TestOnceProviderCheckSMTP(t *testing.T) {
	srv := providertest.NewSMTPServer(providertest.SMTPServerOptions{EchoCredentials: true})
	t.Cleanup(srv.Close)
	good := sentinel + "-smtp-good"
	srv.AddUser("hood@example.com", good)

	f := newFixture(t, hoodtest.Options{})
	f.addIntegrations(map[string]string{"811": "custom_email_provider", "812": "custom_email_provider"})
	ca := filepath.Join(f.dir, "smtp-ca.pem")
	if err := os.WriteFile(ca, srv.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	f.put("secret", "smtp-bad", map[string]any{"username": "hood@example.com", "password": sentinel + "-smtp-bad"})
	f.put("secret", "smtp-good", map[string]any{"username": "hood@example.com", "password": good})
	cfg := f.config("", `  - {name: smtp-bad, id: "811", provider: custom_email_provider, provider_check: true, smtp_host: `+srv.Host()+`, smtp_ca_cert: `+ca+`, static: {port: "`+srv.Port()+`"}, source: {mount: secret, path: "{P}/smtp-bad"}}
  - {name: smtp-good, id: "812", provider: custom_email_provider, provider_check: true, smtp_host: `+srv.Host()+`, smtp_ca_cert: `+ca+`, static: {port: "`+srv.Port()+`"}, source: {mount: secret, path: "{P}/smtp-good"}}
`)

	r := f.rotator("once", "--config", cfg, "--log-level", "debug", "--log-format", "json")
	if r.code != 1 {
		t.Fatalf("exit code: got %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	for name, want := range map[string]string{
		"smtp-bad":  "failed: refused by custom_email_provider: 535 5.7.8 Authentication credentials invalid",
		"smtp-good": "pushed",
	} {
		if line := summaryLine(r.stdout, name); !strings.Contains(line, want) {
			t.Errorf("%s: got %q, want it to contain %q", name, line, want)
		}
	}
	patches := f.patches()
	for id, want := range map[string]int{"811": 0, "812": 1} {
		if got := len(patches[id]); got != want {
			t.Errorf("integration %s: got %d PATCHes, want %d", id, got, want)
		}
	}
	if ok, refused := srv.Logins(); ok != 1 || refused != 1 {
		t.Errorf("logins: got %d accepted and %d refused, want 1 and 1", ok, refused)
	}
	if n := srv.ClearTextAuth(); n != 0 {
		t.Errorf("got %d AUTH commands without TLS, want none", n)
	}
	if n := srv.MailCommands(); n != 0 {
		t.Errorf("got %d MAIL/RCPT/DATA commands, want none", n)
	}
	for _, file := range []string{"state.db", "audit.log"} {
		data, err := os.ReadFile(filepath.Join(f.dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), sentinel) {
			t.Errorf("%s holds the sentinel secret", file)
		}
	}
}
