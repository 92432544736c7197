package provider_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
	telegramGoodToken = "110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
	telegramSentinel  = "SENTINEL-tg-7f3a9c-do-not-print"
	telegramSentToken = "987654321:" + telegramSentinel
)

func telegramClient(t *testing.T, base string, timeout time.Duration, log *slog.Logger) *provider.Telegram {
	t.Helper()
	c, err := provider.NewTelegram(provider.TelegramOptions{BaseURL: base, Timeout: timeout, Logger: log})
	if err != nil {
		t.Fatalf("NewTelegram: got %v, want nil", err)
	}
	return c
}

func TestTelegramCheck(t *testing.T) {
	const revoked = "110201543:REVOKEDxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	tests := []struct {
		name           string
		token          string
		fault          *providertest.Fault
		timeout        time.Duration
		wantInfo       provider.BotInfo
		wantRefused    int // HTTP status of the refusal; 0 = not refused
		wantUnavail    int // HTTP status of a *UnavailableError; 0 = none
		wantRetry      time.Duration
		wantTimeout    bool
		wantErr        string // substring of the error; "" with no other want = success
		wantCallsGetMe int
	}{
		{name: "valid token", token: telegramGoodToken, wantInfo: provider.BotInfo{ID: 110201543, Username: "hood_bot"}, wantCallsGetMe: 1},
		{name: "unknown token", token: "110201543:UNKNOWNxxxxxxxxxxxxxxxxxxxxxxxxxxxx", wantRefused: 401, wantErr: "Unauthorized"},
		{name: "revoked token", token: revoked, wantRefused: 401, wantErr: "Unauthorized"},
		{name: "429 with Retry-After", token: telegramGoodToken, fault: &providertest.Fault{Status: 429, RetryAfter: "7"},
			wantUnavail: 429, wantRetry: 7 * time.Second, wantErr: "rate limited"},
		{name: "503", token: telegramGoodToken, fault: &providertest.Fault{Status: 503}, wantUnavail: 503, wantErr: "unavailable"},
		{name: "500 on getMe only", token: telegramGoodToken, fault: &providertest.Fault{Method: "GET", Path: "/bot", Status: 500}, wantUnavail: 500},
		{name: "slow answer past the timeout", token: telegramGoodToken, fault: &providertest.Fault{Delay: 3 * time.Second},
			timeout: 200 * time.Millisecond, wantTimeout: true, wantErr: "Client.Timeout"},
		{name: "answer lost", token: telegramGoodToken, fault: &providertest.Fault{AnswerLost: true}, wantErr: "telegram: getMe", wantCallsGetMe: 1},
		{name: "malformed token", token: "110201543/../x", wantErr: "malformed bot token"},
		{name: "empty token", token: "", wantErr: "empty bot token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := providertest.NewTelegramServer()
			defer s.Close()
			s.AddBot(telegramGoodToken, providertest.TelegramBot{ID: 110201543, Username: "hood_bot"})
			s.AddBot(revoked, providertest.TelegramBot{ID: 42})
			if !s.Revoke(revoked, "") {
				t.Fatalf("Revoke: got false, want true")
			}
			if tc.fault != nil {
				s.Inject(*tc.fault)
			}
			timeout := tc.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			c := telegramClient(t, s.URL(), timeout, nil)
			start := time.Now()
			info, err := c.Check(context.Background(), secret.New(tc.token))
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("Check took %s, want under 2s", el)
			}

			wantErr := tc.wantErr != "" || tc.wantRefused != 0 || tc.wantUnavail != 0 || tc.wantTimeout
			if !wantErr {
				if err != nil {
					t.Fatalf("Check: got %v, want nil", err)
				}
				if info != tc.wantInfo {
					t.Errorf("info: got %+v, want %+v", info, tc.wantInfo)
				}
			} else {
				if err == nil {
					t.Fatalf("Check: got nil error (info %+v), want an error", info)
				}
				if info != (provider.BotInfo{}) {
					t.Errorf("info with an error: got %+v, want zero", info)
				}
				if !strings.HasPrefix(err.Error(), "telegram: ") {
					t.Errorf("error: got %q, want it to start with the provider's name", err)
				}
				if tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error: got %q, want it to contain %q", err, tc.wantErr)
				}
			}

			var re *provider.RefusedError
			if got := errors.As(err, &re); got != (tc.wantRefused != 0) {
				t.Errorf("refused: got %v (%v), want %v", got, err, tc.wantRefused != 0)
			} else if got {
				if re.Status != tc.wantRefused || re.Provider != "telegram" || !errors.Is(err, provider.ErrRefused) {
					t.Errorf("refusal: got %+v (Is ErrRefused %v), want status %d, provider telegram, Is true",
						re, errors.Is(err, provider.ErrRefused), tc.wantRefused)
				}
			}
			var ue *provider.UnavailableError
			if got := errors.As(err, &ue); got != (tc.wantUnavail != 0) {
				t.Errorf("unavailable: got %v (%v), want %v", got, err, tc.wantUnavail != 0)
			} else if got && (ue.Status != tc.wantUnavail || ue.RetryAfter != tc.wantRetry || ue.RetryDelay() != tc.wantRetry) {
				t.Errorf("unavailable: got status %d retry %s, want %d and %s", ue.Status, ue.RetryAfter, tc.wantUnavail, tc.wantRetry)
			}
			var ne net.Error
			if got := errors.As(err, &ne) && ne.Timeout(); got != tc.wantTimeout {
				t.Errorf("timeout: got %v (%v), want %v", got, err, tc.wantTimeout)
			}
			if got := s.Calls("getMe"); got != tc.wantCallsGetMe {
				t.Errorf("getMe calls on the server: got %d, want %d", got, tc.wantCallsGetMe)
			}
			if tc.token != "" && err != nil && strings.Contains(fmt.Sprintf("%v %+v %#v", err, err, err), tc.token) {
				t.Errorf("error carries the token: got %q", strings.ReplaceAll(err.Error(), tc.token, "<TOKEN>"))
			}
		})
	}
}

