package faults_test

// Vault going away and coming back while rotator runs: stopped and started
// again, sealed and unsealed, its token revoked, its AppRole secret id
// rotated, and a policy that denies one path.

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

// holdsAll reports whether Hood holds every integration's current value.
func (f *fixture) holdsAll() bool {
	for _, in := range f.integs {
		got, ok := f.hood.Integration(in.id)
		if !ok || !maps.Equal(got.Settings, f.want(in)) {
			return false
		}
	}
	return true
}

// recovered reports whether every integration's last pass succeeded.
func recovered(st map[string]integrationStatus, names []string) bool {
	for _, n := range names {
		s, ok := st[n]
		if !ok || s.LastResult == "failed" || s.LastResult == "" || s.ConsecutiveFailures != 0 {
			return false
		}
	}
	return true
}

func TestVaultStoppedMidPassAndRestarted(t *testing.T) {
	vs := vaulttest.PersistentForTest(t)
	f := newFixture(t, vs)
	f.add([3]string{"a", "51", "a"}, [3]string{"b", "52", "b"}, [3]string{"c", "53", "c"})
	all := names(f.integs)
	// A slow Hood: a pass that pushes lasts long enough for Vault to stop
	// while the pushes run. The proxy (pass-through but for the first
	// cycle) lets a stop land between a pass's reads and its read of the
	// Hood token.
	f.hood.Inject(hoodtest.Fault{Delay: 100 * time.Millisecond, Times: -1})
	p := startProxy(t, vs.Addr)
	d := f.startDaemon(f.config(cfg{vaultAddr: p.URL, hoodFromVault: true, schedule: "@every 1s"}))
	eventually(t, 30*time.Second, "the start-up pass pushed a, b and c", f.holdsAll)

	// New values keep arriving while passes run (writes fail while Vault
	// is down; every value tried is known to checkAllPatchesWhole).
	stopWriter := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stopWriter:
				return
			case <-time.After(300 * time.Millisecond):
			}
			_, _ = f.rotate(all[i%len(all)])
		}
	}()
	defer func() {
		select {
		case <-stopWriter:
		default:
			close(stopWriter)
		}
		wg.Wait()
	}()

	const cycles = 3
	hoodPath := "/v1/secret/data/" + f.prefix + "/hood"
	for cycle := range cycles {
		mark := len(f.hood.Requests())
		switch cycle {
		case 0:
			// Stop Vault after a pass read the secrets, while its read of
			// the Hood token is held by the proxy: that read then finds
			// Vault gone.
			seen := len(p.seen())
			p.set(rule{prefix: hoodPath, mode: modeDelay, delay: time.Minute})
			eventually(t, 30*time.Second, "a pass reads the Hood token", func() bool {
				return slices.Contains(p.seen()[seen:], "delay "+hoodPath)
			})
		case 1:
			// Stop Vault while a pass is pushing.
			eventually(t, 30*time.Second, "a pass is pushing", func() bool {
				return slices.ContainsFunc(f.hood.Requests()[mark:], func(r hoodtest.Request) bool { return r.Method == http.MethodPatch })
			})
		default:
			// At a random moment of the schedule.
			time.Sleep(rand.N(1500 * time.Millisecond))
		}
		if err := vs.StopProcess(); err != nil {
			t.Fatalf("cycle %d: stop Vault: %v", cycle, err)
		}
		p.set() // the held read of the Hood token goes on, to a stopped Vault
		eventually(t, 30*time.Second, "two passes in a row fail for every integration, naming the outage", func() bool {
			return failingWith(d.status(), all, 2, "vault unreachable")
		})
		// The pass in flight at the stop has ended (a failed pass came
		// after it): from here on, no PATCH until Vault is back.
		down := f.hood.Count(http.MethodPatch)
		eventually(t, 30*time.Second, "two more passes fail", func() bool {
			return failingWith(d.status(), all, 4, "vault unreachable")
		})
		if got := f.hood.Count(http.MethodPatch); got != down {
			t.Errorf("cycle %d: %d PATCHes while Vault was down, want none", cycle, got-down)
		}
		if code, body := d.get("/readyz", false); code != http.StatusServiceUnavailable || !strings.Contains(string(body), "vault") {
			t.Errorf("cycle %d: /readyz with Vault down: got %d %q, want 503 naming vault", cycle, code, body)
		}
		if err := vs.StartProcess(context.Background()); err != nil {
			t.Fatalf("cycle %d: start Vault again: %v", cycle, err)
		}
		eventually(t, 30*time.Second, "passes succeed again without restarting rotator", func() bool {
			return recovered(d.status(), all)
		})
	}
	close(stopWriter)
	wg.Wait()
	// One last value each, written while Vault is up (a write of the
	// writer's may have landed although its answer was lost).
	f.mustRotate(all...)
	eventually(t, 30*time.Second, "Hood holds the last value of every integration", f.holdsAll)
	if d.exited() {
		t.Fatalf("rotator run exited during the Vault outages")
	}
	eventually(t, 10*time.Second, "/readyz answers 200 again", func() bool {
		code, _ := d.get("/readyz", false)
		return code == http.StatusOK
	})
	f.checkAllPatchesWhole()
	t.Logf("%d Vault stops; %d PATCHes accepted, every one a whole value", cycles, len(f.patches()))
	d.logReasons(t)
	midPass := false
	for reason := range d.failureReasons() {
		midPass = midPass || strings.HasPrefix(reason, "read Hood token: read secret/"+f.prefix+"/hood (kv v2): vault unreachable")
	}
	if !midPass {
		t.Errorf("the pass whose Hood token read found Vault gone did not fail with read Hood token: ... vault unreachable")
	}
	if code := d.stop(); code != 0 {
		t.Errorf("rotator run after SIGTERM: exit %d, want 0", code)
	}
	f.checkFiles()
}

