package vault_test

// Tests of KeepAlive, Options.OnAuth and Health, against real OpenBao
// servers (and fakes for what a real server cannot be made to do). The slow
// ones, which mostly wait for tokens to near their end, run in parallel.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"go.uber.org/goleak"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/vault"
	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

// deadline bounds every wait for KeepAlive to do something: generous, so a
// slow machine does not fail the tests.
const deadline = 30 * time.Second

// authEvents records Options.OnAuth calls.
type authEvents struct {
	mu     sync.Mutex
	states []bool
}

func (a *authEvents) record(ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.states = append(a.states, ok)
}

func (a *authEvents) get() []bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.states)
}

// authClient creates a client for cfg whose OnAuth calls go to the
// returned recorder.
func (h *harness) authClient(cfg config.Vault, getenv func(string) string) (*vault.Client, *authEvents) {
	h.t.Helper()
	ev := &authEvents{}
	opts := h.options(getenv)
	opts.OnAuth = ev.record
	c, err := vault.New(cfg, opts)
	if err != nil {
		h.t.Fatalf("New: %v", h.seen(err))
	}
	return c, ev
}

// keepAlive runs c.KeepAlive until the returned stop is called (at the
// latest when the test ends). stop fails the test unless KeepAlive returns
// within the deadline of its context ending.
func keepAlive(t *testing.T, c *vault.Client) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.KeepAlive(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(deadline):
				t.Errorf("KeepAlive: still running %v after its context ended, want it returned", deadline)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// eventually polls cond until it holds, failing the test after deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("%s: got it not done after %v, want it done", what, deadline)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// appRole sets up, on s, a new AppRole mount with one role of the given
// policies whose tokens live ttl (renewable up to maxTTL), and returns the
// config of a client logging in with it.
func appRole(t *testing.T, h *harness, s *vaulttest.Server, policies []string, ttl, maxTTL time.Duration) config.Vault {
	t.Helper()
	ctx := t.Context()
	mount := uniq("ka-approle")
	roleID, secretID, err := s.EnableAppRole(ctx, mount, "rotator", policies)
	if err != nil {
		t.Fatal(err)
	}
	h.secret(secretID)
	if err := s.SetAppRoleTTL(ctx, mount, "rotator", ttl, maxTTL); err != nil {
		t.Fatal(err)
	}
	return config.Vault{Address: s.Addr, Auth: config.VaultAuth{
		Method: "approle", Mount: mount, RoleID: roleID, SecretIDFile: writeFile(t, "secret-id", secretID)}}
}

// readable writes a secret under a new path on s and a policy that reads
// it, and returns the mount-relative path and the policy.
func readable(t *testing.T, s *vaulttest.Server) (path, policy string) {
	t.Helper()
	ctx := t.Context()
	p := uniq("ka")
	if _, err := s.PutKV(ctx, "secret", p+"/app", map[string]any{"k": sentinel}); err != nil {
		t.Fatal(err)
	}
	policy = p + "-read"
	if err := s.WritePolicy(ctx, policy, fmt.Sprintf(`path "secret/data/%s/*" { capabilities = ["read"] }`, p)); err != nil {
		t.Fatal(err)
	}
	return p + "/app", policy
}

// mustRead reads path and checks the value.
func mustRead(t *testing.T, h *harness, c *vault.Client, path string) error {
	t.Helper()
	kv, err := c.ReadKV(t.Context(), "secret", path, 2)
	if err != nil {
		return h.seen(err)
	}
	if kv.Data["k"].Reveal() != sentinel {
		return errors.New("got another value, want the one written")
	}
	return nil
}

func TestKeepAliveRenewsThenLogsInAgain(t *testing.T) {
	t.Parallel()
	s := vaulttest.Require(t, srv)
	const ttl, maxTTL = 3 * time.Second, 8 * time.Second

	// Reads go on well past the first token's max TTL; each must work
	// without ReadKV having to log in again (no read error, no 403), and
	// the client never becomes unauthenticated.
	readPast := func(t *testing.T, h *harness, c *vault.Client, ev *authEvents, path string, each func()) {
		start := time.Now()
		end := start.Add(maxTTL + 2*ttl)
		for time.Now().Before(end) || h.obs.count("login/ok") < 2 {
			if time.Since(start) > deadline+maxTTL {
				t.Fatalf("logins after %v: got %d, want at least 2", time.Since(start), h.obs.count("login/ok"))
			}
			if err := mustRead(t, h, c, path); err != nil {
				t.Errorf("read %v after the first login: got %v, want no error", time.Since(start).Round(time.Second), err)
			}
			if each != nil {
				each()
			}
			time.Sleep(200 * time.Millisecond)
		}
		if got := h.obs.count("read/error"); got != 0 {
			t.Errorf("failed read requests: got %d, want 0", got)
		}
		if got := h.obs.count("login/error"); got != 0 {
			t.Errorf("failed login requests (or token look-ups): got %d, want 0", got)
		}
		if got := h.obs.count("renew/ok"); got < 2 {
			t.Errorf("renewals: got %d, want at least 2", got)
		}
		if got := ev.get(); !slices.Equal(got, []bool{true}) {
			t.Errorf("OnAuth calls: got %v, want [true]", got)
		}
	}

	t.Run("approle", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		path, policy := readable(t, s)
		c, ev := h.authClient(appRole(t, h, s, []string{policy}, ttl, maxTTL), nil)
		keepAlive(t, c)
		eventually(t, "first login", c.Authenticated)
		readPast(t, h, c, ev, path, nil)
	})

	t.Run("token file replaced before the max TTL", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t)
		ctx := t.Context()
		path, policy := readable(t, s)
		first, err := s.CreateTokenWith(ctx, &api.TokenCreateRequest{
			Policies: []string{policy}, TTL: ttl.String(), ExplicitMaxTTL: maxTTL.String()})
		if err != nil {
			t.Fatal(err)
		}
		h.secret(first)
		file := writeFile(t, "token", first)
		c, ev := h.authClient(tokenCfg(s.Addr, file), nil)
		keepAlive(t, c)
		eventually(t, "first login", c.Authenticated)
		replaced := false
		readPast(t, h, c, ev, path, func() {
			if replaced || h.obs.count("renew/ok") == 0 {
				return
			}
			// Once the first token was renewed, the next one is written as
			// an agent would. Nothing renews it until KeepAlive takes it,
			// when the first one nears its max TTL: its TTL lasts longer.
			next, err := s.CreateTokenWith(ctx, &api.TokenCreateRequest{
				Policies: []string{policy}, TTL: (2 * maxTTL).String(), ExplicitMaxTTL: "1h"})
			if err != nil {
				t.Fatal(err)
			}
			h.secret(next)
			if err := os.WriteFile(file, []byte(next), 0o600); err != nil {
				t.Fatal(err)
			}
			replaced = true
		})
	})
}

