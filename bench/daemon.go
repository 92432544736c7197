package bench

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// CreateToken creates a renewable token with the root policy and the
// server's default TTL, whose audit entries carry display name
// "token-<name>": rotator and bao agent each get one, so that the audit log
// tells their requests apart.
func (e *Env) CreateToken(ctx context.Context, name string) (string, error) {
	return e.Vault.CreateTokenWith(ctx, &api.TokenCreateRequest{Policies: []string{"root"}, DisplayName: name})
}

// StartDaemon starts `rotator run --config cfg`, logged in to Vault with
// token (the root token when empty), its JSON log in <cfg>.log; extra is
// added to its environment (GOGC=..., for instance).
func (e *Env) StartDaemon(cfg, token string, extra ...string) (*Process, error) {
	return StartProcess(e.Rotator, []string{"run", "--config", cfg, "--log-format", "json"},
		append(e.environ(token), extra...), e.Dir, cfg+".log")
}

// WaitReady polls GET http://addr/readyz every 2ms until it answers 200 and
// returns the time from the process start.
func WaitReady(p *Process, addr string, timeout time.Duration) (time.Duration, error) {
	c := &http.Client{Timeout: time.Second}
	defer c.CloseIdleConnections()
	deadline := p.Started.Add(timeout)
	for {
		resp, err := c.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(p.Started), nil
			}
		}
		if p.Exited() {
			return 0, fmt.Errorf("rotator run exited before it was ready:\n%s", p.tail())
		}
		if time.Now().After(deadline) && err != nil {
			return 0, fmt.Errorf("not ready after %s (last: %w):\n%s", timeout, err, p.tail())
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("not ready after %s:\n%s", timeout, p.tail())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Agent is a `bao agent` that renders the world's secrets with templates.
type Agent struct {
	*Process
	Out string // directory of the rendered files
	n   int
}

// StartAgent starts `bao agent` rendering every secret of w into a file,
// one template per secret (all its keys), authenticated with token through
// the token_file auto-auth method, re-rendering static secrets every
// interval (template_config.static_secret_render_interval).
func (e *Env) StartAgent(w *World, token string, interval time.Duration) (*Agent, error) {
	dir := filepath.Join(w.Dir, "agent")
	out := filepath.Join(dir, "out")
	if err := os.MkdirAll(out, 0o700); err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "vault {\n  address = %q\n}\n", e.Vault.Addr)
	fmt.Fprintf(&b, "auto_auth {\n  method \"token_file\" {\n    config = {\n      token_file_path = %q\n    }\n  }\n}\n", tokenFile)
	fmt.Fprintf(&b, "template_config {\n  static_secret_render_interval = %q\n}\n", interval.String())
	for p := range w.Paths {
		contents := fmt.Sprintf(`{{ with secret "secret/data/%s" }}{{ range $k, $v := .Data.data }}{{ $k }}={{ $v }}
{{ end }}{{ end }}`, w.SecretPath(p))
		fmt.Fprintf(&b, "template {\n  contents = %q\n  destination = %q\n}\n", contents, filepath.Join(out, fmt.Sprintf("s%05d", p)))
	}
	hcl := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(hcl, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	// The agent's environment: no VAULT_*/BAO_* of the benchmark's.
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	p, err := StartProcess(e.Bao, []string{"agent", "-config=" + hcl}, env, dir, filepath.Join(dir, "agent.log"))
	if err != nil {
		return nil, err
	}
	return &Agent{Process: p, Out: out, n: w.Paths}, nil
}

// WaitRendered waits until every secret has been rendered to a non-empty
// file and returns the time from the agent's start.
func (a *Agent) WaitRendered(timeout time.Duration) (time.Duration, error) {
	deadline := a.Started.Add(timeout)
	for {
		n := 0
		entries, _ := os.ReadDir(a.Out)
		for _, en := range entries {
			if fi, err := en.Info(); err == nil && fi.Size() > 0 && !strings.HasPrefix(en.Name(), ".") {
				n++
			}
		}
		if n >= a.n {
			return time.Since(a.Started), nil
		}
		if a.Exited() {
			return 0, fmt.Errorf("bao agent exited after rendering %d of %d:\n%s", n, a.n, a.tail())
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("bao agent rendered %d of %d in %s:\n%s", n, a.n, timeout, a.tail())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
