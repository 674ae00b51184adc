package p2p

import (
	"context"
	"crypto/rand"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
)

func randomPeer(t *testing.T) peer.ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestNATTrackerRecordsHolePunches(t *testing.T) {
	tr := newNATTracker()
	p := randomPeer(t)
	now := time.Now().UnixNano()
	for _, e := range []any{
		&holepunch.DirectDialEvt{Success: false, Error: "failed to dial:\n  * [/ip4/198.18.0.12/udp/4001/quic-v1] timeout"},
		&holepunch.StartHolePunchEvt{RemoteAddrs: []string{"/ip4/198.18.0.12/udp/4001/quic-v1"}, RTT: 5 * time.Millisecond},
		&holepunch.EndHolePunchEvt{Success: false, Error: "all dials failed\n  * [/ip4/198.18.0.12/udp/4001/quic-v1] timeout: no recent network activity"},
		&holepunch.StartHolePunchEvt{RTT: 5 * time.Millisecond},
		&holepunch.EndHolePunchEvt{Success: true, EllapsedTime: 8 * time.Millisecond},
	} {
		tr.Trace(&holepunch.Event{Timestamp: now, Remote: p, Evt: e})
	}
	r := tr.peers[p]
	if r.attempts != 2 || r.successes != 1 || r.outcome != "hole punch succeeded in 8ms" {
		t.Fatalf("record %+v", r)
	}
	tr.Trace(&holepunch.Event{Timestamp: now, Remote: p, Evt: &holepunch.EndHolePunchEvt{Error: "a\nb"}})
	if strings.Contains(tr.peers[p].outcome, "\n") {
		t.Fatalf("outcome spans lines: %q", tr.peers[p].outcome)
	}
}

func TestNATTrackerIsBounded(t *testing.T) {
	tr := newNATTracker()
	for i := 0; i < maxHolePunchPeers+10; i++ {
		tr.Trace(&holepunch.Event{Timestamp: int64(i), Remote: randomPeer(t), Evt: &holepunch.StartHolePunchEvt{}})
	}
	if len(tr.peers) != maxHolePunchPeers {
		t.Fatalf("%d records, want %d", len(tr.peers), maxHolePunchPeers)
	}
}

func TestNATReportExplainsPeers(t *testing.T) {
	a := newTestNode(t, nil)
	b := newTestNode(t, nil)
	link(t, a, b)
	var report []string
	// identify reports the address b sees us at shortly after connecting.
	waitFor(t, 10*time.Second, "an observed address", func() bool {
		report = a.NATReport()
		return slices.ContainsFunc(report, func(l string) bool { return strings.HasPrefix(l, "observed addrs (") })
	})
	for _, l := range report {
		if strings.Contains(l, "\n") {
			t.Fatalf("report line spans lines: %q", l)
		}
	}
	want := []string{
		"reachability: unknown",
		"relay reservations: none",
		"relay service: disabled",
		"hole punching: no attempts",
		"peer " + b.ID().String() + ": direct over /ip4/127.0.0.1/",
	}
	for _, w := range want {
		if !slices.ContainsFunc(report, func(l string) bool { return strings.HasPrefix(l, w) }) {
			t.Errorf("no line starting %q in\n%s", w, strings.Join(report, "\n"))
		}
	}
}

func TestRelayOf(t *testing.T) {
	relay := randomPeer(t)
	target := randomPeer(t)
	for _, tc := range []struct {
		addr string
		want string
	}{
		{"/ip4/198.18.0.1/udp/4001/quic-v1/p2p/" + relay.String() + "/p2p-circuit", relay.String()},
		{"/ip4/198.18.0.1/tcp/4001/p2p/" + relay.String() + "/p2p-circuit/p2p/" + target.String(), relay.String()},
		{"/ip4/198.18.0.1/tcp/4001/p2p-circuit", "an unknown relay"},
	} {
		if got := relayOf(ma.StringCast(tc.addr)); got != tc.want {
			t.Errorf("relayOf(%s) = %s, want %s", tc.addr, got, tc.want)
		}
	}
}

