package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"darkchat/tstest"
)

// In an owned channel, after the owner bans a key, no member on any node
// sees that key's messages. Three nodes in a line, A–B–C: the owner alice
// on A creates the channel, carol on B and bob on C join it, and all three
// hear each other. alice bans bob: everyone is told, bob is out and
// cannot join again, and what bob types next reaches no one, while alice
// and carol go on talking.
func TestOwnedChannelBanAcrossNodes(t *testing.T) {
	a, b, c := lineNodes(t, "full", "full", "full")
	a.WaitPeer(c.ID)
	alice := bins.TCPClient(t, "alice", a, "--wait", "10m")
	carol := bins.TCPClient(t, "carol", b, "--wait", "10m")
	bob := bins.TCPClient(t, "bob", c, "--wait", "10m")
	dev := "dev." + alice.Pub[:20]
	name := func(who string, cl *client) string { return who + " (" + cl.Pub[:8] + ")" }

	alice.Send("nick alice")
	alice.Send("/create dev")
	alice.WaitPrefix("Created " + dev + ": share this name; you own it")
	carol.Send("/join #" + dev + " carol")
	carol.WaitPrefix("Joined " + dev + " as carol")
	bob.Send("join " + dev + " bob")
	bob.WaitPrefix("Joined " + dev + " as bob")
	warmUp(t, dev, alice, "alice", bob, "bob")
	warmUp(t, dev, carol, "carol", bob, "bob")
	warmUp(t, dev, alice, "alice", carol, "carol")

	from := map[*client]int{alice: len(alice.Lines()), carol: len(carol.Lines()), bob: len(bob.Lines())}
	banned := time.Now()
	alice.Send("/ban #" + dev + " " + bob.Pub)
	want := "-- " + name("bob", bob) + " was banned from " + dev + " by " + name("alice", alice)
	for _, cl := range []*client{alice, carol} {
		cl.WaitFor(from[cl], 10*time.Second, "the ban's notice", func(l string) bool { return l == want })
	}
	bob.WaitFor(from[bob], 10*time.Second, "bob's notice", func(l string) bool {
		return l == "You are banned from "+dev+" by "+name("alice", alice)
	})
	t.Logf("every member was told of the ban %v after the owner typed it", time.Since(banned).Round(time.Millisecond))

	// What bob types next goes nowhere: his client is out of the channel,
	// and his node refuses his join.
	after := len(bob.Lines())
	for i := range 3 {
		bob.Send(fmt.Sprintf("%s after the ban %d", dev, i))
	}
	bob.Send("join " + dev + " bob")
	bob.WaitFor(after, 10*time.Second, "the refused join", func(l string) bool { return l == "ERROR: you are banned from "+dev })
	bob.Send(dev + " after the refused join")
	tstest.WaitFor(t, 10*time.Second, "bob's five lines refused", func() (bool, string) {
		errs := slices.DeleteFunc(slices.Clone(bob.Lines()[after:]), func(l string) bool { return !strings.HasPrefix(l, "ERROR: ") })
		return len(errs) >= 5, fmt.Sprintf("%q", errs)
	})

	// alice and carol go on talking, and hear nothing of bob.
	alice.Send(dev + " we go on")
	carol.WaitFor(from[carol], 10*time.Second, "alice's message", func(l string) bool { return l == "alice@"+dev+" - we go on" })
	carol.Send(dev + " we do")
	alice.WaitFor(from[alice], 10*time.Second, "carol's message", func(l string) bool { return l == "carol@"+dev+" - we do" })
	for _, cl := range []*client{alice, carol} {
		for _, l := range cl.Lines()[from[cl]:] {
			if strings.HasPrefix(l, "bob@"+dev+" - ") {
				t.Fatalf("%s saw bob's message after the ban: %q", cl.Name, l)
			}
		}
	}
}
