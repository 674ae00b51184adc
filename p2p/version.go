package p2p

import (
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// ChannelsProtocol marks, in what identify announces, a node whose
// channels travel on the version-2 topics (darkchat/v2/channel/, with
// version-2 channel messages, PROTOCOL.md §4.3). Nothing is spoken over it:
// its handler resets every stream. A darkchatd peer that runs GossipSub but
// does not announce it runs the previous version, whose channels are on
// darkchat/v1/channel/: the two share no channel (DMs, key bundles and the
// DHT still work between them).
const ChannelsProtocol = protocol.ID("/darkchat/channels/2.0.0")

// nodeAgent is the user agent darkchatd's hosts announce (newHost); a
// peer's agent starting with it is a darkchat node.
const nodeAgent = "darkchatd"

// maxOldPeersRemembered bounds the peers the node remembers having warned
// about; past it the oldest is forgotten (and would be warned about again).
const maxOldPeersRemembered = 4096

// registerChannelsMarker announces ChannelsProtocol on h.
func registerChannelsMarker(h interface {
	SetStreamHandler(protocol.ID, network.StreamHandler)
}) {
	h.SetStreamHandler(ChannelsProtocol, func(s network.Stream) { _ = s.Reset() })
}

// runsGossipSub reports whether protocols include a GossipSub version.
func runsGossipSub(protocols []protocol.ID) bool {
	return slices.ContainsFunc(protocols, func(p protocol.ID) bool { return strings.HasPrefix(string(p), "/meshsub/") })
}

// isOldVersionPeer reports whether a peer with this agent and these
// protocols is a darkchat node of the previous version: a darkchatd that
// runs GossipSub without ChannelsProtocol.
func isOldVersionPeer(agent string, protocols []protocol.ID) bool {
	return strings.HasPrefix(agent, nodeAgent) && runsGossipSub(protocols) && !slices.Contains(protocols, ChannelsProtocol)
}

// oldPeers remembers, first in first out, the previous-version peers the
// node has warned about, so that each is logged once however often it
// reconnects or is identified again. Only the event loop uses it.
type oldPeers struct {
	seen  map[peer.ID]struct{}
	order []peer.ID // oldest first; a ring once full
	next  int       // the slot the next peer takes once full
	limit int
}

func newOldPeers(limit int) *oldPeers {
	return &oldPeers{seen: make(map[peer.ID]struct{}), limit: limit}
}

// add records p and reports whether it is new.
func (o *oldPeers) add(p peer.ID) bool {
	if _, ok := o.seen[p]; ok {
		return false
	}
	if len(o.order) < o.limit {
		o.order = append(o.order, p)
	} else {
		delete(o.seen, o.order[o.next])
		o.order[o.next] = p
		o.next = (o.next + 1) % o.limit
	}
	o.seen[p] = struct{}{}
	return true
}

// checkPeerVersion warns, once per peer, about a darkchat node of the
// previous version. It runs on the event loop: the peerstore lookups it
// makes for a protocol update are in memory and do not block.
func (n *Node) checkPeerVersion(p peer.ID, agent string, protocols []protocol.ID) {
	if !isOldVersionPeer(agent, protocols) || !n.oldPeers.add(p) {
		return
	}
	n.log.Warn("peer runs the previous darkchat version: it shares no channel with this node (DMs still work); upgrade it",
		"peer", p, "agent", agent)
}

// checkPeerVersionUpdate is checkPeerVersion for a peer whose protocols
// changed after identify (its GossipSub started later than its host).
func (n *Node) checkPeerVersionUpdate(p peer.ID, added []protocol.ID) {
	if !runsGossipSub(added) {
		return
	}
	ps := n.basic.Peerstore()
	v, err := ps.Get(p, "AgentVersion")
	agent, _ := v.(string)
	if err != nil || !strings.HasPrefix(agent, nodeAgent) {
		return
	}
	protocols, err := ps.GetProtocols(p)
	if err != nil {
		return
	}
	n.checkPeerVersion(p, agent, protocols)
}
