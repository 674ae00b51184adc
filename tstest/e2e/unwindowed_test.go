package e2e

import (
	"os"
	"strconv"
	"testing"
	"time"

	"darkchat/cmd/darkbench/bench"
)

// unwindowedDuration is how long the senders send: 8 s in the short run,
// a minute with DARKCHAT_E2E_FULL=1.
func unwindowedDuration() time.Duration {
	if os.Getenv("DARKCHAT_E2E_FULL") == "1" {
		return time.Minute
	}
	return 8 * time.Second
}

// Senders on one node, receivers on another, the senders writing as fast
// as the gateway takes their messages and never waiting for the receivers:
// every message answered ok reaches every receiver exactly once, and the
// others were answered with an error. Nodes as a user runs them (default
// limits: most messages are refused with rate_limited), and with the
// client limits raised, where the mesh's back-pressure paces the senders.
func TestUnwindowedSendersLoseNothing(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"default limits", nil},
		{"raised limits", []string{"--rate", "1000000", "--burst", "1000000", "--author-rate", "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := bins.StartNode(t, "A", "cli", tc.flags...)
			b := bins.StartNode(t, "B", "cli", append(tc.flags, "--peer", "127.0.0.1:"+strconv.Itoa(a.PeerPort))...)
			b.WaitPeer(a.ID)
			r, err := bench.Unwindowed(t.Context(), "127.0.0.1:"+strconv.Itoa(a.CLIPort), "127.0.0.1:"+strconv.Itoa(b.CLIPort),
				"flood", 4, 2, unwindowedDuration(), 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d sent, %d ok (%.0f/s), errors %v; receivers got %v, duplicates %v, missing %v, unexpected %v",
				r.Sent, r.OK, r.Rate(), r.Errors, r.Received, r.Duplicates, r.Missing, r.Unexpected)
			if r.OK == 0 {
				t.Fatal("no message was answered ok")
			}
			if errs := r.Sent - r.OK; errs != sum(r.Errors) {
				t.Errorf("%d messages neither ok nor refused", errs-sum(r.Errors))
			}
			for i := range r.Received {
				if r.Missing[i] != 0 || r.Duplicates[i] != 0 || r.Unexpected[i] != 0 {
					t.Errorf("receiver %d: %d of %d messages answered ok missing, %d duplicates, %d not answered ok",
						i, r.Missing[i], r.OK, r.Duplicates[i], r.Unexpected[i])
				}
			}
		})
	}
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
