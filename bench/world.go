package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
)

// World is one benchmark's set-up: N integrations over Paths distinct KV v2
// secrets under secret/bench/<Name>/, the same integrations in a Hood test
// server, and a Hood API token in Vault.
type World struct {
	Name  string
	N     int
	Paths int
	Dir   string
	Hood  *hoodtest.Server

	env       *Env
	hoodToken string
}

// providerOf is the provider of the secret at path index p: the seven
// providers in turn, so that every schema is exercised.
func providerOf(p int) string {
	keys := hood.ProviderKeys()
	return keys[p%len(keys)]
}

// SecretPath is the path (inside the secret/ mount) of path index p.
func (w *World) SecretPath(p int) string { return fmt.Sprintf("bench/%s/s%05d", w.Name, p) }

// TokenPath is the path of the Hood token.
func (w *World) TokenPath() string { return "bench/" + w.Name + "/hood" }

// IntegrationID is the Hood id of integration i.
func IntegrationID(i int) string { return strconv.Itoa(100000 + i) }

// NewWorld writes the secrets and the Hood token to Vault and starts a Hood
// test server holding the integrations, with the rate limits of opts
// (Burst and PerMinute negative: none). Integration i reads path i mod paths.
func (e *Env) NewWorld(ctx context.Context, name string, n, paths int, opts hoodtest.Options) (*World, error) {
	if paths < 1 || paths > n {
		return nil, fmt.Errorf("world %s: %d paths for %d integrations", name, paths, n)
	}
	dir := filepath.Join(e.Dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	w := &World{Name: name, N: n, Paths: paths, Dir: dir, env: e, hoodToken: "hood-bench-token-" + name}
	opts.Tokens = []string{w.hoodToken}
	h, err := hoodtest.Start(opts)
	if err != nil {
		return nil, err
	}
	w.Hood = h
	for i := range n {
		if err := h.AddIntegration(IntegrationID(i), providerOf(i%paths), nil); err != nil {
			h.Close()
			return nil, err
		}
	}
	if err := w.WriteSecrets(ctx, "v1"); err != nil {
		h.Close()
		return nil, err
	}
	if _, err := e.Vault.PutKV(ctx, "secret", w.TokenPath(), map[string]any{"token": w.hoodToken}); err != nil {
		h.Close()
		return nil, err
	}
	return w, nil
}

// WriteSecrets writes (a new version of) every secret of the world; tag is
// part of each value, so a new tag is a rotation.
func (w *World) WriteSecrets(ctx context.Context, tag string) error {
	kv := w.env.Vault.Client().KVv2("secret")
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	sem := make(chan struct{}, 8)
	for p := range w.Paths {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			pr, _ := hood.LookupProvider(providerOf(p))
			data := map[string]any{}
			for _, f := range pr.FieldNames() {
				data[f] = fmt.Sprintf("%s-%s-%d-%s", w.Name, tag, p, f)
			}
			if _, err := kv.Put(ctx, w.SecretPath(p), data); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("put %s: %w", w.SecretPath(p), err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close stops the Hood test server.
func (w *World) Close() error { return w.Hood.Close() }

// ConfigOpts are the settings of a configuration file that benchmarks vary.
type ConfigOpts struct {
	Burst, PerMinute int    // hood.rate_limit; 0: the defaults (10, 150)
	MaxInFlight      int    // hood.max_in_flight; 0: the default (4)
	Schedule         string // schedule; "": the default
	AdminListen      string // admin.listen; "": the default
	State            string // state file name in the world's directory; default state.db
	NoAudit          bool   // no audit.path
}

// WriteConfig writes a configuration file named file in the world's
// directory and returns its path. Vault's address comes from ${VAULT_ADDR},
// the login from $VAULT_TOKEN.
func (w *World) WriteConfig(file string, o ConfigOpts) (string, error) {
	var b strings.Builder
	b.WriteString("vault:\n  address: ${VAULT_ADDR}\n  auth: {method: token}\n")
	fmt.Fprintf(&b, "hood:\n  base_url: %s\n  allow_insecure_http: true\n", w.Hood.URL())
	fmt.Fprintf(&b, "  token:\n    vault: {mount: secret, path: %s, key: token}\n", w.TokenPath())
	if o.Burst > 0 || o.PerMinute > 0 {
		fmt.Fprintf(&b, "  rate_limit: {burst: %d, per_minute: %d}\n", o.Burst, o.PerMinute)
	}
	if o.MaxInFlight > 0 {
		fmt.Fprintf(&b, "  max_in_flight: %d\n", o.MaxInFlight)
	}
	if o.Schedule != "" {
		fmt.Fprintf(&b, "schedule: %q\n", o.Schedule)
	}
	if o.AdminListen != "" {
		fmt.Fprintf(&b, "admin:\n  listen: %s\n", o.AdminListen)
	}
	state := o.State
	if state == "" {
		state = "state.db"
	}
	fmt.Fprintf(&b, "state:\n  path: %s\n", filepath.Join(w.Dir, state))
	if !o.NoAudit {
		fmt.Fprintf(&b, "audit:\n  path: %s\n", filepath.Join(w.Dir, strings.TrimSuffix(state, ".db")+"-audit.jsonl"))
	}
	b.WriteString("integrations:\n")
	for i := range w.N {
		p := i % w.Paths
		fmt.Fprintf(&b, "  - {name: i%05d, id: %q, provider: %s, source: {mount: secret, path: %s}}\n",
			i, IntegrationID(i), providerOf(p), w.SecretPath(p))
	}
	path := filepath.Join(w.Dir, file)
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}

// IsSecretPath reports whether an audit log path (secret/data/...) is one of
// the world's integration secrets; IsTokenPath whether it is its Hood token.
func (w *World) IsSecretPath(p string) bool {
	return strings.HasPrefix(p, "secret/data/bench/"+w.Name+"/s")
}

// IsTokenPath reports whether an audit log path is the world's Hood token.
func (w *World) IsTokenPath(p string) bool { return p == "secret/data/"+w.TokenPath() }

// VaultBreakdown splits audit counts into integration secrets (with the
// number of distinct ones), Hood token reads, logins (token look-ups) and
// anything else.
type VaultBreakdown struct {
	Total, Secrets, Distinct, Token, Login, Other int
}

func (b VaultBreakdown) String() string {
	return fmt.Sprintf("%d Vault requests = %d secret reads (%d distinct paths) + %d Hood token + %d login (lookup-self) + %d other",
		b.Total, b.Secrets, b.Distinct, b.Token, b.Login, b.Other)
}

// Breakdown classifies c for this world.
func (w *World) Breakdown(c AuditCount) VaultBreakdown {
	b := VaultBreakdown{Total: c.Requests}
	for p, n := range c.ByPath {
		switch {
		case w.IsSecretPath(p):
			b.Secrets += n
			b.Distinct++
		case w.IsTokenPath(p):
			b.Token += n
		case p == "auth/token/lookup-self":
			b.Login += n
		default:
			b.Other += n
		}
	}
	return b
}