func TestTelegramCheckServerDown(t *testing.T) {
	s := providertest.NewTelegramServer()
	base := s.URL()
	s.Close()
	c := telegramClient(t, base, 2*time.Second, nil)
	_, err := c.Check(context.Background(), secret.New(telegramSentToken))
	if err == nil {
		t.Fatalf("Check against a closed server: got nil, want an error")
	}
	var ope *net.OpError
	if !errors.As(err, &ope) {
		t.Errorf("error: got %v, want a *net.OpError inside", err)
	}
	if errors.Is(err, provider.ErrRefused) {
		t.Errorf("connection refused: got errors.Is(ErrRefused) true, want false (the provider judged nothing)")
	}
	if !strings.Contains(err.Error(), "/bot"+secret.Redacted+"/getMe") {
		t.Errorf("error: got %q, want the URL with the token redacted", err)
	}
	telegramNoSentinel(t, "server down", fmt.Sprintf("%v|%+v|%#v", err, err, err))
}

func TestTelegramCheckCanceled(t *testing.T) {
	s := providertest.NewTelegramServer()
	defer s.Close()
	s.AddBot(telegramSentToken, providertest.TelegramBot{})
	s.Inject(providertest.Fault{Delay: 3 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := telegramClient(t, s.URL(), 5*time.Second, nil).Check(ctx, secret.New(telegramSentToken))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Check with an expiring context: got %v, want context.DeadlineExceeded", err)
	}
	telegramNoSentinel(t, "canceled", fmt.Sprintf("%v|%+v|%#v", err, err, err))
}

// telegramHostile answers whatever a test asks, echoing the token from
// the path into its answers.
func telegramHostile(t *testing.T, status int, body func(token string) string, hdr map[string]string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/bot"), "/getMe")
		for k, v := range hdr {
			w.Header().Set(k, strings.ReplaceAll(v, "TOKEN", tok))
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body(tok))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestTelegramCheckHostileAnswers(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		body        func(tok string) string
		hdr         map[string]string
		wantRefused bool
		wantErr     string
	}{
		{name: "401 echoing the token", status: 401, wantRefused: true, wantErr: "Unauthorized " + secret.Redacted,
			body: func(tok string) string {
				return `{"ok":false,"error_code":401,"description":"Unauthorized ` + tok + `"}`
			}},
		{name: "403 echoing the secret part", status: 403, wantRefused: true, wantErr: "bad " + secret.Redacted,
			body: func(tok string) string {
				return `{"ok":false,"error_code":403,"description":"bad ` + tok[strings.IndexByte(tok, ':')+1:] + `"}`
			}},
		{name: "404 not found", status: 404, wantErr: "unexpected answer (HTTP 404): Not Found",
			body: func(string) string { return `{"ok":false,"error_code":404,"description":"Not Found"}` }},
		{name: "200 garbage", status: 200, wantErr: "not the Bot API's JSON",
			body: func(tok string) string { return "<html>" + tok + "</html>" }},
		{name: "200 ok=false", status: 200, wantErr: "ok=false: " + secret.Redacted,
			body: func(tok string) string { return `{"ok":false,"description":"` + tok + `"}` }},
		{name: "200 without a bot", status: 200, wantErr: "result is not a bot",
			body: func(string) string { return `{"ok":true,"result":{}}` }},
		{name: "body past 1 MiB", status: 200, wantErr: "longer than 1048576 bytes",
			body: func(string) string { return strings.Repeat(" ", 1<<20+10) }},
		{name: "redirect not followed", status: 302, wantErr: "unexpected answer (HTTP 302)",
			hdr:  map[string]string{"Location": "http://127.0.0.1:1/botTOKEN/getMe"},
			body: func(string) string { return "" }},
		{name: "429 with retry_after in the body", status: 429, wantErr: "retry after 11s",
			body: func(string) string {
				return `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 11","parameters":{"retry_after":11}}`
			}},
		{name: "503 with an HTTP-date Retry-After", status: 503, wantErr: "retry after",
			hdr:  map[string]string{"Retry-After": time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)},
			body: func(string) string { return "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := telegramHostile(t, tc.status, tc.body, tc.hdr)
			_, err := telegramClient(t, srv.URL, 5*time.Second, nil).Check(context.Background(), secret.New(telegramSentToken))
			if err == nil {
				t.Fatalf("Check: got nil, want an error")
			}
			if got := errors.Is(err, provider.ErrRefused); got != tc.wantRefused {
				t.Errorf("refused: got %v (%v), want %v", got, err, tc.wantRefused)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error: got %q, want it to contain %q", err, tc.wantErr)
			}
			telegramNoSentinel(t, tc.name, fmt.Sprintf("%v|%+v|%#v", err, err, err))
		})
	}
}

