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
