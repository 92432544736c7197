package providertest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/provider/providertest"
)

const mailgunTestManager = "key-manager-secret"

// mailgunCall sends one request with Basic auth user/pass and returns the
// status and the decoded JSON body.
func mailgunCall(t *testing.T, method, u, user, pass, ctype string, body io.Reader) (int, map[string]any, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, string(raw)
}

func mailgunMultipart(fields map[string]string) (io.Reader, string) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	_ = mw.Close()
	return &buf, mw.FormDataContentType()
}

func TestMailgunServer(t *testing.T) {
	srv := providertest.NewMailgunServer(providertest.MailgunServerOptions{KeyLimit: 3, SecretPrefix: "minted-"})
	defer srv.Close()
	srv.AddDomain("mg.example.com")
	srv.SeedManagingKey(mailgunTestManager)
	sending := srv.SeedKey(providertest.MailgunServerKey{Kind: "domain", Role: "sending", DomainName: "mg.example.com", Secret: "key-sending"})
	keysURL := srv.URL() + "/v1/keys"
	create := map[string]string{"kind": "domain", "role": "sending", "domain_name": "mg.example.com", "description": "d"}
	jsonBody, _ := json.Marshal(create)
	form := url.Values{}
	for k, v := range create {
		form.Set(k, v)
	}

	tests := []struct {
		name       string
		method     string
		url        string
		user, pass string
		body       func() (io.Reader, string)
		wantStatus int
		wantMsg    string // a part of the {"message"} of an error
	}{
		{"no auth", http.MethodGet, srv.URL() + "/v3/domains/mg.example.com", "", "", nil, 401, "Invalid private key"},
		{"wrong user", http.MethodGet, srv.URL() + "/v3/domains/mg.example.com", "key", mailgunTestManager, nil, 401, "Invalid private key"},
		{"wrong key", http.MethodGet, srv.URL() + "/v3/domains/mg.example.com", "api", "nope", nil, 401, "Invalid private key"},
		{"domain read", http.MethodGet, srv.URL() + "/v3/domains/mg.example.com", "api", mailgunTestManager, nil, 200, ""},
		{"unknown domain", http.MethodGet, srv.URL() + "/v3/domains/x.example.com", "api", mailgunTestManager, nil, 404, "not found"},
		{"sending key domain read", http.MethodGet, srv.URL() + "/v3/domains/mg.example.com", "api", "key-sending", nil, 403, "Forbidden"},
		{"sending key mints", http.MethodPost, keysURL, "api", "key-sending", func() (io.Reader, string) { return mailgunMultipart(create) }, 403, "may not manage"},
		{"sending key lists", http.MethodGet, keysURL, "api", "key-sending", nil, 403, "may not manage"},
		{"create JSON", http.MethodPost, keysURL, "api", mailgunTestManager, func() (io.Reader, string) { return bytes.NewReader(jsonBody), "application/json" }, 400, "multipart"},
		{"create urlencoded", http.MethodPost, keysURL, "api", mailgunTestManager, func() (io.Reader, string) {
			return strings.NewReader(form.Encode()), "application/x-www-form-urlencoded"
		}, 400, "multipart"},
		{"create without role", http.MethodPost, keysURL, "api", mailgunTestManager, func() (io.Reader, string) {
			return mailgunMultipart(map[string]string{"kind": "domain", "domain_name": "mg.example.com"})
		}, 400, "role"},
		{"create for unknown domain", http.MethodPost, keysURL, "api", mailgunTestManager, func() (io.Reader, string) {
			return mailgunMultipart(map[string]string{"kind": "domain", "role": "sending", "domain_name": "x.example.com"})
		}, 404, "domain"},
		{"create", http.MethodPost, keysURL, "api", mailgunTestManager, func() (io.Reader, string) { return mailgunMultipart(create) }, 200, ""},
		{"create past the limit", http.MethodPost, keysURL, "api", mailgunTestManager, func() (io.Reader, string) { return mailgunMultipart(create) }, 400, "limit"},
		{"messages without from", http.MethodPost, srv.URL() + "/v3/mg.example.com/messages", "api", "key-sending", func() (io.Reader, string) {
			return mailgunMultipart(map[string]string{"o:testmode": "yes"})
		}, 400, "from parameter is missing"},
		{"messages for another domain", http.MethodPost, srv.URL() + "/v3/other.example.com/messages", "api", "key-sending", func() (io.Reader, string) {
			return mailgunMultipart(map[string]string{"o:testmode": "yes"})
		}, 403, "Forbidden"},
		{"delete unknown", http.MethodDelete, keysURL + "/nope", "api", mailgunTestManager, nil, 404, "not found"},
		{"delete", http.MethodDelete, keysURL + "/" + sending, "api", mailgunTestManager, nil, 200, ""},
	}
	for _, tt := range tests {
		var body io.Reader
		var ctype string
		if tt.body != nil {
			body, ctype = tt.body()
		}
		status, m, raw := mailgunCall(t, tt.method, tt.url, tt.user, tt.pass, ctype, body)
		if status != tt.wantStatus {
			t.Errorf("%s: got HTTP %d (%s), want %d", tt.name, status, raw, tt.wantStatus)
			continue
		}
		if msg, _ := m["message"].(string); tt.wantMsg != "" && !strings.Contains(msg, tt.wantMsg) {
			t.Errorf("%s: got message %q, want it to contain %q", tt.name, msg, tt.wantMsg)
		}
		if tt.name == "create" {
			k, _ := m["key"].(map[string]any)
			if s, _ := k["secret"].(string); !strings.HasPrefix(s, "minted-") || !srv.CanSend(s, "mg.example.com") {
				t.Errorf("create: got secret %q, want a minted one that may send", s)
			}
		}
	}
	if srv.HasKey(sending) || srv.Accepts("key-sending") {
		t.Errorf("deleted key: got it still held, want it gone")
	}

	// Listings carry no secrets.
	status, m, raw := mailgunCall(t, http.MethodGet, keysURL+"?domain_name=mg.example.com&kind=domain", "api", mailgunTestManager, "", nil)
	if status != 200 || strings.Contains(raw, "minted-") || strings.Contains(raw, `"secret"`) {
		t.Fatalf("list: got %d %s, want 200 without secrets", status, raw)
	}
	if n, _ := m["total_count"].(float64); n != 1 {
		t.Fatalf("list: got total_count %v, want 1", m["total_count"])
	}
	if got := srv.Sent(); got != 0 {
		t.Fatalf("Sent: got %d, want 0", got)
	}
}

