package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/ocamba-rotator/rotator/internal/secret"
)

// MandrillBaseURL is Mailchimp Transactional's (Mandrill's) base URL; the
// API lives under /api/1.0 there.
const MandrillBaseURL = "https://mandrillapp.com"

// MandrillProvider is Hood's provider name for Mandrill.
const MandrillProvider = "mandrill_email"

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
	base, err := parseBaseURL(MandrillProvider, opts.BaseURL, MandrillBaseURL)
	if err != nil {
		return nil, err
	}
	// The key is in the body: a 307/308 must not resend it elsewhere.
	httpc := newHTTPClient(opts.HTTPClient, mandrillDefaultTimeout)
	if opts.Timeout > 0 {
		httpc.Timeout = opts.Timeout
	}
	return &Mandrill{base: base, httpc: httpc, log: orDiscard(opts.Logger)}, nil
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
// *UnavailableError on 429/5xx, a *MandrillAPIError for its other
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
		return 0, fmt.Errorf("%s: %s: encoding the request: %w", MandrillProvider, op, scrubErr(err, k))
	}
	u := c.base.JoinPath("api", "1.0", "users", "ping")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(payload))
	if err != nil {
		return 0, fmt.Errorf("%s: %s: %w", MandrillProvider, op, scrubErr(err, k))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: %s: %w", MandrillProvider, op, scrubErr(err, k))
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := readBody(resp)
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s: %s: reading the answer (HTTP %d): %w",
			MandrillProvider, op, resp.StatusCode, scrubErr(err, k))
	}
	st := resp.StatusCode
	if st == http.StatusOK {
		var pong string
		if err := json.Unmarshal(body, &pong); err != nil {
			return st, fmt.Errorf("%s: %s: answer (HTTP 200) is not a JSON string: %w", MandrillProvider, op, scrubErr(err, k))
		}
		if pong != "PONG!" {
			return st, fmt.Errorf("%s: %s: answer (HTTP 200) is %q, want \"PONG!\"", MandrillProvider, op, scrub(pong, k))
		}
		return st, nil
	}

	var eb mandrillErrorBody
	isErrObj := json.Unmarshal(body, &eb) == nil && eb.Status == "error" && eb.Name != ""
	reason := scrub(eb.Message, k)
	ra := retryAfter(resp.Header, time.Now())
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
			reason = scrub(eb.Name, k) + ": " + reason
		}
		return st, &UnavailableError{Provider: MandrillProvider, Op: op, Status: st, RetryAfter: ra, Reason: reason}
	case isErrObj:
		return st, &MandrillAPIError{Op: op, Status: st, Name: scrub(eb.Name, k), Code: eb.Code, Message: reason}
	default:
		return st, fmt.Errorf("%s: %s: unexpected answer (HTTP %d)", MandrillProvider, op, st)
	}
}
