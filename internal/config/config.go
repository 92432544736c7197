// Package config loads rotator's YAML configuration: ${VAR} expansion,
// defaults, strict decoding (unknown keys are errors) and Validate, which
// reports every problem with its YAML path and line.
package config

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// Config is the whole configuration file. See docs/reference.md and config.example.yaml.
type Config struct {
	Vault        Vault         `yaml:"vault"`
	Hood         Hood          `yaml:"hood"`
	Schedule     string        `yaml:"schedule"`
	Timezone     string        `yaml:"timezone"`
	Jitter       Duration      `yaml:"jitter"`
	Admin        Admin         `yaml:"admin"`
	State        State         `yaml:"state"`
	Audit        Audit         `yaml:"audit"`
	Integrations []Integration `yaml:"integrations"`
	HA           HA            `yaml:"ha"`
	Watch        Watch         `yaml:"watch"`
	// ProviderAPI maps a Hood provider name (sendgrid_email, mailgun_email,
	// twilio_sms, telegram, mandrill_email) to the base URL of the
	// provider's API that integrations with provider_check ask; a provider
	// left out uses its client's public URL (EU regions, tests).
	// custom_email_provider has no API: its mail server is
	// integrations[].smtp_host.
	ProviderAPI map[string]string `yaml:"provider_api"`
	// Rotations are the credentials rotator mints at their provider
	// (docs/rotation.md); RotationRecords is where their step records live.
	Rotations       []Rotation      `yaml:"rotations"`
	RotationRecords RotationRecords `yaml:"rotation_records"`

	// lines maps a YAML path ("integrations[2].fields.api_kye") to its line
	// in the file it was loaded from; filled by Load, used by Validate.
	lines map[string]int
	// given holds the paths the file set to a non-null value: a number or
	// duration written as 0 is validated, not replaced by its default.
	given map[string]bool
	// loc is the parsed Timezone, set by Validate.
	loc *time.Location
}

// Vault is how rotator reaches and logs in to Vault.
type Vault struct {
	Address   string    `yaml:"address"`   // default $VAULT_ADDR
	Namespace string    `yaml:"namespace"` // default $VAULT_NAMESPACE
	CACert    string    `yaml:"ca_cert"`   // default $VAULT_CACERT
	Auth      VaultAuth `yaml:"auth"`
	// Timeout bounds one Vault request.
	Timeout Duration `yaml:"timeout"`
	// TLSSkipVerify turns off the check of Vault's TLS certificate. Only
	// the file sets it: $VAULT_SKIP_VERIFY is ignored. Refused together
	// with CACert.
	TLSSkipVerify bool `yaml:"tls_skip_verify"`
}

// VaultAuth selects and parameterises the Vault login method.
type VaultAuth struct {
	Method       string `yaml:"method"`         // token | approle | kubernetes
	TokenFile    string `yaml:"token_file"`     // token; default $VAULT_TOKEN
	Mount        string `yaml:"mount"`          // approle/kubernetes; default "approle" / "kubernetes"
	RoleID       string `yaml:"role_id"`        // approle
	SecretIDFile string `yaml:"secret_id_file"` // approle
	Role         string `yaml:"role"`           // kubernetes
	JWTFile      string `yaml:"jwt_file"`       // kubernetes
}

// Hood is how rotator reaches the Hood API.
type Hood struct {
	BaseURL           string    `yaml:"base_url"`
	AllowInsecureHTTP bool      `yaml:"allow_insecure_http"`
	Token             Token     `yaml:"token"`
	Timeout           Duration  `yaml:"timeout"`
	RateLimit         RateLimit `yaml:"rate_limit"`
	Retry             Retry     `yaml:"retry"`
	MaxInFlight       int       `yaml:"max_in_flight"` // integrations pushed at once
	// VerifyTimeout bounds how long a push's verification waits for Hood's
	// credentials test to finish.
	VerifyTimeout Duration `yaml:"verify_timeout"`
}

// Token says where the Hood API bearer token comes from: exactly one of Vault or Env.
type Token struct {
	Vault *SecretRef `yaml:"vault"`
	Env   string     `yaml:"env"`
}

// SecretRef names one key of a Vault KV secret.
type SecretRef struct {
	Mount     string `yaml:"mount"`
	Path      string `yaml:"path"`
	Key       string `yaml:"key"`
	KVVersion int    `yaml:"kv_version"` // 1 or 2; default 2
}

