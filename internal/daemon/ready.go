package daemon

import (
	"context"
	"sync"
	"time"

	"github.com/ocamba-rotator/rotator/internal/vault"
)

const (
	// readyMaxAge is how old the Vault health check behind a /readyz answer
	// may be: at most one health request starts per readyMaxAge, however
	// many probes ask.
	readyMaxAge = time.Second
	// readyHealthTimeout bounds one health request.
	readyHealthTimeout = 3 * time.Second
)

// readyGate shares Vault health checks between readiness probes. A probe
// gets the result of the check that started less than readyMaxAge before
// it arrived, waiting for it if it is still running; otherwise it makes a
// new check, which the probes after it share. A probe flood is therefore
// never a Vault flood, and no answer is older than readyMaxAge.
type readyGate struct {
	mu   sync.Mutex
	last *healthCheck
}

// healthCheck is one Vault health request and, once done is closed, its
// result.
type healthCheck struct {
	client  *vault.Client
	started time.Time
	done    chan struct{}
	err     error
}

func newReadyGate() *readyGate { return &readyGate{} }

// check returns the result of a Vault health check of vc that started less
// than readyMaxAge ago, making one if there is none. A caller whose ctx
// ends stops waiting; the check itself runs to its own timeout, for the
// probes that share it.
func (g *readyGate) check(ctx context.Context, vc *vault.Client) error {
	now := time.Now()
	g.mu.Lock()
	c := g.last
	if c != nil && c.client == vc && now.Sub(c.started) < readyMaxAge {
		g.mu.Unlock()
		select {
		case <-c.done:
			return c.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c = &healthCheck{client: vc, started: now, done: make(chan struct{})}
	g.last = c
	g.mu.Unlock()

	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), readyHealthTimeout)
	defer cancel()
	c.err = vc.Health(hctx)
	close(c.done)
	return c.err
}
