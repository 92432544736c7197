package config

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // timezone names resolve the same on every host, distroless included

	"github.com/robfig/cron/v3"

	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/provider"
)

// Problem is one thing wrong with a configuration file.
type Problem struct {
	Path    string // YAML path of the setting, e.g. "integrations[2].fields.api_kye"
	Line    int    // line in the file, 0 when unknown
	Message string
}

// String formats the problem as "path (line N): message", or
// "path: message" when the line is unknown.
func (p Problem) String() string {
	switch {
	case p.Path == "" && p.Line > 0:
		return fmt.Sprintf("line %d: %s", p.Line, p.Message)
	case p.Path == "":
		return p.Message
	case p.Line > 0:
		return fmt.Sprintf("%s (line %d): %s", p.Path, p.Line, p.Message)
	default:
		return p.Path + ": " + p.Message
	}
}

// ValidationError lists every problem found in a configuration file.
type ValidationError struct {
	Problems []Problem
}

// Error returns the problems, one per line.
func (e *ValidationError) Error() string {
	s := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		s[i] = p.String()
	}
	return strings.Join(s, "\n")
}

// sortProblems orders problems by line, then path; problems of one path
// keep their order.
func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Line != ps[j].Line {
			return ps[i].Line < ps[j].Line
		}
		return ps[i].Path < ps[j].Path
	})
}

var (
	namePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	idPattern   = regexp.MustCompile(`^[0-9]+$`)
)

// Validate checks the meaning of the settings (Parse has checked their
// shape) and returns nil, or a *ValidationError with every problem found,
// sorted by line then path. getenv is consulted for VAULT_TOKEN only. On
// success Validate also records the parsed time zone (see Location).
// Validate expects the defaults applied (Load and Parse do it; see
// ApplyDefaults). It touches neither the network nor the file system.
func (c *Config) Validate(getenv func(string) string) error {
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	v := &validator{c: c}
	v.vault(getenv)
	v.hood()
	v.timing() // first: the schedules are checked in the time zone
	v.schedule("schedule", c.Schedule)
	v.admin()
	v.integrations()
	v.jitter()
	v.files()
	v.ha()
	v.watch()
	v.providerAPI()
	v.rotations()
	if len(v.problems) == 0 {
		return nil
	}
	sortProblems(v.problems)
	return &ValidationError{Problems: v.problems}
}

// validator collects the problems of one Validate call.
type validator struct {
	c        *Config
	problems []Problem
}

// at names the setting at path for a message: "path (line N)" when the
// file writes it, else "path".
func (v *validator) at(path string) string {
	if l := v.c.lines[path]; l > 0 {
		return fmt.Sprintf("%s (line %d)", path, l)
	}
	return path
}

// add records a problem at path, on the line where path is written.
func (v *validator) add(path, format string, args ...any) {
	v.problems = append(v.problems, Problem{Path: path, Line: v.c.Line(path), Message: fmt.Sprintf(format, args...)})
}

