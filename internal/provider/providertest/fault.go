// Package providertest holds test servers for the providers' APIs
// (SendGrid, Mailgun, Twilio, Telegram, Mandrill), built from their public
// API references: authentication, keys created and deleted, values
// returned once, limits, error shapes, and injected faults; and an SMTP
// server (STARTTLS, AUTH) for the check of a custom mail server. Tests and
// the demo use them; production code never imports this package.
package providertest

import (
	"net/http"
	"strings"
	"sync"
	"time"
)

// Fault is a misbehaviour queued with a server's Inject. The first queued
// fault whose Method and Path match a request answers it and is used up.
type Fault struct {
	Method     string        // "" = any
	Path       string        // a prefix of the request path; "" = any
	Times      int           // matching requests it answers; 0 = 1; negative = until cleared
	Status     int           // answer this status with the provider's error shape (500, 503, 429, ...)
	RetryAfter string        // Retry-After header to send with Status
	Delay      time.Duration // sleep before answering (or before going on when Status is 0)
	// AnswerLost carries the request out (a key is created, deleted,
	// promoted), then resets the connection instead of answering.
	AnswerLost bool
}

// faults is a queue of Faults, safe for concurrent use.
type faults struct {
	mu   sync.Mutex
	list []Fault
}

// Inject queues f.
func (q *faults) Inject(f Fault) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.list = append(q.list, f)
}

// Clear drops every queued fault.
func (q *faults) Clear() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.list = nil
}

// take returns the first fault matching r and uses it up.
func (q *faults) take(r *http.Request) (Fault, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, f := range q.list {
		if (f.Method != "" && f.Method != r.Method) || !strings.HasPrefix(r.URL.Path, f.Path) {
			continue
		}
		switch {
		case f.Times < 0:
		case f.Times <= 1:
			q.list = append(q.list[:i:i], q.list[i+1:]...)
		default:
			q.list[i].Times--
		}
		return f, true
	}
	return Fault{}, false
}

// before applies f's Delay and, for a Status, answers with answer(status)
// and reports true (the request is done). A request the client gave up on
// during the delay is done too.
func (f Fault) before(w http.ResponseWriter, r *http.Request, answer func(w http.ResponseWriter, status int)) bool {
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return true
		}
	}
	if f.Status == 0 {
		return false
	}
	if f.RetryAfter != "" {
		w.Header().Set("Retry-After", f.RetryAfter)
	}
	answer(w, f.Status)
	return true
}

// lose resets the connection without an answer (after the request was
// carried out, for AnswerLost).
func lose(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}
