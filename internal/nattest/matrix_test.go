// Package nattest is darkchat's NAT test matrix: real darkchatd processes
// and real darkchat clients in Linux network namespaces, behind routers that
// NAT with iptables (package netns), on an emulated internet in
// 198.18.0.0/24 that the nodes declare public with --public-cidr.
//
// Each cell builds its own testnet with unique namespace names and runs in
// parallel with the others. The cells need root, iproute2 and iptables; they
// skip without them, and fail instead when DARKCHAT_REQUIRE_ALL=1 (as in CI).
//
//	cell                       topology                               expects
//	TestPublicPrivate          2 public, 1 behind a cone router       AutoNAT public/private, a reservation, chat (TCP and WebSocket clients)
//	TestConeHolePunch/quic     2 public, 2 behind cone routers        a direct (hole-punched) QUIC connection within 90 s, chat
//	TestConeHolePunch/tcp      same, routers drop UDP                 a direct (hole-punched) TCP connection within 90 s, chat
//	TestSymmetricRelayed       2 public, 2 behind symmetric routers   relayed only; chat at the start, > 128 KiB through the relay, chat again after 3 minutes
//	TestRelayFailover          3 public, 2 behind symmetric routers   the relay carrying the chat is killed; both find another relay; chat resumes
package nattest

import (
	"slices"
	"strings"
	"testing"
	"time"

	"darkchat/internal/chatproc"
	"darkchat/internal/netns"
)

// Deadlines. AutoNAT v1 waits 15 s after start before its first probe, and
// a probe that fails takes the server's 15 s dial timeout; relays then take
// a few seconds to be found and reserved.
const (
	reachabilityTimeout = 90 * time.Second
	directTimeout       = 90 * time.Second // from the start of the nodes: the bound
	relayedTimeout      = 90 * time.Second
	chatTimeout         = 60 * time.Second
	failoverTimeout     = 2 * time.Minute
	relaySurvival       = 3 * time.Minute
)

// TestPublicPrivate: a node behind a NAT router peers with public nodes.
// AutoNAT tells each side what it is, the private node reserves a slot with
// a public relay, and users on all three node types chat.
func TestPublicPrivate(t *testing.T) {
	t.Parallel()
	tn := newTestnet(t)
	h1 := tn.publicHost("pub1", 1)
	h2 := tn.publicHost("pub2", 2)
	r := tn.router("nat1", 1, netns.Cone)
	hp := tn.lanHost(r, "priv", 1, 2)

	pub1 := tn.startNode("pub1", "full", h1)
	pub2 := tn.startNode("pub2", "websock", h2, pub1)
	priv := tn.startNode("priv", "cli", hp, pub1)

	tn.waitReachability(pub1, "public", reachabilityTimeout)
	tn.waitReachability(priv, "private", reachabilityTimeout)
	// The public node sees the private one at its router's WAN address.
	addr := tn.waitLink(pub1, priv, linkDirect, 30*time.Second)
	if !strings.HasPrefix(addr, "/ip4/"+r.Addr.String()+"/") {
		t.Fatalf("pub1 sees priv at %s, want its router's address %s", addr, r.Addr)
	}
	tn.waitLink(priv, pub1, linkDirect, 30*time.Second)

	ids := tn.waitReservations(priv, "a public relay", reachabilityTimeout, func(ids []string) bool { return len(ids) > 0 })
	for _, id := range ids {
		if id != pub1.id && id != pub2.id {
			t.Fatalf("priv holds a reservation with %s, which is not a public node", id)
		}
	}
	t.Logf("priv: relay reservations with %v at %v", tn.names(ids), tn.since())
	if !slices.ContainsFunc(tn.nat(pub1), func(l string) bool { return strings.HasPrefix(l, "relay service: offering") }) {
		t.Fatalf("pub1 is public but its nat report does not say it offers a relay:\n%s", strings.Join(tn.nat(pub1), "\n"))
	}
	if slices.ContainsFunc(tn.nat(priv), func(l string) bool { return strings.HasPrefix(l, "relay service: offering") }) {
		t.Fatal("priv is private but says it offers a relay")
	}

	alice := tn.client(pub1, "alice")    // TCP gateway of a full node
	bob := tn.client(priv, "bob")        // TCP gateway of the NATed cli node
	carol := tn.client(pub2, "carol-ws") // WebSocket gateway of a websock node
	for _, c := range []*chatproc.Client{alice, bob, carol} {
		tn.join(c, "lobby", strings.TrimSuffix(c.Name, "-ws"))
	}
	tn.converse(alice, bob, "lobby", "pub-priv", chatTimeout)
	tn.converse(bob, carol, "lobby", "priv-ws", chatTimeout)
}

