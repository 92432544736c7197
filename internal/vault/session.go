package vault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
)

// OpRenew is the operation passed to Options.Observe for each token
// renewal request that KeepAlive makes.
const OpRenew = "renew"

// OpHealth is the Op of the errors of Health (its requests are not passed
// to Options.Observe).
const OpHealth = "health"

// HealthTimeout bounds Health's request.
const HealthTimeout = 2 * time.Second

// The bounds of KeepAlive's delays between login attempts. Each failed
// attempt doubles the delay, from MinRetryDelay up to MaxRetryDelay, and
// each delay is spread by up to a fifth either way (within the bounds).
const (
	MinRetryDelay = time.Second
	MaxRetryDelay = time.Minute
)

// loginState is a consistent view of the client's login.
type loginState struct {
	gen           uint64
	authenticated bool
	token         string      // never logged
	secret        *api.Secret // what the login returned
	at            time.Time   // when the login was made
	changed       <-chan struct{}
}

// state returns the current login state; its changed channel is closed at
// the next change of gen or authenticated.
func (c *Client) state() loginState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return loginState{
		gen:           c.gen,
		authenticated: c.authenticated,
		token:         c.api.Token(),
		secret:        c.authSecret,
		at:            c.loginAt,
		changed:       c.changed,
	}
}

// KeepAlive keeps the client's login alive until ctx ends; the daemon runs
// it in a goroutine of its own for as long as it runs.
//
// While the token is renewable, KeepAlive renews it with an
// api.LifetimeWatcher (RenewBehaviorIgnoreErrors: about two thirds into
// each lease, with jitter). A token that is not renewable is watched the
// same way, without renewals. A token that never expires (TTL 0, such as a
// root token) needs no upkeep. KeepAlive logs in again when the token can
// no longer be kept:
//
//   - its max TTL is near (renewals no longer extend it), or it is not
//     renewable and nears its expiry;
//   - a renewal failed (no answer, sealed, an HTTP error): the token stays
//     in force while new logins are tried;
//   - a renewal was denied and a look-up shows that Vault refuses the token
//     (revoked, expired): the client becomes unauthenticated at once. A
//     token that is valid but may not renew itself is kept until it nears
//     its expiry instead.
//
// approle and kubernetes log in afresh; the token method re-reads
// token_file or $VAULT_TOKEN and checks that token.
//
// When the client is not logged in (at the start, or after a refused
// login), KeepAlive logs in. Failed logins are retried with capped
// exponential backoff and jitter, from MinRetryDelay to MaxRetryDelay,
// until one succeeds or ctx ends; consecutive logins of KeepAlive are at
// least MinRetryDelay apart. When the token expires before a new login
// succeeds (Vault unreachable or sealed for longer than its TTL), the
// client becomes unauthenticated (see Options.OnAuth). Logins made by
// ReadKV meanwhile are picked up: KeepAlive then keeps their token.
//
// KeepAlive never returns early on errors; it returns when ctx is done,
// once every goroutine it started has ended, after closing the idle
// connections of the client's HTTP clients. Renewal requests are passed to
// Options.Observe as OpRenew. Run one KeepAlive per client at a time.
func (c *Client) KeepAlive(ctx context.Context) {
	k, err := c.newKeeper(ctx)
	if err != nil {
		// Only a CA file that changed since New, or a malformed VAULT_*
		// variable vault/api parses, can get here: keep the login alive
		// without renewals.
		c.log.WarnContext(ctx, "vault token renewal unavailable, logging in again before expiry instead",
			"method", c.method, "error", err.Error())
	}
	defer c.closeIdle()
	if k != nil {
		defer k.close()
	}
	c.log.DebugContext(ctx, "vault keep-alive started", "method", c.method)
	defer c.log.DebugContext(ctx, "vault keep-alive stopped", "method", c.method)

	var (
		bo        backoff
		lastLogin time.Time // when KeepAlive last tried to log in
	)
	// login replaces the login of generation gen (unless another login
	// succeeded since): it waits so that KeepAlive's attempts are at least
	// MinRetryDelay apart, then tries, and retries with backoff, until a
	// login succeeds or ctx ends. expiry is when gen's token expires (zero:
	// not logged in, or no expiry).
	login := func(gen uint64, expiry time.Time) {
		if wait := MinRetryDelay - time.Since(lastLogin); wait > 0 {
			if !c.wait(ctx, wait, gen, expiry) {
				return
			}
		}
		for {
			lastLogin = time.Now()
			err := c.relogin(ctx, gen)
			if err == nil {
				bo.reset()
				return
			}
			if ctx.Err() != nil || c.loggedInSince(gen) {
				return
			}
			delay := bo.next()
			c.log.InfoContext(ctx, "vault login will be retried",
				"method", c.method, "attempt", bo.attempt, "retry_in", delay)
			if !c.wait(ctx, delay, gen, expiry) {
				return
			}
		}
	}

	for ctx.Err() == nil {
		st := c.state()
		if !st.authenticated {
			login(st.gen, time.Time{})
			continue
		}
		if due, expiry := c.keep(ctx, k, st); due {
			login(st.gen, expiry)
		}
	}
}

