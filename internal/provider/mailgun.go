package provider

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/url"
	"time"

	"github.com/ocamba-rotator/rotator/internal/secret"
)

// Mailgun's Hood provider name and API base URLs.
const (
	MailgunProvider   = "mailgun_email"
	MailgunBaseURL    = "https://api.mailgun.net"
	MailgunEUBaseURL  = "https://api.eu.mailgun.net"
	MailgunAPIUser    = "api"            // the HTTP Basic auth user; the password is the key
	MailgunDefaultTTL = 30 * time.Second // default HTTP client timeout of a Mailgun client
)

// ErrMailgunNotFound is wrapped by a *MailgunError of a 404 answer (an
// unknown domain or key id).
var ErrMailgunNotFound = errors.New("not found")

// MailgunError is an answer of Mailgun that is neither a success, a
// refused credential (a *RefusedError) nor "not now" (429/5xx: an
// *UnavailableError). Reason is the provider's message, clipped and
// scrubbed of the credentials of the request.
type MailgunError struct {
	Op     string // "check", "check sending", "mint", "list", "delete"
	Status int    // HTTP status
	Reason string // the provider's message, clipped; never a credential
}

func (e *MailgunError) Error() string {
	s := fmt.Sprintf("%s: %s: HTTP %d", MailgunProvider, e.Op, e.Status)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// Unwrap reports ErrMailgunNotFound for 404.
func (e *MailgunError) Unwrap() error {
	if e.Status == http.StatusNotFound {
		return ErrMailgunNotFound
	}
	return nil
}

// MailgunOptions configures a Mailgun client. Zero values take the
// defaults named in the comments.
type MailgunOptions struct {
	BaseURL    string        // default MailgunBaseURL; absolute http(s) URL without credentials, query or fragment
	HTTPClient *http.Client  // default: a new client; redirects are never followed
	Timeout    time.Duration // whole-request timeout when HTTPClient has none; default MailgunDefaultTTL
	Logger     *slog.Logger  // default discards; logs carry no credential
}

// Mailgun is a client of Mailgun's key API (/v1/keys) and of the reads that
// check a key. It is safe for concurrent use.
type Mailgun struct {
	base  *url.URL
	httpc *http.Client
	log   *slog.Logger
}

// MailgunKey is one key of a listing: Mailgun never returns a key's secret
// after its creation, so there is none here.
type MailgunKey struct {
	ID          string
	Description string
	Kind        string // "domain", "user", "web"
	Role        string // "admin", "basic", "sending", "developer"
	DomainName  string
	CreatedAt   string // as Mailgun wrote it
	ExpiresAt   string // as Mailgun wrote it; "" when the key does not expire
	Disabled    bool
}

// NewMailgun builds a Mailgun client.
func NewMailgun(opts MailgunOptions) (*Mailgun, error) {
	u, err := parseBaseURL(MailgunProvider, opts.BaseURL, MailgunBaseURL)
	if err != nil {
		return nil, err
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = MailgunDefaultTTL
	}
	return &Mailgun{base: u, httpc: newHTTPClient(opts.HTTPClient, timeout), log: orDiscard(opts.Logger)}, nil
}

// Check asks Mailgun whether key may read domain (GET /v3/domains/{domain}).
//
// Which reads a domain sending key may make is not in Mailgun's reference.
// This client, and providertest's Mailgun server, take the narrow view:
// a sending key is refused here (403), so Check is for keys that may read
// the domain (the managing key, or any non-sending key). To check a
// minted sending key, use CheckSending.
func (c *Mailgun) Check(ctx context.Context, key secret.Value, domain string) error {
	const op = "check"
	if err := mailgunNeed(op, key, domain); err != nil {
		return err
	}
	status, _, err := c.mailgunDo(ctx, op, http.MethodGet, "/v3/domains/"+url.PathEscape(domain), nil, "", key)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("%s: %s: unexpected HTTP %d", MailgunProvider, op, status)
	}
	return nil
}

