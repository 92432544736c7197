package config

import (
	"regexp"
	"slices"
	"strings"
	"time"
)

// Rotation is a credential that rotator mints at its provider, stores in
// Vault, pushes to every consuming integration, verifies, and only then
// revokes the old one (docs/rotation.md). Every integration whose source is
// Secret is a consumer.
type Rotation struct {
	Name     string `yaml:"name"`
	Provider string `yaml:"provider"` // sendgrid_email | mailgun_email | twilio_sms
	// Secret is the KV v2 secret the consumers read; a rotation writes a
	// new version of it holding the new credential.
	Secret Source `yaml:"secret"`
	// Manager is the provider's managing credential (SendGrid: a key with
	// api_keys scopes; Mailgun: an admin key), read at each run. Twilio has
	// none: its token is rotated with itself.
	Manager *SecretRef `yaml:"manager"`
	// Schedule is when the rotation runs (5 cron fields); "" runs it only
	// when asked (admin API or `rotator rotate`).
	Schedule string `yaml:"schedule"`
	// Grace is how long the old credential stays valid after every
	// consumer is confirmed on the new one.
	Grace Duration `yaml:"grace"`
	// KeyPrefix starts the name of every credential the rotation mints
	// (SendGrid key name, Mailgun key description), followed by the run's
	// UTC time; keys with it that no run holds are deleted as orphans.
	KeyPrefix string `yaml:"key_prefix"`
	// DedicatedAccount says the Twilio (sub)account is used by Hood alone:
	// required for twilio_sms, whose Promote kills the old token for every
	// system of the account at once.
	DedicatedAccount bool `yaml:"dedicated_account"`
	// MaxAge is the max_age of every consumer that sets none.
	MaxAge Duration `yaml:"max_age"`
}

// RotationRecords is where the rotations' step records live: a KV v2 mount
// and a path; each rotation's record is at <mount>/<path>/<rotation name>.
type RotationRecords struct {
	Mount string `yaml:"mount"`
	Path  string `yaml:"path"`
}

// Rotation defaults and limits.
const (
	DefaultGrace = 15 * time.Minute
	// DefaultRotationsPath is rotation_records.path under ha.mount when
	// ha.mode is vault: <ha.path>/rotations.
	DefaultRotationsPath = "rotations"
	maxKeyPrefix         = 48
)

// MintProviders are the Hood providers whose credential a rotation can mint,
// with the setting that holds it.
var MintProviders = map[string]string{
	"mailgun_email":  "api_key",
	"sendgrid_email": "api_key",
	"twilio_sms":     "auth_token",
}

// keyPrefixPattern is what a key_prefix may hold: names that every provider
// keeps as written.
var keyPrefixPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

// Consumers returns the integrations that read r's secret, in file order.
func (c *Config) Consumers(r Rotation) []Integration {
	var out []Integration
	for _, in := range c.Integrations {
		if in.Source.Key() == r.Secret.Key() {
			out = append(out, in)
		}
	}
	return out
}

// CredentialKey returns the key of r's secret that holds the credential:
// the key its consumers map the provider's credential setting to (Validate
// checks that they agree), or the setting's own name.
func (c *Config) CredentialKey(r Rotation) string {
	setting := MintProviders[r.Provider]
	for _, in := range c.Consumers(r) {
		if k, ok := in.Fields[setting]; ok {
			return k
		}
	}
	return setting
}

// SettingKey returns the key of the integration's secret that setting comes
// from: the one fields maps it to, or its own name.
func (i Integration) SettingKey(setting string) string {
	if k, ok := i.Fields[setting]; ok {
		return k
	}
	return setting
}

// EffectiveMaxAge is the integration's max_age, or the one of the rotation
// of its secret when it sets none (0: no limit).
func (c *Config) EffectiveMaxAge(in Integration) time.Duration {
	if in.MaxAge > 0 {
		return in.MaxAge.D()
	}
	for _, r := range c.Rotations {
		if r.Secret.Key() == in.Source.Key() {
			return r.MaxAge.D()
		}
	}
	return 0
}

// Rotation returns the rotation of that name.
func (c *Config) Rotation(name string) (Rotation, bool) {
	i := slices.IndexFunc(c.Rotations, func(r Rotation) bool { return r.Name == name })
	if i < 0 {
		return Rotation{}, false
	}
	return c.Rotations[i], true
}

