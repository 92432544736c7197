package provider

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/provider/providertest"
	"github.com/ocamba-rotator/rotator/internal/secret"
)

const (
	twilioTestSID     = "AC0123456789abcdef0123456789abcdef"
	twilioTestPrimary = "0123456789abcdef0123456789abcdef"
	twilioSentinel    = "SENTINEL-tw1l10-do-not-print"
)

// twilioTestSetup starts a TwilioServer with one seeded account and a
// client of it (both hosts on the one server).
func twilioTestSetup(t *testing.T, timeout time.Duration, logger *slog.Logger, sopts providertest.TwilioServerOptions) (*providertest.TwilioServer, *Twilio) {
	t.Helper()
	srv := providertest.NewTwilioServer(sopts)
	t.Cleanup(srv.Close)
	srv.SeedAccount(twilioTestSID, secret.New(twilioTestPrimary))
	c := NewTwilio(TwilioOptions{AccountsURL: srv.URL(), APIURL: srv.URL() + "/", Timeout: timeout, Logger: logger})
	return srv, c
}

// twilioOps runs each client operation with token; CreateSecondary's value
// is dropped.
var twilioOps = []struct {
	name, op string
	method   string
	path     string
	run      func(context.Context, *Twilio, secret.Value) error
}{
	{"Check", "check account", http.MethodGet, "/2010-04-01/Accounts/", func(ctx context.Context, c *Twilio, tok secret.Value) error {
		return c.Check(ctx, twilioTestSID, tok)
	}},
	{"CreateSecondary", "create secondary auth token", http.MethodPost, "/v1/AuthTokens/Secondary", func(ctx context.Context, c *Twilio, tok secret.Value) error {
		_, err := c.CreateSecondary(ctx, twilioTestSID, tok)
		return err
	}},
	{"DeleteSecondary", "delete secondary auth token", http.MethodDelete, "/v1/AuthTokens/Secondary", func(ctx context.Context, c *Twilio, tok secret.Value) error {
		return c.DeleteSecondary(ctx, twilioTestSID, tok)
	}},
	{"Promote", "promote secondary auth token", http.MethodPost, "/v1/AuthTokens/Promote", func(ctx context.Context, c *Twilio, tok secret.Value) error {
		return c.Promote(ctx, twilioTestSID, tok)
	}},
}

func TestTwilioRotation(t *testing.T) {
	srv, c := twilioTestSetup(t, 5*time.Second, nil, providertest.TwilioServerOptions{})
	ctx := t.Context()
	old := secret.New(twilioTestPrimary)

	if err := c.Check(ctx, twilioTestSID, old); err != nil {
		t.Fatalf("Check(primary): got %v, want nil", err)
	}
	sec, err := c.CreateSecondary(ctx, twilioTestSID, old)
	if err != nil {
		t.Fatalf("CreateSecondary: got %v, want nil", err)
	}
	if got, want := sec.Len(), 32; got != want {
		t.Errorf("secondary length: got %d, want %d", got, want)
	}
	if !srv.IsSecondary(twilioTestSID, sec) {
		t.Errorf("server IsSecondary(minted): got false, want true")
	}
	for name, tok := range map[string]secret.Value{"primary": old, "secondary": sec} {
		if err := c.Check(ctx, twilioTestSID, tok); err != nil {
			t.Errorf("Check(%s) before Promote: got %v, want nil", name, err)
		}
	}
	if err := c.Promote(ctx, twilioTestSID, old); err != nil {
		t.Fatalf("Promote: got %v, want nil", err)
	}
	if !srv.IsPrimary(twilioTestSID, sec) {
		t.Errorf("server IsPrimary(minted) after Promote: got false, want true")
	}
	if srv.HasSecondary(twilioTestSID) {
		t.Errorf("server HasSecondary after Promote: got true, want false")
	}
	if err := c.Check(ctx, twilioTestSID, sec); err != nil {
		t.Errorf("Check(new primary): got %v, want nil", err)
	}
	err = c.Check(ctx, twilioTestSID, old)
	if !errors.Is(err, ErrRefused) {
		t.Errorf("Check(old primary) after Promote: got %v, want ErrRefused", err)
	}
	if srv.Authenticates(twilioTestSID, old) {
		t.Errorf("server Authenticates(old primary): got true, want false")
	}
}

