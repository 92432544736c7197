package providertest

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/secret"
)

// sendgridCall makes a raw request and returns the status, headers and body.
func sendgridCall(t *testing.T, s *SendGridServer, method, path, auth, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

var sendgridErrorShape = regexp.MustCompile(`^\{"errors":\[\{"field":(null|"[a-z_]+"),"message":"[^"]+"\}\]\}\n$`)

func TestSendGridServerRoutes(t *testing.T) {
	s := NewSendGridServer()
	defer s.Close()
	_, manager := s.SeedKey("manager", SendGridScopeCreate, SendGridScopeRead, SendGridScopeDelete, "mail.send")
	bearer := "Bearer " + manager.Reveal()

	status, _, body := sendgridCall(t, s, http.MethodPost, "/v3/api_keys", bearer, `{"name":"new","scopes":["mail.send"]}`)
	var created struct {
		APIKey string   `json:"api_key"`
		ID     string   `json:"api_key_id"`
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}
	if err := json.Unmarshal([]byte(body), &created); err != nil || status != http.StatusCreated {
		t.Fatalf("create: got %d %q (%v), want 201 and JSON", status, body, err)
	}
	if len(created.APIKey) != 69 || !strings.HasPrefix(created.APIKey, "SG."+created.ID+".") || created.Name != "new" {
		t.Errorf("got key of %d characters, id %q, name %q; want 69, SG.<id>., new", len(created.APIKey), created.ID, created.Name)
	}

	tests := []struct {
		name, method, path, auth, body string
		wantStatus                     int
		wantErrorShape                 bool
	}{
		{"no auth", http.MethodGet, "/v3/scopes", "", "", 401, true},
		{"raw key without Bearer", http.MethodGet, "/v3/scopes", manager.Reveal(), "", 401, true},
		{"basic auth", http.MethodGet, "/v3/scopes", "Basic " + manager.Reveal(), "", 401, true},
		{"unknown key", http.MethodGet, "/v3/api_keys", "Bearer SG.x.y", "", 401, true},
		{"scopes", http.MethodGet, "/v3/scopes", bearer, "", 200, false},
		{"list", http.MethodGet, "/v3/api_keys?limit=1", bearer, "", 200, false},
		{"bad limit", http.MethodGet, "/v3/api_keys?limit=0", bearer, "", 400, true},
		{"get one", http.MethodGet, "/v3/api_keys/" + created.ID, bearer, "", 200, false},
		{"get unknown", http.MethodGet, "/v3/api_keys/nope", bearer, "", 404, true},
		{"missing name", http.MethodPost, "/v3/api_keys", bearer, `{"scopes":["mail.send"]}`, 400, true},
		{"bad JSON", http.MethodPost, "/v3/api_keys", bearer, `{`, 400, true},
		{"scope not held", http.MethodPost, "/v3/api_keys", bearer, `{"name":"x","scopes":["billing.read"]}`, 403, true},
		{"minted key cannot create", http.MethodPost, "/v3/api_keys", "Bearer " + created.APIKey, `{"name":"x"}`, 403, true},
		{"minted key checks", http.MethodGet, "/v3/scopes", "Bearer " + created.APIKey, "", 200, false},
		{"wrong method", http.MethodPut, "/v3/scopes", bearer, "", 405, true},
		{"unknown route", http.MethodGet, "/v3/mail/send", bearer, "", 404, true},
		{"delete unknown", http.MethodDelete, "/v3/api_keys/nope", bearer, "", 404, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := sendgridCall(t, s, tt.method, tt.path, tt.auth, tt.body)
			if status != tt.wantStatus {
				t.Errorf("got %d %q, want %d", status, body, tt.wantStatus)
			}
			if tt.wantErrorShape && !sendgridErrorShape.MatchString(body) {
				t.Errorf("got body %q, want SendGrid's error shape", body)
			}
			if strings.Contains(body, created.APIKey) || strings.Contains(body, manager.Reveal()) {
				t.Errorf("got a key value in %q, want values only at creation", body)
			}
		})
	}

	if status, _, body := sendgridCall(t, s, http.MethodGet, "/v3/api_keys?limit=1", bearer, ""); status != 200 ||
		strings.Count(body, "api_key_id") != 1 {
		t.Errorf("limit=1: got %d %q, want one key", status, body)
	}

	// AnswerLost on delete: the key is deleted, the connection reset.
	s.Inject(Fault{Method: http.MethodDelete, AnswerLost: true})
	req, _ := http.NewRequest(http.MethodDelete, s.URL()+"/v3/api_keys/"+created.ID, nil)
	req.Header.Set("Authorization", bearer)
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	if resp, err := (&http.Client{Transport: tr}).Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("got an answer %d, want the connection reset", resp.StatusCode)
	}
	if s.Accepts(secret.New(created.APIKey)) || len(s.Keys()) != 1 {
		t.Errorf("got the key kept (%d keys), want it deleted", len(s.Keys()))
	}

	// A status fault: SendGrid's shape and Retry-After, on any route, before auth.
	s.Inject(Fault{Status: 429, RetryAfter: "5", Times: 2})
	for _, path := range []string{"/v3/scopes", "/nowhere"} {
		status, h, body := sendgridCall(t, s, http.MethodGet, path, "", "")
		if status != 429 || h.Get("Retry-After") != "5" || !sendgridErrorShape.MatchString(body) {
			t.Errorf("%s: got %d Retry-After %q %q, want 429, 5, error shape", path, status, h.Get("Retry-After"), body)
		}
	}
	if status, _, _ := sendgridCall(t, s, http.MethodGet, "/v3/scopes", bearer, ""); status != 200 {
		t.Errorf("after the fault: got %d, want 200", status)
	}
}