// TestOnePublicNodeRelaysForAPrivateOne: a node the operator declares
// public offers the relay service at once, with no other public node to
// confirm it, and a private node connected to it holds a reservation within
// seconds: a third node reaches the private one through the public node's
// relay. (On loopback AutoRelay advertises no relay address, since it keeps
// only a relay's public addresses; the NAT tests in tstest/nattest check
// those.)
func TestOnePublicNodeRelaysForAPrivateOne(t *testing.T) {
	pub := newTestNode(t, func(c *Config) { c.RelayService = true; c.Reachability = ReachabilityPublic })
	priv := newTestNode(t, func(c *Config) { c.Reachability = ReachabilityPrivate })
	// A plain host, without darkchat's discovery, which would find priv's
	// direct (loopback) address through the DHT and dial it.
	other, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Close() })
	waitFor(t, 5*time.Second, "the public node to offer a relay", func() bool {
		return slices.Contains(pub.Host().Mux().Protocols(), proto.ProtoIDv2Hop)
	})
	start := time.Now()
	link(t, priv, pub)
	circuit := ma.StringCast("/ip4/127.0.0.1/tcp/" + strconv.Itoa(int(tcpAddr(t, pub).Port())) +
		"/p2p/" + pub.ID().String() + "/p2p-circuit")
	var lastErr error
	waitFor(t, 10*time.Second, "the private node to be reachable through the public node's relay", func() bool {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		lastErr = other.Connect(ctx, peer.AddrInfo{ID: priv.ID(), Addrs: []ma.Multiaddr{circuit}})
		return lastErr == nil
	})
	t.Logf("reachable through the relay %v after connecting to it", time.Since(start).Round(time.Millisecond))
	for _, c := range other.Network().ConnsToPeer(priv.ID()) {
		if !isRelayed(c.RemoteMultiaddr()) {
			t.Fatalf("other reaches priv over %s, want the relay", c.RemoteMultiaddr())
		}
	}
	if pub.Reachability() != network.ReachabilityPublic || priv.Reachability() != network.ReachabilityPrivate {
		t.Fatalf("reachability pub %v priv %v", pub.Reachability(), priv.Reachability())
	}
	if slices.Contains(priv.Host().Mux().Protocols(), proto.ProtoIDv2Hop) {
		t.Fatal("the private node offers a relay")
	}
	report := strings.Join(pub.NATReport(), "\n")
	if !strings.Contains(report, "reachability: public (set by the operator (--reachability public))") {
		t.Fatalf("public node's report:\n%s", report)
	}
}

