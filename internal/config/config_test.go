package config_test

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
)

// env returns a getenv that reads only m: tests never see the real
// environment.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// testEnv is the environment of the testdata table: VAULT_TOKEN and
// VAULT_ADDR are deliberately absent, so that the files that leave them
// out fail.
var testEnv = env(map[string]string{"HOOD_TOKEN": "not-read-by-config"})

// problemsOf returns the problems in err, failing the test if err is
// neither nil nor a *ValidationError.
func problemsOf(t *testing.T, err error) []config.Problem {
	t.Helper()
	if err == nil {
		return nil
	}
	ve, ok := errors.AsType[*config.ValidationError](err)
	if !ok {
		t.Fatalf("got error %v (%T), want a *config.ValidationError", err, err)
	}
	return ve.Problems
}

// wantLines returns the problems that the leading "# want: <problem>"
// comment lines of file announce: at least the first line must be one.
func wantLines(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var wants []string
	for s := bufio.NewScanner(f); s.Scan(); {
		want, ok := strings.CutPrefix(s.Text(), "# want: ")
		if !ok {
			break
		}
		wants = append(wants, want)
	}
	if len(wants) == 0 {
		t.Fatalf("the first line of %s is not a \"# want: <problem>\" comment", file)
	}
	return wants
}

// TestInvalidTestdata loads every testdata/invalid-*.yaml and checks that
// the problems its "# want:" lines announce are exactly those reported.
func TestInvalidTestdata(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid-*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 20 {
		t.Fatalf("got %d testdata/invalid-*.yaml files, want at least 20", len(files))
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			wants := wantLines(t, file)
			_, err := config.LoadAndValidate(file, testEnv)
			if err == nil {
				t.Fatalf("got no error, want %q", wants)
			}
			problems := problemsOf(t, err)
			got := make([]string, len(problems))
			for i, p := range problems {
				got[i] = p.String()
			}
			for _, want := range wants {
				if !slices.Contains(got, want) {
					t.Errorf("got problems\n  %s\nwant among them\n  %s", strings.Join(got, "\n  "), want)
				}
			}
			if len(got) != len(wants) {
				t.Errorf("got %d problems\n  %s\nwant %d\n  %s", len(got), strings.Join(got, "\n  "), len(wants), strings.Join(wants, "\n  "))
			}
		})
	}
}

func TestFileErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope.yaml"), "does not exist"},
		{"directory", dir, "is a directory"},
		{"empty", "testdata/bad-empty.yaml", "is empty"},
		{"only a comment", "testdata/bad-only-comment.yaml", "is empty"},
		{"null document", "testdata/bad-null.yaml", "is empty"},
		{"not YAML", "testdata/bad-not-yaml.yaml", "not valid YAML: yaml: line 4: found character that cannot start any token"},
		{"unquoted ${VAR} in flow style", "testdata/bad-flow-var.yaml", `quote a value that uses ${VAR}: "${VAR}"`},
		{"two documents", "testdata/bad-two-documents.yaml", "more than one YAML document (another one starts at line 4)"},
		{"a scalar", "testdata/bad-scalar.yaml", "the top level is a single value, want a mapping"},
		{"a list", "testdata/bad-list.yaml", "the top level is a list, want a mapping"},
		{"no path", "", "no configuration file given"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load(tt.path, testEnv)
			if err == nil {
				t.Fatalf("got no error, want one containing %q", tt.want)
			}
			if _, ok := errors.AsType[*config.ValidationError](err); ok {
				t.Fatalf("got a *ValidationError %q, want a plain file error", err)
			}
			if cfg != nil {
				t.Errorf("got a Config with a file error, want nil")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got error %q, want it to contain %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.path) {
				t.Errorf("got error %q, want it to name the path %q", err, tt.path)
			}
		})
	}
	t.Run("missing is fs.ErrNotExist", func(t *testing.T) {
		_, err := config.Load(filepath.Join(dir, "nope.yaml"), testEnv)
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("got %v, want an error wrapping os.ErrNotExist", err)
		}
	})
}

func TestFileUnreadable(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	path := filepath.Join(t.TempDir(), "secret.yaml")
	if err := os.WriteFile(path, []byte("vault: {}\n"), 0o000); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(path, testEnv)
	if err == nil || !strings.Contains(err.Error(), "permission denied") || !strings.Contains(err.Error(), path) {
		t.Errorf("got %v, want a permission error naming %s", err, path)
	}
	if !errors.Is(err, os.ErrPermission) {
		t.Errorf("got %v, want an error wrapping os.ErrPermission", err)
	}
}

// load loads a testdata file that must be clean, Load and Validate alike.
func load(t *testing.T, file string, getenv func(string) string) *config.Config {
	t.Helper()
	cfg, err := config.Load(file, getenv)
	if err != nil {
		t.Fatalf("Load(%s): got %v, want no error", file, err)
	}
	if err := cfg.Validate(getenv); err != nil {
		t.Fatalf("Validate(%s): got\n%v\nwant no problem", file, err)
	}
	return cfg
}

// check compares one field of a loaded Config.
func check[T any](t *testing.T, name string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: got %#v, want %#v", name, got, want)
	}
}

