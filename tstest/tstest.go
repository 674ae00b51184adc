// Package tstest and the packages under it exist only for darkchat's tests:
// nothing in the daemon or the clients imports them (cmd/darkchatd's
// TestDependencies checks the daemon). Beside the harnesses (chatproc runs
// the real binaries, netns builds emulated internets, attack is the
// attacker) live the suites that need them (e2e, nattest, composetest,
// browsertest, attacktest). This package holds the one way those tests
// wait for a condition.
package tstest

import (
	"fmt"
	"testing"
	"time"
)

// Poll calls cond until it reports ok, every interval, and returns nil.
// Once timeout has passed it gives up and returns an error carrying the
// reason cond gave last, so a failure says what the wait last saw rather
// than only that it timed out.
func Poll(timeout, interval time.Duration, cond func() (ok bool, why string)) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			if why == "" {
				return fmt.Errorf("timed out after %v", timeout)
			}
			return fmt.Errorf("timed out after %v; last: %s", timeout, why)
		}
		time.Sleep(interval) // the polling interval; the wait ends on cond
	}
}

// WaitFor polls cond (see Poll) and fails t once timeout has passed,
// naming what it waited for and cond's last reason. It polls about a
// hundred times over timeout, between every 50 ms and every second, so a
// cond that runs a process (a ctl command) is not run needlessly often.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (ok bool, why string)) {
	t.Helper()
	if err := Poll(timeout, PollInterval(timeout), cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// PollInterval is the interval WaitFor polls at for timeout.
func PollInterval(timeout time.Duration) time.Duration {
	return min(max(timeout/100, 50*time.Millisecond), time.Second)
}
