package hood_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
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
		BaseURL: srv.URL(), Limiter: newLimiter(t, hood.Limits{Burst: burst, PerMinute: perLong, Window: window, LongWindow: long}),
		Timeout: config.DefaultHoodTimeout, MaxAttempts: config.DefaultMaxAttempts, InitialBackoff: time.Millisecond, MaxBackoff: time.Second,
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

// holdServer starts a Hood test server with integrations 1161 and 1162 and
// queues a 429 with Retry-After: 2 for the next GET of 1161.
func holdServer(t *testing.T) *hoodtest.Server {
	t.Helper()
	srv, err := hoodtest.Start(hoodtest.Options{Tokens: []string{sentinelToken}})
	if err != nil {
		t.Fatalf("hoodtest.Start: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	for _, id := range []string{"1161", "1162"} {
		if err := srv.AddIntegration(id, "twilio_sms", map[string]string{"account_sid": "AC-old", "auth_token": "old", "default_phone_number": "+1"}); err != nil {
			t.Fatalf("AddIntegration: %v", err)
		}
	}
	srv.Inject(hoodtest.Fault{Method: http.MethodGet, ID: "1161", Status: http.StatusTooManyRequests, RetryAfter: "2"})
	return srv
}

// drawHold makes c draw the queued 429 (Retry-After 2s, over the client's
// 1s max_backoff: that request gives up) and returns when the server
// received it.
func drawHold(t *testing.T, srv *hoodtest.Server, c *hood.Client) time.Time {
	t.Helper()
	_, err := c.GetIntegration(context.Background(), tok(), "1161")
	var ae *hood.APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusTooManyRequests || ae.Attempts != 1 {
		t.Fatalf("GetIntegration: got %v, want a 429 APIError after 1 attempt", err)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 || reqs[0].Status != http.StatusTooManyRequests {
		t.Fatalf("requests: got %+v, want one answered 429", reqs)
	}
	return reqs[0].Time
}

// checkHeld fails the test for each request after the first that reached
// the server before the hold drawn at t429 ended (2s).
func checkHeld(t *testing.T, srv *hoodtest.Server, t429 time.Time, want int) {
	t.Helper()
	reqs := srv.Requests()
	if len(reqs) != want {
		t.Errorf("requests received: got %d, want %d", len(reqs), want)
	}
	for _, r := range reqs[1:] {
		if r.Time.Before(t429.Add(2 * time.Second)) {
			t.Errorf("%s %s reached Hood %v after the 429, want no request before the 2s Retry-After ended", r.Method, r.Path, r.Time.Sub(t429))
		}
		if r.Status == http.StatusTooManyRequests {
			t.Errorf("%s %s: got 429, want no throttling", r.Method, r.Path)
		}
	}
}

// TestClientRetryAfterHoldsEveryRequest: a Retry-After longer than
// max_backoff fails the request that drew it, and holds every other
// request of the client until it ends; one whose context ends before then
// fails at once, never sent.
func TestClientRetryAfterHoldsEveryRequest(t *testing.T) {
	t.Parallel()
	srv := holdServer(t)
	c, err := hood.New(hood.Options{
		BaseURL: srv.URL(), Timeout: config.DefaultHoodTimeout, Limiter: documentedLimiter(t),
		MaxAttempts: config.DefaultMaxAttempts, InitialBackoff: time.Millisecond, MaxBackoff: time.Second,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t429 := drawHold(t, srv, c)

	// A request that cannot wait for the hold fails at once, unsent.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	err = c.UpdateSettings(ctx, tok(), "1162", twilioSettings())
	var he *hood.HoldError
	if !errors.As(err, &he) {
		t.Fatalf("UpdateSettings with a 500ms deadline: got %v, want a *hood.HoldError", err)
	}
	if !errors.Is(err, hood.ErrNotSent) || hood.MayHaveLanded(err) {
		t.Errorf("HoldError: got errors.Is(ErrNotSent) %v, MayHaveLanded %v; want true, false", errors.Is(err, hood.ErrNotSent), hood.MayHaveLanded(err))
	}
	for _, want := range []string{"PATCH integration 1162", "held until", "429 with Retry-After 2s to GET integration 1161", "request not sent"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("HoldError %q: want it to say %q", err, want)
		}
	}
	if n := srv.Count(""); n != 1 {
		t.Errorf("requests received after the unsent one: got %d, want 1", n)
	}

	// Requests that can wait go out once the hold ends.
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Go(func() { errs <- c.UpdateSettings(context.Background(), tok(), "1162", twilioSettings()) })
	wg.Go(func() { _, err := c.GetIntegration(context.Background(), tok(), "1162"); errs <- err })
	wg.Go(func() { _, err := c.GetIntegration(context.Background(), tok(), "1161"); errs <- err })
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("request after the hold: got %v, want nil", err)
		}
	}
	checkHeld(t, srv, t429, 4)
}

// TestClientsSharingLimiterHonourHold: a hold drawn by one client holds
// another that shares its Limiter (the daemon's client after a reload).
func TestClientsSharingLimiterHonourHold(t *testing.T) {
	t.Parallel()
	srv := holdServer(t)
	ls := hood.NewLimiters()
	var clients []*hood.Client
	for range 2 {
		lim, err := ls.For(srv.URL(), hood.Limits{Burst: config.DefaultBurst, PerMinute: config.DefaultPerMinute})
		if err != nil {
			t.Fatalf("Limiters.For: %v", err)
		}
		c, err := hood.New(hood.Options{
			BaseURL: srv.URL(), Limiter: lim, Timeout: config.DefaultHoodTimeout, MaxAttempts: config.DefaultMaxAttempts,
			InitialBackoff: time.Millisecond, MaxBackoff: time.Second,
		})
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		clients = append(clients, c)
	}
	t429 := drawHold(t, srv, clients[0])
	if err := clients[1].UpdateSettings(context.Background(), tok(), "1162", twilioSettings()); err != nil {
		t.Fatalf("UpdateSettings of the second client: got %v, want nil", err)
	}
	checkHeld(t, srv, t429, 2)
}

// A start taken with Reserve serves the first attempt of the request made
// with its context, which then goes at once while the windows are full;
// release gives back a start that was not used (counted as done).
func TestClientReserve(t *testing.T) {
	t.Parallel()
	srv, err := hoodtest.Start(hoodtest.Options{Tokens: []string{sentinelToken}, Burst: -1, PerMinute: -1})
	if err != nil {
		t.Fatalf("hoodtest.Start: %v", err)
	}
	defer srv.Close()
	if err := srv.AddIntegration("1171", "twilio_sms", map[string]string{"account_sid": "AC-old", "auth_token": "old", "default_phone_number": "+1"}); err != nil {
		t.Fatal(err)
	}
	lim := newLimiter(t, hood.Limits{Burst: 1, PerMinute: 100, Window: 10 * time.Second, LongWindow: time.Minute})
	c, err := hood.New(hood.Options{
		BaseURL: srv.URL(), Limiter: lim,
		Timeout: config.DefaultHoodTimeout, MaxAttempts: 1, InitialBackoff: time.Millisecond, MaxBackoff: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, release, err := c.Reserve(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	// The window (1 per 10 s) is full: only the reserved start lets a
	// request through within 3 s.
	ctx, cancel := context.WithTimeout(rctx, 3*time.Second)
	defer cancel()
	if err := c.UpdateSettings(ctx, tok(), "1171", twilioSettings()); err != nil {
		t.Fatalf("UpdateSettings with the reserved start: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(rctx, 500*time.Millisecond)
	defer cancel2()
	if err := c.UpdateSettings(ctx2, tok(), "1171", twilioSettings()); !errors.Is(err, hood.ErrNotSent) {
		t.Errorf("a second request on the same context: got %v, want it to wait for the window and not be sent", err)
	}
	if got := srv.Count(http.MethodPatch); got != 1 {
		t.Errorf("PATCHes: got %d, want 1", got)
	}

	// An unused reservation released counts as one start, once.
	lim2 := newLimiter(t, hood.Limits{Burst: 5, PerMinute: 100})
	c2, err := hood.New(hood.Options{BaseURL: srv.URL(), Limiter: lim2, Timeout: time.Second, MaxAttempts: 1, InitialBackoff: time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, release2, err := c2.Reserve(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	release2()
	release2()
	if got := len(lim2.Sent()); got != 1 {
		t.Errorf("starts counted after an unused reservation was released twice: got %d, want 1", got)
	}
}
