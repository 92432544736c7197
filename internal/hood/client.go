package hood

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/ocamba-rotator/rotator/internal/secret"
)

// Defaults of Options: the windows of Hood's documented limits. Package
// config holds the defaults of the settings a configuration names.
const (
	DefaultWindow     = time.Second
	DefaultLongWindow = time.Minute
	DefaultMargin     = 25 * time.Millisecond
	DefaultUserAgent  = "rotator"
)

// maxBodyBytes bounds how much of any response body is read.
const maxBodyBytes = 64 << 10

// ErrBodyTooLarge is wrapped by the error of a success answer whose body is
// larger than the client reads (64 KiB).
var ErrBodyTooLarge = errors.New("response body too large")

// ErrNotSent marks the error of a request that never left: its context
// ended while it waited for the rate limiter before its first attempt. Hood
// cannot have seen it.
var ErrNotSent = errors.New("request not sent")

// Options configures a Client. Fields marked required must be positive;
// zero values of the others take the defaults named in their comments.
type Options struct {
	BaseURL        string        // absolute http(s) URL, e.g. https://api.ocamba.com; a path prefix is kept
	HTTPClient     *http.Client  // optional; default: a client with sane transport timeouts. Redirects are never followed.
	Timeout        time.Duration // per attempt; required
	MaxAttempts    int           // total attempts including the first; required
	InitialBackoff time.Duration // required; doubled each retry, full jitter
	MaxBackoff     time.Duration // cap of one wait; required. A Retry-After above it: give up (the hold stays, see MinHoldCap).
	UserAgent      string        // default "rotator"
	Logger         *slog.Logger  // optional; default discards
	// Observe, if set, is called once per attempt with the method, the HTTP
	// status (0 when no answer came) and the attempt's duration.
	Observe func(method string, code int, d time.Duration)
	// Limiter (required) paces this client's requests: share one (see
	// Limiters) among every client of the process that talks to the same
	// Hood, for Hood's limits are per account.
	Limiter *Limiter
}

// MinHoldCap is the least that a Retry-After may hold every request of the
// client's limiter: a hold is capped at the larger of MaxBackoff and
// MinHoldCap, so that a bad header cannot stop the process for hours.
const MinHoldCap = time.Minute

// Client talks to the Hood API: settings-only PATCH and read-back GET of an
// integration, with client-side rate limiting and retries. A Client is safe
// for concurrent use; share one so that the rate limit covers every request.
type Client struct {
	base           *url.URL
	httpc          *http.Client
	timeout        time.Duration
	maxAttempts    int
	initialBackoff time.Duration
	maxBackoff     time.Duration
	userAgent      string
	log            *slog.Logger
	observe        func(string, int, time.Duration)
	lim            *Limiter

	// Hooks replaced by tests.
	now    func() time.Time
	sleep  func(context.Context, time.Duration) error
	jitter func(limit time.Duration) time.Duration // uniform in [0, limit]
}

// New validates opts, fills in the defaults and returns a Client.
func New(opts Options) (*Client, error) {
	base, err := parseBaseURL(opts.BaseURL)
	if err != nil {
		return nil, err
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"timeout", opts.Timeout}, {"initial backoff", opts.InitialBackoff}, {"max backoff", opts.MaxBackoff}} {
		if d.v <= 0 {
			return nil, fmt.Errorf("check hood options: %s %s is not positive", d.name, d.v)
		}
	}
	if opts.MaxAttempts <= 0 {
		return nil, fmt.Errorf("check hood options: max attempts %d is not positive", opts.MaxAttempts)
	}
	if opts.Limiter == nil {
		return nil, errors.New("check hood options: no limiter")
	}
	c := &Client{
		base:           base,
		timeout:        opts.Timeout,
		maxAttempts:    opts.MaxAttempts,
		initialBackoff: opts.InitialBackoff,
		maxBackoff:     opts.MaxBackoff,
		userAgent:      opts.UserAgent,
		log:            opts.Logger,
		observe:        opts.Observe,
		lim:            opts.Limiter,
		now:            time.Now,
		sleep:          sleepCtx,
		jitter:         fullJitter,
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	if strings.ContainsFunc(c.userAgent, isCtlOrNonASCII) {
		return nil, errors.New("check hood options: user agent holds control or non-ASCII characters")
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.initialBackoff > c.maxBackoff {
		c.initialBackoff = c.maxBackoff
	}
	if opts.HTTPClient != nil {
		hc := *opts.HTTPClient
		c.httpc = &hc
	} else {
		c.httpc = &http.Client{Transport: defaultTransport()}
	}
	// Never follow a redirect: it would replay the token and the settings
	// somewhere the configuration did not name. A 3xx is an APIError.
	c.httpc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c, nil
}

// parseBaseURL checks that raw is an absolute http or https URL with a host
// and nothing but an optional path. Errors never repeat the URL, which could
// hold credentials.
func parseBaseURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("check base URL: empty")
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("parse base URL: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("check base URL: scheme %q, want http or https", u.Scheme)
	case u.Opaque != "" || u.Host == "":
		return nil, errors.New("check base URL: not an absolute URL with a host")
	case u.User != nil:
		return nil, errors.New("check base URL: must not hold user info")
	case u.RawQuery != "" || u.ForceQuery:
		return nil, errors.New("check base URL: must not hold a query")
	case u.Fragment != "":
		return nil, errors.New("check base URL: must not hold a fragment")
	}
	return u, nil
}

