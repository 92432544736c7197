package vault_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/vault"
)

func TestReadKVVersion(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	path := "version-test/" + strings.ToLower(t.Name())
	for _, v := range []string{"first", "second", "third"} {
		if _, err := srv.PutKV(ctx, "secret", path, map[string]any{"k": v}); err != nil {
			t.Fatal(err)
		}
	}
	c := h.client(tokenCfg(srv.Addr, writeFile(t, "token", srv.RootToken)), nil)
	for version, want := range map[int]string{1: "first", 2: "second", 3: "third"} {
		kv, err := c.ReadKVVersion(ctx, "secret", path, version)
		if err != nil {
			t.Fatalf("version %d: %v", version, h.seen(err))
		}
		if kv.Version != version || kv.Data["k"].Reveal() != want {
			t.Errorf("version %d: got version %d, want %d with its own data", version, kv.Version, version)
		}
	}
	_, err := c.ReadKVVersion(ctx, "secret", path, 9)
	e := wantKind(t, h.seen(err), vault.KindNotFound, vault.ErrNotFound)
	if !strings.Contains(e.Error(), "version 9") {
		t.Errorf("got %q, want it to name version 9", e.Error())
	}
	_, err = c.ReadKVVersion(ctx, "secret", path, 0)
	wantKind(t, h.seen(err), vault.KindInvalid, vault.ErrInvalid)
	h.checkNoLeak()
}
