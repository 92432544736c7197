package hoodtest_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
	"github.com/ocamba-rotator/rotator/internal/testkit"
)

const token = "test-token"

// start starts a server with the given options (token defaulted, limits
// off unless set) and the integrations 1161 (twilio_sms) and 1162
// (sendgrid_email).
func start(t *testing.T, opts hoodtest.Options) *hoodtest.Server {
	t.Helper()
	if opts.Tokens == nil {
		opts.Tokens = []string{token}
	}
	if opts.Burst == 0 {
		opts.Burst = -1
	}
	if opts.PerMinute == 0 {
		opts.PerMinute = -1
	}
	s, err := hoodtest.Start(opts)
	if err != nil {
		t.Fatalf("Start: got error %v, want nil", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: got error %v, want nil", err)
		}
	})
	if err := s.AddIntegration("1161", "twilio_sms", map[string]string{
		"account_sid":          "AC00000000000000000000000000000000",
		"auth_token":           "old-twilio-token",
		"default_phone_number": "+14155552671",
	}); err != nil {
		t.Fatalf("AddIntegration 1161: %v", err)
	}
	if err := s.AddIntegration("1162", "sendgrid_email", map[string]string{
		"api_key": "SG.old", "default_sender_email": "noreply@example.com",
	}); err != nil {
		t.Fatalf("AddIntegration 1162: %v", err)
	}
	return s
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

type call struct {
	method, path, token, contentType, body string
}

// newClient is a client with its own transport, so that no test shares
// (or retries on) another test's connections.
func newClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func (c call) do(ctx context.Context, client *http.Client, base string) (answer, error) {
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, base+c.path, body)
	if err != nil {
		return answer{}, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

func (c call) must(t *testing.T, s *hoodtest.Server) answer {
	t.Helper()
	a, err := c.do(t.Context(), newClient(t), s.URL())
	if err != nil {
		t.Fatalf("%s %s: got error %v, want an answer", c.method, c.path, err)
	}
	return a
}

func patch(id, body string) call {
	return call{method: http.MethodPatch, path: "/v1/hood/integrations/" + id, token: token, contentType: "application/json", body: body}
}

func get(path string) call {
	return call{method: http.MethodGet, path: path, token: token}
}

var traceIDPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

// checkError asserts the documented error answer.
func checkError(t *testing.T, a answer, status int, wantMessage string) hoodtest.ErrorBody {
	t.Helper()
	if a.status != status {
		t.Fatalf("status: got %d, want %d (body %s)", a.status, status, a.body)
	}
	if ct := a.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type: got %q, want application/json", ct)
	}
	var e hoodtest.ErrorBody
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("error body %s: got decode error %v, want the documented shape", a.body, err)
	}
	if e.Code != status {
		t.Errorf("code: got %d, want %d", e.Code, status)
	}
	if e.Title == "" || !strings.HasSuffix(e.Title, ".") {
		t.Errorf("title: got %q, want a sentence", e.Title)
	}
	if !traceIDPattern.MatchString(e.TraceID) {
		t.Errorf("trace_id: got %q, want a UUID", e.TraceID)
	}
	if wantMessage != "" && !strings.Contains(e.Message, wantMessage) {
		t.Errorf("message: got %q, want it to contain %q", e.Message, wantMessage)
	}
	return e
}

func TestStartOptionsErrors(t *testing.T) {
	tests := []struct {
		name string
		opts hoodtest.Options
	}{
		{"no tokens", hoodtest.Options{}},
		{"empty token", hoodtest.Options{Tokens: []string{""}}},
		{"negative window", hoodtest.Options{Tokens: []string{"t"}, Window: -time.Second}},
		{"bad address", hoodtest.Options{Tokens: []string{"t"}, Addr: "256.0.0.1:bad"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := hoodtest.Start(tt.opts)
			if err == nil {
				_ = s.Close()
				t.Fatalf("Start: got nil error, want one")
			}
		})
	}
}

