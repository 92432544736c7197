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

// namedKey is a key as a provider lists it: its id and the name rotator
// gave it (SendGrid's name, Mailgun's description).
type namedKey struct{ id, name string }

// keyStore is a provider whose keys rotator names and deletes by id
// (SendGrid, Mailgun).
type keyStore interface {
	list(ctx context.Context) ([]namedKey, error)
	remove(ctx context.Context, id string) error // a key already gone is not an error
}

// discardKey deletes the run's key: by id when known, else every key of
// the run's name (a mint whose answer was lost).
func discardKey(ctx context.Context, ks keyStore, id, name string) error {
	if id != "" {
		return ks.remove(ctx, id)
	}
	keys, err := ks.list(ctx)
	if err != nil {
		return err
	}
	for _, k := range keys {
		if k.name == name {
			if err := ks.remove(ctx, k.id); err != nil {
				return err
			}
		}
	}
	return nil
}

// revokeKey deletes the old key, or notes that its id is unknown.
func revokeKey(ctx context.Context, ks keyStore, oldID string) (string, error) {
	if oldID == "" {
		return unknownOld, nil
	}
	return "", ks.remove(ctx, oldID)
}

// sweepKeys deletes the keys named with prefix but keep and returns their ids.
func sweepKeys(ctx context.Context, ks keyStore, prefix, keep string) ([]string, error) {
	keys, err := ks.list(ctx)
	if err != nil {
		return nil, err
	}
	var gone []string
	for _, k := range keys {
		if strings.HasPrefix(k.name, prefix) && k.id != keep {
			if err := ks.remove(ctx, k.id); err != nil {
				return gone, err
			}
			gone = append(gone, k.id)
		}
	}
	return gone, nil
}

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

func (m sendgridMinter) list(ctx context.Context) ([]namedKey, error) {
	keys, err := m.c.List(ctx, m.manager)
	out := make([]namedKey, 0, len(keys))
	for _, k := range keys {
		out = append(out, namedKey{id: k.ID, name: k.Name})
	}
	return out, err
}

// remove deletes key id (SendGrid answers 404 for one already gone: success).
func (m sendgridMinter) remove(ctx context.Context, id string) error {
	return m.c.Delete(ctx, m.manager, id)
}

func (m sendgridMinter) discard(ctx context.Context, _ secret.Value, id, name string) error {
	return discardKey(ctx, m, id, name)
}

func (m sendgridMinter) revoke(ctx context.Context, _, _ secret.Value, oldID string) (string, error) {
	return revokeKey(ctx, m, oldID)
}

func (m sendgridMinter) orphans(ctx context.Context, prefix, keep string) ([]string, error) {
	return sweepKeys(ctx, m, prefix, keep)
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

func (m mailgunMinter) list(ctx context.Context) ([]namedKey, error) {
	keys, err := m.c.List(ctx, m.manager, m.domain)
	out := make([]namedKey, 0, len(keys))
	for _, k := range keys {
		out = append(out, namedKey{id: k.ID, name: k.Description})
	}
	return out, err
}

// remove deletes key id; one Mailgun does not know is already gone.
func (m mailgunMinter) remove(ctx context.Context, id string) error {
	err := m.c.Delete(ctx, m.manager, id)
	if errors.Is(err, provider.ErrMailgunNotFound) {
		return nil
	}
	return err
}

func (m mailgunMinter) discard(ctx context.Context, _ secret.Value, id, name string) error {
	return discardKey(ctx, m, id, name)
}

func (m mailgunMinter) revoke(ctx context.Context, _, _ secret.Value, oldID string) (string, error) {
	return revokeKey(ctx, m, oldID)
}

func (m mailgunMinter) orphans(ctx context.Context, prefix, keep string) ([]string, error) {
	return sweepKeys(ctx, m, prefix, keep)
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
