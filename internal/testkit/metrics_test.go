package testkit_test

import (
	"strings"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/testkit"
)

const scrape = `# TYPE rotator_rotations_total counter
rotator_rotations_total{integration="a",result="pushed"} 3
rotator_rotations_total{integration="a",result="failed"} 1
rotator_rotations_total{integration="b",result="pushed"} 5
# TYPE rotator_up gauge
rotator_up 1
# TYPE rotator_pass_duration_seconds histogram
rotator_pass_duration_seconds_bucket{trigger="watch",le="+Inf"} 7
rotator_pass_duration_seconds_sum{trigger="watch"} 0.5
rotator_pass_duration_seconds_count{trigger="watch"} 7
`

func TestMetric(t *testing.T) {
	tests := []struct {
		name      string
		labels    map[string]string
		want      float64
		wantFound bool
	}{
		{"rotator_rotations_total", nil, 9, true},
		{"rotator_rotations_total", map[string]string{"integration": "a"}, 4, true},
		{"rotator_rotations_total", map[string]string{"integration": "a", "result": "pushed"}, 3, true},
		{"rotator_rotations_total", map[string]string{"integration": "c"}, 0, false},
		{"rotator_up", nil, 1, true},
		{"rotator_pass_duration_seconds", map[string]string{"trigger": "watch"}, 7, true},
		{"rotator_absent", nil, 0, false},
	}
	for _, tt := range tests {
		got, found, err := testkit.Metric(strings.NewReader(scrape), tt.name, tt.labels)
		if err != nil || got != tt.want || found != tt.wantFound {
			t.Errorf("Metric(%s, %v): got %v, %v, %v; want %v, %v, nil", tt.name, tt.labels, got, found, err, tt.want, tt.wantFound)
		}
	}
	if _, _, err := testkit.Metric(strings.NewReader("not {metrics"), "x", nil); err == nil {
		t.Error("Metric of a bad text: got no error")
	}
}
