package hood

import (
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzParseError: any error body and Retry-After header gives an APIError
// without panicking, with one-line fields of bounded length and a
// non-negative Retry-After.
func FuzzParseError(f *testing.F) {
	f.Add(400, `{"code": 400, "title": "Bad request.", "message": "The request body is not valid.", "trace_id": "99a84211-f73d-4ff8-acdf-eb3e06bb9d62"}`, "")
	f.Add(500, `{"code": 500, "title": "Internal error."}`, "")
	f.Add(429, `{"code": "429", "title": ["x"], "message": null}`, "3")
	f.Add(503, `<html>down</html>`, "Wed, 21 Oct 2015 07:28:00 GMT")
	f.Add(502, ``, "-1")
	f.Fuzz(func(t *testing.T, status int, body, retryAfter string) {
		h := http.Header{}
		h.Set("Retry-After", retryAfter)
		e := newAPIError("PATCH", "1161", status, h, []byte(body), time.Unix(1_700_000_000, 0))
		if e.RetryAfter < 0 {
			t.Fatalf("RetryAfter %v < 0", e.RetryAfter)
		}
		for name, s := range map[string]string{"title": e.Title, "message": e.Message, "trace_id": e.TraceID} {
			if strings.ContainsAny(s, "\n\r") {
				t.Fatalf("%s %q spans lines", name, s)
			}
			if n := utf8.RuneCountInString(s); n > maxErrorField+3 {
				t.Fatalf("%s has %d runes, want at most %d", name, n, maxErrorField+3)
			}
		}
		if msg := e.Error(); strings.ContainsAny(msg, "\n\r") {
			t.Fatalf("Error() %q spans lines", msg)
		}
	})
}