func (v *validator) vault(getenv func(string) string) {
	va := v.c.Vault
	if va.Address == "" {
		v.add("vault.address", "required: set it here or in $VAULT_ADDR")
	} else if msg := checkHTTPURL(va.Address); msg != "" {
		v.add("vault.address", "%s", msg)
	}
	if va.TLSSkipVerify {
		switch {
		case va.CACert != "" && v.c.lines["vault.ca_cert"] > 0:
			v.add("vault.tls_skip_verify", "refused together with %s: a CA to check the certificate against and no check contradict each other; keep one",
				v.at("vault.ca_cert"))
		case va.CACert != "":
			v.add("vault.tls_skip_verify", "refused together with vault.ca_cert, which $VAULT_CACERT sets: a CA to check the certificate against and no check contradict each other; unset VAULT_CACERT or drop tls_skip_verify")
		case strings.HasPrefix(va.Address, "http://"):
			v.add("vault.tls_skip_verify", "only used with an https vault.address, got %s", va.Address)
		}
	}

	a := va.Auth
	const p = "vault.auth."
	// only reports a parameter that the chosen method does not use.
	only := func(key, value, methods string) {
		if value != "" {
			v.add(p+key, "only used by method %s", methods)
		}
	}
	switch a.Method {
	case "token":
		if a.TokenFile == "" && getenv("VAULT_TOKEN") == "" {
			v.add(p+"token_file", "required for method token when $VAULT_TOKEN is not set")
		}
		only("mount", a.Mount, "approle or kubernetes")
		only("role_id", a.RoleID, "approle")
		only("secret_id_file", a.SecretIDFile, "approle")
		only("role", a.Role, "kubernetes")
		only("jwt_file", a.JWTFile, "kubernetes")
	case "approle":
		if a.RoleID == "" {
			v.add(p+"role_id", "required for method approle")
		}
		if a.SecretIDFile == "" {
			v.add(p+"secret_id_file", "required for method approle")
		}
		only("token_file", a.TokenFile, "token")
		only("role", a.Role, "kubernetes")
		only("jwt_file", a.JWTFile, "kubernetes")
	case "kubernetes":
		if a.Role == "" {
			v.add(p+"role", "required for method kubernetes")
		}
		only("token_file", a.TokenFile, "token")
		only("role_id", a.RoleID, "approle")
		only("secret_id_file", a.SecretIDFile, "approle")
	default:
		v.add(p+"method", "must be one of token, approle, kubernetes; got %q", a.Method)
	}
	if a.Mount != "" && a.Method != "token" {
		if msg := checkKVPath(a.Mount); msg != "" {
			v.add(p+"mount", "%s", msg)
		}
	}
}

func (v *validator) hood() {
	h := v.c.Hood
	u, err := url.Parse(h.BaseURL)
	switch {
	case err != nil:
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		v.add("hood.base_url", "not a valid URL: %v", err)
	case u.Scheme == "" || u.Host == "":
		v.add("hood.base_url", "must be an absolute URL such as %s", DefaultHoodBaseURL)
	case u.Scheme == "http" && !h.AllowInsecureHTTP:
		v.add("hood.base_url", "plain http is refused; set hood.allow_insecure_http: true to allow it")
	case u.Scheme != "https" && u.Scheme != "http":
		v.add("hood.base_url", "scheme must be https, got %q", u.Scheme)
	case u.User != nil:
		v.add("hood.base_url", "must not hold credentials (the API token is set in hood.token)")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(h.BaseURL, "#"):
		v.add("hood.base_url", "must not have a query or fragment")
	}

	t := h.Token
	if (t.Vault == nil) == (t.Env == "") {
		v.add("hood.token", "set exactly one of vault or env")
	}
	if r := t.Vault; r != nil {
		const p = "hood.token.vault."
		if msg := checkKVPath(r.Mount); msg != "" {
			v.add(p+"mount", "%s", msg)
		}
		if msg := checkKVPath(r.Path); msg != "" {
			v.add(p+"path", "%s", msg)
		}
		if r.Key == "" {
			v.add(p+"key", "required")
		}
		if r.KVVersion != 1 && r.KVVersion != 2 {
			v.add(p+"kv_version", "must be 1 or 2, got %d", r.KVVersion)
		}
	}
	if t.Env != "" && !validEnvName(t.Env) {
		// Never show the value: it may be the token itself, written in
		// place of the variable's name.
		v.add("hood.token.env", "must be the name of an environment variable (letters, digits and _, not starting with a digit), not its value")
	}

	if h.Timeout <= 0 {
		v.add("hood.timeout", "must be greater than 0, got %s", h.Timeout)
	}
	rl := h.RateLimit
	if rl.Burst < 1 {
		v.add("hood.rate_limit.burst", "must be at least 1, got %d", rl.Burst)
	}
	if rl.PerMinute < 1 {
		v.add("hood.rate_limit.per_minute", "must be at least 1, got %d", rl.PerMinute)
	}
	if rl.Burst >= 1 && rl.PerMinute >= 1 && rl.Burst > rl.PerMinute {
		v.add("hood.rate_limit.burst", "must not exceed per_minute (%d), got %d", rl.PerMinute, rl.Burst)
	}
	r := h.Retry
	if r.MaxAttempts < 1 || r.MaxAttempts > 10 {
		v.add("hood.retry.max_attempts", "must be between 1 and 10, got %d", r.MaxAttempts)
	}
	if r.InitialBackoff <= 0 {
		v.add("hood.retry.initial_backoff", "must be greater than 0, got %s", r.InitialBackoff)
	}
	if r.MaxBackoff <= 0 {
		v.add("hood.retry.max_backoff", "must be greater than 0, got %s", r.MaxBackoff)
	}
	if r.InitialBackoff > 0 && r.MaxBackoff > 0 && r.InitialBackoff > r.MaxBackoff {
		v.add("hood.retry.initial_backoff", "must not exceed max_backoff (%s), got %s", r.MaxBackoff, r.InitialBackoff)
	}
	if h.MaxInFlight < 1 || h.MaxInFlight > 64 {
		v.add("hood.max_in_flight", "must be between 1 and 64, got %d", h.MaxInFlight)
	}
	if t := v.c.Vault.Timeout; t <= 0 || t.D() > 5*time.Minute {
		v.add("vault.timeout", "must be more than 0s and at most 5m, got %s", t)
	}
	if h.VerifyTimeout <= 0 || h.VerifyTimeout.D() > 10*time.Minute {
		v.add("hood.verify_timeout", "must be more than 0s and at most 10m, got %s", h.VerifyTimeout)
	}
}

