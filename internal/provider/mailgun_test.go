package provider_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/provider"
	"github.com/ocamba-rotator/rotator/internal/provider/providertest"
	"github.com/ocamba-rotator/rotator/internal/secret"
)

const (
	mailgunDomain   = "mg.example.com"
	mailgunSentinel = "SENTINEL-mg-5d1e-do-not-print"
)

// mailgunSetup starts a server with mailgunDomain and a managing key, and a
// client of it logging to logs (when not nil).
func mailgunSetup(t *testing.T, opts providertest.MailgunServerOptions, timeout time.Duration, logs *bytes.Buffer) (*providertest.MailgunServer, *provider.Mailgun, secret.Value) {
	t.Helper()
	srv := providertest.NewMailgunServer(opts)
	t.Cleanup(srv.Close)
	srv.AddDomain(mailgunDomain, "other.example.com")
	manager := secret.New("key-manager-" + mailgunSentinel)
	srv.SeedManagingKey(manager.Reveal())
	var log *slog.Logger
	if logs != nil {
		log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	c, err := provider.NewMailgun(provider.MailgunOptions{BaseURL: srv.URL(), Timeout: timeout, Logger: log})
	if err != nil {
		t.Fatalf("NewMailgun: got %v, want nil", err)
	}
	return srv, c, manager
}

func TestMailgunRotationRoundTrip(t *testing.T) {
	ctx := context.Background()
	srv, c, manager := mailgunSetup(t, providertest.MailgunServerOptions{}, 5*time.Second, nil)

	if err := c.Check(ctx, manager, mailgunDomain); err != nil {
		t.Fatalf("Check(manager): got %v, want nil", err)
	}
	id, key, err := c.Mint(ctx, manager, mailgunDomain, "rotator 1")
	if err != nil {
		t.Fatalf("Mint: got %v, want nil", err)
	}
	if id == "" || key.IsZero() {
		t.Fatalf("Mint: got id %q, key empty %v, want both set", id, key.IsZero())
	}
	if !srv.CanSend(key.Reveal(), mailgunDomain) {
		t.Fatalf("server CanSend(minted): got false, want true")
	}
	if srv.CanSend(key.Reveal(), "other.example.com") {
		t.Fatalf("server CanSend(minted, other domain): got true, want false")
	}
	if err := c.CheckSending(ctx, key, mailgunDomain); err != nil {
		t.Fatalf("CheckSending(minted): got %v, want nil", err)
	}
	if got := srv.Sent(); got != 0 {
		t.Fatalf("messages sent by CheckSending: got %d, want 0", got)
	}
	// The simulator refuses a sending key at the domain read (see Check).
	if err := c.Check(ctx, key, mailgunDomain); !errors.Is(err, provider.ErrRefused) {
		t.Fatalf("Check(sending key): got %v, want ErrRefused", err)
	}
	// Both keys work until the old one is deleted: mint a second.
	id2, key2, err := c.Mint(ctx, manager, mailgunDomain, "rotator 2")
	if err != nil {
		t.Fatalf("second Mint: got %v, want nil", err)
	}
	keys, err := c.List(ctx, manager, mailgunDomain)
	if err != nil {
		t.Fatalf("List: got %v, want nil", err)
	}
	if len(keys) != 2 {
		t.Fatalf("List: got %d keys (%+v), want 2", len(keys), keys)
	}
	for i, want := range []struct{ id, desc string }{{id, "rotator 1"}, {id2, "rotator 2"}} {
		k := keys[i]
		if k.ID != want.id || k.Description != want.desc || k.Kind != "domain" || k.Role != "sending" || k.DomainName != mailgunDomain || k.CreatedAt == "" {
			t.Errorf("List[%d]: got %+v, want id %s, %q, domain sending key of %s", i, k, want.id, want.desc, mailgunDomain)
		}
	}
	if err := c.Delete(ctx, manager, id); err != nil {
		t.Fatalf("Delete: got %v, want nil", err)
	}
	if srv.HasKey(id) {
		t.Fatalf("server HasKey(deleted): got true, want false")
	}
	if err := c.CheckSending(ctx, key, mailgunDomain); !errors.Is(err, provider.ErrRefused) {
		t.Fatalf("CheckSending(deleted key): got %v, want ErrRefused", err)
	}
	if err := c.CheckSending(ctx, key2, mailgunDomain); err != nil {
		t.Fatalf("CheckSending(second key): got %v, want nil", err)
	}
	err = c.Delete(ctx, manager, id)
	if !errors.Is(err, provider.ErrMailgunNotFound) || errors.Is(err, provider.ErrRefused) {
		t.Fatalf("Delete(deleted): got %v, want ErrMailgunNotFound", err)
	}
	if err := c.Check(ctx, manager, "missing.example.com"); !errors.Is(err, provider.ErrMailgunNotFound) {
		t.Fatalf("Check(unknown domain): got %v, want ErrMailgunNotFound", err)
	}
}

func TestMailgunFailures(t *testing.T) {
	bad := secret.New("key-wrong")
	type result struct {
		err error
	}
	ops := map[string]func(c *provider.Mailgun, key secret.Value) error{
		"check": func(c *provider.Mailgun, key secret.Value) error {
			return c.Check(context.Background(), key, mailgunDomain)
		},
		"check sending": func(c *provider.Mailgun, key secret.Value) error {
			return c.CheckSending(context.Background(), key, mailgunDomain)
		},
		"mint": func(c *provider.Mailgun, key secret.Value) error {
			_, _, err := c.Mint(context.Background(), key, mailgunDomain, "d")
			return err
		},
		"list": func(c *provider.Mailgun, key secret.Value) error {
			_, err := c.List(context.Background(), key, mailgunDomain)
			return err
		},
		"delete": func(c *provider.Mailgun, key secret.Value) error {
			return c.Delete(context.Background(), key, "some-id")
		},
	}
	tests := []struct {
		name  string
		fault *providertest.Fault
		bad   bool // use a key the server does not know
		check func(t *testing.T, err error)
	}{
		{name: "refused credential", bad: true, check: func(t *testing.T, err error) {
			var re *provider.RefusedError
			if !errors.As(err, &re) || !errors.Is(err, provider.ErrRefused) {
				t.Fatalf("got %v, want a *RefusedError", err)
			}
			if re.Status != http.StatusUnauthorized || re.Provider != provider.MailgunProvider {
				t.Fatalf("got status %d provider %q, want 401 %q", re.Status, re.Provider, provider.MailgunProvider)
			}
		}},
		{name: "429 with Retry-After", fault: &providertest.Fault{Status: 429, RetryAfter: "7"}, check: func(t *testing.T, err error) {
			var me *provider.UnavailableError
			if !errors.As(err, &me) || !errors.Is(err, provider.ErrUnavailable) {
				t.Fatalf("got %v, want a *UnavailableError wrapping ErrUnavailable", err)
			}
			if me.Status != 429 || me.RetryAfter != 7*time.Second {
				t.Fatalf("got status %d retry after %s, want 429 and 7s", me.Status, me.RetryAfter)
			}
			if !strings.Contains(err.Error(), "rate limited") || !strings.Contains(err.Error(), "retry after 7s") {
				t.Fatalf("got %q, want it to say rate limited, retry after 7s", err)
			}
		}},
		{name: "503", fault: &providertest.Fault{Status: 503}, check: func(t *testing.T, err error) {
			var me *provider.UnavailableError
			if !errors.As(err, &me) || me.Status != 503 || !errors.Is(err, provider.ErrUnavailable) || errors.Is(err, provider.ErrRefused) {
				t.Fatalf("got %v, want a 503 *UnavailableError wrapping ErrUnavailable", err)
			}
			if me.Reason != "Service Unavailable" {
				t.Fatalf("got reason %q, want the message of Mailgun's error shape", me.Reason)
			}
		}},
		{name: "slow answer", fault: &providertest.Fault{Delay: time.Second}, check: func(t *testing.T, err error) {
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("got %v, want a timeout", err)
			}
		}},
		{name: "answer lost", fault: &providertest.Fault{AnswerLost: true}, check: func(t *testing.T, err error) {
			if err == nil || errors.Is(err, provider.ErrRefused) {
				t.Fatalf("got %v, want a transport error", err)
			}
		}},
	}
	for _, tt := range tests {
		for op, call := range ops {
			t.Run(tt.name+"/"+op, func(t *testing.T) {
				srv, c, manager := mailgunSetup(t, providertest.MailgunServerOptions{}, 300*time.Millisecond, nil)
				if tt.fault != nil {
					srv.Inject(*tt.fault)
				}
				key := manager
				if tt.bad {
					key = bad
				}
				start := time.Now()
				r := result{err: call(c, key)}
				if r.err == nil {
					t.Fatalf("got nil error, want one")
				}
				if !strings.HasPrefix(r.err.Error(), provider.MailgunProvider+": ") || !strings.Contains(r.err.Error(), op) {
					t.Fatalf("got %q, want it to name %s and %q", r.err, provider.MailgunProvider, op)
				}
				if d := time.Since(start); d > 900*time.Millisecond {
					t.Fatalf("call took %s, want the client's timeout to end it", d)
				}
				tt.check(t, r.err)
			})
		}
	}
}

