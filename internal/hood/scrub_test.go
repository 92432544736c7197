package hood_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/secret"
)

func TestErrorsNeverRepeatSentValues(t *testing.T) {
	const value = "SENTINEL-echoed-by-hood-0123456789"
	long := strings.Repeat("x", 495) + value // the value straddles the 512-rune cut
	for _, msg := range []string{
		"settings.auth_token: value '" + value + "' is not a valid bot token",
		"bad token " + value,
		long,
		"token '" + value[:14] + "...' is invalid",                 // a quoted prefix
		"token ending in " + value[len(value)-12:] + " is invalid", // a quoted suffix
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"code":400,"title":"Bad request: %s","message":%q,"trace_id":"t-1"}`, value, msg)
		}))
		c, err := hood.New(hood.Options{
			BaseURL: srv.URL, Timeout: config.DefaultHoodTimeout, Limiter: documentedLimiter(t),
			MaxAttempts: 1, InitialBackoff: config.DefaultInitialBackoff, MaxBackoff: config.DefaultMaxBackoff,
		})
		if err != nil {
			t.Fatal(err)
		}
		err = c.UpdateSettings(context.Background(), secret.New("token-"+value), "1161",
			map[string]secret.Value{"auth_token": secret.New(value), "chat_id": secret.New("1")})
		srv.Close()
		var ae *hood.APIError
		if !errors.As(err, &ae) {
			t.Fatalf("got %v, want an APIError", err)
		}
		for _, part := range []string{value, value[:10], value[len(value)-10:]} {
			if strings.Contains(err.Error(), part) {
				t.Errorf("error text repeats a sent value (%d bytes of it)", len(part))
			}
		}
		if !strings.Contains(ae.Message, secret.Redacted) || ae.TraceID != "t-1" {
			t.Errorf("got message %q trace %q, want the value redacted and the trace id kept", strings.ReplaceAll(ae.Message, value, "<V>"), ae.TraceID)
		}
	}
}
