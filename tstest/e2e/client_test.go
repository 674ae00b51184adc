package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// restartBackWithin is how soon after its node is back a client must be
// in its channels again without anyone typing (issue: within 10 s).
const restartBackWithin = 10 * time.Second

// The node under a client restarts: the client logs in again by itself,
// is back in its channel under the same name within 10 s of the node
// being up, and hears the channel again; its messages reach the other
// node's user. Three nodes in a line, A–B–C.
func TestClientBackAfterNodeRestart(t *testing.T) {
	a, _, c := lineNodes(t, "full", "full", "full")
	a.WaitPeer(c.ID)
	alice := bins.TCPClient(t, "alice", c, "--wait", "10m")
	bob := bins.TCPClient(t, "bob", a, "--wait", "10m")
	alice.Send("join dev alice")
	alice.WaitPrefix("Joined dev as alice")
	bob.Send("join dev bob")
	bob.WaitPrefix("Joined dev as bob")
	warmUp(t, "dev", alice, "alice", bob, "bob")

	from := len(alice.Lines())
	c.Terminate()
	alice.WaitFor(from, 30*time.Second, "the disconnection", func(l string) bool {
		return strings.HasPrefix(l, "ERROR: disconnected") || l == "Disconnected by the node"
	})
	c = c.Again(t)
	up := time.Now()
	_, i := alice.WaitFor(from, restartBackWithin+5*time.Second, "alice to join dev again", func(l string) bool { return l == "Joined dev as alice" })
	if back := time.Since(up); back > restartBackWithin {
		t.Fatalf("alice was back in dev %v after her node was up, want within %v", back.Round(time.Millisecond), restartBackWithin)
	}
	t.Logf("alice back in dev %v after her node restarted", time.Since(up).Round(time.Millisecond))
	// The restarted node finds the mesh again; the two hear each other.
	for n := 0; ; n++ {
		bob.Send(fmt.Sprintf("dev after restart %d", n))
		if _, _, err := alice.WaitLine(i, 2*time.Second, func(l string) bool { return strings.HasPrefix(l, "bob@dev - after restart ") }); err == nil {
			break
		}
		if n == 15 {
			t.Fatalf("alice heard nothing from bob after her node restarted")
		}
	}
	alice.Send("dev I am back")
	bob.WaitFor(0, 30*time.Second, "alice's message", func(l string) bool { return l == "alice@dev - I am back" })
}

// Two keys use the name alice in one channel, on different nodes: bob, on
// a third, sees each with her key's fingerprint, is told the name is
// shared, and /msg alice asks which one.
func TestSameNameShownApart(t *testing.T) {
	a, b, c := lineNodes(t, "full", "full", "full")
	a.WaitPeer(c.ID)
	alice := bins.TCPClient(t, "alice", a, "--wait", "10m")
	bob := bins.TCPClient(t, "bob", c, "--wait", "10m")
	impostor := bins.TCPClient(t, "impostor", b, "--wait", "10m")
	alice.Send("join dev alice")
	bob.Send("join dev bob")
	alice.WaitPrefix("Joined dev as alice")
	bob.WaitPrefix("Joined dev as bob")
	// The warm-up shows alice alone under her name; then the second
	// alice comes (bob learns of her from her presence, or her first
	// message).
	warmUp(t, "dev", alice, "alice", bob, "bob")
	impostor.Send("join dev alice")
	impostor.WaitPrefix("Joined dev as alice")
	for n := 0; ; n++ {
		impostor.Send(fmt.Sprintf("dev it is me %d", n))
		if _, _, err := bob.WaitLine(0, 2*time.Second, func(l string) bool { return strings.Contains(l, "@dev - it is me ") }); err == nil {
			break
		}
		if n == 15 {
			t.Fatalf("bob heard nothing from the second alice")
		}
	}
	fpAlice, fpImpostor := alice.Pub[:8], impostor.Pub[:8]
	bob.WaitFor(0, 10*time.Second, "the shared-name notice", func(l string) bool {
		return l == "-- 2 users are named alice in dev: they are shown as alice("+fpAlice+"), alice("+fpImpostor+")"
	})
	bob.WaitFor(0, 10*time.Second, "the second alice's line", func(l string) bool { return strings.HasPrefix(l, "alice("+fpImpostor+")@dev - it is me ") })
	from := len(bob.Lines())
	alice.Send("dev the real one")
	bob.WaitFor(from, 10*time.Second, "alice's line", func(l string) bool { return l == "alice("+fpAlice+")@dev - the real one" })
	bob.Send("/msg alice which of you?")
	line, _ := bob.WaitFor(from, 10*time.Second, "the question", func(l string) bool { return strings.HasPrefix(l, "ERROR: ") })
	if !strings.HasPrefix(line, "ERROR: 2 users are named alice: which one?") || !strings.Contains(line, alice.Pub) || !strings.Contains(line, impostor.Pub) {
		t.Fatalf("bob's /msg alice: %q", line)
	}
}
