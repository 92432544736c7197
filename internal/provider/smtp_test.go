package provider_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/provider"
	"github.com/ocamba-rotator/rotator/internal/provider/providertest"
	"github.com/ocamba-rotator/rotator/internal/secret"
)

const (
	smtpUser     = "hood@example.com"
	smtpPassword = "correct-horse-battery-staple"
	smtpSentinel = "SENTINEL-smtp-5e1d0b-do-not-print"
)

// smtpClient is an SMTP client of s, trusting its certificate; the
// implicit TLS port is s's own when s speaks TLS from the first byte.
func smtpClient(t *testing.T, s *providertest.SMTPServer, implicit bool, timeout time.Duration, log *slog.Logger) *provider.SMTP {
	t.Helper()
	opts := provider.SMTPOptions{Host: s.Host(), TLSConfig: &tls.Config{RootCAs: s.RootCAs()}, Timeout: timeout, Logger: log}
	if implicit {
		opts.ImplicitTLSPort = s.Port()
	}
	c, err := provider.NewSMTP(opts)
	if err != nil {
		t.Fatalf("NewSMTP: got %v, want nil", err)
	}
	return c
}

func TestSMTPCheck(t *testing.T) {
	tests := []struct {
		name        string
		opts        providertest.SMTPServerOptions
		fault       *providertest.SMTPFault
		user, pass  string
		timeout     time.Duration
		wantRefused string // a piece of the refusal's reason; "" = not refused
		wantUnavail int    // the reply code of an *UnavailableError; 0 = none
		wantSMTP    int    // the reply code of an *SMTPError; 0 = none
		wantNoTLS   bool
		wantTimeout bool
		wantErr     string // a piece of the error; "" with no other want = success
		wantLogin   string // the mechanism the server was asked with; "" = no AUTH
	}{
		{name: "accepted, PLAIN", user: smtpUser, pass: smtpPassword, wantLogin: "PLAIN"},
		{name: "accepted, LOGIN when PLAIN is not offered", opts: providertest.SMTPServerOptions{Mechanisms: []string{"CRAM-MD5", "LOGIN"}},
			user: smtpUser, pass: smtpPassword, wantLogin: "LOGIN"},
		{name: "accepted, implicit TLS", opts: providertest.SMTPServerOptions{ImplicitTLS: true}, user: smtpUser, pass: smtpPassword, wantLogin: "PLAIN"},
		{name: "wrong password", user: smtpUser, pass: "wrong-password", wantRefused: "535 5.7.8 Authentication credentials invalid", wantLogin: "PLAIN"},
		{name: "unknown user, LOGIN", opts: providertest.SMTPServerOptions{Mechanisms: []string{"LOGIN"}}, user: "nobody", pass: smtpPassword,
			wantRefused: "535 5.7.8", wantLogin: "LOGIN"},
		{name: "534 on AUTH", fault: &providertest.SMTPFault{Step: providertest.SMTPAUTH, Code: 534}, user: smtpUser, pass: smtpPassword,
			wantRefused: "534 5.7.9 Authentication mechanism is too weak", wantLogin: "PLAIN"},
		{name: "454 on AUTH", fault: &providertest.SMTPFault{Step: providertest.SMTPAUTH, Code: 454}, user: smtpUser, pass: smtpPassword,
			wantUnavail: 454, wantErr: "Temporary authentication failure", wantLogin: "PLAIN"},
		{name: "421 greeting", fault: &providertest.SMTPFault{Step: providertest.SMTPGreeting, Code: 421}, user: smtpUser, pass: smtpPassword,
			wantUnavail: 421, wantErr: "greeting: provider unavailable (code 421): 4.3.2 Service not available"},
		{name: "454 on STARTTLS", fault: &providertest.SMTPFault{Step: providertest.SMTPSTARTTLS, Code: 454, Text: "4.7.0 TLS not available due to temporary reason"},
			user: smtpUser, pass: smtpPassword, wantUnavail: 454, wantErr: "STARTTLS"},
		{name: "no STARTTLS offered", opts: providertest.SMTPServerOptions{NoSTARTTLS: true}, user: smtpUser, pass: smtpPassword,
			wantNoTLS: true, wantErr: "offers no STARTTLS"},
		{name: "no mechanism the client speaks", opts: providertest.SMTPServerOptions{Mechanisms: []string{"CRAM-MD5", "XOAUTH2"}}, user: smtpUser, pass: smtpPassword,
			wantErr: `the server offers "CRAM-MD5 XOAUTH2", want PLAIN or LOGIN`},
		{name: "554 greeting", fault: &providertest.SMTPFault{Step: providertest.SMTPGreeting, Code: 554, Text: "5.3.2 No SMTP service here"}, user: smtpUser, pass: smtpPassword,
			wantSMTP: 554, wantErr: "No SMTP service here"},
		{name: "slow greeting past the timeout", fault: &providertest.SMTPFault{Step: providertest.SMTPGreeting, Delay: 3 * time.Second},
			user: smtpUser, pass: smtpPassword, timeout: 200 * time.Millisecond, wantTimeout: true, wantErr: "greeting"},
		{name: "slow greeting within the timeout", fault: &providertest.SMTPFault{Step: providertest.SMTPGreeting, Delay: 100 * time.Millisecond},
			user: smtpUser, pass: smtpPassword, wantLogin: "PLAIN"},
		{name: "empty password", user: smtpUser, wantErr: "empty password"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := providertest.NewSMTPServer(tc.opts)
			defer s.Close()
			s.AddUser(smtpUser, smtpPassword)
			if tc.fault != nil {
				s.Inject(*tc.fault)
			}
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			c := smtpClient(t, s, tc.opts.ImplicitTLS, timeout, nil)
			start := time.Now()
			err := c.Check(t.Context(), s.Port(), tc.user, secret.New(tc.pass))
			if tc.wantTimeout && time.Since(start) > 2*time.Second {
				t.Errorf("took %s, want about the timeout %s", time.Since(start), timeout)
			}

			success := tc.wantRefused == "" && tc.wantUnavail == 0 && tc.wantSMTP == 0 && !tc.wantNoTLS && !tc.wantTimeout && tc.wantErr == ""
			switch {
			case success && err != nil:
				t.Fatalf("Check: got %v, want nil", err)
			case !success && err == nil:
				t.Fatal("Check: got nil, want an error")
			}
			if tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error: got %q, want it to contain %q", err, tc.wantErr)
			}
			var refused *provider.RefusedError
			if got := errors.As(err, &refused); got != (tc.wantRefused != "") {
				t.Errorf("refused: got %v (%v), want %v", got, err, tc.wantRefused != "")
			} else if got && (refused.Provider != provider.SMTPProvider || refused.Status != 0 || !strings.HasPrefix(refused.Reason, tc.wantRefused) || !errors.Is(err, provider.ErrRefused)) {
				t.Errorf("refusal: got %+v, want provider %s, status 0, reason starting %q", refused, provider.SMTPProvider, tc.wantRefused)
			}
			var unavail *provider.UnavailableError
			if got := errors.As(err, &unavail); got != (tc.wantUnavail != 0) {
				t.Errorf("unavailable: got %v (%v), want %v", got, err, tc.wantUnavail != 0)
			} else if got && (unavail.Code != tc.wantUnavail || unavail.Status != 0 || !errors.Is(err, provider.ErrUnavailable)) {
				t.Errorf("unavailable: got %+v, want code %d, status 0", unavail, tc.wantUnavail)
			}
			var se *provider.SMTPError
			if got := errors.As(err, &se); got != (tc.wantSMTP != 0) {
				t.Errorf("SMTPError: got %v (%v), want %v", got, err, tc.wantSMTP != 0)
			} else if got && se.Code != tc.wantSMTP {
				t.Errorf("SMTPError: got code %d, want %d", se.Code, tc.wantSMTP)
			}
			if got := errors.Is(err, provider.ErrSMTPNoTLS); got != tc.wantNoTLS {
				t.Errorf("Is ErrSMTPNoTLS: got %v (%v), want %v", got, err, tc.wantNoTLS)
			}
			if got := errors.Is(err, context.DeadlineExceeded); got != tc.wantTimeout {
				t.Errorf("Is DeadlineExceeded: got %v (%v), want %v", got, err, tc.wantTimeout)
			}

			if s.ClearTextAuth() != 0 {
				t.Errorf("got %d AUTH commands without TLS, want none", s.ClearTextAuth())
			}
			if s.MailCommands() != 0 {
				t.Errorf("got %d MAIL/RCPT/DATA commands, want none", s.MailCommands())
			}
			cmds := s.Commands()
			if got := slices.Contains(cmds, "AUTH"); got != (tc.wantLogin != "") {
				t.Errorf("commands %v: AUTH sent %v, want %v", cmds, got, tc.wantLogin != "")
			}
			if success && (len(cmds) == 0 || cmds[len(cmds)-1] != "QUIT") {
				t.Errorf("commands: got %v, want the session to end with QUIT", cmds)
			}
			if tc.wantLogin != "" && !tc.opts.ImplicitTLS && !slices.Contains(cmds, "STARTTLS") {
				t.Errorf("commands: got %v, want STARTTLS before AUTH", cmds)
			}
		})
	}
}

