// Package provider talks to the messaging providers whose credentials Hood
// integrations hold (SendGrid, Mailgun, Twilio, Telegram, Mandrill): it asks
// a provider whether a credential works, and, where the provider's API
// allows it, mints a new credential, lists the ones it minted and revokes
// an old one. Credentials are secret.Values: no error, log line or answer
// of this package carries one.
package provider

import (
	"errors"
	"fmt"
)

// ErrRefused marks a credential the provider refused (401 or 403, or its
// own "invalid key" answer): it must never be pushed to Hood.
var ErrRefused = errors.New("credential refused by the provider")

// RefusedError is a credential the provider refused, with the provider's
// reason (its own words, never the credential).
type RefusedError struct {
	Provider string // Hood's provider name, e.g. "sendgrid_email"
	Status   int    // HTTP status, 0 when the provider answers refusals with 200
	Reason   string // the provider's message, clipped; never a credential
}

func (e *RefusedError) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%s: %s (HTTP %d): %s", e.Provider, ErrRefused, e.Status, e.Reason)
	}
	return fmt.Sprintf("%s: %s: %s", e.Provider, ErrRefused, e.Reason)
}

// Unwrap makes errors.Is(err, ErrRefused) true.
func (e *RefusedError) Unwrap() error { return ErrRefused }
