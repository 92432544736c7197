package hostile_test

// A Hood error text that quotes part of a value it was sent: the quoted
// part is redacted before the error reaches any output (it was a bug).

import (
	"net/http"
	"testing"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
)

func TestHoodErrorEchoingPartOfTheValue(t *testing.T) {
	t.Parallel()
	for name, msg := range map[string]string{
		"prefix": "token '" + sentinel[:14] + "...' is invalid",
		"suffix": "token ending in " + sentinel[len(sentinel)-12:] + " is invalid",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			c := f.config(cfg{integrations: f.telegram("tg", "571")})
			f.hood.Inject(hoodtest.Fault{Method: http.MethodPatch, Status: http.StatusBadRequest, Message: msg})
			r := f.once(c) // run() and the fixture's cleanup report the leak
			wantLine(t, r, "tg", "failed", "400")
		})
	}
}
