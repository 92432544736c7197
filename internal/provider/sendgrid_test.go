package provider_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/provider"
	"github.com/ocamba-rotator/rotator/internal/provider/providertest"
	"github.com/ocamba-rotator/rotator/internal/secret"
)

var sendgridManagerScopes = []string{
	providertest.SendGridScopeCreate, providertest.SendGridScopeRead, providertest.SendGridScopeDelete, "mail.send",
}

// sendgridSetup starts a server with a managing key and a client of it.
func sendgridSetup(t *testing.T, opts provider.SendGridOptions) (*providertest.SendGridServer, *provider.SendGrid, string, secret.Value) {
	t.Helper()
	srv := providertest.NewSendGridServer()
	t.Cleanup(srv.Close)
	id, manager := srv.SeedKey("rotator manager", sendgridManagerScopes...)
	opts.BaseURL = srv.URL()
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	c, err := provider.NewSendGrid(opts)
	if err != nil {
		t.Fatalf("NewSendGrid: got %v, want nil", err)
	}
	return srv, c, id, manager
}

func sendgridWantRefused(t *testing.T, err error, status int) {
	t.Helper()
	var re *provider.RefusedError
	switch {
	case !errors.Is(err, provider.ErrRefused) || !errors.As(err, &re):
		t.Fatalf("got %v, want a *provider.RefusedError", err)
	case re.Status != status || re.Provider != "sendgrid_email":
		t.Fatalf("got provider %q status %d, want sendgrid_email %d", re.Provider, re.Status, status)
	}
}

func sendgridWantStatus(t *testing.T, err error, status int) *provider.SendGridStatusError {
	t.Helper()
	var se *provider.SendGridStatusError
	if !errors.As(err, &se) || errors.Is(err, provider.ErrRefused) {
		t.Fatalf("got %v, want a *provider.SendGridStatusError (not refused)", err)
	}
	if se.Status != status {
		t.Fatalf("got status %d, want %d (%v)", se.Status, status, err)
	}
	return se
}

func sendgridWantUnavailable(t *testing.T, err error, status int) *provider.UnavailableError {
	t.Helper()
	var se *provider.UnavailableError
	if !errors.As(err, &se) || errors.Is(err, provider.ErrRefused) {
		t.Fatalf("got %v, want a *provider.UnavailableError (not refused)", err)
	}
	if se.Status != status {
		t.Fatalf("got status %d, want %d (%v)", se.Status, status, err)
	}
	return se
}

func sendgridWantNames(t *testing.T, err error, op string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got nil error, want one")
	}
	if want := "sendgrid_email " + op + ":"; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("got error %q, want it to start with %q", err, want)
	}
}

// sgSentinelForURL is a password inside a base URL: never in an error.
const sgSentinelForURL = "SENTINEL-URL-PASSWORD"

func TestNewSendGridBaseURL(t *testing.T) {
	for _, base := range []string{"api.sendgrid.com", "ftp://x", "http://", "::", "https://u:pw-" + sgSentinelForURL + "@api.sendgrid.com"} {
		_, err := provider.NewSendGrid(provider.SendGridOptions{BaseURL: base})
		switch {
		case err == nil:
			t.Errorf("base %q: got nil error, want one", strings.ReplaceAll(base, sgSentinelForURL, "S"))
		case strings.Contains(err.Error(), sgSentinelForURL):
			t.Errorf("base with credentials: the error quotes them")
		}
	}
	if _, err := provider.NewSendGrid(provider.SendGridOptions{}); err != nil {
		t.Errorf("default base: got %v, want nil", err)
	}
}

