package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ocamba-rotator/rotator/internal/secret"
)

// MandrillBaseURL is Mailchimp Transactional's (Mandrill's) base URL; the
// API lives under /api/1.0 there.
const MandrillBaseURL = "https://mandrillapp.com"

// MandrillProvider is Hood's provider name for Mandrill.
const MandrillProvider = "mandrill_email"

// mandrillMaxBody bounds every answer body the client reads.
const mandrillMaxBody = 1 << 20

// mandrillDefaultTimeout is the whole-request timeout when the options
// give none.
const mandrillDefaultTimeout = 15 * time.Second

// MandrillOptions configure a Mandrill client.
type MandrillOptions struct {
	BaseURL    string        // default MandrillBaseURL (without /api/1.0)
	HTTPClient *http.Client  // optional; copied, never used as is
	Timeout    time.Duration // whole-request timeout; default 15s (or HTTPClient's own when set)
	Logger     *slog.Logger  // optional; default discards
}

// Mandrill asks Mailchimp Transactional whether an API key works. Keys are
// made and deleted only in the web app, so Check is all there is.
type Mandrill struct {
	base  *url.URL
	httpc *http.Client
	log   *slog.Logger
}

// MandrillUnavailableError is a Mandrill answer meaning "not now": HTTP
// 429, a 5xx other than Mandrill's own error object, or its GeneralError.
// The key was not judged.
type MandrillUnavailableError struct {
	Op         string        // the API call, e.g. "users/ping"
	Status     int           // HTTP status
	RetryAfter time.Duration // from Retry-After; 0 = not given
	Reason     string        // the provider's message, clipped; never the key
}

func (e *MandrillUnavailableError) Error() string {
	s := fmt.Sprintf("%s: %s: provider unavailable (HTTP %d)", MandrillProvider, e.Op, e.Status)
	if e.Status == http.StatusTooManyRequests {
		s = fmt.Sprintf("%s: %s: rate limited (HTTP %d)", MandrillProvider, e.Op, e.Status)
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(", retry after %s", e.RetryAfter)
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// RetryDelay is how long the provider asked to wait (0 = not said).
func (e *MandrillUnavailableError) RetryDelay() time.Duration { return e.RetryAfter }

// MandrillAPIError is Mandrill's own error object other than Invalid_Key
// and GeneralError (e.g. ValidationError): the call was wrong, retrying
// it will not help.
type MandrillAPIError struct {
	Op      string // the API call, e.g. "users/ping"
	Status  int    // HTTP status (Mandrill answers errors with 500)
	Name    string // e.g. "ValidationError"
	Code    int    // Mandrill's code
	Message string // clipped; never the key
}

func (e *MandrillAPIError) Error() string {
	return fmt.Sprintf("%s: %s: %s (code %d, HTTP %d): %s", MandrillProvider, e.Op, e.Name, e.Code, e.Status, e.Message)
}

// NewMandrill returns a Mandrill client.
func NewMandrill(opts MandrillOptions) (*Mandrill, error) {
	raw := opts.BaseURL
	if raw == "" {
		raw = MandrillBaseURL
	}
	base, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil {
		return nil, fmt.Errorf("%s: base URL: %w", MandrillProvider, err)
	}
	if (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" || base.RawQuery != "" || base.Fragment != "" || base.User != nil {
		return nil, fmt.Errorf("%s: base URL %q: want http(s)://host[/path]", MandrillProvider, base.Redacted())
	}
	httpc := &http.Client{}
	if opts.HTTPClient != nil {
		c := *opts.HTTPClient
		httpc = &c
	}
	switch {
	case opts.Timeout > 0:
		httpc.Timeout = opts.Timeout
	case httpc.Timeout == 0:
		httpc.Timeout = mandrillDefaultTimeout
	}
	// The key is in the body: a 307/308 must not resend it elsewhere.
	httpc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Mandrill{base: base, httpc: httpc, log: log}, nil
}

// mandrillErrorBody is Mandrill's error object.
type mandrillErrorBody struct {
	Status  string `json:"status"`
	Code    int    `json:"code"`
	Name    string `json:"name"`
	Message string `json:"message"`
}

// Check calls users/ping with key: nil when Mandrill answers "PONG!", a
// *RefusedError (errors.Is(err, ErrRefused)) for its Invalid_Key, a
// *MandrillUnavailableError on 429/5xx, a *MandrillAPIError for its other
// error objects, another error when Mandrill could not be asked. No error
// carries the key.
func (c *Mandrill) Check(ctx context.Context, key secret.Value) error {
	const op = "users/ping"
	start := time.Now()
	status, err := c.ping(ctx, op, key)
	if err != nil {
		c.log.DebugContext(ctx, "provider check failed", "provider", MandrillProvider, "op", op,
			"status", status, "duration", time.Since(start), "error", err)
		return err
	}
	c.log.DebugContext(ctx, "provider check passed", "provider", MandrillProvider, "op", op,
		"status", status, "duration", time.Since(start))
	return nil
}

func (c *Mandrill) ping(ctx context.Context, op string, key secret.Value) (int, error) {
	k := key.Reveal()
	if k == "" {
		return 0, fmt.Errorf("%s: %s: empty API key", MandrillProvider, op)
	}
	payload, err := json.Marshal(struct {
		Key string `json:"key"`
	}{k})
	if err != nil { // a string always marshals; kept for the linter's sake
		return 0, fmt.Errorf("%s: %s: encoding the request: %w", MandrillProvider, op, mandrillScrub(err, k))
	}
	u := c.base.JoinPath("api", "1.0", "users", "ping")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(payload))
	if err != nil {
		return 0, fmt.Errorf("%s: %s: %w", MandrillProvider, op, mandrillScrub(err, k))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: %s: %w", MandrillProvider, op, mandrillScrub(err, k))
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, mandrillMaxBody+1))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s: %s: reading the answer (HTTP %d): %w",
			MandrillProvider, op, resp.StatusCode, mandrillScrub(err, k))
	}
	if len(body) > mandrillMaxBody {
		return resp.StatusCode, fmt.Errorf("%s: %s: answer (HTTP %d) longer than %d bytes",
			MandrillProvider, op, resp.StatusCode, mandrillMaxBody)
	}
	st := resp.StatusCode
	if st == http.StatusOK {
		var pong string
		if err := json.Unmarshal(body, &pong); err != nil {
			return st, fmt.Errorf("%s: %s: answer (HTTP 200) is not a JSON string: %w", MandrillProvider, op, mandrillScrub(err, k))
		}
		if pong != "PONG!" {
			return st, fmt.Errorf("%s: %s: answer (HTTP 200) is %q, want \"PONG!\"", MandrillProvider, op, mandrillReason(pong, k))
		}
		return st, nil
	}

	var eb mandrillErrorBody
	isErrObj := json.Unmarshal(body, &eb) == nil && eb.Status == "error" && eb.Name != ""
	reason := mandrillReason(eb.Message, k)
	ra := mandrillRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	switch {
	case isErrObj && eb.Name == "Invalid_Key":
		if reason == "" {
			reason = eb.Name
		}
		return st, &RefusedError{Provider: MandrillProvider, Status: st, Reason: reason}
	case st == http.StatusUnauthorized || st == http.StatusForbidden:
		if reason == "" {
			reason = http.StatusText(st)
		}
		return st, &RefusedError{Provider: MandrillProvider, Status: st, Reason: reason}
	case st == http.StatusTooManyRequests || (st >= 500 && (!isErrObj || eb.Name == "GeneralError" || st != http.StatusInternalServerError)):
		if isErrObj && reason != "" {
			reason = mandrillReason(eb.Name, k) + ": " + reason
		}
		return st, &MandrillUnavailableError{Op: op, Status: st, RetryAfter: ra, Reason: reason}
	case isErrObj:
		return st, &MandrillAPIError{Op: op, Status: st, Name: mandrillReason(eb.Name, k), Code: eb.Code, Message: reason}
	default:
		return st, fmt.Errorf("%s: %s: unexpected answer (HTTP %d)", MandrillProvider, op, st)
	}
}