func TestMailgunAnswerLostAfterCreate(t *testing.T) {
	ctx := context.Background()
	srv, c, manager := mailgunSetup(t, providertest.MailgunServerOptions{}, 5*time.Second, nil)
	srv.Inject(providertest.Fault{Method: http.MethodPost, Path: "/v1/keys", AnswerLost: true})
	id, key, err := c.Mint(ctx, manager, mailgunDomain, "lost")
	if err == nil || id != "" || !key.IsZero() {
		t.Fatalf("Mint: got id %q, key empty %v, err %v; want no key and an error", id, key.IsZero(), err)
	}
	// The key was made all the same: the listing finds it (by description)
	// so that it can be deleted.
	keys, err := c.List(ctx, manager, mailgunDomain)
	if err != nil {
		t.Fatalf("List: got %v, want nil", err)
	}
	if len(keys) != 1 || keys[0].Description != "lost" {
		t.Fatalf("List after lost create: got %+v, want the one key made", keys)
	}
	if err := c.Delete(ctx, manager, keys[0].ID); err != nil {
		t.Fatalf("Delete: got %v, want nil", err)
	}
	if got := len(srv.Keys()); got != 1 {
		t.Fatalf("server keys after cleanup: got %d, want 1 (the managing key)", got)
	}
}

