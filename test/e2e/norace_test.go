//go:build !race

package e2e

// raceEnabled is whether the tests run with -race.
const raceEnabled = false
