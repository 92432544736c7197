package rotate

import (
	"errors"
	"fmt"
	"sort"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/secret"
	"github.com/ocamba-rotator/rotator/internal/vault"
)

// ErrSettings is wrapped by every error that comes from building an
// integration's settings out of its Vault secret (a missing, empty or
// non-string key, a setting its provider does not have).
var ErrSettings = errors.New("cannot build settings")

// Built is the settings of one integration, ready to push.
type Built struct {
	Settings map[string]secret.Value
	// Warnings are things the operator should know that do not stop the
	// push: Vault keys that are not settings of the provider, provider
	// settings that nothing provides.
	Warnings []string
}

// Names returns the setting names, sorted.
func (b Built) Names() []string {
	names := make([]string, 0, len(b.Settings))
	for k := range b.Settings {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// BuildSettings builds the settings an integration pushes from its Vault
// secret:
//   - without a `fields` entry, every key of the secret whose name is a
//     setting of the provider is taken as it is;
//   - a `fields` entry (setting: vault key) takes that setting from the
//     named key instead, which must be present, a string and not empty;
//   - `static` values are added last and win over keys of the secret (one
//     shared secret can serve several integrations that differ in, say, the
//     sender phone number).
//
// A setting the provider does not have is refused: Hood would drop it
// silently and answer 204. Non-string and empty values are refused: pushing
// them would blank a credential. Errors name the integration's keys and the
// secret's path, never a value.
func BuildSettings(in config.Integration, kv *vault.KV) (Built, error) {
	p, ok := hood.LookupProvider(in.Provider)
	if !ok {
		return Built{}, fmt.Errorf("%w: unknown provider %q", ErrSettings, in.Provider)
	}
	where := fmt.Sprintf("%s/%s", kv.Mount, kv.Path)
	if kv.Version > 0 {
		where += fmt.Sprintf(" (version %d)", kv.Version)
	}
	if len(kv.Data) == 0 && len(kv.NonString) == 0 {
		return Built{}, fmt.Errorf("%w: secret %s is empty", ErrSettings, where)
	}

	out := make(map[string]secret.Value)
	var problems []error
	take := func(setting, key string) {
		if kind, bad := kv.NonString[key]; bad {
			problems = append(problems, fmt.Errorf("vault key %q of %s is a %s, want a string", key, where, kind))
			return
		}
		v, present := kv.Data[key]
		switch {
		case !present:
			problems = append(problems, fmt.Errorf("vault key %q (for setting %q) is missing from %s", key, setting, where))
		case v.IsZero():
			problems = append(problems, fmt.Errorf("vault key %q (for setting %q) is empty in %s", key, setting, where))
		default:
			out[setting] = v
		}
	}

	mappedKeys := make(map[string]bool, len(in.Fields))
	for _, key := range in.Fields {
		mappedKeys[key] = true
	}
	var warnings []string
	for _, key := range sortedKeys(kv.Data, kv.NonString) {
		if mappedKeys[key] {
			continue
		}
		if _, renamed := in.Fields[key]; renamed {
			continue // the setting comes from the key named in fields
		}
		if _, fixed := in.Static[key]; fixed {
			continue // static wins over the secret's key
		}
		if !p.HasField(key) {
			warnings = append(warnings, fmt.Sprintf("vault key %q of %s is not a setting of provider %s and is not mapped: ignored", key, where, p.Key))
			continue
		}
		take(key, key)
	}
	for _, setting := range sortedKeys[string, string](in.Fields, nil) {
		if !p.HasField(setting) {
			problems = append(problems, fmt.Errorf("setting %q is not a setting of provider %s (Hood would drop it silently)", setting, p.Key))
			continue
		}
		take(setting, in.Fields[setting])
	}
	for _, setting := range sortedKeys[string, string](in.Static, nil) {
		if !p.HasField(setting) {
			problems = append(problems, fmt.Errorf("static setting %q is not a setting of provider %s (Hood would drop it silently)", setting, p.Key))
			continue
		}
		if f, _ := p.Field(setting); f.Secret {
			problems = append(problems, fmt.Errorf("static setting %q is a secret of provider %s and must come from Vault", setting, p.Key))
			continue
		}
		out[setting] = secret.New(in.Static[setting])
	}
	if len(problems) > 0 {
		return Built{}, fmt.Errorf("%w: %w", ErrSettings, joined(problems))
	}
	if len(out) == 0 {
		return Built{}, fmt.Errorf("%w: %s has none of the settings of provider %s (%v)", ErrSettings, where, p.Key, p.FieldNames())
	}
	for _, f := range p.Fields {
		if _, ok := out[f.Name]; !ok {
			warnings = append(warnings, fmt.Sprintf("setting %q of provider %s is not provided; it is left as Hood has it", f.Name, p.Key))
		}
	}
	return Built{Settings: out, Warnings: warnings}, nil
}

func sortedKeys[V any, W any](a map[string]V, b map[string]W) []string {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// joined is several errors in one line, "; " between them.
type joined []error

func (j joined) Error() string {
	s := ""
	for i, err := range j {
		if i > 0 {
			s += "; "
		}
		s += err.Error()
	}
	return s
}

func (j joined) Unwrap() []error { return j }