// TestConeHolePunch: two nodes behind port-preserving routers meet through
// a relay, and DCUtR hole punching replaces the relayed connection with a
// direct one, over QUIC, and over TCP when the routers drop UDP.
func TestConeHolePunch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		dropUDP   bool
		transport string // in the direct connection's remote address
	}{
		{"quic", false, "/udp/"},
		{"tcp", true, "/tcp/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tn := newTestnet(t)
			h1 := tn.publicHost("pub1", 1)
			h2 := tn.publicHost("pub2", 2)
			var prepare func(*netns.Router)
			if tc.dropUDP {
				prepare = func(r *netns.Router) {
					if err := r.Iptables("-A", "FORWARD", "-p", "udp", "-j", "DROP"); err != nil {
						t.Fatal(err)
					}
				}
			}
			ha, hb, r2 := tn.behindNATs(netns.Cone, prepare)

			pub1 := tn.startNode("pub1", "full", h1)
			tn.startNode("pub2", "cli", h2, pub1)
			start := time.Now()
			a := tn.startNode("a", "cli", ha, pub1)
			b := tn.startNode("b", "full", hb, pub1)

			addr := tn.waitLink(a, b, linkDirect, directTimeout-time.Since(start))
			took := time.Since(start)
			t.Logf("a -> b: direct connection %s %v after the NATed nodes started", addr, took.Round(100*time.Millisecond))
			if !strings.HasPrefix(addr, "/ip4/"+r2.Addr.String()+"/") || !strings.Contains(addr, tc.transport) {
				t.Fatalf("direct connection over %s, want %s through b's router %s", addr, tc.transport, r2.Addr)
			}
			// It was hole punched: neither node is dialable from outside.
			punched := func(n, other *node) bool {
				return slices.ContainsFunc(tn.nat(n), func(l string) bool {
					return strings.HasPrefix(l, "peer "+other.id+": direct") && strings.Contains(l, "(hole punched)")
				})
			}
			if !punched(a, b) && !punched(b, a) {
				t.Fatalf("neither nat report says the connection was hole punched:\n%s\n\n%s",
					strings.Join(tn.nat(a), "\n"), strings.Join(tn.nat(b), "\n"))
			}

			alice := tn.client(a, "alice")
			bob := tn.client(b, "bob")
			tn.join(alice, "cone", "alice")
			tn.join(bob, "cone", "bob")
			tn.converse(alice, bob, "cone", "punched", chatTimeout)
			if l, addr, err := tn.linkTo(a, b); err != nil || l != linkDirect {
				t.Fatalf("a -> b after chatting: %s %s %v", l, addr, err)
			}
		})
	}
}

// TestSymmetricRelayed: behind routers that pick a new port for every
// destination, hole punching fails and the nodes stay on a relayed
// connection. The relay service has no per-connection limits, so chat keeps
// working past libp2p's default 128 KiB and 2 minutes.
func TestSymmetricRelayed(t *testing.T) {
	t.Parallel()
	tn := newTestnet(t)
	h1 := tn.publicHost("pub1", 1)
	h2 := tn.publicHost("pub2", 2)
	ha, hb, _ := tn.behindNATs(netns.Symmetric, nil)

	pub1 := tn.startNode("pub1", "full", h1)
	tn.startNode("pub2", "cli", h2, pub1)
	start := time.Now()
	a := tn.startNode("a", "cli", ha, pub1)
	b := tn.startNode("b", "full", hb, pub1)

	addr := tn.waitLink(a, b, linkRelayed, relayedTimeout)
	t.Logf("a -> b: relayed connection %s (relay %s) %v after the NATed nodes started",
		addr, tn.names([]string{relayOf(addr)}), time.Since(start).Round(100*time.Millisecond))

	alice := tn.client(a, "alice")
	bob := tn.client(b, "bob")
	tn.join(alice, "sym", "alice")
	tn.join(bob, "sym", "bob")
	tn.converse(alice, bob, "sym", "start", chatTimeout)
	chatted := time.Now()

	// More than the 128 KiB a default libp2p relay lets through one
	// relayed connection in one direction.
	n, err := chatproc.Flood(alice, bob, "sym", "flood", 40, 4000, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("flood: %d bytes of message bodies alice -> bob through the relay", n)

	// The nodes stay connected through the relay, never directly, for the
	// whole period; then they chat again.
	lastAddr := addr
	check := time.NewTicker(10 * time.Second)
	defer check.Stop()
	survived := time.NewTimer(relaySurvival - time.Since(chatted))
	defer survived.Stop()
	for waiting := true; waiting; {
		select {
		case <-check.C:
		case <-survived.C:
			waiting = false
		}
		l, ad, err := tn.linkTo(a, b)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case l == linkDirect:
			t.Fatalf("a -> b became direct (%s) behind symmetric NATs: the NAT emulation is wrong", ad)
		case l == linkNone:
			t.Fatalf("a -> b: relayed connection lost %v after the first chat", time.Since(chatted).Round(time.Second))
		case ad != lastAddr:
			t.Logf("a -> b: now relayed over %s", ad)
			lastAddr = ad
		}
	}
	t.Logf("a -> b: still relayed over %s %v after the first chat", lastAddr, time.Since(chatted).Round(time.Second))

	// DCUtR tried and failed, and `nat` says so: the node that accepted the
	// relayed connection started the hole punch, both record it.
	failedPunch := func(n, other *node) (string, bool) {
		lines := tn.nat(n)
		relayedLine := slices.ContainsFunc(lines, func(l string) bool {
			return strings.HasPrefix(l, "peer "+other.id+": relayed via") && strings.Contains(l, "hole punch failed")
		})
		history := slices.ContainsFunc(lines, func(l string) bool {
			return strings.HasPrefix(l, "  "+other.id+": ") && strings.Contains(l, " attempts, 0 succeeded; last: hole punch failed")
		})
		return strings.Join(lines, "\n"), relayedLine && history
	}
	reportA, okA := failedPunch(a, b)
	reportB, okB := failedPunch(b, a)
	if !okA && !okB {
		t.Fatalf("neither nat report shows a failed hole punch:\n%s\n\n%s", reportA, reportB)
	}
	tn.converse(alice, bob, "sym", "after-3min", chatTimeout)
	if l, ad, _ := tn.linkTo(a, b); l != linkRelayed {
		t.Fatalf("a -> b after the last chat: %s %s", l, ad)
	}
}

