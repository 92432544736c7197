package hoodtest

import (
	"strings"

	"github.com/ocamba-rotator/rotator/internal/hood"
)

// ErrorBody is the documented body of every non-2xx answer.
type ErrorBody struct {
	Code    int    `json:"code"`
	Title   string `json:"title"`
	Message string `json:"message,omitempty"`
	TraceID string `json:"trace_id"`
}

// integrationJSON is the integration object of Get Integration, in the
// documentation's field order.
type integrationJSON struct {
	ID              string            `json:"id"`
	CompanyID       string            `json:"company_id"`
	Name            string            `json:"name"`
	Type            string            `json:"type"`
	ProviderID      string            `json:"provider_id"`
	Status          string            `json:"status"`
	EffectiveStatus string            `json:"effective_status"`
	IsDefault       bool              `json:"is_default"`
	CreateTime      string            `json:"create_time"`
	Provider        providerJSON      `json:"provider"`
	Settings        map[string]string `json:"settings"`
}

type providerJSON struct {
	ID       string      `json:"id"`
	Type     string      `json:"type"`
	Name     string      `json:"name"`
	Settings []fieldJSON `json:"settings"`
}

type fieldJSON struct {
	Title      string `json:"title"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Required   bool   `json:"required"`
	Deprecated bool   `json:"deprecated"`
}

type listJSON[T any] struct {
	Total int `json:"total"`
	Items []T `json:"items"`
}

// integrationObject renders an integration; secret settings are masked.
// The caller holds s.mu.
func (s *Server) integrationObject(in *integration) integrationJSON {
	documented, _ := hood.LookupProvider(in.ProviderKey)
	settings := make(map[string]string, len(in.Settings))
	for k, v := range in.Settings {
		f, ok := in.provider.Field(k)
		d, _ := documented.Field(k) // a secret stays masked after SetProviderSettings
		if (ok && f.Secret) || d.Secret {
			v = MaskedValue
		}
		settings[k] = v
	}
	p := s.providerObject(in.provider)
	return integrationJSON{
		ID:              in.ID,
		CompanyID:       s.companyID,
		Name:            in.Name,
		Type:            in.provider.Type,
		ProviderID:      p.ID,
		Status:          in.Status,
		EffectiveStatus: in.EffectiveStatus,
		IsDefault:       false,
		CreateTime:      in.createTime.Format("2006-01-02 15:04:05"),
		Provider:        p,
		Settings:        settings,
	}
}

// providerObject renders a provider under the name the server reports for
// it. The caller holds s.mu.
func (s *Server) providerObject(p hood.Provider) providerJSON {
	id, _ := ProviderID(p.Key)
	if name, ok := s.providerNames[p.Key]; ok {
		p.Name = name
	}
	fields := make([]fieldJSON, len(p.Fields))
	for i, f := range p.Fields {
		fields[i] = fieldJSON{Title: fieldTitle(f.Name), Name: f.Name, Type: "string", Required: true}
	}
	return providerJSON{ID: id, Type: p.Type, Name: p.Name, Settings: fields}
}

// fieldTitle turns a field name into its display title: "account_sid" is
// "Account SID", "api_key" is "API Key".
func fieldTitle(name string) string {
	words := strings.Split(name, "_")
	for i, w := range words {
		switch w {
		case "sid", "api", "smtp", "id":
			words[i] = strings.ToUpper(w)
		default:
			if w != "" {
				words[i] = strings.ToUpper(w[:1]) + w[1:]
			}
		}
	}
	return strings.Join(words, " ")
}
