package rotate_test

import (
	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/vault"
)

func providerHas(provider, name string) bool {
	p, ok := hood.LookupProvider(provider)
	return ok && p.HasField(name)
}

type vaultKV = vault.KV
