package rotate

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/provider"
	"github.com/ocamba-rotator/rotator/internal/secret"
)

// ProviderChecker asks a credential's provider whether it works
// (integrations[].provider_check). integration is the integration's name
// (a custom_email_provider's mail server is configured per integration),
// provider is Hood's provider name ("sendgrid_email"), settings the built
// settings about to be pushed. It
// returns nil when the provider accepts the credential, an error wrapping
// provider.ErrRefused (a *provider.RefusedError) when it refuses it, and
// any other error when the provider could not be asked or did not judge
// (429, 5xx, timeout, a setting missing). No error may carry a setting's
// value.
type ProviderChecker interface {
	Check(ctx context.Context, integration, provider string, settings map[string]secret.Value) error
}

// errNoChecker is the reason of an engine built without a checker.
var errNoChecker = errors.New("no provider checker configured")

// Reasons an integration with provider_check is not pushed.
var (
	// ErrProviderRefused: the provider refused the credential.
	ErrProviderRefused = errors.New("credential refused by the provider")
	// ErrProviderUnchecked: the provider could not be asked, or did not
	// judge the credential; an unchecked credential is never pushed.
	ErrProviderUnchecked = errors.New("could not check the credential with the provider")
)

// ProviderCheckError is the failure of an integration's provider check:
// nothing was sent to Hood. Its text names the provider and the provider's
// reason, never a setting's value.
type ProviderCheckError struct {
	Provider string // Hood's provider name
	Refused  bool   // the provider refused the credential (else: not checked)
	Err      error  // the checker's error
	msg      string // Error's text, scrubbed of the settings' secret values
}

func (e *ProviderCheckError) Error() string { return e.msg }

// Unwrap makes errors.Is true for ErrProviderRefused or
// ErrProviderUnchecked, and for the checker's error.
func (e *ProviderCheckError) Unwrap() []error {
	if e.Refused {
		return []error{ErrProviderRefused, e.Err}
	}
	return []error{ErrProviderUnchecked, e.Err}
}

// askProvider asks the checker about the settings of an integration that
// opted in; nil when the push may go on. Without a checker an integration
// that opted in is never pushed (fail closed).
func (e *Engine) askProvider(ctx context.Context, in config.Integration, settings map[string]secret.Value) error {
	if !in.ProviderCheck {
		return nil
	}
	err := errNoChecker
	if e.checker != nil {
		err = e.checker.Check(ctx, in.Name, in.Provider, settings)
	}
	if err == nil {
		return nil
	}
	pe := &ProviderCheckError{Provider: in.Provider, Err: err, Refused: errors.Is(err, provider.ErrRefused)}
	var refused *provider.RefusedError
	switch {
	case errors.As(err, &refused):
		reason := refused.Reason
		if reason == "" {
			reason = "no reason given"
		}
		if refused.Status != 0 {
			reason += fmt.Sprintf(" (HTTP %d)", refused.Status)
		}
		pe.msg = fmt.Sprintf("refused by %s: %s: not pushed", in.Provider, reason)
	case pe.Refused:
		pe.msg = fmt.Sprintf("refused by %s: %v: not pushed", in.Provider, err)
	default:
		pe.msg = fmt.Sprintf("could not check with the provider %s: %v: not pushed", in.Provider, err)
	}
	pe.msg = scrubSettings(pe.msg, in.Provider, settings)
	return pe
}

// scrubSettings removes the values of the provider's secret settings from
// s: the provider clients never quote a credential, and this keeps it so
// whatever a checker returns.
func scrubSettings(s, providerKey string, settings map[string]secret.Value) string {
	pr, _ := hood.LookupProvider(providerKey)
	for name, v := range settings {
		if f, ok := pr.Field(name); ok && f.Secret && v.Reveal() != "" {
			s = strings.ReplaceAll(s, v.Reveal(), "[redacted]")
		}
	}
	return s
}