func TestKeepAliveReplacesARevokedToken(t *testing.T) {
	t.Parallel()
	s := vaulttest.ForTest(t) // RevokeAllTokens must not disturb other tests
	h := newHarness(t)
	h.secret(s.RootToken)
	path, policy := readable(t, s)
	// A short TTL makes KeepAlive renew, and so find the revocation, soon.
	c, ev := h.authClient(appRole(t, h, s, []string{policy}, 3*time.Second, time.Hour), nil)
	keepAlive(t, c)
	eventually(t, "a renewal", func() bool { return h.obs.count("renew/ok") > 0 })

	if n, err := s.RevokeAllTokens(t.Context()); err != nil || n == 0 {
		t.Fatalf("revoke: got %d, %v; want at least one token revoked", n, err)
	}
	// No reads meanwhile: KeepAlive alone finds out and logs in again.
	eventually(t, "OnAuth false then true", func() bool { return len(ev.get()) >= 3 })
	if got := ev.get(); !slices.Equal(got, []bool{true, false, true}) {
		t.Errorf("OnAuth calls: got %v, want [true false true]", got)
	}
	if got := h.obs.count("login/ok"); got < 2 {
		t.Errorf("successful logins: got %d, want at least 2", got)
	}
	if err := mustRead(t, h, c, path); err != nil {
		t.Errorf("read after the new login: got %v, want no error", err)
	}
}

