package p2p

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine is left once the tests are
// done: every node the tests start is closed, and Close waits for every
// goroutine the node started. No library goroutine needs ignoring: the
// host, DHT and GossipSub end theirs when the node closes them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
