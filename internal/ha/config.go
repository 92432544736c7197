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
// a validated `ha:` section: the document next to the records, held under
// the identity of the process's Store, seeding window.
func AllowanceOptionsFrom(cfg config.HA, v Vault, window Window, identity string, log *slog.Logger) AllowanceOptions {
	return AllowanceOptions{
		Vault: v, Mount: cfg.Mount, Path: cfg.Path, Identity: identity, TTL: cfg.LeaseTTL.D(),
		Skew: cfg.ClockSkew.D(), Window: window, Logger: log,
	}
}
