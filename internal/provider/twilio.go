package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/ocamba-rotator/rotator/internal/secret"
)

// Twilio's Hood provider name and its public API hosts.
const (
	// TwilioProvider is Hood's name for the Twilio SMS provider.
	TwilioProvider = "twilio_sms"
	// TwilioAccountsURL is the host of the auth token API (/v1/AuthTokens/...).
	TwilioAccountsURL = "https://accounts.twilio.com"
	// TwilioAPIURL is the host of the REST API (/2010-04-01/Accounts/...).
	TwilioAPIURL = "https://api.twilio.com"
	// TwilioDefaultTimeout is the whole-request timeout of a client made
	// without an http.Client of its own.
	TwilioDefaultTimeout = 15 * time.Second
)

// TwilioOptions configures NewTwilio. The zero value talks to Twilio itself.
type TwilioOptions struct {
	AccountsURL string        // "" = TwilioAccountsURL
	APIURL      string        // "" = TwilioAPIURL
	HTTPClient  *http.Client  // copied; nil = a new client; redirects are never followed
	Timeout     time.Duration // when HTTPClient has none; 0 = TwilioDefaultTimeout
	Logger      *slog.Logger  // nil = no logging
}

// Twilio is a client of Twilio's auth token API: it checks that an
// Account SID and auth token authenticate, creates and deletes the
// account's secondary auth token, and promotes the secondary to primary.
//
// A Twilio auth token belongs to the whole account (or subaccount): every
// other system using the old primary breaks at Promote, so rotating it is
// only safe for an account or subaccount dedicated to Hood.
type Twilio struct {
	accounts string
	api      string
	hc       *http.Client
	log      *slog.Logger
}

// NewTwilio returns a Twilio client.
func NewTwilio(opts TwilioOptions) *Twilio {
	c := &Twilio{
		accounts: strings.TrimRight(opts.AccountsURL, "/"),
		api:      strings.TrimRight(opts.APIURL, "/"),
		log:      opts.Logger,
	}
	if c.accounts == "" {
		c.accounts = TwilioAccountsURL
	}
	if c.api == "" {
		c.api = TwilioAPIURL
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = TwilioDefaultTimeout
	}
	c.hc = newHTTPClient(opts.HTTPClient, timeout)
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c
}

// TwilioStatusError is an answer of Twilio that is neither a success, a
// refused credential nor "not now" (429/5xx: an *UnavailableError), e.g.
// 400 or 404. Message is Twilio's, clipped and scrubbed of credentials.
type TwilioStatusError struct {
	Op      string // the operation, e.g. "promote secondary auth token"
	Status  int    // HTTP status
	Code    int    // Twilio's error code, 0 when the answer had none
	Message string // Twilio's message, clipped; never a credential
}

