package metrics

import "time"

// SetNow replaces the clock that rotator_credential_age_seconds is computed
// with at scrape time.
func SetNow(m *Recorder, now func() time.Time) { m.now = now }
