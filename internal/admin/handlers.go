package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/rotation"
)

// Service is what the admin API drives: the daemon's scheduler and state.
type Service interface {
	// Rotate runs the pass req describes (forced, a forced dry run, or a
	// plan: DryRun without Force) and blocks until it is done; the pass
	// starts after the call, so its Vault reads are not older than it.
	// It returns an error wrapping rotate.ErrUnknownIntegration when
	// req.Only names an integration that is not configured; what happened
	// to each integration is in the report, not in the error.
	Rotate(ctx context.Context, req rotate.Request) (rotate.Report, error)
	// Status returns one entry per configured integration.
	Status() []IntegrationStatus
	// RunRotation runs the rotation name as req says (a run, or with
	// DryRun its plan) and returns where it left the rotation; a run that
	// failed is a result whose Error says why, not an error. The error
	// wraps rotation.ErrUnknownRotation for a name that is not configured
	// and rotation.ErrBusy for a rotation another rotator holds; any other
	// error means the run could not be made.
	RunRotation(ctx context.Context, name string, req rotation.Request) (rotation.Result, error)
	// Rotations returns the record summary of each configured rotation.
	Rotations(ctx context.Context) ([]rotation.Status, error)
	// Ready returns nil once the daemon is ready (configuration loaded,
	// Vault login done), else the reason, e.g. "vault: not authenticated: …".
	// ctx is the probe's: when it ends, Ready may return ctx's error.
	Ready(ctx context.Context) error
}

// IntegrationStatus is one integration's entry in GET /v1/status.
type IntegrationStatus struct {
	Name         string     `json:"name"`
	ID           string     `json:"id"`
	Provider     string     `json:"provider"`
	VaultVersion int        `json:"vault_version"`
	LastAttempt  *time.Time `json:"last_attempt"`
	LastSuccess  *time.Time `json:"last_success"`
	LastResult   string     `json:"last_result"`
	LastError    string     `json:"last_error"`
	// LastReason says why the last pass left it unchanged, e.g. "held by
	// web-2#3f9a2c10 until ..." with ha.mode vault.
	LastReason          string     `json:"last_reason,omitempty"`
	TraceID             string     `json:"trace_id,omitempty"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
	NextRun             *time.Time `json:"next_run"`
}

// queryDryRun is the one query parameter the POST routes take.
const queryDryRun = "dry_run"

// queryOnly is the one query parameter of GET /v1/plan.
const queryOnly = "only"

func (s *Server) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	writeText(w, http.StatusOK, "ok")
}

func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	if err := s.svc.Ready(r.Context()); err != nil {
		writeText(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeText(w, http.StatusOK, "ready")
}

// readRunRequest reads a POST that runs something: its body (drained,
// bounded) and ?dry_run. On a bad request it answers 400 or 413 and
// returns ok false.
func (s *Server) readRunRequest(w http.ResponseWriter, r *http.Request) (dryRun, ok bool) {
	if err := drainBody(w, r, s.maxBody); err != nil {
		if mbe, isMax := errors.AsType[*http.MaxBytesError](err); isMax {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit))
			return false, false
		}
		writeError(w, http.StatusBadRequest, "cannot read the request body")
		return false, false
	}
	dryRun, err := parseDryRun(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return false, false
	}
	return dryRun, true
}

// handleRotate serves POST /v1/rotate and POST /v1/rotate/{name}: a forced
// pass, or a dry run with ?dry_run=true. The answer is the pass's report,
// 200 even when some integrations failed (each outcome says so).
func (s *Server) handleRotate(w http.ResponseWriter, r *http.Request) {
	dryRun, ok := s.readRunRequest(w, r)
	if !ok {
		return
	}
	req := rotate.Request{Trigger: rotate.TriggerAdmin, Force: true, DryRun: dryRun, Caller: r.RemoteAddr}
	name := r.PathValue("name")
	if name != "" {
		req.Only = []string{name}
	}

	msg := "unknown integration"
	if name != "" {
		msg = fmt.Sprintf("unknown integration %q", name)
	}
	s.runPass(w, r, req, "forced pass", msg)
}

// handlePlan serves GET /v1/plan[?only=NAME[,NAME...]]: what `rotator
// plan` reports, from the running daemon. A dry run that honours change
// detection (unchanged, or would push with the changes and any doubt),
// run by the daemon like its other passes: nothing is written, no Hood
// request is made, and the report names settings, never their values.
func (s *Server) handlePlan(w http.ResponseWriter, r *http.Request) {
	only, err := parseOnly(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	req := rotate.Request{Trigger: rotate.TriggerAdmin, DryRun: true, Only: only, Caller: r.RemoteAddr}
	s.runPass(w, r, req, "plan", "")
}

// runPass asks the service for the pass req describes and answers its
// report: 200 even when some integrations failed (each outcome says so),
// 404 with notFound (or the error's text) for an unknown integration.
func (s *Server) runPass(w http.ResponseWriter, r *http.Request, req rotate.Request, what, notFound string) {
	ctx, cancel := s.passContext(r.Context())
	defer cancel()
	rep, err := s.svc.Rotate(ctx, req)
	s.extendWrite(w, r)
	clientGone := r.Context().Err() != nil
	switch {
	case errors.Is(err, rotate.ErrUnknownIntegration):
		if notFound == "" {
			notFound = err.Error()
		}
		writeError(w, http.StatusNotFound, notFound)
	case err != nil && clientGone:
		s.log.Warn("admin client went away; "+what+" failed", "remote", r.RemoteAddr, "error", err.Error())
	case err != nil:
		s.log.Error(what+" failed", "remote", r.RemoteAddr, "error", err.Error())
		writeError(w, http.StatusInternalServerError, "the pass could not run; see the daemon's log")
	case clientGone:
		s.log.Warn("admin client went away before the pass finished", "remote", r.RemoteAddr,
			"dry_run", rep.DryRun, "integrations", len(rep.Outcomes), "failed", rep.Failed())
	default:
		if rep.Outcomes == nil {
			rep.Outcomes = []rotate.Outcome{}
		}
		writeJSON(w, http.StatusOK, rep)
	}
}

// extendWrite gives the answer of a pass the whole write timeout from now:
// the server's write deadline runs from the request, and a pass may outlast
// it (the pass has its own deadlines).
func (s *Server) extendWrite(w http.ResponseWriter, r *http.Request) {
	err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.writeTimeout))
	if err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.log.Warn("cannot extend the write deadline of an answer", "remote", r.RemoteAddr, "error", err.Error())
	}
}