// schedule checks the cron expression at path.
func (v *validator) schedule(path, spec string) {
	if err := checkCron(spec); err != nil {
		v.add(path, "invalid schedule %q: %v (want 5 cron fields such as \"0 3 * * *\", or @hourly, @daily, @every 90s)", clip(spec), err)
		return
	}
	if s, ok := v.parsed(spec); ok && s.Next(scheduleProbe(v.c.Location())).IsZero() {
		v.add(path, "schedule %q never fires: no date matches it (such as 30 February or 31 April), so rotator would never run", clip(spec))
	}
}

// parsed returns spec parsed as the scheduler parses it, when checkCron
// accepts it.
func (v *validator) parsed(spec string) (cron.Schedule, bool) {
	if checkCron(spec) != nil {
		return nil, false
	}
	s, err := cron.ParseStandard(spec)
	return s, err == nil
}

// scheduleProbe is where the search for a schedule's runs starts: a fixed
// time, so that a file validates the same way every day. robfig/cron's Next
// looks five years ahead, which covers every date a 5-field schedule names.
func scheduleProbe(loc *time.Location) time.Time {
	return time.Date(2026, time.January, 1, 0, 0, 0, 0, loc)
}

// Bounds of the search for a schedule's shortest period (see jitter).
const (
	periodRuns    = 10000
	periodHorizon = 400 * 24 * time.Hour
)

// shortestPeriod returns the shortest time between two runs of s found
// over its runs in the year after scheduleProbe (at most periodRuns),
// stopping early once one is not longer than limit; false when s runs
// fewer than twice.
func shortestPeriod(s cron.Schedule, loc *time.Location, limit time.Duration) (time.Duration, bool) {
	from := scheduleProbe(loc)
	prev := s.Next(from)
	if prev.IsZero() {
		return 0, false
	}
	shortest, found := time.Duration(math.MaxInt64), false
	for range periodRuns {
		next := s.Next(prev)
		if next.IsZero() || !next.After(prev) {
			break
		}
		if gap := next.Sub(prev); gap < shortest {
			shortest, found = gap, true
		}
		if shortest <= limit || next.Sub(from) > periodHorizon {
			break
		}
		prev = next
	}
	return shortest, found
}

// jitter refuses a jitter as long as the shortest period of a schedule in
// use: the pass of one run would start after the next run is due, and the
// delayed passes would pile up.
func (v *validator) jitter() {
	j := v.c.Jitter.D()
	if j <= 0 {
		return
	}
	type use struct{ path, spec string }
	var uses []use
	seen := map[string]bool{}
	for i, in := range v.c.Integrations {
		u := use{"schedule", v.c.Schedule}
		if in.Schedule != "" {
			u = use{indexPath("integrations", i) + ".schedule", in.Schedule}
		}
		if !seen[u.spec] {
			seen[u.spec] = true
			uses = append(uses, u)
		}
	}
	for _, u := range uses {
		s, ok := v.parsed(u.spec)
		if !ok {
			continue
		}
		if p, ok := shortestPeriod(s, v.c.Location(), j); ok && j >= p {
			v.add("jitter", "must be shorter than the shortest time between two runs of %s %q (%s), got %s: a delayed pass would start after the next one is due, and passes would pile up",
				v.at(u.path), clip(u.spec), p, v.c.Jitter)
		}
	}
}