// mandrillScrub makes an error safe: if its text carries the key, only
// the scrubbed text is kept (timeouts and cancellations still answer
// errors.Is/net.Error as before). The key travels in the body, so
// net/http's errors do not normally carry it.
func mandrillScrub(err error, key string) error {
	if err == nil {
		return nil
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if strings.Contains(e.Error(), key) || strings.Contains(fmt.Sprintf("%#v", e), key) {
			var t interface{ Timeout() bool }
			return &mandrillScrubbedError{
				msg:      strings.ReplaceAll(err.Error(), key, secret.Redacted),
				timeout:  errors.As(err, &t) && t.Timeout(),
				canceled: errors.Is(err, context.Canceled),
				deadline: errors.Is(err, context.DeadlineExceeded),
			}
		}
	}
	return err
}

// mandrillScrubbedError is an error whose text had the key in it: the
// text without it, and what errors.Is and net.Error need.
type mandrillScrubbedError struct {
	msg                         string
	timeout, canceled, deadline bool
}

func (e *mandrillScrubbedError) Error() string   { return e.msg }
func (e *mandrillScrubbedError) Timeout() bool   { return e.timeout }
func (e *mandrillScrubbedError) Temporary() bool { return e.timeout }
func (e *mandrillScrubbedError) Is(target error) bool {
	return (e.canceled && target == context.Canceled) || (e.deadline && target == context.DeadlineExceeded)
}

// mandrillReason is the provider's text made safe to show: no key, no
// control characters, at most 200 bytes.
func mandrillReason(s, key string) string {
	if key != "" {
		s = strings.ReplaceAll(s, key, secret.Redacted)
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	const maxReason = 200
	if len(s) > maxReason {
		cut := maxReason
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// mandrillRetryAfter parses a Retry-After header (seconds or an HTTP
// date); 0 when absent or unparseable.
func mandrillRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if n, err := strconv.Atoi(h); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now).Round(time.Second)
	}
	return 0
}
