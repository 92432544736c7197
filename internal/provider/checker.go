package provider

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/ocamba-rotator/rotator/internal/secret"
)

// Checker asks a credential's provider whether it works, by Hood provider
// name, from an integration's settings: SendGrid GET /v3/scopes (api_key),
// Mailgun a sending check on the domain (api_key, domain), Twilio the
// account resource (account_sid, auth_token), Telegram getMe (auth_token),
// Mandrill users/ping (api_key), a custom SMTP server a login (username,
// password, port) on the integration's own server. It is
// rotate.ProviderChecker; safe for concurrent use.
type Checker struct {
	sendgrid *SendGrid
	mailgun  *Mailgun
	twilio   *Twilio
	telegram *Telegram
	mandrill *Mandrill
	smtp     map[string]*SMTP // by integration name
}

// CheckedProviders are the Hood provider names a Checker checks, sorted.
var CheckedProviders = []string{SMTPProvider, MailgunProvider, MandrillProvider, sendgridProvider, TelegramProvider, TwilioProvider}

// NewChecker builds the clients of a Checker. baseURLs maps a Hood provider
// name to its API's base URL (configuration's provider_api); a provider
// left out uses its client's public URL. smtp maps the name of an
// integration of custom_email_provider to its mail server (Host, and the
// TLSConfig of a private CA); their Timeout and Logger default to
// timeout and logger. timeout bounds each check (0: the clients'
// defaults); logger may be nil.
func NewChecker(baseURLs map[string]string, smtp map[string]SMTPOptions, timeout time.Duration, logger *slog.Logger) (*Checker, error) {
	for name := range baseURLs {
		switch {
		case name == SMTPProvider:
			return nil, fmt.Errorf("provider %q has no API base URL: its mail server is an integration's own", name)
		case !slices.Contains(CheckedProviders, name):
			return nil, fmt.Errorf("provider %q cannot be checked (valid: %s)", name, strings.Join(CheckedProviders, ", "))
		}
	}
	c := &Checker{smtp: make(map[string]*SMTP, len(smtp))}
	for name, o := range smtp {
		if o.Timeout <= 0 {
			o.Timeout = timeout
		}
		if o.Logger == nil {
			o.Logger = logger
		}
		s, err := NewSMTP(o)
		if err != nil {
			return nil, fmt.Errorf("integration %s: %w", name, err)
		}
		c.smtp[name] = s
	}
	var err error
	if c.sendgrid, err = NewSendGrid(SendGridOptions{BaseURL: baseURLs[sendgridProvider], Timeout: timeout, Logger: logger}); err != nil {
		return nil, err
	}
	if c.mailgun, err = NewMailgun(MailgunOptions{BaseURL: baseURLs[MailgunProvider], Timeout: timeout, Logger: logger}); err != nil {
		return nil, err
	}
	if c.telegram, err = NewTelegram(TelegramOptions{BaseURL: baseURLs[TelegramProvider], Timeout: timeout, Logger: logger}); err != nil {
		return nil, err
	}
	if c.mandrill, err = NewMandrill(MandrillOptions{BaseURL: baseURLs[MandrillProvider], Timeout: timeout, Logger: logger}); err != nil {
		return nil, err
	}
	c.twilio = NewTwilio(TwilioOptions{APIURL: baseURLs[TwilioProvider], Timeout: timeout, Logger: logger})
	return c, nil
}

// Check asks provider whether the credential in settings, the settings of
// the integration named integration, works: nil when it does, a
// *RefusedError (errors.Is(err, ErrRefused)) when the provider refuses
// it, another error when it could not be asked or did not judge, or when
// a setting the check needs is missing. The integration's name picks a
// custom_email_provider's mail server; the other providers do not use it.
// No error carries a value.
func (c *Checker) Check(ctx context.Context, integration, provider string, settings map[string]secret.Value) error {
	need := func(name string) (secret.Value, error) {
		v := settings[name]
		if v.IsZero() {
			return secret.Value{}, fmt.Errorf("setting %s is missing or empty: nothing to check", name)
		}
		return v, nil
	}
	switch provider {
	case sendgridProvider:
		key, err := need("api_key")
		if err != nil {
			return err
		}
		_, err = c.sendgrid.Check(ctx, key)
		return err
	case MailgunProvider:
		key, err := need("api_key")
		if err != nil {
			return err
		}
		domain, err := need("domain")
		if err != nil {
			return err
		}
		// CheckSending: Hood only sends with the key, which may be a
		// domain sending key that cannot read the domain.
		return c.mailgun.CheckSending(ctx, key, domain.Reveal())
	case TwilioProvider:
		sid, err := need("account_sid")
		if err != nil {
			return err
		}
		token, err := need("auth_token")
		if err != nil {
			return err
		}
		return c.twilio.Check(ctx, sid.Reveal(), token)
	case TelegramProvider:
		token, err := need("auth_token")
		if err != nil {
			return err
		}
		_, err = c.telegram.Check(ctx, token)
		return err
	case MandrillProvider:
		key, err := need("api_key")
		if err != nil {
			return err
		}
		return c.mandrill.Check(ctx, key)
	case SMTPProvider:
		s, ok := c.smtp[integration]
		if !ok {
			return fmt.Errorf("%s: integration %s: no mail server host configured (smtp_host): nothing to check", SMTPProvider, integration)
		}
		user, err := need("username")
		if err != nil {
			return err
		}
		pass, err := need("password")
		if err != nil {
			return err
		}
		port, err := need("port")
		if err != nil {
			return err
		}
		return s.Check(ctx, port.Reveal(), user.Reveal(), pass)
	}
	return fmt.Errorf("provider %q cannot be checked (valid: %s)", provider, strings.Join(CheckedProviders, ", "))
}