func TestVaultSealedThenUnsealed(t *testing.T) {
	vs := vaulttest.ForTest(t) // its own server: sealing it must not disturb other tests
	ctx := context.Background()
	f := newFixture(t, vs)
	f.add([3]string{"a", "61", "a"}, [3]string{"b", "62", "b"})
	all := names(f.integs)
	config := f.config(cfg{schedule: "@every 1s", hoodFromVault: true})

	// `rotator once` against a sealed Vault.
	if err := vs.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	r := f.once(config)
	if r.code != 1 {
		t.Errorf("sealed: got exit %d, want 1\n%s", r.code, r.show())
	}
	for _, n := range all {
		if l := line(r.stdout, n); !strings.Contains(l, "failed: ") || !strings.Contains(l, "vault is sealed") {
			t.Errorf("%s while sealed: got %q, want failed: ... vault is sealed", n, redact(l))
		}
	}
	t.Logf("reason given by once: %s", redact(reasonOf(line(r.stdout, "a"))))
	if n := f.hood.Count(""); n != 0 {
		t.Errorf("sealed: Hood got %d requests, want none", n)
	}
	if err := vs.Unseal(ctx); err != nil {
		t.Fatal(err)
	}
	if r := f.once(config); r.code != 0 {
		t.Fatalf("unsealed: got exit %d, want 0\n%s", r.code, r.show())
	}
	f.expectPushed("a", "b")

	// `rotator run`: sealed while it runs, then unsealed: it recovers
	// without a restart.
	d := f.startDaemon(config)
	eventually(t, 30*time.Second, "the start-up pass ran", func() bool { return recovered(d.status(), all) })
	before := f.hood.Count(http.MethodPatch)
	if err := vs.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "two passes fail naming the seal", func() bool {
		return failingWith(d.status(), all, 2, "vault is sealed")
	})
	if code, body := d.get("/readyz", false); code != http.StatusServiceUnavailable || !strings.Contains(string(body), "sealed") {
		t.Errorf("/readyz while sealed: got %d %q, want 503 naming the seal", code, body)
	}
	if got := f.hood.Count(http.MethodPatch); got != before {
		t.Errorf("%d PATCHes while sealed, want none", got-before)
	}
	if err := vs.Unseal(ctx); err != nil {
		t.Fatal(err)
	}
	f.hood.Reset()
	f.mustRotate("a", "b")
	eventually(t, 30*time.Second, "the new values are pushed after the unseal", f.holdsAll)
	eventually(t, 10*time.Second, "status shows no failure", func() bool { return recovered(d.status(), all) })
	f.expectPushed("a", "b")
	d.logReasons(t)
	if code := d.stop(); code != 0 {
		t.Errorf("rotator run after SIGTERM: exit %d, want 0", code)
	}
	f.checkFiles()
}