// defaultTransport is http.DefaultTransport's configuration with bounded
// dial, TLS and idle timeouts.
func defaultTransport() *http.Transport {
	var t *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		t = dt.Clone()
	} else {
		t = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	}
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	t.ExpectContinueTimeout = time.Second
	t.IdleConnTimeout = 90 * time.Second
	t.MaxIdleConnsPerHost = 4
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	return t
}

// Reserve waits for the limiter (and its gate) and takes a request start
// now for the next request made with the returned context: that request's
// first attempt goes without waiting (its retries wait as usual). The engine
// reserves before the fence that bounds a PATCH, so that the PATCH does not
// spend its lease waiting for Hood's windows, nor lose the room to other
// requests. Call release in any case: it gives the start back (counted as
// done now) when the request was not made.
func (c *Client) Reserve(ctx context.Context) (rctx context.Context, release func(), err error) {
	id, err := c.lim.acquire(ctx)
	if err != nil {
		return ctx, func() {}, fmt.Errorf("wait for rate limit: %w (%w)", err, ErrNotSent)
	}
	r := &reservation{id: id}
	release = func() {
		if id, ok := r.take(); ok {
			c.lim.done(id)
		}
	}
	return context.WithValue(ctx, reservedKey{}, r), release, nil
}

// reservation is a start Reserve took for the request of its context.
type reservation struct {
	mu   sync.Mutex
	id   uint64
	used bool
}

type reservedKey struct{}

// take returns the start, once.
func (r *reservation) take() (uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.used {
		return 0, false
	}
	r.used = true
	return r.id, true
}

// reserved returns the start Reserve took for ctx's request, once.
func reserved(ctx context.Context) (uint64, bool) {
	r, _ := ctx.Value(reservedKey{}).(*reservation)
	if r == nil {
		return 0, false
	}
	return r.take()
}

// UpdateSettings sends PATCH /v1/hood/integrations/{id} with the body
// {"settings": {...}} and nothing else. Values are revealed only while the
// body is marshalled. Any 2xx is success. The id is checked with ValidateID
// and an empty token or settings map is refused, all before any request.
func (c *Client) UpdateSettings(ctx context.Context, token secret.Value, id string, settings map[string]secret.Value) error {
	if err := checkRequest(token, id); err != nil {
		return fmt.Errorf("update integration settings: %w (%w)", err, ErrNotSent)
	}
	if len(settings) == 0 {
		return fmt.Errorf("update integration %s: no settings to send (%w)", id, ErrNotSent)
	}
	plain := make(map[string]string, len(settings))
	sent := []secret.Value{token}
	for k, v := range settings {
		if k == "" {
			return fmt.Errorf("update integration %s: empty settings field name (%w)", id, ErrNotSent)
		}
		plain[k] = v.Reveal()
		sent = append(sent, v)
	}
	body, err := json.Marshal(struct {
		Settings map[string]string `json:"settings"`
	}{plain})
	clear(plain)
	if err != nil {
		// json.Marshal of strings fails only on bugs; never print its input.
		return fmt.Errorf("update integration %s: encode body: %w (%w)", id, err, ErrNotSent)
	}
	_, err = c.do(ctx, http.MethodPatch, id, token, body, sent)
	return err
}

// checkRequest refuses what must never reach the wire.
func checkRequest(token secret.Value, id string) error {
	if err := ValidateID(id); err != nil {
		return err
	}
	if token.IsZero() {
		return errors.New("empty API token")
	}
	if strings.ContainsFunc(token.Reveal(), isCtlOrSpace) {
		return errors.New("API token holds whitespace or control characters")
	}
	return nil
}

func isCtlOrSpace(r rune) bool { return r <= ' ' || r == 0x7f }

func isCtlOrNonASCII(r rune) bool { return r < ' ' || r >= 0x7f }

// errNoRetry marks an attempt error that another attempt cannot fix.
type errNoRetry struct{ err error }

func (e errNoRetry) Error() string { return e.err.Error() }
func (e errNoRetry) Unwrap() error { return e.err }

