package vaulttest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// stopGrace is how long StopProcess waits for bao to end after SIGTERM
// before it kills the process group.
const stopGrace = 10 * time.Second

// ErrNotPersistent is returned by StopProcess, StartProcess and Restart on
// a dev server (Start), whose data lives in memory and would not survive.
var ErrNotPersistent = errors.New("not a persistent server (a dev server keeps its data in memory): use StartPersistent")

// ErrStopped is returned by StartProcess and Restart after Stop, which
// removed the server's storage.
var ErrStopped = errors.New("server stopped for good (Stop removed its storage)")

// StartPersistent builds or finds the bao binary (see BinPath) and starts a
// non-dev server with file storage in a temporary directory, listening on a
// free loopback port without TLS. It initialises the server (one key share,
// threshold one), keeps the root token and the unseal key, unseals it, and
// enables KV v2 at secret/ as a dev server has it. The server takes the
// same helpers as one from Start, and also StopProcess, StartProcess and
// Restart, which keep its address, storage, tokens and data. API audit
// device creation is allowed, as on a dev server. ctx bounds the start
// only; Stop ends the server and removes its storage.
func StartPersistent(ctx context.Context) (*Server, error) {
	return startRetrying(ctx, startPersistent)
}

// persistentConfig is the server configuration of StartPersistent.
const persistentConfig = `storage "file" {
  path = %q
}

listener "tcp" {
  address     = %q
  tls_disable = true
}

api_addr = %q

%s
`

func startPersistent(ctx context.Context, bin string) (*Server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rotator-bao-*")
	if err != nil {
		return nil, fmt.Errorf("create server directory: %w", err)
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	addr := "http://" + listen
	hcl := filepath.Join(dir, "config.hcl")
	// OpenBao refuses to enable audit devices through the API unless told
	// to; Vault allows it, knows no such setting, and locks memory unless told not to.
	extra := "unsafe_allow_api_audit_creation = true"
	if IsVault(bin) {
		extra = "disable_mlock = true"
	}
	cfg := fmt.Sprintf(persistentConfig, filepath.Join(dir, "data"), listen, addr, extra)
	if err := os.WriteFile(hcl, []byte(cfg), 0o600); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("write server config: %w", err)
	}
	s := &Server{
		Addr:       addr,
		LogFile:    filepath.Join(dir, "bao.log"),
		dir:        dir,
		bin:        bin,
		args:       []string{"server", "-config=" + hcl},
		persistent: true,
	}
	if err := s.spawn(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := s.initialise(ctx); err != nil {
		logTail := s.logTail(30)
		_ = s.Stop()
		if strings.Contains(logTail, "address already in use") {
			err = fmt.Errorf("%w: %w", errPortTaken, err)
		}
		return nil, fmt.Errorf("start persistent bao server at %s: %w\n--- bao log (last lines) ---\n%s", s.Addr, err, logTail)
	}
	return s, nil
}

// initialise initialises the new server, unseals it and mounts KV v2 at
// secret/.
func (s *Server) initialise(ctx context.Context) error {
	if err := s.waitAnswer(ctx); err != nil {
		return err
	}
	c, err := s.newClient("")
	if err != nil {
		return err
	}
	ictx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	resp, err := c.Sys().InitWithContext(ictx, &api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		return fmt.Errorf("initialise: %w", err)
	}
	if len(resp.KeysB64) != 1 || resp.RootToken == "" {
		return fmt.Errorf("initialise: got %d unseal keys and root token present=%v, want 1 and true",
			len(resp.KeysB64), resp.RootToken != "")
	}
	s.unsealKey = resp.KeysB64[0]
	s.RootToken = resp.RootToken
	if err := s.Unseal(ctx); err != nil {
		return err
	}
	if s.root, err = s.newClient(s.RootToken); err != nil {
		return fmt.Errorf("create root client: %w", err)
	}
	if err := s.EnableKV(ctx, "secret", 2); err != nil {
		return err
	}
	return nil
}

// waitAnswer polls /v1/sys/health until the server answers at all (sealed
// and uninitialised servers answer 5xx), the process ends, ctx ends or
// StartTimeout passes.
func (s *Server) waitAnswer(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, StartTimeout)
	defer cancel()
	p := s.current()
	for {
		if p.exited() {
			return fmt.Errorf("bao exited before it answered: %w", p.waitErr)
		}
		_, err := s.health(ctx)
		if err == nil {
			return nil
		}
		if serr := sleep(ctx, p.done, 25*time.Millisecond); serr != nil {
			return fmt.Errorf("wait for /v1/sys/health to answer (last: %w): %w", err, serr)
		}
	}
}

