package hostile_test

// Bad input: hostile ids and names in the configuration, Vault secrets
// with values of the wrong kind, configuration files that are missing,
// unreadable, empty or huge.

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeFile writes a file in the fixture's directory and returns its path.
func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// wantInvalid runs a command that must refuse the configuration: exit 2,
// and stderr holding every want. It also checks nothing reached Hood.
func (f *fixture) wantInvalid(args []string, want ...string) result {
	f.t.Helper()
	before := f.count("", "")
	r := f.run(args...)
	if r.code != 2 {
		f.t.Errorf("rotator %s: exit code %d, want 2\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			f.t.Errorf("rotator %s: stderr does not name %q:\n%s", args[0], w, r.stderr)
		}
	}
	if got := f.count("", ""); got != before {
		f.t.Errorf("rotator %s: %d Hood requests for an invalid configuration, want 0", args[0], got-before)
	}
	return r
}

func TestHostileIDsAndNames(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.put("secret", "tg", map[string]any{"auth_token": sentinel, "chat_id": "42"})
	line := func(name, id, path string) string {
		return fmt.Sprintf("  - {name: %q, id: %q, provider: telegram, source: {mount: secret, path: %q}}\n", name, id, path)
	}
	ints := line("dotdot", "../1", "{P}/tg") +
		line("query", "1?x=", "{P}/tg") +
		line("escaped", "%2F", "{P}/tg") +
		line("arabic", "١٢٣", "{P}/tg") + // Arabic-Indic digits
		line("fullwidth", "１２３", "{P}/tg") + // full-width digits
		line("long", strings.Repeat("9", 30), "{P}/tg") +
		line("space", " 12", "{P}/tg") +
		line("negative", "-12", "{P}/tg") +
		line("bad/name", "500", "{P}/tg") +
		line("new\nline", "501", "{P}/tg") +
		line("traversal", "502", "{P}/../../sys/raw") +
		line("good", "503", "{P}/tg")
	c := f.config(cfg{integrations: ints})
	want := []string{
		"integrations[0].id", "integrations[1].id", "integrations[2].id", "integrations[3].id",
		"integrations[4].id", "integrations[5].id", "integrations[6].id", "integrations[7].id",
		"integrations[8].name", "integrations[9].name", "integrations[10].source.path",
	}
	r := f.wantInvalid([]string{"validate", "--config", c}, want...)
	if strings.Contains(r.stderr, "integrations[11]") {
		t.Errorf("validate: the good entry integrations[11] is reported:\n%s", r.stderr)
	}
	f.wantInvalid([]string{"once", "--config", c, "--force"}, "integrations[0].id")
	f.wantInvalid([]string{"plan", "--config", c}, "integrations[0].id")
	if _, err := os.Stat(f.statePath()); err == nil {
		t.Errorf("an invalid configuration created the state file")
	}
}