// rotationDefaults fills in the rotation settings left unset.
func (c *Config) rotationDefaults(unset func(path string, zero bool) bool) {
	for i := range c.Rotations {
		r := &c.Rotations[i]
		p := indexPath("rotations", i)
		if unset(p+".secret.kv_version", r.Secret.KVVersion == 0) {
			r.Secret.KVVersion = DefaultKVVersion
		}
		if r.Manager != nil && unset(p+".manager.kv_version", r.Manager.KVVersion == 0) {
			r.Manager.KVVersion = DefaultKVVersion
		}
		if unset(p+".grace", r.Grace == 0) {
			r.Grace = Duration(DefaultGrace)
		}
		if r.KeyPrefix == "" && r.Name != "" {
			r.KeyPrefix = "rotator-" + r.Name + "-"
		}
	}
	if len(c.Rotations) > 0 && c.RotationRecords.Mount == "" && c.RotationRecords.Path == "" {
		c.RotationRecords = c.defaultRotationRecords()
	}
}

// defaultRotationRecords is rotation_records when the file sets none:
// <ha.mount>/<ha.path>/rotations with ha.mode vault and both set, else
// none (Validate then asks for it, or reports ha's own problems).
func (c *Config) defaultRotationRecords() RotationRecords {
	path := strings.Trim(c.HA.Path, "/")
	if !c.HA.Enabled() || c.HA.Mount == "" || path == "" {
		return RotationRecords{}
	}
	return RotationRecords{Mount: c.HA.Mount, Path: path + "/" + DefaultRotationsPath}
}

// rotations checks the rotations and rotation_records sections.
func (v *validator) rotations() {
	if len(v.c.Rotations) == 0 {
		return
	}
	rec := v.c.RotationRecords
	switch {
	case rec.Mount == "" && rec.Path == "" && v.c.HA.Enabled():
		// ha.mount or ha.path is missing, which ha reports: the default
		// could not be made.
	case rec.Mount == "" && rec.Path == "":
		v.add("rotation_records", "required with rotations (unless ha.mode is vault, where it defaults to <ha.mount>/<ha.path>/rotations): the KV v2 mount and path where each rotation's step record lives")
	case rec == v.c.defaultRotationRecords() && (checkKVPath(v.c.HA.Mount) != "" || checkKVPath(v.c.HA.Path) != ""):
		// The default, from an ha.mount or ha.path that ha reports.
	default:
		if msg := checkKVPath(rec.Mount); msg != "" {
			v.add("rotation_records.mount", "%s", msg)
		}
		if msg := checkKVPath(rec.Path); msg != "" {
			v.add("rotation_records.path", "%s", msg)
		}
	}
	if !v.c.HA.Enabled() && v.c.HA.LeaseTTL.D() < MinLeaseTTL {
		v.add("ha.lease_ttl", "must be at least %s, got %s: the rotations' lease lasts it (with ha.mode none too)", MinLeaseTTL, v.c.HA.LeaseTTL)
	}
	names := map[string]int{}
	secrets := map[string]int{}
	for i, r := range v.c.Rotations {
		p := indexPath("rotations", i)
		v.uniqueName("rotations", i, r.Name, names)
		v.rotationProvider(p, r)
		v.rotationSecret(p, r, secrets, i)
		if r.Schedule != "" {
			v.schedule(p+".schedule", r.Schedule)
		}
		if r.Grace < 0 {
			v.add(p+".grace", "must be 0 or more, got %s", r.Grace)
		}
		switch {
		case r.MaxAge < 0 || r.MaxAge == 0 && v.c.lines[p+".max_age"] > 0:
			v.add(p+".max_age", "must be greater than 0, got %s (leave it out for no limit)", r.MaxAge)
		}
		defaulted := r.Name != "" && r.KeyPrefix == "rotator-"+r.Name+"-" && v.c.lines[p+".key_prefix"] == 0
		switch {
		case r.KeyPrefix == "" && r.Name == "", defaulted && !namePattern.MatchString(r.Name):
			// No default, or a default made of a name that is reported.
		case len(r.KeyPrefix) > maxKeyPrefix && defaulted:
			v.add(p+".key_prefix", "the default %q is %d characters, more than %d: set a shorter key_prefix (or name)", clip(r.KeyPrefix), len(r.KeyPrefix), maxKeyPrefix)
		case len(r.KeyPrefix) > maxKeyPrefix:
			v.add(p+".key_prefix", "must be at most %d characters, got %d", maxKeyPrefix, len(r.KeyPrefix))
		case !keyPrefixPattern.MatchString(r.KeyPrefix):
			v.add(p+".key_prefix", "must start with a letter or digit and hold only letters, digits, '-', '_' and '.', got %q", clip(r.KeyPrefix))
		default:
			v.keyPrefixOwn(p, r, i)
		}
	}
	v.recordsOwn(rec)
}