func TestNewTelegramOptions(t *testing.T) {
	for _, base := range []string{"ftp://x", "http://", "http://h/?q=1", "http://u:p@h", "::"} {
		if _, err := provider.NewTelegram(provider.TelegramOptions{BaseURL: base}); err == nil {
			t.Errorf("NewTelegram(%q): got nil error, want one", base)
		} else if strings.Contains(err.Error(), "u:p") {
			t.Errorf("NewTelegram(%q): got %q, want no user info", base, err)
		}
	}
	if _, err := provider.NewTelegram(provider.TelegramOptions{}); err != nil {
		t.Errorf("NewTelegram(default): got %v, want nil", err)
	}
	// A caller's client is copied (it is not changed) and its timeout kept.
	hc := &http.Client{Timeout: 150 * time.Millisecond}
	s := providertest.NewTelegramServer()
	defer s.Close()
	s.AddBot(telegramGoodToken, providertest.TelegramBot{})
	s.Inject(providertest.Fault{Delay: 3 * time.Second})
	c, err := provider.NewTelegram(provider.TelegramOptions{BaseURL: s.URL(), HTTPClient: hc})
	if err != nil {
		t.Fatalf("NewTelegram: got %v, want nil", err)
	}
	var ne net.Error
	if _, err := c.Check(context.Background(), secret.New(telegramGoodToken)); !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("Check with a 150ms client: got %v, want a timeout", err)
	}
	if hc.CheckRedirect != nil {
		t.Errorf("caller's http.Client: got CheckRedirect set, want it untouched")
	}
}

