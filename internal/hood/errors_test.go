package hood_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood"
)

func TestValidateID(t *testing.T) {
	tests := []struct {
		id      string
		ok      bool
		wantMsg string // substring of the error
	}{
		{"1161", true, ""},
		{"0", true, ""},
		{"12345678901234567890", true, ""},
		{"", false, `invalid integration id ""`},
		{"123456789012345678901", false, `"123456789012345678901"`},
		{"../1", false, `invalid integration id "../1"`},
		{"1?x=", false, `"1?x="`},
		{"%2F", false, `"%2F"`},
		{"1/2", false, `"1/2"`},
		{"١٢", false, `"١٢"`},
		{" 1", false, `" 1"`},
		{"1\n", false, `"1\n"`},
		{"-1", false, `"-1"`},
		{strings.Repeat("a", 100), false, `"` + strings.Repeat("a", 40) + `"...`},
		{strings.Repeat("é", 50), false, `"` + strings.Repeat("é", 40) + `"...`},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			err := hood.ValidateID(tt.id)
			if tt.ok {
				if err != nil {
					t.Errorf("ValidateID(%q): got %v, want nil", tt.id, err)
				}
				return
			}
			if !errors.Is(err, hood.ErrInvalidID) {
				t.Fatalf("ValidateID(%q): got %v, want an error wrapping ErrInvalidID", tt.id, err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("ValidateID(%q): got %q, want it to contain %q", tt.id, err, tt.wantMsg)
			}
		})
	}
}

func TestAPIErrorText(t *testing.T) {
	tests := []struct {
		name string
		err  hood.APIError
		want string
	}{
		{"documented", hood.APIError{StatusCode: 400, Code: 400, Title: "Bad request.", Message: "The request body is not valid.",
			TraceID: "99a84211-f73d-4ff8-acdf-eb3e06bb9d62", Method: "PATCH", ID: "1161", Attempts: 1},
			"PATCH integration 1161: 400 Bad request.: The request body is not valid. (trace_id 99a84211-f73d-4ff8-acdf-eb3e06bb9d62)"},
		{"no message", hood.APIError{StatusCode: 500, Title: "Internal Server Error", Method: "GET", ID: "7"},
			"GET integration 7: 500 Internal Server Error"},
		{"no title", hood.APIError{StatusCode: 503, Method: "GET", ID: "7", Attempts: 4},
			"GET integration 7: 503 Service Unavailable (gave up after 4 attempts)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error():\ngot  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestAPIErrorTemporary(t *testing.T) {
	for code, want := range map[int]bool{400: false, 401: false, 403: false, 404: false, 409: false, 429: true, 500: true, 502: true, 503: true, 599: true, 307: false} {
		if got := (&hood.APIError{StatusCode: code}).Temporary(); got != want {
			t.Errorf("Temporary() for %d: got %v, want %v", code, got, want)
		}
	}
}

func TestErrorBodyParsing(t *testing.T) {
	tests := []struct {
		name  string
		rep   reply
		check func(t *testing.T, e *hood.APIError)
	}{
		{"documented JSON", reply{status: 400, body: `{"code":400,"title":"Bad request.","message":"The request body is not valid.","trace_id":"99a8"}`},
			func(t *testing.T, e *hood.APIError) {
				if e.Code != 400 || e.Title != "Bad request." || e.Message != "The request body is not valid." || e.TraceID != "99a8" {
					t.Errorf("fields: got %+v, want code 400, title, message and trace_id from the body", e)
				}
			}},
		{"not JSON", reply{status: 403, body: "<html>forbidden by proxy</html>"},
			func(t *testing.T, e *hood.APIError) {
				if e.Title != "Forbidden" || e.Message != "" || strings.Contains(e.Error(), "proxy") {
					t.Errorf("got %+v (%q), want the status text as title and no raw body", e, e)
				}
			}},
		{"empty", reply{status: 404},
			func(t *testing.T, e *hood.APIError) {
				if e.Title != "Not Found" || e.Code != 0 {
					t.Errorf("got %+v, want title %q and code 0", e, "Not Found")
				}
			}},
		{"over 64 KiB", reply{status: 400, body: `{"title":"Bad.","message":"` + strings.Repeat("m", 70<<10) + `"}`},
			func(t *testing.T, e *hood.APIError) {
				if e.Title != "Bad Request" || len(e.Error()) > 200 {
					t.Errorf("got title %q and a %d-byte message, want the status text and a short message", e.Title, len(e.Error()))
				}
			}},
		{"control characters", reply{status: 400, body: `{"title":"Bad\nrequest","message":"line1\r\nfake log line","trace_id":"t\u0000x"}`},
			func(t *testing.T, e *hood.APIError) {
				if strings.ContainsAny(e.Error(), "\r\n\x00") {
					t.Errorf("Error() %q: got control characters, want them replaced", e.Error())
				}
			}},
		{"long message", reply{status: 400, body: `{"message":"` + strings.Repeat("m", 2000) + `"}`},
			func(t *testing.T, e *hood.APIError) {
				if len(e.Message) > 600 {
					t.Errorf("Message: got %d bytes, want it cut to about 512", len(e.Message))
				}
			}},
		{"string code ignored", reply{status: 400, body: `{"code":"x","title":"Bad."}`},
			func(t *testing.T, e *hood.APIError) {
				if e.Code != 0 || e.Title != "Bad." {
					t.Errorf("got code %d title %q, want 0 and %q", e.Code, e.Title, "Bad.")
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScriptServer(t, tt.rep)
			c, _ := newClient(t, srv.URL, nil)
			err := c.UpdateSettings(context.Background(), tok(), "1161", twilioSettings())
			var ae *hood.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("UpdateSettings: got %v, want an *APIError", err)
			}
			if ae.StatusCode != tt.rep.status || ae.Method != http.MethodPatch || ae.ID != "1161" {
				t.Errorf("got status %d method %s id %s, want %d PATCH 1161", ae.StatusCode, ae.Method, ae.ID, tt.rep.status)
			}
			tt.check(t, ae)
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"1", time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"1.5", 0},
		{"soon", 0},
		{"99999999999999999", time.Duration(1<<63 - 1)},
		{now.Add(30 * time.Second).Format(http.TimeFormat), 30 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		if got := hood.ParseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("ParseRetryAfter(%q): got %v, want %v", tt.in, got, tt.want)
		}
	}
}
