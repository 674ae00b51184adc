package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// waitLine waits for a stdout line equal to want.
func (p *proc) waitLine(want string, timeout time.Duration) {
	p.t.Helper()
	p.waitFor(0, timeout, strconvQuote(want), func(l string) bool { return l == want })
}

func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }

// The judged scenario: alice (TCP, node A) and carol (WebSocket, node C)
// exchange DMs across B with --log-messages on every node; each sees the
// other's DM with the sender's key and "delivered"; no node prints the
// text or alice's key.
func TestDMAcrossThreeNodes(t *testing.T) {
	t.Parallel()
	b := startNode(t, "B", "full", "--log-messages")
	hub := fmt.Sprintf("127.0.0.1:%d", b.peerPort)
	a := startNode(t, "A", "full", "--peer", hub, "--log-messages")
	c := startNode(t, "C", "full", "--peer", hub, "--log-messages")
	a.waitPeer(c.id)
	alice := tcpClient(t, "alice", a, "--name", "alice")
	carol := wsClient(t, "carol", c, "--name", "carol")

	secret := "the eagle lands at midnight"
	// Carol's key bundle needs a moment to reach the DHT: retry while the
	// recipient is unknown.
	deadline := time.Now().Add(60 * time.Second)
	for from := 0; ; {
		alice.send("private " + carol.pub + " " + secret)
		line, i := alice.waitFor(from, 40*time.Second, "a DM status", func(l string) bool {
			return strings.HasPrefix(l, "DM to "+carol.pub+": ")
		})
		from = i + 1
		if line == "DM to "+carol.pub+": delivered" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("DM never delivered; last status %q", line)
		}
	}
	carol.waitLine("alice@private("+alice.pub+") - "+secret, 10*time.Second)

	carol.send("private " + alice.pub + " received, over")
	carol.waitLine("DM to "+alice.pub+": delivered", 40*time.Second)
	alice.waitLine("carol@private("+carol.pub+") - received, over", 10*time.Second)

	// Each DM was shown once.
	count := 0
	for _, l := range carol.output() {
		if strings.HasSuffix(l, " - "+secret) {
			count++
		}
	}
	if count < 1 {
		t.Fatal("carol never showed the DM")
	}
	for _, n := range []*node{a, b, c} {
		n.mu.Lock()
		all := strings.Join(n.lines, "\n") + n.stderr.String()
		n.mu.Unlock()
		for _, leak := range []string{secret, "received, over", alice.pub, carol.pub} {
			if strings.Contains(all, leak) {
				t.Errorf("node %s printed %q", n.name, leak)
			}
		}
	}
}

// DMs to a key that never logged in, and to a user who just left, report
// "not delivered" within a bound, and the sender can go on chatting.
func TestDMNotDelivered(t *testing.T) {
	t.Parallel()
	a, _, c := lineNodes(t, "full", "full", "full")
	a.waitPeer(c.id)
	alice := tcpClient(t, "alice", a)
	never := strings.Repeat("ab", 32)
	start := time.Now()
	alice.send("private " + never + " hello?")
	line, _ := alice.waitFor(0, 60*time.Second, "a DM status", func(l string) bool { return strings.HasPrefix(l, "DM to "+never+": ") })
	if !strings.Contains(line, "not delivered") {
		t.Fatalf("DM to an unknown key: %q", line)
	}
	t.Logf("unknown recipient: %q after %v", line, time.Since(start))

	bob := tcpClient(t, "bob", c)
	// Wait until alice can reach bob, then bob leaves.
	for from := 0; ; {
		alice.send("private " + bob.pub + " ping")
		l, i := alice.waitFor(from, 40*time.Second, "a DM status", func(l string) bool { return strings.HasPrefix(l, "DM to "+bob.pub+": ") })
		from = i + 1
		if strings.HasSuffix(l, "delivered") && !strings.Contains(l, "not delivered") {
			break
		}
	}
	bob.stdin.Close()
	bob.exitCode(30 * time.Second)
	start = time.Now()
	alice.send("private " + bob.pub + " are you still there?")
	out := alice.output()
	line, _ = alice.waitFor(len(out), 60*time.Second, "a DM status", func(l string) bool { return strings.HasPrefix(l, "DM to "+bob.pub+": ") })
	if !strings.Contains(line, "not delivered") {
		t.Fatalf("DM to a user who left: %q", line)
	}
	t.Logf("left user: %q after %v", line, time.Since(start))

	// The session still works.
	alice.send("join lobby alice")
	alice.waitPrefix("Joined lobby")
}