// files refuses two settings that name the same file when rotator writes
// one of them (state.path, audit.path): each file it writes needs a path of
// its own, and must not be a file it reads. Paths are compared as written
// (cleaned), without touching the file system.
func (v *validator) files() {
	type file struct{ path, name string }
	written := []file{{"state.path", v.c.State.Path}, {"audit.path", v.c.Audit.Path}}
	a := v.c.Vault.Auth
	read := []file{
		{"vault.ca_cert", v.c.Vault.CACert},
		{"vault.auth.token_file", a.TokenFile},
		{"vault.auth.secret_id_file", a.SecretIDFile},
		{"vault.auth.jwt_file", a.JWTFile},
		{"admin.token_file", v.c.Admin.TokenFile},
	}
	for i, in := range v.c.Integrations {
		read = append(read, file{indexPath("integrations", i) + ".smtp_ca_cert", in.SMTPCACert})
	}
	for i, w := range written {
		if w.name == "" {
			continue
		}
		for _, o := range written[:i] {
			if o.name != "" && filepath.Clean(o.name) == filepath.Clean(w.name) {
				v.add(w.path, "%s is also the file of %s: each file rotator writes needs a path of its own", w.name, v.at(o.path))
			}
		}
		for _, r := range read {
			if r.name != "" && filepath.Clean(r.name) == filepath.Clean(w.name) {
				v.add(w.path, "%s is also the file of %s: rotator would write over a file it reads", w.name, v.at(r.path))
			}
		}
	}
}

// timing checks the time zone and jitter.
func (v *validator) timing() {
	v.c.loc = nil
	if loc, err := time.LoadLocation(v.c.Timezone); err != nil {
		v.add("timezone", "%v (want an IANA name such as UTC or Europe/Belgrade)", err)
	} else {
		v.c.loc = loc
	}
	if v.c.Jitter < 0 {
		v.add("jitter", "must not be negative, got %s", v.c.Jitter)
	}
}

func (v *validator) admin() {
	_, port, err := net.SplitHostPort(v.c.Admin.Listen)
	if err == nil {
		if _, perr := strconv.ParseUint(port, 10, 16); perr != nil {
			err = fmt.Errorf("port %q is not a number from 0 to 65535", port)
		}
	}
	if err != nil {
		v.add("admin.listen", "want host:port such as %s: %v", DefaultAdminListen, err)
	}
	if v.c.State.Path == "" {
		v.add("state.path", "required")
	}
}

