package provider

import (
	"context"
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

// The HTTP plumbing every client shares.

const (
	maxBody       = 1 << 20 // bytes of an answer read at most
	maxReason     = 200     // bytes of a provider's message kept in an error
	maxRetryAfter = 24 * time.Hour
)

// errBodyTooLong is readBody's error for an answer over maxBody bytes.
var errBodyTooLong = fmt.Errorf("answer longer than %d bytes", maxBody)

// parseBaseURL parses a client's base URL, def when raw is empty: an
// absolute http(s) URL without credentials, query or fragment, its path
// without a trailing slash. Its error quotes nothing of raw (which could
// hold credentials).
func parseBaseURL(provider, raw, def string) (*url.URL, error) {
	if raw == "" {
		raw = def
	}
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%s: base URL: want an absolute http(s) URL without credentials, query or fragment", provider)
	}
	u.RawPath = ""
	return u, nil
}

// orDiscard is l, or a logger that drops everything when l is nil.
func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}

// newHTTPClient returns a copy of c (a new client when nil) that never
// follows a redirect (it would carry the credential wherever it points)
// and has timeout when c has no timeout of its own. c is not changed.
func newHTTPClient(c *http.Client, timeout time.Duration) *http.Client {
	hc := &http.Client{}
	if c != nil {
		cp := *c
		hc = &cp
	}
	if hc.Timeout <= 0 {
		hc.Timeout = timeout
	}
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return hc
}

// readBody reads at most maxBody bytes of resp's body. It returns what it
// read along with errBodyTooLong for a longer body, or with the read error.
func readBody(resp *http.Response) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err == nil && len(b) > maxBody {
		return b[:maxBody], errBodyTooLong
	}
	return b, err
}

// retryAfter reads h's Retry-After (seconds or an HTTP date), at most
// maxRetryAfter; 0 when absent, past or unreadable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now).Round(time.Second), maxRetryAfter)
	}
	return 0
}

// redact replaces every non-empty secret in s, in order, with
// secret.Redacted.
func redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, secret.Redacted)
		}
	}
	return s
}

// scrub makes a provider's text safe to show: the secrets redacted,
// invalid UTF-8 and control characters blanked, spaces trimmed, clipped to
// maxReason bytes. A provider's own patterns go through redact or a regexp
// before.
func scrub(s string, secrets ...string) string {
	s = redact(strings.ToValidUTF8(s, "?"), secrets...)
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if len(s) > maxReason {
		cut := maxReason
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

// scrubErr returns err, or, when the text of any error of its chain
// (or its %#v) holds a secret, an error of the redacted text only that
// still answers errors.Is (context.Canceled, context.DeadlineExceeded)
// and net.Error's Timeout as err did.
func scrubErr(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		txt, gs := e.Error(), fmt.Sprintf("%#v", e)
		if redact(txt, secrets...) != txt || redact(gs, secrets...) != gs {
			var t interface{ Timeout() bool }
			return &scrubbedError{
				msg:      redact(err.Error(), secrets...),
				timeout:  errors.As(err, &t) && t.Timeout(),
				canceled: errors.Is(err, context.Canceled),
				deadline: errors.Is(err, context.DeadlineExceeded),
			}
		}
	}
	return err
}

// scrubbedError is an error whose text had a secret in it: the text
// without it, and what errors.Is and net.Error need.
type scrubbedError struct {
	msg                         string
	timeout, canceled, deadline bool
}

func (e *scrubbedError) Error() string   { return e.msg }
func (e *scrubbedError) Timeout() bool   { return e.timeout }
func (e *scrubbedError) Temporary() bool { return e.timeout }
func (e *scrubbedError) Is(target error) bool {
	return (e.canceled && target == context.Canceled) || (e.deadline && target == context.DeadlineExceeded)
}

// scrubPiecesMin is the shortest piece of a key that scrubPieces drops.
const scrubPiecesMin = 6

// scrubPieces replaces every piece of msg that is a piece of key at least
// scrubPiecesMin bytes long (or the whole of a shorter key): the key
// itself, and what is left of it where the message was cut or it was
// echoed in part.
func scrubPieces(msg, key string) string {
	minLen := min(scrubPiecesMin, len(key))
	var b strings.Builder
	for i := 0; i < len(msg); {
		n := 0
		for l := minLen; i+l <= len(msg) && l <= len(key); l++ {
			if !strings.Contains(key, msg[i:i+l]) {
				break
			}
			n = l
		}
		if n == 0 {
			b.WriteByte(msg[i])
			i++
			continue
		}
		b.WriteString(secret.Redacted)
		i += n
	}
	return b.String()
}
