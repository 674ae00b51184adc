package e2e

import (
	"os"
	"testing"

	"darkchat/tstest/chatproc"
)

// bins are darkchatd and darkchat, built once for the package.
var bins chatproc.Binaries

// The tests use chatproc's loopback harness: nodes and scripted clients
// tied to the test.
type (
	node   = chatproc.TestNode
	client = chatproc.TestClient
)

func TestMain(m *testing.M) {
	os.Exit(chatproc.RunWithBinaries(m, "darkchat-e2e", &bins))
}