// do runs one logical request: it waits for the rate limiter before every
// attempt, retries what may succeed later, and returns the body of the 2xx
// answer (at most maxBodyBytes). An answer with Retry-After holds every
// request of the limiter; an attempt whose context ends before the hold
// lifts is not sent and fails at once with a *HoldError.
//
// sent are the values the request carries: an error answer that repeats
// one of them has it replaced by secret.Redacted before the error leaves
// the client (Hood's messages may quote what they refused).
func (c *Client) do(ctx context.Context, method, id string, token secret.Value, body []byte, sent []secret.Value) ([]byte, error) {
	endpoint := c.base.JoinPath("v1", "hood", "integrations", url.PathEscape(id)).String()
	var last error
	for attempt := 1; ; attempt++ {
		startID, ok := reserved(ctx)
		var err error
		if !ok {
			startID, err = c.lim.acquire(ctx)
		}
		var he *HoldError
		if errors.As(err, &he) {
			he.Method, he.ID, he.Last = method, id, last
			return nil, he
		}
		if err != nil {
			return nil, c.stopped(method, id, attempt-1, "wait for rate limit", err, last)
		}
		resp, err := c.attempt(ctx, method, id, endpoint, token, body, sent, attempt)
		c.lim.done(startID)
		if err == nil {
			return resp, nil
		}
		last = err
		var ae *APIError
		isAPI := errors.As(err, &ae)
		if ctx.Err() != nil && !isAPI {
			// The caller's context ended the exchange; its error says it all.
			return nil, fmt.Errorf("%s integration %s: send request (attempt %d): %w", method, id, attempt, ctx.Err())
		}
		if isAPI && ae.RetryAfter > 0 && ae.Temporary() {
			// Hood's limits are per account: the server asked every request
			// to pause, not only this one, even when this one gives up.
			c.hold(ctx, ae)
		}
		wait, retry := c.retryWait(err, attempt)
		if !retry || attempt >= c.maxAttempts {
			return nil, c.giveUp(method, id, attempt, last)
		}
		if ctx.Err() != nil {
			return nil, c.stopped(method, id, attempt, "wait to retry", ctx.Err(), last)
		}
		if dl, ok := ctx.Deadline(); ok && c.now().Add(wait).After(dl) {
			return nil, c.giveUp(method, id, attempt, last)
		}
		c.log.WarnContext(ctx, "hood request failed, retrying", "method", method, "id", id,
			"attempt", attempt, "wait", wait.String(), "error", err.Error())
		if err := c.sleep(ctx, wait); err != nil {
			return nil, c.stopped(method, id, attempt, "wait to retry", err, last)
		}
	}
}

// hold makes every request of the limiter wait for ae's Retry-After,
// capped at the larger of MaxBackoff and MinHoldCap.
func (c *Client) hold(ctx context.Context, ae *APIError) {
	d := min(ae.RetryAfter, max(c.maxBackoff, MinHoldCap))
	why := fmt.Sprintf("Hood answered %d with Retry-After %s to %s integration %s", ae.StatusCode, ae.RetryAfter, ae.Method, ae.ID)
	if d < ae.RetryAfter {
		why += fmt.Sprintf(", held for %s only", d)
	}
	until, extended := c.lim.holdFor(d, why)
	if !extended {
		return
	}
	c.log.WarnContext(ctx, "hood asked to slow down: every hood request held", "method", ae.Method,
		"id", ae.ID, "status", ae.StatusCode, "retry_after", ae.RetryAfter.String(), "hold", d.String(),
		"until", until, "trace_id", ae.TraceID)
}

// retryWait says whether err may go away on another attempt (after number
// attempt) and how long to wait first.
func (c *Client) retryWait(err error, attempt int) (time.Duration, bool) {
	var ae *APIError
	if errors.As(err, &ae) {
		if !ae.Temporary() {
			return 0, false
		}
		if ae.RetryAfter > 0 {
			if ae.RetryAfter > c.maxBackoff {
				return 0, false
			}
			return ae.RetryAfter, true
		}
		return c.backoff(attempt), true
	}
	var nr errNoRetry
	if errors.As(err, &nr) {
		return 0, false
	}
	return c.backoff(attempt), true
}

// backoff is the full-jitter wait after attempt number n (1-based):
// uniform in [0, min(InitialBackoff·2^(n-1), MaxBackoff)].
func (c *Client) backoff(n int) time.Duration {
	b := c.initialBackoff
	for i := 1; i < n && b < c.maxBackoff; i++ {
		b *= 2
	}
	if b > c.maxBackoff || b <= 0 {
		b = c.maxBackoff
	}
	return c.jitter(b)
}