func TestSendGridCheck(t *testing.T) {
	srv, c, _, manager := sendgridSetup(t, provider.SendGridOptions{})
	goneID, gone := srv.SeedKey("gone", "mail.send")
	srv.Remove(goneID)
	_, sender := srv.SeedKey("sender", "mail.send")

	tests := []struct {
		name       string
		key        secret.Value
		wantScopes []string
		wantStatus int // 0 = success
	}{
		{"manager", manager, sendgridManagerScopes, 0},
		{"sender", sender, []string{"mail.send"}, 0},
		{"unknown key", secret.New("SG.nope.nope"), nil, http.StatusUnauthorized},
		{"deleted key", gone, nil, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scopes, err := c.Check(context.Background(), tt.key)
			if tt.wantStatus != 0 {
				sendgridWantNames(t, err, "check")
				sendgridWantRefused(t, err, tt.wantStatus)
				return
			}
			if err != nil {
				t.Fatalf("got %v, want nil", err)
			}
			if !slices.Equal(scopes, tt.wantScopes) {
				t.Errorf("got scopes %v, want %v", scopes, tt.wantScopes)
			}
		})
	}
	if _, err := c.Check(context.Background(), secret.Value{}); err == nil {
		t.Errorf("empty key: got nil error, want one")
	}
}

func TestSendGridMint(t *testing.T) {
	srv, c, _, manager := sendgridSetup(t, provider.SendGridOptions{})
	_, noCreate := srv.SeedKey("reader", providertest.SendGridScopeRead, "mail.send")

	id, key, err := c.Mint(context.Background(), manager, "hood sendgrid 1", []string{"mail.send"})
	if err != nil {
		t.Fatalf("mint: got %v, want nil", err)
	}
	if v := key.Reveal(); len(v) != 69 || !strings.HasPrefix(v, "SG.") {
		t.Errorf("got a key of %d characters, prefix %q; want 69 starting SG.", len(v), v[:min(3, len(v))])
	}
	if !srv.Accepts(key) {
		t.Errorf("got the server refusing the minted key, want it accepted")
	}
	scopes, err := c.Check(context.Background(), key)
	if err != nil || !slices.Equal(scopes, []string{"mail.send"}) {
		t.Errorf("check of the minted key: got %v, %v; want [mail.send], nil", scopes, err)
	}
	if keys := srv.Keys(); keys[len(keys)-1].ID != id || keys[len(keys)-1].Name != "hood sendgrid 1" {
		t.Errorf("got newest server key %+v, want id %q name %q", keys[len(keys)-1], id, "hood sendgrid 1")
	}

	// A nil scope list: the new key gets the manager's scopes.
	_, all, err := c.Mint(context.Background(), manager, "full", nil)
	if err != nil {
		t.Fatalf("mint without scopes: got %v, want nil", err)
	}
	if scopes, _ := c.Check(context.Background(), all); !slices.Equal(scopes, sendgridManagerScopes) {
		t.Errorf("got scopes %v, want the manager's %v", scopes, sendgridManagerScopes)
	}

	tests := []struct {
		name        string
		manager     secret.Value
		keyName     string
		scopes      []string
		wantRefused int // status of a RefusedError
		wantStatus  int // status of a SendGridStatusError
	}{
		{"unknown manager", secret.New("SG.x.y"), "n", []string{"mail.send"}, http.StatusUnauthorized, 0},
		{"scope the manager lacks", manager, "n", []string{"mail.send", "billing.read"}, 0, http.StatusForbidden},
		{"manager without api_keys.create", noCreate, "n", []string{"mail.send"}, 0, http.StatusForbidden},
		{"empty name", manager, "", []string{"mail.send"}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(srv.Keys())
			_, key, err := c.Mint(context.Background(), tt.manager, tt.keyName, tt.scopes)
			sendgridWantNames(t, err, "mint")
			switch {
			case tt.wantRefused != 0:
				sendgridWantRefused(t, err, tt.wantRefused)
			case tt.wantStatus != 0:
				_ = sendgridWantStatus(t, err, tt.wantStatus)
			}
			if !key.IsZero() {
				t.Errorf("got a key with the error, want none")
			}
			if after := len(srv.Keys()); after != before {
				t.Errorf("got %d keys after the failed mint, want %d", after, before)
			}
		})
	}
}

