package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/ocamba-rotator/rotator/internal/secret"
)

// TelegramBaseURL is the Telegram Bot API's base URL.
const TelegramBaseURL = "https://api.telegram.org"

// TelegramProvider is Hood's provider name for Telegram.
const TelegramProvider = "telegram"

// telegramDefaultTimeout is the whole-request timeout when the options
// give none.
const telegramDefaultTimeout = 15 * time.Second

// TelegramOptions configure a Telegram client.
type TelegramOptions struct {
	BaseURL    string        // default TelegramBaseURL
	HTTPClient *http.Client  // optional; copied, never used as is
	Timeout    time.Duration // whole-request timeout; default 15s (or HTTPClient's own when set)
	Logger     *slog.Logger  // optional; default discards
}

// Telegram asks the Telegram Bot API whether a bot token works. A bot
// token cannot be minted or revoked by a program (only BotFather's
// /revoke), so Check is all there is.
type Telegram struct {
	base  *url.URL
	httpc *http.Client
	log   *slog.Logger
}

// BotInfo is what getMe says about the bot a token belongs to.
type BotInfo struct {
	ID       int64
	Username string
}

// NewTelegram returns a Telegram client.
func NewTelegram(opts TelegramOptions) (*Telegram, error) {
	base, err := parseBaseURL(TelegramProvider, opts.BaseURL, TelegramBaseURL)
	if err != nil {
		return nil, err
	}
	// The token is in the path: a redirect must not carry it elsewhere.
	httpc := newHTTPClient(opts.HTTPClient, telegramDefaultTimeout)
	if opts.Timeout > 0 {
		httpc.Timeout = opts.Timeout
	}
	return &Telegram{base: base, httpc: httpc, log: orDiscard(opts.Logger)}, nil
}

// telegramAnswer is the Bot API's envelope.
type telegramAnswer struct {
	OK          bool            `json:"ok"`
	Result      json.RawMessage `json:"result"`
	ErrorCode   int             `json:"error_code"`
	Description string          `json:"description"`
	Parameters  struct {
		RetryAfter int `json:"retry_after"`
	} `json:"parameters"`
}

// Check calls getMe with token: the bot's ID and username when the token
// works, a *RefusedError (errors.Is(err, ErrRefused)) when Telegram
// refuses it, a *UnavailableError on 429/5xx, another error when
// Telegram could not be asked. No error carries the token.
func (c *Telegram) Check(ctx context.Context, token secret.Value) (BotInfo, error) {
	const op = "getMe"
	start := time.Now()
	info, status, err := c.check(ctx, op, token)
	if err != nil {
		c.log.DebugContext(ctx, "provider check failed", "provider", TelegramProvider, "op", op,
			"status", status, "duration", time.Since(start), "error", err)
		return BotInfo{}, err
	}
	c.log.DebugContext(ctx, "provider check passed", "provider", TelegramProvider, "op", op,
		"status", status, "duration", time.Since(start), "bot_id", info.ID, "bot_username", info.Username)
	return info, nil
}