func TestTwilioDeleteSecondary(t *testing.T) {
	srv, c := twilioTestSetup(t, 5*time.Second, nil, providertest.TwilioServerOptions{})
	ctx := t.Context()
	prim := secret.New(twilioTestPrimary)
	sec, err := c.CreateSecondary(ctx, twilioTestSID, prim)
	if err != nil {
		t.Fatalf("CreateSecondary: got %v, want nil", err)
	}
	if err := c.DeleteSecondary(ctx, twilioTestSID, prim); err != nil {
		t.Fatalf("DeleteSecondary: got %v, want nil", err)
	}
	if srv.HasSecondary(twilioTestSID) {
		t.Errorf("HasSecondary after delete: got true, want false")
	}
	if err := c.Check(ctx, twilioTestSID, sec); !errors.Is(err, ErrRefused) {
		t.Errorf("Check(deleted secondary): got %v, want ErrRefused", err)
	}
	if err := c.Check(ctx, twilioTestSID, prim); err != nil {
		t.Errorf("Check(primary) after delete: got %v, want nil", err)
	}
	if !srv.IsPrimary(twilioTestSID, prim) {
		t.Errorf("IsPrimary(primary) after delete: got false, want true")
	}
}

func TestTwilioFailures(t *testing.T) {
	type want struct {
		refused    bool
		status     int
		code       int
		retryAfter time.Duration
		retryable  bool
	}
	type tc struct {
		name  string
		setup func(*providertest.TwilioServer, *Twilio) // before the call
		token secret.Value
		fault *providertest.Fault
		want  want
	}
	prim := secret.New(twilioTestPrimary)
	withSecondary := func(s *providertest.TwilioServer, c *Twilio) {
		if _, err := c.CreateSecondary(context.Background(), twilioTestSID, prim); err != nil {
			panic(err)
		}
	}
	for _, op := range twilioOps {
		setup := func(*providertest.TwilioServer, *Twilio) {}
		if op.name == "DeleteSecondary" || op.name == "Promote" {
			setup = withSecondary
		}
		cases := []tc{
			{name: "wrong token", setup: setup, token: secret.New("ffffffffffffffffffffffffffffffff"),
				want: want{refused: true, status: 401, code: 20003}},
			{name: "429 with Retry-After", setup: setup, token: prim,
				fault: &providertest.Fault{Method: op.method, Path: op.path, Status: 429, RetryAfter: "7"},
				want:  want{status: 429, code: 20429, retryAfter: 7 * time.Second, retryable: true}},
			{name: "503", setup: setup, token: prim,
				fault: &providertest.Fault{Method: op.method, Path: op.path, Status: 503},
				want:  want{status: 503, code: 20503, retryable: true}},
			{name: "500", setup: setup, token: prim,
				fault: &providertest.Fault{Method: op.method, Path: op.path, Status: 500, RetryAfter: "1"},
				want:  want{status: 500, code: 20500, retryAfter: time.Second, retryable: true}},
		}
		switch op.name {
		case "CreateSecondary":
			cases = append(cases, tc{name: "secondary exists", setup: withSecondary, token: prim, want: want{status: 400, code: 20400}})
		case "DeleteSecondary":
			cases = append(cases, tc{name: "no secondary", setup: func(*providertest.TwilioServer, *Twilio) {}, token: prim, want: want{status: 404, code: 20404}})
		case "Promote":
			cases = append(cases, tc{name: "no secondary", setup: func(*providertest.TwilioServer, *Twilio) {}, token: prim, want: want{status: 400, code: 20400}})
		}
		for _, tt := range cases {
			t.Run(op.name+"/"+tt.name, func(t *testing.T) {
				srv, c := twilioTestSetup(t, 5*time.Second, nil, providertest.TwilioServerOptions{})
				tt.setup(srv, c)
				if tt.fault != nil {
					srv.Inject(*tt.fault)
				}
				err := op.run(t.Context(), c, tt.token)
				if err == nil {
					t.Fatalf("got nil error, want one")
				}
				msg := err.Error()
				for _, s := range []string{TwilioProvider, op.op} {
					if !strings.Contains(msg, s) {
						t.Errorf("error %q: want it to name %q", msg, s)
					}
				}
				if got := errors.Is(err, ErrRefused); got != tt.want.refused {
					t.Errorf("errors.Is(ErrRefused): got %v, want %v (%v)", got, tt.want.refused, err)
				}
				if tt.want.refused {
					var re *RefusedError
					if !errors.As(err, &re) {
						t.Fatalf("got %T, want a *RefusedError", err)
					}
					if re.Status != tt.want.status || re.Provider != TwilioProvider || !strings.Contains(re.Reason, "Authenticate") {
						t.Errorf("RefusedError: got %+v, want status %d, provider %s, reason Authenticate", re, tt.want.status, TwilioProvider)
					}
					return
				}
				var got want
				var ue *UnavailableError
				var se *TwilioStatusError
				switch {
				case errors.As(err, &ue):
					got = want{status: ue.Status, code: ue.Code, retryAfter: ue.RetryAfter, retryable: ue.Retryable()}
				case errors.As(err, &se):
					got = want{status: se.Status, code: se.Code, retryable: se.Retryable()}
				default:
					t.Fatalf("got %T (%v), want an *UnavailableError or a *TwilioStatusError", err, err)
				}
				if got.status != tt.want.status || got.code != tt.want.code || got.retryAfter != tt.want.retryAfter || got.retryable != tt.want.retryable {
					t.Errorf("got status %d code %d retry-after %s retryable %v, want %d %d %s %v",
						got.status, got.code, got.retryAfter, got.retryable, tt.want.status, tt.want.code, tt.want.retryAfter, tt.want.retryable)
				}
				if tt.want.retryAfter > 0 && !strings.Contains(msg, "retry after "+tt.want.retryAfter.String()) {
					t.Errorf("error %q: want it to say retry after %s", msg, tt.want.retryAfter)
				}
			})
		}
	}
}

