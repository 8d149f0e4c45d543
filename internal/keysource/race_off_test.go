//go:build !race

package keysource

const raceEnabled = false
