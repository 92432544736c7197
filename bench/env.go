// Package bench holds the benchmarks of docs/BENCHMARKS.md and the harness they share.
package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

// Env is what every benchmark shares: the rotator binary built as the issue
// says (-trimpath -ldflags '-s -w', CGO_ENABLED=0 as make build does), the
// bao binary, and one OpenBao dev server on loopback with a file audit
// device, whose log counts the Vault requests rotator makes.
type Env struct {
	Root     string // module root
	Dir      string // temporary directory of this run
	Rotator  string // the rotator binary
	Bao      string // the bao binary (ROTATOR_BAO_BIN or .cache/bin/bao)
	Vault    *vaulttest.Server
	AuditLog string
}

// ModuleRoot walks up from the working directory to the directory holding
// this module's go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/ocamba-rotator/rotator\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod of github.com/ocamba-rotator/rotator above the working directory")
		}
		dir = parent
	}
}

// goBin is the go command on PATH (`go test` puts its own toolchain's first).
func goBin() string { return "go" }

// BuildRotator builds ./cmd/rotator into out with -trimpath -ldflags
// '-s -w'; cgo selects CGO_ENABLED (the Makefile and the Dockerfile build
// with CGO_ENABLED=0).
func BuildRotator(ctx context.Context, root, out string, cgo bool) error {
	cmd := exec.CommandContext(ctx, goBin(), "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./cmd/rotator")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED="+map[bool]string{true: "1", false: "0"}[cgo])
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build rotator: %w\n%s", err, b)
	}
	return nil
}

// NewEnv builds rotator, starts OpenBao and enables its file audit device.
func NewEnv(ctx context.Context) (*Env, error) {
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rotator-bench-*")
	if err != nil {
		return nil, err
	}
	e := &Env{Root: root, Dir: dir, Rotator: filepath.Join(dir, "rotator"), AuditLog: filepath.Join(dir, "vault-audit.log")}
	fail := func(err error) (*Env, error) {
		_ = e.Close()
		return nil, err
	}
	if err := BuildRotator(ctx, root, e.Rotator, false); err != nil {
		return fail(err)
	}
	// $ROTATOR_BAO_BIN, else <root>/.cache/bin/bao, built when missing.
	if e.Bao, err = vaulttest.BinPath(); err != nil {
		return fail(err)
	}
	if e.Vault, err = vaulttest.Start(ctx); err != nil {
		return fail(err)
	}
	if err := e.Vault.EnableFileAudit(ctx, e.AuditLog); err != nil {
		return fail(err)
	}
	return e, nil
}

// Close stops OpenBao and removes the temporary directory.
func (e *Env) Close() error {
	var errs []error
	if e.Vault != nil {
		errs = append(errs, e.Vault.Stop())
	}
	errs = append(errs, os.RemoveAll(e.Dir))
	return errors.Join(errs...)
}

// environ is the environment of a rotator process: Vault's address and
// root token, PATH and a HOME of its own; nothing else from the benchmark's.
func (e *Env) environ(token string) []string {
	if token == "" {
		token = e.Vault.RootToken
	}
	return []string{
		"VAULT_ADDR=" + e.Vault.Addr,
		"VAULT_TOKEN=" + token,
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + e.Dir,
	}
}

// Result is one run of the rotator binary.
type Result struct {
	Code           int
	Wall           time.Duration // from just before the start to the end of Wait
	MaxRSS         int64         // KiB, peak RSS of rotator (GNU time's %M); -1 if unknown
	User, Sys      time.Duration // CPU of the child
	Stdout, Stderr string
}

// TimeBin is GNU time, used to read a child's peak RSS (Debian package
// "time"). getrusage cannot tell it here: Go starts children with vfork,
// and Linux carries the parent's peak RSS into ru_maxrss across the exec,
// so a child of the (large) benchmark process would report the benchmark's
// own peak.
const TimeBin = "/usr/bin/time"

