package hoodtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ocamba-rotator/rotator/internal/testkit"
)

// Paths served.
const (
	integrationsPath = "/v1/hood/integrations"
	providersPath    = "/v1/hood/providers"
)

type routeKind int

const (
	routeNone routeKind = iota
	routeIntegration
	routeIntegrations
	routeProviders
)

// route maps a path to what it names; id is set for routeIntegration.
func route(path string) (kind routeKind, id string) {
	switch path {
	case integrationsPath:
		return routeIntegrations, ""
	case providersPath:
		return routeProviders, ""
	}
	rest, ok := strings.CutPrefix(path, integrationsPath+"/")
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return routeNone, ""
	}
	return routeIntegration, rest
}

// allowed lists the methods a route answers.
func (k routeKind) allowed() []string {
	switch k {
	case routeIntegration:
		return []string{http.MethodGet, http.MethodPatch}
	case routeIntegrations, routeProviders:
		return []string{http.MethodGet}
	}
	return nil
}

// serveHTTP applies, in order: record, rate limits, injected faults, bearer
// authentication, routing (404/405), integration lookup, the handler.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	reqBody := r.Body
	if reqBody == nil {
		reqBody = http.NoBody
	}
	body, readErr := io.ReadAll(http.MaxBytesReader(w, reqBody, maxBodyBytes))
	kind, id := route(r.URL.Path)
	rec := &Request{
		Time:        s.clock(),
		Method:      r.Method,
		Path:        r.URL.Path,
		RawQuery:    r.URL.RawQuery,
		ID:          id,
		Authorized:  s.authorized(r.Header.Get("Authorization")),
		ContentType: r.Header.Get("Content-Type"),
		Body:        body,
	}
	if r.Method == http.MethodPatch {
		rec.Settings = decodeSettings(body)
	}
	sw := &testkit.StatusWriter{ResponseWriter: w}
	var dropped []string
	defer func() {
		// Also runs when a Hang or Reset aborts the handler.
		s.mu.Lock()
		rec.Status = sw.Status
		rec.Dropped = dropped
		s.mu.Unlock()
		s.logRequest(rec, time.Since(start))
	}()

	// Record, then the rate limits, atomically.
	s.mu.Lock()
	s.requests = append(s.requests, rec)
	ok, wait := s.limiter.admit(rec.Time)
	if !ok {
		s.throttled++
	}
	var fault Fault
	var faulted bool
	if ok {
		fault, faulted = s.takeFault(r.Method, id)
		if faulted {
			rec.Fault = fault.name()
		}
	}
	s.mu.Unlock()

	if !ok {
		sw.Header().Set("Retry-After", strconv.FormatInt(retryAfterSeconds(wait), 10))
		writeError(sw, http.StatusTooManyRequests, "Too many requests: the rate limit is exceeded.")
		return
	}
	var verifyStatus string
	if faulted && !fault.AnswerLost {
		if answered := s.applyFault(sw, w, r, fault); answered {
			return
		}
		verifyStatus = fault.VerifyStatus
	}
	if !rec.Authorized {
		sw.Header().Set("WWW-Authenticate", `Bearer realm="hood"`)
		writeError(sw, http.StatusUnauthorized, "The API token is missing, invalid or expired.")
		return
	}
	allowed := kind.allowed()
	if allowed == nil {
		writeError(sw, http.StatusNotFound, "The requested resource was not found.")
		return
	}
	if !slices.Contains(allowed, r.Method) {
		sw.Header().Set("Allow", strings.Join(allowed, ", "))
		writeError(sw, http.StatusMethodNotAllowed, fmt.Sprintf("Method %s is not allowed on this resource.", r.Method))
		return
	}
	switch kind {
	case routeIntegrations:
		s.listIntegrations(sw, r)
		return
	case routeProviders:
		s.listProviders(sw)
		return
	}
	if _, exists := s.Integration(id); !exists {
		writeError(sw, http.StatusNotFound, fmt.Sprintf("Integration %q was not found.", id))
		return
	}
	if r.Method == http.MethodGet {
		s.getIntegration(sw, id)
		return
	}
	if readErr != nil {
		writeError(sw, http.StatusBadRequest, msgInvalidBody)
		return
	}
	if faulted && fault.AnswerLost {
		dropped = s.patchThenLose(sw, w, r, id, body, fault)
		return
	}
	dropped = s.patchIntegration(sw, r, id, body, verifyStatus)
}