func (c *Telegram) check(ctx context.Context, op string, token secret.Value) (BotInfo, int, error) {
	tok := token.Reveal()
	if err := telegramValidToken(tok); err != nil {
		return BotInfo{}, 0, fmt.Errorf("%s: %s: %w", TelegramProvider, op, err)
	}
	u := *c.base
	u.Path = c.base.Path + "/bot" + tok + "/" + op
	u.RawPath = ""
	shown := c.base.String() + "/bot" + secret.Redacted + "/" + op

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String(), nil)
	if err != nil {
		return BotInfo{}, 0, fmt.Errorf("%s: %s: %w", TelegramProvider, op, telegramScrub(err, tok, shown))
	}
	req.URL = &u
	req.Header.Set("Accept", "application/json")
	resp, err := c.httpc.Do(req)
	if err != nil {
		return BotInfo{}, 0, fmt.Errorf("%s: %s: %w", TelegramProvider, op, telegramScrub(err, tok, shown))
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := readBody(resp)
	if err != nil {
		return BotInfo{}, resp.StatusCode, fmt.Errorf("%s: %s: reading the answer (HTTP %d): %w",
			TelegramProvider, op, resp.StatusCode, telegramScrub(err, tok, shown))
	}
	var ans telegramAnswer
	parseErr := json.Unmarshal(body, &ans)
	reason := telegramReason(ans.Description, tok)

	switch st := resp.StatusCode; {
	case st == http.StatusUnauthorized || st == http.StatusForbidden:
		if reason == "" {
			reason = http.StatusText(st)
		}
		return BotInfo{}, st, &RefusedError{Provider: TelegramProvider, Status: st, Reason: reason}
	case st == http.StatusTooManyRequests || st >= 500:
		ra := retryAfter(resp.Header, time.Now())
		if ra == 0 && ans.Parameters.RetryAfter > 0 {
			ra = time.Duration(ans.Parameters.RetryAfter) * time.Second
		}
		return BotInfo{}, st, &UnavailableError{Provider: TelegramProvider, Op: op, Status: st, RetryAfter: ra, Reason: reason}
	case st != http.StatusOK:
		if reason == "" {
			reason = http.StatusText(st)
		}
		return BotInfo{}, st, fmt.Errorf("%s: %s: unexpected answer (HTTP %d): %s", TelegramProvider, op, st, reason)
	}
	if parseErr != nil {
		return BotInfo{}, http.StatusOK, fmt.Errorf("%s: %s: answer (HTTP 200) is not the Bot API's JSON: %w",
			TelegramProvider, op, telegramScrub(parseErr, tok, ""))
	}
	if !ans.OK {
		return BotInfo{}, http.StatusOK, fmt.Errorf("%s: %s: answer (HTTP 200) says ok=false: %s", TelegramProvider, op, reason)
	}
	var bot struct {
		ID       int64  `json:"id"`
		Username string `json:"username"`
	}
	if err := json.Unmarshal(ans.Result, &bot); err != nil || bot.ID == 0 {
		if err == nil {
			err = errors.New("no bot id")
		}
		return BotInfo{}, http.StatusOK, fmt.Errorf("%s: %s: result is not a bot: %w",
			TelegramProvider, op, telegramScrub(err, tok, ""))
	}
	return BotInfo{ID: bot.ID, Username: telegramReason(bot.Username, tok)}, http.StatusOK, nil
}

// telegramValidToken refuses a token that cannot be one path segment
// (Telegram's tokens are "<bot id>:<secret>" in [0-9A-Za-z_:-]). It never
// quotes the token.
func telegramValidToken(tok string) error {
	if tok == "" {
		return errors.New("empty bot token")
	}
	for _, r := range tok {
		if r == '/' || r == '?' || r == '#' || r == '%' || r == '\\' || unicode.IsSpace(r) || unicode.IsControl(r) || r > unicode.MaxASCII {
			return errors.New("malformed bot token (not one URL path segment)")
		}
	}
	return nil
}

// telegramSecrets are the strings no output may carry: the token and its
// secret part (after the bot id).
func telegramSecrets(tok string) []string {
	out := []string{}
	if tok != "" {
		out = append(out, tok, url.PathEscape(tok))
	}
	if i := strings.IndexByte(tok, ':'); i >= 0 && len(tok)-i-1 >= 8 {
		out = append(out, tok[i+1:])
	}
	return out
}

// telegramReason is the provider's text made safe to show.
func telegramReason(s, tok string) string { return scrub(s, telegramSecrets(tok)...) }

// telegramScrub makes a transport error safe: a *url.Error gets the
// redacted URL (net/http prints the URL, and the token is in its path),
// then scrubErr drops any text still carrying a secret.
func telegramScrub(err error, tok, shownURL string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = &url.Error{Op: ue.Op, URL: shownURL, Err: ue.Err}
	}
	return scrubErr(err, telegramSecrets(tok)...)
}
