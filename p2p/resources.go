package p2p

import (
	"github.com/libp2p/go-libp2p"

	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// libp2p's resource manager limits, set for a chat node rather than scaled
// from go-libp2p's defaults (which are sized for IPFS nodes that serve
// blocks to thousands of peers).
//
// Descriptors: the gateway takes half of the process's open-file limit for
// client connections (gateway.Config.MaxConns); peer connections get the
// other half less peerFDReserve for the DHT, listeners and logs. Of those,
// a quarter is kept for the node's own outbound dials (bootstrap peers,
// relays, hole punches), so inbound strangers cannot use up every slot.
//
// Per peer: a darkchat peer needs one connection, a second while a relayed
// connection is being replaced by a direct one, and a third for a
// simultaneous dial; peerConns allows that with room. Its streams are a
// GossipSub stream each way, DHT queries (a few at a time per lookup),
// identify, ping, AutoNAT and hole punching; peerStreams is generous for
// that and bounds what one peer can make the node hold.
//
// Per protocol and peer: GossipSub needs one stream each way (two while
// one replaces the other); a peer that opens more is abusing it.
// The DHT issues at most its alpha (3) × a few concurrent queries to one
// peer.
//
// Memory: what the multiplexers and protocols reserve. systemMemory caps
// the node's libp2p buffers at a level that keeps its RSS within the
// 256 MiB the attack tests allow; peerMemory keeps one peer from taking a
// large share of it.
//
// Per address: the resource manager's connection limiter holds a source
// address (IPv4 /32, IPv6 /56 and /48) to connsPerIPv4 / connsPerIPv6 /
// connsPerIPv6in48 connections.
// go-libp2p's default is 8; several darkchat nodes behind one home router
// or a carrier-grade NAT share an address, so darkchat allows more, while a
// single attacking address still gets only a few dozen handshakes at once.
// Loopback is exempt (go-libp2p's own rule), which local testnets rely on.
const (
	peerFDReserve    = 256
	minPeerFDs       = 128
	peerConns        = 8
	peerStreams      = 512
	systemMemory     = 192 << 20
	transientMem     = 32 << 20
	peerMemory       = 32 << 20
	meshsubStreams   = 2
	dhtStreams       = 32
	connsPerIPv4     = 32
	connsPerIPv6     = 64
	connsPerIPv6in48 = 256
)

// peerFDBudget is how many descriptors peer connections may use for an
// open-file limit of fdLimit (0: unknown).
func peerFDBudget(fdLimit int) int {
	if fdLimit <= 0 {
		fdLimit = 1024
	}
	return max(fdLimit/2-peerFDReserve, minPeerFDs)
}

// resourceLimits returns the node's resource manager limits for fds
// descriptors (peerFDBudget). Services go-libp2p starts itself (identify,
// ping, AutoNAT, relay, hole punching) keep the limits it sets for them.
func resourceLimits(fds int) rcmgr.ConcreteLimitConfig {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	base := limits.AutoScale().ToPartialLimitConfig()

	conns := rcmgr.LimitVal(fds)
	base.System = rcmgr.ResourceLimits{
		Conns:           conns,
		ConnsInbound:    conns * 3 / 4,
		ConnsOutbound:   conns,
		FD:              conns,
		Streams:         conns * 16,
		StreamsInbound:  conns * 8,
		StreamsOutbound: conns * 8,
		Memory:          systemMemory,
	}
	// Connections being upgraded and streams being negotiated.
	base.Transient = rcmgr.ResourceLimits{
		Conns:           256,
		ConnsInbound:    128,
		ConnsOutbound:   128,
		FD:              256,
		Streams:         512,
		StreamsInbound:  256,
		StreamsOutbound: 256,
		Memory:          transientMem,
	}
	base.PeerDefault = rcmgr.ResourceLimits{
		Conns:           peerConns,
		ConnsInbound:    peerConns / 2,
		ConnsOutbound:   peerConns / 2,
		FD:              peerConns,
		Streams:         peerStreams,
		StreamsInbound:  peerStreams / 2,
		StreamsOutbound: peerStreams / 2,
		Memory:          peerMemory,
	}
	perPeer := map[protocol.ID]rcmgr.ResourceLimits{}
	for _, id := range []protocol.ID{"/meshsub/1.0.0", "/meshsub/1.1.0", "/meshsub/1.2.0", "/floodsub/1.0.0"} {
		perPeer[id] = rcmgr.ResourceLimits{Streams: meshsubStreams * 2, StreamsInbound: meshsubStreams, StreamsOutbound: meshsubStreams}
	}
	perPeer[protocol.ID(DHTProtocolPrefix+"/kad/1.0.0")] = rcmgr.ResourceLimits{Streams: dhtStreams * 2, StreamsInbound: dhtStreams, StreamsOutbound: dhtStreams}
	if base.ProtocolPeer == nil {
		base.ProtocolPeer = map[protocol.ID]rcmgr.ResourceLimits{}
	}
	for id, l := range perPeer {
		base.ProtocolPeer[id] = l
	}
	return base.Build(limits.AutoScale())
}

// connLimitsPerSubnet are the per-address connection limits (see above).
func connLimitsPerSubnet() (v4, v6 []rcmgr.ConnLimitPerSubnet) {
	return []rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: connsPerIPv4}},
		[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 56, ConnCount: connsPerIPv6}, {PrefixLength: 48, ConnCount: connsPerIPv6in48}}
}
