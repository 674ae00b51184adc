package gateway

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine is left once the tests are
// done: every server, session and mesh node the tests start is closed, and
// each waits for its goroutines.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
