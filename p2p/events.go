package p2p

import (
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

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

// startEvents subscribes to the host's event bus and starts the goroutine
// that reacts to address and connectivity changes, and logs the guard's
// summaries.
func (n *Node) startEvents() error {
	sub, err := n.host.EventBus().Subscribe([]any{
		new(event.EvtLocalAddressesUpdated),
		new(event.EvtPeerConnectednessChanged),
	})
	if err != nil {
		return fmt.Errorf("subscribe to host events: %w", err)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer sub.Close()
		var last []ma.Multiaddr
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
					addrs := n.Addrs()
					if !slices.EqualFunc(addrs, last, func(a, b ma.Multiaddr) bool { return a.Equal(b) }) {
						last = addrs
						if n.cfg.OnAddrsChanged != nil {
							n.cfg.OnAddrsChanged(addrs)
						}
					}
				case event.EvtPeerConnectednessChanged:
					if e.Connectedness == network.Connected {
						n.kick()
					} else {
						n.guard.forget(e.Peer)
					}
				}
			}
		}
	}()
	return nil
}