func TestTwilioUnknownAccountRefused(t *testing.T) {
	_, c := twilioTestSetup(t, 5*time.Second, nil, providertest.TwilioServerOptions{})
	err := c.Check(t.Context(), "ACffffffffffffffffffffffffffffffff", secret.New(twilioTestPrimary))
	if !errors.Is(err, ErrRefused) {
		t.Errorf("Check(unknown SID): got %v, want ErrRefused", err)
	}
}

func TestTwilioInvalidArguments(t *testing.T) {
	c := NewTwilio(TwilioOptions{AccountsURL: "http://127.0.0.1:1", APIURL: "http://127.0.0.1:1"})
	for _, tt := range []struct {
		name, sid string
		token     secret.Value
		want      string
	}{
		{"empty SID", "", secret.New("x"), "empty account SID"},
		{"SID with a slash", "AC/../x", secret.New("x"), "malformed account SID"},
		{"empty token", twilioTestSID, secret.Value{}, "empty auth token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Check(t.Context(), tt.sid, tt.token)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestTwilioSlowAnswerTimesOut(t *testing.T) {
	for _, op := range twilioOps {
		t.Run(op.name, func(t *testing.T) {
			srv, c := twilioTestSetup(t, 200*time.Millisecond, nil, providertest.TwilioServerOptions{})
			srv.Inject(providertest.Fault{Method: op.method, Path: op.path, Delay: 5 * time.Second})
			start := time.Now()
			err := op.run(t.Context(), c, secret.New(twilioTestPrimary))
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("took %s, want about the 200ms timeout", took)
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("got %v, want a timeout", err)
			}
			if !strings.Contains(err.Error(), TwilioProvider+": "+op.op) {
				t.Errorf("error %q: want it to name %q", err, TwilioProvider+": "+op.op)
			}
		})
	}
}

func TestTwilioContextCanceled(t *testing.T) {
	srv, c := twilioTestSetup(t, 5*time.Second, nil, providertest.TwilioServerOptions{})
	srv.Inject(providertest.Fault{Delay: 5 * time.Second})
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if err := c.Check(ctx, twilioTestSID, secret.New(twilioTestPrimary)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want context.DeadlineExceeded", err)
	}
}

// TestTwilioAnswerLostAfterCreate: the secondary exists but its value was
// lost with the answer. The caller's way out: delete it and create again.
func TestTwilioAnswerLostAfterCreate(t *testing.T) {
	srv, c := twilioTestSetup(t, 5*time.Second, nil, providertest.TwilioServerOptions{})
	ctx := t.Context()
	prim := secret.New(twilioTestPrimary)
	srv.Inject(providertest.Fault{Method: http.MethodPost, Path: "/v1/AuthTokens/Secondary", AnswerLost: true})
	got, err := c.CreateSecondary(ctx, twilioTestSID, prim)
	if err == nil || !got.IsZero() {
		t.Fatalf("CreateSecondary with the answer lost: got (%v, %v), want (zero, an error)", got, err)
	}
	if !strings.Contains(err.Error(), "create secondary auth token") {
		t.Errorf("error %q: want it to name the operation", err)
	}
	if !srv.HasSecondary(twilioTestSID) {
		t.Fatalf("HasSecondary: got false, want true (the server created it)")
	}
	if _, err := c.CreateSecondary(ctx, twilioTestSID, prim); err == nil {
		t.Errorf("second CreateSecondary: got nil, want the 'already exists' error")
	}
	if err := c.DeleteSecondary(ctx, twilioTestSID, prim); err != nil {
		t.Fatalf("DeleteSecondary: got %v, want nil", err)
	}
	sec, err := c.CreateSecondary(ctx, twilioTestSID, prim)
	if err != nil || !srv.IsSecondary(twilioTestSID, sec) {
		t.Errorf("CreateSecondary after recovery: got err %v, IsSecondary %v; want nil, true", err, srv.IsSecondary(twilioTestSID, sec))
	}
}

// TestTwilioAnswerLostAfterPromote: Promote's answer is lost but Twilio
// promoted. The client cannot tell; the caller must Check which token
// authenticates: old refused and new accepted = promoted (push the new one
// and never the old); both accepted = not promoted (Promote again).
func TestTwilioAnswerLostAfterPromote(t *testing.T) {
	srv, c := twilioTestSetup(t, 5*time.Second, nil, providertest.TwilioServerOptions{})
	ctx := t.Context()
	old := secret.New(twilioTestPrimary)
	sec, err := c.CreateSecondary(ctx, twilioTestSID, old)
	if err != nil {
		t.Fatalf("CreateSecondary: got %v, want nil", err)
	}
	srv.Inject(providertest.Fault{Method: http.MethodPost, Path: "/v1/AuthTokens/Promote", AnswerLost: true})
	err = c.Promote(ctx, twilioTestSID, old)
	if err == nil {
		t.Fatalf("Promote with the answer lost: got nil, want an error")
	}
	if errors.Is(err, ErrRefused) {
		t.Errorf("Promote with the answer lost: got a refusal %v, want a transport error", err)
	}
	if !srv.IsPrimary(twilioTestSID, sec) {
		t.Fatalf("server: IsPrimary(new) got false, want true (the promotion happened)")
	}
	// The recovery the Promote doc comment prescribes.
	if err := c.Check(ctx, twilioTestSID, old); !errors.Is(err, ErrRefused) {
		t.Errorf("Check(old) after lost Promote: got %v, want ErrRefused", err)
	}
	if err := c.Check(ctx, twilioTestSID, sec); err != nil {
		t.Errorf("Check(new) after lost Promote: got %v, want nil", err)
	}
}

func TestTwilioFaultWithoutStatusGoesOn(t *testing.T) {
	srv, c := twilioTestSetup(t, 5*time.Second, nil, providertest.TwilioServerOptions{})
	srv.Inject(providertest.Fault{Delay: 10 * time.Millisecond, Times: -1})
	if err := c.Check(t.Context(), twilioTestSID, secret.New(twilioTestPrimary)); err != nil {
		t.Errorf("Check with a delay fault: got %v, want nil", err)
	}
	srv.Clear()
}

func TestTwilioBodyBounded(t *testing.T) {
	big := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(bytes.Repeat([]byte(" "), maxBody+10))
	}))
	defer big.Close()
	c := NewTwilio(TwilioOptions{APIURL: big.URL, AccountsURL: big.URL})
	err := c.Check(t.Context(), twilioTestSID, secret.New(twilioTestPrimary))
	if err == nil || !strings.Contains(err.Error(), "answer over") {
		t.Errorf("got %v, want an 'answer over' error", err)
	}
}

func TestTwilioRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		h    string
		want time.Duration
	}{
		{"", 0},
		{"7", 7 * time.Second},
		{" 0 ", 0},
		{"-3", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	} {
		if got := retryAfter(http.Header{"Retry-After": {tt.h}}, now); got != tt.want {
			t.Errorf("retryAfter(%q): got %s, want %s", tt.h, got, tt.want)
		}
	}
}

// TestTwilioSentinel: tokens and minted secrets holding a sentinel never
// appear in an error, in a returned value's %v/%+v/%#v, or in the client's
// log, also when the provider echoes the token in its error answers.
func TestTwilioSentinel(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	textLogger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	n := 0
	sopts := providertest.TwilioServerOptions{NewToken: func() string {
		n++
		return fmt.Sprintf("minted-%d-%s", n, twilioSentinel)
	}}
	srv, c := twilioTestSetup(t, 300*time.Millisecond, logger, sopts)
	ctx := t.Context()
	prim := secret.New("primary-" + twilioSentinel)
	srv.SeedAccount(twilioTestSID, prim)
	wrong := secret.New("wrong-" + twilioSentinel)

	var outs []any
	note := func(vs ...any) { outs = append(outs, vs...) }

	note(c.Check(ctx, twilioTestSID, wrong))
	sec, err := c.CreateSecondary(ctx, twilioTestSID, prim)
	note(sec, err)
	note(c.CreateSecondary(ctx, twilioTestSID, sec)) // exists: 400
	note(c.CreateSecondary(ctx, twilioTestSID, wrong))
	for _, f := range []providertest.Fault{
		{Status: 429, RetryAfter: "3"},
		{Status: 503},
		{Delay: 2 * time.Second},
		{AnswerLost: true},
	} {
		for _, op := range twilioOps {
			srv.Inject(f)
			note(op.run(ctx, c, sec))
		}
	}
	note(c.Promote(ctx, twilioTestSID, sec))
	note(c.Check(ctx, twilioTestSID, prim)) // refused after Promote

	// A provider that echoes the credential back, in every shape.
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pw, _ := r.BasicAuth()
		switch r.Method + " " + r.URL.Path {
		case "GET /2010-04-01/Accounts/" + twilioTestSID + ".json":
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"code":20003,"message":"Authenticate %s","more_info":"x","status":401}`, pw)
		case "POST /v1/AuthTokens/Secondary":
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"secondary_auth_token": %s}`, pw) // invalid JSON quoting the token
		case "DELETE /v1/AuthTokens/Secondary":
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, "%s%s", strings.Repeat("x", maxReason-19), pw) // the clip falls inside the token
		default:
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprintf(w, "plain text: token %s\n\x1b[31m", pw)
		}
	}))
	defer echo.Close()
	ec := NewTwilio(TwilioOptions{AccountsURL: echo.URL, APIURL: echo.URL, Logger: textLogger})
	for _, op := range twilioOps {
		note(op.run(ctx, ec, prim))
	}

	var forms []string
	for i, o := range outs {
		if e, ok := o.(error); ok && e != nil {
			forms = append(forms, e.Error())
		}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
			forms = append(forms, fmt.Sprintf("%d "+verb, i, o))
		}
	}
	forms = append(forms, logs.String())
	if len(outs) < 20 || !strings.Contains(logs.String(), "twilio request") {
		t.Fatalf("the test ran too little: %d outputs, log %q", len(outs), logs.String())
	}
	for _, f := range forms {
		if strings.Contains(f, twilioSentinel) || strings.Contains(f, "SENTINEL") || strings.Contains(f, "tw1l10") {
			t.Errorf("output contains the sentinel: got %q", strings.ReplaceAll(f, twilioSentinel, "<SENTINEL>"))
		}
	}
}

// TestTwilioAnswerLostAfterDelete: the secondary is gone whatever the
// client saw (an error, or a 404 from net/http's resend of the DELETE).
func TestTwilioAnswerLostAfterDelete(t *testing.T) {
	srv, c := twilioTestSetup(t, 5*time.Second, nil, providertest.TwilioServerOptions{})
	ctx := t.Context()
	prim := secret.New(twilioTestPrimary)
	if _, err := c.CreateSecondary(ctx, twilioTestSID, prim); err != nil {
		t.Fatalf("CreateSecondary: got %v, want nil", err)
	}
	srv.Inject(providertest.Fault{Method: http.MethodDelete, Path: "/v1/AuthTokens/Secondary", AnswerLost: true})
	err := c.DeleteSecondary(ctx, twilioTestSID, prim)
	var se *TwilioStatusError
	if err == nil || (errors.As(err, &se) && se.Status != http.StatusNotFound) {
		t.Errorf("DeleteSecondary with the answer lost: got %v, want a transport error or a 404", err)
	}
	if srv.HasSecondary(twilioTestSID) {
		t.Errorf("HasSecondary: got true, want false (the server deleted it)")
	}
}