func TestSendGridMintKeyCap(t *testing.T) {
	srv, c, _, manager := sendgridSetup(t, provider.SendGridOptions{})
	for i := len(srv.Keys()); i < providertest.SendGridMaxKeys-1; i++ {
		srv.SeedKey(fmt.Sprintf("old %d", i), "mail.send")
	}
	if _, _, err := c.Mint(context.Background(), manager, "100th", []string{"mail.send"}); err != nil {
		t.Fatalf("100th key: got %v, want nil", err)
	}
	_, _, err := c.Mint(context.Background(), manager, "101st", []string{"mail.send"})
	se := sendgridWantStatus(t, err, http.StatusForbidden)
	if se.Retryable() {
		t.Errorf("got a retryable 403, want not retryable")
	}
	if got := len(srv.Keys()); got != providertest.SendGridMaxKeys {
		t.Errorf("got %d keys, want %d", got, providertest.SendGridMaxKeys)
	}
}

func TestSendGridList(t *testing.T) {
	srv, c, managerID, manager := sendgridSetup(t, provider.SendGridOptions{})
	_, reader := srv.SeedKey("reader only", "mail.send")
	id, _, err := c.Mint(context.Background(), manager, "minted", []string{"mail.send"})
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	keys, err := c.List(context.Background(), manager)
	if err != nil {
		t.Fatalf("list: got %v, want nil", err)
	}
	want := []provider.SendGridAPIKey{{ID: managerID, Name: "rotator manager"}, {ID: srv.Keys()[1].ID, Name: "reader only"}, {ID: id, Name: "minted"}}
	if !slices.Equal(keys, want) {
		t.Errorf("got %+v, want %+v", keys, want)
	}

	_, err = c.List(context.Background(), reader)
	sendgridWantNames(t, err, "list")
	sendgridWantRefused(t, err, http.StatusForbidden)
	_, err = c.List(context.Background(), secret.New("SG.bad.bad"))
	sendgridWantRefused(t, err, http.StatusUnauthorized)
}

func TestSendGridDelete(t *testing.T) {
	srv, c, _, manager := sendgridSetup(t, provider.SendGridOptions{})
	id, key, err := c.Mint(context.Background(), manager, "old", []string{"mail.send"})
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	if err := c.Delete(context.Background(), manager, id); err != nil {
		t.Fatalf("delete: got %v, want nil", err)
	}
	if srv.Accepts(key) {
		t.Errorf("got the deleted key accepted, want it refused")
	}
	if _, err := c.Check(context.Background(), key); !errors.Is(err, provider.ErrRefused) {
		t.Errorf("check of the deleted key: got %v, want refused", err)
	}
	// Already gone (404): success.
	if err := c.Delete(context.Background(), manager, id); err != nil {
		t.Errorf("second delete: got %v, want nil (already gone)", err)
	}
	if err := c.Delete(context.Background(), manager, "a/../b?c"); err != nil {
		t.Errorf("odd id: got %v, want nil (not found)", err)
	}

	_, noDelete := srv.SeedKey("no delete", providertest.SendGridScopeRead)
	otherID, _ := srv.SeedKey("other", "mail.send")
	err = c.Delete(context.Background(), noDelete, otherID)
	sendgridWantNames(t, err, "delete")
	sendgridWantRefused(t, err, http.StatusForbidden)
	err = c.Delete(context.Background(), secret.New("SG.bad.bad"), otherID)
	sendgridWantRefused(t, err, http.StatusUnauthorized)
	if err := c.Delete(context.Background(), manager, ""); err == nil {
		t.Errorf("empty id: got nil error, want one")
	}
	if len(srv.Keys()) != 3 {
		t.Errorf("got %d keys, want 3 (manager, no delete, other)", len(srv.Keys()))
	}
}

// sendgridOps runs every client operation with manager.
func sendgridOps(c *provider.SendGrid, manager secret.Value, id string) map[string]func(context.Context) error {
	return map[string]func(context.Context) error{
		"check": func(ctx context.Context) error { _, err := c.Check(ctx, manager); return err },
		"mint": func(ctx context.Context) error {
			_, _, err := c.Mint(ctx, manager, "n", []string{"mail.send"})
			return err
		},
		"list":   func(ctx context.Context) error { _, err := c.List(ctx, manager); return err },
		"delete": func(ctx context.Context) error { return c.Delete(ctx, manager, id) },
	}
}

