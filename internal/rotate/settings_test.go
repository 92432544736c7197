package rotate_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/secret"
	"github.com/ocamba-rotator/rotator/internal/vault"
)

const sentinel = "SENTINEL-c0ffee-secret-value"

func kvOf(data map[string]string, nonString map[string]string) *vault.KV {
	kv := &vault.KV{Mount: "secret", Path: "ocamba/x", KVVersion: 2, Version: 3, Data: map[string]secret.Value{}, NonString: nonString}
	for k, v := range data {
		kv.Data[k] = secret.New(v)
	}
	return kv
}

func reveal(m map[string]secret.Value) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v.Reveal()
	}
	return out
}

func TestBuildSettings(t *testing.T) {
	tests := []struct {
		name      string
		in        config.Integration
		data      map[string]string
		nonString map[string]string
		want      map[string]string
		wantErr   string // substring; "" = success
		wantWarn  []string
	}{
		{
			name: "direct keys, extra key ignored with a warning",
			in:   config.Integration{Provider: "sendgrid_email"},
			data: map[string]string{"api_key": sentinel, "default_sender_email": "a@b.c", "owner": "team"},
			want: map[string]string{"api_key": sentinel, "default_sender_email": "a@b.c"},
			wantWarn: []string{
				`vault key "owner" of secret/ocamba/x (version 3) is not a setting of provider sendgrid_email and is not mapped: ignored`,
				`setting "default_reply_to_email" of provider sendgrid_email is not provided; it is left as Hood has it`,
				`setting "default_sender_name" of provider sendgrid_email is not provided; it is left as Hood has it`,
			},
		},
		{
			name: "rename through fields, static added",
			in: config.Integration{Provider: "twilio_sms",
				Fields: map[string]string{"auth_token": "token"},
				Static: map[string]string{"default_phone_number": "+14155550100"}},
			data: map[string]string{"token": sentinel, "account_sid": "AC1", "default_phone_number": "+1999"},
			want: map[string]string{"auth_token": sentinel, "account_sid": "AC1", "default_phone_number": "+14155550100"},
		},
		{
			name:    "mapped key missing",
			in:      config.Integration{Provider: "twilio_sms", Fields: map[string]string{"auth_token": "token"}},
			data:    map[string]string{"account_sid": "AC1"},
			wantErr: `vault key "token" (for setting "auth_token") is missing from secret/ocamba/x (version 3)`,
		},
		{
			name:    "mapped key empty",
			in:      config.Integration{Provider: "twilio_sms", Fields: map[string]string{"auth_token": "token"}},
			data:    map[string]string{"token": "", "account_sid": "AC1"},
			wantErr: `vault key "token" (for setting "auth_token") is empty`,
		},
		{
			name:    "direct key empty",
			in:      config.Integration{Provider: "telegram"},
			data:    map[string]string{"auth_token": "", "chat_id": "1"},
			wantErr: `vault key "auth_token" (for setting "auth_token") is empty`,
		},
		{
			name:      "non-string value",
			in:        config.Integration{Provider: "custom_email_provider"},
			data:      map[string]string{"password": sentinel},
			nonString: map[string]string{"port": "number"},
			wantErr:   `vault key "port" of secret/ocamba/x (version 3) is a number, want a string`,
		},
		{
			name:    "field of another provider refused",
			in:      config.Integration{Provider: "mailgun_email", Fields: map[string]string{"api_kye": "k"}},
			data:    map[string]string{"k": sentinel},
			wantErr: `setting "api_kye" is not a setting of provider mailgun_email (Hood would drop it silently)`,
		},
		{
			name:    "static secret refused",
			in:      config.Integration{Provider: "telegram", Static: map[string]string{"auth_token": "x"}},
			data:    map[string]string{"chat_id": "1"},
			wantErr: `static setting "auth_token" is a secret of provider telegram and must come from Vault`,
		},
		{
			name:    "empty secret",
			in:      config.Integration{Provider: "mitto_sms"},
			data:    map[string]string{},
			wantErr: `secret secret/ocamba/x (version 3) is empty`,
		},
		{
			name:    "nothing of the provider",
			in:      config.Integration{Provider: "mitto_sms"},
			data:    map[string]string{"api_key": sentinel},
			wantErr: `has none of the settings of provider mitto_sms`,
		},
		{
			name:    "unknown provider",
			in:      config.Integration{Provider: "pigeon"},
			data:    map[string]string{"a": "b"},
			wantErr: `unknown provider "pigeon"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := rotate.BuildSettings(tt.in, kvOf(tt.data, tt.nonString))
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("got settings %v, want error containing %q", got.Names(), tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("got error %q, want it to contain %q", err, tt.wantErr)
				}
				if !errors.Is(err, rotate.ErrSettings) {
					t.Errorf("got error %v, want it to wrap ErrSettings", err)
				}
				if strings.Contains(err.Error(), sentinel) {
					t.Errorf("error contains the secret value")
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if g := reveal(got.Settings); !reflect.DeepEqual(g, tt.want) {
				t.Errorf("got settings %v, want %v", got.Names(), tt.want)
			}
			if tt.wantWarn != nil && !reflect.DeepEqual(got.Warnings, tt.wantWarn) {
				t.Errorf("got warnings\n%q\nwant\n%q", got.Warnings, tt.wantWarn)
			}
			for _, w := range got.Warnings {
				if strings.Contains(w, sentinel) {
					t.Errorf("warning contains the secret value")
				}
			}
		})
	}
}

func TestBuildSettingsReportsEveryProblem(t *testing.T) {
	in := config.Integration{Provider: "twilio_sms", Fields: map[string]string{"auth_token": "token", "account_sid": "sid"}}
	_, err := rotate.BuildSettings(in, kvOf(map[string]string{"unrelated": "x"}, nil))
	if err == nil {
		t.Fatal("got no error, want two problems")
	}
	for _, want := range []string{`vault key "sid"`, `vault key "token"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got %q, want it to mention %s", err, want)
		}
	}
}

// FuzzBuildSettings: whatever the secret and the mapping, BuildSettings never
// panics, never pushes a setting its provider lacks, and never puts a value
// in an error.
func FuzzBuildSettings(f *testing.F) {
	f.Add("twilio_sms", "auth_token", "token", "token", sentinel, "account_sid", "AC1")
	f.Add("telegram", "", "", "auth_token", "", "chat_id", "1")
	f.Add("mailgun_email", "api_kye", "k", "k", sentinel, "domain", "")
	f.Fuzz(func(t *testing.T, provider, setting, vkey, k1, v1, k2, v2 string) {
		in := config.Integration{Provider: provider}
		if setting != "" {
			in.Fields = map[string]string{setting: vkey}
		}
		// Values carry the sentinel; names only when the fuzzer puts it there.
		kv := kvOf(map[string]string{k1: sentinel + v1, k2: v2}, nil)
		got, err := rotate.BuildSettings(in, kv)
		if err != nil {
			if strings.Contains(err.Error(), sentinel) && !strings.Contains(k1+k2+vkey+setting+provider, "SENTINEL") {
				t.Fatalf("error %q contains a value", err)
			}
			return
		}
		for name := range got.Settings {
			if !providerHas(provider, name) {
				t.Fatalf("setting %q is not a setting of %s", name, provider)
			}
			if got.Settings[name].IsZero() {
				t.Fatalf("setting %q is empty", name)
			}
		}
	})
}
