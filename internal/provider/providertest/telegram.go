package providertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
)

// TelegramBot is a bot the Telegram server knows, as getMe returns it.
type TelegramBot struct {
	ID        int64
	Username  string
	FirstName string
}

// TelegramServer follows the Telegram Bot API's /bot<token>/<method>
// routes for getMe: a known token answers 200 {"ok":true,"result":{...}},
// an unknown or revoked one 401 {"ok":false,"error_code":401,
// "description":"Unauthorized"}, an unknown method or a path that is not
// /bot<token>/<method> 404 "Not Found". Like the real API it takes GET and
// POST, and method names in any case. A bot has one token at a time; a
// program can neither mint nor revoke one (Revoke plays BotFather).
// Inject(Fault) applies to every route.
type TelegramServer struct {
	faults
	srv *httptest.Server

	mu     sync.Mutex
	bots   map[string]TelegramBot // token -> bot
	nextID int64
	calls  map[string]int // method -> requests that reached it (after faults)
}

// NewTelegramServer starts a Telegram Bot API server with no bots.
func NewTelegramServer() *TelegramServer {
	s := &TelegramServer{bots: map[string]TelegramBot{}, nextID: 7000000000, calls: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the server's base URL (in place of https://api.telegram.org).
func (s *TelegramServer) URL() string { return s.srv.URL }

// Close stops the server.
func (s *TelegramServer) Close() { s.srv.Close() }

// AddBot makes token a valid token of bot. A zero ID gets a fresh one; a
// bot already holding another token loses it (one token per bot).
func (s *TelegramServer) AddBot(token string, bot TelegramBot) TelegramBot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if bot.ID == 0 {
		s.nextID++
		bot.ID = s.nextID
	}
	if bot.Username == "" {
		bot.Username = fmt.Sprintf("bot%d_bot", bot.ID)
	}
	if bot.FirstName == "" {
		bot.FirstName = bot.Username
	}
	for t, b := range s.bots {
		if b.ID == bot.ID {
			delete(s.bots, t)
		}
	}
	s.bots[token] = bot
	return bot
}

// Revoke is BotFather's /revoke: token dies at once and the bot gets
// newToken (none when newToken is ""). It reports whether token was valid.
func (s *TelegramServer) Revoke(token, newToken string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	bot, ok := s.bots[token]
	if !ok {
		return false
	}
	delete(s.bots, token)
	if newToken != "" {
		s.bots[newToken] = bot
	}
	return true
}

// Accepts reports whether token is a valid token now.
func (s *TelegramServer) Accepts(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.bots[token]
	return ok
}

// Calls is how many requests reached method (e.g. "getMe"), faults
// answered before it not counted.
func (s *TelegramServer) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[strings.ToLower(method)]
}

// telegramError answers the Bot API's error shape.
func telegramError(w http.ResponseWriter, status int, description string, retryAfter int) {
	type params struct {
		RetryAfter int `json:"retry_after"`
	}
	body := struct {
		OK          bool    `json:"ok"`
		ErrorCode   int     `json:"error_code"`
		Description string  `json:"description"`
		Parameters  *params `json:"parameters,omitempty"`
	}{OK: false, ErrorCode: status, Description: description}
	if retryAfter > 0 {
		body.Parameters = &params{RetryAfter: retryAfter}
	}
	telegramJSON(w, status, body)
}

func telegramJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func (s *TelegramServer) serve(w http.ResponseWriter, r *http.Request) {
	f, faulty := s.take(r)
	if faulty && f.before(w, r, func(w http.ResponseWriter, status int) {
		ra, _ := strconv.Atoi(f.RetryAfter)
		desc := http.StatusText(status)
		if status == http.StatusTooManyRequests && ra > 0 {
			desc = fmt.Sprintf("Too Many Requests: retry after %d", ra)
		}
		telegramError(w, status, desc, ra)
	}) {
		return
	}
	if faulty && f.AnswerLost {
		s.answer(httptest.NewRecorder(), r) // carried out, answer dropped
		lose(w)
		return
	}
	s.answer(w, r)
}

func (s *TelegramServer) answer(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		telegramError(w, http.StatusNotFound, "Not Found", 0)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, "/bot")
	token, method, ok2 := strings.Cut(rest, "/")
	if !ok || !ok2 || token == "" || method == "" || strings.Contains(method, "/") {
		telegramError(w, http.StatusNotFound, "Not Found", 0)
		return
	}
	s.mu.Lock()
	bot, known := s.bots[token]
	if known {
		s.calls[strings.ToLower(method)]++
	}
	s.mu.Unlock()
	if !known {
		telegramError(w, http.StatusUnauthorized, "Unauthorized", 0)
		return
	}
	if !strings.EqualFold(method, "getMe") {
		telegramError(w, http.StatusNotFound, "Not Found", 0)
		return
	}
	telegramJSON(w, http.StatusOK, map[string]any{"ok": true, "result": map[string]any{
		"id": bot.ID, "is_bot": true, "first_name": bot.FirstName, "username": bot.Username,
		"can_join_groups": true, "can_read_all_group_messages": false, "supports_inline_queries": false,
	}})
}