// RateLimit is the client-side limit on Hood requests. The defaults are the
// documented limits: 10 requests in any second, 150 in any minute.
type RateLimit struct {
	Burst     int `yaml:"burst"`
	PerMinute int `yaml:"per_minute"`
}

// Retry bounds retries of a Hood request on 429, 5xx and network errors.
type Retry struct {
	MaxAttempts    int      `yaml:"max_attempts"`    // total attempts, including the first
	InitialBackoff Duration `yaml:"initial_backoff"` // doubled on each retry, with jitter
	MaxBackoff     Duration `yaml:"max_backoff"`     // cap of one wait, Retry-After included
}

// Admin is the admin HTTP API.
type Admin struct {
	Listen    string `yaml:"listen"`
	TokenFile string `yaml:"token_file"`
}

// State is the durable per-integration state.
type State struct {
	Path string `yaml:"path"`
}

// Audit is the optional append-only audit log.
type Audit struct {
	Path string `yaml:"path"`
}

// HA is coordination of several rotators through Vault (docs/ha.md).
type HA struct {
	Mode     string   `yaml:"mode"`      // "none" (default) | "vault"
	Mount    string   `yaml:"mount"`     // KV v2 mount of the lease records
	Path     string   `yaml:"path"`      // records at <mount>/<path>/<integration name>
	Identity string   `yaml:"identity"`  // label in lease records; default: the hostname (os.Hostname; "rotator" if that fails)
	LeaseTTL Duration `yaml:"lease_ttl"` // default 60s
	// ClockSkew is the clock skew between rotator hosts that the handover
	// of the fleet's Hood allowance covers: the send times handed over are
	// counted that much later (docs/ha.md, "Rate limits"). Default 1s.
	ClockSkew Duration `yaml:"clock_skew"`
}

// Enabled reports whether the rotators coordinate through Vault (mode vault).
func (h HA) Enabled() bool { return h.Mode == HAModeVault }

// Watch polls KV v2 metadata between schedules (docs/ha.md).
type Watch struct {
	Interval Duration `yaml:"interval"` // 0: off
}

// Integration is one Hood integration whose settings rotator keeps fresh.
type Integration struct {
	Name            string            `yaml:"name"`
	ID              string            `yaml:"id"`
	Provider        string            `yaml:"provider"`
	Source          Source            `yaml:"source"`
	Fields          map[string]string `yaml:"fields"` // provider setting -> key in the Vault secret
	Static          map[string]string `yaml:"static"` // provider setting -> literal value
	Schedule        string            `yaml:"schedule"`
	OnVerifyFailure string            `yaml:"on_verify_failure"` // keep | rollback
	// ProviderCheck asks the provider whether the credential works before
	// any push; a credential it refuses is never pushed.
	ProviderCheck bool `yaml:"provider_check"`
	// SMTPHost is the host name or IP address of the mail server that the
	// provider check of a custom_email_provider logs in to, without a
	// port (the port is the integration's port setting). Required with
	// provider_check for custom_email_provider, refused otherwise.
	SMTPHost string `yaml:"smtp_host"`
	// SMTPCACert is a PEM file of the CA certificates the mail server's
	// certificate is checked against; empty: the system's roots. Only with
	// SMTPHost.
	SMTPCACert string `yaml:"smtp_ca_cert"`
	// MaxAge is how old the secret's current KV v2 version may grow before
	// the credential is overdue for rotation (0: no limit). It is exported
	// as rotator_credential_max_age_seconds; it changes no pass.
	MaxAge Duration `yaml:"max_age"`
}

// Source is the Vault KV secret an integration's settings come from.
type Source struct {
	Mount     string `yaml:"mount"`
	Path      string `yaml:"path"`
	KVVersion int    `yaml:"kv_version"` // 1 or 2; default 2
}

// CheckSettings are, per provider whose credential can be checked with the
// provider (integrations[].provider_check), the settings the check uses.
// custom_email_provider's check also needs integrations[].smtp_host;
// mitto_sms (no secret) is not here.
var CheckSettings = map[string][]string{
	"custom_email_provider": {"username", "password", "port"},
	"mailgun_email":         {"api_key", "domain"},
	"mandrill_email":        {"api_key"},
	"sendgrid_email":        {"api_key"},
	"telegram":              {"auth_token"},
	"twilio_sms":            {"account_sid", "auth_token"},
}

