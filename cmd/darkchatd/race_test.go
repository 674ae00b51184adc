//go:build race

package main

// raceEnabled makes TestMain build the daemon with -race when the tests run
// with -race, so the process tests check the daemon for races too.
const raceEnabled = true