func TestKeepAliveRetriesTheFirstLogin(t *testing.T) {
	s := vaulttest.Require(t, srv)
	h := newHarness(t)
	path, policy := readable(t, s)
	tok, err := s.CreateToken(t.Context(), []string{policy}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	h.secret(tok)
	file := t.TempDir() + "/token" // not there yet: KindInvalid
	c, ev := h.authClient(tokenCfg(s.Addr, file), nil)
	keepAlive(t, c)
	eventually(t, "a failed login", func() bool { return strings.Contains(h.logs.String(), "vault login will be retried") })
	if c.Authenticated() {
		t.Fatal("Authenticated without a token file: got true, want false")
	}
	if err := os.WriteFile(file, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "login once the token file is there", c.Authenticated)
	if got := ev.get(); !slices.Equal(got, []bool{false, true}) {
		t.Errorf("OnAuth calls: got %v, want [false true] (the first attempt failed)", got)
	}
	if err := mustRead(t, h, c, path); err != nil {
		t.Errorf("read: got %v, want no error", err)
	}
}

func TestKeepAliveAcrossAVaultRestart(t *testing.T) {
	t.Parallel()
	s := vaulttest.PersistentForTest(t)
	h := newHarness(t)
	h.secret(s.RootToken)
	path, policy := readable(t, s)
	const ttl = 3 * time.Second
	cfg := appRole(t, h, s, []string{policy}, ttl, time.Hour)

	t.Run("vault down at the start", func(t *testing.T) {
		if err := s.StopProcess(); err != nil {
			t.Fatal(err)
		}
		c, ev := h.authClient(cfg, nil)
		keepAlive(t, c)
		eventually(t, "a failed login", func() bool { return h.obs.count("login/error") > 0 })
		if err := s.StartProcess(t.Context()); err != nil {
			t.Fatal(err)
		}
		eventually(t, "login once vault is back", c.Authenticated)
		if got := ev.get(); !slices.Equal(got, []bool{false, true}) {
			t.Errorf("OnAuth calls: got %v, want [false true] (the first attempt failed)", got)
		}
		if err := mustRead(t, h, c, path); err != nil {
			t.Errorf("read: got %v, want no error", err)
		}
	})

	t.Run("vault down for longer than the token TTL", func(t *testing.T) {
		c, ev := h.authClient(cfg, nil)
		keepAlive(t, c)
		eventually(t, "first login", c.Authenticated)
		if err := s.StopProcess(); err != nil {
			t.Fatal(err)
		}
		eventually(t, "unauthenticated once the token expired", func() bool { return !c.Authenticated() })
		if err := s.StartProcess(t.Context()); err != nil {
			t.Fatal(err)
		}
		eventually(t, "a new login once vault is back", c.Authenticated)
		if got := ev.get(); !slices.Equal(got, []bool{true, false, true}) {
			t.Errorf("OnAuth calls: got %v, want [true false true]", got)
		}
		if err := mustRead(t, h, c, path); err != nil {
			t.Errorf("read: got %v, want no error", err)
		}
	})
}

func TestKeepAliveReturnsAndLeavesNoGoroutine(t *testing.T) {
	s := vaulttest.Require(t, srv)

	t.Run("while renewing", func(t *testing.T) {
		h := newHarness(t)
		path, policy := readable(t, s)
		cfg := appRole(t, h, s, []string{policy}, 3*time.Second, time.Hour)
		ignore := goleak.IgnoreCurrent() // the servers' and the test's own
		c, _ := h.authClient(cfg, nil)
		stop := keepAlive(t, c)
		eventually(t, "a renewal", func() bool { return h.obs.count("renew/ok") > 0 })
		if err := mustRead(t, h, c, path); err != nil {
			t.Fatal(err)
		}
		stop()
		goleak.VerifyNone(t, ignore)
	})

	t.Run("with a token that never expires", func(t *testing.T) {
		h := newHarness(t)
		h.secret(s.RootToken)
		ignore := goleak.IgnoreCurrent()
		c, ev := h.authClient(tokenCfg(s.Addr, writeFile(t, "token", s.RootToken)), nil)
		stop := keepAlive(t, c)
		eventually(t, "login", c.Authenticated)
		time.Sleep(2 * vault.MinRetryDelay) // room for a wrong renewal or login
		stop()
		if got, want := h.obs.count("login/ok"), 1; got != want {
			t.Errorf("logins: got %d, want %d (nothing to keep alive)", got, want)
		}
		if got := h.obs.count("renew/ok") + h.obs.count("renew/error"); got != 0 {
			t.Errorf("renewals: got %d, want 0", got)
		}
		if got := ev.get(); !slices.Equal(got, []bool{true}) {
			t.Errorf("OnAuth calls: got %v, want [true]", got)
		}
		goleak.VerifyNone(t, ignore)
	})

	t.Run("while waiting to retry a login", func(t *testing.T) {
		h := newHarness(t)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := "http://" + l.Addr().String()
		_ = l.Close()
		ignore := goleak.IgnoreCurrent()
		c, _ := h.authClient(tokenCfg(closed, writeFile(t, "token", sentinel)), nil)
		stop := keepAlive(t, c)
		eventually(t, "a failed login", func() bool { return h.obs.count("login/error") > 0 })
		stop()
		goleak.VerifyNone(t, ignore)
	})

	t.Run("in the middle of a renewal that hangs", func(t *testing.T) {
		h := newHarness(t)
		renewing := make(chan struct{}, 1)
		f, ts := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/v1/auth/token/lookup-self":
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{"data":{"ttl":60,"renewable":true}}`)
			case "/v1/auth/token/renew-self":
				select {
				case renewing <- struct{}{}:
				default:
				}
				<-r.Context().Done() // until the client gives up
			default:
				w.WriteHeader(http.StatusNotFound)
			}
		})
		ignore := goleak.IgnoreCurrent()
		opts := h.options(nil)
		opts.Timeout = time.Hour // only KeepAlive's context can end the renewal
		c, err := vault.New(tokenCfg(ts.URL, writeFile(t, "token", sentinel)), opts)
		if err != nil {
			t.Fatal(h.seen(err))
		}
		stop := keepAlive(t, c)
		select {
		case <-renewing:
		case <-time.After(deadline):
			t.Fatalf("renewal request: got none after %v, want one", deadline)
		}
		stop()
		ts.Close() // its connection goroutines end with it
		goleak.VerifyNone(t, ignore)
		if got := len(f.requests()); got < 2 {
			t.Errorf("requests to the fake: got %d, want a look-up and a renewal", got)
		}
	})
}

func TestOnAuthFollowsTheTokenMethod(t *testing.T) {
	s := vaulttest.Require(t, srv)
	ctx := t.Context()
	h := newHarness(t)
	path, policy := readable(t, s)
	old, err := s.CreateToken(ctx, []string{policy}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	h.secret(old)
	file := writeFile(t, "token", old)
	bad, badEv := h.authClient(tokenCfg(s.Addr, t.TempDir()+"/missing"), nil)
	if err := bad.Login(ctx); err == nil {
		t.Fatal("Login without a token file: got no error, want one")
	}
	if got := badEv.get(); !slices.Equal(got, []bool{false}) {
		t.Errorf("OnAuth calls after a first login that failed: got %v, want [false]", got)
	}

	c, ev := h.authClient(tokenCfg(s.Addr, file), nil)
	if got := ev.get(); len(got) != 0 {
		t.Errorf("OnAuth calls before any login: got %v, want none", got)
	}
	if err := c.Login(ctx); err != nil {
		t.Fatal(h.seen(err))
	}
	if err := c.Login(ctx); err != nil { // no change, no call
		t.Fatal(h.seen(err))
	}
	if got := ev.get(); !slices.Equal(got, []bool{true}) {
		t.Errorf("OnAuth calls after Login: got %v, want [true]", got)
	}
	if err := s.RevokeToken(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := mustRead(t, h, c, path); err == nil {
		t.Fatal("read with a revoked token and no new one: got no error, want one")
	}
	if got := ev.get(); !slices.Equal(got, []bool{true, false}) {
		t.Errorf("OnAuth calls after the token was found revoked: got %v, want [true false]", got)
	}
	fresh, err := s.CreateToken(ctx, []string{policy}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	h.secret(fresh)
	if err := os.WriteFile(file, []byte(fresh), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := mustRead(t, h, c, path); err != nil {
		t.Fatalf("read with the new token: got %v, want no error", err)
	}
	if got := ev.get(); !slices.Equal(got, []bool{true, false, true}) {
		t.Errorf("OnAuth calls after the new token: got %v, want [true false true]", got)
	}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	s := vaulttest.Require(t, srv)
	h := newHarness(t)
	ctx := t.Context()

	t.Run("healthy, without login, token or namespace", func(t *testing.T) {
		cfg := tokenCfg(s.Addr, "")
		cfg.Namespace = "no-such-namespace"
		if err := h.client(cfg, nil).Health(ctx); err != nil {
			t.Errorf("Health: got %v, want nil", h.seen(err))
		}
	})

	t.Run("sealed, then unsealed", func(t *testing.T) {
		own := vaulttest.ForTest(t) // sealing must not disturb other tests
		h.secret(own.RootToken)
		c := h.client(tokenCfg(own.Addr, ""), nil)
		if err := own.Seal(ctx); err != nil {
			t.Fatal(err)
		}
		err := h.seen(c.Health(ctx))
		wantKind(t, err, vault.KindSealed, vault.ErrSealed)
		if got, want := err.Error(), "health: vault is sealed"; got != want {
			t.Errorf("error: got %q, want %q", got, want)
		}
		if err := own.Unseal(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.Health(ctx); err != nil {
			t.Errorf("Health after Unseal: got %v, want nil", h.seen(err))
		}
	})

	t.Run("unreachable", func(t *testing.T) {
		own := vaulttest.ForTest(t)
		c := h.client(tokenCfg(own.Addr, ""), nil)
		if err := own.Stop(); err != nil {
			t.Fatal(err)
		}
		err := h.seen(c.Health(ctx))
		e := wantKind(t, err, vault.KindUnreachable, vault.ErrUnreachable)
		if e.Op != "health" {
			t.Errorf("op: got %q, want health", e.Op)
		}
		if want := "health: vault unreachable at " + own.Addr + ": "; !strings.HasPrefix(err.Error(), want) ||
			!strings.Contains(err.Error(), "connection refused") {
			t.Errorf("error: got %q, want it to start with %q and say connection refused", err, want)
		}
	})

	t.Run("fakes", func(t *testing.T) {
		tests := []struct {
			name     string
			status   int
			body     string
			hang     bool
			wantKind vault.Kind // KindOther: healthy
			wantMsg  string
		}{
			{name: "standby", status: 299, body: `{"initialized":true,"sealed":false,"standby":true}`},
			{name: "not initialized", status: 299, body: `{"initialized":false,"sealed":true}`,
				wantKind: vault.KindSealed, wantMsg: "health: vault is sealed: vault is not initialized"},
			{name: "no answer in time", hang: true,
				wantKind: vault.KindUnreachable, wantMsg: "no answer in time"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				f, ts := newFake(t, func(w http.ResponseWriter, r *http.Request) {
					if tt.hang {
						<-r.Context().Done()
						return
					}
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(tt.status)
					_, _ = io.WriteString(w, tt.body)
				})
				cfg := tokenCfg(ts.URL, writeFile(t, "token", sentinel))
				cfg.Namespace = "team-a"
				c := h.client(cfg, nil)
				err := h.seen(c.Health(ctx))
				if tt.wantKind == vault.KindOther {
					if err != nil {
						t.Errorf("Health: got %v, want nil", err)
					}
				} else {
					wantKind(t, err, tt.wantKind, nil)
					if !strings.Contains(err.Error(), tt.wantMsg) {
						t.Errorf("error: got %q, want it to contain %q", err, tt.wantMsg)
					}
				}
				for _, r := range f.requests() {
					if r.Path != "/v1/sys/health" {
						t.Errorf("request path: got %s, want /v1/sys/health", r.Path)
					}
					if r.Header.Get("X-Vault-Token") != "" || r.Header.Get("X-Vault-Namespace") != "" {
						t.Error("health request headers: got a token or a namespace, want neither")
					}
				}
			})
		}
	})
}

func TestKeepAliveWhenRenewalsFail(t *testing.T) {
	t.Parallel()
	vaulttest.Require(t, srv) // skip with the others: it waits for several logins
	tests := []struct {
		name    string
		ttl     int // seconds, as the look-up reports it
		status  int // of renew-self
		body    string
		wantLog string
	}{
		{"renewal answered 500: log in again at once", 3, http.StatusInternalServerError, `{"errors":["internal error"]}`,
			"vault token renewal failed, logging in again"},
		{"renewal denied to a valid token: keep it until it nears expiry", 3, http.StatusForbidden, `{"errors":["permission denied"]}`,
			"vault token may not renew itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			var mu sync.Mutex
			lookups, renewals := 0, 0
			_, ts := newFake(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				mu.Lock()
				defer mu.Unlock()
				switch r.URL.Path {
				case "/v1/auth/token/lookup-self":
					lookups++
					_, _ = fmt.Fprintf(w, `{"data":{"ttl":%d,"renewable":true}}`, tt.ttl)
				case "/v1/auth/token/renew-self":
					renewals++
					w.WriteHeader(tt.status)
					_, _ = io.WriteString(w, tt.body)
				default:
					w.WriteHeader(http.StatusNotFound)
				}
			})
			counts := func() (int, int) {
				mu.Lock()
				defer mu.Unlock()
				return lookups, renewals
			}
			c, ev := h.authClient(tokenCfg(ts.URL, writeFile(t, "token", sentinel)), nil)
			stop := keepAlive(t, c)
			eventually(t, "three logins", func() bool { l, _ := counts(); return l >= 3 })
			stop()
			// Each watcher sends one renewal at most once one failed: the
			// next renewal waits for a new login (a look-up here).
			if l, r := counts(); r > l || r == 0 {
				t.Errorf("renewals: got %d for %d look-ups, want at least 1 and at most one per look-up", r, l)
			}
			if got := ev.get(); !slices.Equal(got, []bool{true}) {
				t.Errorf("OnAuth calls: got %v, want [true] (the token stays valid)", got)
			}
			if !strings.Contains(h.logs.String(), tt.wantLog) {
				t.Errorf("logs: got no %q, want it", tt.wantLog)
			}
		})
	}
}
