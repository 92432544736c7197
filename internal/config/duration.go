package config

import (
	"fmt"
	"time"

	"go.yaml.in/yaml/v3"
)

// UnmarshalYAML reads a duration in Go syntax ("90s", "10m", "1h30m").
// A bare number such as 10 is refused: it has no unit.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("want a duration such as 90s or 10m, got %s", shape(n))
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("invalid duration %q: want Go syntax such as 90s, 10m or 1h30m", n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration in Go syntax, so that a marshalled Config
// loads back.
func (d Duration) MarshalYAML() (any, error) {
	return d.String(), nil
}

// String returns the duration in Go syntax.
func (d Duration) String() string { return time.Duration(d).String() }