func TestMailgunServerFaults(t *testing.T) {
	srv := providertest.NewMailgunServer(providertest.MailgunServerOptions{})
	defer srv.Close()
	srv.AddDomain("mg.example.com")
	srv.SeedManagingKey(mailgunTestManager)
	for _, path := range []string{"/v1/keys", "/v1/keys/x", "/v3/domains/mg.example.com", "/v3/mg.example.com/messages"} {
		srv.Inject(providertest.Fault{Path: path, Status: 429, RetryAfter: "5"})
		req, _ := http.NewRequest(http.MethodGet, srv.URL()+path, nil)
		req.SetBasicAuth("api", mailgunTestManager)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "5" || m["message"] == "" {
			t.Errorf("%s: got %d Retry-After %q %v, want 429, 5 and a message", path, resp.StatusCode, resp.Header.Get("Retry-After"), m)
		}
	}
	srv.Inject(providertest.Fault{Method: http.MethodPost, AnswerLost: true})
	body, ctype := mailgunMultipart(map[string]string{"kind": "domain", "role": "sending", "domain_name": "mg.example.com"})
	req, _ := http.NewRequest(http.MethodPost, srv.URL()+"/v1/keys", body)
	req.SetBasicAuth("api", mailgunTestManager)
	req.Header.Set("Content-Type", ctype)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("lost answer: got HTTP %d, want a reset connection", resp.StatusCode)
	}
	if got := len(srv.Keys()); got != 2 {
		t.Fatalf("lost answer: got %d keys, want 2 (the create was carried out)", got)
	}
}
