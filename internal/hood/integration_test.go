package hood_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/hood"
)

// docIntegration is the documented Get Integration example, plus an
// unknown field and a secret value in settings.
const docIntegration = `{
  "id": "1161", "company_id": "6197120", "name": "Example Integration",
  "type": "sms", "provider_id": "1000", "status": "active", "effective_status": "inactive",
  "is_default": true, "create_time": "2021-10-29 12:47:00", "brand_new_field": {"x": [1, 2]},
  "provider": {
    "id": "1000", "type": "sms", "name": "twilio",
    "settings": [
      {"title": "Account SID", "name": "account_sid", "type": "string", "required": true, "deprecated": false},
      {"title": "Auth Token", "name": "auth_token", "type": "string", "required": true, "deprecated": false},
      {"title": "Default Phone Number", "name": "default_phone_number", "type": "string", "required": false, "deprecated": true}
    ]
  },
  "settings": {"default_phone_number": "+14155552671", "auth_token": "` + sentinelValue + `", "account_sid": {"nested": 1}}
}`

func TestGetIntegrationDecodesDocumentedObject(t *testing.T) {
	srv := newScriptServer(t, reply{status: http.StatusOK, body: docIntegration})
	c, _ := newClient(t, srv.URL, nil)

	got, err := c.GetIntegration(context.Background(), tok(), "1161")
	if err != nil {
		t.Fatalf("GetIntegration: got error %v, want nil", err)
	}
	want := &hood.Integration{
		ID: "1161", CompanyID: "6197120", Name: "Example Integration", Type: "sms", ProviderID: "1000",
		Status: "active", EffectiveStatus: "inactive", IsDefault: true, CreateTime: "2021-10-29 12:47:00",
		Provider: hood.ProviderInfo{ID: "1000", Type: "sms", Name: "twilio", Settings: []hood.SettingInfo{
			{Title: "Account SID", Name: "account_sid", Type: "string", Required: true},
			{Title: "Auth Token", Name: "auth_token", Type: "string", Required: true},
			{Title: "Default Phone Number", Name: "default_phone_number", Type: "string", Deprecated: true},
		}},
		SettingNames: []string{"account_sid", "auth_token", "default_phone_number"},
	}
	if g, w := fmt.Sprintf("%+v", got), fmt.Sprintf("%+v", want); g != w {
		t.Errorf("integration:\ngot  %s\nwant %s", g, w)
	}
	if s := fmt.Sprintf("%#v", got); strings.Contains(s, sentinelValue) {
		t.Errorf("integration %s: got a settings value kept, want names only", s)
	}

	reqs := srv.requests()
	if len(reqs) != 1 {
		t.Fatalf("requests: got %d, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodGet || r.path != "/v1/hood/integrations/1161" || len(r.body) != 0 {
		t.Errorf("request: got %s %s with %d body bytes, want GET /v1/hood/integrations/1161 without body", r.method, r.path, len(r.body))
	}
	for k, want := range map[string]string{"Authorization": "Bearer " + sentinelToken, "Accept": "application/json", "Content-Type": ""} {
		if got := r.header.Get(k); got != want {
			t.Errorf("header %s: got %q, want %q", k, got, want)
		}
	}
}

func TestGetIntegrationBadAnswers(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantInErr []string
	}{
		{"id as number", `{"id": 1161, "provider": {"id": "1000"}}`, []string{`"id"`, "number", "want string"}},
		{"provider id as number", `{"id": "1161", "provider": {"id": 1000}}`, []string{`"provider.id"`, "number"}},
		{"settings as array", `{"id": "1161", "settings": ["` + sentinelValue + `"]}`, []string{`"settings"`, "array", "want object"}},
		{"required as string", `{"id": "1161", "provider": {"settings": [{"name": "a", "required": "yes"}]}}`, []string{"required", "string", "want boolean"}},
		{"not JSON", `<html>` + sentinelValue + `</html>`, []string{"not valid JSON"}},
		{"truncated JSON", `{"id": "1161", "settings": {"auth_token": "` + sentinelValue, []string{"not valid JSON"}},
		{"empty", ``, []string{"empty answer"}},
		{"other integration", `{"id": "99"}`, []string{`"99"`}},
		{"huge", `{"id": "1161", "name": "` + strings.Repeat("x", 70<<10) + `"}`, []string{"too large"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newScriptServer(t, reply{status: http.StatusOK, body: tt.body})
			c, _ := newClient(t, srv.URL, nil)
			got, err := c.GetIntegration(context.Background(), tok(), "1161")
			if err == nil {
				t.Fatalf("GetIntegration: got %+v, want an error", got)
			}
			msg := err.Error()
			for _, w := range tt.wantInErr {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q: got no %q in it, want it", msg, w)
				}
			}
			if !strings.Contains(msg, "1161") {
				t.Errorf("error %q: got no integration id, want it named", msg)
			}
			if strings.Contains(msg, sentinelValue) || strings.Contains(msg, sentinelToken) {
				t.Errorf("error %q: got a secret, want none", msg)
			}
			if n := len(srv.requests()); n != 1 {
				t.Errorf("requests: got %d, want 1 (a bad answer is not retried)", n)
			}
		})
	}
}

func TestGetIntegrationRetriesAndFails(t *testing.T) {
	srv := newScriptServer(t,
		reply{status: 502},
		reply{status: 404, body: `{"code": 404, "title": "Not found.", "message": "Integration not found.", "trace_id": "tr-404"}`})
	c, _ := newClient(t, srv.URL, nil)
	_, err := c.GetIntegration(context.Background(), tok(), "1161")
	var ae *hood.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("GetIntegration: got %v, want an *APIError", err)
	}
	got := []any{ae.Method, ae.ID, ae.StatusCode, ae.Code, ae.Message, ae.TraceID, ae.Attempts}
	want := []any{"GET", "1161", 404, 404, "Integration not found.", "tr-404", 2}
	if !slices.Equal(got, want) {
		t.Errorf("APIError fields: got %v, want %v", got, want)
	}
}