// fullJitter returns a uniformly random duration in [0, limit].
func fullJitter(limit time.Duration) time.Duration {
	if limit <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(limit) + 1))
}

// giveUp returns the last attempt's error, saying how many attempts were made.
func (c *Client) giveUp(method, id string, attempts int, last error) error {
	var ae *APIError
	if errors.As(last, &ae) {
		return ae // carries Attempts; its Error() mentions them
	}
	return fmt.Errorf("%s integration %s: gave up after %d %s: %w", method, id, attempts, plural(attempts), last)
}

// stopped is the error when ctx ended: it wraps the context's error and, if
// an attempt failed before, that failure too.
func (c *Client) stopped(method, id string, attempts int, doing string, ctxErr, last error) error {
	if last == nil {
		if attempts == 0 {
			return fmt.Errorf("%s integration %s: %s: %w (%w)", method, id, doing, ctxErr, ErrNotSent)
		}
		return fmt.Errorf("%s integration %s: %s: %w", method, id, doing, ctxErr)
	}
	return fmt.Errorf("%s integration %s: %s: %w (after %d %s, last error: %w)",
		method, id, doing, ctxErr, attempts, plural(attempts), last)
}

func plural(n int) string {
	if n == 1 {
		return "attempt"
	}
	return "attempts"
}

// attempt makes one HTTP request. It returns the 2xx body, an *APIError for
// any other status, errNoRetry for what cannot get better, or a network error.
func (c *Client) attempt(ctx context.Context, method, id, endpoint string, token secret.Value, body []byte, sent []secret.Value, n int) ([]byte, error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, endpoint, rd)
	if err != nil {
		return nil, errNoRetry{fmt.Errorf("build request: %w", err)}
	}
	req.Header.Set("Authorization", "Bearer "+token.Reveal())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	start := time.Now()
	status, header, data, err := c.roundTrip(req)
	d := time.Since(start)
	if c.observe != nil {
		c.observe(method, status, d)
	}

	if status == 0 {
		err = c.networkError(ctx, actx, err)
		c.logAttempt(ctx, method, id, n, 0, d, "", err)
		return nil, err
	}
	if status >= 200 && status <= 299 {
		c.logAttempt(ctx, method, id, n, status, d, "", err)
		if err != nil && method != http.MethodPatch {
			// A PATCH is done once a 2xx arrived; a read-back needs its body.
			return nil, c.networkError(ctx, actx, err)
		}
		return data, nil
	}
	ae := newAPIError(method, id, status, header, data, c.now())
	ae.scrub(sent)
	ae.Attempts = n
	c.logAttempt(ctx, method, id, n, status, d, ae.TraceID, nil)
	return nil, ae
}

// roundTrip sends req and reads at most maxBodyBytes of the answer. status
// is 0 when no answer arrived; err may be set with a status when reading the
// body failed or the body was too large.
func (c *Client) roundTrip(req *http.Request) (int, http.Header, []byte, error) {
	resp, err := c.httpc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	_ = resp.Body.Close() // read already: its error says nothing about the answer
	if err != nil {
		return resp.StatusCode, resp.Header, data, fmt.Errorf("read answer: %w", err)
	}
	if len(data) > maxBodyBytes {
		return resp.StatusCode, resp.Header, data[:maxBodyBytes],
			errNoRetry{fmt.Errorf("read answer: %w (over %d bytes)", ErrBodyTooLarge, maxBodyBytes)}
	}
	return resp.StatusCode, resp.Header, data, nil
}

// networkError classifies a failed exchange: a timeout of this attempt only
// is reported as such; TLS verification failures are not retried.
func (c *Client) networkError(ctx, actx context.Context, err error) error {
	var nr errNoRetry
	if errors.As(err, &nr) {
		return err
	}
	if ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("attempt timed out after %s: %w", c.timeout, err)
	}
	var (
		unknownAuthority x509.UnknownAuthorityError
		hostname         x509.HostnameError
		invalid          x509.CertificateInvalidError
		verification     *tls.CertificateVerificationError
	)
	if errors.As(err, &unknownAuthority) || errors.As(err, &hostname) ||
		errors.As(err, &invalid) || errors.As(err, &verification) {
		return errNoRetry{err}
	}
	return err
}

// logAttempt writes the debug line of one attempt. It never logs values.
func (c *Client) logAttempt(ctx context.Context, method, id string, n, status int, d time.Duration, traceID string, err error) {
	if !c.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	args := []any{"method", method, "id", id, "status", status, "attempt", n,
		"duration", d.String(), "trace_id", traceID}
	if err != nil {
		args = append(args, "error", err.Error())
	}
	c.log.DebugContext(ctx, "hood request", args...)
}

func orDuration(v, def time.Duration) time.Duration {
	if v == 0 {
		return def
	}
	return v
}
