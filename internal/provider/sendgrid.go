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
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ocamba-rotator/rotator/internal/secret"
)

const (
	// SendGridBaseURL is SendGrid's API (global region).
	SendGridBaseURL = "https://api.sendgrid.com"
	// SendGridEUBaseURL is SendGrid's API for EU-pinned subusers.
	SendGridEUBaseURL = "https://api.eu.sendgrid.com"
	// SendGridDefaultTimeout bounds one call when SendGridOptions.Timeout is 0.
	SendGridDefaultTimeout = 30 * time.Second

	sendgridProvider  = "sendgrid_email" // Hood's provider name
	sendgridListLimit = 100              // SendGrid's key cap: one page holds every key
)

// SendGridOptions configures a SendGrid client. The zero value talks to
// SendGridBaseURL with SendGridDefaultTimeout and logs nothing.
type SendGridOptions struct {
	// BaseURL replaces SendGridBaseURL (the EU region, a test server).
	BaseURL string
	// Timeout bounds each call (connect, request, answer); 0 =
	// SendGridDefaultTimeout. It also applies to HTTPClient when that has
	// no timeout of its own.
	Timeout time.Duration
	// HTTPClient is copied (its transport is shared); nil = a new client.
	// Redirects are never followed: a 3xx is an error.
	HTTPClient *http.Client
	// Logger receives one debug line per call (operation, status,
	// duration; never a credential). nil = no logging.
	Logger *slog.Logger
}

// SendGrid is a client of SendGrid's API-key endpoints: it checks a key
// (GET /v3/scopes), mints a key with a managing key (POST /v3/api_keys),
// lists the account's keys by name and id (GET /v3/api_keys) and deletes
// one (DELETE /v3/api_keys/{id}). Safe for concurrent use.
type SendGrid struct {
	base string
	hc   *http.Client
	log  *slog.Logger
}

// SendGridAPIKey is one API key of the account as SendGrid lists it: its
// id and name, never its value (SendGrid returns that only at creation).
type SendGridAPIKey struct {
	ID   string
	Name string
}

// SendGridStatusError is an answer of SendGrid's that is neither a
// success, a refused credential nor "not now" (429/5xx: that is an
// *UnavailableError): e.g. 403 on create, when the account already holds
// 100 keys or the managing key lacks a scope it asked to grant.
type SendGridStatusError struct {
	Status  int    // HTTP status
	Message string // SendGrid's message, clipped and scrubbed of credentials
}