// patchThenLose applies a PATCH, then loses its answer (Fault.AnswerLost):
// a refused PATCH is answered as usual, an applied one gets the fault's
// status or a reset connection.
func (s *Server) patchThenLose(sw *testkit.StatusWriter, raw http.ResponseWriter, r *http.Request, id string, body []byte, f Fault) []string {
	rec := httptest.NewRecorder()
	dropped := s.patchIntegration(rec, r, id, body, f.VerifyStatus)
	if rec.Code < 200 || rec.Code > 299 {
		maps.Copy(sw.Header(), rec.Header())
		sw.WriteHeader(rec.Code)
		_, _ = sw.Write(rec.Body.Bytes())
		return dropped
	}
	f.AnswerLost, f.VerifyStatus = false, ""
	if f.Status == 0 {
		f.Reset = true
	}
	s.applyFault(sw, raw, r, f)
	return dropped
}

// applyFault carries out a fault; answered is false when the request goes
// on to the ordinary checks. raw is the connection's own ResponseWriter,
// for hijacking.
func (s *Server) applyFault(sw *testkit.StatusWriter, raw http.ResponseWriter, r *http.Request, f Fault) (answered bool) {
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			abort(raw)
			return true
		case <-s.quit:
			t.Stop()
			abort(raw)
			return true
		}
	}
	switch {
	case f.Hang:
		select {
		case <-r.Context().Done():
		case <-s.quit:
		}
		abort(raw)
		return true
	case f.Reset:
		abort(raw)
		return true
	case f.Status != 0:
		if f.RetryAfter != "" {
			sw.Header().Set("Retry-After", f.RetryAfter)
		}
		msg := f.Message
		if msg == "" && f.Status != http.StatusInternalServerError {
			msg = defaultMessage(f.Status)
		}
		writeError(sw, f.Status, msg)
		return true
	}
	return false
}

// abort closes the connection without an answer: hijacked and reset where
// the connection allows it, otherwise through http.ErrAbortHandler (which
// net/http turns into a closed connection or a reset stream).
func abort(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetLinger(0) // RST rather than FIN: a connection reset
	}
	_ = conn.Close()
}

