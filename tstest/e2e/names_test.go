package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"darkchat/tstest"
)

// namesWithin is how soon after a change every member's names must show
// it (issue: within 5 s).
const namesWithin = 5 * time.Second

// usersLine is the names notice for channel ch listing users, each
// "name (fingerprint)", sorted by name as the caller gives them.
func usersLine(ch string, users ...string) string {
	return fmt.Sprintf("Users in %s (%d): %s", ch, len(users), strings.Join(users, ", "))
}

// listed is how names shows a client: its name and its key's first 8 hex
// digits.
func listed(name string, c *client) string { return name + " (" + c.Pub[:8] + ")" }

// waitNames types "names ch" until the answer is want, for at most
// within of since; it returns how long that took from since.
func waitNames(t *testing.T, c *client, ch, want string, since time.Time, within time.Duration) time.Duration {
	t.Helper()
	var last string
	tstest.WaitFor(t, time.Until(since.Add(within)), c.Name+"'s names "+ch+" to be "+want, func() (bool, string) {
		from := len(c.Lines())
		c.Send("names " + ch)
		line, _ := c.WaitFor(from, 5*time.Second, "the names answer", func(l string) bool {
			return strings.HasPrefix(l, "Users in "+ch+" (") || strings.HasPrefix(l, "ERROR: ")
		})
		last = line
		return line == want, "last answer: " + last
	})
	return time.Since(since)
}

// The judged setup: alice on node A and bob on node C (three nodes in a
// line, A–B–C) join the same channel; names on each lists both within
// 5 s, and each is told the other joined. When bob leaves, alice is told
// and her names no longer lists him. A user started with --unlisted is in
// the channel (she reads and writes) but in nobody's names, and sees the
// others; whois says online, and where, for a listed user, and not for an
// unlisted one.
func TestNamesAcrossNodes(t *testing.T) {
	a, _, c := lineNodes(t, "full", "full", "full")
	a.WaitPeer(c.ID)
	alice := bins.TCPClient(t, "alice", a, "--wait", "10m")
	bob := bins.TCPClient(t, "bob", c, "--wait", "10m")
	alice.Send("join dev alice")
	alice.WaitPrefix("Joined dev as alice")
	bob.Send("join dev bob")
	bob.WaitPrefix("Joined dev as bob")
	joined := time.Now()

	both := usersLine("dev", listed("alice", alice), listed("bob", bob))
	for _, u := range []*client{alice, bob} {
		took := waitNames(t, u, "dev", both, joined, namesWithin)
		t.Logf("%s's names listed both %v after bob's join", u.Name, took.Round(time.Millisecond))
	}
	alice.WaitFor(0, namesWithin, "bob's join notice", func(l string) bool { return l == "-- "+listed("bob", bob)+" joined dev" })
	bob.WaitFor(0, namesWithin, "alice's join notice", func(l string) bool { return l == "-- "+listed("alice", alice)+" joined dev" })

	// whois: online, as bob in dev.
	from := len(alice.Lines())
	alice.Send("whois " + bob.Pub)
	alice.WaitFor(from, 30*time.Second, "whois to say bob is online", func(l string) bool { return l == bob.Pub+": online, as bob in dev" })

	// bob leaves.
	from = len(alice.Lines())
	bob.Send("leave dev")
	bob.WaitPrefix("Left dev")
	left := time.Now()
	alice.WaitFor(from, namesWithin, "bob's leave notice", func(l string) bool { return l == "-- "+listed("bob", bob)+" left dev" })
	took := waitNames(t, alice, "dev", usersLine("dev", listed("alice", alice)), left, namesWithin)
	t.Logf("alice was told of bob's leave and her names dropped him %v after it", took.Round(time.Millisecond))

	// carol, unlisted, joins on C: she is in the channel and sees alice,
	// and nobody sees her in names or as a join.
	carol := bins.TCPClient(t, "carol", c, "--unlisted", "--wait", "10m")
	carol.Send("join dev carol")
	carol.WaitPrefix("Joined dev as carol")
	warmUp(t, "dev", alice, "alice", carol, "carol")
	waitNames(t, carol, "dev", usersLine("dev", listed("alice", alice)), time.Now(), namesWithin)
	waitNames(t, alice, "dev", usersLine("dev", listed("alice", alice)), time.Now(), namesWithin)
	for _, l := range alice.Lines() {
		if strings.Contains(l, "carol ("+carol.Pub[:8]+") joined") {
			t.Fatalf("alice was told the unlisted carol joined: %q", l)
		}
	}
	from = len(alice.Lines())
	alice.Send("whois " + carol.Pub)
	alice.WaitFor(from, 30*time.Second, "whois to say carol is not seen online", func(l string) bool {
		return l == carol.Pub+": not seen online in your channels"
	})
	from = len(carol.Lines())
	carol.Send("whois " + alice.Pub)
	carol.WaitFor(from, 30*time.Second, "whois to say alice is online", func(l string) bool { return l == alice.Pub+": online, as alice in dev" })
}