func (e *SendGridStatusError) Error() string {
	s := "HTTP " + strconv.Itoa(e.Status)
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Retryable reports whether the same call may succeed later: never (that
// is an *UnavailableError).
func (e *SendGridStatusError) Retryable() bool { return false }

// NewSendGrid returns a SendGrid client. It fails on a base URL that is not
// an absolute http(s) URL.
func NewSendGrid(opts SendGridOptions) (*SendGrid, error) {
	u, err := parseBaseURL(sendgridProvider, opts.BaseURL, SendGridBaseURL)
	if err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = SendGridDefaultTimeout
	}
	hc := newHTTPClient(opts.HTTPClient, timeout)
	return &SendGrid{base: u.String(), hc: hc, log: orDiscard(opts.Logger)}, nil
}

// Check asks SendGrid whether key works (GET /v3/scopes) and returns the
// scopes it holds. A key SendGrid refuses (401/403) is a *RefusedError.
func (c *SendGrid) Check(ctx context.Context, key secret.Value) ([]string, error) {
	const op = "check"
	data, _, err := c.sendgridDo(ctx, op, http.MethodGet, "/v3/scopes", key, nil, sendgridStatus(http.StatusOK))
	if err != nil {
		return nil, err
	}
	var out struct {
		Scopes []string `json:"scopes"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, sendgridErr(op, fmt.Errorf("decoding the answer: %w", err))
	}
	if out.Scopes == nil {
		return nil, sendgridErr(op, errors.New("the answer holds no scopes"))
	}
	return out.Scopes, nil
}

// Mint creates a key named name with the given scopes (POST /v3/api_keys)
// using manager, which must hold api_keys.create and every scope asked for;
// nil scopes let SendGrid choose (full access). It returns the new key's id
// and value; SendGrid shows the value only in this answer.
//
// A 401 is a *RefusedError; a 403 (100 keys already, or a scope the
// manager lacks) is a *SendGridStatusError (429/5xx an *UnavailableError). When the answer is lost
// (transport error, unreadable answer) the key may exist all the same:
// List finds it by name, and it should be deleted.
func (c *SendGrid) Mint(ctx context.Context, manager secret.Value, name string, scopes []string) (string, secret.Value, error) {
	const op = "mint"
	if name == "" {
		return "", secret.Value{}, sendgridErr(op, errors.New("empty key name"))
	}
	in := struct {
		Name   string   `json:"name"`
		Scopes []string `json:"scopes,omitempty"`
	}{name, scopes}
	data, _, err := c.sendgridDo(ctx, op, http.MethodPost, "/v3/api_keys", manager, in,
		sendgridStatus(http.StatusCreated, http.StatusOK))
	if err != nil {
		return "", secret.Value{}, err
	}
	var out struct {
		APIKey string `json:"api_key"`
		ID     string `json:"api_key_id"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return "", secret.Value{}, sendgridErr(op, fmt.Errorf("decoding the answer (the key may exist: list it by name): %w", err))
	}
	if out.APIKey == "" || out.ID == "" {
		return "", secret.Value{}, sendgridErr(op, errors.New("the answer lacks the key or its id (the key may exist: list it by name)"))
	}
	return out.ID, secret.New(out.APIKey), nil
}

// List returns the account's API keys, ids and names only (GET
// /v3/api_keys), as seen by manager (which needs api_keys.read).
func (c *SendGrid) List(ctx context.Context, manager secret.Value) ([]SendGridAPIKey, error) {
	const op = "list"
	path := "/v3/api_keys?limit=" + strconv.Itoa(sendgridListLimit)
	data, _, err := c.sendgridDo(ctx, op, http.MethodGet, path, manager, nil, sendgridStatus(http.StatusOK))
	if err != nil {
		return nil, err
	}
	var out struct {
		Result []struct {
			ID   string `json:"api_key_id"`
			Name string `json:"name"`
		} `json:"result"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, sendgridErr(op, fmt.Errorf("decoding the answer: %w", err))
	}
	keys := make([]SendGridAPIKey, 0, len(out.Result))
	for _, k := range out.Result {
		keys = append(keys, SendGridAPIKey{ID: k.ID, Name: k.Name})
	}
	return keys, nil
}

// Delete revokes the key with the given id (DELETE /v3/api_keys/{id})
// using manager (which needs api_keys.delete). A key SendGrid does not
// know (404) is already gone: Delete reports success, so a retry after a
// lost answer is harmless.
func (c *SendGrid) Delete(ctx context.Context, manager secret.Value, id string) error {
	const op = "delete"
	if id == "" {
		return sendgridErr(op, errors.New("empty key id"))
	}
	_, status, err := c.sendgridDo(ctx, op, http.MethodDelete, "/v3/api_keys/"+url.PathEscape(id), manager, nil,
		sendgridStatus(http.StatusNoContent, http.StatusOK, http.StatusNotFound))
	if err != nil {
		return err
	}
	if status == http.StatusNotFound {
		c.log.DebugContext(ctx, "sendgrid key already gone", "provider", sendgridProvider, "op", op, "key_id", id)
	}
	return nil
}

// sendgridStatus is the set of statuses a call takes as success.
func sendgridStatus(ok ...int) func(int) bool {
	return func(s int) bool {
		for _, o := range ok {
			if s == o {
				return true
			}
		}
		return false
	}
}

// sendgridErr names the provider and the operation.
func sendgridErr(op string, err error) error {
	return fmt.Errorf("%s %s: %w", sendgridProvider, op, err)
}

// sendgridDo makes one call with cred as the bearer key and returns the
// answer's body and status when ok(status); every error is wrapped with
// the provider and op and carries no credential.
func (c *SendGrid) sendgridDo(ctx context.Context, op, method, path string, cred secret.Value, in any, ok func(int) bool) ([]byte, int, error) {
	if cred.IsZero() {
		return nil, 0, sendgridErr(op, errors.New("empty credential"))
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, 0, sendgridErr(op, fmt.Errorf("encoding the request: %w", err))
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, 0, sendgridErr(op, fmt.Errorf("building the request: %w", err))
	}
	req.Header.Set("Authorization", "Bearer "+cred.Reveal())
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.log.DebugContext(ctx, "sendgrid call failed", "provider", sendgridProvider, "op", op,
			"duration", time.Since(start), "error", err)
		return nil, 0, sendgridErr(op, err)
	}
	defer func() { _ = resp.Body.Close() }()
	data, rerr := readBody(resp)
	c.log.DebugContext(ctx, "sendgrid call", "provider", sendgridProvider, "op", op,
		"status", resp.StatusCode, "duration", time.Since(start))

	status := resp.StatusCode
	switch {
	case ok(status):
		if errors.Is(rerr, errBodyTooLong) {
			return nil, status, sendgridErr(op, fmt.Errorf("answer (HTTP %d) larger than %d bytes", status, maxBody))
		}
		if rerr != nil {
			return nil, status, sendgridErr(op, fmt.Errorf("reading the answer (HTTP %d): %w", status, rerr))
		}
		return data, status, nil
	case status == http.StatusUnauthorized || (status == http.StatusForbidden && method != http.MethodPost):
		// 403 on create is the key cap or a scope not held: the
		// manager works, its request does not.
		return nil, status, sendgridErr(op, &RefusedError{
			Provider: sendgridProvider, Status: status, Reason: sendgridReason(status, data, cred),
		})
	case unavailable(status):
		return nil, status, sendgridErr(op, &UnavailableError{
			Provider: sendgridProvider, Op: op, Status: status,
			RetryAfter: retryAfter(resp.Header, time.Now()), Reason: sendgridReason(status, data, cred),
		})
	default:
		return nil, status, sendgridErr(op, &SendGridStatusError{Status: status, Message: sendgridReason(status, data, cred)})
	}
}

// sendgridKeyPattern matches anything shaped like a SendGrid key.
var sendgridKeyPattern = regexp.MustCompile(`SG\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}`)

// sendgridReason is SendGrid's message from an error answer
// ({"errors":[{"field":..,"message":..}]}, else the raw text), with cred
// and anything key-shaped removed, control characters blanked and the
// result clipped.
func sendgridReason(status int, body []byte, cred secret.Value) string {
	var shape struct {
		Errors []struct {
			Field   *string `json:"field"`
			Message string  `json:"message"`
		} `json:"errors"`
	}
	var text string
	if json.Unmarshal(body, &shape) == nil && len(shape.Errors) > 0 {
		parts := make([]string, 0, len(shape.Errors))
		for _, e := range shape.Errors {
			if e.Field != nil && *e.Field != "" {
				parts = append(parts, *e.Field+": "+e.Message)
			} else {
				parts = append(parts, e.Message)
			}
		}
		text = strings.Join(parts, "; ")
	} else {
		text = string(body)
	}
	text = sendgridScrub(text, cred)
	if strings.TrimSpace(text) == "" {
		return strings.ToLower(http.StatusText(status))
	}
	return text
}

// sendgridScrub removes cred (whole, and its secret part after the last
// dot) and key-shaped text from s, blanks control characters and clips it.
func sendgridScrub(s string, cred secret.Value) string {
	v, tail := cred.Reveal(), ""
	if i := strings.LastIndexByte(v, '.'); i >= 0 && len(v)-i > 8 {
		tail = v[i+1:]
	}
	return scrub(sendgridKeyPattern.ReplaceAllString(redact(strings.ToValidUTF8(s, "?"), v, tail), secret.Redacted))
}
