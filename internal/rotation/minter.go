package rotation

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ocamba-rotator/rotator/internal/provider"
	"github.com/ocamba-rotator/rotator/internal/secret"
)

// minter is one provider's part of a run, bound to the run's account:
// the managing credential and the domain or account the consumers use.
type minter interface {
	// check asks the provider whether cred works.
	check(ctx context.Context, cred secret.Value) error
	// mint creates a credential named name; current is the credential in
	// Vault now (SendGrid copies its scopes, Twilio authenticates with it).
	mint(ctx context.Context, current secret.Value, name string) (id string, cred secret.Value, err error)
	// discard deletes the run's credential: by id when known, else by
	// name; one already gone is not an error. current is the old
	// credential (Twilio authenticates with it).
	discard(ctx context.Context, current secret.Value, id, name string) error
	// revoke ends the old credential once every consumer holds next. It
	// returns a note instead of revoking when the old key's id is unknown.
	revoke(ctx context.Context, old, next secret.Value, oldID string) (note string, err error)
	// orphans deletes the keys named with prefix but keep, returning their
	// ids (SendGrid, Mailgun; Twilio has no names).
	orphans(ctx context.Context, prefix, keep string) ([]string, error)
}

// Clients are the provider API clients rotations use.
type Clients struct {
	SendGrid *provider.SendGrid
	Mailgun  *provider.Mailgun
	Twilio   *provider.Twilio
}

// target is the account a run works in, from its consumers' settings.
type target struct {
	manager secret.Value // SendGrid, Mailgun
	domain  string       // Mailgun
	sid     string       // Twilio
}

// newMinter binds the provider client of kind to t.
func (c Clients) newMinter(kind string, t target) (minter, error) {
	switch kind {
	case "sendgrid_email":
		if c.SendGrid == nil {
			return nil, errors.New("no SendGrid client")
		}
		return sendgridMinter{c: c.SendGrid, manager: t.manager}, nil
	case "mailgun_email":
		if c.Mailgun == nil {
			return nil, errors.New("no Mailgun client")
		}
		if t.domain == "" {
			return nil, errors.New("no domain: the consumers' domain setting is empty")
		}
		return mailgunMinter{c: c.Mailgun, manager: t.manager, domain: t.domain}, nil
	case "twilio_sms":
		if c.Twilio == nil {
			return nil, errors.New("no Twilio client")
		}
		if t.sid == "" {
			return nil, errors.New("no account: the consumers' account_sid setting is empty")
		}
		return twilioMinter{c: c.Twilio, sid: t.sid}, nil
	}
	return nil, fmt.Errorf("provider %q cannot be minted", kind)
}

// unknownOld is the note of a revoke skipped for a key rotator did not mint.
const unknownOld = "the old key was not minted by rotator (its id is unknown): delete it at the provider by hand"

type sendgridMinter struct {
	c       *provider.SendGrid
	manager secret.Value
}

func (m sendgridMinter) check(ctx context.Context, cred secret.Value) error {
	_, err := m.c.Check(ctx, cred)
	return err
}

func (m sendgridMinter) mint(ctx context.Context, current secret.Value, name string) (string, secret.Value, error) {
	scopes, err := m.c.Check(ctx, current)
	if err != nil {
		return "", secret.Value{}, fmt.Errorf("read the current key's scopes: %w", err)
	}
	return m.c.Mint(ctx, m.manager, name, scopes)
}