// readPolicy lets a token read every secret under the fixture's prefix.
func (f *fixture) readPolicy() string {
	return fmt.Sprintf("path \"secret/data/%s/*\" { capabilities = [\"read\"] }\n", f.prefix)
}

func TestVaultTokenRevokedThenReplaced(t *testing.T) {
	vs := vaulttest.Require(t, vaultSrv)
	ctx := context.Background()
	f := newFixture(t, vs)
	f.add([3]string{"a", "71", "a"}, [3]string{"b", "72", "b"})
	all := names(f.integs)
	policy := "tok-" + f.prefix
	if err := vs.WritePolicy(ctx, policy, f.readPolicy()); err != nil {
		t.Fatal(err)
	}
	tok1, err := vs.CreateToken(ctx, []string{policy}, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.writeCred("vault-token", tok1)
	d := f.startDaemon(f.config(cfg{schedule: "@every 1s"}))
	eventually(t, 30*time.Second, "the start-up pass pushed a and b", f.holdsAll)

	before := f.hood.Count(http.MethodPatch)
	if err := vs.RevokeToken(ctx, tok1); err != nil {
		t.Fatal(err)
	}
	f.mustRotate("a", "b") // values that only a valid token can read
	eventually(t, 30*time.Second, "two passes fail as unauthenticated, naming the revoked token", func() bool {
		return failingWith(d.status(), all, 2, "unauthenticated", "revoked")
	})
	if got := f.hood.Count(http.MethodPatch); got != before {
		t.Errorf("%d PATCHes with a revoked token, want none", got-before)
	}
	if code, body := d.get("/readyz", false); code != http.StatusServiceUnavailable || !strings.Contains(string(body), "authenticated") {
		t.Errorf("/readyz with a revoked token: got %d %q, want 503 naming the authentication", code, body)
	}

	// A fresh token in the file: the next pass logs in with it.
	tok2, err := vs.CreateToken(ctx, []string{policy}, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.hood.Reset()
	f.writeCred("vault-token", tok2)
	eventually(t, 30*time.Second, "the new values are pushed with the fresh token", f.holdsAll)
	eventually(t, 10*time.Second, "status shows no failure", func() bool { return recovered(d.status(), all) })
	f.expectPushed("a", "b")
	if got := d.metric("rotator_vault_authenticated"); got != 1 {
		t.Errorf("rotator_vault_authenticated: got %v, want 1", got)
	}
	d.logReasons(t)
	if code := d.stop(); code != 0 {
		t.Errorf("rotator run after SIGTERM: exit %d, want 0", code)
	}
	f.checkFiles()
}

func TestVaultAppRoleSecretIDRotated(t *testing.T) {
	vs := vaulttest.Require(t, vaultSrv)
	ctx := context.Background()
	f := newFixture(t, vs)
	f.add([3]string{"a", "81", "a"}, [3]string{"b", "82", "b"})
	all := names(f.integs)
	policy, role := "ar-"+f.prefix, "ar-"+f.prefix
	if err := vs.WritePolicy(ctx, policy, f.readPolicy()); err != nil {
		t.Fatal(err)
	}
	roleID, sid1, err := vs.EnableAppRole(ctx, "approle", role, []string{policy})
	if err != nil {
		t.Fatal(err)
	}
	f.writeCred("secret-id", sid1)
	auth := fmt.Sprintf("method: approle\n    role_id: %s\n    secret_id_file: %s", roleID, f.path("secret-id"))
	d := f.startDaemon(f.config(cfg{auth: auth, schedule: "@every 1s"}))
	eventually(t, 30*time.Second, "the start-up pass pushed a and b", f.holdsAll)
	logins := d.metric("rotator_vault_requests_total", `operation="login"`, `result="ok"`)

	// Rotate the secret id: a new one in the file, the old one destroyed.
	root := vs.Client()
	sec, err := root.Logical().WriteWithContext(ctx, "auth/approle/role/"+role+"/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	sid2, _ := sec.Data["secret_id"].(string)
	if sid2 == "" {
		t.Fatal("no new secret id")
	}
	f.writeCred("secret-id", sid2)
	if _, err := root.Logical().WriteWithContext(ctx, "auth/approle/role/"+role+"/secret-id/destroy", map[string]any{"secret_id": sid1}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{"role_id": roleID, "secret_id": sid1}); err == nil {
		t.Fatal("the old secret id still logs in after it was destroyed")
	}
	// Revoke the token rotator holds: its next read needs a new login,
	// which only the new secret id can make.
	if n := revokeTokensWithPolicy(t, root, policy); n == 0 {
		t.Fatal("no token of the role to revoke: rotator holds none?")
	}
	f.hood.Reset()
	f.mustRotate("a", "b")
	eventually(t, 30*time.Second, "the new values are pushed after a login with the new secret id", f.holdsAll)
	eventually(t, 10*time.Second, "status shows no failure", func() bool { return recovered(d.status(), all) })
	f.expectPushed("a", "b")
	if got := d.metric("rotator_vault_requests_total", `operation="login"`, `result="ok"`); got <= logins {
		t.Errorf("successful logins: got %v, want more than the %v before the rotation", got, logins)
	}
	d.logReasons(t)
	if code := d.stop(); code != 0 {
		t.Errorf("rotator run after SIGTERM: exit %d, want 0", code)
	}
	f.checkFiles()
}

// revokeTokensWithPolicy revokes every token that carries policy and returns
// how many it revoked (other tests' tokens are left alone).
func revokeTokensWithPolicy(t *testing.T, root *api.Client, policy string) int {
	t.Helper()
	ctx := context.Background()
	list, err := root.Logical().ListWithContext(ctx, "auth/token/accessors")
	if err != nil || list == nil {
		t.Fatalf("list token accessors: %v", err)
	}
	keys, _ := list.Data["keys"].([]any)
	n := 0
	for _, k := range keys {
		acc, _ := k.(string)
		sec, err := root.Auth().Token().LookupAccessorWithContext(ctx, acc)
		if err != nil || sec == nil {
			continue // revoked or expired meanwhile
		}
		pols, _ := sec.Data["policies"].([]any)
		if !slices.Contains(pols, any(policy)) {
			continue
		}
		if err := root.Auth().Token().RevokeAccessorWithContext(ctx, acc); err != nil {
			t.Fatalf("revoke a token of %s: %v", policy, err)
		}
		n++
	}
	return n
}

func TestVaultPermissionDeniedOnOnePath(t *testing.T) {
	vs := vaulttest.Require(t, vaultSrv)
	ctx := context.Background()
	f := newFixture(t, vs)
	f.add([3]string{"a", "91", "a"}, [3]string{"d", "92", "denied"}, [3]string{"c", "93", "c"})
	policy := "pd-" + f.prefix
	deny := fmt.Sprintf("path \"secret/data/%s/denied\" { capabilities = [\"deny\"] }\n", f.prefix)
	if err := vs.WritePolicy(ctx, policy, f.readPolicy()+deny); err != nil {
		t.Fatal(err)
	}
	tok, err := vs.CreateToken(ctx, []string{policy}, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.writeCred("vault-token", tok)
	config := f.config(cfg{})

	r := f.once(config)
	if r.code != 1 {
		t.Errorf("one path denied: got exit %d, want 1\n%s", r.code, r.show())
	}
	denied := "secret/" + f.prefix + "/denied"
	if l := line(r.stdout, "d"); !strings.Contains(l, "failed: ") || !strings.Contains(l, "permission denied") || !strings.Contains(l, denied) {
		t.Errorf("d: got %q, want failed: permission denied naming %s", redact(l), denied)
	}
	for _, n := range []string{"a", "c"} {
		if l := line(r.stdout, n); !strings.Contains(l, "pushed") {
			t.Errorf("%s: got %q, want pushed", n, redact(l))
		}
	}
	t.Logf("reason given: %s", redact(reasonOf(line(r.stdout, "d"))))
	f.expectPushed("a", "c")

	// The policy is fixed: the next pass pushes the denied one only.
	if err := vs.WritePolicy(ctx, policy, f.readPolicy()); err != nil {
		t.Fatal(err)
	}
	f.hood.Reset()
	r = f.once(config)
	if r.code != 0 {
		t.Fatalf("policy fixed: got exit %d, want 0\n%s", r.code, r.show())
	}
	f.expectPushed("d")
	f.checkFiles()
}