func TestMailgunKeyLimit(t *testing.T) {
	ctx := context.Background()
	_, c, manager := mailgunSetup(t, providertest.MailgunServerOptions{KeyLimit: 2}, 5*time.Second, nil)
	if _, _, err := c.Mint(ctx, manager, mailgunDomain, "one"); err != nil {
		t.Fatalf("Mint 1: got %v, want nil", err)
	}
	_, _, err := c.Mint(ctx, manager, mailgunDomain, "two")
	var me *provider.MailgunError
	if !errors.As(err, &me) || me.Status != http.StatusBadRequest || !strings.Contains(me.Reason, "limit") {
		t.Fatalf("Mint past the limit: got %v, want a 400 naming the limit", err)
	}
}

func TestNewMailgunOptions(t *testing.T) {
	tests := []struct {
		base    string
		wantErr bool
	}{
		{"", false},
		{provider.MailgunEUBaseURL, false},
		{"https://api:" + mailgunSentinel + "@api.mailgun.net", true},
		{"ftp://api.mailgun.net", true},
		{"https://api.mailgun.net?x=1", true},
		{"api.mailgun.net", true},
	}
	for _, tt := range tests {
		_, err := provider.NewMailgun(provider.MailgunOptions{BaseURL: tt.base})
		if (err != nil) != tt.wantErr {
			t.Errorf("NewMailgun(%q): got %v, want error %v", strings.ReplaceAll(tt.base, mailgunSentinel, "S"), err, tt.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), mailgunSentinel) {
			t.Errorf("NewMailgun: error %q carries the URL's password", err)
		}
	}
}