// health asks /v1/sys/health once and returns its status code.
func (s *Server) health(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Addr+"/v1/sys/health", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// StopProcess stops the process of a persistent server (SIGTERM, then
// SIGKILL after a grace period) and waits for it to end, keeping its
// storage: requests then fail with connection refused until StartProcess
// or Restart. Stopping a stopped server does nothing. It returns an error
// wrapping ErrNotPersistent for a dev server, and an error when the process
// had already ended on its own.
func (s *Server) StopProcess() error {
	if !s.persistent {
		return fmt.Errorf("stop bao process: %w", ErrNotPersistent)
	}
	s.life.Lock()
	defer s.life.Unlock()
	return s.stopProcessLocked()
}

// StartProcess starts the process of a persistent server stopped by
// StopProcess, on the same address and storage, unseals it and waits until
// it is healthy. Starting a running server does nothing. It returns an
// error wrapping ErrNotPersistent for a dev server, ErrStopped after Stop,
// and an error with the log's last lines when the server does not come
// back (such as when another process took its port meanwhile).
func (s *Server) StartProcess(ctx context.Context) error {
	if !s.persistent {
		return fmt.Errorf("start bao process: %w", ErrNotPersistent)
	}
	s.life.Lock()
	defer s.life.Unlock()
	return s.startProcessLocked(ctx)
}

// Restart stops the process of a persistent server and starts it again on
// the same address and storage, then unseals it: data, mounts, policies
// and tokens survive (as after Vault was stopped and started again). It
// returns an error wrapping ErrNotPersistent for a dev server and
// ErrStopped after Stop.
func (s *Server) Restart(ctx context.Context) error {
	if !s.persistent {
		return fmt.Errorf("restart bao: %w", ErrNotPersistent)
	}
	s.life.Lock()
	defer s.life.Unlock()
	if err := s.stopProcessLocked(); err != nil {
		return fmt.Errorf("restart bao: %w", err)
	}
	if err := s.startProcessLocked(ctx); err != nil {
		return fmt.Errorf("restart bao: %w", err)
	}
	return nil
}

// stopProcessLocked ends the current process; s.life is held.
func (s *Server) stopProcessLocked() error {
	if s.ended {
		return nil
	}
	p := s.current()
	if p.exited() {
		if p.stoppedOnPurpose() {
			return nil
		}
		return fmt.Errorf("bao exited on its own: %w\n%s", p.waitErr, s.logTail(20))
	}
	p.markStopped()
	if err := terminateGroup(p.pid); err != nil {
		return fmt.Errorf("stop bao: %w", err)
	}
	t := time.NewTimer(stopGrace)
	defer t.Stop()
	select {
	case <-p.done:
		return nil
	case <-t.C:
	}
	if err := killGroup(p.pid); err != nil {
		return fmt.Errorf("kill bao after %v: %w", stopGrace, err)
	}
	<-p.done
	return nil
}

// startProcessLocked starts a stopped server again and unseals it; s.life
// is held.
func (s *Server) startProcessLocked(ctx context.Context) error {
	if s.ended {
		return ErrStopped
	}
	if !s.current().exited() {
		return nil
	}
	if err := s.spawn(); err != nil {
		return err
	}
	err := s.waitAnswer(ctx)
	if err == nil {
		err = s.Unseal(ctx)
	}
	if err != nil {
		logTail := s.logTail(30)
		p := s.current()
		p.markStopped()
		_ = killGroup(p.pid)
		<-p.done
		return fmt.Errorf("start bao again at %s: %w\n--- bao log (last lines) ---\n%s", s.Addr, err, logTail)
	}
	return nil
}
