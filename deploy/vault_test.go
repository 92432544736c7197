package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"go.yaml.in/yaml/v3"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/ha"
	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
	"github.com/ocamba-rotator/rotator/internal/state"
	"github.com/ocamba-rotator/rotator/internal/vault"
	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

// vaultAudience is the audience of the sidecar's projected token and of the
// Vault Kubernetes role in docs/operations.md.
const vaultAudience = "vault"

const (
	policyFile   = "deploy/vault/rotator-policy.hcl"
	haPolicyFile = "deploy/vault/rotator-ha-policy.hcl"
)

var policyBlockRE = regexp.MustCompile(`(?s)path\s+"([^"]+)"\s*\{\s*capabilities\s*=\s*\[([^\]]*)\]\s*\}`)

// policy parses the policy file: path -> capabilities.
func policy(t *testing.T) map[string][]string {
	t.Helper()
	return policyOf(t, policyFile)
}

// policyOf parses a policy file of deploy/vault: path -> capabilities.
func policyOf(t *testing.T, file string) map[string][]string {
	t.Helper()
	src := string(readFile(t, file))
	var uncommented []string
	for _, l := range strings.Split(src, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			uncommented = append(uncommented, l)
		}
	}
	body := strings.Join(uncommented, "\n")
	out := map[string][]string{}
	for _, m := range policyBlockRE.FindAllStringSubmatch(body, -1) {
		var caps []string
		for _, c := range strings.Split(m[2], ",") {
			if c = strings.Trim(strings.TrimSpace(c), `"`); c != "" {
				caps = append(caps, c)
			}
		}
		out[m[1]] = caps
	}
	if rest := strings.TrimSpace(policyBlockRE.ReplaceAllString(body, "")); rest != "" {
		t.Fatalf("%s: cannot read %q", file, rest)
	}
	return out
}

// vaultReads returns the Vault API paths a configuration reads.
func vaultReads(cfg *config.Config) []string {
	p := func(mount, path string, kv int) string {
		if kv == 1 {
			return mount + "/" + path
		}
		return mount + "/data/" + path
	}
	var out []string
	if r := cfg.Hood.Token.Vault; r != nil {
		out = append(out, p(r.Mount, r.Path, r.KVVersion))
	}
	for _, in := range cfg.Integrations {
		out = append(out, p(in.Source.Mount, in.Source.Path, in.Source.KVVersion))
	}
	return out
}

func exampleConfigs(t *testing.T) map[string]*config.Config {
	t.Helper()
	sys := parseConfig(t, "deploy/systemd/config.yaml", readFile(t, "deploy/systemd/config.yaml"), env(map[string]string{
		"CREDENTIALS_DIRECTORY": "/run/credentials/rotator.service", "STATE_DIRECTORY": stateDirValue, "LOGS_DIRECTORY": logsDirValue,
	}))
	return map[string]*config.Config{"deploy/systemd/config.yaml": sys, k8sDir + "configmap.yaml": k8sConfig(t)}
}

// TestVaultPolicyLeastPrivilege: the policy grants read on exactly the
// secrets the example configurations read, plus the token's own upkeep.
func TestVaultPolicyLeastPrivilege(t *testing.T) {
	pol := policy(t)
	self := map[string][]string{
		"auth/token/lookup-self": {"read"},
		"auth/token/renew-self":  {"update"},
	}
	used := map[string]bool{}
	for name, cfg := range exampleConfigs(t) {
		for _, p := range vaultReads(cfg) {
			used[p] = true
			if caps, ok := pol[p]; !ok || !slices.Contains(caps, "read") {
				t.Errorf("%s reads %s, which %s does not allow", name, p, policyFile)
			}
		}
	}
	for p, caps := range pol {
		if strings.ContainsAny(p, "*+") {
			t.Errorf("%s: path %q has a wildcard", policyFile, p)
		}
		if want, ok := self[p]; ok {
			if !slices.Equal(caps, want) {
				t.Errorf("%s: %s capabilities %v, want %v", policyFile, p, caps, want)
			}
			continue
		}
		if !used[p] {
			t.Errorf("%s: path %q is read by neither example configuration", policyFile, p)
		}
		if !slices.Equal(caps, []string{"read"}) {
			t.Errorf("%s: %s capabilities %v, want [read]", policyFile, p, caps)
		}
	}
}

