//go:build race

package hostile_test

// raceEnabled: the tests run with -race, so the binary is built with it too.
const raceEnabled = true