func TestValidFull(t *testing.T) {
	c := load(t, "testdata/valid-full.yaml", env(map[string]string{
		// The file sets all of these: the environment must not win.
		"VAULT_ADDR": "http://wrong:1", "VAULT_NAMESPACE": "wrong", "VAULT_CACERT": "/wrong",
	}))
	check(t, "vault.address", c.Vault.Address, "https://vault.example.com:8200")
	check(t, "vault.namespace", c.Vault.Namespace, "team-a")
	check(t, "vault.ca_cert", c.Vault.CACert, "/etc/rotator/vault-ca.pem")
	check(t, "vault.auth", c.Vault.Auth, config.VaultAuth{Method: "token", TokenFile: "/run/secrets/vault-token"})
	check(t, "hood.base_url", c.Hood.BaseURL, "https://hood.example.com/api")
	check(t, "hood.allow_insecure_http", c.Hood.AllowInsecureHTTP, false)
	check(t, "hood.token", c.Hood.Token, config.Token{Vault: &config.SecretRef{Mount: "secret", Path: "rotator/hood", Key: "token", KVVersion: 1}})
	check(t, "hood.timeout", c.Hood.Timeout.D(), 15*time.Second)
	check(t, "hood.rate_limit", c.Hood.RateLimit, config.RateLimit{Burst: 5, PerMinute: 100})
	check(t, "hood.retry", c.Hood.Retry, config.Retry{MaxAttempts: 6, InitialBackoff: config.Duration(250 * time.Millisecond), MaxBackoff: config.Duration(30 * time.Second)})
	check(t, "hood.max_in_flight", c.Hood.MaxInFlight, 8)
	check(t, "schedule", c.Schedule, "30 2 * * 1-5")
	check(t, "timezone", c.Timezone, "Europe/Belgrade")
	check(t, "Location", c.Location().String(), "Europe/Belgrade")
	check(t, "jitter", c.Jitter.D(), 5*time.Minute)
	check(t, "admin", c.Admin, config.Admin{Listen: "0.0.0.0:9999", TokenFile: "/run/secrets/admin-token"})
	check(t, "state.path", c.State.Path, "/var/lib/rotator/state.db")
	check(t, "audit.path", c.Audit.Path, "/var/log/rotator/audit.jsonl")
	check(t, "len(integrations)", len(c.Integrations), 3)
	check(t, "integrations[0]", c.Integrations[0], config.Integration{
		Name: "twilio-main", ID: "1161", Provider: "twilio_sms",
		Source:          config.Source{Mount: "secret", Path: "ocamba/twilio-main", KVVersion: 2},
		Fields:          map[string]string{"auth_token": "token", "account_sid": "sid"},
		Static:          map[string]string{"default_phone_number": "+14155552671"},
		Schedule:        "@hourly",
		OnVerifyFailure: "rollback",
		MaxAge:          config.Duration(720 * time.Hour),
	})
	check(t, "integrations[1]", c.Integrations[1], config.Integration{
		Name: "sendgrid_1", ID: "9876543210987654321", Provider: "sendgrid_email",
		Source:          config.Source{Mount: "kv", Path: "mail/sendgrid", KVVersion: 1},
		Schedule:        "@every 90m",
		OnVerifyFailure: "keep",
		ProviderCheck:   true,
	})
	check(t, "integrations[2]", c.Integrations[2], config.Integration{
		Name: "smtp", ID: "77", Provider: "custom_email_provider",
		Source:          config.Source{Mount: "secret", Path: "mail/smtp", KVVersion: 2},
		Static:          map[string]string{"port": "587"},
		OnVerifyFailure: "keep",
		ProviderCheck:   true,
		SMTPHost:        "smtp.example.com",
		SMTPCACert:      "/etc/rotator/smtp-ca.pem",
	})
	check(t, "provider_api", c.ProviderAPI, map[string]string{"sendgrid_email": "https://api.eu.sendgrid.com/"})
	check(t, "integrations[0] schedule", c.Integrations[0].EffectiveSchedule(c.Schedule), "@hourly")
	check(t, "ha", c.HA, config.HA{
		Mode: "vault", Mount: "secret", Path: "rotator/leases", Identity: "web-1.example_a",
		LeaseTTL: config.Duration(2 * time.Minute), ClockSkew: config.Duration(config.DefaultClockSkew),
	})
	check(t, "ha.Enabled", c.HA.Enabled(), true)
	check(t, "watch", c.Watch, config.Watch{Interval: config.Duration(5 * time.Second)})
	check(t, "Line(integrations[0].fields.account_sid)", c.Line("integrations[0].fields.account_sid"), 47)
	check(t, "Line(integrations[1].source.path)", c.Line("integrations[1].source.path"), 56)
	check(t, "Line(of an unset key: its section)", c.Line("integrations[1].fields"), 53)
	check(t, "Line(unknown)", c.Line("nothing.here"), 0)
}

func TestDefaults(t *testing.T) {
	c := load(t, "testdata/valid-minimal.yaml", env(map[string]string{
		"VAULT_ADDR": "https://vault.env:8200", "VAULT_NAMESPACE": "ns-env", "VAULT_CACERT": "/env/ca.pem",
		"VAULT_TOKEN": "s.env",
	}))
	check(t, "vault.address", c.Vault.Address, "https://vault.env:8200")
	check(t, "vault.namespace", c.Vault.Namespace, "ns-env")
	check(t, "vault.ca_cert", c.Vault.CACert, "/env/ca.pem")
	check(t, "vault.auth", c.Vault.Auth, config.VaultAuth{Method: "token"})
	check(t, "hood.base_url", c.Hood.BaseURL, "https://api.ocamba.com")
	check(t, "hood.allow_insecure_http", c.Hood.AllowInsecureHTTP, false)
	check(t, "hood.token", c.Hood.Token, config.Token{Env: "HOOD_TOKEN"})
	check(t, "hood.timeout", c.Hood.Timeout.D(), 10*time.Second)
	check(t, "hood.rate_limit", c.Hood.RateLimit, config.RateLimit{Burst: 10, PerMinute: 150})
	check(t, "hood.retry", c.Hood.Retry, config.Retry{MaxAttempts: 4, InitialBackoff: config.Duration(500 * time.Millisecond), MaxBackoff: config.Duration(60 * time.Second)})
	check(t, "hood.max_in_flight", c.Hood.MaxInFlight, 4)
	check(t, "schedule", c.Schedule, "0 3 * * *")
	check(t, "timezone", c.Timezone, "UTC")
	check(t, "Location", c.Location(), time.UTC)
	check(t, "jitter", c.Jitter.D(), time.Duration(0))
	check(t, "admin", c.Admin, config.Admin{Listen: "127.0.0.1:9464"})
	check(t, "state.path", c.State.Path, "./rotator-state.db")
	check(t, "audit.path", c.Audit.Path, "")
	check(t, "integrations", c.Integrations, []config.Integration{{
		Name: "mailgun", ID: "1", Provider: "mailgun_email",
		Source:          config.Source{Mount: "secret", Path: "mailgun", KVVersion: 2},
		OnVerifyFailure: "keep",
	}})
	check(t, "integrations[0] schedule", c.Integrations[0].EffectiveSchedule(c.Schedule), "0 3 * * *")
	check(t, "ha", c.HA, config.HA{Mode: config.HAModeNone, LeaseTTL: config.Duration(config.DefaultLeaseTTL), ClockSkew: config.Duration(config.DefaultClockSkew)})
	check(t, "ha.Enabled", c.HA.Enabled(), false)
	check(t, "watch", c.Watch, config.Watch{})
}