// haNeeds returns what ha.mode vault and watch mode of cfg need of Vault
// beyond reading the secrets (docs/ha.md, "Policy"): path -> capabilities.
func haNeeds(cfg *config.Config) map[string][]string {
	out := map[string][]string{}
	if cfg.HA.Enabled() {
		out[strings.Trim(cfg.HA.Mount, "/")+"/data/"+strings.Trim(cfg.HA.Path, "/")+"/*"] = []string{"create", "read", "update"}
	}
	if cfg.Watch.Interval > 0 {
		for _, src := range watchedSources(cfg) {
			out[src.Mount+"/metadata/"+src.Path] = []string{"read"}
		}
	}
	return out
}

// watchedSources are the distinct KV v2 sources of cfg's integrations, which
// watch mode polls (mount and path without surrounding slashes).
func watchedSources(cfg *config.Config) []config.Source {
	var out []config.Source
	seen := map[string]bool{}
	for _, in := range cfg.Integrations {
		if in.Source.KVVersion != 2 || seen[in.Source.Key()] {
			continue
		}
		seen[in.Source.Key()] = true
		out = append(out, config.Source{Mount: strings.Trim(in.Source.Mount, "/"), Path: strings.Trim(in.Source.Path, "/"), KVVersion: 2})
	}
	return out
}

// TestVaultHAPolicyLeastPrivilege: the HA policy grants exactly what ha.mode
// vault and watch mode of the example configurations need: create, read
// and update on the records under ha.path, read on the metadata of each
// watched KV v2 source; nothing more (no delete, no list, no other path).
func TestVaultHAPolicyLeastPrivilege(t *testing.T) {
	pol := policyOf(t, haPolicyFile)
	need := map[string][]string{}
	for name, cfg := range exampleConfigs(t) {
		for p, caps := range haNeeds(cfg) {
			if prev, ok := need[p]; ok && !slices.Equal(prev, caps) {
				t.Fatalf("%s needs %v on %s, another example configuration %v", name, caps, p, prev)
			}
			need[p] = caps
		}
	}
	if len(need) == 0 {
		t.Fatalf("no example configuration sets ha.mode vault or watch: %s is for nothing", haPolicyFile)
	}
	for p, want := range need {
		got := slices.Sorted(slices.Values(pol[p]))
		if !slices.Equal(got, want) {
			t.Errorf("%s: %s capabilities %v, want %v", haPolicyFile, p, pol[p], want)
		}
	}
	for p, caps := range pol {
		if _, ok := need[p]; !ok {
			t.Errorf("%s: path %q (%v) is needed by neither example configuration", haPolicyFile, p, caps)
		}
	}
	// The base policy stays read-only: nothing of HA creeps into it.
	for p := range policy(t) {
		if _, ok := need[p]; ok {
			t.Errorf("%s grants %s, which belongs in %s only", policyFile, p, haPolicyFile)
		}
	}
}