// A server whose certificate the client does not trust gets no AUTH: the
// error is the TLS one, not a refusal.
func TestSMTPUntrustedCertificate(t *testing.T) {
	for _, implicit := range []bool{false, true} {
		t.Run(fmt.Sprintf("implicit %v", implicit), func(t *testing.T) {
			s := providertest.NewSMTPServer(providertest.SMTPServerOptions{ImplicitTLS: implicit})
			defer s.Close()
			s.AddUser(smtpUser, smtpPassword)
			opts := provider.SMTPOptions{Host: s.Host(), Timeout: 5 * time.Second} // system roots
			if implicit {
				opts.ImplicitTLSPort = s.Port()
			}
			c, err := provider.NewSMTP(opts)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Check(t.Context(), s.Port(), smtpUser, secret.New(smtpPassword))
			if err == nil || errors.Is(err, provider.ErrRefused) || !strings.Contains(err.Error(), "certificate") {
				t.Errorf("got %v, want a certificate error, not a refusal", err)
			}
			if slices.Contains(s.Commands(), "AUTH") {
				t.Errorf("commands: got %v, want no AUTH", s.Commands())
			}
		})
	}
}

// A check whose context is canceled ends at once, with context.Canceled.
func TestSMTPCanceled(t *testing.T) {
	s := providertest.NewSMTPServer(providertest.SMTPServerOptions{})
	defer s.Close()
	s.Inject(providertest.SMTPFault{Step: providertest.SMTPGreeting, Delay: 5 * time.Second})
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err := smtpClient(t, s, false, 10*time.Second, nil).Check(ctx, s.Port(), smtpUser, secret.New(smtpPassword))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s, want the cancel to end it at once", d)
	}
}

