package hood

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ocamba-rotator/rotator/internal/secret"
)

// ErrInvalidID is wrapped by every error that rejects an integration id
// before a request is made. See ValidateID.
var ErrInvalidID = errors.New("invalid integration id")

// maxIDLen is the longest integration id accepted: 20 decimal digits hold
// any unsigned 64-bit number.
const maxIDLen = 20

// ValidateID reports whether id is a Hood integration id rotator accepts:
// 1 to 20 ASCII decimal digits. Anything else (path separators, escapes,
// query characters, spaces, non-ASCII digits) is rejected with an error
// wrapping ErrInvalidID that names the id, quoted and truncated.
func ValidateID(id string) error {
	if id == "" {
		return fmt.Errorf("%w %q: empty, want 1 to %d ASCII decimal digits", ErrInvalidID, id, maxIDLen)
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("%w %s: longer than %d characters", ErrInvalidID, quoteTrunc(id, 40), maxIDLen)
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '0' || id[i] > '9' {
			return fmt.Errorf("%w %s: want 1 to %d ASCII decimal digits", ErrInvalidID, quoteTrunc(id, 40), maxIDLen)
		}
	}
	return nil
}

// quoteTrunc quotes s, cut to at most n runes (an ellipsis marks the cut).
func quoteTrunc(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return strconv.Quote(s)
	}
	i, count := 0, 0
	for i < len(s) && count < n {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		count++
	}
	return strconv.Quote(s[:i]) + "..."
}

// APIError is a non-2xx answer of the Hood API. Code, Title, Message and
// TraceID come from Hood's JSON error body when it has one; without one,
// Title is the HTTP status text. TraceID is what Ocamba support asks for.
type APIError struct {
	StatusCode int           // HTTP status of the answer
	Code       int           // "code" of the error body, 0 if absent
	Title      string        // "title" of the error body, else the status text
	Message    string        // "message" of the error body, may be empty
	TraceID    string        // "trace_id" of the error body, may be empty
	RetryAfter time.Duration // parsed Retry-After header, 0 if absent

	Method   string // HTTP method of the request, e.g. "PATCH"
	ID       string // integration id of the request
	Attempts int    // attempts made when this error was returned
}

// Error returns e.g. `PATCH integration 1161: 400 Bad request.: The request
// body is not valid. (trace_id 99a8...)`, followed by the number of attempts
// when there was more than one.
func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s integration %s: %d", e.Method, e.ID, e.StatusCode)
	title := e.Title
	if title == "" {
		title = http.StatusText(e.StatusCode)
	}
	if title != "" {
		b.WriteString(" " + title)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.TraceID != "" {
		b.WriteString(" (trace_id " + e.TraceID + ")")
	}
	if e.Attempts > 1 {
		fmt.Fprintf(&b, " (gave up after %d attempts)", e.Attempts)
	}
	return b.String()
}

// Temporary reports whether the answer may change on a later attempt: 429
// (rate limited) or any 5xx.
func (e *APIError) Temporary() bool {
	return e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500 && e.StatusCode <= 599
}

// errorBody is Hood's documented error body. Each field is read on its own,
// so that one of an unexpected type does not hide the others.
type errorBody struct {
	Code    json.RawMessage `json:"code"`
	Title   json.RawMessage `json:"title"`
	Message json.RawMessage `json:"message"`
	TraceID json.RawMessage `json:"trace_id"`
}

// jsonString returns raw as a string if it is a JSON string, else "".
func jsonString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return cleanText(s)
}

// jsonCode returns raw as an int if it is a JSON integer or a string holding
// one, else 0.
func jsonCode(raw json.RawMessage) int {
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return 0
	}
	v, err := n.Int64()
	if err != nil || v < math.MinInt32 || v > math.MaxInt32 {
		return 0
	}
	return int(v)
}

// maxErrorField bounds each server-provided text kept in an APIError.
const maxErrorField = 512

// newAPIError builds the APIError of a non-2xx answer from its status, its
// headers and (at most maxBodyBytes of) its body. A body that is not Hood's
// JSON error object is ignored: only the documented fields are ever kept.
func newAPIError(method, id string, status int, h http.Header, body []byte, now time.Time) *APIError {
	e := &APIError{
		StatusCode: status,
		Method:     method,
		ID:         id,
		RetryAfter: parseRetryAfter(h.Get("Retry-After"), now),
	}
	var eb errorBody
	if len(body) > 0 && json.Unmarshal(body, &eb) == nil {
		e.Code = jsonCode(eb.Code)
		e.Title = jsonString(eb.Title)
		e.Message = jsonString(eb.Message)
		e.TraceID = jsonString(eb.TraceID)
	}
	if e.Title == "" {
		e.Title = http.StatusText(status)
	}
	return e
}

// minScrub is the shortest sent value scrubbed from error texts: shorter
// ones ("1", "587") are not credentials, and replacing them would garble
// Hood's messages.
const minScrub = 4

// minPartial is the shortest run of a sent value that scrub redacts when it
// is quoted in part; maxPartial bounds the values searched that way.
const (
	minPartial = 8
	maxPartial = 64 << 10
)

// scrub redacts sent values from the server-provided texts: every whole
// value of at least minScrub bytes, and every run of at least minPartial
// bytes that a sent value contains (a message quoting part of a token, or a
// value cut by cleanText).
func (e *APIError) scrub(sent []secret.Value) {
	for _, f := range []*string{&e.Title, &e.Message, &e.TraceID} {
		*f = scrubText(*f, sent)
	}
}

func scrubText(text string, sent []secret.Value) string {
	for _, v := range sent {
		if v.Len() >= minScrub {
			text = strings.ReplaceAll(text, v.Reveal(), secret.Redacted)
		}
	}
	mark := make([]bool, len(text))
	found := false
	for _, v := range sent {
		if v.Len() < minPartial || v.Len() > maxPartial {
			continue
		}
		plain := v.Reveal()
		for i := 0; i+minPartial <= len(text); i++ {
			if strings.Contains(plain, text[i:i+minPartial]) {
				for j := i; j < i+minPartial; j++ {
					mark[j] = true
				}
				found = true
			}
		}
	}
	if !found {
		return text
	}
	var b strings.Builder
	for i := 0; i < len(text); {
		if !mark[i] {
			b.WriteByte(text[i])
			i++
			continue
		}
		for i < len(text) && mark[i] {
			i++
		}
		b.WriteString(secret.Redacted)
	}
	return b.String()
}

// cleanText makes a server-provided string safe for one log line or error:
// control characters become spaces, the result is trimmed and cut to
// maxErrorField runes.
func cleanText(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if utf8.RuneCountInString(s) > maxErrorField {
		r := []rune(s)
		s = string(r[:maxErrorField]) + "..."
	}
	return s
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date.
// It returns 0 when the header is absent, unparseable or in the past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		switch {
		case secs <= 0:
			return 0
		case secs > int64(math.MaxInt64/time.Second):
			return time.Duration(math.MaxInt64)
		default:
			return time.Duration(secs) * time.Second
		}
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}