func (e *TwilioStatusError) Error() string {
	s := fmt.Sprintf("%s: %s: HTTP %d", TwilioProvider, e.Op, e.Status)
	if e.Code != 0 {
		s += fmt.Sprintf(" (code %d)", e.Code)
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Retryable reports whether the same request may succeed later: never
// (that is an *UnavailableError).
func (e *TwilioStatusError) Retryable() bool { return false }

// twilioErrorBody is Twilio's error shape.
type twilioErrorBody struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// Check asks Twilio whether sid and token authenticate
// (GET /2010-04-01/Accounts/{sid}.json on the API host). A refused token
// is a *RefusedError.
func (c *Twilio) Check(ctx context.Context, sid string, token secret.Value) error {
	const op = "check account"
	if err := twilioValidate(op, sid, token); err != nil {
		return err
	}
	var acct struct {
		SID string `json:"sid"`
	}
	u := c.api + "/2010-04-01/Accounts/" + url.PathEscape(sid) + ".json"
	if err := c.twilioDo(ctx, op, http.MethodGet, u, sid, token, http.StatusOK, &acct); err != nil {
		return err
	}
	if acct.SID != sid {
		return fmt.Errorf("%s: %s: the answer names another account", TwilioProvider, op)
	}
	return nil
}

// CreateSecondary creates the account's secondary auth token
// (POST /v1/AuthTokens/Secondary) and returns it: Twilio shows its value
// only in this answer. Primary and secondary both authenticate until
// Promote.
//
// When the answer is lost (a transport error or a timeout after the
// request was sent), the secondary may exist without the caller knowing
// its value: DeleteSecondary and create it again.
func (c *Twilio) CreateSecondary(ctx context.Context, sid string, token secret.Value) (secret.Value, error) {
	const op = "create secondary auth token"
	if err := twilioValidate(op, sid, token); err != nil {
		return secret.Value{}, err
	}
	var out struct {
		AccountSID string `json:"account_sid"`
		Secondary  string `json:"secondary_auth_token"`
	}
	if err := c.twilioDo(ctx, op, http.MethodPost, c.accounts+"/v1/AuthTokens/Secondary", sid, token, http.StatusCreated, &out); err != nil {
		return secret.Value{}, err
	}
	if out.Secondary == "" {
		return secret.Value{}, fmt.Errorf("%s: %s: the answer holds no secondary_auth_token", TwilioProvider, op)
	}
	return secret.New(out.Secondary), nil
}

// DeleteSecondary deletes the account's secondary auth token
// (DELETE /v1/AuthTokens/Secondary → 204): the way to abort a rotation.
//
// DELETE is idempotent, so net/http may resend it when the connection
// breaks before an answer: a delete whose first answer was lost can then
// come back as a *TwilioStatusError with Status 404 (nothing left to
// delete), which the caller may take as done. Twilio's reference does not
// document the answer for a missing secondary; the test server answers 404.
func (c *Twilio) DeleteSecondary(ctx context.Context, sid string, token secret.Value) error {
	const op = "delete secondary auth token"
	if err := twilioValidate(op, sid, token); err != nil {
		return err
	}
	return c.twilioDo(ctx, op, http.MethodDelete, c.accounts+"/v1/AuthTokens/Secondary", sid, token, http.StatusNoContent, nil)
}

// Promote makes the secondary auth token the primary
// (POST /v1/AuthTokens/Promote); from then on every request with the old
// primary fails. token is either token that authenticates now.
//
// When Promote returns a transport error or a timeout, Twilio may have
// promoted anyway: the caller must not assume either outcome, but Check
// both tokens. If the old primary is refused and the new one
// authenticates, the promotion happened; if both authenticate, it did not
// (retry Promote). Never discard the new token before this is settled.
func (c *Twilio) Promote(ctx context.Context, sid string, token secret.Value) error {
	const op = "promote secondary auth token"
	if err := twilioValidate(op, sid, token); err != nil {
		return err
	}
	return c.twilioDo(ctx, op, http.MethodPost, c.accounts+"/v1/AuthTokens/Promote", sid, token, http.StatusOK, nil)
}

// twilioValidate refuses an empty SID or token before any request.
func twilioValidate(op, sid string, token secret.Value) error {
	switch {
	case sid == "":
		return fmt.Errorf("%s: %s: empty account SID", TwilioProvider, op)
	case strings.ContainsAny(sid, "/?#%:"):
		return fmt.Errorf("%s: %s: malformed account SID", TwilioProvider, op)
	case token.IsZero():
		return fmt.Errorf("%s: %s: empty auth token", TwilioProvider, op)
	}
	return nil
}

// twilioDo sends one request with HTTP Basic auth (sid, token), reads at
// most twilioMaxBody of the answer, and decodes a want-status answer into
// out (when out is not nil). Every error names the provider and op and
// carries no credential.
func (c *Twilio) twilioDo(ctx context.Context, op, method, u, sid string, token secret.Value, want int, out any) error {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", TwilioProvider, op, err)
	}
	req.SetBasicAuth(sid, token.Reveal())
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		err = fmt.Errorf("%s: %s: %w", TwilioProvider, op, scrubErr(err, token.Reveal()))
		c.log.WarnContext(ctx, "twilio request failed", "op", op, "duration", time.Since(start), "error", err)
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := readBody(resp)
	if err != nil {
		if errors.Is(err, errBodyTooLong) {
			err = fmt.Errorf("%s: %s: answer over %d bytes (HTTP %d)", TwilioProvider, op, maxBody, resp.StatusCode)
		} else {
			err = fmt.Errorf("%s: %s: read the answer (HTTP %d): %w", TwilioProvider, op, resp.StatusCode, scrubErr(err, token.Reveal()))
		}
		c.log.WarnContext(ctx, "twilio request failed", "op", op, "status", resp.StatusCode, "duration", time.Since(start), "error", err)
		return err
	}
	c.log.DebugContext(ctx, "twilio request", "op", op, "method", method, "status", resp.StatusCode, "duration", time.Since(start))
	if resp.StatusCode == want {
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(body, out); err != nil {
			// The decoder's error may quote the body (a token): name only its kind.
			return fmt.Errorf("%s: %s: undecodable answer (HTTP %d, %d bytes): %w", TwilioProvider, op, resp.StatusCode, len(body), twilioDecodeErr(err))
		}
		return nil
	}
	code, msg := twilioReason(body, token)
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		reason := msg
		if code != 0 {
			reason = fmt.Sprintf("%s (code %d)", msg, code)
		}
		return fmt.Errorf("%s: %w", op, &RefusedError{Provider: TwilioProvider, Status: resp.StatusCode, Reason: reason})
	}
	if unavailable(resp.StatusCode) {
		return &UnavailableError{Provider: TwilioProvider, Op: op, Status: resp.StatusCode, Code: code,
			RetryAfter: retryAfter(resp.Header, time.Now()), Reason: msg}
	}
	return &TwilioStatusError{Op: op, Status: resp.StatusCode, Code: code, Message: msg}
}

// twilioDecodeErr keeps a JSON decoding error's kind and drops its text.
func twilioDecodeErr(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("invalid JSON at offset %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Errorf("field %q has the wrong type", te.Field)
	}
	return errors.New("invalid JSON")
}

// twilioTokenLike matches a bare 32-hex-digit run: the form of a Twilio
// auth token. An Account SID ("AC" + 32 hex) does not match.
var twilioTokenLike = regexp.MustCompile(`\b[0-9a-fA-F]{32}\b`)

// twilioReason extracts Twilio's error code and message from an error
// answer (or the answer's text when it is not Twilio's shape), clipped,
// stripped of control characters, and scrubbed: the token and anything
// shaped like an auth token become secret.Redacted.
func twilioReason(body []byte, token secret.Value) (int, string) {
	var eb twilioErrorBody
	msg := ""
	if err := json.Unmarshal(body, &eb); err == nil && (eb.Message != "" || eb.Code != 0) {
		msg = eb.Message
	} else {
		eb.Code = 0
		msg = string(bytes.TrimSpace(body))
	}
	// The token is scrubbed from the whole text before clipping.
	return eb.Code, scrub(twilioTokenLike.ReplaceAllString(redact(msg, token.Reveal()), secret.Redacted))
}