func TestSMTPBadPort(t *testing.T) {
	c, err := provider.NewSMTP(provider.SMTPOptions{Host: "smtp.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	for _, port := range []string{"", "0", "smtp", "65536", "-1"} {
		if err := c.Check(t.Context(), port, smtpUser, secret.New(smtpPassword)); err == nil || !strings.Contains(err.Error(), "is not a port number") {
			t.Errorf("port %q: got %v, want an error naming the port", port, err)
		}
	}
}

func TestCheckSMTPHost(t *testing.T) {
	for _, tc := range []struct{ host, want string }{
		{"smtp.example.com", ""},
		{"smtp.example.com.", ""},
		{"localhost", ""},
		{"127.0.0.1", ""},
		{"::1", ""},
		{"2001:db8::25", ""},
		{"", "required"},
		{"smtp://smtp.example.com", "without a scheme"},
		{"smtp.example.com:587", "must not hold a port"},
		{"[::1]", "without brackets"},
		{"[::1]:25", "without brackets"},
		{"smtp.example.com/x", "must be a host name"},
		{"-smtp.example.com", "must be a host name"},
		{"smtp..example.com", "must be a host name"},
		{"smtp example.com", "must be a host name"},
	} {
		got := provider.CheckSMTPHost(tc.host)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("CheckSMTPHost(%q): got %q, want %q", tc.host, got, tc.want)
		}
		if _, err := provider.NewSMTP(provider.SMTPOptions{Host: tc.host}); (err == nil) != (tc.want == "") {
			t.Errorf("NewSMTP(%q): got %v, want an error %v", tc.host, err, tc.want != "")
		}
	}
}