func (v *validator) integrations() {
	if len(v.c.Integrations) == 0 {
		v.add("integrations", "at least one integration is required")
		return
	}
	validProviders := strings.Join(hood.ProviderKeys(), ", ")
	names := map[string]int{}
	ids := map[uint64]int{} // by value: "1161" and "01161" are one Hood integration
	for i, in := range v.c.Integrations {
		p := indexPath("integrations", i)

		v.uniqueName("integrations", i, in.Name, names)

		id, idErr := strconv.ParseUint(in.ID, 10, 64)
		switch first, dup := ids[id]; {
		case in.ID == "":
			v.add(p+".id", "required: the Hood integration id")
		case !idPattern.MatchString(in.ID):
			v.add(p+".id", "must be decimal digits, got %q", clip(in.ID))
		case len(in.ID) > 20:
			v.add(p+".id", "must be at most 20 digits, got %d", len(in.ID))
		case idErr != nil:
			v.add(p+".id", "must fit in 64 bits (at most %d), got %s", uint64(math.MaxUint64), in.ID)
		case dup && v.c.Integrations[first].ID == in.ID:
			v.add(p+".id", "duplicate id %q (first at integrations[%d]): two entries would fight over one Hood integration", in.ID, first)
		case dup:
			fp := indexPath("integrations", first) + ".id"
			v.add(p+".id", "duplicate id: %q is Hood integration %d, as is %q at %s: two entries would fight over one Hood integration",
				in.ID, id, v.c.Integrations[first].ID, v.at(fp))
		case id == 0:
			v.add(p+".id", "must be a Hood integration id, not 0")
		case in.ID[0] == '0':
			v.add(p+".id", "must be written without leading zeros: %q, got %q", strconv.FormatUint(id, 10), in.ID)
			ids[id] = i
		default:
			ids[id] = i
		}

		pr, known := hood.LookupProvider(in.Provider)
		switch {
		case in.Provider == "":
			v.add(p+".provider", "required (valid: %s)", validProviders)
		case !known:
			v.add(p+".provider", "unknown provider %q (valid: %s)", clip(in.Provider), validProviders)
		}

		s := in.Source
		if msg := checkKVPath(s.Mount); msg != "" {
			v.add(p+".source.mount", "%s", msg)
		}
		if msg := checkKVPath(s.Path); msg != "" {
			v.add(p+".source.path", "%s", msg)
		}
		if s.KVVersion != 1 && s.KVVersion != 2 {
			v.add(p+".source.kv_version", "must be 1 or 2, got %d", s.KVVersion)
		}

		for _, k := range sortedKeys(in.Fields) {
			fp := keyPath(p+".fields", k)
			if known && !pr.HasField(k) {
				v.add(fp, "%s", notASetting(pr))
			}
			if in.Fields[k] == "" {
				v.add(fp, "empty: write the name of the key in the Vault secret")
			}
		}
		for _, k := range sortedKeys(in.Static) {
			sp := keyPath(p+".static", k)
			if _, mapped := in.Fields[k]; mapped {
				v.add(sp, "also set in fields: a setting comes either from Vault (fields) or from static, not both")
			}
			if !known {
				continue
			}
			f, ok := pr.Field(k)
			switch {
			case !ok:
				v.add(sp, "%s", notASetting(pr))
			case f.Secret:
				v.add(sp, "%s is a secret setting of provider %s: a secret setting must come from Vault (map it under fields)", k, pr.Key)
			}
		}

		if in.Schedule != "" {
			v.schedule(p+".schedule", in.Schedule)
		}
		if in.OnVerifyFailure != "keep" && in.OnVerifyFailure != "rollback" {
			v.add(p+".on_verify_failure", "must be keep or rollback, got %q", clip(in.OnVerifyFailure))
		}
		if in.ProviderCheck && known {
			v.providerCheck(p, in)
		}
		v.smtp(p, in)
		switch {
		case in.MaxAge < 0 || in.MaxAge == 0 && v.c.lines[p+".max_age"] > 0:
			v.add(p+".max_age", "must be greater than 0, got %s (leave it out for no limit)", in.MaxAge)
		case in.MaxAge > 0 && s.KVVersion == 1:
			v.add(p+".max_age", "needs a KV v2 source: KV v1 keeps no created_time, so no age would be known")
		}
	}
}

// uniqueName checks the name of <section>[i]: required, the name pattern,
// not already in names (which it is added to).
func (v *validator) uniqueName(section string, i int, name string, names map[string]int) {
	p := indexPath(section, i) + ".name"
	switch first, dup := names[name]; {
	case name == "":
		v.add(p, "required")
	case !namePattern.MatchString(name):
		v.add(p, "must be 1 to 64 letters, digits, '-' or '_', got %q", clip(name))
	case dup:
		v.add(p, "duplicate name %q (first at %s[%d])", name, section, first)
	default:
		names[name] = i
	}
}

// providerCheck checks integrations[i].provider_check: the provider must be
// one whose credential can be checked, and the settings the check uses must
// be pushed (when fields lists them: without fields the secret's keys are
// only known at the pass, which fails the integration if one is missing).
func (v *validator) providerCheck(p string, in Integration) {
	const key = ".provider_check"
	switch in.Provider {
	case smtpProvider:
		if in.SMTPHost == "" {
			v.add(p+".smtp_host", "required with provider_check for %s: the host of the mail server the check logs in to (its port is the port setting)", smtpProvider)
		}
		if port, ok := in.Static["port"]; ok {
			if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
				v.add(keyPath(p+".static", "port"), "must be a port number from 1 to 65535 for the SMTP check, got %q", clip(port))
			}
		}
	case "mitto_sms":
		v.add(p+key, "mitto_sms holds no secret: there is no credential to check")
		return
	}
	// The settings the check needs may come from fields, static or a
	// Vault key of the setting's own name (read only at a pass): one that
	// is missing then fails that integration's check, naming the setting.
}

