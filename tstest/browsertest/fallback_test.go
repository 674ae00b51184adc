package browsertest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestBrowserMovesToFallbackNode: a page served by node A, whose operator
// named node B as the page's fallback (--web-fallback, with B accepting
// A's pages by --ws-origin), moves to B by itself when A is gone: it logs
// in there, joins its channel again under the same name, and chats with a
// CLI user on B.
func TestBrowserMovesToFallbackNode(t *testing.T) {
	requireChromium(t)
	b := newBrowser(t, "fallback")
	// B must name A's page origin and A must name B's gateway: A starts
	// first for its port, then again on the same ports with the fallback.
	na := bins.StartNode(t, "A", "websock")
	pageOrigin := fmt.Sprintf("http://127.0.0.1:%d", na.WSPort)
	nb := bins.StartNode(t, "B", "full", "--ws-origin", pageOrigin)
	na.Terminate()
	na = bins.RunNode(t, "A", "websock", na.DataDir, []int{na.WSPort, na.PeerPort},
		"--peer", fmt.Sprintf("127.0.0.1:%d", nb.PeerPort),
		"--web-fallback", fmt.Sprintf("ws://127.0.0.1:%d/ws", nb.WSPort))
	na.WaitPeer(nb.ID)

	b.open(pageOrigin + "/")
	webKey := b.pubkey()
	b.waitLog(0, "the login on A", func(l string) bool { return l == "Connected to Network as "+webKey+" via node "+na.ID })
	b.typeLine("join lobby webuser")
	b.waitLine("Joined lobby as webuser")
	cli := bins.TCPClient(t, "cli", nb, "--wait", "10m")
	cli.Send("join lobby cliuser")
	cli.WaitPrefix("Joined lobby as cliuser")
	warmUpChannel(t, "lobby", b, "webuser", cli, "cliuser")

	from := len(b.logLines())
	start := time.Now()
	na.Terminate()
	b.waitLog(from, "the move to B", func(l string) bool { return l == "Connected to Network as "+webKey+" via node "+nb.ID })
	b.waitLog(from, "the channel joined again on B", func(l string) bool { return l == "Joined lobby as webuser" })
	b.waitState("ready")
	moved := time.Since(start)
	t.Logf("moved to the fallback node and joined again %v after A stopped", moved.Round(time.Millisecond))
	if moved > 10*time.Second {
		t.Errorf("the page took %v to move to the fallback node, want within 10 s", moved)
	}
	warmUpChannel(t, "lobby", b, "webuser", cli, "cliuser")
	if got := b.pubkey(); got != webKey {
		t.Errorf("after the move #pubkey is %s, was %s", got, webKey)
	}
	if banner := eval[string](b, `document.getElementById('banner').hidden ? '' : document.getElementById('banner').textContent`); strings.TrimSpace(banner) != "" {
		t.Errorf("after the move the page still shows the banner %q", banner)
	}
	b.checkConsole()
}
