package providertest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/secret"
)

func TestTwilioServerErrorShapes(t *testing.T) {
	const sid = "AC0123456789abcdef0123456789abcdef"
	s := NewTwilioServer(TwilioServerOptions{})
	defer s.Close()
	s.SeedAccount(sid, secret.New("primary"))
	for _, tt := range []struct {
		name, method, path, user, pass string
		status, code                   int
		message                        string
	}{
		{"bad token", "GET", "/2010-04-01/Accounts/" + sid + ".json", sid, "nope", 401, 20003, "Authenticate"},
		{"no auth", "POST", "/v1/AuthTokens/Secondary", "", "", 401, 20003, "Authenticate"},
		{"other account", "GET", "/2010-04-01/Accounts/ACother.json", sid, "primary", 404, 20404, "The requested resource"},
		{"wrong method", "GET", "/v1/AuthTokens/Promote", sid, "primary", 405, 20004, "Method not allowed"},
		{"unknown path", "GET", "/v1/Nope", sid, "primary", 404, 20404, "The requested resource"},
		{"promote without secondary", "POST", "/v1/AuthTokens/Promote", sid, "primary", 400, 20400, "No secondary"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, s.URL()+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.user != "" {
				req.SetBasicAuth(tt.user, tt.pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Code     int    `json:"code"`
				Message  string `json:"message"`
				MoreInfo string `json:"more_info"`
				Status   int    `json:"status"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if resp.StatusCode != tt.status || body.Status != tt.status || body.Code != tt.code || !strings.HasPrefix(body.Message, tt.message) || body.MoreInfo == "" {
				t.Errorf("got HTTP %d %+v, want HTTP %d code %d message %q", resp.StatusCode, body, tt.status, tt.code, tt.message)
			}
			if got := resp.Header.Get("WWW-Authenticate"); (tt.status == 401) != (got != "") {
				t.Errorf("WWW-Authenticate: got %q for HTTP %d", got, resp.StatusCode)
			}
		})
	}
}
