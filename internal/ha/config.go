package ha

import (
	"log/slog"

	"github.com/ocamba-rotator/rotator/internal/config"
)

// FromConfig returns the Store of a validated `ha:` section (mode vault),
// reading and writing through v.
func FromConfig(cfg config.HA, v Vault, log *slog.Logger) (*Store, error) {
	return New(OptionsFrom(cfg, v, log))
}

// OptionsFrom returns the Options of a validated `ha:` section.
func OptionsFrom(cfg config.HA, v Vault, log *slog.Logger) Options {
	return Options{
		Vault: v, Mount: cfg.Mount, Path: cfg.Path, Identity: cfg.Identity,
		TTL: cfg.LeaseTTL.D(), Logger: log,
	}
}

// AllowanceOptionsFrom returns the options of the fleet's Hood allowance of
// a validated configuration: the document next to the records, held under
// the identity of the process's Store, seeding window, with the budget of
// the configuration's hood.rate_limit (the limiter, shared across reloads,
// takes those limits only when the daemon puts the configuration in force).
func AllowanceOptionsFrom(cfg *config.Config, v Vault, window Window, identity string, log *slog.Logger) AllowanceOptions {
	return AllowanceOptions{
		Vault: v, Mount: cfg.HA.Mount, Path: cfg.HA.Path, Identity: identity, TTL: cfg.HA.LeaseTTL.D(),
		Skew: cfg.HA.ClockSkew.D(), Budget: BudgetFor(cfg.Hood.RateLimit.PerMinute), Window: window, Logger: log,
	}
}
