package p2p

import (
	"context"
	"crypto/rand"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
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

func TestRelaysFirstOffersRelaysBeforeOthers(t *testing.T) {
	n := newTestNode(t, nil)
	plain1, relay, plain2 := randomPeer(t), randomPeer(t), randomPeer(t)
	if err := n.Host().Peerstore().AddProtocols(relay, proto.ProtoIDv2Hop); err != nil {
		t.Fatal(err)
	}
	source := func(ctx context.Context, num int) <-chan peer.AddrInfo {
		if num != 0 {
			t.Errorf("the node's source was asked for %d peers, want all (0)", num)
		}
		out := make(chan peer.AddrInfo, 3)
		for _, p := range []peer.ID{plain1, relay, plain2} {
			out <- peer.AddrInfo{ID: p}
		}
		close(out)
		return out
	}
	var built atomic.Pointer[host.Host]
	h := n.Host()
	built.Store(&h)
	var got []peer.ID
	for pi := range relaysFirst(&built, source)(t.Context(), 2) {
		got = append(got, pi.ID)
	}
	if want := []peer.ID{relay, plain1}; !slices.Equal(got, want) {
		t.Fatalf("candidates %v, want %v", got, want)
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