// TestRelaySourceOffersRelaysAsTheyAppear: AutoRelay's candidate stream
// offers a connected peer the moment it starts relaying, and never one that
// does not relay.
func TestRelaySourceOffersRelaysAsTheyAppear(t *testing.T) {
	plain := newTestNode(t, func(c *Config) { c.Reachability = ReachabilityPrivate })
	relayNode := newTestNode(t, func(c *Config) { c.Reachability = ReachabilityPrivate })
	me := newTestNode(t, func(c *Config) { c.Reachability = ReachabilityPrivate })
	link(t, me, plain)
	link(t, me, relayNode)
	// A second stream beside AutoRelay's, from the node's own source,
	// which its event loop tells about identified peers.
	ctx, cancel := context.WithCancel(t.Context())
	stream := me.relays.candidates(ctx, 10)
	// relayNode starts relaying (as relaysvc does when its node turns
	// public): identify push tells me, and the stream offers it.
	r, err := relay.New(relayNode.basic, relay.WithResources(relayResources()))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	select {
	case pi := <-stream:
		if pi.ID != relayNode.ID() {
			t.Fatalf("offered %s, which does not relay (relay is %s, plain %s)", pi.ID, relayNode.ID(), plain.ID())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the relay was not offered within 10 s of starting its service")
	}
	cancel()
	for range stream { // the stream ends with its search
	}
}

func TestDecideReachability(t *testing.T) {
	pubTCP := ma.StringCast("/ip4/198.18.0.10/tcp/4001")
	nat := ma.StringCast("/ip4/198.18.0.11/tcp/4001")
	for _, tc := range []struct {
		name string
		mode ReachabilityMode
		ev   reachEvidence
		want network.Reachability
		why  string
	}{
		{"operator public", ReachabilityPublic, reachEvidence{v2Unreachable: []ma.Multiaddr{pubTCP}}, network.ReachabilityPublic, "--reachability public"},
		{"operator private", ReachabilityPrivate, reachEvidence{v2Reachable: []ma.Multiaddr{pubTCP}}, network.ReachabilityPrivate, "--reachability private"},
		{"v2 confirmed", ReachabilityAuto, reachEvidence{v2Reachable: []ma.Multiaddr{pubTCP}, natSeen: nat}, network.ReachabilityPublic, "AutoNAT v2: peers dialled us back at /ip4/198.18.0.10/tcp/4001"},
		{"v2 refuted beats inbound", ReachabilityAuto, reachEvidence{v2Unreachable: []ma.Multiaddr{pubTCP}, publicListen: []ma.Multiaddr{pubTCP}, inbound: "x"}, network.ReachabilityPrivate, "could not dial us back"},
		{"inbound on a public interface", ReachabilityAuto, reachEvidence{publicListen: []ma.Multiaddr{pubTCP}, inbound: "peer-x"}, network.ReachabilityPublic, "peer peer-x dialled us directly"},
		{"behind a NAT", ReachabilityAuto, reachEvidence{natSeen: nat}, network.ReachabilityPrivate, "behind a NAT"},
		{"public interface, no peer yet", ReachabilityAuto, reachEvidence{publicListen: []ma.Multiaddr{pubTCP}}, network.ReachabilityUnknown, "no peer has dialled us there yet"},
		{"nothing known", ReachabilityAuto, reachEvidence{}, network.ReachabilityUnknown, "no connected peer"},
	} {
		got, why := decideReachability(tc.mode, tc.ev)
		if got != tc.want || !strings.Contains(why, tc.why) {
			t.Errorf("%s: %v (%s), want %v (…%s…)", tc.name, got, why, tc.want, tc.why)
		}
	}
}

func TestAddrSetHashIgnoresOrder(t *testing.T) {
	x := ma.StringCast("/ip4/198.18.0.1/tcp/4001")
	y := ma.StringCast("/ip4/198.18.0.1/udp/4001/quic-v1")
	z := ma.StringCast("/ip4/198.18.0.2/udp/4001/quic-v1/p2p-circuit")
	if addrSetHash([]ma.Multiaddr{x, y}) != addrSetHash([]ma.Multiaddr{y, x}) {
		t.Fatal("order changes the hash")
	}
	if addrSetHash([]ma.Multiaddr{x, y}) == addrSetHash([]ma.Multiaddr{x, y, z}) {
		t.Fatal("a new (relay) address does not change the hash")
	}
}

// TestNATReportSaysWhyNoReservation: a node that is not public and holds
// no reservation says why and what to do, in each of the three cases: no
// peer, no peer that relays, a relay that refuses (with its reason).
func TestNATReportSaysWhyNoReservation(t *testing.T) {
	priv := newTestNode(t, func(c *Config) { c.Reachability = ReachabilityPrivate })
	has := func(want string) {
		t.Helper()
		report := strings.Join(priv.NATReport(), "\n")
		if !strings.Contains(report, want) {
			t.Fatalf("nat report lacks %q:\n%s", want, report)
		}
	}
	has("relay reservations: none")
	has("why: no peer is connected directly; peer with a public node: --peer <its-ip>:<its-peer-port>")

	plain := newTestNode(t, func(c *Config) { c.Reachability = ReachabilityPrivate })
	link(t, priv, plain)
	has("why: none of the 1 directly connected peers offers a relay")

	// A relay whose access control refuses everyone.
	refusing := newTestNode(t, func(c *Config) { c.Reachability = ReachabilityPrivate })
	r, err := relay.New(refusing.basic, relay.WithACL(denyAll{}))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	link(t, priv, refusing)
	waitFor(t, 5*time.Second, "identify to announce the refusing relay", func() bool {
		ps, _ := priv.Host().Peerstore().SupportsProtocols(refusing.ID(), proto.ProtoIDv2Hop)
		return len(ps) > 0
	})
	has("relay " + refusing.ID().String() + " refused a reservation:")
	has("PERMISSION_DENIED")
}

type denyAll struct{}

func (denyAll) AllowReserve(peer.ID, ma.Multiaddr) bool          { return false }
func (denyAll) AllowConnect(peer.ID, ma.Multiaddr, peer.ID) bool { return false }

// TestNATReportSaysWhyRelayIsIdle: a node that relays only when public
// says why its relay is idle and names the flag that forces it.
func TestNATReportSaysWhyRelayIsIdle(t *testing.T) {
	n := newTestNode(t, func(c *Config) { c.RelayService = true })
	report := strings.Join(n.NATReport(), "\n")
	for _, want := range []string{
		"reachability: unknown (no connected peer has told us how it sees us yet)",
		"relay service: idle: this node is not known to be publicly reachable",
		"start it with --reachability public to relay at once",
	} {
		if !strings.Contains(report, want) {
			t.Fatalf("nat report lacks %q:\n%s", want, report)
		}
	}
}

// TestAnnounceAddsAddresses: --announce addresses are advertised, and
// ip:port means TCP and QUIC.
func TestAnnounceAddsAddresses(t *testing.T) {
	announce, err := ParseAnnounceAddr("203.0.113.7:4001")
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNode(t, func(c *Config) { c.Announce = announce })
	for _, want := range []string{"/ip4/203.0.113.7/tcp/4001", "/ip4/203.0.113.7/udp/4001/quic-v1"} {
		if !slices.ContainsFunc(n.Host().Addrs(), func(a ma.Multiaddr) bool { return a.String() == want }) {
			t.Errorf("addrs %v lack %s", n.Host().Addrs(), want)
		}
	}
	for _, bad := range []string{"nowhere", "203.0.113.7:0", "/ip4/203.0.113.7/tcp/4001/p2p/" + n.ID().String()} {
		if _, err := ParseAnnounceAddr(bad); err == nil {
			t.Errorf("ParseAnnounceAddr(%q) accepted it", bad)
		}
	}
}
