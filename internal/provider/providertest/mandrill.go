package providertest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
)

// MandrillServer follows Mailchimp Transactional's (Mandrill's)
// POST /api/1.0/users/ping (".json" suffix optional): a JSON body
// {"key": "..."} with a known key answers 200 "PONG!"; a missing or
// unknown key answers, as Mandrill answers every error, HTTP 500 with
// {"status":"error","code":-1,"name":"Invalid_Key","message":"Invalid API
// key"}. A body that is not a JSON object answers 500 ValidationError, an
// unknown call 500 Unknown_Method (neither shape is in the reference: they
// follow its error object). Keys are made and deleted only in the web app
// (AddKey, DeleteKey here). Inject(Fault) applies to every route; a
// faulted Status answers Mandrill's error object (GeneralError for 5xx,
// Too_Many_Requests for 429).
type MandrillServer struct {
	faults
	srv *httptest.Server

	mu    sync.Mutex
	keys  map[string]bool
	pings int
}

// NewMandrillServer starts a Mandrill server with no keys.
func NewMandrillServer() *MandrillServer {
	s := &MandrillServer{keys: map[string]bool{}}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the server's base URL (in place of https://mandrillapp.com).
func (s *MandrillServer) URL() string { return s.srv.URL }

// Close stops the server.
func (s *MandrillServer) Close() { s.srv.Close() }

// AddKey makes key a valid API key (as made in the web app).
func (s *MandrillServer) AddKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[key] = true
}

// DeleteKey deletes key (as in the web app); it reports whether it was valid.
func (s *MandrillServer) DeleteKey(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ok := s.keys[key]
	delete(s.keys, key)
	return ok
}

// Accepts reports whether key is a valid API key now.
func (s *MandrillServer) Accepts(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[key]
}

// Pings is how many users/ping requests reached the server's key check
// (faults answered before it not counted).
func (s *MandrillServer) Pings() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pings
}

// mandrillError answers Mandrill's error object.
func mandrillError(w http.ResponseWriter, status int, name, message string) {
	mandrillJSON(w, status, struct {
		Status  string `json:"status"`
		Code    int    `json:"code"`
		Name    string `json:"name"`
		Message string `json:"message"`
	}{"error", -1, name, message})
}

func mandrillJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func (s *MandrillServer) serve(w http.ResponseWriter, r *http.Request) {
	// Read the body first: net/http notices a client that went away (and
	// cancels r.Context, ending a fault's Delay) only once it is read.
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		mandrillError(w, http.StatusInternalServerError, "ValidationError", "The request body could not be read")
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	f, faulty := s.take(r)
	if faulty && f.before(w, r, func(w http.ResponseWriter, status int) {
		switch {
		case status == http.StatusTooManyRequests:
			mandrillError(w, status, "Too_Many_Requests", "Too many requests")
		case status >= 500:
			mandrillError(w, status, "GeneralError", "An unexpected error occurred processing the request")
		default:
			mandrillError(w, status, "GeneralError", http.StatusText(status))
		}
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

func (s *MandrillServer) answer(w http.ResponseWriter, r *http.Request) {
	call := strings.TrimSuffix(r.URL.Path, ".json")
	if call != "/api/1.0/users/ping" {
		mandrillError(w, http.StatusInternalServerError, "Unknown_Method", "Unknown method \""+strings.TrimPrefix(call, "/api/1.0/")+"\"")
		return
	}
	if r.Method != http.MethodPost {
		mandrillError(w, http.StatusInternalServerError, "ValidationError", "You must POST to this API call")
		return
	}
	var req struct {
		Key string `json:"key"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		mandrillError(w, http.StatusInternalServerError, "ValidationError", "You must specify a key value")
		return
	}
	s.mu.Lock()
	s.pings++
	ok := req.Key != "" && s.keys[req.Key]
	s.mu.Unlock()
	if !ok {
		mandrillError(w, http.StatusInternalServerError, "Invalid_Key", "Invalid API key")
		return
	}
	mandrillJSON(w, http.StatusOK, "PONG!")
}