// keyPrefixOwn refuses a key_prefix that starts another rotation's of the
// same provider, or that another's starts: the orphan sweep deletes every
// key named with the prefix that no run of its rotation holds, so on a
// shared account (a SendGrid account, a Mailgun domain) one rotation would
// delete the other's live keys. The default prefixes of "sendgrid" and
// "sendgrid-eu" are such a pair.
func (v *validator) keyPrefixOwn(p string, r Rotation, i int) {
	if r.Provider != "sendgrid_email" && r.Provider != "mailgun_email" {
		return // Twilio's tokens have no names: no sweep
	}
	for j, o := range v.c.Rotations[:i] {
		if o.Provider != r.Provider || o.KeyPrefix == "" || o.Name == r.Name { // a duplicate name is reported
			continue
		}
		if strings.HasPrefix(r.KeyPrefix, o.KeyPrefix) || strings.HasPrefix(o.KeyPrefix, r.KeyPrefix) {
			v.add(p+".key_prefix", "%q and the key_prefix %q of rotations[%d]: one starts the other, so on a shared %s account the orphan sweep of one would delete the other's keys; give each a prefix that does not start another's",
				r.KeyPrefix, o.KeyPrefix, j, r.Provider)
			return
		}
	}
}

// recordsOwn refuses rotation records that would land on a secret rotator
// reads, or among ha's records: each rotation's record is written at
// <mount>/<path>/<rotation name>, and a write there would replace that
// secret (or an integration's ha record of the same name).
func (v *validator) recordsOwn(rec RotationRecords) {
	if rec.Mount == "" || checkKVPath(rec.Mount) != "" || checkKVPath(rec.Path) != "" {
		return
	}
	under := func(mount, path string) bool {
		return strings.Trim(mount, "/") == rec.Mount && (strings.Trim(path, "/") == rec.Path || strings.HasPrefix(strings.Trim(path, "/"), rec.Path+"/"))
	}
	over := func(what string) {
		v.add("rotation_records.path", "%s/%s would hold rotation records over %s: give the records a path of their own", rec.Mount, rec.Path, what)
	}
	seen := map[string]bool{}
	for i, r := range v.c.Rotations {
		seen[r.Secret.Key()] = true
		if under(r.Secret.Mount, r.Secret.Path) {
			over(indexPath("rotations", i) + ".secret")
		}
	}
	for i, in := range v.c.Integrations {
		if !seen[in.Source.Key()] && under(in.Source.Mount, in.Source.Path) {
			seen[in.Source.Key()] = true
			over(indexPath("integrations", i) + ".source")
		}
	}
	for i, r := range v.c.Rotations {
		if m := r.Manager; m != nil && !seen[m.Source().Key()] && under(m.Mount, m.Path) {
			seen[m.Source().Key()] = true
			over(indexPath("rotations", i) + ".manager")
		}
	}
	if t := v.c.Hood.Token.Vault; t != nil && !seen[t.Source().Key()] && under(t.Mount, t.Path) {
		over("hood.token.vault")
	}
	if h := v.c.HA; h.Enabled() && strings.Trim(h.Mount, "/") == rec.Mount && strings.Trim(h.Path, "/") == rec.Path {
		v.add("rotation_records.path", "%s/%s is also ha.path: a rotation's record would take the place of the ha record of an integration of the same name; give the records a path of their own (left out, it is <ha.path>/%s)", rec.Mount, rec.Path, DefaultRotationsPath)
	}
}

