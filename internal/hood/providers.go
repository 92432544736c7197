package hood

import "sort"

// Field is one settings field of a provider.
type Field struct {
	Name   string
	Secret bool
}

// Provider is the settings schema of one Hood provider, as documented in the
// Hood API reference (Update Integration). Every value is a JSON string.
type Provider struct {
	Key    string  // provider key used in rotator's configuration, e.g. "twilio_sms"
	Type   string  // "sms", "email" or "chat"
	Name   string  // provider name rotator expects in the API's provider object: documented for twilio only, a hint (see MatchLive)
	Fields []Field // every settings field, sorted by name
}

// providers is the one place where the provider schemas live. Fields are
// sorted by name.
var providers = []Provider{
	{Key: "twilio_sms", Type: "sms", Name: "twilio", Fields: []Field{
		{Name: "account_sid"}, {Name: "auth_token", Secret: true}, {Name: "default_phone_number"},
	}},
	{Key: "custom_email_provider", Type: "email", Name: "custom", Fields: []Field{
		{Name: "default_sender_email"}, {Name: "default_sender_name"}, {Name: "password", Secret: true},
		{Name: "port"}, {Name: "sending_domain"}, {Name: "username"},
	}},
	{Key: "mandrill_email", Type: "email", Name: "mandrill", Fields: []Field{
		{Name: "api_key", Secret: true}, {Name: "default_reply_to_email"}, {Name: "default_sender_email"},
		{Name: "default_sender_name"}, {Name: "smtp_username"},
	}},
	{Key: "sendgrid_email", Type: "email", Name: "sendgrid", Fields: []Field{
		{Name: "api_key", Secret: true}, {Name: "default_reply_to_email"}, {Name: "default_sender_email"},
		{Name: "default_sender_name"},
	}},
	{Key: "mitto_sms", Type: "sms", Name: "mitto", Fields: []Field{
		{Name: "sender_name"},
	}},
	{Key: "mailgun_email", Type: "email", Name: "mailgun", Fields: []Field{
		{Name: "api_key", Secret: true}, {Name: "domain"}, {Name: "sender_email"}, {Name: "sender_name"},
	}},
	{Key: "telegram", Type: "chat", Name: "telegram", Fields: []Field{
		{Name: "auth_token", Secret: true}, {Name: "chat_id"},
	}},
}

// LookupProvider returns the schema of the provider with the given key.
func LookupProvider(key string) (Provider, bool) {
	for _, p := range providers {
		if p.Key == key {
			return p, true
		}
	}
	return Provider{}, false
}

// Providers returns every known provider, sorted by key. The slice is a copy.
func Providers() []Provider {
	out := make([]Provider, len(providers))
	copy(out, providers)
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// ProviderKeys returns the known provider keys, sorted.
func ProviderKeys() []string {
	ps := Providers()
	keys := make([]string, len(ps))
	for i, p := range ps {
		keys[i] = p.Key
	}
	return keys
}

// HasField reports whether name is a settings field of the provider.
func (p Provider) HasField(name string) bool {
	_, ok := p.Field(name)
	return ok
}

// Field returns the settings field with the given name.
func (p Provider) Field(name string) (Field, bool) {
	for _, f := range p.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// FieldNames returns the provider's settings field names, sorted.
func (p Provider) FieldNames() []string {
	names := make([]string, len(p.Fields))
	for i, f := range p.Fields {
		names[i] = f.Name
	}
	return names
}
