package p2p

import (
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	ma "github.com/multiformats/go-multiaddr"
)

// hostEvents are the host's events the node reacts to. The node subscribes
// to them once, and its event loop hands each to the parts that need it:
//
//   - address changes: OnAddrsChanged, the discovery loop (a new relay
//     address is re-advertised) and the reachability decision;
//   - connectedness changes: the discovery loop (a new peer may know
//     others; a lost one may be reachable another way), the guard (which
//     forgets a disconnected peer) and the reachability decision;
//   - identify results: the `nat` report (how peers observe us), the
//     reachability decision, AutoRelay's candidates (a peer may relay) and
//     the warning about peers of the previous version (checkPeerVersion);
//   - protocol updates: AutoRelay's candidates (a peer started relaying)
//     and that warning (a peer started GossipSub after identify);
//   - AutoNAT v2's address checks: the reachability decision;
//   - the NAT type and AutoRelay's reservations: the `nat` report.
var hostEvents = []any{
	new(event.EvtLocalAddressesUpdated),
	new(event.EvtPeerConnectednessChanged),
	new(event.EvtPeerIdentificationCompleted),
	new(event.EvtPeerProtocolsUpdated),
	new(event.EvtHostReachableAddrsChanged),
	new(event.EvtNATDeviceTypeChanged),
	new(event.EvtAutoRelayAddrsUpdated),
}

// hostEventBuffer is the node's queue on the host's event bus. libp2p's
// bus makes an emitter (the swarm, identify, AutoRelay) wait while a
// subscriber's queue is full, so the event loop only records and signals:
// anything slow (a discovery round, re-deriving reachability) runs on the
// goroutine that owns it, woken through a one-slot channel. The queue
// absorbs bursts, such as a flood of connections, and the time before the
// loop starts.
const hostEventBuffer = 1024

// subscribeHostEvents makes the node's one subscription to the host's
// events, as soon as the host exists so that none is missed; the event
// loop starts reading it once the node is complete.
func subscribeHostEvents(bus event.Bus) (event.Subscription, error) {
	sub, err := bus.Subscribe(hostEvents, eventbus.Name("darkchat node"), eventbus.BufSize(hostEventBuffer))
	if err != nil {
		return nil, fmt.Errorf("subscribe to host events: %w", err)
	}
	return sub, nil
}

// streamlessGrace is how long a connected peer may stay without a
// GossipSub stream. GossipSub respawns the stream of a peer that is still
// connected when one of its connections closes, with a backoff; after a few
// respawns in a short time (a relay that died, duplicate relayed and
// hole-punched connections closing) it gives up, and the peer stays
// connected but never hears from this node again: a conversation through a
// replacement relay then stays silent.
const streamlessGrace = 15 * time.Second

// reviveStreamless closes the connections of peers left without a GossipSub
// stream; the discovery loop dials them again, and GossipSub starts afresh
// with the new connection.
func (n *Node) reviveStreamless() {
	net := n.basic.Network()
	peers := n.routers.streamless(streamlessGrace, func(p peer.ID) bool {
		return net.Connectedness(p) == network.Connected
	})
	for _, p := range peers {
		n.log.Debug("peer connected without a GossipSub stream; reconnecting to revive it", "peer", p)
		net.ClosePeer(p)
	}
	if len(peers) > 0 {
		n.guard.count("peers reconnected to revive their GossipSub stream", len(peers))
		n.kick()
	}
}

// signal wakes the goroutine that waits on a one-slot channel, without
// blocking: a wake-up already pending covers this one.
func signal(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// eventLoop is the node's only reader of host events (see hostEvents). It
// also logs the guard's and the queues' summaries, and revives peers left
// without a GossipSub stream. It owns sub and closes it.
func (n *Node) eventLoop(sub event.Subscription) {
	defer sub.Close()
	var lastAddrs []ma.Multiaddr
	summary := time.NewTicker(guardSummaryInterval)
	defer summary.Stop()
	revive := time.NewTicker(streamlessGrace / 2)
	defer revive.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-summary.C:
			n.guard.summarize()
			n.drops.summarize()
		case <-revive.C:
			n.reviveStreamless()
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			switch e := e.(type) {
			case event.EvtLocalAddressesUpdated:
				signal(n.reachWake)
				signal(n.discAddrsChanged)
				addrs := n.Addrs()
				if !slices.EqualFunc(addrs, lastAddrs, func(a, b ma.Multiaddr) bool { return a.Equal(b) }) {
					lastAddrs = addrs
					if n.cfg.OnAddrsChanged != nil {
						n.cfg.OnAddrsChanged(addrs)
					}
				}
			case event.EvtPeerConnectednessChanged:
				signal(n.reachWake)
				if e.Connectedness == network.Connected {
					n.lost.remove(e.Peer)
					n.kick()
				} else {
					n.peerLost(e.Peer) // before the guard forgets a ban
					n.guard.forget(e.Peer)
					signal(n.discPeerLost)
				}
			case event.EvtPeerIdentificationCompleted:
				n.nat.record(e)
				signal(n.reachWake)
				n.relays.notify()
				n.checkPeerVersion(e.Peer, e.AgentVersion, e.Protocols)
			case event.EvtPeerProtocolsUpdated:
				n.relays.notify()
				n.checkPeerVersionUpdate(e.Peer, e.Added)
			case event.EvtHostReachableAddrsChanged:
				signal(n.reachWake)
			case event.EvtNATDeviceTypeChanged, event.EvtAutoRelayAddrsUpdated:
				n.nat.record(e)
			}
		}
	}
}
