package deploy_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// unit is a parsed systemd unit file: section -> key -> values in order
// (keys such as LoadCredential= may repeat).
type unit map[string]map[string][]string

func parseUnit(t *testing.T, rel string) unit {
	t.Helper()
	u := unit{}
	section := ""
	lines := strings.Split(string(readFile(t, rel)), "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
			i++
			l = strings.TrimSuffix(l, `\`) + " " + strings.TrimSpace(lines[i])
		}
		switch {
		case l == "" || strings.HasPrefix(l, "#") || strings.HasPrefix(l, ";"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = l[1 : len(l)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", rel, i+1, l)
			}
			k = strings.TrimSpace(k)
			u[section][k] = append(u[section][k], strings.TrimSpace(v))
		}
	}
	return u
}

func (u unit) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

func (u unit) has(section, key string) bool { return len(u[section][key]) > 0 }

// credentials returns the names of the LoadCredential= (and
// LoadCredentialEncrypted=) entries of a service.
func (u unit) credentials() []string {
	var names []string
	for _, k := range []string{"LoadCredential", "LoadCredentialEncrypted"} {
		for _, v := range u["Service"][k] {
			if name, _, ok := strings.Cut(v, ":"); ok {
				names = append(names, name)
			}
		}
	}
	return names
}

const (
	systemdDir    = "deploy/systemd/"
	binaryPath    = "/usr/local/bin/rotator"
	configPath    = "/etc/rotator/config.yaml"
	stateDirValue = "/var/lib/rotator"
	logsDirValue  = "/var/log/rotator"
)

func TestSystemdDaemonUnit(t *testing.T) {
	u := parseUnit(t, systemdDir+"rotator.service")
	want := map[string]string{
		"DynamicUser":              "yes",
		"StateDirectory":           "rotator",
		"ProtectSystem":            "strict",
		"NoNewPrivileges":          "yes",
		"CapabilityBoundingSet":    "",
		"RestartPreventExitStatus": "2",
		"Environment":              "ROTATOR_CONFIG=" + configPath,
	}
	for k, v := range want {
		if !u.has("Service", k) {
			t.Errorf("rotator.service: no %s=", k)
		} else if got := u.get("Service", k); got != v {
			t.Errorf("rotator.service: %s=%s, want %s=%s", k, got, k, v)
		}
	}
	for _, k := range []string{"RestrictAddressFamilies", "SystemCallArchitectures", "ProtectHome", "PrivateTmp", "PrivateDevices"} {
		if !u.has("Service", k) {
			t.Errorf("rotator.service: no %s=", k)
		}
	}
	if !slices.Contains(u["Service"]["SystemCallFilter"], "@system-service") {
		t.Errorf("rotator.service: SystemCallFilter= %v lacks @system-service", u["Service"]["SystemCallFilter"])
	}
	for _, c := range []string{"secret-id", "admin-token"} {
		if !slices.Contains(u.credentials(), c) {
			t.Errorf("rotator.service: no LoadCredential=%s:...", c)
		}
	}
	if f := strings.Fields(u.get("Service", "ExecStart")); len(f) < 2 || f[0] != binaryPath || f[1] != "run" {
		t.Errorf("rotator.service: ExecStart=%s, want %s run ...", u.get("Service", "ExecStart"), binaryPath)
	}
	reload := u["Service"]["ExecReload"]
	if !slices.ContainsFunc(reload, func(s string) bool { return regexp.MustCompile(`kill -(HUP|s HUP|SIGHUP) \$MAINPID$`).MatchString(s) }) {
		t.Errorf("rotator.service: ExecReload= %v does not send SIGHUP to $MAINPID", reload)
	}
	for _, r := range reload {
		if f := strings.Fields(r); len(f) > 1 && f[0] == binaryPath && f[1] != "validate" {
			t.Errorf("rotator.service: ExecReload=%s: only `rotator validate` belongs there", r)
		}
	}

	// Stopping waits longer than rotator's own --shutdown-timeout.
	shutdown := 30 * time.Second
	if m := regexp.MustCompile(`--shutdown-timeout[ =](\S+)`).FindStringSubmatch(u.get("Service", "ExecStart")); m != nil {
		d, err := time.ParseDuration(m[1])
		if err != nil {
			t.Fatalf("rotator.service: --shutdown-timeout %q: %v", m[1], err)
		}
		shutdown = d
	}
	stop, err := time.ParseDuration(u.get("Service", "TimeoutStopSec"))
	if err != nil || stop <= shutdown {
		t.Errorf("rotator.service: TimeoutStopSec=%s, want more than --shutdown-timeout %s", u.get("Service", "TimeoutStopSec"), shutdown)
	}
	if u.get("Install", "WantedBy") != "multi-user.target" {
		t.Errorf("rotator.service: WantedBy=%s, want multi-user.target", u.get("Install", "WantedBy"))
	}
}

// TestSystemdOnceUnit checks rotator-once.service and rotator.timer, and that
// the one-shot service is sandboxed exactly like the daemon.
func TestSystemdOnceUnit(t *testing.T) {
	daemon := parseUnit(t, systemdDir+"rotator.service")
	once := parseUnit(t, systemdDir+"rotator-once.service")
	if got := once.get("Service", "Type"); got != "oneshot" {
		t.Errorf("rotator-once.service: Type=%s, want oneshot", got)
	}
	if f := strings.Fields(once.get("Service", "ExecStart")); len(f) < 2 || f[0] != binaryPath || f[1] != "once" {
		t.Errorf("rotator-once.service: ExecStart=%s, want %s once ...", once.get("Service", "ExecStart"), binaryPath)
	}
	if !slices.Contains(once.credentials(), "secret-id") {
		t.Error("rotator-once.service: no LoadCredential=secret-id:...")
	}
	// Everything but how the process is run and stopped is the same.
	differ := map[string]bool{
		"Type": true, "ExecStart": true, "ExecReload": true, "Restart": true, "RestartSec": true,
		"RestartPreventExitStatus": true, "TimeoutStopSec": true, "TimeoutStartSec": true,
		"LoadCredential": true, "LoadCredentialEncrypted": true,
	}
	for _, k := range sortedKeys(daemon["Service"]) {
		if differ[k] {
			continue
		}
		if d, o := daemon["Service"][k], once["Service"][k]; !slices.Equal(d, o) {
			t.Errorf("rotator-once.service: %s=%v, but rotator.service has %s=%v", k, o, k, d)
		}
	}
	for _, k := range sortedKeys(once["Service"]) {
		if !differ[k] && !daemon.has("Service", k) {
			t.Errorf("rotator-once.service: %s= is not in rotator.service", k)
		}
	}

	timer := parseUnit(t, systemdDir+"rotator.timer")
	target := timer.get("Timer", "Unit")
	if target == "" {
		target = "rotator.service" // systemd's default: the timer's own name
	}
	if target != "rotator-once.service" {
		t.Errorf("rotator.timer starts %s, want rotator-once.service", target)
	}
	if _, err := os.Stat(path(systemdDir + target)); err != nil {
		t.Errorf("rotator.timer: Unit=%s: %v", target, err)
	}
	if timer.get("Timer", "OnCalendar") == "" {
		t.Error("rotator.timer: no OnCalendar=")
	}
	if timer.get("Install", "WantedBy") != "timers.target" {
		t.Errorf("rotator.timer: WantedBy=%s, want timers.target", timer.get("Install", "WantedBy"))
	}
}

var credentialRefRE = regexp.MustCompile(`\$\{CREDENTIALS_DIRECTORY\}/([A-Za-z0-9_.-]+)`)

// TestSystemdConfig validates deploy/systemd/config.yaml as rotator does,
// with the variables systemd sets, and checks that it uses only the
// credentials the units load and the directories they create.
func TestSystemdConfig(t *testing.T) {
	const rel = systemdDir + "config.yaml"
	data := readFile(t, rel)
	const creds = "/run/credentials/rotator.service"
	cfg := parseConfig(t, rel, data, env(map[string]string{
		"CREDENTIALS_DIRECTORY": creds,
		"STATE_DIRECTORY":       stateDirValue,
		"LOGS_DIRECTORY":        logsDirValue,
	}))

	daemon := parseUnit(t, systemdDir+"rotator.service")
	once := parseUnit(t, systemdDir+"rotator-once.service")
	refs := credentialRefRE.FindAllStringSubmatch(string(data), -1)
	if len(refs) == 0 {
		t.Errorf("%s: no ${CREDENTIALS_DIRECTORY}/... reference", rel)
	}
	for _, m := range refs {
		if !slices.Contains(daemon.credentials(), m[1]) {
			t.Errorf("%s uses the credential %q, which rotator.service does not load", rel, m[1])
		}
	}
	if cfg.Vault.Auth.Method != "approle" {
		t.Errorf("%s: vault.auth.method %s, want approle", rel, cfg.Vault.Auth.Method)
	}
	name, ok := strings.CutPrefix(cfg.Vault.Auth.SecretIDFile, creds+"/")
	if !ok {
		t.Errorf("%s: vault.auth.secret_id_file %s is not a systemd credential", rel, cfg.Vault.Auth.SecretIDFile)
	} else if !slices.Contains(once.credentials(), name) {
		t.Errorf("rotator-once.service does not load the credential %q (vault.auth.secret_id_file)", name)
	}
	if !strings.HasPrefix(cfg.Admin.TokenFile, creds+"/") {
		t.Errorf("%s: admin.token_file %s is not a systemd credential", rel, cfg.Admin.TokenFile)
	}
	if !strings.HasPrefix(cfg.State.Path, stateDirValue+"/") {
		t.Errorf("%s: state.path %s is not in StateDirectory= (%s)", rel, cfg.State.Path, stateDirValue)
	}
	if cfg.Audit.Path != "" && !strings.HasPrefix(cfg.Audit.Path, logsDirValue+"/") && !strings.HasPrefix(cfg.Audit.Path, stateDirValue+"/") {
		t.Errorf("%s: audit.path %s is neither in LogsDirectory= nor in StateDirectory=", rel, cfg.Audit.Path)
	}
	if daemon.get("Service", "LogsDirectory") != "rotator" {
		t.Errorf("rotator.service: LogsDirectory=%s, want rotator (audit.path)", daemon.get("Service", "LogsDirectory"))
	}
}