// TestRelayFailover: the relay carrying a relayed conversation goes away.
// The private nodes drop its reservation, take one with another public
// node, reconnect through it, and the conversation resumes.
func TestRelayFailover(t *testing.T) {
	t.Parallel()
	tn := newTestnet(t)
	h1 := tn.publicHost("pub1", 1)
	h2 := tn.publicHost("pub2", 2)
	h3 := tn.publicHost("pub3", 3)
	ha, hb, _ := tn.behindNATs(netns.Symmetric, nil)

	pub1 := tn.startNode("pub1", "full", h1)
	pubs := []*node{pub1, tn.startNode("pub2", "websock", h2, pub1), tn.startNode("pub3", "cli", h3, pub1)}
	a := tn.startNode("a", "cli", ha, pub1)
	b := tn.startNode("b", "full", hb, pub1)

	// Everyone comes to know everyone (discovery), the private nodes hold
	// two reservations each, and a and b are relayed.
	for _, p := range pubs {
		tn.waitLink(a, p, linkDirect, reachabilityTimeout)
		tn.waitLink(b, p, linkDirect, reachabilityTimeout)
	}
	two := func(ids []string) bool { return len(ids) == 2 }
	resA := tn.waitReservations(a, "two relays", reachabilityTimeout, two)
	resB := tn.waitReservations(b, "two relays", reachabilityTimeout, two)
	t.Logf("reservations at %v: a via %v, b via %v", tn.since(), tn.names(resA), tn.names(resB))
	addr := tn.waitLink(a, b, linkRelayed, relayedTimeout)

	alice := tn.client(a, "alice")
	bob := tn.client(b, "bob")
	tn.join(alice, "failover", "alice")
	tn.join(bob, "failover", "bob")
	tn.converse(alice, bob, "failover", "before", chatTimeout)

	// Kill the relay that carries a <-> b: the relayed connection goes
	// with it.
	if l, ad, err := tn.linkTo(a, b); err == nil && l == linkRelayed {
		addr = ad
	}
	victim := tn.byID(relayOf(addr))
	if victim == nil {
		t.Fatalf("a -> b is relayed over %s, not through one of the public nodes", addr)
	}
	t.Logf("a -> b relayed via %s; killing it", victim.name)
	killed := time.Now()
	tn.kill(victim)

	without := func(ids []string) bool { return len(ids) == 2 && !slices.Contains(ids, victim.id) }
	for _, n := range []*node{a, b} {
		ids := tn.waitReservations(n, "two relays other than "+victim.name, failoverTimeout, without)
		t.Logf("%s: reservations via %v %v after the kill", n.name, tn.names(ids), time.Since(killed).Round(100*time.Millisecond))
	}
	err := chatproc.Poll(failoverTimeout, time.Second, func() (bool, error) {
		l, ad, err := tn.linkTo(a, b)
		addr = ad
		return err == nil && l == linkRelayed && relayOf(ad) != victim.id, err
	})
	if err != nil {
		t.Fatalf("a -> b never reconnected through another relay (last %q): %v", addr, err)
	}
	t.Logf("a -> b: relayed again via %s %v after the kill", tn.names([]string{relayOf(addr)}), time.Since(killed).Round(100*time.Millisecond))
	tn.converse(alice, bob, "failover", "after", chatTimeout)
}