// smtpProvider is the Hood provider whose check logs in to a mail server.
const smtpProvider = "custom_email_provider"

// smtp checks integrations[i].smtp_host and smtp_ca_cert: the host of the
// SMTP check, used only by a custom_email_provider with provider_check.
func (v *validator) smtp(p string, in Integration) {
	used := in.Provider == smtpProvider && in.ProviderCheck
	switch {
	case in.SMTPHost == "":
	case in.Provider != smtpProvider:
		v.add(p+".smtp_host", "only used by provider %s (its provider_check logs in to this mail server)", smtpProvider)
	case !in.ProviderCheck:
		v.add(p+".smtp_host", "only used with provider_check: true (the SMTP check logs in to this mail server)")
	default:
		if msg := provider.CheckSMTPHost(in.SMTPHost); msg != "" {
			v.add(p+".smtp_host", "%s, got %q", msg, clip(in.SMTPHost))
		}
	}
	if in.SMTPCACert != "" && !used { // used without smtp_host: that one is required
		v.add(p+".smtp_ca_cert", "only used with smtp_host (the CA certificates of its mail server)")
	}
}

// providerAPI checks provider_api: each key a provider with an API that can
// be checked, each value an absolute http(s) base URL.
func (v *validator) providerAPI() {
	withAPI := slices.DeleteFunc(slices.Sorted(maps.Keys(CheckSettings)), func(k string) bool { return k == smtpProvider })
	valid := strings.Join(withAPI, ", ")
	for _, k := range sortedKeys(v.c.ProviderAPI) {
		kp := keyPath("provider_api", k)
		if k == smtpProvider {
			v.add(kp, "%s has no API: give each integration's mail server in integrations[].smtp_host", smtpProvider)
			continue
		}
		if !slices.Contains(withAPI, k) {
			v.add(kp, "not a provider that can be checked: %q (valid: %s)", clip(k), valid)
			continue
		}
		u, err := url.Parse(v.c.ProviderAPI[k])
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			v.add(kp, "must be an absolute http or https URL without credentials, query or fragment, such as https://api.example.com")
		}
	}
}

// ha checks the ha section. With mode none the other ha settings are not
// used, and not checked.
func (v *validator) ha() {
	h := v.c.HA
	switch h.Mode {
	case HAModeVault:
	case HAModeNone:
		return
	default:
		v.add("ha.mode", "must be %s or %s, got %q", HAModeNone, HAModeVault, clip(h.Mode))
		return
	}
	if msg := checkKVPath(h.Mount); msg != "" {
		v.add("ha.mount", "%s", msg)
	}
	if msg := checkKVPath(h.Path); msg != "" {
		v.add("ha.path", "%s", msg)
	} else if checkKVPath(h.Mount) == "" {
		v.haPathOwn(h.Mount, h.Path)
	}
	if !validIdentity(h.Identity) {
		v.add("ha.identity", "must be 1 to %d letters, digits, '-', '_' or '.' (a \"#<random>\" suffix is added to it), got %q", maxIdentity, clip(h.Identity))
	}
	hood := v.c.Hood
	push := sumDurations(hood.Timeout, hood.VerifyTimeout)
	switch {
	case h.LeaseTTL.D() < MinLeaseTTL:
		v.add("ha.lease_ttl", "must be at least %s, got %s", MinLeaseTTL, h.LeaseTTL)
	case hood.Timeout > 0 && hood.VerifyTimeout > 0 && h.LeaseTTL <= push:
		v.add("ha.lease_ttl", "must exceed hood.timeout + hood.verify_timeout (%s), got %s", push, h.LeaseTTL)
	}
	if h.ClockSkew < 0 || h.ClockSkew.D() > 10*time.Second {
		v.add("ha.clock_skew", "must be between 0s and 10s, got %s", h.ClockSkew)
	}
}