// passContext is the context of a forced pass: it keeps the request's
// values but not its cancellation, so that a client that goes away does not
// stop a pass halfway; a Shutdown whose deadline expired does.
func (s *Server) passContext(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	stop := context.AfterFunc(s.base, cancel)
	return ctx, func() { stop(); cancel() }
}

// handleRotation serves POST /v1/rotations/{name}: a run of the rotation
// as far as it can go now (to done or undone, or to the end of its grace
// period: grace_until), or with ?dry_run=true the steps it would take,
// nothing written and no provider asked. The answer is the run's result,
// 200 even when the run failed (error says why); 404 for an unknown
// rotation, 409 for one another rotator holds.
func (s *Server) handleRotation(w http.ResponseWriter, r *http.Request) {
	dryRun, ok := s.readRunRequest(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	req := rotation.Request{Trigger: string(rotate.TriggerAdmin), Caller: r.RemoteAddr, Begin: !dryRun, DryRun: dryRun}
	ctx, cancel := s.passContext(r.Context())
	defer cancel()
	res, err := s.svc.RunRotation(ctx, name, req)
	s.extendWrite(w, r)
	clientGone := r.Context().Err() != nil
	switch {
	case errors.Is(err, rotation.ErrUnknownRotation):
		writeError(w, http.StatusNotFound, fmt.Sprintf("unknown rotation %q", name))
	case errors.Is(err, rotation.ErrBusy):
		writeError(w, http.StatusConflict, err.Error())
	case err != nil && clientGone:
		s.log.Warn("admin client went away; rotation failed", "remote", r.RemoteAddr, "rotation", name, "error", err.Error())
	case err != nil:
		s.log.Error("rotation could not run", "remote", r.RemoteAddr, "rotation", name, "error", err.Error())
		writeError(w, http.StatusInternalServerError, "the rotation could not run; see the daemon's log")
	case clientGone:
		s.log.Warn("admin client went away before the rotation run finished", "remote", r.RemoteAddr,
			"rotation", name, "step", string(res.Step), "dry_run", res.DryRun)
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

// RotationsAnswer is the answer of GET /v1/rotations.
type RotationsAnswer struct {
	Rotations []rotation.Status `json:"rotations"`
}

// handleRotations serves GET /v1/rotations: each configured rotation's
// record, read from Vault now.
func (s *Server) handleRotations(w http.ResponseWriter, r *http.Request) {
	st, err := s.svc.Rotations(r.Context())
	if err != nil {
		s.log.Error("cannot read the rotation records", "remote", r.RemoteAddr, "error", err.Error())
		writeError(w, http.StatusInternalServerError, "cannot read the rotation records; see the daemon's log")
		return
	}
	if st == nil {
		st = []rotation.Status{}
	}
	writeJSON(w, http.StatusOK, RotationsAnswer{Rotations: st})
}

func (s *Server) handleStatus(w http.ResponseWriter, _ *http.Request) {
	st := s.svc.Status()
	if st == nil {
		st = []IntegrationStatus{}
	}
	writeJSON(w, http.StatusOK, st)
}

// drainBody reads and discards the request body, at most limit bytes; a
// longer one is an *http.MaxBytesError (and the connection is closed after
// the answer).
func drainBody(w http.ResponseWriter, r *http.Request, limit int64) error {
	if r.Body == nil {
		return nil
	}
	_, err := io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return fmt.Errorf("read request body: %w", err)
	}
	return nil
}

// parseDryRun reads the query of a POST: nothing, or dry_run=true|false
// once. Any other parameter is refused, so that a misspelt "dryrun=true"
// cannot start a real pass.
func parseDryRun(rawQuery string) (bool, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return false, errors.New("malformed query string")
	}
	for k := range q {
		if k != queryDryRun {
			return false, fmt.Errorf("unknown query parameter %q (only %s=true|false)", k, queryDryRun)
		}
	}
	vs, ok := q[queryDryRun]
	if !ok {
		return false, nil
	}
	if len(vs) == 1 {
		switch vs[0] {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
	}
	return false, fmt.Errorf("%s must be given once, as true or false", queryDryRun)
}

// parseOnly reads the query of GET /v1/plan: nothing (every integration),
// or only=NAME[,NAME...], repeatable. Any other parameter is refused.
func parseOnly(rawQuery string) ([]string, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, errors.New("malformed query string")
	}
	for k := range q {
		if k != queryOnly {
			return nil, fmt.Errorf("unknown query parameter %q (the plan takes %s=NAME[,NAME...])", k, queryOnly)
		}
	}
	vs, ok := q[queryOnly]
	if !ok {
		return nil, nil
	}
	var names []string
	for _, v := range vs {
		for _, n := range strings.Split(v, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s names no integration", queryOnly)
	}
	return names, nil
}

// jsonMux serves mux, but answers its 404 and 405 (with Allow) as JSON
// errors like the rest of the /v1 API.
func jsonMux(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r) // sets the path values; Handler does not
			return
		}
		c := &captureWriter{header: make(http.Header)}
		h.ServeHTTP(c, r)
		switch c.code {
		case http.StatusNotFound:
			writeError(w, c.code, "not found")
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", c.header.Get("Allow"))
			writeError(w, c.code, fmt.Sprintf("method %s not allowed", r.Method))
		default: // the redirect of a path that is not clean (/v1//status)
			mux.ServeHTTP(w, r)
		}
	})
}

