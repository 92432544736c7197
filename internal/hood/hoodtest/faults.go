package hoodtest

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault is a misbehaviour queued with Inject. The first queued fault that
// matches a request's method and integration id answers it (after the rate
// limits, before authentication) and is consumed by that use. Delay comes
// first; then Hang, Reset or Status answer; a fault with none of them lets
// the request through to the ordinary checks.
type Fault struct {
	Method       string        // "" = any
	ID           string        // "" = any integration id
	Times        int           // how many matching requests it answers; 0 = 1; negative = until ClearFaults
	Status       int           // status to answer with the documented error body (e.g. 500, 503, 429, 401, 404)
	RetryAfter   string        // Retry-After header value to send with it, if any
	Delay        time.Duration // sleep before answering (or before passing through when Status==0)
	Hang         bool          // never answer: block until the client gives up (request context done)
	Reset        bool          // hijack the connection and close it without an answer
	VerifyStatus string        // if set with Status==0: let the PATCH through, then set effective_status to this
	// AnswerLost (PATCH only): the PATCH is applied as usual, then its
	// answer is lost: with Status, that status is answered instead of
	// 204 (a 5xx after the change was stored); otherwise the connection is
	// reset (a timeout or a broken connection after the change landed). A
	// PATCH the ordinary checks refuse is answered as usual.
	AnswerLost bool

	// Message is the error body's message for a Status answer; default: a
	// sentence for the status, except 500, whose message is absent (as the
	// documentation allows).
	Message string
	// Name names the fault in Request.Fault and the request log; default:
	// "hang", "reset", "status_<code>", "verify_<status>" or "delay".
	Name string
}

// A fault with VerifyStatus (and no Status, Hang or Reset) only matches
// PATCH requests: no other request could carry it out.
func (f Fault) verifyOnly() bool {
	return (f.VerifyStatus != "" && f.Status == 0 && !f.Hang && !f.Reset) || f.AnswerLost
}

func (f Fault) name() string {
	switch {
	case f.Name != "":
		return f.Name
	case f.AnswerLost && f.Status != 0:
		return "answer_lost_" + strconv.Itoa(f.Status)
	case f.AnswerLost:
		return "answer_lost"
	case f.Hang:
		return "hang"
	case f.Reset:
		return "reset"
	case f.Status != 0:
		return "status_" + strconv.Itoa(f.Status)
	case f.VerifyStatus != "":
		return "verify_" + f.VerifyStatus
	case f.Delay > 0:
		return "delay"
	default:
		return "noop"
	}
}

func (f Fault) matches(method, id string) bool {
	if f.Method != "" && !strings.EqualFold(f.Method, method) {
		return false
	}
	if f.ID != "" && f.ID != id {
		return false
	}
	if f.verifyOnly() && method != http.MethodPatch {
		return false
	}
	return true
}

type queuedFault struct {
	Fault
	left int // uses left; negative = unlimited
}

// Inject queues a fault behind those already queued.
func (s *Server) Inject(f Fault) {
	left := f.Times
	if left == 0 {
		left = 1
	}
	s.mu.Lock()
	s.faults = append(s.faults, &queuedFault{Fault: f, left: left})
	s.mu.Unlock()
}

// ClearFaults drops every queued fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	s.faults = nil
	s.mu.Unlock()
}

// takeFault consumes one use of the first queued fault matching the
// request. The caller holds s.mu.
func (s *Server) takeFault(method, id string) (Fault, bool) {
	for i, q := range s.faults {
		if !q.matches(method, id) {
			continue
		}
		if q.left > 0 {
			q.left--
			if q.left == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return q.Fault, true
	}
	return Fault{}, false
}
