package hood

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrSchemaMismatch is wrapped by MatchLive's error: the live provider's
// settings are not the configured provider's.
var ErrSchemaMismatch = errors.New("live provider settings differ")

// maxListed caps the setting names an error lists from Hood's answer.
const maxListed = 40

// MatchLive decides whether live, the provider object Hood reports for an
// integration, is the configured provider p. Hood documents the provider
// name for Twilio only ("twilio"); the other names rotator expects are
// guesses. The decision therefore rests on the live schema: the names of
// live.Settings must be exactly p's settings (the seven documented
// providers' sets all differ). When they are and the name is not the one
// expected, note says so: it is for the operator to see, not a failure.
// When they are not, the error (wrapping ErrSchemaMismatch) names both
// providers and both lists, sorted, and the documented provider whose
// settings the live list is, if any.
func MatchLive(p Provider, live ProviderInfo) (note string, err error) {
	got := liveNames(live)
	want := p.FieldNames()
	if !slices.Equal(got, want) {
		err := fmt.Errorf("%w: Hood's provider %s%s has settings %s; provider %s (expected name %q) has %s",
			ErrSchemaMismatch, quoteTrunc(live.Name, 40), providerIDNote(live.ID), listNames(got), p.Key, p.Name, strings.Join(want, ", "))
		if other, ok := providerWithFields(got); ok {
			err = fmt.Errorf("%w: they are the settings of provider %s", err, other.Key)
		}
		return "", err
	}
	if strings.EqualFold(live.Name, p.Name) {
		return "", nil
	}
	return fmt.Sprintf("Hood names the provider %s%s, rotator expected %q; its settings match provider %s",
		quoteTrunc(live.Name, 40), providerIDNote(live.ID), p.Name, p.Key), nil
}

// liveNames returns the setting names of a live provider object, sorted,
// without repeats.
func liveNames(live ProviderInfo) []string {
	names := make([]string, 0, len(live.Settings))
	for _, s := range live.Settings {
		names = append(names, s.Name)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// providerWithFields returns the documented provider whose settings are
// exactly names (sorted).
func providerWithFields(names []string) (Provider, bool) {
	for _, p := range providers {
		if slices.Equal(p.FieldNames(), names) {
			return p, true
		}
	}
	return Provider{}, false
}

// listNames renders setting names from Hood's answer for an error: plain
// when they look like field names, quoted otherwise; at most maxListed.
func listNames(names []string) string {
	if len(names) == 0 {
		return "(none)"
	}
	shown := names[:min(len(names), maxListed)]
	parts := make([]string, 0, len(shown)+1)
	for _, n := range shown {
		if isFieldName(n) {
			parts = append(parts, n)
		} else {
			parts = append(parts, quoteTrunc(n, 40))
		}
	}
	if more := len(names) - len(shown); more > 0 {
		parts = append(parts, fmt.Sprintf("and %d more", more))
	}
	return strings.Join(parts, ", ")
}

func isFieldName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}

func providerIDNote(id string) string {
	if id == "" {
		return ""
	}
	if !isFieldName(id) {
		id = quoteTrunc(id, 20)
	}
	return " (provider id " + id + ")"
}