// captureWriter records the status and headers of ServeMux's own
// handlers (404, 405, redirects), and drops their plain-text body.
type captureWriter struct {
	header http.Header
	code   int
}

func (c *captureWriter) Header() http.Header { return c.header }

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.code == 0 {
		c.code = http.StatusOK
	}
	return len(b), nil
}

func (c *captureWriter) WriteHeader(code int) {
	if c.code == 0 {
		c.code = code
	}
}

// logRequests logs each request once it is answered: method, path (never
// the query or any header), status, remote address and duration.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		level := slog.LevelInfo
		switch {
		case code >= 500:
			level = slog.LevelError
		case code == http.StatusUnauthorized || code == http.StatusForbidden:
			level = slog.LevelWarn
		}
		s.log.Log(context.WithoutCancel(r.Context()), level, "admin request", "method", r.Method,
			"path", r.URL.Path, "status", code, "remote", r.RemoteAddr, "duration", time.Since(start).String())
	})
}

// statusWriter remembers the status code written through it.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// errorBody is the JSON of every /v1 error answer.
type errorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, errorBody{Error: msg})
}

// writeJSON encodes v before writing anything, so that an encoding failure
// is still a clean 500.
func writeJSON(w http.ResponseWriter, code int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		code = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error": "cannot encode the answer"}` + "\n")
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

func writeText(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, body)
}