// loggedInSince reports whether the client is authenticated by a login
// newer than generation gen.
func (c *Client) loggedInSince(gen uint64) bool {
	g, ok := c.generation()
	return ok && g != gen
}

// wait waits for d, or until ctx ends or a login newer than generation gen
// succeeds. When expiry (if not zero) passes meanwhile, the login of
// generation gen is marked invalid. It reports whether ctx is still alive.
func (c *Client) wait(ctx context.Context, d time.Duration, gen uint64, expiry time.Time) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	var expired <-chan time.Time
	if !expiry.IsZero() {
		if until := time.Until(expiry); until <= 0 {
			c.expire(ctx, gen)
		} else {
			et := time.NewTimer(until)
			defer et.Stop()
			expired = et.C
		}
	}
	changed := c.state().changed
	if c.loggedInSince(gen) {
		return true
	}
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		case <-expired:
			expired = nil
			c.expire(ctx, gen)
		case <-changed:
			if c.loggedInSince(gen) {
				return true
			}
		}
		changed = c.state().changed
	}
}

// expire marks the login of generation gen invalid, its token having
// expired, unless it already is or a newer login replaced it.
func (c *Client) expire(ctx context.Context, gen uint64) {
	if g, ok := c.generation(); ok && g == gen {
		c.log.WarnContext(ctx, "vault token expired before a new login succeeded", "method", c.method)
		c.markInvalid(gen)
	}
}

// keep keeps the login st alive until it has to be replaced, ctx ends or
// the login changes. It returns due=true, with the time the token expires,
// when a new login is due; false otherwise.
func (c *Client) keep(ctx context.Context, k *keeper, st loginState) (due bool, expiry time.Time) {
	renewable, ttl := authInfo(st.secret)
	if neverExpires(st.secret) {
		select {
		case <-ctx.Done():
		case <-st.changed:
		}
		return false, time.Time{}
	}
	// Vault counts TTLs in whole seconds, rounded down: expiry is early.
	expiry = st.at.Add(ttl)
	if ttl <= 0 {
		return true, expiry // expiring now (a token read from a file, at its end)
	}
	if k == nil {
		// No renewals: log in again two thirds into the TTL.
		t := time.NewTimer(time.Until(st.at.Add(ttl * 2 / 3)))
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false, time.Time{}
		case <-st.changed:
			return false, time.Time{}
		case <-t.C:
			return true, expiry
		}
	}

	k.reset()
	w, err := k.api.NewLifetimeWatcher(&api.LifetimeWatcherInput{
		Secret: &api.Secret{Auth: &api.SecretAuth{
			ClientToken:   st.token,
			Renewable:     renewable,
			LeaseDuration: int(ttl / time.Second),
		}},
		RenewBehavior: api.RenewBehaviorIgnoreErrors,
	})
	if err != nil {
		// Only a missing token or secret gets here; log in again.
		c.log.WarnContext(ctx, "vault token cannot be watched, logging in again", "method", c.method, "error", err.Error())
		return true, expiry
	}
	var wg sync.WaitGroup
	wg.Go(w.Start)
	finished := false
	defer func() {
		w.Stop()
		if !finished {
			<-w.DoneCh() //nolint:errcheck // the error of a watcher we stopped
		}
		wg.Wait()
	}()

	for {
		select {
		case <-ctx.Done():
			return false, time.Time{}
		case <-st.changed:
			return false, time.Time{}
		case r := <-w.RenewCh():
			if r != nil && r.Secret != nil && r.Secret.Auth != nil {
				lease := time.Duration(r.Secret.Auth.LeaseDuration) * time.Second
				expiry = time.Now().Add(lease)
				c.log.DebugContext(ctx, "vault token renewed", "method", c.method, "ttl", lease.String())
			}
		case err := <-w.DoneCh():
			finished = true
			args := []any{"method", c.method, "ttl", time.Until(expiry).Round(time.Millisecond).String()}
			if err != nil {
				args = append(args, "error", classify(Error{Op: OpRenew, Addr: c.addr}, err).Error())
			}
			c.log.InfoContext(ctx, "vault token can no longer be renewed, logging in again", args...)
			return true, expiry
		case f := <-k.failed:
			if f.refused {
				// Revoked or expired, or only not allowed to renew itself?
				// Ask Vault. The watcher makes no more renewals either way
				// (it takes a denial as "not renewable").
				refused := c.tokenRefused(ctx)
				if ctx.Err() != nil || c.changedSince(st.gen) {
					return false, time.Time{}
				}
				if refused {
					c.log.WarnContext(ctx, "vault token no longer valid, logging in again", "method", c.method)
					c.markInvalid(st.gen)
					return false, time.Time{}
				}
				c.log.InfoContext(ctx, "vault token may not renew itself, logging in again before it expires", "method", c.method)
				k.resume()
				continue
			}
			c.log.InfoContext(ctx, "vault token renewal failed, logging in again", "method", c.method,
				"ttl", time.Until(expiry).Round(time.Millisecond).String(), "error", f.detail)
			return true, expiry
		}
	}
}

