package daemon

import (
	"log/slog"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/ha"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/vault"
)

// sharedState is the state of ha.mode vault: records and leases in Vault
// (docs/ha.md), read and written through the configuration's Vault client.
func sharedState(cfg config.HA, vc *vault.Client, log *slog.Logger) (rotate.State, error) {
	st, err := ha.FromConfig(cfg, vc, log)
	if err != nil {
		return nil, err
	}
	log.Info("ha: records and leases shared through Vault; state.path is not used", "identity", st.Identity(),
		"mount", cfg.Mount, "path", cfg.Path, "lease_ttl", cfg.LeaseTTL.D().String())
	return st, nil
}