func TestAddIntegrationErrors(t *testing.T) {
	s := start(t, hoodtest.Options{})
	tests := []struct {
		name, id, provider string
		settings           map[string]string
	}{
		{"unknown provider", "1", "pigeon_post", nil},
		{"id not digits", "abc", "twilio_sms", nil},
		{"empty id", "", "twilio_sms", nil},
		{"field of another provider", "2", "twilio_sms", map[string]string{"api_key": "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.AddIntegration(tt.id, tt.provider, tt.settings); err == nil {
				t.Errorf("AddIntegration(%q, %q): got nil error, want one", tt.id, tt.provider)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	s := start(t, hoodtest.Options{Tokens: []string{"alpha", "beta"}})
	tests := []struct {
		name, header string
		want         int
	}{
		{"no header", "", http.StatusUnauthorized},
		{"wrong token", "Bearer gamma", http.StatusUnauthorized},
		{"prefix of a token", "Bearer alph", http.StatusUnauthorized},
		{"wrong scheme", "Basic alpha", http.StatusUnauthorized},
		{"empty bearer", "Bearer ", http.StatusUnauthorized},
		{"first token", "Bearer alpha", http.StatusOK},
		{"second token", "Bearer beta", http.StatusOK},
		{"scheme case", "bearer alpha", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.URL()+"/v1/hood/integrations/1161", nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.header != "" {
				req.Header.Set("Authorization", tt.header)
			}
			resp, err := newClient(t).Do(req)
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			a := answer{status: resp.StatusCode, header: resp.Header, body: body}
			if tt.want == http.StatusUnauthorized {
				checkError(t, a, http.StatusUnauthorized, "token")
				return
			}
			if a.status != tt.want {
				t.Errorf("status: got %d, want %d", a.status, tt.want)
			}
		})
	}

	t.Run("unauthorized PATCH changes nothing", func(t *testing.T) {
		c := patch("1161", `{"settings":{"auth_token":"new"}}`)
		c.token = "gamma"
		checkError(t, c.must(t, s), http.StatusUnauthorized, "")
		in, _ := s.Integration("1161")
		if got := in.Settings["auth_token"]; got != "old-twilio-token" {
			t.Errorf("stored auth_token: got %q, want old-twilio-token", got)
		}
	})

	t.Run("token rotation", func(t *testing.T) {
		s.SetTokens("delta")
		old := get("/v1/hood/integrations/1161")
		old.token = "alpha"
		checkError(t, old.must(t, s), http.StatusUnauthorized, "")
		rotated := get("/v1/hood/integrations/1161")
		rotated.token = "delta"
		if a := rotated.must(t, s); a.status != http.StatusOK {
			t.Errorf("new token: got %d, want 200", a.status)
		}
	})
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	s := start(t, hoodtest.Options{})
	s.RemoveIntegration("1162")
	tests := []struct {
		name      string
		c         call
		want      int
		wantAllow string
	}{
		{"unknown id GET", get("/v1/hood/integrations/999"), 404, ""},
		{"unknown id PATCH", patch("999", `{"settings":{"auth_token":"x"}}`), 404, ""},
		{"removed id GET", get("/v1/hood/integrations/1162"), 404, ""},
		{"removed id PATCH", patch("1162", `{"settings":{"api_key":"x"}}`), 404, ""},
		{"id not digits", get("/v1/hood/integrations/abc"), 404, ""},
		{"empty id", get("/v1/hood/integrations/"), 404, ""},
		{"sub path", get("/v1/hood/integrations/1161/settings"), 404, ""},
		{"unknown path", get("/v1/hood/other"), 404, ""},
		{"root", get("/"), 404, ""},
		{"DELETE integration", call{method: http.MethodDelete, path: "/v1/hood/integrations/1161", token: token}, 405, "GET, PATCH"},
		{"POST integrations", call{method: http.MethodPost, path: "/v1/hood/integrations", token: token, contentType: "application/json", body: "{}"}, 405, "GET"},
		{"PUT providers", call{method: http.MethodPut, path: "/v1/hood/providers", token: token}, 405, "GET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.c.must(t, s)
			checkError(t, a, tt.want, "")
			if got := a.header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow: got %q, want %q", got, tt.wantAllow)
			}
		})
	}
}

