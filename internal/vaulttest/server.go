package vaulttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// StartTimeout bounds how long Start waits for a started server to become
// healthy (the build of a missing binary is not counted).
const StartTimeout = 20 * time.Second

// startAttempts is how many times Start tries a new port when the one it
// picked was taken before the server could bind it.
const startAttempts = 3

// errPortTaken marks a start that failed because the port was taken.
var errPortTaken = errors.New("port taken")

// unsealKeyRE finds the dev server's unseal key in its output.
var unsealKeyRE = regexp.MustCompile(`(?m)^Unseal Key: (\S+)`)

// Server is a running bao server, unsealed, with KV v2 at secret/: a dev
// server (Start: in-memory storage) or a persistent one (StartPersistent:
// file storage, restartable). Its methods are safe for concurrent use.
type Server struct {
	// Addr is the server's address, http://127.0.0.1:PORT.
	Addr string
	// RootToken is the server's root token, random for each server.
	RootToken string
	// LogFile holds the server's output until Stop removes it. The output
	// of every process of a persistent server is appended to it.
	LogFile string

	unsealKey  string
	dir        string
	root       *api.Client
	bin        string   // the bao binary
	args       []string // the arguments of each start
	persistent bool

	life  sync.Mutex // serialises StopProcess, StartProcess, Restart and Stop
	ended bool       // Stop was called; guarded by life

	mu   sync.Mutex // guards proc
	proc *process   // the current (or last) process

	stopOnce sync.Once
	stopErr  error
}

// process is one run of the bao binary.
type process struct {
	pid     int
	done    chan struct{} // closed when the process has ended
	waitErr error         // set before done is closed

	mu      sync.Mutex
	stopped bool // ended on purpose (StopProcess), not on its own
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// markStopped records that the process is being ended on purpose.
func (p *process) markStopped() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopped = true
}

// stoppedOnPurpose reports whether markStopped was called.
func (p *process) stoppedOnPurpose() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopped
}

// current returns the server's current (or last) process.
func (s *Server) current() *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// done is closed when the current process has ended.
func (s *Server) done() <-chan struct{} { return s.current().done }

// Start builds or finds the bao binary (see BinPath), starts
// `bao server -dev` on a free loopback port with a random root token, and
// waits up to StartTimeout for /v1/sys/health to answer 200 and for the
// unseal key to be printed. ctx bounds the start only: the server runs until
// Stop. The server's output goes to a temporary log file whose last lines
// (with the root token and unseal key blanked) are part of every start error.
func Start(ctx context.Context) (*Server, error) {
	return startRetrying(ctx, start)
}

