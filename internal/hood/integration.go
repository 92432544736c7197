package hood

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"

	"github.com/ocamba-rotator/rotator/internal/secret"
)

// Integration is the read-back of one Hood integration (GET
// /v1/hood/integrations/{id}). The values of its settings are deliberately
// not kept: only their names are, in SettingNames.
type Integration struct {
	ID              string
	CompanyID       string
	Name            string
	Type            string
	ProviderID      string
	Status          string
	EffectiveStatus string // may differ from Status when Hood's credentials test failed or has not run
	IsDefault       bool
	CreateTime      string
	Provider        ProviderInfo
	SettingNames    []string // keys of the "settings" object, sorted; values discarded
}

// ProviderInfo is the provider object inside an Integration: the live
// settings schema of the integration's provider.
type ProviderInfo struct {
	ID       string
	Type     string
	Name     string
	Settings []SettingInfo
}

// SettingInfo describes one settings field of a provider.
type SettingInfo struct {
	Title      string
	Name       string
	Type       string
	Required   bool
	Deprecated bool
}

// wireIntegration is the documented JSON form of an integration. Settings
// values stay raw and are dropped after their keys are read.
type wireIntegration struct {
	ID              string                     `json:"id"`
	CompanyID       string                     `json:"company_id"`
	Name            string                     `json:"name"`
	Type            string                     `json:"type"`
	ProviderID      string                     `json:"provider_id"`
	Status          string                     `json:"status"`
	EffectiveStatus string                     `json:"effective_status"`
	IsDefault       bool                       `json:"is_default"`
	CreateTime      string                     `json:"create_time"`
	Provider        wireProvider               `json:"provider"`
	Settings        map[string]json.RawMessage `json:"settings"`
}

type wireProvider struct {
	ID       string        `json:"id"`
	Type     string        `json:"type"`
	Name     string        `json:"name"`
	Settings []wireSetting `json:"settings"`
}

type wireSetting struct {
	Title      string `json:"title"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Required   bool   `json:"required"`
	Deprecated bool   `json:"deprecated"`
}

// GetIntegration reads integration id back. Unknown fields are ignored; a
// documented field of the wrong JSON type is an error naming the field. The
// answer must be about the integration asked for.
func (c *Client) GetIntegration(ctx context.Context, token secret.Value, id string) (*Integration, error) {
	if err := checkRequest(token, id); err != nil {
		return nil, fmt.Errorf("get integration: %w", err)
	}
	body, err := c.do(ctx, http.MethodGet, id, token, nil, []secret.Value{token})
	if err != nil {
		return nil, err
	}
	in, err := decodeIntegration(body)
	if err != nil {
		return nil, fmt.Errorf("decode integration %s: %w", id, err)
	}
	if in.ID != id {
		return nil, fmt.Errorf("decode integration %s: answer is about integration %s", id, quoteTrunc(in.ID, 40))
	}
	return in, nil
}

// decodeIntegration parses the documented integration object. Its errors
// name fields and JSON types, never values.
func decodeIntegration(body []byte) (*Integration, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errors.New("empty answer")
	}
	var w wireIntegration
	if err := json.Unmarshal(body, &w); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			if field == "" {
				field = "(top level)"
			}
			got, _, _ := strings.Cut(te.Value, " ") // "number 123": keep the kind only
			return nil, fmt.Errorf("field %q: got JSON %s, want %s: %w", field, got, jsonKind(te.Type.Kind().String()), errWrongType)
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("parse JSON at byte %d: %w", se.Offset, errBadJSON)
		}
		return nil, fmt.Errorf("parse JSON: %w", errBadJSON)
	}
	in := &Integration{
		ID:              w.ID,
		CompanyID:       w.CompanyID,
		Name:            w.Name,
		Type:            w.Type,
		ProviderID:      w.ProviderID,
		Status:          w.Status,
		EffectiveStatus: w.EffectiveStatus,
		IsDefault:       w.IsDefault,
		CreateTime:      w.CreateTime,
		Provider: ProviderInfo{
			ID:   w.Provider.ID,
			Type: w.Provider.Type,
			Name: w.Provider.Name,
		},
		SettingNames: make([]string, 0, len(w.Settings)),
	}
	for _, s := range w.Provider.Settings {
		in.Provider.Settings = append(in.Provider.Settings, SettingInfo(s))
	}
	for k := range w.Settings {
		in.SettingNames = append(in.SettingNames, k)
	}
	clear(w.Settings)
	sort.Strings(in.SettingNames)
	return in, nil
}

// errWrongType and errBadJSON are wrapped by decoding errors. Neither the
// json package's own messages (which may quote input) nor values are shown.
var (
	errWrongType = errors.New("unexpected JSON type")
	errBadJSON   = errors.New("answer is not valid JSON")
)

// jsonKind names a Go kind the way the JSON documentation would.
func jsonKind(kind string) string {
	switch {
	case kind == "struct" || strings.HasPrefix(kind, "map"):
		return "object"
	case kind == "slice":
		return "array"
	case kind == "bool":
		return "boolean"
	default:
		return kind
	}
}