// TestMailgunSentinel: credentials and minted secrets carrying a sentinel
// never appear in errors, printed values or the client's logs, even when the
// provider echoes them back.
func TestMailgunSentinel(t *testing.T) {
	ctx := context.Background()
	var logs bytes.Buffer
	srv, c, manager := mailgunSetup(t, providertest.MailgunServerOptions{SecretPrefix: mailgunSentinel + "-"}, 300*time.Millisecond, &logs)
	var seen []string
	add := func(vs ...any) {
		for _, v := range vs {
			for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
				seen = append(seen, fmt.Sprintf(verb, v))
			}
			if err, ok := v.(error); ok && err != nil {
				seen = append(seen, err.Error())
			}
		}
	}

	id, key, err := c.Mint(ctx, manager, mailgunDomain, "sentinel")
	if err != nil {
		t.Fatalf("Mint: got %v, want nil", err)
	}
	if !strings.Contains(key.Reveal(), mailgunSentinel) {
		t.Fatalf("minted secret: want it to carry the sentinel")
	}
	add(id, key, []any{id, key}, c)
	keys, err := c.List(ctx, manager, mailgunDomain)
	add(keys, err)
	add(c.Check(ctx, key, mailgunDomain))                                // refused sending key
	add(c.CheckSending(ctx, secret.New(mailgunSentinel), mailgunDomain)) // unknown key
	for _, f := range []providertest.Fault{{Status: 429, RetryAfter: "3"}, {Status: 500}, {Delay: time.Second}, {AnswerLost: true}} {
		srv.Inject(f)
		_, k, err := c.Mint(ctx, manager, mailgunDomain, "x")
		add(k, err)
		srv.Inject(f)
		add(c.Delete(ctx, manager, id))
	}
	add(c.Delete(ctx, manager, id))
	add(c.Delete(ctx, manager, id)) // not found

	// A provider that echoes the credential, and the Basic auth header, in
	// its error message.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pass, _ := r.BasicAuth()
		status := http.StatusUnauthorized
		if strings.HasPrefix(r.URL.Path, "/v1/keys") {
			status = http.StatusInternalServerError
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"message":"bad key %s (header %s) piece %s"}`, pass, r.Header.Get("Authorization"), pass[:len(pass)-1])
	}))
	defer echo.Close()
	ec, err := provider.NewMailgun(provider.MailgunOptions{BaseURL: echo.URL, Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatalf("NewMailgun: %v", err)
	}
	echoed := []error{ec.Check(ctx, key, mailgunDomain), ec.Delete(ctx, manager, "id")}
	_, _, err = ec.Mint(ctx, manager, mailgunDomain, "x")
	echoed = append(echoed, err)
	for _, err := range echoed {
		if err == nil || !strings.Contains(err.Error(), "bad key "+secret.Redacted) {
			t.Fatalf("echo server: got %v, want an error with the scrubbed message", err)
		}
		add(err)
	}

	seen = append(seen, logs.String())
	if logs.Len() == 0 {
		t.Fatalf("client logs: got none, want debug lines")
	}
	for _, s := range seen {
		if strings.Contains(s, mailgunSentinel) || strings.Contains(s, base64.StdEncoding.EncodeToString([]byte("api:"+manager.Reveal()))) {
			t.Errorf("sentinel leaked: %s", s)
		}
	}
}
