package gateway

import (
	"slices"
	"testing"
	"time"

	"darkchat/identity"
	"darkchat/proto"
)

// A kicked session leaves the channel's member list at once, on its own
// node and across the mesh (its gone record is published, as on a leave,
// without waiting for a request from the client), and hears no more of the
// channel's presence events.
func TestKickedSessionLeavesPresence(t *testing.T) {
	a, b := startRulesNode(t, true), startRulesNode(t, true)
	linkNodes(t, a, b)
	alice := dialTCP(t, a.tcpAddr)
	alice.login()
	channel, _ := identity.OwnedChannelName("ops", alice.key.Public())
	alice.joinListed(channel, "alice", identity.PresenceSession{1})
	rec, _ := identity.NewChannelRules(alice.key, channel, time.Now())
	alice.sendRules(&rec)
	alice.expectRules(channel, 1)
	carol, dave := dialTCP(t, b.tcpAddr), dialTCP(t, b.tcpAddr)
	carol.login()
	dave.login()
	carol.joinListed(channel, "carol", identity.PresenceSession{2})
	dave.joinListed(channel, "dave", identity.PresenceSession{3})
	waitUntil(t, 30*time.Second, "the nodes to share the channel", func() bool {
		return len(a.node.ChannelPeers(channel)) > 0 && len(b.node.ChannelPeers(channel)) > 0
	})
	all := []string{entry(alice, "alice"), entry(carol, "carol"), entry(dave, "dave")}
	waitUntil(t, 10*time.Second, "alice to list carol and dave", func() bool {
		return slices.Equal(alice.names(channel), all)
	})
	// dave's node learns alice's record from node A (sync, or her
	// republished record): wait for it too before counting.
	waitUntil(t, 10*time.Second, "dave to list alice and carol", func() bool {
		return slices.Equal(dave.names(channel), all)
	})

	k, _ := identity.NewChannelKick(alice.key, channel, carol.key.Public(), "", time.Now())
	ko, _ := proto.NewKick(&k)
	alice.send(obj2map(t, ko))
	carol.expectKicked()
	// Her gone goes out as the kick is heard, though carol's client sends
	// nothing (an idle client sends nothing until the node pings it).
	for _, c := range []*client{alice, dave} {
		ev := c.expectPresenceOf(carol.key.Public())
		for ev.State == proto.StateHere { // her join, heard earlier
			ev = c.expectPresenceOf(carol.key.Public())
		}
		if ev.State != proto.StateGone || ev.Username != "carol" {
			t.Fatalf("after the kick: %+v", ev)
		}
	}
	// The session leaves the channel on the mesh before its next request.
	carol.send(map[string]any{"type": "ping"})
	carol.expect("pong")
	carol.stash = nil
	want := []string{entry(alice, "alice"), entry(dave, "dave")}
	for _, c := range []*client{alice, dave} {
		if got := c.names(channel); !slices.Equal(got, want) {
			t.Fatalf("names after the kick: %v, want %v", got, want)
		}
	}

	// eve joins on carol's node: dave hears it, carol does not.
	eve := dialTCP(t, b.tcpAddr)
	eve.login()
	eve.joinListed(channel, "eve", identity.PresenceSession{4})
	if ev := dave.expectPresenceOf(eve.key.Public()); ev.State != proto.StateHere {
		t.Fatalf("eve's join: %+v", ev)
	}
	// Events reach a node's sessions in one pass, so whatever carol was
	// sent is before the pong to a ping sent now.
	carol.send(map[string]any{"type": "ping"})
	carol.expect("pong")
	for _, f := range carol.stash {
		if f.Type == "presence" {
			t.Fatalf("the kicked session got a presence event: %s", f.raw)
		}
	}
}
