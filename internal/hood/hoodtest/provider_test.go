package hoodtest_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
)

// liveProvider is the provider object of a GET answer, or of a provider list item.
type liveProvider struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Settings []struct {
		Name string `json:"name"`
	} `json:"settings"`
}

func (p liveProvider) names() []string {
	var out []string
	for _, s := range p.Settings {
		out = append(out, s.Name)
	}
	return out
}

// getProvider reads integration id and returns its provider object and settings.
func getProvider(t *testing.T, s *hoodtest.Server, id string) (liveProvider, map[string]string, []byte) {
	t.Helper()
	a := get("/v1/hood/integrations/"+id).must(t, s)
	if a.status != http.StatusOK {
		t.Fatalf("GET %s: got status %d, want 200", id, a.status)
	}
	var obj struct {
		Provider liveProvider      `json:"provider"`
		Settings map[string]string `json:"settings"`
	}
	if err := json.Unmarshal(a.body, &obj); err != nil {
		t.Fatalf("GET %s: %v", id, err)
	}
	return obj.Provider, obj.Settings, a.body
}

// listedNames returns provider.name of every provider list item, by provider id.
func listedNames(t *testing.T, s *hoodtest.Server) map[string]string {
	t.Helper()
	a := get("/v1/hood/providers").must(t, s)
	var list struct {
		Items []liveProvider `json:"items"`
	}
	if err := json.Unmarshal(a.body, &list); err != nil {
		t.Fatalf("GET providers: %v", err)
	}
	out := map[string]string{}
	for _, p := range list.Items {
		out[p.ID] = p.Name
	}
	return out
}

func TestProviderNames(t *testing.T) {
	s := start(t, hoodtest.Options{ProviderNames: map[string]string{"sendgrid_email": "SendGrid v3", "twilio_sms": ""}})
	if err := s.AddIntegration("1163", "mailgun_email", nil); err != nil {
		t.Fatal(err)
	}
	check := func(when string, want map[string]string) {
		t.Helper()
		listed := listedNames(t, s)
		for id, name := range want {
			p, _, _ := getProvider(t, s, id)
			if p.Name != name {
				t.Errorf("%s: integration %s: got provider.name %q, want %q", when, id, p.Name, name)
			}
			if got := listed[p.ID]; got != name {
				t.Errorf("%s: provider list: provider %s got name %q, want %q", when, p.ID, got, name)
			}
		}
	}
	check("from Options", map[string]string{"1161": "", "1162": "SendGrid v3", "1163": "mailgun"})
	if err := s.SetProviderName("mailgun_email", "Mailgun"); err != nil {
		t.Fatalf("SetProviderName: got error %v, want nil", err)
	}
	check("after SetProviderName", map[string]string{"1161": "", "1162": "SendGrid v3", "1163": "Mailgun"})
	if err := s.SetProviderName("pigeon_post", "x"); err == nil {
		t.Errorf("SetProviderName of an unknown provider: got nil error, want one")
	}
	if _, err := hoodtest.Start(hoodtest.Options{Tokens: []string{"t"}, ProviderNames: map[string]string{"pigeon_post": "x"}}); err == nil {
		t.Errorf("Start with a name for an unknown provider: got nil error, want one")
	}
}

func TestSetProviderSettings(t *testing.T) {
	s := start(t, hoodtest.Options{})
	// sendgrid_email loses default_reply_to_email and api_key, gains region.
	live := []string{"default_sender_email", "default_sender_name", "region"}
	if err := s.SetProviderSettings("1162", live...); err != nil {
		t.Fatalf("SetProviderSettings: got error %v, want nil", err)
	}
	p, settings, body := getProvider(t, s, "1162")
	if got := p.names(); !slices.Equal(got, live) {
		t.Errorf("provider.settings: got %v, want %v", got, live)
	}
	if settings["api_key"] != hoodtest.MaskedValue || bytes.Contains(body, []byte("SG.old")) {
		t.Errorf("stored api_key: got %q, want it still masked", settings["api_key"])
	}
	a := patch("1162", `{"settings":{"default_reply_to_email":"r@x","region":"eu","default_sender_name":"X"}}`).must(t, s)
	if a.status != http.StatusNoContent {
		t.Fatalf("PATCH: got status %d, want 204", a.status)
	}
	if got, want := s.Requests()[len(s.Requests())-1].Dropped, []string{"default_reply_to_email"}; !slices.Equal(got, want) {
		t.Errorf("Dropped: got %v, want %v", got, want)
	}
	in, _ := s.Integration("1162")
	if in.Settings["region"] != "eu" || in.Settings["default_sender_name"] != "X" {
		t.Errorf("stored settings: got region %q, default_sender_name %q, want eu and X", in.Settings["region"], in.Settings["default_sender_name"])
	}
	// The other integrations keep the documented schema.
	if p, _, _ := getProvider(t, s, "1161"); !slices.Equal(p.names(), []string{"account_sid", "auth_token", "default_phone_number"}) {
		t.Errorf("twilio provider.settings: got %v, want the documented ones", p.names())
	}
	if err := s.SetProviderSettings("999", "x"); err == nil {
		t.Errorf("SetProviderSettings of an unknown integration: got nil error, want one")
	}
}
