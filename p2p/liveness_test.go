package p2p

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// pingConn tells a live connection from a dead one by the peer's answer
// on that connection, and a peer without the ping service is alive too.
func TestPingConnOverTheConnectionItself(t *testing.T) {
	newHost := func(opts ...libp2p.Option) host.Host {
		h, err := libp2p.New(append([]libp2p.Option{libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0")}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	a, b := newHost(), newHost()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	conn := a.Network().ConnsToPeer(b.ID())[0]
	if err := pingConn(ctx, conn); err != nil {
		t.Fatalf("live connection: %v", err)
	}

	b.RemoveStreamHandler(ping.ID)
	if err := pingConn(ctx, conn); err != nil {
		t.Fatalf("live connection to a peer without ping: %v", err)
	}

	// A peer whose process has gone (its host closed) answers nothing.
	b.Close()
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if err := pingConn(short, conn); err == nil {
		t.Fatal("the connection to a closed host answered")
	}
}

// When GossipSub's stream to a peer breaks while a connection to the peer
// remains (the stale connection of a healed cut closing under it), the
// node's GossipSub forgets the peer's subscriptions and the peer never
// tells them again. The node must get back to sending the peer its
// channel's messages, and the peer to sending it theirs.
func TestChannelSurvivesAStreamLostOnALiveConnection(t *testing.T) {
	a, b := newTestNode(t, nil), newTestNode(t, nil)
	link(t, b, a)
	sa, err := a.Subscribe("room", 16)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.Subscribe("room", 16)
	if err != nil {
		t.Fatal(err)
	}
	inRoom := func(n, of *Node) func() bool {
		return func() bool { return contains(n.ChannelPeers("room"), of.ID()) }
	}
	waitFor(t, 10*time.Second, "both nodes to see the other in the channel", func() bool { return inRoom(a, b)() && inRoom(b, a)() })

	// B's GossipSub stream to A breaks; the connection stays.
	var reset int
	for _, c := range a.Host().Network().ConnsToPeer(b.ID()) {
		for _, s := range c.GetStreams() {
			if strings.HasPrefix(string(s.Protocol()), "/meshsub/") && s.Stat().Direction == network.DirInbound {
				s.Reset()
				reset++
			}
		}
	}
	if reset == 0 {
		t.Fatal("found no GossipSub stream from B to reset")
	}
	// Messages sent while the two reconnect may be lost (the gateways'
	// repair brings those back); within seconds, each side's messages
	// reach the other again.
	for _, tc := range []struct {
		from *Node
		to   *Subscription
	}{{b, sa}, {a, sb}} {
		deadline := time.After(10 * time.Second)
		tick := time.NewTicker(250 * time.Millisecond)
		sent := 0
		publish := func() {
			if err := tc.from.Publish(t.Context(), "room", fmt.Appendf(nil, "%d from %s", sent, tc.from.ID())); err != nil {
				t.Fatal(err)
			}
			sent++
		}
		publish()
	wait:
		for {
			select {
			case m := <-tc.to.C():
				if strings.HasSuffix(string(m.Data), " from "+tc.from.ID().String()) {
					break wait
				} // else the receiving node's own, published before
			case <-tick.C:
				publish()
			case <-deadline:
				t.Fatalf("none of the %d messages %s published reached the other node within 10 s of the break", sent, tc.from.ID())
			}
		}
		tick.Stop()
	}
}