func TestPatchMergesSettings(t *testing.T) {
	s := start(t, hoodtest.Options{})
	a := patch("1161", `{"settings":{"auth_token":"new-twilio-token"}}`).must(t, s)
	if a.status != http.StatusNoContent {
		t.Fatalf("status: got %d, want 204 (body %s)", a.status, a.body)
	}
	if len(a.body) != 0 {
		t.Errorf("body: got %q, want empty", a.body)
	}
	in, ok := s.Integration("1161")
	if !ok {
		t.Fatal("Integration(1161): got false, want true")
	}
	want := map[string]string{
		"account_sid":          "AC00000000000000000000000000000000",
		"auth_token":           "new-twilio-token",
		"default_phone_number": "+14155552671",
	}
	if !mapsEqual(in.Settings, want) {
		t.Errorf("stored settings: got %v, want %v", in.Settings, want)
	}
	if in.Patches != 1 {
		t.Errorf("Patches: got %d, want 1", in.Patches)
	}
	if in.EffectiveStatus != "active" {
		t.Errorf("EffectiveStatus: got %q, want active", in.EffectiveStatus)
	}

	reqs := s.Requests()
	if len(reqs) != 1 {
		t.Fatalf("Requests: got %d, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Method != http.MethodPatch || r.Path != "/v1/hood/integrations/1161" || r.ID != "1161" || r.Status != 204 || !r.Authorized || r.ContentType != "application/json" {
		t.Errorf("recorded request: got %+v, want PATCH 1161 204 authorized application/json", r)
	}
	if got, want := string(r.Body), `{"settings":{"auth_token":"new-twilio-token"}}`; got != want {
		t.Errorf("recorded body: got %s, want %s", got, want)
	}
	if got := r.Settings["auth_token"]; got != "new-twilio-token" {
		t.Errorf("recorded settings auth_token: got %v, want new-twilio-token", got)
	}
	if r.Dropped != nil {
		t.Errorf("Dropped: got %v, want none", r.Dropped)
	}

	// Snapshots are copies.
	in.Settings["auth_token"] = "mutated"
	reqs[0].Settings["auth_token"] = "mutated"
	again, _ := s.Integration("1161")
	if got := again.Settings["auth_token"]; got != "new-twilio-token" {
		t.Errorf("after mutating the snapshot: got %q, want new-twilio-token", got)
	}
	if got := s.Requests()[0].Settings["auth_token"]; got != "new-twilio-token" {
		t.Errorf("after mutating Requests(): got %v, want new-twilio-token", got)
	}
}

func TestPatchSilentlyDropsForeignFields(t *testing.T) {
	s := start(t, hoodtest.Options{})
	// api_key and domain belong to other providers, not to twilio_sms.
	a := patch("1161", `{"settings":{"domain":"mg.example.com","api_key":"SG.new","auth_token":"t2"}}`).must(t, s)
	if a.status != http.StatusNoContent {
		t.Fatalf("status: got %d, want 204 (body %s)", a.status, a.body)
	}
	in, _ := s.Integration("1161")
	for _, k := range []string{"api_key", "domain"} {
		if v, ok := in.Settings[k]; ok {
			t.Errorf("stored %s: got %q, want absent", k, v)
		}
	}
	if got := in.Settings["auth_token"]; got != "t2" {
		t.Errorf("stored auth_token: got %q, want t2", got)
	}
	r := s.Requests()[0]
	if want := []string{"api_key", "domain"}; !slices.Equal(r.Dropped, want) {
		t.Errorf("Dropped: got %v, want %v", r.Dropped, want)
	}

	// Only foreign fields: still 204, nothing stored, counted as a patch.
	a = patch("1162", `{"settings":{"auth_token":"x"}}`).must(t, s)
	if a.status != http.StatusNoContent {
		t.Fatalf("only foreign: got %d, want 204", a.status)
	}
	sg, _ := s.Integration("1162")
	if _, ok := sg.Settings["auth_token"]; ok || sg.Settings["api_key"] != "SG.old" {
		t.Errorf("sendgrid settings: got %v, want unchanged", sg.Settings)
	}
}

func TestPatchBadRequests(t *testing.T) {
	s := start(t, hoodtest.Options{})
	tests := []struct {
		name, contentType, body, wantMessage string
	}{
		{"number value", "application/json", `{"settings":{"auth_token":123}}`, `"auth_token"`},
		{"null value", "application/json", `{"settings":{"auth_token":null}}`, `"auth_token"`},
		{"object value", "application/json", `{"settings":{"account_sid":{"a":"b"}}}`, `"account_sid"`},
		{"bool value of a foreign field", "application/json", `{"settings":{"api_key":true}}`, `"api_key"`},
		{"empty object", "application/json", `{}`, "At least one"},
		{"unknown top-level key", "application/json", `{"settings":{"auth_token":"x"},"provider_id":"1003"}`, `"provider_id"`},
		{"array body", "application/json", `[{"settings":{}}]`, "The request body is not valid."},
		{"null body", "application/json", `null`, "The request body is not valid."},
		{"invalid JSON", "application/json", `{"settings":`, "The request body is not valid."},
		{"trailing data", "application/json", `{"settings":{"auth_token":"x"}} {}`, "The request body is not valid."},
		{"empty body", "application/json", ``, "The request body is not valid."},
		{"no content type", "", `{"settings":{"auth_token":"x"}}`, "Content-Type"},
		{"text content type", "text/plain", `{"settings":{"auth_token":"x"}}`, "Content-Type"},
		{"settings not an object", "application/json", `{"settings":"auth_token=x"}`, `"settings"`},
		{"settings null", "application/json", `{"settings":null}`, `"settings"`},
		{"name empty", "application/json", `{"name":""}`, `"name"`},
		{"name too long", "application/json", `{"name":"` + strings.Repeat("n", 101) + `"}`, `"name"`},
		{"name not a string", "application/json", `{"name":7}`, `"name"`},
		{"status unknown", "application/json", `{"status":"paused"}`, `"status"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := patch("1161", tt.body)
			c.contentType = tt.contentType
			checkError(t, c.must(t, s), http.StatusBadRequest, tt.wantMessage)
		})
	}
	in, _ := s.Integration("1161")
	if in.Patches != 0 || in.Settings["auth_token"] != "old-twilio-token" || in.Name != "Integration 1161" {
		t.Errorf("after bad requests: got %+v, want the integration unchanged", in)
	}
}

func TestPatchNameAndStatus(t *testing.T) {
	s := start(t, hoodtest.Options{})
	tests := []struct {
		name, body, wantName, wantStatus string
	}{
		{"name", `{"name":"Renamed"}`, "Renamed", "active"},
		{"status", `{"status":"inactive"}`, "Renamed", "inactive"},
		{"100 characters", `{"name":"` + strings.Repeat("é", 100) + `","status":"active"}`, strings.Repeat("é", 100), "active"},
		{"charset parameter", `{"settings":{}}`, strings.Repeat("é", 100), "active"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := patch("1161", tt.body)
			c.contentType = "application/json; charset=utf-8"
			if a := c.must(t, s); a.status != http.StatusNoContent {
				t.Fatalf("status: got %d, want 204 (body %s)", a.status, a.body)
			}
			in, _ := s.Integration("1161")
			if in.Name != tt.wantName || in.Status != tt.wantStatus {
				t.Errorf("got name %q status %q, want %q %q", in.Name, in.Status, tt.wantName, tt.wantStatus)
			}
		})
	}
}

func TestGetIntegrationShape(t *testing.T) {
	s := start(t, hoodtest.Options{})
	for _, path := range []string{
		"/v1/hood/integrations/1161",
		"/v1/hood/integrations/1161?fields=id,effective_status&view=full",
	} {
		t.Run(path, func(t *testing.T) {
			a := get(path).must(t, s)
			if a.status != http.StatusOK {
				t.Fatalf("status: got %d, want 200", a.status)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type: got %q, want application/json", ct)
			}
			var obj map[string]any
			if err := json.Unmarshal(a.body, &obj); err != nil {
				t.Fatalf("body: %v", err)
			}
			wantKeys := []string{"company_id", "create_time", "effective_status", "id", "is_default", "name", "provider", "provider_id", "settings", "status", "type"}
			if got := keys(obj); !slices.Equal(got, wantKeys) {
				t.Errorf("keys: got %v, want %v", got, wantKeys)
			}
			for k, want := range map[string]any{
				"id": "1161", "company_id": "6197120", "type": "sms", "provider_id": "1000",
				"status": "active", "effective_status": "active", "name": "Integration 1161",
			} {
				if obj[k] != want {
					t.Errorf("%s: got %v, want %v", k, obj[k], want)
				}
			}
			if _, err := time.Parse("2006-01-02 15:04:05", fmt.Sprint(obj["create_time"])); err != nil {
				t.Errorf("create_time: got %v, want YYYY-MM-DD hh:mm:ss", obj["create_time"])
			}
			p, _ := obj["provider"].(map[string]any)
			if p["id"] != "1000" || p["type"] != "sms" || p["name"] != "twilio" {
				t.Errorf("provider: got %v, want id 1000 type sms name twilio", p)
			}
			fields, _ := p["settings"].([]any)
			var names []string
			for _, f := range fields {
				m, _ := f.(map[string]any)
				names = append(names, fmt.Sprint(m["name"]))
				if m["type"] != "string" || m["required"] != true || m["deprecated"] != false || m["title"] == "" {
					t.Errorf("provider setting: got %v, want type string, required, not deprecated, titled", m)
				}
			}
			if want := []string{"account_sid", "auth_token", "default_phone_number"}; !slices.Equal(names, want) {
				t.Errorf("provider settings: got %v, want %v", names, want)
			}
			first, _ := fields[0].(map[string]any)
			if first["title"] != "Account SID" {
				t.Errorf("title: got %v, want Account SID", first["title"])
			}
			settings, _ := obj["settings"].(map[string]any)
			want := map[string]any{
				"account_sid":          "AC00000000000000000000000000000000",
				"auth_token":           hoodtest.MaskedValue,
				"default_phone_number": "+14155552671",
			}
			if fmt.Sprint(settings) != fmt.Sprint(want) {
				t.Errorf("settings: got %v, want %v", settings, want)
			}
			if bytes.Contains(a.body, []byte("old-twilio-token")) {
				t.Errorf("body: got the secret auth_token in %s, want it masked", a.body)
			}
		})
	}
}

func TestListEndpoints(t *testing.T) {
	s := start(t, hoodtest.Options{})
	if err := s.AddIntegration("20", "mitto_sms", nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path    string
		wantIDs []string
	}{
		{"/v1/hood/integrations", []string{"20", "1161", "1162"}},
		{"/v1/hood/integrations?type=sms", []string{"20", "1161"}},
		{"/v1/hood/integrations?type=email", []string{"1162"}},
		{"/v1/hood/integrations?type=fax", nil},
		{"/v1/hood/providers", []string{"1000", "1001", "1002", "1003", "1004", "1005", "1006"}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			a := get(tt.path).must(t, s)
			if a.status != http.StatusOK {
				t.Fatalf("status: got %d, want 200", a.status)
			}
			var list struct {
				Total int `json:"total"`
				Items []struct {
					ID       string            `json:"id"`
					Settings json.RawMessage   `json:"settings"`
					Extra    map[string]string `json:"-"`
				} `json:"items"`
			}
			if err := json.Unmarshal(a.body, &list); err != nil {
				t.Fatalf("body: %v", err)
			}
			var ids []string
			for _, it := range list.Items {
				ids = append(ids, it.ID)
			}
			if list.Total != len(tt.wantIDs) || !slices.Equal(ids, tt.wantIDs) {
				t.Errorf("got total %d ids %v, want %d %v", list.Total, ids, len(tt.wantIDs), tt.wantIDs)
			}
			if bytes.Contains(a.body, []byte("SG.old")) || bytes.Contains(a.body, []byte("old-twilio-token")) {
				t.Errorf("body: got a secret value, want masked")
			}
		})
	}
	for key, want := range map[string]string{"twilio_sms": "1000", "telegram": "1006"} {
		if got, ok := hoodtest.ProviderID(key); !ok || got != want {
			t.Errorf("ProviderID(%s): got %q %v, want %q", key, got, ok, want)
		}
	}
	if _, ok := hoodtest.ProviderID("pigeon_post"); ok {
		t.Errorf("ProviderID(pigeon_post): got true, want false")
	}
}

func TestVerifierAndEffectiveStatus(t *testing.T) {
	s := start(t, hoodtest.Options{})
	s.SetVerifier(func(id, providerKey string, settings map[string]string) string {
		// The verifier may call back into the server.
		if _, ok := s.Integration(id); !ok {
			return "missing"
		}
		if providerKey == "twilio_sms" && settings["auth_token"] == "bad" {
			return "inactive"
		}
		return "active"
	})
	effective := func() string {
		var obj struct {
			EffectiveStatus string `json:"effective_status"`
		}
		a := get("/v1/hood/integrations/1161").must(t, s)
		if err := json.Unmarshal(a.body, &obj); err != nil {
			t.Fatalf("GET body: %v", err)
		}
		return obj.EffectiveStatus
	}
	steps := []struct {
		name string
		do   func()
		want string
	}{
		{"bad credentials", func() { patch("1161", `{"settings":{"auth_token":"bad"}}`).must(t, s) }, "inactive"},
		{"good credentials", func() { patch("1161", `{"settings":{"auth_token":"good"}}`).must(t, s) }, "active"},
		{"set by the test", func() { s.SetEffectiveStatus("1161", "testing") }, "testing"},
		{"verifier removed", func() {
			s.SetVerifier(nil)
			patch("1161", `{"settings":{"auth_token":"bad"}}`).must(t, s)
		}, "active"},
	}
	for _, st := range steps {
		st.do()
		if got := effective(); got != st.want {
			t.Errorf("%s: effective_status got %q, want %q", st.name, got, st.want)
		}
	}
	s.SetEffectiveStatus("404", "testing") // unknown ids are ignored
}

func TestRequestLogNeverHoldsValues(t *testing.T) {
	var buf syncBuffer
	s := start(t, hoodtest.Options{Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	const secret = "sk-very-secret-value"
	patch("1161", `{"settings":{"auth_token":"`+secret+`","api_key":"`+secret+`2","account_sid":"AC1"}}`).must(t, s)
	patch("1161", `{"settings":{"auth_token":"`+secret+`"}}`).must(t, s)
	get("/v1/hood/integrations/1161").must(t, s)
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("log lines: got %d, want 3:\n%s", len(lines), out)
	}
	if strings.Contains(out, secret) || strings.Contains(out, token) {
		t.Errorf("log: got a value or the token in\n%s", out)
	}
	sum := sha256.Sum256([]byte(secret))
	wantFP := hex.EncodeToString(sum[:])[:8]
	for _, want := range []string{"method=PATCH", "path=/v1/hood/integrations/1161", "status=204", "duration=", "settings.api_key=", "settings.account_sid=", "dropped=api_key"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("first line: got %s, want it to contain %s", lines[0], want)
		}
	}
	if !strings.Contains(lines[0], "settings.auth_token=") || !strings.Contains(lines[1], "settings.auth_token=") {
		t.Fatalf("log: got %s, want the auth_token fingerprint", out)
	}
	if fpOf(lines[0], "settings.auth_token=") != fpOf(lines[1], "settings.auth_token=") {
		t.Errorf("fingerprints of one value: got %s and %s, want equal", fpOf(lines[0], "settings.auth_token="), fpOf(lines[1], "settings.auth_token="))
	}
	if got := fpOf(lines[0], "settings.auth_token="); got != wantFP {
		t.Errorf("fingerprint: got %q, want %q (sha256 prefix)", got, wantFP)
	}
	if strings.Contains(lines[2], "settings") {
		t.Errorf("GET line: got %s, want no settings", lines[2])
	}
}

func fpOf(line, prefix string) string {
	_, after, _ := strings.Cut(line, prefix)
	v, _, _ := strings.Cut(after, " ")
	return v
}

func TestConcurrentRequests(t *testing.T) {
	s := start(t, hoodtest.Options{})
	client := &http.Client{}
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	for i := range n {
		wg.Go(func() {
			a, err := patch("1161", fmt.Sprintf(`{"settings":{"auth_token":"t%d"}}`, i)).do(t.Context(), client, s.URL())
			if err != nil {
				errs <- fmt.Errorf("PATCH %d: %w", i, err)
			} else if a.status != http.StatusNoContent {
				errs <- fmt.Errorf("PATCH %d: got %d, want 204", i, a.status)
			}
		})
		wg.Go(func() {
			a, err := get("/v1/hood/integrations/1162").do(t.Context(), client, s.URL())
			if err != nil {
				errs <- fmt.Errorf("GET %d: %w", i, err)
			} else if a.status != http.StatusOK {
				errs <- fmt.Errorf("GET %d: got %d, want 200", i, a.status)
			}
		})
		wg.Go(func() {
			_ = s.Requests()
			_ = s.Count(http.MethodPatch)
			_, _ = s.Integration("1161")
			s.Inject(hoodtest.Fault{Method: http.MethodDelete})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := s.Count(""); got != 2*n {
		t.Errorf("Count(\"\"): got %d, want %d", got, 2*n)
	}
	if got := s.Count(http.MethodPatch); got != n {
		t.Errorf("Count(PATCH): got %d, want %d", got, n)
	}
	if in, _ := s.Integration("1161"); in.Patches != n {
		t.Errorf("Patches: got %d, want %d", in.Patches, n)
	}
	s.Reset()
	if got := len(s.Requests()); got != 0 {
		t.Errorf("after Reset: got %d requests, want 0", got)
	}
	if _, ok := s.Integration("1161"); !ok {
		t.Errorf("after Reset: integration 1161 gone, want kept")
	}
}

func TestHandlerWithoutListener(t *testing.T) {
	s, err := hoodtest.New(hoodtest.Options{Tokens: []string{token}})
	if err != nil {
		t.Fatal(err)
	}
	if s.URL() != "" {
		t.Errorf("URL: got %q, want empty", s.URL())
	}
	if err := s.AddIntegration("5", "telegram", map[string]string{"chat_id": "8171131924"}); err != nil {
		t.Fatal(err)
	}
	rec := &responseRecorder{header: http.Header{}}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "/v1/hood/integrations/5", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	s.Handler().ServeHTTP(rec, req)
	if rec.status != http.StatusOK || !strings.Contains(rec.body.String(), `"chat_id":"8171131924"`) {
		t.Errorf("got %d %s, want 200 with chat_id", rec.status, rec.body.String())
	}
	if err := s.Shutdown(t.Context()); err != nil {
		t.Errorf("Shutdown: got %v, want nil", err)
	}
}

type responseRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *responseRecorder) Header() http.Header { return r.header }
func (r *responseRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *responseRecorder) Write(b []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(b)
}

type syncBuffer = testkit.SyncBuffer

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
