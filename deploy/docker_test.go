package deploy_test

import (
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/config"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case
	args string
	line int
}

type stage struct {
	from         string // image
	name         string // AS name
	instructions []instruction
}

func parseDockerfile(t *testing.T) []stage {
	t.Helper()
	lines := strings.Split(string(readFile(t, "Dockerfile")), "\n")
	var ins []instruction
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		start := i + 1
		for strings.HasSuffix(l, `\`) && i+1 < len(lines) {
			i++
			next := strings.TrimSpace(lines[i])
			if strings.HasPrefix(next, "#") {
				continue
			}
			l = strings.TrimSuffix(l, `\`) + " " + next
		}
		cmd, args, _ := strings.Cut(l, " ")
		ins = append(ins, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start})
	}
	var stages []stage
	for _, in := range ins {
		if in.cmd == "FROM" {
			f := strings.Fields(in.args)
			var img, name string
			for j := 0; j < len(f); j++ {
				switch {
				case strings.HasPrefix(f[j], "--"):
				case strings.EqualFold(f[j], "AS") && j+1 < len(f):
					name = f[j+1]
					j++
				case img == "":
					img = f[j]
				}
			}
			stages = append(stages, stage{from: img, name: name})
			continue
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Errorf("Dockerfile:%d: %s before the first FROM", in.line, in.cmd)
			}
			continue
		}
		s := &stages[len(stages)-1]
		s.instructions = append(s.instructions, in)
	}
	return stages
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.instructions {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

var numericUserRE = regexp.MustCompile(`^(\d+)(?::(\d+))?$`)

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stage(s), want a multi-stage build", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	// The build: static, trimmed, versioned.
	var buildRun string
	for _, in := range build.all("RUN") {
		if strings.Contains(in.args, "go build") {
			buildRun = in.args
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-X main.version=", "./cmd/rotator"} {
		if !strings.Contains(buildRun, want) {
			t.Errorf("Dockerfile: the go build command lacks %q: %q", want, buildRun)
		}
	}

	// The final stage: scratch or distroless, CA certificates, a numeric
	// non-root user, the admin port, no HEALTHCHECK.
	distroless := strings.HasPrefix(final.from, "gcr.io/distroless/")
	if final.from != "scratch" && !distroless {
		t.Errorf("Dockerfile: final stage FROM %s, want scratch or gcr.io/distroless/*", final.from)
	}
	if distroless && !strings.Contains(final.from, "/static") && !strings.Contains(final.from, "/base") {
		t.Errorf("Dockerfile: final stage FROM %s: want distroless static or base (CA certificates included)", final.from)
	}
	if final.from == "scratch" {
		hasCA := false
		for _, in := range final.all("COPY") {
			hasCA = hasCA || strings.Contains(in.args, "ca-certificates.crt")
		}
		if !hasCA {
			t.Error("Dockerfile: FROM scratch needs the CA certificates copied in (/etc/ssl/certs/ca-certificates.crt)")
		}
	}
	users := final.all("USER")
	if len(users) == 0 {
		t.Fatal("Dockerfile: the final stage sets no USER")
	}
	user := users[len(users)-1].args
	m := numericUserRE.FindStringSubmatch(user)
	if m == nil || m[1] == "0" || m[2] == "0" {
		t.Errorf("Dockerfile: USER %q, want a numeric non-root uid:gid", user)
	}
	for _, s := range stages {
		if len(s.all("HEALTHCHECK")) > 0 {
			t.Error("Dockerfile: has a HEALTHCHECK; orchestrators probe /healthz and /readyz instead")
		}
	}
	_, port, _ := net.SplitHostPort(config.DefaultAdminListen)
	exposed := false
	for _, in := range final.all("EXPOSE") {
		for _, p := range strings.Fields(in.args) {
			exposed = exposed || strings.TrimSuffix(p, "/tcp") == port
		}
	}
	if !exposed {
		t.Errorf("Dockerfile: the final stage does not EXPOSE the admin port %s", port)
	}

	// Read-only root file system: the state directory is a volume that the
	// user owns.
	const stateDir = "/var/lib/rotator"
	volume := false
	for _, in := range final.all("VOLUME") {
		volume = volume || strings.Contains(in.args, stateDir)
	}
	if !volume {
		t.Errorf("Dockerfile: no VOLUME %s", stateDir)
	}
	owned := false
	for _, in := range final.all("COPY") {
		f := strings.Fields(in.args)
		if len(f) > 0 && f[len(f)-1] == stateDir && strings.Contains(in.args, "--chown="+m[1]) {
			owned = true
		}
	}
	if !owned {
		t.Errorf("Dockerfile: %s is not created owned by the user %s (COPY --chown=%s ... %s)", stateDir, user, m[1], stateDir)
	}

	// Entrypoint in exec form, the binary copied from the build stage.
	eps := final.all("ENTRYPOINT")
	if len(eps) == 0 || !strings.HasPrefix(eps[len(eps)-1].args, "[") {
		t.Error("Dockerfile: want an ENTRYPOINT in exec form ([\"/usr/local/bin/rotator\"])")
	} else if !strings.Contains(eps[len(eps)-1].args, "rotator") {
		t.Errorf("Dockerfile: ENTRYPOINT %s does not run rotator", eps[len(eps)-1].args)
	}
	copied := false
	for _, in := range final.all("COPY") {
		copied = copied || (strings.Contains(in.args, "--from="+build.name) && strings.Contains(in.args, "/usr/local/bin/rotator"))
	}
	if !copied {
		t.Error("Dockerfile: the final stage does not copy the binary from the build stage to /usr/local/bin/rotator")
	}

	// The build stage copies everything the binary is built from: the
	// module's own packages that cmd/rotator imports.
	copiedDirs := map[string]bool{}
	for _, in := range build.all("COPY") {
		f := strings.Fields(in.args)
		for _, src := range f[:len(f)-1] {
			if !strings.HasPrefix(src, "--") {
				copiedDirs[strings.Trim(src, "./")] = true
			}
		}
	}
	for _, want := range []string{"go.mod", "go.sum"} {
		if !copiedDirs[want] {
			t.Errorf("Dockerfile: the build stage does not copy %s", want)
		}
	}
	const module = "github.com/ocamba-rotator/rotator"
	cmd := exec.Command(goTool(t), "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./cmd/rotator")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/rotator: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		rel, ok := strings.CutPrefix(pkg, module+"/")
		if !ok {
			continue
		}
		top, _, _ := strings.Cut(rel, "/")
		if !copiedDirs[top] {
			t.Errorf("Dockerfile: cmd/rotator imports %s, but the build stage does not copy %s/", pkg, top)
		}
	}
	if gomod := string(readFile(t, "go.mod")); regexp.MustCompile(`=>\s*\.\.?/`).MatchString(gomod) {
		t.Error("go.mod replaces a module with a local directory, which the Dockerfile's build stage does not copy")
	}
}

// dockerUser returns the numeric uid of the image's USER.
func dockerUser(t *testing.T) int {
	t.Helper()
	stages := parseDockerfile(t)
	users := stages[len(stages)-1].all("USER")
	if len(users) == 0 {
		t.Fatal("Dockerfile: no USER")
	}
	m := numericUserRE.FindStringSubmatch(users[len(users)-1].args)
	if m == nil {
		t.Fatalf("Dockerfile: USER %q is not numeric", users[len(users)-1].args)
	}
	uid, _ := strconv.Atoi(m[1])
	return uid
}