// neverExpires reports whether the token of a login never expires (such as
// a root token): a login answer without lease duration, or a token look-up
// with no TTL and no expire_time.
func neverExpires(sec *api.Secret) bool {
	if sec == nil {
		return true // no login: nothing to keep
	}
	if sec.Auth != nil {
		return sec.Auth.LeaseDuration <= 0
	}
	if ttl, err := sec.TokenTTL(); err == nil && ttl > 0 {
		return false
	}
	exp, ok := sec.Data["expire_time"]
	return !ok || exp == nil || exp == ""
}

// keeper holds KeepAlive's renewal client.
type keeper struct {
	api  *api.Client // renewals only
	http *http.Client
	rt   *renewTransport
	// failed receives the first failure of the current watcher's renewals.
	failed <-chan renewFailure
}

// renewFailure is a failed renewal request.
type renewFailure struct {
	refused bool   // answered 403
	detail  string // what went wrong, in words (no secret)
}

// newKeeper builds the renewal client of a KeepAlive that runs until ctx
// ends.
func (c *Client) newKeeper(ctx context.Context) (*keeper, error) {
	failed := make(chan renewFailure, 1)
	rt := &renewTransport{ctx: ctx, observe: c.observe, addr: c.addr, failed: failed}
	client, hc, err := c.newAPI(func(next http.RoundTripper) http.RoundTripper {
		rt.next = next
		return rt
	})
	if err != nil {
		return nil, err
	}
	return &keeper{api: client, http: hc, rt: rt, failed: failed}, nil
}

// reset readies the transport for a new watcher: it forgets an earlier
// failure and lets renewals through again.
func (k *keeper) reset() {
	select {
	case <-k.failed:
	default:
	}
	k.resume()
}

// resume lets renewals through again after a failure.
func (k *keeper) resume() {
	k.rt.mu.Lock()
	defer k.rt.mu.Unlock()
	k.rt.halted = false
}

// close closes the renewal client's idle connections.
func (k *keeper) close() { k.http.CloseIdleConnections() }

// closeIdle closes the idle connections of the client's HTTP clients (their
// connections' goroutines end with them).
func (c *Client) closeIdle() {
	for _, hc := range c.httpClients {
		hc.CloseIdleConnections()
	}
}

// errRenewHalted fails the renewals that follow a failed one until
// KeepAlive has decided what to do.
var errRenewHalted = errors.New("renewal halted after a failure")

