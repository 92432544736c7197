package hood_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/hood"
)

// liveOf is the provider object Hood would report for p, under another
// name and with the given setting names.
func liveOf(name string, settings ...string) hood.ProviderInfo {
	info := hood.ProviderInfo{ID: "1005", Type: "email", Name: name}
	for _, s := range settings {
		info.Settings = append(info.Settings, hood.SettingInfo{Name: s, Type: "string"})
	}
	return info
}

func TestProviderSchemasAllDiffer(t *testing.T) {
	ps := hood.Providers()
	if len(ps) != 7 {
		t.Fatalf("providers: got %d, want the 7 documented ones", len(ps))
	}
	for i, a := range ps {
		if !slices.IsSorted(a.FieldNames()) {
			t.Errorf("provider %s: settings %v are not sorted", a.Key, a.FieldNames())
		}
		for _, b := range ps[i+1:] {
			if slices.Equal(a.FieldNames(), b.FieldNames()) {
				t.Errorf("providers %s and %s have the same settings %v: the live schema cannot tell them apart", a.Key, b.Key, a.FieldNames())
			}
		}
	}
}

func TestMatchLiveEveryProvider(t *testing.T) {
	for _, p := range hood.Providers() {
		t.Run(p.Key, func(t *testing.T) {
			// The expected name, matched case-insensitively: no note.
			for _, name := range []string{p.Name, strings.ToUpper(p.Name)} {
				note, err := hood.MatchLive(p, liveOf(name, p.FieldNames()...))
				if err != nil || note != "" {
					t.Errorf("name %q: got note %q, error %v; want neither", name, note, err)
				}
			}
			// Another name, same settings (in another order): a note, no error.
			names := slices.Clone(p.FieldNames())
			slices.Reverse(names)
			note, err := hood.MatchLive(p, liveOf("other-"+p.Name, names...))
			if err != nil {
				t.Fatalf("another name: got error %v, want nil", err)
			}
			want := `Hood names the provider "other-` + p.Name + `" (provider id 1005), rotator expected "` + p.Name + `"; its settings match provider ` + p.Key
			if note != want {
				t.Errorf("another name: got note %q, want %q", note, want)
			}
			// Every other provider's settings, even under p's own name: an error.
			for _, o := range hood.Providers() {
				if o.Key == p.Key {
					continue
				}
				_, err := hood.MatchLive(p, liveOf(p.Name, o.FieldNames()...))
				if !errors.Is(err, hood.ErrSchemaMismatch) {
					t.Fatalf("settings of %s: got error %v, want ErrSchemaMismatch", o.Key, err)
				}
				if want := "they are the settings of provider " + o.Key; !strings.Contains(err.Error(), want) {
					t.Errorf("settings of %s: got %q, want it to contain %q", o.Key, err, want)
				}
			}
		})
	}
}

func TestMatchLiveMismatch(t *testing.T) {
	mailgun, _ := hood.LookupProvider("mailgun_email")
	tests := []struct {
		name string
		live hood.ProviderInfo
		want string // the whole error text
	}{
		{
			name: "a field more",
			live: liveOf("mailgun", "sender_name", "api_key", "domain", "region", "sender_email"),
			want: `live provider settings differ: Hood's provider "mailgun" (provider id 1005) has settings api_key, domain, region, sender_email, sender_name; provider mailgun_email (expected name "mailgun") has api_key, domain, sender_email, sender_name`,
		},
		{
			name: "a field less, another name",
			live: liveOf("mg", "api_key", "domain", "sender_email"),
			want: `live provider settings differ: Hood's provider "mg" (provider id 1005) has settings api_key, domain, sender_email; provider mailgun_email (expected name "mailgun") has api_key, domain, sender_email, sender_name`,
		},
		{
			name: "no settings",
			live: hood.ProviderInfo{Name: "mailgun"},
			want: `live provider settings differ: Hood's provider "mailgun" has settings (none); provider mailgun_email (expected name "mailgun") has api_key, domain, sender_email, sender_name`,
		},
		{
			name: "odd names are quoted",
			live: liveOf("mailgun\n", "api_key", "Domain \"x\"", "sender_email", "sender_name"),
			want: `live provider settings differ: Hood's provider "mailgun\n" (provider id 1005) has settings "Domain \"x\"", api_key, sender_email, sender_name; provider mailgun_email (expected name "mailgun") has api_key, domain, sender_email, sender_name`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			note, err := hood.MatchLive(mailgun, tt.live)
			if !errors.Is(err, hood.ErrSchemaMismatch) {
				t.Fatalf("got error %v, want ErrSchemaMismatch", err)
			}
			if err.Error() != tt.want {
				t.Errorf("got %q,\nwant %q", err, tt.want)
			}
			if note != "" {
				t.Errorf("got note %q, want none with an error", note)
			}
		})
	}
}

func TestMatchLiveRepeatedAndManySettings(t *testing.T) {
	tg, _ := hood.LookupProvider("telegram")
	if note, err := hood.MatchLive(tg, liveOf("telegram", "chat_id", "auth_token", "chat_id")); err != nil || note != "" {
		t.Errorf("a setting listed twice: got note %q, error %v; want neither", note, err)
	}
	var many []string
	for i := range 100 {
		many = append(many, "f"+strings.Repeat("x", i%5)+string(rune('a'+i%26))+strings.Repeat("0", i/26))
	}
	_, err := hood.MatchLive(tg, liveOf("telegram", many...))
	if err == nil || !strings.Contains(err.Error(), " more; provider telegram") {
		t.Errorf("100 live settings: got %v, want the list cut short with a count of the rest", err)
	}
}