// rotationProvider checks a rotation's provider and its provider-specific keys.
func (v *validator) rotationProvider(p string, r Rotation) {
	switch r.Provider {
	case "sendgrid_email", "mailgun_email":
		if r.Manager == nil {
			v.add(p+".manager", "required for %s: the Vault secret key of the managing credential that mints and deletes keys (docs/rotation.md)", r.Provider)
		}
		if r.DedicatedAccount {
			v.add(p+".dedicated_account", "only for twilio_sms: a %s key is one of many on its account", r.Provider)
		}
	case "twilio_sms":
		if r.Manager != nil {
			v.add(p+".manager", "not used for twilio_sms: the secondary token is created and promoted with the account's current auth token; leave it out")
		}
		if !r.DedicatedAccount {
			v.add(p+".dedicated_account", "required true for twilio_sms: the auth token belongs to the whole (sub)account and Promote kills the old one for every system using it at once; rotate only a (sub)account dedicated to Hood")
		}
	case "":
		v.add(p+".provider", "required (valid: mailgun_email, sendgrid_email, twilio_sms)")
	case "telegram", "mandrill_email", "custom_email_provider":
		v.add(p+".provider", "%s credentials cannot be minted by a program: track their age with integrations[].max_age and rotate them by hand", r.Provider)
	default:
		v.add(p+".provider", "cannot rotate provider %q (valid: mailgun_email, sendgrid_email, twilio_sms)", clip(r.Provider))
	}
	if m := r.Manager; m != nil {
		if msg := checkKVPath(m.Mount); msg != "" {
			v.add(p+".manager.mount", "%s", msg)
		}
		if msg := checkKVPath(m.Path); msg != "" {
			v.add(p+".manager.path", "%s", msg)
		}
		if m.Key == "" {
			v.add(p+".manager.key", "required: the key of the managing credential in the secret")
		}
		if m.KVVersion != 1 && m.KVVersion != 2 {
			v.add(p+".manager.kv_version", "must be 1 or 2, got %d", m.KVVersion)
		}
		if m.Source().Key() == r.Secret.Key() && m.Key == v.c.CredentialKey(r) {
			v.add(p+".manager.key", "is the rotated credential itself: the managing credential must be another key")
		}
	}
}

// rotationSecret checks a rotation's secret and its consumers.
func (v *validator) rotationSecret(p string, r Rotation, secrets map[string]int, i int) {
	s := r.Secret
	bad := false
	if msg := checkKVPath(s.Mount); msg != "" {
		v.add(p+".secret.mount", "%s", msg)
		bad = true
	}
	if msg := checkKVPath(s.Path); msg != "" {
		v.add(p+".secret.path", "%s", msg)
		bad = true
	}
	if bad {
		return // no consumer can be looked for on a malformed path
	}
	if s.KVVersion != 2 {
		v.add(p+".secret.kv_version", "must be 2: a rotation writes the new credential as a new version with check-and-set and restores the previous one on failure, which KV v1 cannot do; got %d", s.KVVersion)
		return
	}
	if first, dup := secrets[s.Key()]; dup {
		v.add(p+".secret", "also rotated by rotations[%d]: one rotation per secret", first)
		return
	}
	secrets[s.Key()] = i
	setting, mintable := MintProviders[r.Provider]
	consumers := v.c.Consumers(r)
	if len(consumers) == 0 {
		v.add(p+".secret", "no integration reads %s/%s: a rotation needs at least one consumer", s.Mount, s.Path)
		return
	}
	if !mintable {
		return
	}
	key := ""
	for _, in := range consumers {
		ip := indexPath("integrations", slices.IndexFunc(v.c.Integrations, func(x Integration) bool { return x.Name == in.Name }))
		if in.Provider != r.Provider {
			v.add(p+".secret", "read by %s (%s, provider %s): every consumer of a %s rotation must be a %s integration", v.at(ip), in.Name, in.Provider, r.Provider, r.Provider)
			continue
		}
		if _, fixed := in.Static[setting]; fixed {
			continue // Validate refuses a static secret setting elsewhere
		}
		k := in.SettingKey(setting)
		switch {
		case key == "":
			key = k
		case k != key:
			v.add(p+".secret", "its consumers read %s from different keys (%q and %q at %s): the rotation would leave one of them on the old credential", setting, key, k, v.at(ip))
		}
	}
}