// haPathOwn refuses records that would land on a secret rotator reads: they
// are written at <ha.mount>/<ha.path>/<integration name>, and a write there
// would replace that secret.
func (v *validator) haPathOwn(mount, path string) {
	under := func(m, p string) bool {
		return m == mount && (p == path || strings.HasPrefix(p, path+"/"))
	}
	for i, in := range v.c.Integrations {
		if under(in.Source.Mount, in.Source.Path) {
			v.add("ha.path", "%s/%s would hold rotator's records over integrations[%d].source (%s/%s): give the records a path of their own",
				mount, path, i, in.Source.Mount, in.Source.Path)
		}
	}
	if r := v.c.Hood.Token.Vault; r != nil && under(r.Mount, r.Path) {
		v.add("ha.path", "%s/%s would hold rotator's records over hood.token.vault (%s/%s): give the records a path of their own",
			mount, path, r.Mount, r.Path)
	}
}

// watch checks the watch section.
func (v *validator) watch() {
	iv := v.c.Watch.Interval
	switch {
	case iv < 0 || iv > 0 && iv.D() < MinWatchInterval:
		v.add("watch.interval", "must be 0 (off) or at least %s, got %s", MinWatchInterval, iv)
	case iv > 0 && len(v.c.Integrations) > 0 && !v.c.readsKV2():
		v.add("watch.interval", "no integration reads a KV v2 secret: nothing to watch")
	}
}

// readsKV2 reports whether an integration reads a KV v2 secret: one that
// watch mode can poll.
func (c *Config) readsKV2() bool {
	for _, in := range c.Integrations {
		if in.Source.KVVersion == 2 {
			return true
		}
	}
	return false
}

// validIdentity reports whether s is a valid ha.identity.
func validIdentity(s string) bool {
	if s == "" || len(s) > maxIdentity {
		return false
	}
	for i := range len(s) {
		if !identityChar(s[i]) {
			return false
		}
	}
	return true
}

// sumDurations is a + b, capped at the largest Duration instead of
// overflowing.
func sumDurations(a, b Duration) Duration {
	if a > 0 && b > math.MaxInt64-a {
		return math.MaxInt64
	}
	return a + b
}

// notASetting is the message for a fields or static key that provider pr
// does not have.
func notASetting(pr hood.Provider) string {
	return fmt.Sprintf("not a setting of provider %s (settings: %s); Hood would silently drop it",
		pr.Key, strings.Join(pr.FieldNames(), ", "))
}

// checkHTTPURL returns why s is not an absolute http or https URL, or "".
func checkHTTPURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "must be an http or https URL such as http://127.0.0.1:8200"
	}
	return ""
}

// checkKVPath returns what is wrong with a Vault mount or secret path, or "".
func checkKVPath(s string) string {
	switch {
	case s == "":
		return "required"
	case strings.HasPrefix(s, "/") || strings.HasSuffix(s, "/"):
		return `must not start or end with "/"`
	}
	for seg := range strings.SplitSeq(s, "/") {
		switch seg {
		case "..":
			return `must not contain a ".." segment`
		case ".":
			return `must not contain a "." segment`
		case "":
			return `must not contain an empty segment ("//")`
		}
	}
	return ""
}

// checkCron parses spec as the scheduler will, with cron.ParseStandard.
func checkCron(spec string) (err error) {
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		if !strings.Contains(spec, " ") {
			// The parser would index out of range on this.
			return errors.New("a TZ= prefix must be followed by a space and a schedule")
		}
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cron parser failed: %v", r)
		}
	}()
	if _, err := cron.ParseStandard(spec); err != nil {
		return err
	}
	// The parser turns any @every below 1s, 0 and negative included, into
	// 1s: refuse what would not mean what it says.
	const every = "@every "
	if i := strings.Index(spec, every); i >= 0 {
		if d, err := time.ParseDuration(spec[i+len(every):]); err == nil && d < time.Second {
			return fmt.Errorf("@every needs at least 1s, got %s", d)
		}
	}
	return nil
}

// sortedKeys returns the keys of m, sorted.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
