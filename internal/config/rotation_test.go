package config_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
)

// rotationHead is a configuration without integrations or rotations: each
// test appends its own.
const rotationHead = `vault:
  address: http://127.0.0.1:8200
  auth: {method: token, token_file: /run/vault-token}
hood:
  token: {env: HOOD_TOKEN}
`

// parseValid parses and validates a configuration, failing the test on
// any problem.
func parseValid(t *testing.T, yaml string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(rotationHead+yaml), testEnv)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if err := c.Validate(testEnv); err != nil {
		t.Fatalf("validate: %v", err)
	}
	return c
}

func TestRotationDefaults(t *testing.T) {
	const sendgrid = `integrations:
  - {name: sendgrid, id: "1172", provider: sendgrid_email, source: {mount: secret, path: ocamba/sendgrid}}
`
	tests := []struct {
		name    string
		yaml    string
		want    config.Rotation
		records config.RotationRecords
	}{
		{
			name: "everything left out",
			yaml: sendgrid + `rotations:
  - name: sendgrid
    provider: sendgrid_email
    secret: {mount: secret, path: ocamba/sendgrid}
    manager: {mount: secret, path: rotator/sendgrid-admin, key: api_key}
rotation_records: {mount: secret, path: rotator/rotations}
`,
			want: config.Rotation{
				Name: "sendgrid", Provider: "sendgrid_email",
				Secret:    config.Source{Mount: "secret", Path: "ocamba/sendgrid", KVVersion: 2},
				Manager:   &config.SecretRef{Mount: "secret", Path: "rotator/sendgrid-admin", Key: "api_key", KVVersion: 2},
				Grace:     config.Duration(15 * time.Minute),
				KeyPrefix: "rotator-sendgrid-",
			},
			records: config.RotationRecords{Mount: "secret", Path: "rotator/rotations"},
		},
		{
			name: "everything set",
			yaml: sendgrid + `rotations:
  - name: sendgrid
    provider: sendgrid_email
    secret: {mount: secret, path: ocamba/sendgrid, kv_version: 2}
    manager: {mount: kv, path: rotator/sendgrid-admin, key: admin_key, kv_version: 1}
    schedule: "0 4 1 * *"
    grace: 1h
    key_prefix: hood-sg-
    max_age: 2160h
rotation_records: {mount: secret, path: rotator/rotations}
`,
			want: config.Rotation{
				Name: "sendgrid", Provider: "sendgrid_email",
				Secret:    config.Source{Mount: "secret", Path: "ocamba/sendgrid", KVVersion: 2},
				Manager:   &config.SecretRef{Mount: "kv", Path: "rotator/sendgrid-admin", Key: "admin_key", KVVersion: 1},
				Schedule:  "0 4 1 * *",
				Grace:     config.Duration(time.Hour),
				KeyPrefix: "hood-sg-",
				MaxAge:    config.Duration(2160 * time.Hour),
			},
			records: config.RotationRecords{Mount: "secret", Path: "rotator/rotations"},
		},
		{
			name: "grace written as 0 stays 0",
			yaml: sendgrid + `rotations:
  - name: sendgrid
    provider: sendgrid_email
    secret: {mount: secret, path: ocamba/sendgrid}
    manager: {mount: secret, path: rotator/sendgrid-admin, key: api_key}
    grace: 0s
rotation_records: {mount: secret, path: rotator/rotations}
`,
			want: config.Rotation{
				Name: "sendgrid", Provider: "sendgrid_email",
				Secret:    config.Source{Mount: "secret", Path: "ocamba/sendgrid", KVVersion: 2},
				Manager:   &config.SecretRef{Mount: "secret", Path: "rotator/sendgrid-admin", Key: "api_key", KVVersion: 2},
				KeyPrefix: "rotator-sendgrid-",
			},
			records: config.RotationRecords{Mount: "secret", Path: "rotator/rotations"},
		},
		{
			name: "records under ha.path with ha.mode vault",
			yaml: `integrations:
  - {name: twilio-main, id: "1161", provider: twilio_sms, source: {mount: secret, path: ocamba/twilio-main}}
rotations:
  - {name: twilio-main, provider: twilio_sms, secret: {mount: secret, path: ocamba/twilio-main}, dedicated_account: true}
ha: {mode: vault, mount: secret, path: rotator/leases, identity: web-1}
`,
			want: config.Rotation{
				Name: "twilio-main", Provider: "twilio_sms",
				Secret:           config.Source{Mount: "secret", Path: "ocamba/twilio-main", KVVersion: 2},
				Grace:            config.Duration(config.DefaultGrace),
				KeyPrefix:        "rotator-twilio-main-",
				DedicatedAccount: true,
			},
			records: config.RotationRecords{Mount: "secret", Path: "rotator/leases/rotations"},
		},
		{
			name: "records written with ha.mode vault win",
			yaml: `integrations:
  - {name: twilio-main, id: "1161", provider: twilio_sms, source: {mount: secret, path: ocamba/twilio-main}}
rotations:
  - {name: twilio-main, provider: twilio_sms, secret: {mount: secret, path: ocamba/twilio-main}, dedicated_account: true}
ha: {mode: vault, mount: secret, path: rotator/leases, identity: web-1}
rotation_records: {mount: kv2, path: rotator/rotations}
`,
			want: config.Rotation{
				Name: "twilio-main", Provider: "twilio_sms",
				Secret:           config.Source{Mount: "secret", Path: "ocamba/twilio-main", KVVersion: 2},
				Grace:            config.Duration(config.DefaultGrace),
				KeyPrefix:        "rotator-twilio-main-",
				DedicatedAccount: true,
			},
			records: config.RotationRecords{Mount: "kv2", Path: "rotator/rotations"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseValid(t, tt.yaml)
			if len(c.Rotations) != 1 {
				t.Fatalf("got %d rotations, want 1", len(c.Rotations))
			}
			check(t, "rotations[0]", c.Rotations[0], tt.want)
			check(t, "rotation_records", c.RotationRecords, tt.records)
			r, ok := c.Rotation(tt.want.Name)
			if !ok || !reflect.DeepEqual(r, tt.want) {
				t.Errorf("Rotation(%q): got %+v, %v; want %+v, true", tt.want.Name, r, ok, tt.want)
			}
		})
	}

	t.Run("no rotations: no records", func(t *testing.T) {
		c := parseValid(t, `integrations:
  - {name: twilio-main, id: "1161", provider: twilio_sms, source: {mount: secret, path: ocamba/twilio-main}}
ha: {mode: vault, mount: secret, path: rotator/leases, identity: web-1}
`)
		check(t, "rotation_records", c.RotationRecords, config.RotationRecords{})
		if _, ok := c.Rotation("twilio-main"); ok {
			t.Errorf("Rotation(twilio-main): got one, want none")
		}
	})

	t.Run("in code, idempotent", func(t *testing.T) {
		c := &config.Config{
			HA:        config.HA{Mode: config.HAModeVault, Mount: "secret", Path: "/rotator/leases/"},
			Rotations: []config.Rotation{{Name: "sg", Manager: &config.SecretRef{}}},
		}
		c.ApplyDefaults(nil)
		c.ApplyDefaults(nil)
		r := c.Rotations[0]
		check(t, "grace", r.Grace.D(), config.DefaultGrace)
		check(t, "key_prefix", r.KeyPrefix, "rotator-sg-")
		check(t, "secret.kv_version", r.Secret.KVVersion, config.DefaultKVVersion)
		check(t, "manager.kv_version", r.Manager.KVVersion, config.DefaultKVVersion)
		check(t, "rotation_records", c.RotationRecords, config.RotationRecords{Mount: "secret", Path: "rotator/leases/rotations"})
	})
}