// startRetrying finds the bao binary and runs start, again on another free
// port (up to startAttempts times) when the one it picked was taken meanwhile.
func startRetrying(ctx context.Context, start func(context.Context, string) (*Server, error)) (*Server, error) {
	bin, err := binPath(ctx)
	if err != nil {
		return nil, fmt.Errorf("find bao binary: %w", err)
	}
	var lastErr error
	for range startAttempts {
		s, err := start(ctx, bin)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !errors.Is(err, errPortTaken) || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

func start(ctx context.Context, bin string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	token, err := randomToken()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rotator-bao-*")
	if err != nil {
		return nil, fmt.Errorf("create server directory: %w", err)
	}
	// OpenBao refuses to enable audit devices through the API unless told
	// to; Vault allows it and knows no such setting.
	extra := "unsafe_allow_api_audit_creation = true\n"
	if IsVault(bin) {
		extra = "disable_mlock = true\n"
	}
	hcl := filepath.Join(dir, "extra.hcl")
	if err := os.WriteFile(hcl, []byte(extra), 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("write server config: %w", err)
	}
	logPath := filepath.Join(dir, "bao.log")

	s := &Server{
		Addr:      "http://127.0.0.1:" + strconv.Itoa(port),
		RootToken: token,
		LogFile:   logPath,
		dir:       dir,
		bin:       bin,
		args: []string{"server", "-dev",
			"-dev-listen-address=127.0.0.1:" + strconv.Itoa(port),
			"-dev-root-token-id=" + token,
			"-dev-no-store-token",
			"-config=" + hcl,
		},
	}
	if err := s.spawn(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}

	if err := s.waitReady(ctx); err != nil {
		logTail := s.logTail(30)
		_ = s.Stop()
		if strings.Contains(logTail, "address already in use") {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return nil, fmt.Errorf("start bao server at %s: %w\n--- bao log (last lines) ---\n%s", s.Addr, err, logTail)
	}
	root, err := s.newClient(s.RootToken)
	if err != nil {
		_ = s.Stop()
		return nil, fmt.Errorf("create root client: %w", err)
	}
	s.root = root
	return s, nil
}

// spawn starts a process of s.bin with s.args in s.dir, its output appended
// to s.LogFile, and makes it the current process.
func (s *Server) spawn() error {
	logf, err := os.OpenFile(s.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open server log: %w", err)
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.dir
	cmd.Env = childEnv(s.dir)
	cmd.Stdout = logf
	cmd.Stderr = logf
	setProcAttr(cmd)

	p := &process{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// Stays locked until the process ends: on Linux the process is
		// killed when the thread that started it exits (see setProcAttr).
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	err = <-started
	_ = logf.Close() // the child has its own copy
	if err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	p.pid = cmd.Process.Pid
	s.mu.Lock()
	s.proc = p
	s.mu.Unlock()
	return nil
}

// waitReady polls until the server is healthy and its unseal key printed,
// the process ends, ctx ends or StartTimeout passes.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	healthy := false
	p := s.current()
	for {
		if p.exited() {
			return fmt.Errorf("bao exited before it was ready: %w", p.waitErr)
		}
		if !healthy {
			healthy = s.healthy(ctx) == nil
		}
		if healthy {
			if b, err := os.ReadFile(s.LogFile); err == nil {
				if m := unsealKeyRE.FindSubmatch(b); m != nil {
					s.unsealKey = string(m[1])
					return nil
				}
			}
		}
		if err := sleep(ctx, p.done, 25*time.Millisecond); err != nil {
			if healthy {
				return fmt.Errorf("wait for the unseal key in the output: %w", err)
			}
			return fmt.Errorf("wait for /v1/sys/health: %w", err)
		}
	}
}

// healthy asks /v1/sys/health once; nil means 200 (initialised, unsealed, active).
func (s *Server) healthy(ctx context.Context) error {
	code, err := s.health(ctx)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("sys/health answered %d", code)
	}
	return nil
}

// waitHealthy polls /v1/sys/health until it answers 200, ctx ends or
// StartTimeout passes.
func (s *Server) waitHealthy(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	for {
		err := s.healthy(ctx)
		if err == nil {
			return nil
		}
		if serr := sleep(ctx, s.done(), 25*time.Millisecond); serr != nil {
			return fmt.Errorf("wait for health (last: %w): %w", err, serr)
		}
	}
}

// sleep waits for d, or returns an error when ctx ends or done is closed.
func sleep(ctx context.Context, done <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-done:
		return errors.New("bao exited")
	}
}

// Stop kills the server's process group, waits for the process to end and
// removes its temporary directory (the log file and, for a persistent
// server, its storage included). It is idempotent and returns the same
// result each time: an error when the server had already died on its own
// (not through StopProcess), or could not be killed or cleaned up.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.life.Lock()
		defer s.life.Unlock()
		s.ended = true
		var errs []error
		p := s.current()
		switch {
		case p.exited() && p.stoppedOnPurpose():
		case p.exited():
			errs = append(errs, fmt.Errorf("bao exited before Stop: %w\n%s", p.waitErr, s.logTail(20)))
		default:
			p.markStopped()
			if err := killGroup(p.pid); err != nil {
				errs = append(errs, fmt.Errorf("kill bao: %w", err))
			}
			<-p.done
		}
		if err := os.RemoveAll(s.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove server directory: %w", err))
		}
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

// Client returns a new API client for the server, logged in with the root
// token, without namespace and without retries. Changing it (SetToken,
// SetNamespace) does not affect the server's other clients.
func (s *Server) Client() *api.Client {
	c, err := s.newClient(s.RootToken)
	if err != nil {
		// Only the environment (VAULT_* variables read by api.NewClient) can
		// make this fail after Start succeeded; fall back to the one made then.
		return s.root
	}
	return c
}

// ClientWithToken returns a new API client for the server that uses token.
func (s *Server) ClientWithToken(token string) (*api.Client, error) {
	return s.newClient(token)
}

func (s *Server) newClient(token string) (*api.Client, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("read vault client environment: %w", cfg.Error)
	}
	cfg.Address = s.Addr
	cfg.MaxRetries = 0
	cfg.Timeout = 30 * time.Second
	cfg.Limiter = nil
	c, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("create vault client: %w", err)
	}
	c.SetToken(token)
	c.ClearNamespace()
	return c, nil
}

// logTail returns the last n lines of the server's output, with the root
// token and the unseal key blanked.
func (s *Server) logTail(n int) string {
	b, err := os.ReadFile(s.LogFile)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	out := tail(b, n)
	out = unsealKeyRE.ReplaceAllString(out, "Unseal Key: [REDACTED]")
	if s.RootToken != "" {
		out = strings.ReplaceAll(out, s.RootToken, "[REDACTED]")
	}
	if s.unsealKey != "" {
		out = strings.ReplaceAll(out, s.unsealKey, "[REDACTED]")
	}
	return out
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// freePort returns a loopback port that was free a moment ago, as was the
// next one (the dev server puts its cluster listener on port+1).
func freePort() (int, error) {
	var lastErr error
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port+1))
		_ = l.Close()
		if err != nil {
			lastErr = err
			continue
		}
		_ = l2.Close()
		return port, nil
	}
	return 0, fmt.Errorf("find two free adjacent ports: %w", lastErr)
}

// randomToken returns a fresh root token id.
func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate root token: %w", err)
	}
	return "root-" + hex.EncodeToString(b), nil
}

// childEnv is the server's environment: the test's, less every VAULT_* and
// BAO_* variable, with HOME in the server's own directory.
func childEnv(home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "VAULT_") || strings.HasPrefix(name, "BAO_") || name == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+home)
}
