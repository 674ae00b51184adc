package browsertest

import (
	"os"
	"testing"

	"darkchat/tstest/chatproc"
)

// bins are darkchatd and darkchat, built once for the package (unless
// every test skips).
var bins chatproc.Binaries

// client is a scripted darkchat process from chatproc's loopback harness.
type client = chatproc.TestClient

func TestMain(m *testing.M) {
	chromiumPath = findChromium()
	if chromiumPath == "" && os.Getenv("DARKCHAT_REQUIRE_ALL") != "1" {
		os.Exit(m.Run()) // every test skips: nothing to build
	}
	os.Exit(chatproc.RunWithBinaries(m, "darkchat-browsertest", &bins))
}