// CheckSending asks Mailgun whether the sending key may send for domain,
// without sending anything: it POSTs to /v3/{domain}/messages a form with
// only o:testmode=yes. Authentication comes before the form's validation,
// so a 400 ("from" missing) means the key was accepted; 401/403 is a
// *RefusedError. A 200 (the form was somehow accepted, in test mode: no
// delivery) counts as accepted too.
func (c *Mailgun) CheckSending(ctx context.Context, key secret.Value, domain string) error {
	const op = "check sending"
	if err := mailgunNeed(op, key, domain); err != nil {
		return err
	}
	body, ctype, err := mailgunForm(map[string]string{"o:testmode": "yes"})
	if err != nil {
		return fmt.Errorf("%s: %s: form: %w", MailgunProvider, op, err)
	}
	status, _, err := c.mailgunDo(ctx, op, http.MethodPost, "/v3/"+url.PathEscape(domain)+"/messages", body, ctype, key, http.StatusBadRequest)
	if err != nil {
		return err
	}
	if status != http.StatusOK && status != http.StatusBadRequest {
		return fmt.Errorf("%s: %s: unexpected HTTP %d", MailgunProvider, op, status)
	}
	return nil
}

// Mint creates a domain sending key for domain (POST /v1/keys, multipart:
// kind=domain, role=sending, domain_name, description) with the managing
// key, and returns its id and secret. Mailgun returns the secret only here.
func (c *Mailgun) Mint(ctx context.Context, manager secret.Value, domain, description string) (string, secret.Value, error) {
	const op = "mint"
	if err := mailgunNeed(op, manager, domain); err != nil {
		return "", secret.Value{}, err
	}
	body, ctype, err := mailgunForm(map[string]string{
		"kind":        "domain",
		"role":        "sending",
		"domain_name": domain,
		"description": description,
	})
	if err != nil {
		return "", secret.Value{}, fmt.Errorf("%s: %s: form: %w", MailgunProvider, op, err)
	}
	_, raw, err := c.mailgunDo(ctx, op, http.MethodPost, "/v1/keys", body, ctype, manager)
	if err != nil {
		return "", secret.Value{}, err
	}
	var ans struct {
		Key struct {
			ID     string `json:"id"`
			Secret string `json:"secret"`
		} `json:"key"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		// json's errors quote at most one character of the input: no secret.
		return "", secret.Value{}, fmt.Errorf("%s: %s: decode answer: %w", MailgunProvider, op, err)
	}
	if ans.Key.ID == "" || ans.Key.Secret == "" {
		return "", secret.Value{}, fmt.Errorf("%s: %s: answer lacks the key's id or secret", MailgunProvider, op)
	}
	return ans.Key.ID, secret.New(ans.Key.Secret), nil
}

// List returns the domain keys of domain (GET /v1/keys?domain_name=&kind=domain),
// read with the managing key. Listings carry no secrets.
func (c *Mailgun) List(ctx context.Context, manager secret.Value, domain string) ([]MailgunKey, error) {
	const op = "list"
	if err := mailgunNeed(op, manager, domain); err != nil {
		return nil, err
	}
	q := url.Values{"domain_name": {domain}, "kind": {"domain"}}
	_, raw, err := c.mailgunDo(ctx, op, http.MethodGet, "/v1/keys?"+q.Encode(), nil, "", manager)
	if err != nil {
		return nil, err
	}
	var ans struct {
		Items []struct {
			ID          string `json:"id"`
			Description string `json:"description"`
			Kind        string `json:"kind"`
			Role        string `json:"role"`
			DomainName  string `json:"domain_name"`
			CreatedAt   string `json:"created_at"`
			ExpiresAt   string `json:"expires_at"`
			IsDisabled  bool   `json:"is_disabled"`
		} `json:"items"`
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		return nil, fmt.Errorf("%s: %s: decode answer: %w", MailgunProvider, op, err)
	}
	keys := make([]MailgunKey, 0, len(ans.Items))
	for _, it := range ans.Items {
		keys = append(keys, MailgunKey{
			ID: it.ID, Description: it.Description, Kind: it.Kind, Role: it.Role,
			DomainName: it.DomainName, CreatedAt: it.CreatedAt, ExpiresAt: it.ExpiresAt, Disabled: it.IsDisabled,
		})
	}
	return keys, nil
}

// Delete revokes the key id (DELETE /v1/keys/{id}) with the managing key.
// An unknown id is an error wrapping ErrMailgunNotFound (after a lost
// answer, the earlier attempt may have deleted it).
func (c *Mailgun) Delete(ctx context.Context, manager secret.Value, id string) error {
	const op = "delete"
	if manager.IsZero() {
		return fmt.Errorf("%s: %s: no key", MailgunProvider, op)
	}
	if id == "" {
		return fmt.Errorf("%s: %s: no key id", MailgunProvider, op)
	}
	_, _, err := c.mailgunDo(ctx, op, http.MethodDelete, "/v1/keys/"+url.PathEscape(id), nil, "", manager)
	return err
}

func mailgunNeed(op string, key secret.Value, domain string) error {
	if key.IsZero() {
		return fmt.Errorf("%s: %s: no key", MailgunProvider, op)
	}
	if domain == "" {
		return fmt.Errorf("%s: %s: no domain", MailgunProvider, op)
	}
	return nil
}

func mailgunForm(fields map[string]string) ([]byte, string, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			return nil, "", err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), mw.FormDataContentType(), nil
}

// mailgunDo sends one request authenticated with key and returns the
// status and body of a 2xx answer (or of a status listed in also). Any
// other answer is an error: 401/403 a *RefusedError, others a
// *UnavailableError (429/5xx) or *MailgunError; the provider's message in any is scrubbed of key.
func (c *Mailgun) mailgunDo(ctx context.Context, op, method, pathQuery string, body []byte, ctype string, key secret.Value, also ...int) (int, []byte, error) {
	u := *c.base
	ref, err := url.Parse(pathQuery)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %s: request path: %w", MailgunProvider, op, err)
	}
	u.Path = c.base.Path + ref.Path
	u.RawPath = ""
	if ref.RawPath != "" {
		u.RawPath = c.base.EscapedPath() + ref.RawPath
	}
	u.RawQuery = ref.RawQuery
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %s: build request: %w", MailgunProvider, op, err)
	}
	req.SetBasicAuth(MailgunAPIUser, key.Reveal())
	req.Header.Set("Accept", "application/json")
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	start := time.Now()
	resp, err := c.httpc.Do(req)
	if err != nil {
		c.log.DebugContext(ctx, "mailgun request failed",
			"provider", MailgunProvider, "op", op, "duration", time.Since(start), "error", err.Error())
		return 0, nil, fmt.Errorf("%s: %s: %w", MailgunProvider, op, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, rerr := readBody(resp)
	c.log.DebugContext(ctx, "mailgun request",
		"provider", MailgunProvider, "op", op, "status", resp.StatusCode, "duration", time.Since(start))
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	for _, s := range also {
		ok = ok || resp.StatusCode == s
	}
	if ok {
		if rerr != nil {
			return 0, nil, fmt.Errorf("%s: %s: read answer: %w", MailgunProvider, op, rerr)
		}
		return resp.StatusCode, raw, nil
	}
	reason := mailgunReason(raw, key)
	switch st := resp.StatusCode; {
	case st == http.StatusUnauthorized || st == http.StatusForbidden:
		return st, nil, &RefusedError{Provider: MailgunProvider, Status: st, Reason: op + ": " + reason}
	case unavailable(st):
		return st, nil, &UnavailableError{Provider: MailgunProvider, Op: op, Status: st, RetryAfter: retryAfter(resp.Header, time.Now()), Reason: reason}
	default:
		return st, nil, &MailgunError{Op: op, Status: st, Reason: reason}
	}
}

// mailgunReason is the provider's message of an error answer: the
// "message" of Mailgun's {"message": "..."} or else the body's text, cut
// to a few hundred bytes, scrubbed of the key (the Basic auth token that
// carries it, should a server echo the header, and every piece of the key
// of scrubPiecesMin bytes or more), stripped of control characters and
// clipped.
func mailgunReason(raw []byte, key secret.Value) string {
	msg := string(raw)
	var shaped struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &shaped) == nil && shaped.Message != "" {
		msg = shaped.Message
	}
	if len(msg) > 4*maxReason {
		msg = msg[:4*maxReason]
	}
	if k := key.Reveal(); k != "" {
		msg = scrubPieces(redact(msg, base64.StdEncoding.EncodeToString([]byte(MailgunAPIUser+":"+k))), k)
	}
	return scrub(msg)
}