// checkHAOnVault runs the shared store of cfg (ha.FromConfig) and watch
// mode's metadata reads on srv with a token holding exactly policies, and
// checks that the same token may do nothing more with the records, the
// metadata or other paths.
func checkHAOnVault(t *testing.T, ctx context.Context, srv *vaulttest.Server, cfg *config.Config, policies []string) {
	t.Helper()
	token, err := srv.CreateTokenWith(ctx, &api.TokenCreateRequest{Policies: policies, NoDefaultPolicy: true, TTL: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	vc, err := vault.New(config.Vault{Address: srv.Addr, Auth: config.VaultAuth{Method: "token", TokenFile: tokenFile}}, vault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := vc.Login(ctx); err != nil {
		t.Fatalf("login with a token of policies %v: %v", policies, err)
	}
	st, err := ha.FromConfig(cfg.HA, vc, nil)
	if err != nil {
		t.Fatal(err)
	}

	// One push's round of the shared store: Get (with the HMAC key's
	// creation), Begin, Fence, Confirm, then Get again.
	in := cfg.Integrations[0]
	rec, found, err := st.Get(in.Name)
	if err != nil || found {
		t.Fatalf("policies %v: Get %s: found %v, %v; want no record yet, no error", policies, in.Name, found, err)
	}
	now := time.Now().UTC()
	pushed := state.Pushed{
		Fingerprint: st.Fingerprint(in.ID, in.Provider, map[string]string{"setting": "value"}),
		VaultPath:   in.Source.Mount + "/" + in.Source.Path, VaultVersion: 1, At: now,
	}
	if err := st.Begin(in.Name, in.ID, in.Provider, rec.Revision, pushed); err != nil {
		t.Fatalf("policies %v: Begin %s: %v", policies, in.Name, err)
	}
	if err := st.Fence(in.Name); err != nil {
		t.Fatalf("policies %v: Fence %s: %v", policies, in.Name, err)
	}
	if err := st.Confirm(in.Name, pushed, state.Attempt{At: now, Trigger: "cli", Result: "pushed", VaultVersion: 1}); err != nil {
		t.Fatalf("policies %v: Confirm %s: %v", policies, in.Name, err)
	}
	rec, found, err = st.Get(in.Name)
	if err != nil || !found || rec.Confirmed == nil || rec.HeldBy != "" {
		t.Fatalf("policies %v: Get %s after Confirm: found %v, confirmed %v, held by %q, %v", policies, in.Name, found, rec.Confirmed != nil, rec.HeldBy, err)
	}

	// Watch mode: the metadata of every watched source.
	for _, src := range watchedSources(cfg) {
		if v, err := vc.CurrentVersion(ctx, src.Mount, src.Path); err != nil || v < 1 {
			t.Errorf("policies %v: CurrentVersion %s/%s: %d, %v", policies, src.Mount, src.Path, v, err)
		}
	}

	// Nothing more.
	denied := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, vault.ErrPermissionDenied) {
			t.Errorf("policies %v: %s: %v, want permission denied", policies, what, err)
		}
	}
	mount, records := strings.Trim(cfg.HA.Mount, "/"), strings.Trim(cfg.HA.Path, "/")
	doc := map[string]any{"holder": ""}
	for _, p := range []string{records, records + "-other/x", "rotator/not-leases/x", in.Source.Path} {
		_, err := vc.WriteDoc(ctx, mount, p, doc, 0)
		denied("write "+mount+"/data/"+p, err)
	}
	for _, p := range []string{"ocamba/not-for-rotator", records + "/" + in.Name, "rotator/hood"} {
		_, err := vc.CurrentVersion(ctx, mount, p)
		denied("metadata "+mount+"/metadata/"+p, err)
	}
	raw, err := srv.ClientWithToken(token)
	if err != nil {
		t.Fatal(err)
	}
	for what, f := range map[string]func() error{
		"list the records": func() error {
			_, err := raw.Logical().ListWithContext(ctx, mount+"/metadata/"+records)
			return err
		},
		"delete a record": func() error {
			_, err := raw.Logical().DeleteWithContext(ctx, mount+"/data/"+records+"/"+in.Name)
			return err
		},
		"delete a record's metadata": func() error {
			_, err := raw.Logical().DeleteWithContext(ctx, mount+"/metadata/"+records+"/"+in.Name)
			return err
		},
		"destroy a record's version": func() error {
			_, err := raw.Logical().WriteWithContext(ctx, mount+"/destroy/"+records+"/"+in.Name, map[string]any{"versions": []int{1}})
			return err
		},
	} {
		if err := f(); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("policies %v: %s: %v, want permission denied", policies, what, err)
		}
	}
}