// Duration is a time.Duration written in Go syntax ("90s", "10m").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Defaults of settings the file leaves out. See ApplyDefaults for the rest
// (the Vault settings default to the VAULT_* environment variables).
const (
	DefaultHoodBaseURL     = "https://api.ocamba.com"
	DefaultHoodTimeout     = 10 * time.Second
	DefaultBurst           = 10  // documented Hood limit: requests per second
	DefaultPerMinute       = 150 // documented Hood limit: requests per minute
	DefaultMaxAttempts     = 4
	DefaultInitialBackoff  = 500 * time.Millisecond
	DefaultMaxBackoff      = 60 * time.Second
	DefaultMaxInFlight     = 4
	DefaultVerifyTimeout   = 30 * time.Second
	DefaultVaultTimeout    = 10 * time.Second
	DefaultSchedule        = "0 3 * * *"
	DefaultTimezone        = "UTC"
	DefaultAdminListen     = "127.0.0.1:9464"
	DefaultStatePath       = "./rotator-state.db"
	DefaultKVVersion       = 2
	DefaultJWTFile         = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	DefaultOnVerifyFailure = "keep"
	// DefaultShutdownTimeout is `rotator run --shutdown-timeout`.
	DefaultShutdownTimeout = 30 * time.Second
)

// Settings of ha and watch (docs/ha.md).
const (
	HAModeNone       = "none"  // one rotator, state in state.path (the default)
	HAModeVault      = "vault" // leases and shared state in Vault KV v2
	DefaultLeaseTTL  = 60 * time.Second
	MinLeaseTTL      = 5 * time.Second
	DefaultClockSkew = time.Second
	MinWatchInterval = time.Second
	// DefaultIdentity is ha.identity when the hostname is unknown.
	DefaultIdentity = "rotator"
	// maxIdentity is the longest ha.identity.
	maxIdentity = 64
)

// hostname returns the name of the host, the default of ha.identity. A
// variable, so that tests control it.
var hostname = os.Hostname

// defaultIdentity is the host name made a valid ha.identity: every
// character other than a letter, a digit, '-', '_' and '.' replaced by '-',
// cut to 64 characters; DefaultIdentity when the host name is unknown.
func defaultIdentity() string {
	name, err := hostname()
	if err != nil || name == "" {
		return DefaultIdentity
	}
	b := []byte(name)
	for i, c := range b {
		if !identityChar(c) {
			b[i] = '-'
		}
	}
	if len(b) > maxIdentity {
		b = b[:maxIdentity]
	}
	return string(b)
}

// identityChar reports whether c may appear in ha.identity.
func identityChar(c byte) bool {
	return c == '-' || c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z'
}