func TestValidHA(t *testing.T) {
	defer config.SetHostname(func() (string, error) { return "web-1", nil })()
	c := load(t, "testdata/valid-ha.yaml", env(nil))
	check(t, "ha", c.HA, config.HA{
		Mode: "vault", Mount: "secret", Path: "rotator/leases", Identity: "web-1",
		LeaseTTL: config.Duration(60 * time.Second), ClockSkew: config.Duration(config.DefaultClockSkew),
	})
	check(t, "ha.Enabled", c.HA.Enabled(), true)
	check(t, "watch", c.Watch, config.Watch{Interval: config.Duration(time.Second)})
}

func TestHAIdentityDefault(t *testing.T) {
	const ha = "\nha: {mode: vault, mount: secret, path: rotator/leases}\n"
	tests := []struct {
		name     string
		yaml     string
		hostname string
		err      error
		want     string
		lookup   bool // whether the host name is looked up
	}{
		{"hostname", minimal + ha, "web-1.dc2", nil, "web-1.dc2", true},
		{"hostname fails", minimal + ha, "", errors.New("no"), "rotator", true},
		{"hostname empty", minimal + ha, "", nil, "rotator", true},
		{"hostname made valid", minimal + ha, "my host#1", nil, "my-host-1", true},
		{"hostname cut to 64", minimal + ha, strings.Repeat("h", 70), nil, strings.Repeat("h", 64), true},
		{"identity given", minimal + "\nha: {mode: vault, mount: secret, path: p, identity: me}\n", "web-1", nil, "me", false},
		{"mode none", minimal + "\nha: {mount: secret}\n", "web-1", nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lookups := 0
			defer config.SetHostname(func() (string, error) { lookups++; return tt.hostname, tt.err })()
			c, err := config.Parse([]byte(tt.yaml), env(nil))
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(env(nil)); err != nil {
				t.Fatalf("got %v, want no problem", err)
			}
			check(t, "ha.identity", c.HA.Identity, tt.want)
			c.ApplyDefaults(env(nil)) // idempotent
			check(t, "ha.identity after ApplyDefaults again", c.HA.Identity, tt.want)
			check(t, "host name looked up", lookups > 0, tt.lookup)
		})
	}
	t.Run("the real host name", func(t *testing.T) {
		c, err := config.Parse([]byte(minimal+ha), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		if c.HA.Identity == "" {
			t.Error("ha.identity: got \"\", want the host name or \"rotator\"")
		}
		if err := c.Validate(env(nil)); err != nil {
			t.Errorf("got %v, want no problem", err)
		}
	})
}

func TestHADefaultsInCode(t *testing.T) {
	defer config.SetHostname(func() (string, error) { return "h", nil })()
	c := &config.Config{}
	c.ApplyDefaults(nil)
	check(t, "ha", c.HA, config.HA{Mode: "none", LeaseTTL: config.Duration(60 * time.Second), ClockSkew: config.Duration(config.DefaultClockSkew)})
	c = &config.Config{HA: config.HA{Mode: "vault", LeaseTTL: config.Duration(time.Second)}}
	c.ApplyDefaults(nil)
	check(t, "ha", c.HA, config.HA{Mode: "vault", Identity: "h", LeaseTTL: config.Duration(time.Second), ClockSkew: config.Duration(config.DefaultClockSkew)})
	check(t, "constants", []any{config.HAModeNone, config.HAModeVault, config.DefaultLeaseTTL, config.MinLeaseTTL, config.MinWatchInterval},
		[]any{"none", "vault", 60 * time.Second, 5 * time.Second, time.Second})
	check(t, "Enabled of the zero HA", config.HA{}.Enabled(), false)
}

func TestValidApprole(t *testing.T) {
	c := load(t, "testdata/valid-approle.yaml", env(nil))
	check(t, "vault.auth", c.Vault.Auth, config.VaultAuth{
		Method: "approle", Mount: "approle-rotator", RoleID: "5f1e-role", SecretIDFile: "/run/secrets/secret-id",
	})
	check(t, "hood.token", c.Hood.Token, config.Token{Env: "HOOD_TOKEN"})
}

func TestValidKubernetes(t *testing.T) {
	c := load(t, "testdata/valid-kubernetes.yaml", env(map[string]string{"VAULT_ADDR": "https://vault.svc:8200"}))
	check(t, "vault.address", c.Vault.Address, "https://vault.svc:8200")
	check(t, "vault.auth", c.Vault.Auth, config.VaultAuth{
		Method: "kubernetes", Mount: "kubernetes", Role: "rotator",
		JWTFile: "/var/run/secrets/kubernetes.io/serviceaccount/token",
	})
	check(t, "hood.token", c.Hood.Token, config.Token{Vault: &config.SecretRef{Mount: "secret", Path: "rotator/hood", Key: "token", KVVersion: 2}})
}

