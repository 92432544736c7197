package deploy_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

// vaultAudience is the audience of the sidecar's projected token and of the
// Vault Kubernetes role in docs/operations.md.
const vaultAudience = "vault"

const policyFile = "deploy/vault/rotator-policy.hcl"

var policyBlockRE = regexp.MustCompile(`(?s)path\s+"([^"]+)"\s*\{\s*capabilities\s*=\s*\[([^\]]*)\]\s*\}`)

// policy parses the policy file: path -> capabilities.
func policy(t *testing.T) map[string][]string {
	t.Helper()
	src := string(readFile(t, policyFile))
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
		t.Fatalf("%s: cannot read %q", policyFile, rest)
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
	cm := findManifest(t, k8sManifests(t), "ConfigMap")
	k8s := parseConfig(t, "ConfigMap", []byte(str(cm.doc, "data", "config.yaml")), env(nil))
	return map[string]*config.Config{"deploy/systemd/config.yaml": sys, k8sDir + "configmap.yaml": k8s}
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

// TestDocsVaultSetupAndPass runs the Vault set-up of docs/operations.md, as
// written, against an OpenBao server, then `rotator once` with
// deploy/systemd/config.yaml (Vault address, role id and Hood URL replaced)
// against the Hood test server: the policy, the AppRole and the
// configuration are enough for a real pass, and the role can read nothing
// else.
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
	cm := findManifest(t, k8sManifests(t), "ConfigMap")
	k8sCfg := parseConfig(t, "ConfigMap", []byte(str(cm.doc, "data", "config.yaml")), env(nil))
	if k8sCfg.Vault.Auth.Role != "rotator" || k8sCfg.Vault.Auth.Mount != "kubernetes" {
		t.Errorf("ConfigMap: vault.auth role %q mount %q, want the documented role rotator at kubernetes", k8sCfg.Vault.Auth.Role, k8sCfg.Vault.Auth.Mount)
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