// ApplyDefaults fills in the settings left unset. Parse and Load call it;
// call it on a Config built in code before Validate. Strings default when
// empty. Numbers and durations default when the file did not set them (in a
// Config built in code: when zero); one written as 0 stays 0 and Validate
// refuses it. A default never contradicts a setting the file made: with
// per_minute below 10 and no burst, burst defaults to per_minute, and with
// max_backoff below 500ms and no initial_backoff, initial_backoff defaults
// to max_backoff. With ha.mode vault and no ha.identity, the identity
// defaults to the host name (os.Hostname, made valid; "rotator" when it
// fails): the only default that does not come from getenv or a constant.
// ApplyDefaults is idempotent.
func (c *Config) ApplyDefaults(getenv func(string) string) {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	unset := func(path string, zero bool) bool { return zero && !c.given[path] }
	orEnv := func(s *string, name string) {
		if *s == "" {
			*s = getenv(name)
		}
	}
	or := func(s *string, def string) {
		if *s == "" {
			*s = def
		}
	}

	v := &c.Vault
	orEnv(&v.Address, "VAULT_ADDR")
	orEnv(&v.Namespace, "VAULT_NAMESPACE")
	orEnv(&v.CACert, "VAULT_CACERT")
	or(&v.Auth.Method, "token")
	if unset("vault.timeout", v.Timeout == 0) {
		v.Timeout = Duration(DefaultVaultTimeout)
	}
	switch v.Auth.Method {
	case "approle":
		or(&v.Auth.Mount, "approle")
	case "kubernetes":
		or(&v.Auth.Mount, "kubernetes")
		or(&v.Auth.JWTFile, DefaultJWTFile)
	}

	h := &c.Hood
	or(&h.BaseURL, DefaultHoodBaseURL)
	if unset("hood.timeout", h.Timeout == 0) {
		h.Timeout = Duration(DefaultHoodTimeout)
	}
	if unset("hood.rate_limit.per_minute", h.RateLimit.PerMinute == 0) {
		h.RateLimit.PerMinute = DefaultPerMinute
	}
	if unset("hood.rate_limit.burst", h.RateLimit.Burst == 0) {
		h.RateLimit.Burst = min(DefaultBurst, max(h.RateLimit.PerMinute, 1))
	}
	if unset("hood.retry.max_attempts", h.Retry.MaxAttempts == 0) {
		h.Retry.MaxAttempts = DefaultMaxAttempts
	}
	if unset("hood.retry.max_backoff", h.Retry.MaxBackoff == 0) {
		h.Retry.MaxBackoff = Duration(DefaultMaxBackoff)
	}
	if unset("hood.retry.initial_backoff", h.Retry.InitialBackoff == 0) {
		h.Retry.InitialBackoff = Duration(DefaultInitialBackoff)
		if h.Retry.MaxBackoff > 0 && h.Retry.MaxBackoff < h.Retry.InitialBackoff {
			h.Retry.InitialBackoff = h.Retry.MaxBackoff
		}
	}
	if unset("hood.max_in_flight", h.MaxInFlight == 0) {
		h.MaxInFlight = DefaultMaxInFlight
	}
	if unset("hood.verify_timeout", h.VerifyTimeout == 0) {
		h.VerifyTimeout = Duration(DefaultVerifyTimeout)
	}
	if h.Token.Vault != nil && unset("hood.token.vault.kv_version", h.Token.Vault.KVVersion == 0) {
		h.Token.Vault.KVVersion = DefaultKVVersion
	}

	or(&c.Schedule, DefaultSchedule)
	or(&c.Timezone, DefaultTimezone)
	or(&c.Admin.Listen, DefaultAdminListen)
	or(&c.State.Path, DefaultStatePath)

	for i := range c.Integrations {
		in := &c.Integrations[i]
		if unset(fmt.Sprintf("integrations[%d].source.kv_version", i), in.Source.KVVersion == 0) {
			in.Source.KVVersion = DefaultKVVersion
		}
		or(&in.OnVerifyFailure, DefaultOnVerifyFailure)
	}

	ha := &c.HA
	or(&ha.Mode, HAModeNone)
	defer c.rotationDefaults(unset)
	if unset("ha.lease_ttl", ha.LeaseTTL == 0) {
		ha.LeaseTTL = Duration(DefaultLeaseTTL)
	}
	if unset("ha.clock_skew", ha.ClockSkew == 0) {
		ha.ClockSkew = Duration(DefaultClockSkew)
	}
	if ha.Enabled() && ha.Identity == "" {
		ha.Identity = defaultIdentity()
	}
	// watch.interval defaults to 0: off.
}

// Location returns the time zone of the schedules: the one Validate parsed,
// or else Timezone loaded now, or UTC when it does not load.
func (c *Config) Location() *time.Location {
	if c.loc != nil {
		return c.loc
	}
	if loc, err := time.LoadLocation(c.Timezone); err == nil {
		return loc
	}
	return time.UTC
}

// Line returns the line of the file where the setting at path (such as
// "integrations[2].fields.api_kye") is written, or else the line of its
// nearest enclosing setting that is written, or 0 when none is known (for
// a Config not loaded from a file).
func (c *Config) Line(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := c.lines[p]; ok {
			return l
		}
	}
	return 0
}

// EffectiveSchedule returns the integration's own schedule, or global when
// it has none.
func (i Integration) EffectiveSchedule(global string) string {
	if i.Schedule != "" {
		return i.Schedule
	}
	return global
}

// Key returns a comparable identity of the secret: two Sources with the same
// Key read the same secret. Mount and path are taken without surrounding
// slashes, and a zero KVVersion counts as the default, 2. The key reads
// well in logs: kv2:"secret":"ocamba/twilio-main".
func (s Source) Key() string {
	kv := s.KVVersion
	if kv == 0 {
		kv = DefaultKVVersion
	}
	return fmt.Sprintf("kv%d:%q:%q", kv, strings.Trim(s.Mount, "/"), strings.Trim(s.Path, "/"))
}

// Source returns the secret that r names a key of.
func (r SecretRef) Source() Source {
	return Source{Mount: r.Mount, Path: r.Path, KVVersion: r.KVVersion}
}