func (m sendgridMinter) discard(ctx context.Context, _ secret.Value, id, name string) error {
	if id != "" {
		return m.c.Delete(ctx, m.manager, id)
	}
	keys, err := m.c.List(ctx, m.manager)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.Name == name {
			if err := m.c.Delete(ctx, m.manager, k.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m sendgridMinter) revoke(ctx context.Context, _, _ secret.Value, oldID string) (string, error) {
	if oldID == "" {
		return unknownOld, nil
	}
	return "", m.c.Delete(ctx, m.manager, oldID)
}

func (m sendgridMinter) orphans(ctx context.Context, prefix, keep string) ([]string, error) {
	keys, err := m.c.List(ctx, m.manager)
	if err != nil {
		return nil, err
	}
	var gone []string
	for _, k := range keys {
		if strings.HasPrefix(k.Name, prefix) && k.ID != keep {
			if err := m.c.Delete(ctx, m.manager, k.ID); err != nil {
				return gone, err
			}
			gone = append(gone, k.ID)
		}
	}
	return gone, nil
}

type mailgunMinter struct {
	c       *provider.Mailgun
	manager secret.Value
	domain  string
}

func (m mailgunMinter) check(ctx context.Context, cred secret.Value) error {
	return m.c.CheckSending(ctx, cred, m.domain)
}

func (m mailgunMinter) mint(ctx context.Context, _ secret.Value, name string) (string, secret.Value, error) {
	return m.c.Mint(ctx, m.manager, m.domain, name)
}

// delete deletes key id; one Mailgun does not know is already gone.
func (m mailgunMinter) delete(ctx context.Context, id string) error {
	err := m.c.Delete(ctx, m.manager, id)
	if errors.Is(err, provider.ErrMailgunNotFound) {
		return nil
	}
	return err
}

func (m mailgunMinter) discard(ctx context.Context, _ secret.Value, id, name string) error {
	if id != "" {
		return m.delete(ctx, id)
	}
	keys, err := m.c.List(ctx, m.manager, m.domain)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.Description == name {
			if err := m.delete(ctx, k.ID); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m mailgunMinter) revoke(ctx context.Context, _, _ secret.Value, oldID string) (string, error) {
	if oldID == "" {
		return unknownOld, nil
	}
	return "", m.delete(ctx, oldID)
}

func (m mailgunMinter) orphans(ctx context.Context, prefix, keep string) ([]string, error) {
	keys, err := m.c.List(ctx, m.manager, m.domain)
	if err != nil {
		return nil, err
	}
	var gone []string
	for _, k := range keys {
		if strings.HasPrefix(k.Description, prefix) && k.ID != keep {
			if err := m.delete(ctx, k.ID); err != nil {
				return gone, err
			}
			gone = append(gone, k.ID)
		}
	}
	return gone, nil
}

type twilioMinter struct {
	c   *provider.Twilio
	sid string
}

func (m twilioMinter) check(ctx context.Context, cred secret.Value) error {
	return m.c.Check(ctx, m.sid, cred)
}

func (m twilioMinter) mint(ctx context.Context, current secret.Value, _ string) (string, secret.Value, error) {
	tok, err := m.c.CreateSecondary(ctx, m.sid, current)
	return "", tok, err
}

func (m twilioMinter) discard(ctx context.Context, current secret.Value, _, _ string) error {
	err := m.c.DeleteSecondary(ctx, m.sid, current)
	if twilioStatus(err) == http.StatusNotFound {
		return nil // none: never created, or already deleted
	}
	return err
}

// revoke promotes the secondary (next): the old primary is refused from
// then on. After an error (a Promote whose answer was lost may have been
// made, and a repeated one finds no secondary) the tokens decide: next
// works and old is refused means promoted.
func (m twilioMinter) revoke(ctx context.Context, old, next secret.Value, _ string) (string, error) {
	err := m.c.Promote(ctx, m.sid, next)
	if err == nil {
		return "", nil
	}
	if m.check(ctx, next) == nil && errors.Is(m.check(ctx, old), provider.ErrRefused) {
		return "", nil
	}
	return "", err
}

func (twilioMinter) orphans(context.Context, string, string) ([]string, error) { return nil, nil }

// twilioStatus is the HTTP status of a Twilio error answer, 0 when none.
func twilioStatus(err error) int {
	var se *provider.TwilioStatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

// refusal reports whether err is the provider's answer refusing a call (a
// 4xx), after which nothing was created; a lost answer, a 5xx or a 429 may
// hide a call carried out.
func refusal(err error) bool {
	var (
		tw *provider.TwilioStatusError
		sg *provider.SendGridStatusError
		mg *provider.MailgunError
	)
	switch {
	case errors.Is(err, provider.ErrRefused):
		return true
	case errors.As(err, &tw):
		return tw.Status >= 400 && tw.Status < 500 && tw.Status != http.StatusTooManyRequests
	case errors.As(err, &sg):
		return sg.Status >= 400 && sg.Status < 500 && sg.Status != http.StatusTooManyRequests
	case errors.As(err, &mg):
		return mg.Status >= 400 && mg.Status < 500 && mg.Status != http.StatusTooManyRequests
	}
	return false
}
