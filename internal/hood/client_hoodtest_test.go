package hood_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
	"github.com/ocamba-rotator/rotator/internal/secret"
)

// TestClientAgainstHoodTestServer runs the client against the team's Hood
// test server: a push through a transient 503, the read-back, and a burst of
// concurrent pushes that the server's own rate limits must never throttle.
func TestClientAgainstHoodTestServer(t *testing.T) {
	t.Parallel()
	const (
		burst, perLong = 3, 8
		window, long   = 100 * time.Millisecond, 500 * time.Millisecond
	)
	srv, err := hoodtest.Start(hoodtest.Options{
		Tokens: []string{sentinelToken},
		Burst:  burst, PerMinute: perLong, Window: window, LongWindow: long,
	})
	if err != nil {
		t.Fatalf("hoodtest.Start: %v", err)
	}
	defer srv.Close()
	ids := []string{"1161", "1162", "1163", "1164", "1165"}
	for _, id := range ids {
		if err := srv.AddIntegration(id, "twilio_sms", map[string]string{"account_sid": "AC-old", "auth_token": "old", "default_phone_number": "+1"}); err != nil {
			t.Fatalf("AddIntegration: %v", err)
		}
	}
	srv.Inject(hoodtest.Fault{Method: http.MethodPatch, ID: "1161", Status: http.StatusServiceUnavailable})

	c, err := hood.New(hood.Options{
		BaseURL: srv.URL(), Burst: burst, PerMinute: perLong, Window: window, LongWindow: long,
		InitialBackoff: time.Millisecond, MaxBackoff: time.Second,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx := context.Background()

	// A push through one injected 503.
	if err := c.UpdateSettings(ctx, tok(), "1161", twilioSettings()); err != nil {
		t.Fatalf("UpdateSettings: got %v, want nil after one retry", err)
	}
	in, ok := srv.Integration("1161")
	if !ok {
		t.Fatal("integration 1161: gone from the server")
	}
	want := map[string]string{"account_sid": "AC0123", "auth_token": sentinelValue, "default_phone_number": "+14155552671"}
	if !maps.Equal(in.Settings, want) {
		t.Errorf("stored settings: got %v, want %v", in.Settings, want)
	}
	if got := srv.Count(http.MethodPatch); got != 2 {
		t.Errorf("PATCH requests: got %d, want 2 (503, then 204)", got)
	}

	// The read-back.
	got, err := c.GetIntegration(ctx, tok(), "1161")
	if err != nil {
		t.Fatalf("GetIntegration: got %v, want nil", err)
	}
	var schema []string
	for _, s := range got.Provider.Settings {
		schema = append(schema, s.Name)
	}
	p, _ := hood.LookupProvider("twilio_sms")
	if got.ID != "1161" || got.Provider.Name != p.Name || got.EffectiveStatus != "active" ||
		!slices.Equal(schema, p.FieldNames()) || !slices.Equal(got.SettingNames, p.FieldNames()) {
		t.Errorf("integration: got %+v, want id 1161, provider %s with fields %v, effective_status active", got, p.Name, p.FieldNames())
	}

	// Concurrent pushes: never throttled by a server enforcing the same windows.
	var wg sync.WaitGroup
	errs := make(chan error, 4*len(ids))
	for round := range 4 {
		for _, id := range ids {
			wg.Go(func() {
				s := map[string]secret.Value{"auth_token": secret.New(fmt.Sprintf("tok-%d", round))}
				errs <- c.UpdateSettings(ctx, tok(), id, s)
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("UpdateSettings: got %v, want nil", err)
		}
	}
	if n := srv.Throttled(); n != 0 {
		t.Errorf("429 answers from the server's rate limits: got %d, want 0", n)
	}
}
