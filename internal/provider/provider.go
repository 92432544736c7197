// Package provider talks to the messaging providers whose credentials Hood
// integrations hold (SendGrid, Mailgun, Twilio, Telegram, Mandrill, and a
// custom SMTP server, which is only asked whether it accepts a login): it asks
// a provider whether a credential works, and, where the provider's API
// allows it, mints a new credential, lists the ones it minted and revokes
// an old one. Credentials are secret.Values: no error, log line or answer
// of this package carries one.
package provider

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// ErrRefused marks a credential the provider refused (401 or 403, or its
// own "invalid key" answer): it must never be pushed to Hood.
var ErrRefused = errors.New("credential refused by the provider")

// RefusedError is a credential the provider refused, with the provider's
// reason (its own words, never the credential).
type RefusedError struct {
	Provider string // Hood's provider name, e.g. "sendgrid_email"
	Status   int    // HTTP status, 0 when the provider answers refusals with 200 or is not spoken to over HTTP (SMTP)
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

// ErrUnavailable marks an answer meaning "not now": HTTP 429 or a 5xx (or
// a provider's own equivalent, such as an SMTP 4xx reply). The credential was not judged; the same
// call may succeed later, after RetryAfter when set.
var ErrUnavailable = errors.New("provider unavailable, try again later")

// UnavailableError is a provider's "not now" answer.
type UnavailableError struct {
	Provider   string        // Hood's provider name, e.g. "sendgrid_email"
	Op         string        // the operation, e.g. "check"
	Status     int           // HTTP status; 0 for a provider not spoken to over HTTP (SMTP)
	Code       int           // the provider's own error code (SMTP: the reply code); 0 when none
	RetryAfter time.Duration // from Retry-After (or the provider's body); 0 = not given
	Reason     string        // the provider's message, clipped; never a credential
}

func (e *UnavailableError) Error() string {
	what := "provider unavailable"
	if e.Status == http.StatusTooManyRequests {
		what = "rate limited"
	}
	var paren []string
	if e.Status != 0 {
		paren = append(paren, fmt.Sprintf("HTTP %d", e.Status))
	}
	if e.Code != 0 {
		paren = append(paren, fmt.Sprintf("code %d", e.Code))
	}
	s := fmt.Sprintf("%s: %s: %s", e.Provider, e.Op, what)
	if len(paren) > 0 {
		s += " (" + strings.Join(paren, ", ") + ")"
	}
	if e.RetryAfter > 0 {
		s += ", retry after " + e.RetryAfter.String()
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Unwrap makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Unwrap() error { return ErrUnavailable }

// Retryable reports that the same call may succeed later: always true.
func (e *UnavailableError) Retryable() bool { return true }

// RetryDelay is how long the provider asked to wait (0 = not said).
func (e *UnavailableError) RetryDelay() time.Duration { return e.RetryAfter }

// unavailable reports whether status means "not now" (429 or 5xx).
func unavailable(status int) bool {
	return status == http.StatusTooManyRequests || status >= 500
}
