package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"darkchat/tstest"
)

// lineNodes starts three nodes A–B–C, A and C peered only with B.
func lineNodes(t *testing.T, typA, typB, typC string) (a, b, c *node) {
	b = bins.StartNode(t, "B", typB)
	hub := fmt.Sprintf("127.0.0.1:%d", b.PeerPort)
	a = bins.StartNode(t, "A", typA, "--peer", hub)
	c = bins.StartNode(t, "C", typC, "--peer", hub)
	return a, b, c
}

// warmUp makes sure each of the two clients receives the other's messages
// on channel ch before a test counts messages: it repeats a probe until the
// other side has seen one (a message sent before the nodes have exchanged
// subscriptions reaches nobody).
func warmUp(t *testing.T, ch string, x *client, xName string, y *client, yName string) {
	t.Helper()
	for _, dir := range []struct {
		from *client
		name string
		to   *client
	}{{x, xName, y}, {y, yName, x}} {
		sent := 0
		tstest.WaitFor(t, 30*time.Second, dir.name+"'s messages to reach the other side", func() (bool, string) {
			if slices.ContainsFunc(dir.to.Lines(), func(l string) bool { return strings.HasPrefix(l, dir.name+"@"+ch+" - warmup ") }) {
				return true, ""
			}
			dir.from.Send(fmt.Sprintf("%s warmup %d", ch, sent))
			sent++
			return false, fmt.Sprintf("none of %d seen", sent)
		})
	}
}

// chatLines returns the "<user>@<ch> - <body>" lines in out, without
// warm-up probes.
func chatLines(out []string, ch string) []string {
	var got []string
	for _, l := range out {
		if strings.Contains(l, "@"+ch+" - ") && !strings.Contains(l, "@"+ch+" - warmup ") {
			got = append(got, l)
		}
	}
	return got
}

func testChatAcrossLine(t *testing.T, typA, typB, typC string) {
	a, b, c := lineNodes(t, typA, typB, typC)
	a.WaitPeer(c.ID) // discovered through B, never configured

	var alice, bob *client
	if a.CLIPort != 0 {
		alice = bins.TCPClient(t, "alice", a)
	} else {
		alice = bins.WSClient(t, "alice", a)
	}
	if c.WSPort != 0 {
		bob = bins.WSClient(t, "bob", c)
	} else {
		bob = bins.TCPClient(t, "bob", c)
	}
	var carol *client
	if c.CLIPort != 0 {
		carol = bins.TCPClient(t, "carol", c)
	} else {
		carol = bins.WSClient(t, "carol", c)
	}
	alice.Send("join lobby alice")
	bob.Send("join lobby bob")
	carol.Send("join other carol")
	alice.WaitPrefix("Joined lobby")
	bob.WaitPrefix("Joined lobby")
	carol.WaitPrefix("Joined other")
	warmUp(t, "lobby", alice, "alice", bob, "bob")

	const n = 10
	for i := range n {
		alice.Send(fmt.Sprintf("lobby from alice %d", i))
		bob.Send(fmt.Sprintf("lobby from bob %d", i))
	}
	alice.Send("lobby alice done")
	bob.Send("lobby bob done")
	bob.WaitFor(0, 30*time.Second, "alice's last message", func(l string) bool { return l == "alice@lobby - alice done" })
	alice.WaitFor(0, 30*time.Second, "bob's last message", func(l string) bool { return l == "bob@lobby - bob done" })

	for _, tc := range []struct {
		who  *client
		from string
	}{{bob, "alice"}, {alice, "bob"}} {
		var want []string
		for i := range n {
			want = append(want, fmt.Sprintf("%s@lobby - from %s %d", tc.from, tc.from, i))
		}
		want = append(want, fmt.Sprintf("%s@lobby - %s done", tc.from, tc.from))
		if got := chatLines(tc.who.Lines(), "lobby"); strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s's lobby lines:\n%s\nwant:\n%s", tc.who.Name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	for _, l := range carol.Lines() {
		if strings.Contains(l, "@lobby - ") {
			t.Errorf("carol, in another channel, saw %q", l)
		}
	}

	// Nodes store no messages: after the traffic each data dir holds only
	// the node key.
	for _, n := range []*node{a, b, c} {
		entries, err := os.ReadDir(n.DataDir)
		if err != nil || len(entries) != 1 || entries[0].Name() != "node.key" {
			t.Errorf("%s's data dir holds %v (%v), want only node.key", n.Name, entries, err)
		}
	}

	// End of input: the client settles and exits 0.
	alice.CloseStdin()
	if code := alice.WaitExit(30 * time.Second); code != 0 {
		t.Errorf("alice exited %d", code)
	}
}

// The judged scenario: alice over TCP on A, bob over WebSocket on C, B in
// between without members.
func TestChatAcrossThreeFullNodes(t *testing.T) {
	t.Parallel()
	testChatAcrossLine(t, "full", "full", "full")
}

// The same across the three server types.
func TestChatAcrossMixedServerTypes(t *testing.T) {
	t.Parallel()
	testChatAcrossLine(t, "cli", "full", "websock")
}

var verifyLine = regexp.MustCompile(`^VERIFY : "(dcl1\.[^"]+)"$`)

// The seed's manual login: connect, sign with "darkchat sign" run as a
// separate command, verify.
func TestManualSeedLoginFlow(t *testing.T) {
	t.Parallel()
	n := bins.StartNode(t, "N", "full")
	c := bins.StartClient(t, "manual", "--manual-auth", "127.0.0.1", strconv.Itoa(n.CLIPort))
	c.Send("connect")
	line, _ := c.WaitFor(0, 30*time.Second, "VERIFY line", verifyLine.MatchString)
	challenge := verifyLine.FindStringSubmatch(line)[1]
	if !strings.Contains(challenge, "."+n.ID+".") {
		t.Fatalf("challenge %q does not name node %s", challenge, n.ID)
	}
	out, err := exec.Command(bins.Darkchat, "sign", "--key", c.Key, challenge).Output()
	if err != nil {
		t.Fatal(err)
	}
	sig := strings.TrimSpace(string(out))
	if !regexp.MustCompile(`^[0-9a-f]{128}$`).MatchString(sig) {
		t.Fatalf("darkchat sign printed %q", out)
	}
	c.Send("verify " + sig)
	c.WaitPrefix("Connected to Network")
	c.Send("join lobby manual")
	c.WaitPrefix("Joined lobby")
}

// A wrong signature in the manual flow is refused and the client fails.
func TestManualLoginWithWrongSignatureFails(t *testing.T) {
	t.Parallel()
	n := bins.StartNode(t, "N", "full")
	c := bins.StartClient(t, "manual", "--manual-auth", "127.0.0.1", strconv.Itoa(n.CLIPort))
	c.Send("connect")
	c.WaitFor(0, 30*time.Second, "VERIFY line", verifyLine.MatchString)
	c.Send("verify " + strings.Repeat("ab", 64))
	c.WaitPrefix("ERROR: ")
	c.CloseStdin()
	if code := c.WaitExit(30 * time.Second); code == 0 {
		t.Fatal("client exited 0 after a failed login")
	}
}