// rotationConsumers is a configuration with two rotated secrets and an
// integration that reads neither.
const rotationConsumers = `integrations:
  - {name: sg-a, id: "1", provider: sendgrid_email, source: {mount: secret, path: ocamba/sendgrid}, fields: {api_key: key}}
  - {name: tg, id: "2", provider: telegram, source: {mount: secret, path: ocamba/telegram}, max_age: 720h}
  - {name: sg-b, id: "3", provider: sendgrid_email, source: {mount: secret, path: ocamba/sendgrid}, fields: {api_key: key}, max_age: 24h}
  - {name: tw, id: "4", provider: twilio_sms, source: {mount: secret, path: ocamba/twilio}}
  - {name: tw-v1, id: "5", provider: twilio_sms, source: {mount: kv, path: ocamba/twilio, kv_version: 1}}
rotations:
  - name: sendgrid
    provider: sendgrid_email
    secret: {mount: secret, path: ocamba/sendgrid}
    manager: {mount: secret, path: rotator/sendgrid-admin, key: api_key}
    max_age: 2160h
  - {name: twilio, provider: twilio_sms, secret: {mount: secret, path: ocamba/twilio}, dedicated_account: true}
rotation_records: {mount: secret, path: rotator/rotations}
`

func TestRotationConsumersAndCredentialKey(t *testing.T) {
	c := parseValid(t, rotationConsumers)
	names := func(ins []config.Integration) []string {
		var out []string
		for _, in := range ins {
			out = append(out, in.Name)
		}
		return out
	}
	tests := []struct {
		rotation  string
		consumers []string
		key       string
	}{
		{"sendgrid", []string{"sg-a", "sg-b"}, "key"}, // file order; the key fields maps api_key to
		{"twilio", []string{"tw"}, "auth_token"},      // no fields: the setting's own name; tw-v1 reads another secret
	}
	for _, tt := range tests {
		t.Run(tt.rotation, func(t *testing.T) {
			r, ok := c.Rotation(tt.rotation)
			if !ok {
				t.Fatalf("Rotation(%q): none", tt.rotation)
			}
			check(t, "Consumers", names(c.Consumers(r)), tt.consumers)
			check(t, "CredentialKey", c.CredentialKey(r), tt.key)
		})
	}

	t.Run("no consumer", func(t *testing.T) {
		r := config.Rotation{Provider: "mailgun_email", Secret: config.Source{Mount: "secret", Path: "nowhere", KVVersion: 2}}
		if got := c.Consumers(r); got != nil {
			t.Errorf("Consumers: got %v, want none", names(got))
		}
		check(t, "CredentialKey", c.CredentialKey(r), "api_key")
	})
	t.Run("slashes and a zero kv_version name the same secret", func(t *testing.T) {
		r := config.Rotation{Provider: "twilio_sms", Secret: config.Source{Mount: "/secret/", Path: "ocamba/twilio/"}}
		check(t, "Consumers", names(c.Consumers(r)), []string{"tw"})
	})
}

func TestEffectiveMaxAge(t *testing.T) {
	c := parseValid(t, rotationConsumers)
	tests := []struct {
		integration string
		want        time.Duration
	}{
		{"sg-a", 2160 * time.Hour}, // none of its own: the rotation's
		{"sg-b", 24 * time.Hour},   // its own wins over the rotation's
		{"tg", 720 * time.Hour},    // its own; no rotation
		{"tw", 0},                  // neither it nor its rotation sets one
		{"tw-v1", 0},               // not read by a rotation
	}
	for _, tt := range tests {
		t.Run(tt.integration, func(t *testing.T) {
			for _, in := range c.Integrations {
				if in.Name == tt.integration {
					check(t, "EffectiveMaxAge", c.EffectiveMaxAge(in), tt.want)
					return
				}
			}
			t.Fatalf("no integration %q", tt.integration)
		})
	}
}

func TestSettingKey(t *testing.T) {
	in := config.Integration{Fields: map[string]string{"api_key": "sendgrid_key"}}
	check(t, "mapped", in.SettingKey("api_key"), "sendgrid_key")
	check(t, "not mapped", in.SettingKey("default_sender_email"), "default_sender_email")
}
