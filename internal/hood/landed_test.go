package hood_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/secret"
)

func TestMayHaveLanded(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"never sent", fmt.Errorf("PATCH integration 1: wait for rate limit: %w (%w)", context.Canceled, hood.ErrNotSent), false},
		{"refused at once (400)", &hood.APIError{StatusCode: 400, Attempts: 1}, false},
		{"refused at once (401)", &hood.APIError{StatusCode: 401, Attempts: 1}, false},
		{"throttled at once (429)", &hood.APIError{StatusCode: 429, Attempts: 1}, false},
		{"wrapped refusal", fmt.Errorf("push: %w", &hood.APIError{StatusCode: 404, Attempts: 1}), false},
		{"5xx", &hood.APIError{StatusCode: 500, Attempts: 1}, true},
		{"a 4xx after earlier attempts", &hood.APIError{StatusCode: 400, Attempts: 2}, true},
		{"timeout", fmt.Errorf("attempt timed out after 10s: %w", context.DeadlineExceeded), true},
		{"connection reset", errors.New("read: connection reset by peer"), true},
		{"held, never sent", &hood.HoldError{Method: "PATCH", ID: "1"}, false},
		{"held retry after a 5xx", &hood.HoldError{Method: "PATCH", ID: "1", Last: &hood.APIError{StatusCode: 503, Attempts: 1}}, true},
		{"held retry after a 429", &hood.HoldError{Method: "PATCH", ID: "1", Last: &hood.APIError{StatusCode: 429, Attempts: 1}}, false},
		{"no error: applied", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := hood.MayHaveLanded(tt.err); got != tt.want {
				t.Errorf("MayHaveLanded(%v): got %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestRefusedBeforeSendingHasNotLanded: what the client refuses before the
// wire (a bad id, no settings, an empty field name) is "not sent", so a
// caller never records it as a push that may have landed.
func TestRefusedBeforeSendingHasNotLanded(t *testing.T) {
	opts := validOptions(t)
	opts.BaseURL = "http://127.0.0.1:1"
	c, err := hood.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	tok := secret.New("token")
	tests := []struct {
		name     string
		id       string
		settings map[string]secret.Value
	}{
		{"bad id", "12a", map[string]secret.Value{"k": secret.New("v")}},
		{"no settings", "1", nil},
		{"empty field name", "1", map[string]secret.Value{"": secret.New("v")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.UpdateSettings(context.Background(), tok, tt.id, tt.settings)
			if err == nil || !errors.Is(err, hood.ErrNotSent) || hood.MayHaveLanded(err) {
				t.Errorf("got %v (MayHaveLanded %v), want a not-sent error", err, hood.MayHaveLanded(err))
			}
		})
	}
}