func TestSendGridFaults(t *testing.T) {
	srv, c, _, manager := sendgridSetup(t, provider.SendGridOptions{Timeout: 300 * time.Millisecond})
	otherID, _ := srv.SeedKey("other", "mail.send")
	tests := []struct {
		name       string
		fault      providertest.Fault
		wantStatus int
		wantRetry  time.Duration
		wantTO     bool
	}{
		{"429 with Retry-After", providertest.Fault{Status: 429, RetryAfter: "7"}, 429, 7 * time.Second, false},
		{"429 without Retry-After", providertest.Fault{Status: 429}, 429, 0, false},
		{"503 with Retry-After", providertest.Fault{Status: 503, RetryAfter: "120"}, 503, 2 * time.Minute, false},
		{"500", providertest.Fault{Status: 500}, 500, 0, false},
		{"slow answer", providertest.Fault{Delay: 3 * time.Second}, 0, 0, true},
	}
	for op, call := range sendgridOps(c, manager, otherID) {
		for _, tt := range tests {
			t.Run(op+"/"+tt.name, func(t *testing.T) {
				srv.Inject(tt.fault)
				t.Cleanup(srv.Clear)
				err := call(context.Background())
				sendgridWantNames(t, err, op)
				if tt.wantTO {
					var ne net.Error
					if !errors.As(err, &ne) || !ne.Timeout() {
						t.Fatalf("got %v, want a timeout", err)
					}
					return
				}
				se := sendgridWantUnavailable(t, err, tt.wantStatus)
				if se.RetryAfter != tt.wantRetry || !se.Retryable() {
					t.Errorf("got RetryAfter %v retryable %v, want %v true", se.RetryAfter, se.Retryable(), tt.wantRetry)
				}
				if !strings.Contains(err.Error(), fmt.Sprint(tt.wantStatus)) {
					t.Errorf("got %q, want the status in it", err)
				}
			})
		}
	}
}

func TestSendGridRetryAfterDate(t *testing.T) {
	srv, c, _, manager := sendgridSetup(t, provider.SendGridOptions{})
	srv.Inject(providertest.Fault{Status: 429, RetryAfter: time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)})
	_, err := c.Check(context.Background(), manager)
	se := sendgridWantUnavailable(t, err, 429)
	if se.RetryAfter < 50*time.Second || se.RetryAfter > time.Minute {
		t.Errorf("got RetryAfter %v, want about 1m", se.RetryAfter)
	}
}

func TestSendGridMintAnswerLost(t *testing.T) {
	srv, c, _, manager := sendgridSetup(t, provider.SendGridOptions{})
	srv.Inject(providertest.Fault{Method: http.MethodPost, Path: "/v3/api_keys", AnswerLost: true})
	id, key, err := c.Mint(context.Background(), manager, "lost", []string{"mail.send"})
	sendgridWantNames(t, err, "mint")
	if id != "" || !key.IsZero() {
		t.Errorf("got id %q and a key, want neither", id)
	}
	// The key was made all the same: List finds it by name, Delete drops it.
	keys, err := c.List(context.Background(), manager)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	i := slices.IndexFunc(keys, func(k provider.SendGridAPIKey) bool { return k.Name == "lost" })
	if i < 0 {
		t.Fatalf("got keys %+v, want one named %q", keys, "lost")
	}
	if err := c.Delete(context.Background(), manager, keys[i].ID); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if n := len(srv.Keys()); n != 1 {
		t.Errorf("got %d keys, want 1", n)
	}
}

func TestSendGridContextCanceled(t *testing.T) {
	srv, c, _, manager := sendgridSetup(t, provider.SendGridOptions{})
	srv.Inject(providertest.Fault{Delay: 3 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Check(ctx, manager); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want context.DeadlineExceeded", err)
	}
}

func TestSendGridAnswerBounded(t *testing.T) {
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(`{"scopes":["`))
		w.Write(bytes.Repeat([]byte("a"), 2<<20))
		w.Write([]byte(`"]}`))
	}))
	defer big.Close()
	c, err := provider.NewSendGrid(provider.SendGridOptions{BaseURL: big.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Check(context.Background(), secret.New("k"))
	sendgridWantNames(t, err, "check")
	if !strings.Contains(err.Error(), "larger than") {
		t.Errorf("got %v, want a too-large answer error", err)
	}
}

func TestSendGridNoRedirect(t *testing.T) {
	var leaked bool
	target := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		leaked = r.Header.Get("Authorization") != ""
	}))
	defer target.Close()
	redir := httptest.NewServer(http.RedirectHandler(target.URL+"/v3/scopes", http.StatusFound))
	defer redir.Close()
	c, err := provider.NewSendGrid(provider.SendGridOptions{BaseURL: redir.URL})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Check(context.Background(), secret.New("k"))
	_ = sendgridWantStatus(t, err, http.StatusFound)
	if leaked {
		t.Errorf("got the key sent to the redirect target, want no redirect followed")
	}
}