// renewTransport carries KeepAlive's renewal requests.
//
// The LifetimeWatcher makes them without a context: the transport ends them
// when KeepAlive's ctx ends, so that KeepAlive returns promptly. It passes
// each to observe as OpRenew. The first failure (no answer, or an HTTP
// error) goes to failed, and the transport fails the requests that follow
// without sending them until resumed: the watcher of vault/api v1.23 can
// retry failed renewals without delay (hashicorp/vault#28611), which must
// not reach Vault.
type renewTransport struct {
	ctx     context.Context
	next    http.RoundTripper
	observe func(operation, result string)
	addr    string
	failed  chan<- renewFailure

	mu     sync.Mutex
	halted bool
}

// RoundTrip sends req, cancelled when either its context or t.ctx ends.
func (t *renewTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.mu.Lock()
	halted := t.halted
	t.mu.Unlock()
	if halted {
		return nil, errRenewHalted
	}
	ctx, cancel := context.WithCancel(req.Context())
	stop := context.AfterFunc(t.ctx, cancel)
	release := func() {
		stop()
		cancel()
	}
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		release()
		t.observe(OpRenew, ResultError)
		if t.ctx.Err() == nil {
			t.fail(renewFailure{detail: classify(Error{Op: OpRenew, Addr: t.addr}, err).Error()})
		}
		return nil, err
	}
	if resp.StatusCode >= 400 {
		t.observe(OpRenew, ResultError)
		t.fail(renewFailure{
			refused: resp.StatusCode == http.StatusForbidden,
			detail:  fmt.Sprintf("vault answered HTTP %d", resp.StatusCode),
		})
	} else {
		t.observe(OpRenew, ResultOK)
	}
	resp.Body = &releaseBody{ReadCloser: resp.Body, release: release}
	return resp, nil
}

// fail halts the transport and reports f, unless a failure is already
// reported.
func (t *renewTransport) fail(f renewFailure) {
	t.mu.Lock()
	t.halted = true
	t.mu.Unlock()
	select {
	case t.failed <- f:
	default:
	}
}

// CloseIdleConnections closes the idle connections of the transport below.
func (t *renewTransport) CloseIdleConnections() {
	if ci, ok := t.next.(interface{ CloseIdleConnections() }); ok {
		ci.CloseIdleConnections()
	}
}

// releaseBody calls release once, when the body is closed.
type releaseBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releaseBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

// backoff computes KeepAlive's delays between failed logins.
type backoff struct {
	attempt int // failed attempts since the last success
}

// next returns the delay after one more failed attempt: MinRetryDelay
// doubled per earlier failure, capped at MaxRetryDelay, spread by up to a
// fifth either way and kept within those bounds.
func (b *backoff) next() time.Duration {
	d := MinRetryDelay << min(b.attempt, 10)
	if d > MaxRetryDelay {
		d = MaxRetryDelay
	}
	b.attempt++
	spread := int64(d / 5)
	d += time.Duration(rand.Int64N(2*spread+1) - spread)
	return min(max(d, MinRetryDelay), MaxRetryDelay)
}

// reset starts over after a success.
func (b *backoff) reset() { b.attempt = 0 }

// Health reports whether Vault is reachable, initialised and unsealed, with
// one unauthenticated sys/health request (in the root namespace) bounded by
// HealthTimeout: nil when it is, else an *Error with Op "health" of
// KindUnreachable (no answer in time, connection refused, TLS), KindSealed
// (sealed, or not initialised: Detail says so) or KindOther (an unexpected
// answer). A standby node counts as healthy (it forwards requests). For
// readiness probes; the request is not passed to Options.Observe.
func (c *Client) Health(ctx context.Context) error {
	base := Error{Op: OpHealth, Addr: c.addr}
	rctx, cancel := context.WithTimeout(ctx, HealthTimeout)
	defer cancel()
	h, err := c.healthAPI.Sys().HealthWithContext(rctx)
	if err != nil {
		return classify(base, err)
	}
	switch {
	case !h.Initialized:
		e := base
		e.Kind, e.Detail, e.Err = KindSealed, "vault is not initialized", ErrSealed
		return &e
	case h.Sealed:
		e := base
		e.Kind, e.Err = KindSealed, ErrSealed
		return &e
	}
	return nil
}