func TestTelegramServerAPI(t *testing.T) {
	s := providertest.NewTelegramServer()
	defer s.Close()
	bot := s.AddBot(telegramGoodToken, providertest.TelegramBot{Username: "hood_bot"})
	if bot.ID == 0 || !s.Accepts(telegramGoodToken) {
		t.Fatalf("AddBot: got %+v, Accepts %v, want an id and true", bot, s.Accepts(telegramGoodToken))
	}
	tests := []struct {
		method, path string
		wantStatus   int
		wantBody     string
	}{
		{"GET", "/bot" + telegramGoodToken + "/getMe", 200, `"ok":true`},
		{"POST", "/bot" + telegramGoodToken + "/getme", 200, `"username":"hood_bot"`},
		{"GET", "/botWRONG:token/getMe", 401, `{"ok":false,"error_code":401,"description":"Unauthorized"}`},
		{"GET", "/bot" + telegramGoodToken + "/sendMessage", 404, `"description":"Not Found"`},
		{"GET", "/getMe", 404, `"error_code":404`},
		{"DELETE", "/bot" + telegramGoodToken + "/getMe", 404, `"ok":false`},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(tc.method, s.URL()+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.wantStatus || !strings.Contains(string(b), tc.wantBody) {
			t.Errorf("%s %s: got %d %s, want %d containing %s", tc.method, tc.path, resp.StatusCode, b, tc.wantStatus, tc.wantBody)
		}
	}
	// One token per bot: re-adding the bot under a new token kills the old one.
	s.AddBot("110201543:NEWxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", bot)
	if s.Accepts(telegramGoodToken) {
		t.Errorf("old token after a new one: got accepted, want refused")
	}
	if !s.Revoke("110201543:NEWxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "110201543:NEWER") || !s.Accepts("110201543:NEWER") {
		t.Errorf("Revoke with a new token: got the new token refused, want accepted")
	}
	// A fault answers with the Bot API's error shape, on any route.
	s.Inject(providertest.Fault{Status: 429, RetryAfter: "5"})
	resp, err := http.Get(s.URL() + "/botWRONG/anything")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "5" ||
		!strings.Contains(string(b), `"parameters":{"retry_after":5}`) || !strings.Contains(string(b), `"ok":false`) {
		t.Errorf("429 fault: got %d Retry-After %q %s, want 429, 5 and the error shape", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
}

// TestTelegramSentinel runs every path of the client with a token that
// holds a sentinel and looks for it in errors, printed values and logs.
func TestTelegramSentinel(t *testing.T) {
	for _, h := range []struct {
		name string
		mk   func(io.Writer) slog.Handler
	}{
		{"json", func(w io.Writer) slog.Handler {
			return slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})
		}},
		{"text", func(w io.Writer) slog.Handler {
			return slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})
		}},
	} {
		t.Run(h.name, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(h.mk(&logs))
			s := providertest.NewTelegramServer()
			defer s.Close()
			s.AddBot(telegramSentToken, providertest.TelegramBot{Username: "sentinel_bot"})
			down := providertest.NewTelegramServer()
			downURL := down.URL()
			down.Close()
			echo := telegramHostile(t, 401, func(tok string) string {
				return `{"ok":false,"error_code":401,"description":"` + tok + ` is bad"}`
			}, nil)

			tok := secret.New(telegramSentToken)
			var outs []string
			run := func(name, base string, f *providertest.Fault, timeout time.Duration) {
				if f != nil {
					s.Inject(*f)
				}
				c := telegramClient(t, base, timeout, log)
				info, err := c.Check(context.Background(), tok)
				outs = append(outs, fmt.Sprintf("%s: %v|%+v|%#v|%v|%+v|%#v|%#v", name, err, err, err, info, info, info, c))
				if err != nil {
					outs = append(outs, err.Error())
				}
			}
			run("ok", s.URL(), nil, time.Second)
			run("429", s.URL(), &providertest.Fault{Status: 429, RetryAfter: "3"}, time.Second)
			run("503", s.URL(), &providertest.Fault{Status: 503}, time.Second)
			run("timeout", s.URL(), &providertest.Fault{Delay: 2 * time.Second}, 100*time.Millisecond)
			run("answer lost", s.URL(), &providertest.Fault{AnswerLost: true}, time.Second)
			run("down", downURL, nil, time.Second)
			run("echo", echo.URL, nil, time.Second)
			s.Revoke(telegramSentToken, "")
			run("refused", s.URL(), nil, time.Second)

			if !strings.Contains(logs.String(), "sentinel_bot") || !strings.Contains(logs.String(), "provider check failed") {
				t.Errorf("logs: got %q, want both outcomes logged", logs.String())
			}
			outs = append(outs, logs.String())
			for _, o := range outs {
				telegramNoSentinel(t, h.name, o)
			}
		})
	}
}

func telegramNoSentinel(t *testing.T, what, out string) {
	t.Helper()
	if strings.Contains(out, telegramSentinel) {
		t.Errorf("%s: got the sentinel in %q, want it nowhere", what, strings.ReplaceAll(out, telegramSentinel, "<SENTINEL>"))
	}
}
