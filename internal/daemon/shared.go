package daemon

import (
	"log/slog"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/ha"
	"github.com/ocamba-rotator/rotator/internal/rotate"
)

// logShared says where the state of ha.mode vault is: records and leases
// in Vault (docs/ha.md), read and written through the configuration's
// Vault client.
func logShared(cfg config.HA, st rotate.State, log *slog.Logger) {
	if s, ok := st.(*ha.Store); ok {
		log.Info("ha: records and leases shared through Vault; state.path is not used", "identity", s.Identity(),
			"mount", cfg.Mount, "path", cfg.Path, "lease_ttl", cfg.LeaseTTL.D().String())
	}
}