// Run runs the rotator binary with args and waits for it, logged in to
// Vault with the root token. Under GNU time when it is installed, for the
// peak RSS (MaxRSS is -1 without it).
func (e *Env) Run(ctx context.Context, args ...string) (Result, error) {
	bin, argv := e.Rotator, args
	var rssFile string
	if _, err := os.Stat(TimeBin); err == nil {
		f, err := os.CreateTemp(e.Dir, "maxrss-*")
		if err != nil {
			return Result{}, err
		}
		rssFile = f.Name()
		f.Close()
		defer os.Remove(rssFile)
		bin, argv = TimeBin, append([]string{"-f", "%M", "-o", rssFile, e.Rotator}, args...)
	}
	cmd := exec.CommandContext(ctx, bin, argv...)
	cmd.Env = e.environ("")
	cmd.Dir = e.Dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	r := Result{Wall: wall, Stdout: out.String(), Stderr: errb.String(), MaxRSS: -1}
	if cmd.ProcessState == nil {
		return r, fmt.Errorf("run rotator %s: %w", strings.Join(args, " "), err)
	}
	r.Code = cmd.ProcessState.ExitCode()
	// The rusage of GNU time includes its waited-for child, rotator.
	r.User, r.Sys = cmd.ProcessState.UserTime(), cmd.ProcessState.SystemTime()
	if rssFile != "" {
		if b, rerr := os.ReadFile(rssFile); rerr == nil {
			// The last line: GNU time puts "Command exited with non-zero
			// status N" before it.
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if v, perr := strconv.ParseInt(strings.TrimSpace(lines[len(lines)-1]), 10, 64); perr == nil {
				r.MaxRSS = v
			}
		}
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return r, fmt.Errorf("run rotator %s: %w", strings.Join(args, " "), err)
	}
	return r, nil
}

// Check returns an error unless the run exited 0; the error holds the tail
// of its output.
func (r Result) Check(what string) error {
	if r.Code == 0 {
		return nil
	}
	return fmt.Errorf("%s: exit code %d\nstdout (tail):\n%s\nstderr (tail):\n%s", what, r.Code, tailLines(r.Stdout, 10), tailLines(r.Stderr, 10))
}

// Summary is the last line of `once` and `plan`: "N integration(s): ...".
func (r Result) Summary() string {
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	return lines[len(lines)-1]
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// AuditMark is the current size of the Vault audit log: pass it to
// AuditSince to count what came after.
func (e *Env) AuditMark() (int64, error) {
	fi, err := os.Stat(e.AuditLog)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// AuditCount is the Vault requests found in the audit log.
type AuditCount struct {
	Requests int
	ByPath   map[string]int
	ByName   map[string]int // by the token's display name ("root", "token-NAME")
}

// AuditSince counts the request entries of the Vault audit log written
// after offset (one JSON line per request and one per response: only the
// requests are counted).
func (e *Env) AuditSince(offset int64) (AuditCount, error) {
	f, err := os.Open(e.AuditLog)
	if err != nil {
		return AuditCount{}, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return AuditCount{}, err
	}
	c := AuditCount{ByPath: map[string]int{}, ByName: map[string]int{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var entry struct {
			Type string `json:"type"`
			Auth struct {
				DisplayName string `json:"display_name"`
			} `json:"auth"`
			Request struct {
				Path string `json:"path"`
			} `json:"request"`
		}
		if err := json.Unmarshal(sc.Bytes(), &entry); err != nil {
			return c, fmt.Errorf("audit log: %w", err)
		}
		if entry.Type != "request" {
			continue
		}
		c.Requests++
		c.ByPath[entry.Request.Path]++
		c.ByName[entry.Auth.DisplayName]++
	}
	return c, sc.Err()
}

// FreeAddr returns a loopback address whose port was free a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// Process is a long-running child (rotator run, bao agent) whose output goes
// to a log file.
type Process struct {
	Cmd     *exec.Cmd
	Log     string
	Started time.Time
	done    chan struct{}
	err     error
}

// StartProcess starts bin with args and env, its output appended to log.
func StartProcess(bin string, args, env []string, dir, log string) (*Process, error) {
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(bin, args...)
	cmd.Env, cmd.Dir, cmd.Stdout, cmd.Stderr = env, dir, f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &Process{Cmd: cmd, Log: log, done: make(chan struct{})}
	p.Started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, waits up to grace, then kills it.
func (p *Process) Stop(grace time.Duration) error {
	if p.Exited() {
		return nil
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		_ = p.Cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %s: killed", filepath.Base(p.Cmd.Path), grace)
	}
}

// CountInLog counts the lines of the process's log that contain s.
func (p *Process) CountInLog(s string) int {
	b, err := os.ReadFile(p.Log)
	if err != nil {
		return 0
	}
	return bytes.Count(b, []byte(s))
}

// WaitLog waits until the log holds n lines containing s.
func (p *Process) WaitLog(s string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for p.CountInLog(s) < n {
		if p.Exited() {
			return fmt.Errorf("process exited while waiting for %q in its log:\n%s", s, p.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %d× %q in the log after %s:\n%s", n, s, timeout, p.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func (p *Process) tail() string {
	b, _ := os.ReadFile(p.Log)
	return tailLines(string(b), 15)
}