// decodeSettings returns the "settings" object of a PATCH body, or nil.
func decodeSettings(body []byte) map[string]any {
	var b struct {
		Settings map[string]any `json:"settings"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return nil
	}
	return b.Settings
}

const msgInvalidBody = "The request body is not valid."

// patchIntegration validates and applies an Update Integration request and
// returns the settings keys it dropped.
func (s *Server) patchIntegration(w http.ResponseWriter, r *http.Request, id string, body []byte, verifyStatus string) (dropped []string) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/json" {
		writeError(w, http.StatusBadRequest, "The Content-Type must be application/json.")
		return nil
	}
	top, err := decodeObject(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, msgInvalidBody)
		return nil
	}
	if len(top) == 0 {
		writeError(w, http.StatusBadRequest, "At least one of the updatable fields (name, status, settings) must be sent.")
		return nil
	}
	for _, k := range sortedKeys(top) {
		switch k {
		case "name", "status", "settings":
		default:
			writeError(w, http.StatusBadRequest, fmt.Sprintf("The field %q is not an updatable field.", k))
			return nil
		}
	}
	var name, status *string
	if raw, ok := top["name"]; ok {
		var v string
		if !decodeString(raw, &v) || utf8.RuneCountInString(v) < 1 || utf8.RuneCountInString(v) > 100 {
			writeError(w, http.StatusBadRequest, "The field \"name\" must be a string of 1 to 100 characters.")
			return nil
		}
		name = &v
	}
	if raw, ok := top["status"]; ok {
		var v string
		if !decodeString(raw, &v) || (v != "active" && v != "inactive") {
			writeError(w, http.StatusBadRequest, "The field \"status\" must be one of: active, inactive.")
			return nil
		}
		status = &v
	}
	var settings map[string]string
	if raw, ok := top["settings"]; ok {
		obj, err := decodeObject(raw)
		if err != nil {
			writeError(w, http.StatusBadRequest, "The field \"settings\" must be an object.")
			return nil
		}
		settings = make(map[string]string, len(obj))
		for _, k := range sortedKeys(obj) {
			var v string
			if !decodeString(obj[k], &v) {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("The settings field %q must be a string.", k))
				return nil
			}
			settings[k] = v
		}
	}

	s.mu.Lock()
	in, ok := s.integrations[id]
	if !ok {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, fmt.Sprintf("Integration %q was not found.", id))
		return nil
	}
	if in.Settings == nil {
		in.Settings = make(map[string]string)
	}
	for _, k := range sortedKeys(settings) {
		if !in.provider.HasField(k) {
			dropped = append(dropped, k)
			continue
		}
		in.Settings[k] = settings[k]
	}
	if name != nil {
		in.Name = *name
	}
	if status != nil {
		in.Status = *status
	}
	in.Patches++
	snap := in.snapshot()
	verifier := s.verifier
	s.mu.Unlock()

	effective := "active"
	if verifier != nil {
		effective = verifier(snap.ID, snap.ProviderKey, snap.Settings)
	}
	if verifyStatus != "" {
		effective = verifyStatus
	}
	s.SetEffectiveStatus(id, effective)
	w.WriteHeader(http.StatusNoContent)
	return dropped
}

// decodeObject decodes exactly one JSON object (not null) and nothing after it.
func decodeObject(b []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var obj map[string]json.RawMessage
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("decode object: %w", err)
	}
	if obj == nil {
		return nil, errors.New("decode object: null")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode object: data after the object")
	}
	return obj, nil
}

// decodeString decodes raw into v when raw is a JSON string.
func decodeString(raw json.RawMessage, v *string) bool {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '"' {
		return false
	}
	return json.Unmarshal(raw, v) == nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (s *Server) getIntegration(w http.ResponseWriter, id string) {
	s.mu.Lock()
	in, ok := s.integrations[id]
	var obj integrationJSON
	if ok {
		obj = s.integrationObject(in)
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("Integration %q was not found.", id))
		return
	}
	writeJSON(w, http.StatusOK, obj)
}

func (s *Server) listIntegrations(w http.ResponseWriter, r *http.Request) {
	typ := r.URL.Query().Get("type")
	s.mu.Lock()
	items := make([]integrationJSON, 0, len(s.integrations))
	for _, in := range s.integrations {
		if typ != "" && in.provider.Type != typ {
			continue
		}
		items = append(items, s.integrationObject(in))
	}
	s.mu.Unlock()
	sort.Slice(items, func(i, j int) bool { return lessID(items[i].ID, items[j].ID) })
	writeJSON(w, http.StatusOK, listJSON[integrationJSON]{Total: len(items), Items: items})
}

func (s *Server) listProviders(w http.ResponseWriter) {
	ps := orderedProviders()
	items := make([]providerJSON, len(ps))
	s.mu.Lock()
	for i, p := range ps {
		items[i] = s.providerObject(p)
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, listJSON[providerJSON]{Total: len(items), Items: items})
}

// lessID orders decimal ids numerically.
func lessID(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

// logRequest writes one request log line: never a header value, a body or
// a settings value; settings names come with a fingerprint of their value.
func (s *Server) logRequest(rec *Request, d time.Duration) {
	ctx := context.Background()
	if !s.logger.Enabled(ctx, slog.LevelInfo) {
		return
	}
	s.mu.Lock()
	attrs := []slog.Attr{
		slog.String("method", rec.Method),
		slog.String("path", rec.Path),
		slog.Int("status", rec.Status),
		slog.String("duration", d.String()),
		slog.Bool("authorized", rec.Authorized),
	}
	if rec.Fault != "" {
		attrs = append(attrs, slog.String("fault", rec.Fault))
	}
	if rec.Settings != nil {
		fields := make([]any, 0, len(rec.Settings))
		for _, k := range sortedKeys(rec.Settings) {
			fields = append(fields, slog.String(k, fingerprint(rec.Settings[k])))
		}
		attrs = append(attrs, slog.Group("settings", fields...))
	}
	if len(rec.Dropped) > 0 {
		attrs = append(attrs, slog.String("dropped", strings.Join(rec.Dropped, ",")))
	}
	s.mu.Unlock()
	s.logger.LogAttrs(ctx, slog.LevelInfo, "hood request", attrs...)
}

// fingerprint is the first 8 hex characters of the SHA-256 of a value (a
// string's text, anything else's JSON form).
func fingerprint(v any) string {
	var b []byte
	if str, ok := v.(string); ok {
		b = []byte(str)
	} else {
		b, _ = json.Marshal(v)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:4])
}

// writeError answers the documented error body.
func writeError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, ErrorBody{
		Code:    status,
		Title:   statusTitle(status),
		Message: message,
		TraceID: newTraceID(),
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"code":500,"title":"Internal server error."}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// statusTitle is the error body's title for a status.
func statusTitle(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "Bad request."
	case http.StatusUnauthorized:
		return "Unauthorized."
	case http.StatusForbidden:
		return "Forbidden."
	case http.StatusNotFound:
		return "Not found."
	case http.StatusMethodNotAllowed:
		return "Method not allowed."
	case http.StatusTooManyRequests:
		return "Too many requests."
	case http.StatusInternalServerError:
		return "Internal server error."
	case http.StatusBadGateway:
		return "Bad gateway."
	case http.StatusServiceUnavailable:
		return "Service unavailable."
	case http.StatusGatewayTimeout:
		return "Gateway timeout."
	}
	if t := http.StatusText(status); t != "" {
		return t + "."
	}
	return "Error."
}

// defaultMessage is the message of an injected fault's answer.
func defaultMessage(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "The API token is missing, invalid or expired."
	case http.StatusNotFound:
		return "The requested resource was not found."
	case http.StatusTooManyRequests:
		return "Too many requests: the rate limit is exceeded."
	case http.StatusServiceUnavailable:
		return "The service is temporarily unavailable."
	}
	return "The request could not be completed."
}

// newTraceID is a random version 4 UUID.
func newTraceID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