func TestValidApproleDefaultMount(t *testing.T) {
	c, err := config.Parse([]byte(`
vault: {address: "http://v:8200", auth: {method: approle, role_id: r, secret_id_file: /f}}
hood: {token: {env: T}}
integrations: [{name: a, id: "1", provider: telegram, source: {mount: s, path: p}}]
`), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(env(nil)); err != nil {
		t.Fatalf("got %v, want no problem", err)
	}
	check(t, "vault.auth.mount", c.Vault.Auth.Mount, "approle")
	check(t, "vault.auth.jwt_file", c.Vault.Auth.JWTFile, "")
}

// minimal is a valid configuration to which tests add one setting.
const minimal = `
vault: {address: "http://127.0.0.1:8200", auth: {token_file: /t}}
hood: {token: {env: HOOD_TOKEN}}
integrations:
  - name: tg
    id: "1"
    provider: telegram
    source: {mount: secret, path: tg}
`

func TestExpansion(t *testing.T) {
	getenv := env(map[string]string{
		"ADDR":   "https://vault.example:8200",
		"MOUNT":  "kv",
		"KV":     "1",
		"DOLLAR": "${MOUNT}",                  // not expanded again
		"EVIL":   "x\n  evil: x\nbad: [1, 2]", // would be structure if pasted as text
		"COLON":  "a: b",
		"TOUT":   "30s",
		"TRUE":   "true",
		"NUL":    "null",
	})
	tests := []struct {
		name string
		yaml string
		get  func(*config.Config) any
		want any
	}{
		{"whole value", "vault:\n  address: ${ADDR}\n", func(c *config.Config) any { return c.Vault.Address }, "https://vault.example:8200"},
		{"inside a value", "state:\n  path: /data/${MOUNT}/state.db\n", func(c *config.Config) any { return c.State.Path }, "/data/kv/state.db"},
		{"twice", "state:\n  path: ${MOUNT}-${MOUNT}\n", func(c *config.Config) any { return c.State.Path }, "kv-kv"},
		{"quoted", "state:\n  path: \"${MOUNT}\"\n", func(c *config.Config) any { return c.State.Path }, "kv"},
		{"not recursive", "state:\n  path: ${DOLLAR}\n", func(c *config.Config) any { return c.State.Path }, "${MOUNT}"},
		{"escape", "state:\n  path: $${MOUNT}\n", func(c *config.Config) any { return c.State.Path }, "${MOUNT}"},
		{"escape then var", "state:\n  path: $${MOUNT}${MOUNT}\n", func(c *config.Config) any { return c.State.Path }, "${MOUNT}kv"},
		{"no braces", "state:\n  path: $MOUNT/x\n", func(c *config.Config) any { return c.State.Path }, "$MOUNT/x"},
		{"lone dollar", "state:\n  path: a$$b$\n", func(c *config.Config) any { return c.State.Path }, "a$$b$"},
		{"no injection", "state:\n  path: ${EVIL}\n", func(c *config.Config) any { return c.State.Path }, "x\n  evil: x\nbad: [1, 2]"},
		{"no injection, quoted in a flow mapping", `state: {path: "${EVIL}"}`, func(c *config.Config) any { return c.State.Path }, "x\n  evil: x\nbad: [1, 2]"},
		{"colon stays text", "state:\n  path: ${COLON}\n", func(c *config.Config) any { return c.State.Path }, "a: b"},
		{"null stays text", "state:\n  path: ${NUL}\n", func(c *config.Config) any { return c.State.Path }, "null"},
		{"into an int", "integrations:\n  - source:\n      kv_version: ${KV}\n",
			func(c *config.Config) any { return c.Integrations[0].Source.KVVersion }, 1},
		{"into a bool", "hood:\n  allow_insecure_http: ${TRUE}\n", func(c *config.Config) any { return c.Hood.AllowInsecureHTTP }, true},
		{"into a duration", "hood:\n  timeout: ${TOUT}\n", func(c *config.Config) any { return c.Hood.Timeout.D() }, 30 * time.Second},
		{"keys are not expanded", "integrations:\n  - static:\n      ${MOUNT}: v\n",
			func(c *config.Config) any { return c.Integrations[0].Static }, map[string]string{"${MOUNT}": "v"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse([]byte(tt.yaml), getenv)
			if err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			if got := tt.get(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestExpansionProblems(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"unset", "state:\n  path: ${NOPE}\n", []string{"state.path (line 2): environment variable NOPE is not set or empty"}},
		{"two unset", "state:\n  path: ${A}/${B}\n", []string{
			"state.path (line 2): environment variable A is not set or empty",
			"state.path (line 2): environment variable B is not set or empty",
		}},
		{"unclosed", "state: {path: \"${NOPE\"}", []string{`state.path (line 1): malformed "${NOPE": missing closing "}" (write $${ for a literal ${)`}},
		{"empty name", "state: {path: \"${}\"}", []string{`state.path (line 1): malformed "${}": "" is not a variable name (letters, digits and _, not starting with a digit)`}},
		{"bad name", "state: {path: \"${A-B}\"}", []string{`state.path (line 1): malformed "${A-B}": "A-B" is not a variable name (letters, digits and _, not starting with a digit)`}},
		{"in a list", "integrations:\n  - name: ${NOPE}\n", []string{"integrations[0].name (line 2): environment variable NOPE is not set or empty"}},
		{"in a map", "integrations:\n  - fields:\n      api_key: ${NOPE}\n", []string{"integrations[0].fields.api_key (line 3): environment variable NOPE is not set or empty"}},
		{"null is no integer", "hood:\n  max_in_flight: ${NUL}\n", []string{`hood.max_in_flight (line 2): want an integer, got "null"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.yaml), env(map[string]string{"NUL": "null"}))
			var got []string
			for _, p := range problemsOf(t, err) {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"every unknown key", "vault:\n  adress: x\n  auth:\n    metod: token\nhood:\n  rate_limt: {}\n", []string{
			"vault.adress (line 2): unknown key (valid: address, auth, ca_cert, namespace, timeout, tls_skip_verify)",
			"vault.auth.metod (line 4): unknown key (valid: jwt_file, method, mount, role, role_id, secret_id_file, token_file)",
			"hood.rate_limt (line 6): unknown key (valid: allow_insecure_http, base_url, max_in_flight, rate_limit, retry, timeout, token, verify_timeout)",
		}},
		{"maps accept any key", "integrations:\n  - fields: {anything: x}\n    static: {whatever: y}\n", nil},
		{"duplicate key", "schedule: a\nschedule: b\n", []string{"schedule (line 2): duplicate key (first at line 1)"}},
		{"type errors", "hood:\n  timeout: soon\n  max_in_flight: 1.5\n  token: secret-value\n", []string{
			`hood.timeout (line 2): invalid duration "soon": want Go syntax such as 90s, 10m or 1h30m`,
			`hood.max_in_flight (line 3): want an integer, got "1.5"`,
			"hood.token (line 4): want a mapping, got a single value",
		}},
		{"string wanted", "schedule: [a, b]\n", []string{"schedule (line 1): want a single value, got a list"}},
		{"integer as written", "hood:\n  max_in_flight: 1.0\n  rate_limit: {burst: '5'}\n", []string{
			`hood.max_in_flight (line 2): want an integer, got "1.0"`,
			`hood.rate_limit.burst (line 3): want an integer, got "5"`,
		}},
		{"true or false as written", "hood:\n  allow_insecure_http: on\nvault:\n  tls_skip_verify: n\n", []string{
			`hood.allow_insecure_http (line 2): want true or false, got "on"`,
			`vault.tls_skip_verify (line 4): want true or false, got "n"`,
		}},
		{"merge of a list", "hood:\n  <<: [[timeout], {timeout: 1s}]\n", []string{
			"hood (line 1): a merge key (<<) takes a mapping or a list of mappings, got a list",
		}},
		{"complex key", "? [a]\n: b\n", []string{"line 1: a key must be a single value, got a list"}},
		{"odd key", "integrations:\n  - static: {\"a b\": x}\n    \"so.me\": y\n", []string{
			`integrations[0]["so.me"] (line 3): unknown key (valid: fields, id, max_age, name, on_verify_failure, provider, provider_check, schedule, smtp_ca_cert, smtp_host, source, static)`,
		}},
		{"merge keys", "integrations:\n  - &base {name: a, id: '1', provider: telegram, source: {mount: m, path: p}}\n  - {<<: *base, name: b, id: '2', bogus: 1}\n", []string{
			"integrations[1].bogus (line 3): unknown key (valid: fields, id, max_age, name, on_verify_failure, provider, provider_check, schedule, smtp_ca_cert, smtp_host, source, static)",
		}},
		{"alias to nothing of the right shape", "a: &x [1]\n", []string{
			"a (line 1): unknown key (valid: admin, audit, ha, hood, integrations, jitter, provider_api, rotation_records, rotations, schedule, state, timezone, vault, watch)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.yaml), env(nil))
			var got []string
			for _, p := range problemsOf(t, err) {
				got = append(got, p.String())
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestMergeKeys(t *testing.T) {
	c, err := config.Parse([]byte(minimal+`
  - <<: &common {provider: telegram, on_verify_failure: rollback}
    name: tg2
    id: "2"
    source: &src {mount: secret, path: tg2, kv_version: 1}
  - <<: [{name: never}, *common]
    name: tg3
    id: "3"
    source: *src
`), env(nil))
	if err != nil {
		t.Fatalf("got %v, want no error", err)
	}
	if err := c.Validate(env(nil)); err != nil {
		t.Fatalf("got %v, want no problem", err)
	}
	check(t, "integrations[2]", c.Integrations[2], config.Integration{
		Name: "tg3", ID: "3", Provider: "telegram",
		Source:          config.Source{Mount: "secret", Path: "tg2", KVVersion: 1},
		OnVerifyFailure: "rollback",
	})
}

// TestMergeOrder: the entries of a mapping win over those merged in, the
// first mapping listed under a merge key wins, and of two merge keys the
// last.
func TestMergeOrder(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       config.Retry
	}{
		{"own entry wins", "{max_attempts: 2, <<: {max_attempts: 3, initial_backoff: 1s}}",
			config.Retry{MaxAttempts: 2, InitialBackoff: config.Duration(time.Second)}},
		{"first listed wins", "{<<: [{max_attempts: 2}, {max_attempts: 3, max_backoff: 2s}]}",
			config.Retry{MaxAttempts: 2, MaxBackoff: config.Duration(2 * time.Second)}},
		{"last merge key wins", "{<<: {max_attempts: 2, max_backoff: 2s}, <<: {max_attempts: 3}}",
			config.Retry{MaxAttempts: 3, MaxBackoff: config.Duration(2 * time.Second)}},
		{"nested merge", "{<<: {max_attempts: 2, <<: {max_attempts: 3, max_backoff: 2s}}}",
			config.Retry{MaxAttempts: 2, MaxBackoff: config.Duration(2 * time.Second)}},
		// A null own entry wins over the merged 3, and counts as not set: the default applies.
		{"null own entry", "{max_attempts: ~, <<: {max_attempts: 3}}", config.Retry{MaxAttempts: config.DefaultMaxAttempts}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse([]byte("hood:\n  retry: "+tt.yaml+"\n"), env(nil))
			if err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			got := c.Hood.Retry
			// Compare only what the file set: the rest holds defaults.
			if tt.want.InitialBackoff == 0 {
				got.InitialBackoff = 0
			}
			if tt.want.MaxBackoff == 0 {
				got.MaxBackoff = 0
			}
			if tt.want.MaxAttempts == 0 {
				got.MaxAttempts = 0
			}
			check(t, "hood.retry", got, tt.want)
		})
	}
}

func TestAliasBomb(t *testing.T) {
	// Each anchor merges the previous one ten times: 10^20 merges unbounded.
	var b strings.Builder
	b.WriteString("anchors:\n  - &a0 {k: v}\n")
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&b, "  - &a%d {<<: [", i)
		for range 10 {
			fmt.Fprintf(&b, "*a%d, ", i-1)
		}
		b.WriteString("]}\n")
	}
	b.WriteString("integrations:\n  - fields: *a20\n    static: {<<: *a20}\n")
	done := make(chan error, 1)
	go func() {
		_, err := config.Parse([]byte(b.String()), env(nil))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "too large once its aliases are expanded") {
			t.Errorf("got %v, want a problem about alias expansion", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Parse did not return: alias expansion is unbounded")
	}
}

func TestValidateProblemsSorted(t *testing.T) {
	c, err := config.Parse([]byte(`
schedule: bad
hood:
  token: {}
  timeout: 0s
integrations:
  - {name: a, id: x, provider: nope, source: {mount: m, path: p}}
  - {name: a, id: "1", provider: telegram, source: {mount: m, path: /p}, static: {auth_token: t}}
`), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range problemsOf(t, c.Validate(env(nil))) {
		got = append(got, p.String())
	}
	want := []string{
		"vault.address: required: set it here or in $VAULT_ADDR",
		"vault.auth.token_file: required for method token when $VAULT_TOKEN is not set",
		`schedule (line 2): invalid schedule "bad": expected exactly 5 fields, found 1: [bad] (want 5 cron fields such as "0 3 * * *", or @hourly, @daily, @every 90s)`,
		"hood.token (line 4): set exactly one of vault or env",
		"hood.timeout (line 5): must be greater than 0, got 0s",
		`integrations[0].id (line 7): must be decimal digits, got "x"`,
		`integrations[0].provider (line 7): unknown provider "nope" (valid: custom_email_provider, mailgun_email, mandrill_email, mitto_sms, sendgrid_email, telegram, twilio_sms)`,
		`integrations[1].name (line 8): duplicate name "a" (first at integrations[0])`,
		`integrations[1].source.path (line 8): must not start or end with "/"`,
		"integrations[1].static.auth_token (line 8): auth_token is a secret setting of provider telegram: a secret setting must come from Vault (map it under fields)",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func TestValidateInCode(t *testing.T) {
	c := &config.Config{
		Vault: config.Vault{Address: "http://v:8200", Auth: config.VaultAuth{TokenFile: "/t"}},
		Hood:  config.Hood{Token: config.Token{Env: "T"}},
		Integrations: []config.Integration{{
			Name: "a", ID: "1", Provider: "mitto_sms",
			Source: config.Source{Mount: "m", Path: "p"},
			Static: map[string]string{"sender_name": "ACME"},
		}},
	}
	if err := c.Validate(env(nil)); err == nil {
		t.Fatal("got no error before ApplyDefaults, want problems (zero timeout, ...)")
	}
	c.ApplyDefaults(env(nil))
	if err := c.Validate(env(nil)); err != nil {
		t.Fatalf("got %v after ApplyDefaults, want no problem", err)
	}
	check(t, "Line without a file", c.Line("hood.timeout"), 0)
}

func TestValidateTokenFromEnv(t *testing.T) {
	c, err := config.Parse([]byte(minimal), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	c.Vault.Auth.TokenFile = ""
	if err := c.Validate(env(nil)); err == nil {
		t.Error("got no error without token_file and $VAULT_TOKEN, want one")
	}
	if err := c.Validate(env(map[string]string{"VAULT_TOKEN": "s.x"})); err != nil {
		t.Errorf("got %v with $VAULT_TOKEN set, want no problem", err)
	}
}

func TestValidateValues(t *testing.T) {
	tests := []struct {
		name string
		edit func(*config.Config)
		want string // "" = valid
	}{
		{"http allowed", func(c *config.Config) { c.Hood.BaseURL = "http://hood:8080"; c.Hood.AllowInsecureHTTP = true }, ""},
		{"base url with path", func(c *config.Config) { c.Hood.BaseURL = "https://h/api/" }, ""},
		{"base url fragment", func(c *config.Config) { c.Hood.BaseURL = "https://h/#x" }, "hood.base_url: must not have a query or fragment"},
		{"base url ftp", func(c *config.Config) { c.Hood.BaseURL = "ftp://h" }, `hood.base_url: scheme must be https, got "ftp"`},
		{"base url credentials", func(c *config.Config) { c.Hood.BaseURL = "https://u:p@h" }, "hood.base_url: must not hold credentials (the API token is set in hood.token)"},
		{"cron descriptor", func(c *config.Config) { c.Schedule = "@daily" }, ""},
		{"cron every", func(c *config.Config) { c.Schedule = "@every 90s" }, ""},
		{"cron TZ without schedule", func(c *config.Config) { c.Schedule = "TZ=UTC" }, `schedule: invalid schedule "TZ=UTC": a TZ= prefix must be followed by a space and a schedule (want 5 cron fields such as "0 3 * * *", or @hourly, @daily, @every 90s)`},
		{"cron six fields", func(c *config.Config) { c.Schedule = "0 0 3 * * *" }, `schedule: invalid schedule "0 0 3 * * *": expected exactly 5 fields, found 6: [0 0 3 * * *] (want 5 cron fields such as "0 3 * * *", or @hourly, @daily, @every 90s)`},
		{"listen port 0", func(c *config.Config) { c.Admin.Listen = "127.0.0.1:0" }, ""},
		{"listen bad port", func(c *config.Config) { c.Admin.Listen = "127.0.0.1:http" }, `admin.listen: want host:port such as 127.0.0.1:9464: port "http" is not a number from 0 to 65535`},
		{"burst equals per_minute", func(c *config.Config) { c.Hood.RateLimit = config.RateLimit{Burst: 3, PerMinute: 3} }, ""},
		{"max_in_flight 65", func(c *config.Config) { c.Hood.MaxInFlight = 65 }, "hood.max_in_flight: must be between 1 and 64, got 65"},
		{"id 20 digits", func(c *config.Config) { c.Integrations[0].ID = "12345678901234567890" }, ""},
		{"id non-ASCII digits", func(c *config.Config) { c.Integrations[0].ID = "١٢" }, `integrations[0].id: must be decimal digits, got "١٢"`},
		{"mount trailing slash", func(c *config.Config) { c.Integrations[0].Source.Mount = "secret/" }, `integrations[0].source.mount: must not start or end with "/"`},
		{"path double slash", func(c *config.Config) { c.Integrations[0].Source.Path = "a//b" }, `integrations[0].source.path: must not contain an empty segment ("//")`},
		{"kubernetes param with token", func(c *config.Config) { c.Vault.Auth.JWTFile = "/jwt" }, "vault.auth.jwt_file: only used by method kubernetes"},
		{"approle with role", func(c *config.Config) {
			c.Vault.Auth = config.VaultAuth{Method: "approle", Mount: "approle", RoleID: "r", SecretIDFile: "/s", Role: "x"}
		}, "vault.auth.role: only used by method kubernetes"},
		{"token mount", func(c *config.Config) { c.Vault.Auth.Mount = "approle" }, "vault.auth.mount: only used by method approle or kubernetes"},
		{"empty static value allowed", func(c *config.Config) {
			c.Integrations[0].Static = map[string]string{"chat_id": ""}
		}, ""},
		{"ha none ignores the rest", func(c *config.Config) {
			c.HA = config.HA{Mode: "none", Mount: "/x/", Path: "a//b", Identity: "#", LeaseTTL: -1}
		}, ""},
		{"ha mode empty", func(c *config.Config) { c.HA.Mode = "" }, `ha.mode: must be none or vault, got ""`},
		{"ha mode case", func(c *config.Config) { c.HA.Mode = "Vault" }, `ha.mode: must be none or vault, got "Vault"`},
		{"ha vault", func(c *config.Config) { c.HA = vaultHA() }, ""},
		{"ha mount empty segment", func(c *config.Config) { c.HA = vaultHA(); c.HA.Mount = "a//b" }, `ha.mount: must not contain an empty segment ("//")`},
		{"ha path leading slash", func(c *config.Config) { c.HA = vaultHA(); c.HA.Path = "/rotator" }, `ha.path: must not start or end with "/"`},
		{"ha path dotdot", func(c *config.Config) { c.HA = vaultHA(); c.HA.Path = "a/../b" }, `ha.path: must not contain a ".." segment`},
		{"ha identity 64", func(c *config.Config) { c.HA = vaultHA(); c.HA.Identity = strings.Repeat("a", 64) }, ""},
		{"ha identity empty", func(c *config.Config) { c.HA = vaultHA(); c.HA.Identity = "" },
			`ha.identity: must be 1 to 64 letters, digits, '-', '_' or '.' (a "#<random>" suffix is added to it), got ""`},
		{"ha identity slash", func(c *config.Config) { c.HA = vaultHA(); c.HA.Identity = "a/b" },
			`ha.identity: must be 1 to 64 letters, digits, '-', '_' or '.' (a "#<random>" suffix is added to it), got "a/b"`},
		{"ha lease_ttl negative", func(c *config.Config) { c.HA = vaultHA(); c.HA.LeaseTTL = config.Duration(-time.Second) }, "ha.lease_ttl: must be at least 5s, got -1s"},
		{"ha lease_ttl equal to the push", func(c *config.Config) { c.HA = vaultHA(); c.HA.LeaseTTL = config.Duration(40 * time.Second) },
			"ha.lease_ttl: must exceed hood.timeout + hood.verify_timeout (40s), got 40s"},
		{"ha lease_ttl just above the push", func(c *config.Config) { c.HA = vaultHA(); c.HA.LeaseTTL = config.Duration(41 * time.Second) }, ""},
		{"ha lease_ttl and hood timeouts", func(c *config.Config) {
			c.HA = vaultHA()
			c.Hood.Timeout = config.Duration(time.Minute)
			c.Hood.VerifyTimeout = config.Duration(2 * time.Minute)
		}, "ha.lease_ttl: must exceed hood.timeout + hood.verify_timeout (3m0s), got 1m0s"},
		{"ha lease_ttl with a huge hood.timeout", func(c *config.Config) {
			c.HA = vaultHA()
			c.Hood.Timeout = config.Duration(math.MaxInt64)
		}, "ha.lease_ttl: must exceed hood.timeout + hood.verify_timeout (2562047h47m16.854775807s), got 1m0s"},
		{"watch 1s", func(c *config.Config) { c.Watch.Interval = config.Duration(time.Second) }, ""},
		{"watch 999ms", func(c *config.Config) { c.Watch.Interval = config.Duration(999 * time.Millisecond) }, "watch.interval: must be 0 (off) or at least 1s, got 999ms"},
		{"watch negative", func(c *config.Config) { c.Watch.Interval = config.Duration(-time.Second) }, "watch.interval: must be 0 (off) or at least 1s, got -1s"},
		{"watch without KV v2", func(c *config.Config) {
			c.Watch.Interval = config.Duration(time.Minute)
			c.Integrations[0].Source.KVVersion = 1
		}, "watch.interval: no integration reads a KV v2 secret: nothing to watch"},
		{"watch off without KV v2", func(c *config.Config) { c.Integrations[0].Source.KVVersion = 1 }, ""},
		{"watch without integrations", func(c *config.Config) {
			c.Watch.Interval = config.Duration(time.Minute)
			c.Integrations = nil
		}, "integrations: at least one integration is required"},
		{"unknown provider: one problem only", func(c *config.Config) {
			c.Integrations[0].Provider = "slack"
			c.Integrations[0].Fields = map[string]string{"a": "b", "c": "d"}
			c.Integrations[0].Static = map[string]string{"e": "f"}
		}, `integrations[0].provider: unknown provider "slack" (valid: custom_email_provider, mailgun_email, mandrill_email, mitto_sms, sendgrid_email, telegram, twilio_sms)`},
		{"smtp check", smtpCheck("smtp.example.com", "/etc/rotator/smtp-ca.pem"), ""},
		{"smtp check, IP address, system roots", smtpCheck("192.0.2.25", ""), ""},
		{"smtp check, IPv6 address", smtpCheck("2001:db8::25", ""), ""},
		{"smtp check, port from the secret", func(c *config.Config) {
			smtpCheck("smtp.example.com", "")(c)
			c.Integrations[0].Static = nil
		}, ""},
		{"smtp check, static port 0", func(c *config.Config) {
			smtpCheck("smtp.example.com", "")(c)
			c.Integrations[0].Static["port"] = "0"
		}, `integrations[0].static.port: must be a port number from 1 to 65535 for the SMTP check, got "0"`},
		{"smtp host in brackets", smtpCheck("[2001:db8::25]", ""), `integrations[0].smtp_host: write an IPv6 address without brackets, such as ::1, got "[2001:db8::25]"`},
		{"smtp host with a path", smtpCheck("smtp.example.com/x", ""), `integrations[0].smtp_host: must be a host name (letters, digits, '-' and '.') or an IP address, such as smtp.example.com, got "smtp.example.com/x"`},
		{"state over smtp_ca_cert", func(c *config.Config) {
			smtpCheck("smtp.example.com", "/etc/rotator/smtp-ca.pem")(c)
			c.State.Path = "/etc/rotator/smtp-ca.pem"
		}, "state.path: /etc/rotator/smtp-ca.pem is also the file of integrations[0].smtp_ca_cert: rotator would write over a file it reads"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse([]byte(minimal), env(nil))
			if err != nil {
				t.Fatal(err)
			}
			tt.edit(c)
			c.Vault.Auth.Method = cmpOr(c.Vault.Auth.Method, "token")
			var got []string
			for _, p := range problemsOf(t, c.Validate(env(nil))) {
				got = append(got, p.String())
			}
			var want []string
			if tt.want != "" {
				want = []string{tt.want}
			}
			// Problems of settings changed in code have no line.
			for i := range got {
				got[i] = stripLine(got[i])
			}
			if !slices.Equal(got, want) {
				t.Errorf("got %q, want %q", got, want)
			}
		})
	}
}

// smtpCheck makes integrations[0] a custom_email_provider with
// provider_check on the mail server host, its CA in caCert.
func smtpCheck(host, caCert string) func(*config.Config) {
	return func(c *config.Config) {
		in := &c.Integrations[0]
		in.Provider, in.ProviderCheck, in.SMTPHost, in.SMTPCACert = "custom_email_provider", true, host, caCert
		in.Static = map[string]string{"port": "587"}
	}
}

// vaultHA is a valid ha section with mode vault, defaults applied.
func vaultHA() config.HA {
	return config.HA{Mode: "vault", Mount: "secret", Path: "rotator/leases", Identity: "web-1", LeaseTTL: config.Duration(time.Minute)}
}

// stripLine removes " (line N)" from a problem string.
func stripLine(s string) string {
	path, rest, ok := strings.Cut(s, " (line ")
	if !ok {
		return s
	}
	_, msg, ok := strings.Cut(rest, "): ")
	if !ok {
		return s
	}
	return path + ": " + msg
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    config.Problem
		want string
	}{
		{config.Problem{Path: "integrations[2].fields.api_kye", Line: 14, Message: "not a setting"}, "integrations[2].fields.api_kye (line 14): not a setting"},
		{config.Problem{Path: "vault.address", Message: "required"}, "vault.address: required"},
		{config.Problem{Message: "alone"}, "alone"},
		{config.Problem{Line: 3, Message: "top level"}, "line 3: top level"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
	err := &config.ValidationError{Problems: []config.Problem{tests[0].p, tests[1].p}}
	if got, want := err.Error(), tests[0].want+"\n"+tests[1].want; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		yaml    string
		want    time.Duration
		wantErr string
	}{
		{"jitter: 90s", 90 * time.Second, ""},
		{"jitter: 1h30m", 90 * time.Minute, ""},
		{"jitter: '10m'", 10 * time.Minute, ""},
		{"jitter: 0", 0, ""},
		{"jitter: 10", 0, `jitter (line 1): invalid duration "10": want Go syntax such as 90s, 10m or 1h30m`},
		{"jitter: 10 minutes", 0, `jitter (line 1): invalid duration "10 minutes": want Go syntax such as 90s, 10m or 1h30m`},
		{"jitter: [1s]", 0, "jitter (line 1): want a duration such as 90s or 10m, got a list"},
	}
	for _, tt := range tests {
		t.Run(tt.yaml, func(t *testing.T) {
			c, err := config.Parse([]byte(tt.yaml), env(nil))
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("got error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want no error", err)
			}
			if c.Jitter.D() != tt.want {
				t.Errorf("got %v, want %v", c.Jitter.D(), tt.want)
			}
		})
	}
	if got := config.Duration(90 * time.Second).String(); got != "1m30s" {
		t.Errorf("String: got %q, want %q", got, "1m30s")
	}
}

func TestDefaultsDoNotContradict(t *testing.T) {
	c, err := config.Parse([]byte(`
vault: {address: "http://127.0.0.1:8200", auth: {token_file: /t}}
hood:
  token: {env: HOOD_TOKEN}
  rate_limit: {per_minute: 5}
  retry: {max_backoff: 100ms}
integrations: [{name: tg, id: "1", provider: telegram, source: {mount: secret, path: tg}}]
`), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(env(nil)); err != nil {
		t.Fatalf("got %v, want no problem", err)
	}
	check(t, "rate_limit", c.Hood.RateLimit, config.RateLimit{Burst: 5, PerMinute: 5})
	check(t, "retry.initial_backoff", c.Hood.Retry.InitialBackoff.D(), 100*time.Millisecond)
}

func TestLocationBeforeValidate(t *testing.T) {
	c := &config.Config{Timezone: "America/New_York"}
	check(t, "Location", c.Location().String(), "America/New_York")
	c = &config.Config{Timezone: "Nowhere/Land"}
	check(t, "Location of a bad zone", c.Location(), time.UTC)
}

func TestSourceKey(t *testing.T) {
	a := config.Source{Mount: "secret", Path: "a/b", KVVersion: 2}
	tests := []struct {
		name string
		b    config.Source
		same bool
	}{
		{"equal", config.Source{Mount: "secret", Path: "a/b", KVVersion: 2}, true},
		{"default version", config.Source{Mount: "secret", Path: "a/b"}, true},
		{"slashes", config.Source{Mount: "/secret/", Path: "a/b/", KVVersion: 2}, true},
		{"other version", config.Source{Mount: "secret", Path: "a/b", KVVersion: 1}, false},
		{"other path", config.Source{Mount: "secret", Path: "a/c", KVVersion: 2}, false},
		{"split differently", config.Source{Mount: "secret/a", Path: "b", KVVersion: 2}, false},
	}
	for _, tt := range tests {
		if got := a.Key() == tt.b.Key(); got != tt.same {
			t.Errorf("%s: %s == %s: got %v, want %v", tt.name, a.Key(), tt.b.Key(), got, tt.same)
		}
	}
	ref := config.SecretRef{Mount: "secret", Path: "a/b", Key: "token"}
	if ref.Source().Key() != a.Key() {
		t.Errorf("SecretRef.Source().Key(): got %s, want %s", ref.Source().Key(), a.Key())
	}
}

func TestEffectiveSchedule(t *testing.T) {
	check(t, "own", config.Integration{Schedule: "@hourly"}.EffectiveSchedule("0 3 * * *"), "@hourly")
	check(t, "global", config.Integration{}.EffectiveSchedule("0 3 * * *"), "0 3 * * *")
}

// TestTLSSkipVerify: only the file turns certificate checks off, an
// environment variable only when the file names it, and never together
// with a CA, whether the file or $VAULT_CACERT sets it.
func TestTLSSkipVerify(t *testing.T) {
	const head = "vault:\n  address: https://vault.example.com:8200\n  tls_skip_verify: %s\n  auth: {method: token, token_file: /run/t}\n" +
		"hood: {token: {env: HOOD_TOKEN}}\nintegrations: [{name: a, id: \"1\", provider: telegram, source: {mount: s, path: p}}]\n"
	tests := []struct {
		name, value string
		env         map[string]string
		want        bool
		wantErr     string
	}{
		{"default false", "false", nil, false, ""},
		{"true", "true", nil, true, ""},
		{"$VAULT_SKIP_VERIFY alone is ignored", "false", map[string]string{"VAULT_SKIP_VERIFY": "true"}, false, ""},
		{"the file opts in to $VAULT_SKIP_VERIFY", "${VAULT_SKIP_VERIFY}", map[string]string{"VAULT_SKIP_VERIFY": "true"}, true, ""},
		{"with $VAULT_CACERT", "true", map[string]string{"VAULT_CACERT": "/etc/ca.pem"}, true,
			"vault.tls_skip_verify (line 3): refused together with vault.ca_cert, which $VAULT_CACERT sets: a CA to check the certificate against and no check contradict each other; unset VAULT_CACERT or drop tls_skip_verify"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "c.yaml")
			if err := os.WriteFile(path, []byte(fmt.Sprintf(head, tt.value)), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := config.LoadAndValidate(path, env(tt.env))
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if gotErr != tt.wantErr {
				t.Fatalf("error: got %q, want %q", gotErr, tt.wantErr)
			}
			if c.Vault.TLSSkipVerify != tt.want {
				t.Errorf("TLSSkipVerify: got %v, want %v", c.Vault.TLSSkipVerify, tt.want)
			}
		})
	}
}

// TestStringTakesAnyScalarText: a string setting takes a single value's
// text whatever its tag, and a refused one is never quoted back (it may be
// a secret from the environment).
func TestStringTakesAnyScalarText(t *testing.T) {
	const secretText = "s3cr3t-role-id-value"
	for _, tag := range []string{"!!int", "!!bool", "!!binary", "!!str"} {
		t.Run(tag, func(t *testing.T) {
			src := "vault:\n  auth:\n    method: approle\n    role_id: " + tag + " ${ROLE}\n    secret_id_file: /x\n"
			c, err := config.Parse([]byte(src), env(map[string]string{"ROLE": secretText}))
			if err != nil {
				if strings.Contains(err.Error(), secretText) {
					t.Fatalf("the error quotes the value")
				}
				t.Fatalf("got %v, want no error", err)
			}
			if got := c.Vault.Auth.RoleID; got != secretText {
				t.Errorf("role_id: got a value of %d bytes, want the variable's text", len(got))
			}
		})
	}
}