// The password, with a sentinel inside, is in no error (%v, %+v, %#v),
// nor in any log line, nor in its base64 forms, even from a server that
// echoes what the client sent in its refusals.
func TestSMTPNoSecretAnywhere(t *testing.T) {
	pass := "pw-" + smtpSentinel + "-end"
	// The forms to look for: the password, the base64 of the password and
	// of AUTH PLAIN's response, and the base64 of the sentinel at each
	// alignment (the core of any longer base64 text holding it).
	forms := []string{pass, smtpSentinel,
		base64.StdEncoding.EncodeToString([]byte(pass)),
		base64.StdEncoding.EncodeToString([]byte("\x00" + smtpUser + "\x00" + pass)),
	}
	for k := range 3 {
		enc := base64.RawStdEncoding.EncodeToString(append(make([]byte, k), smtpSentinel...))
		forms = append(forms, enc[(8*k+5)/6:8*(k+len(smtpSentinel))/6])
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var errs []error
	for _, mechs := range [][]string{{"PLAIN"}, {"LOGIN"}} {
		s := providertest.NewSMTPServer(providertest.SMTPServerOptions{Mechanisms: mechs, EchoCredentials: true})
		s.AddUser(smtpUser, "another-password")
		c := smtpClient(t, s, false, 5*time.Second, log)
		err := c.Check(t.Context(), s.Port(), smtpUser, secret.New(pass))
		if !errors.Is(err, provider.ErrRefused) || !strings.Contains(err.Error(), "Authentication credentials invalid") {
			t.Errorf("%v: got %v, want a refusal", mechs, err)
		}
		errs = append(errs, err)
		// A fault whose text quotes the password, on each step.
		for _, step := range []string{providertest.SMTPGreeting, providertest.SMTPEHLO, providertest.SMTPSTARTTLS, providertest.SMTPAUTH} {
			for _, code := range []int{454, 535, 554} {
				s.Inject(providertest.SMTPFault{Step: step, Code: code, Text: "5.0.0 your password " + pass + " or " + forms[2] + " " + forms[3]})
				errs = append(errs, c.Check(t.Context(), s.Port(), smtpUser, secret.New(pass)))
			}
		}
		s.Close()
		// The server gone: a transport error.
		errs = append(errs, c.Check(t.Context(), s.Port(), smtpUser, secret.New(pass)))
	}
	// Through the Checker too.
	s := providertest.NewSMTPServer(providertest.SMTPServerOptions{EchoCredentials: true})
	defer s.Close()
	ch, err := provider.NewChecker(nil, map[string]provider.SMTPOptions{
		"mail": {Host: s.Host(), TLSConfig: &tls.Config{RootCAs: s.RootCAs()}},
	}, 5*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	errs = append(errs, ch.Check(t.Context(), "mail", provider.SMTPProvider, map[string]secret.Value{
		"username": secret.New(smtpUser), "password": secret.New(pass), "port": secret.New(s.Port()),
	}))

	for i, err := range errs {
		if err == nil {
			t.Errorf("check %d: got nil, want an error", i)
			continue
		}
		text := fmt.Sprintf("%v|%+v|%#v", err, err, err)
		for _, f := range forms {
			if strings.Contains(text, f) {
				t.Errorf("check %d: error holds %q: %s", i, f, text)
			}
		}
	}
	if !strings.Contains(logs.String(), "provider check failed") {
		t.Errorf("logs: got none of the failed checks:\n%s", logs.String())
	}
	for _, f := range forms {
		if strings.Contains(logs.String(), f) {
			t.Errorf("logs hold %q:\n%s", f, logs.String())
		}
	}
}

func TestCheckerSMTP(t *testing.T) {
	s := providertest.NewSMTPServer(providertest.SMTPServerOptions{})
	defer s.Close()
	s.AddUser(smtpUser, smtpPassword)
	ch, err := provider.NewChecker(nil, map[string]provider.SMTPOptions{
		"mail": {Host: s.Host(), TLSConfig: &tls.Config{RootCAs: s.RootCAs()}},
	}, 5*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	settings := func(pass, port string) map[string]secret.Value {
		m := map[string]secret.Value{"username": secret.New(smtpUser), "password": secret.New(pass)}
		if port != "" {
			m["port"] = secret.New(port)
		}
		return m
	}
	for _, tc := range []struct {
		name, integration string
		settings          map[string]secret.Value
		wantErr           string
	}{
		{"accepted", "mail", settings(smtpPassword, s.Port()), ""},
		{"refused", "mail", settings("wrong", s.Port()), "credential refused by the provider: 535"},
		{"no port", "mail", settings(smtpPassword, ""), "setting port is missing or empty"},
		{"no host for the integration", "other", settings(smtpPassword, s.Port()), "integration other: no mail server host configured (smtp_host)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ch.Check(t.Context(), tc.integration, provider.SMTPProvider, tc.settings)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("got %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("got %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
	if _, err := provider.NewChecker(map[string]string{provider.SMTPProvider: "https://smtp.example.com"}, nil, 0, nil); err == nil {
		t.Error("NewChecker with a base URL for custom_email_provider: got nil, want an error")
	}
	if _, err := provider.NewChecker(nil, map[string]provider.SMTPOptions{"bad": {Host: "smtp.example.com:587"}}, 0, nil); err == nil || !strings.Contains(err.Error(), "integration bad") {
		t.Errorf("NewChecker with a host holding a port: got %v, want an error naming the integration", err)
	}
}