// TestDocsVaultSetupAndPass runs the Vault set-up of docs/operations.md, as
// written, against an OpenBao server, then `rotator once` with
// deploy/systemd/config.yaml (Vault address, role id and Hood URL replaced)
// against the Hood test server: the policy, the AppRole and the
// configuration are enough for a real pass, and the role can read nothing
// else. The Kubernetes role's policies (rotator and rotator-ha) run the
// shared store and the watch polls of the ConfigMap's configuration, and
// allow nothing more (checkHAOnVault).
func TestDocsVaultSetupAndPass(t *testing.T) {
	srv := vaulttest.ForTest(t)
	bao, err := vaulttest.BinPath()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	work := filepath.Join(dir, "work")
	for _, d := range []string{bin, work} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// The docs say `vault`; OpenBao's CLI takes the same commands.
	shim := "#!/bin/sh\nexec " + shellQuote(bao) + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "vault"), []byte(shim), 0o700); err != nil {
		t.Fatal(err)
	}
	absDeploy, err := filepath.Abs(path("deploy"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(absDeploy, filepath.Join(work, "deploy")); err != nil {
		t.Fatal(err)
	}

	const (
		hoodToken   = "hood-api-token-for-the-docs-test"
		twilioToken = "twilio-auth-token-v1"
		sendgridKey = "SG.sendgrid-key-v1"
	)
	run := func(block, stdin string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, "bash", "-c", "set -euo pipefail\n"+block)
		cmd.Dir = work
		cmd.Env = append(os.Environ(),
			"PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
			"VAULT_ADDR="+srv.Addr, "VAULT_TOKEN="+srv.RootToken,
			"VAULT_NAMESPACE=", "VAULT_CACERT=", "HOME="+dir)
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("the documented commands failed: %v\n--- commands\n%s--- output\n%s", err, block, out)
		}
	}
	run(docBlocks(t, "vault-setup"), hoodToken+"\n"+twilioToken+"\n"+sendgridKey+"\n")

	// Kubernetes auth: enabling and configuring it depends on the cluster
	// (docs, step 3); the role command is run as written.
	if err := srv.EnableAuth(ctx, "kubernetes", "kubernetes"); err != nil {
		t.Fatal(err)
	}
	run(docBlocks(t, "vault-kubernetes-role"), "")
	role, err := srv.Client().Logical().ReadWithContext(ctx, "auth/kubernetes/role/rotator")
	if err != nil || role == nil {
		t.Fatalf("read the Kubernetes role: %v", err)
	}
	sa := findManifest(t, k8sManifests(t), "ServiceAccount").name()
	if got := fmt.Sprint(role.Data["bound_service_account_names"]); got != "["+sa+"]" {
		t.Errorf("Kubernetes role bound to service accounts %s, want [%s]", got, sa)
	}
	if got := fmt.Sprint(role.Data["audience"]); got != vaultAudience {
		t.Errorf("Kubernetes role audience %q, want %q", got, vaultAudience)
	}
	k8sCfg := k8sConfig(t)
	if k8sCfg.Vault.Auth.Role != "rotator" || k8sCfg.Vault.Auth.Mount != "kubernetes" {
		t.Errorf("ConfigMap: vault.auth role %q mount %q, want the documented role rotator at kubernetes", k8sCfg.Vault.Auth.Role, k8sCfg.Vault.Auth.Mount)
	}

	// The ConfigMap's ha and watch: the role carries the HA policy too, as
	// written by the docs from deploy/vault/rotator-ha-policy.hcl, and a
	// token of the role's policies runs the shared store and nothing more.
	var rolePolicies []string
	for _, p := range list(role.Data, "token_policies") {
		rolePolicies = append(rolePolicies, fmt.Sprint(p))
	}
	if len(haNeeds(k8sCfg)) > 0 {
		if !slices.Contains(rolePolicies, "rotator") || !slices.Contains(rolePolicies, "rotator-ha") {
			t.Errorf("Kubernetes role token_policies %v, want rotator and rotator-ha (the ConfigMap sets ha.mode vault and watch)", rolePolicies)
		}
		written, err := srv.Client().Sys().GetPolicyWithContext(ctx, "rotator-ha")
		if err != nil || strings.TrimSpace(written) != strings.TrimSpace(string(readFile(t, haPolicyFile))) {
			t.Errorf("the documented commands did not write %s as the policy rotator-ha (%v)", haPolicyFile, err)
		}
		checkHAOnVault(t, ctx, srv, k8sCfg, rolePolicies)
	}

	roleID, err := os.ReadFile(filepath.Join(work, "role-id"))
	if err != nil || strings.TrimSpace(string(roleID)) == "" {
		t.Fatalf("the documented commands left no role-id: %v", err)
	}
	secretID, err := os.ReadFile(filepath.Join(work, "secret-id"))
	if err != nil || strings.TrimSpace(string(secretID)) == "" {
		t.Fatalf("the documented commands left no secret-id: %v", err)
	}

	// Least privilege: the AppRole's token reads the documented secrets and
	// nothing else.
	if _, err := srv.PutKV(ctx, "secret", "ocamba/not-for-rotator", map[string]any{"api_key": "x"}); err != nil {
		t.Fatal(err)
	}
	login, err := srv.Client().Logical().WriteWithContext(ctx, "auth/approle/login", map[string]any{
		"role_id": strings.TrimSpace(string(roleID)), "secret_id": strings.TrimSpace(string(secretID)),
	})
	if err != nil || login == nil || login.Auth == nil {
		t.Fatalf("AppRole login with the documented role: %v", err)
	}
	rc, err := srv.ClientWithToken(login.Auth.ClientToken)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"secret/data/rotator/hood", "secret/data/ocamba/twilio-main", "secret/data/ocamba/sendgrid"} {
		if _, err := rc.Logical().ReadWithContext(ctx, p); err != nil {
			t.Errorf("rotator's token cannot read %s: %v", p, err)
		}
	}
	for _, p := range []string{"secret/data/ocamba/not-for-rotator", "secret/metadata/ocamba/twilio-main", "sys/policies/acl/rotator"} {
		if _, err := rc.Logical().ReadWithContext(ctx, p); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("rotator's token reading %s: %v, want permission denied", p, err)
		}
	}
	if _, err := rc.Logical().WriteWithContext(ctx, "secret/data/ocamba/twilio-main", map[string]any{"data": map[string]any{"token": "x"}}); err == nil {
		t.Error("rotator's token may write its secrets")
	}

	// A real pass with the systemd configuration.
	hs, err := hoodtest.Start(hoodtest.Options{Tokens: []string{hoodToken}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hs.Close() })
	sysCfg := exampleConfigs(t)["deploy/systemd/config.yaml"]
	for _, in := range sysCfg.Integrations {
		if err := hs.AddIntegration(in.ID, in.Provider, nil); err != nil {
			t.Fatal(err)
		}
	}

	var doc map[string]any
	if err := yaml.Unmarshal(readFile(t, "deploy/systemd/config.yaml"), &doc); err != nil {
		t.Fatal(err)
	}
	mapping(doc, "vault")["address"] = srv.Addr
	mapping(doc, "vault", "auth")["role_id"] = strings.TrimSpace(string(roleID))
	mapping(doc, "hood")["base_url"] = hs.URL()
	mapping(doc, "hood")["allow_insecure_http"] = true
	cfgData, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "config.yaml")
	creds, state, logs := filepath.Join(dir, "credentials"), filepath.Join(dir, "state"), filepath.Join(dir, "logs")
	for _, d := range []string{creds, state, logs} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range map[string][]byte{"secret-id": secretID, "admin-token": []byte("admin-token-for-the-docs-test\n")} {
		if err := os.WriteFile(filepath.Join(creds, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(cfgFile, cfgData, 0o600); err != nil {
		t.Fatal(err)
	}

	rotator := filepath.Join(dir, "rotator")
	build := exec.CommandContext(ctx, goTool(t), "build", "-o", rotator, "./cmd/rotator")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/rotator: %v\n%s", err, out)
	}
	once := func() string {
		t.Helper()
		cmd := exec.CommandContext(ctx, rotator, "once", "--config", cfgFile, "--log-format", "text", "--log-level", "warn")
		cmd.Env = append(os.Environ(), "CREDENTIALS_DIRECTORY="+creds, "STATE_DIRECTORY="+state, "LOGS_DIRECTORY="+logs,
			"VAULT_ADDR=", "VAULT_TOKEN=", "VAULT_NAMESPACE=", "VAULT_CACERT=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("rotator once: %v\n%s", err, out)
		}
		return string(out)
	}
	out := once()
	for _, in := range sysCfg.Integrations {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(in.Name) + `\s.*\spushed\b`).MatchString(out) {
			t.Errorf("first pass: %s was not pushed:\n%s", in.Name, out)
		}
	}
	if got, _ := hs.Integration("1161"); got.Settings["auth_token"] != twilioToken || got.Settings["default_phone_number"] != "+14155552671" {
		t.Errorf("Hood integration 1161 holds %v, want the Twilio token from Vault and the static phone number", sortedKeys(got.Settings))
	}
	if got, _ := hs.Integration("1172"); got.Settings["api_key"] != sendgridKey {
		t.Errorf("Hood integration 1172 does not hold the SendGrid key from Vault (settings %v)", sortedKeys(got.Settings))
	}
	out = once()
	for _, in := range sysCfg.Integrations {
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(in.Name) + `\s.*\sunchanged\b`).MatchString(out) {
			t.Errorf("second pass: %s is not unchanged:\n%s", in.Name, out)
		}
	}
	if audit, err := os.ReadFile(filepath.Join(logs, "audit.jsonl")); err != nil || len(audit) == 0 {
		t.Errorf("no audit log in $LOGS_DIRECTORY: %v", err)
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