func TestBadSecretValues(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	big := strings.Repeat(sentinel, (1<<20)/len(sentinel)+1)[:1<<20] // 1 MiB
	secrets := []struct {
		name, id string
		data     map[string]any
		fields   string   // optional fields mapping (flow YAML)
		want     []string // in the summary line; "pushed" for a success
	}{
		{"number", "301", map[string]any{"auth_token": 12345, "chat_id": "42"}, "", []string{"failed", `"auth_token"`, "number"}},
		{"boolean", "302", map[string]any{"auth_token": true, "chat_id": "42"}, "", []string{"failed", `"auth_token"`, "boolean"}},
		{"nested", "303", map[string]any{"auth_token": map[string]any{"inner": sentinel}, "chat_id": "42"}, "", []string{"failed", `"auth_token"`, "object"}},
		{"null", "304", map[string]any{"auth_token": nil, "chat_id": "42"}, "", []string{"failed", `"auth_token"`, "null"}},
		{"array", "305", map[string]any{"auth_token": []any{sentinel}, "chat_id": "42"}, "", []string{"failed", `"auth_token"`, "array"}},
		{"empty", "306", map[string]any{"auth_token": "", "chat_id": "42"}, "", []string{"failed", `"auth_token"`, "empty"}},
		{"mapped-empty", "307", map[string]any{"tok": "", "chat_id": "42"}, "{auth_token: tok}", []string{"failed", `"tok"`, "empty"}},
		{"mapped-missing", "308", map[string]any{"chat_id": "42"}, "{auth_token: tok}", []string{"failed", `"tok"`, "missing"}},
		{"mapped-number", "309", map[string]any{"tok": 7.5, "chat_id": "42"}, "{auth_token: tok}", []string{"failed", `"tok"`, "number"}},
		{"all-empty", "310", map[string]any{"unrelated": "x"}, "", []string{"failed", "none of the settings"}},
		{"foreign-keys", "311", map[string]any{"auth_token": sentinel, "chat_id": "42", "api_key": sentinel, "password": sentinel, "extra": 5}, "", []string{"pushed"}},
		{"good", "312", map[string]any{"auth_token": sentinel, "chat_id": "42"}, "", []string{"pushed"}},
		{"big", "313", map[string]any{"auth_token": big, "chat_id": "42"}, "", nil},
	}
	var ints strings.Builder
	for _, s := range secrets {
		f.put("secret", s.name, s.data)
		f.addHood(map[string]string{s.id: "telegram"})
		fields := ""
		if s.fields != "" {
			fields = ", fields: " + s.fields
		}
		fmt.Fprintf(&ints, "  - {name: %q, id: %q, provider: telegram, source: {mount: secret, path: \"{P}/%s\"}%s}\n", s.name, s.id, s.name, fields)
	}
	c := f.config(cfg{integrations: ints.String()})
	r := f.once(c)
	if r.code != 1 {
		t.Fatalf("exit code: got %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, s := range secrets {
		wantLine(t, r, s.name, s.want...)
		if len(s.want) > 0 && s.want[0] == "failed" {
			if got := f.count("", s.id); got != 0 {
				t.Errorf("%s: %d Hood requests for settings that cannot be built, want 0", s.name, got)
			}
		}
	}
	// Keys of other providers are ignored with a warning naming them; the
	// push carries only the provider's own settings.
	for _, key := range []string{"api_key", "password", "extra"} {
		if n := countLogs(r.stderr, "integration warning", map[string]string{"integration": "foreign-keys"}); n == 0 ||
			!strings.Contains(r.stderr, fmt.Sprintf(`vault key \"%s\"`, key)) {
			t.Errorf("log: want a warning naming the unmapped vault key %q of foreign-keys", key)
		}
	}
	for _, req := range f.requests("PATCH", "311") {
		if len(req.Dropped) > 0 || len(req.Settings) != 2 {
			t.Errorf("PATCH of foreign-keys: %d settings sent, %v dropped by Hood; want exactly auth_token and chat_id", len(req.Settings), req.Dropped)
		}
	}
	// The 1 MiB value: Hood's body limit (1 MiB) refuses the PATCH with a
	// 400, which is not retried; or it is pushed. Either way, clearly.
	line := summaryLine(r.stdout, "big")
	switch {
	case strings.Contains(line, "pushed"):
		t.Logf("the 1 MiB value was pushed")
	case strings.Contains(line, "failed") && strings.Contains(line, "400"):
		if got := f.count("PATCH", "313"); got != 1 {
			t.Errorf("PATCHes of the 1 MiB value: got %d, want 1 (a 400 is not retried)", got)
		}
		t.Logf("the 1 MiB value: %s", line[strings.Index(line, "failed"):])
	default:
		t.Errorf("summary of big: got %q, want pushed or a clear 400 failure", line)
	}
	if got := f.hood.Throttled(); got != 0 {
		t.Errorf("requests over Hood's limits: got %d, want 0", got)
	}
	// plan agrees, and prints no value.
	p := f.plan(c)
	wantLine(t, p, "good", "unchanged")
	wantLine(t, p, "number", "failed", "number")
}

func TestDuplicates(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tg := "provider: telegram, source: {mount: secret, path: \"{P}/tg\"}"
	c := f.config(cfg{integrations: fmt.Sprintf("  - {name: twin, id: \"1\", %s}\n  - {name: twin, id: \"2\", %s}\n  - {name: other, id: \"1\", %s}\n", tg, tg, tg)})
	f.wantInvalid([]string{"validate", "--config", c}, "integrations[1].name", `duplicate name "twin"`, "integrations[2].id", `duplicate id "1"`)

	// A key given twice in one mapping.
	b, err := os.ReadFile(c)
	if err != nil {
		t.Fatal(err)
	}
	dupKey := writeFile(t, f.dir, "dupkey.yaml", strings.Replace(string(b), "schedule: \"@every 24h\"", "schedule: \"@every 24h\"\nschedule: \"@every 1s\"", 1))
	f.wantInvalid([]string{"validate", "--config", dupKey}, "schedule")
	dupSection := writeFile(t, f.dir, "dupsection.yaml", string(b)+"hood:\n  base_url: http://127.0.0.1:1\n")
	f.wantInvalid([]string{"validate", "--config", dupSection}, "hood")
}

func TestValidateLargeConfig(t *testing.T) {
	t.Parallel()
	const n = 5000
	f := newFixture(t)
	var ints strings.Builder
	for i := range n {
		fmt.Fprintf(&ints, "  - {name: int-%d, id: \"%d\", provider: sendgrid_email, source: {mount: secret, path: \"{P}/s%d\"}, static: {default_sender_name: \"Sender %d\"}}\n", i, 100000+i, i%50, i)
	}
	c := f.config(cfg{integrations: ints.String()})
	began := time.Now()
	r := f.run("validate", "--config", c)
	took := time.Since(began)
	if r.code != 0 {
		t.Fatalf("validate: exit code %d, want 0\n%s", r.code, r.stderr)
	}
	if want := fmt.Sprintf("valid, %d integration(s)", n); !strings.Contains(r.stdout, want) {
		t.Errorf("validate: got %q, want %q", r.stdout, want)
	}
	t.Logf("validate of %d integrations took %v (reported, not asserted)", n, took.Round(time.Millisecond))

	// One bad entry among them is found and named.
	bad := strings.Replace(ints.String(), `id: "104999"`, `id: "10499x"`, 1)
	c = f.config(cfg{integrations: bad})
	f.wantInvalid([]string{"validate", "--config", c}, "integrations[4999].id")
}

func TestBadConfigFiles(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	dir := f.dir
	good := f.config(cfg{integrations: f.telegram("tg", "401")})

	t.Run("missing", func(t *testing.T) {
		f.wantInvalid([]string{"validate", "--config", filepath.Join(dir, "nope.yaml")}, "nope.yaml", "does not exist")
		f.wantInvalid([]string{"once", "--config", filepath.Join(dir, "nope.yaml")}, "does not exist")
	})
	t.Run("no --config", func(t *testing.T) {
		f.wantInvalid([]string{"validate"}, "no configuration file")
		f.wantInvalid([]string{"run"}, "no configuration file")
	})
	t.Run("directory", func(t *testing.T) {
		f.wantInvalid([]string{"validate", "--config", dir}, "is a directory")
		f.wantInvalid([]string{"run", "--config", dir}, "is a directory")
	})
	t.Run("empty", func(t *testing.T) {
		p := writeFile(t, dir, "empty.yaml", "")
		f.wantInvalid([]string{"validate", "--config", p}, "empty.yaml", "empty")
		p = writeFile(t, dir, "blank.yaml", "\n   \n\t\n# only a comment\n")
		f.wantInvalid([]string{"validate", "--config", p}, "blank.yaml")
	})
	t.Run("not YAML", func(t *testing.T) {
		p := writeFile(t, dir, "binary.yaml", "\x00\x01\x02\xff\xfe garbage \x7f")
		f.wantInvalid([]string{"validate", "--config", p}, "binary.yaml")
		p = writeFile(t, dir, "list.yaml", "- a\n- b\n")
		f.wantInvalid([]string{"validate", "--config", p}, "list.yaml")
	})
	t.Run("alias bomb", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
		for i := 1; i < 9; i++ {
			fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
		}
		p := writeFile(t, dir, "bomb.yaml", b.String())
		f.wantInvalid([]string{"validate", "--config", p}, "bomb.yaml")
	})
	t.Run("bad command line", func(t *testing.T) {
		f.wantInvalid([]string{"once", "--config", good, "--only", "no-such,../x"}, "no-such")
		f.wantInvalid([]string{"plan", "--config", good, "--only", "../../etc/passwd"}, "unknown integration")
		f.wantInvalid([]string{"once", "--config", good, "--log-level", "loud"}, "--log-level")
		f.wantInvalid([]string{"once", "--config", good, "stray-argument"}, "stray-argument")
		f.wantInvalid([]string{"frobnicate"}, "unknown command")
	})
	t.Run("unreadable", func(t *testing.T) {
		p := writeFile(t, dir, "locked.yaml", mustRead(t, good))
		if err := os.Chmod(p, 0); err != nil {
			t.Fatal(err)
		}
		fh, err := os.Open(p)
		if err != nil {
			f.wantInvalid([]string{"validate", "--config", p}, "locked.yaml", "permission denied")
			return
		}
		fh.Close()
		// Running as root: a mode 000 file is still readable by this user.
		// Run rotator as nobody instead, when this process may do that.
		if os.Getuid() != 0 {
			t.Skipf("running as uid %d, a mode 000 file is still readable: the unreadable case cannot be made here", os.Getuid())
		}
		r, err := runAsNobody(t, "validate", "--config", "locked.yaml")
		if err != nil {
			t.Skipf("running as root and cannot run rotator as nobody (%v): the unreadable case cannot be made here", err)
		}
		if r.code != 2 || !strings.Contains(r.stderr, "locked.yaml") || !strings.Contains(r.stderr, "permission denied") {
			t.Errorf("validate of a mode 000 file, as nobody: exit code %d, stderr %q; want 2 and a permission error naming the file", r.code, r.stderr)
		}
		t.Logf("tests run as root: the unreadable file was checked by running rotator as uid 65534 (nobody)")
	})
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// runAsNobody runs the binary as uid/gid 65534 in a world-readable scratch
// directory holding a copy of the binary and a mode-000 locked.yaml.
func runAsNobody(t *testing.T, args ...string) (result, error) {
	t.Helper()
	dir, err := os.MkdirTemp("", "rotator-hostile-nobody-*")
	if err != nil {
		return result{}, err
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		return result{}, err
	}
	bin := filepath.Join(dir, "rotator")
	b, err := os.ReadFile(rotatorBin)
	if err != nil {
		return result{}, err
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		return result{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, "locked.yaml"), []byte("vault: {}\n"), 0); err != nil {
		return result{}, err
	}
	if err := os.Chmod(filepath.Join(dir, "locked.yaml"), 0); err != nil {
		return result{}, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = childEnv(dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return result{}, err
	}
	noLeak(t, "stdout of rotator as nobody", out.Bytes())
	noLeak(t, "stderr of rotator as nobody", errb.Bytes())
	return result{code: cmd.ProcessState.ExitCode(), stdout: redact(out.String()), stderr: redact(errb.String())}, nil
}