const sendgridSentinel = "SENTINEL-7f3a9c-sg"

// TestSendGridSentinel: credentials and minted keys holding a sentinel
// never show in errors, printed values or the client's log, including
// when the provider echoes the credential in its error answers.
func TestSendGridSentinel(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var textLogs bytes.Buffer
	textLogger := slog.New(slog.NewTextHandler(&textLogs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	srv := providertest.NewSendGridServer()
	defer srv.Close()
	srv.SetSecretPrefix(sendgridSentinel)
	manager := secret.New("SG.managerid." + sendgridSentinel + "-manager-secret")
	srv.SeedKeyValue(manager, "manager", sendgridManagerScopes...)
	badKey := secret.New("SG.badid." + sendgridSentinel + "-bad")

	// echo answers with the credential and a key-shaped text in its body.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		switch r.URL.Path {
		case "/v3/scopes":
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"errors":[{"field":null,"message":"bad key %s (secret part %s)"}]}`, tok, tok[strings.LastIndexByte(tok, '.')+1:])
		case "/v3/api_keys":
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "<html>oops %s and SG.abcdefgh.%sxyz</html>", tok, sendgridSentinel)
		default:
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprintf(w, `{"errors":[{"field":"%s","message":"%s"}]}`, tok, tok)
		}
	}))
	defer echo.Close()

	var outputs []any
	for _, base := range []string{srv.URL(), echo.URL} {
		for _, lg := range []*slog.Logger{logger, textLogger} {
			c, err := provider.NewSendGrid(provider.SendGridOptions{BaseURL: base, Logger: lg, Timeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			scopes, err := c.Check(ctx, manager)
			outputs = append(outputs, scopes, err)
			_, err = c.Check(ctx, badKey)
			outputs = append(outputs, err)
			id, key, err := c.Mint(ctx, manager, "new", []string{"mail.send"})
			outputs = append(outputs, id, key, err)
			if base == srv.URL() && !strings.Contains(key.Reveal(), sendgridSentinel) {
				t.Fatalf("got a minted key without the sentinel, want it in (the test is void otherwise)")
			}
			_, _, err = c.Mint(ctx, badKey, "new", nil)
			outputs = append(outputs, err)
			keys, err := c.List(ctx, manager)
			outputs = append(outputs, keys, err)
			outputs = append(outputs, c.Delete(ctx, manager, id), c.Delete(ctx, badKey, id))
			for _, f := range []providertest.Fault{{Status: 429, RetryAfter: "3"}, {Status: 500}, {Delay: time.Second}, {AnswerLost: true}} {
				srv.Inject(f)
				_, key, err := c.Mint(ctx, manager, "faulted", nil)
				outputs = append(outputs, key, err)
				srv.Clear()
			}
			outputs = append(outputs, c)
		}
	}
	var texts []string
	for _, o := range outputs {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
			texts = append(texts, fmt.Sprintf(verb, o))
		}
		if err, ok := o.(error); ok && err != nil {
			texts = append(texts, err.Error())
			for u := errors.Unwrap(err); u != nil; u = errors.Unwrap(u) {
				texts = append(texts, u.Error(), fmt.Sprintf("%#v", u))
			}
		}
	}
	texts = append(texts, logs.String(), textLogs.String())
	if logs.Len() == 0 || textLogs.Len() == 0 {
		t.Errorf("got no log output, want debug lines (the log check is void otherwise)")
	}
	for _, s := range texts {
		if strings.Contains(s, sendgridSentinel) {
			t.Errorf("got the sentinel in %q, want it nowhere", strings.ReplaceAll(s, sendgridSentinel, "<SENTINEL>"))
		}
	}
}
