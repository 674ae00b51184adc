package p2p

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// introspectableHost is the part of libp2p's basic host the node needs
// beyond host.Host: its direct addresses, AutoNAT's verdict and AutoNAT
// v2's per-address checks.
type introspectableHost interface {
	host.Host
	AllAddrs() []ma.Multiaddr
	Reachability() network.Reachability
	ConfirmedAddrs() (reachable, unreachable, unknown []ma.Multiaddr)
}

// DHTProtocolPrefix keeps darkchat's Kademlia DHT apart from the public IPFS
// DHT: nodes speaking /ipfs/kad/1.0.0 never enter our routing tables.
const DHTProtocolPrefix = "/darkchat"

// listenAddrs returns the TCP and QUIC listen multiaddrs for ip:port.
func listenAddrs(ip netip.Addr, port int) []ma.Multiaddr {
	family := "ip4"
	if ip.Is6() && !ip.Is4In6() {
		family = "ip6"
	}
	p := strconv.Itoa(port)
	return []ma.Multiaddr{
		ma.StringCast("/" + family + "/" + ip.Unmap().String() + "/tcp/" + p),
		ma.StringCast("/" + family + "/" + ip.Unmap().String() + "/udp/" + p + "/quic-v1"),
	}
}

// relayResources configures the circuit relay v2 service. libp2p's default
// limit cuts every relayed connection after 2 minutes or 128 KiB, which would
// break chat between nodes that cannot hole-punch (symmetric NATs). A chat
// node relays the mesh's own low-volume traffic, so relayed connections are
// not cut; the number of reservations and circuits stays bounded.
func relayResources() relay.Resources {
	r := relay.DefaultResources()
	r.Limit = nil
	r.MaxReservations = 256
	r.MaxCircuits = 32
	r.MaxReservationsPerIP = 16
	return r
}

// newHost builds the libp2p host. peerSource feeds AutoRelay with relay
// candidates; it is called only after the host exists.
func newHost(cfg *Config, nat *natTracker, peerSource autorelay.PeerSource) (introspectableHost, error) {
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.AutoScale()))
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}

	var built atomic.Pointer[host.Host] // for relaysFirst, once libp2p.New returns
	opts := []libp2p.Option{
		libp2p.Identity(cfg.Key),
		libp2p.ListenAddrs(listenAddrs(cfg.ListenIP, cfg.PeerPort)...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.UserAgent("darkchatd"),
		libp2p.EnableNATService(),
		libp2p.EnableAutoNATv2(),
		libp2p.EnableHolePunching(holepunch.WithTracer(nat)),
		libp2p.EnableAutoRelayWithPeerSource(relaysFirst(&built, peerSource),
			// Start as soon as AutoNAT says private, with whatever relay
			// is connected: a chat mesh may have only a few public nodes.
			autorelay.WithBootDelay(0),
			autorelay.WithMinCandidates(1),
			// Two reservations, so that losing one relay leaves the node
			// reachable while AutoRelay finds a replacement.
			autorelay.WithNumRelays(2),
			// How often AutoRelay may ask for candidates when it has fewer
			// reservations than it wants.
			autorelay.WithMinInterval(15*time.Second),
			// libp2p waits an hour before retrying a relay that refused a
			// reservation, sized for the public IPFS network and its
			// thousands of relays. A mesh with a handful of public nodes
			// cannot spare one for that long: a relay that refused while
			// it was restarting, or before AutoNAT found it public, is
			// asked again after a minute.
			autorelay.WithBackoff(time.Minute),
		),
	}
	if cfg.RelayService {
		opts = append(opts, libp2p.EnableRelayService(relay.WithResources(relayResources())))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("start libp2p host: %w", err)
	}
	built.Store(&h)
	ih, ok := h.(introspectableHost)
	if !ok {
		h.Close()
		return nil, fmt.Errorf("libp2p returned %T, which does not report addresses and reachability", h)
	}
	if err := nat.watch(h); err != nil {
		h.Close()
		return nil, err
	}
	return ih, nil
}

// BundleNamespace is the DHT record namespace of user key bundles: a
// bundle lives under /darkchat-bundle/<identity key hex>.
const BundleNamespace = "darkchat-bundle"

func newDHT(h host.Host, cfg *Config) (*dht.IpfsDHT, error) {
	opts := []dht.Option{
		dht.ProtocolPrefix(DHTProtocolPrefix),
		// On loopback, a LAN or a testnet AutoNAT may never decide; plain
		// ModeAuto would then leave every node a client and nothing could
		// be stored. ModeAutoServer serves until the node is known to be
		// private.
		dht.Mode(dht.ModeAutoServer),
		dht.Validator(record.NamespacedValidator{}),
		dht.BootstrapPeersFunc(func() []peer.AddrInfo {
			// The nodes we are connected to are our bootstrap peers.
			return connectedPeers(h, 0)
		}),
	}
	if cfg.BundleValidator != nil {
		opts = append(opts, dht.NamespacedValidator(BundleNamespace, cfg.BundleValidator))
	}
	return dht.New(h, opts...)
}

// connectedPeers returns up to limit (0: all) peers with an open connection.
func connectedPeers(h host.Host, limit int) []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, p := range h.Network().Peers() {
		if h.Network().Connectedness(p) != network.Connected {
			continue
		}
		out = append(out, h.Peerstore().PeerInfo(p))
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out
}

// relaysFirst wraps AutoRelay's peer source (the node's connected peers) so
// that the candidates it hands out are, first, the connected peers that
// announce the circuit relay v2 hop protocol (public nodes whose relay
// service runs), then the others, at most num in all. Without the ordering,
// a private node connected to many other private nodes (directly, after hole
// punching) could be offered only those and never find its relay.
func relaysFirst(built *atomic.Pointer[host.Host], source autorelay.PeerSource) autorelay.PeerSource {
	return func(ctx context.Context, num int) <-chan peer.AddrInfo {
		var relays, others []peer.AddrInfo
		hp := built.Load()
		for pi := range source(ctx, 0) {
			if hp != nil {
				if ps, err := (*hp).Peerstore().SupportsProtocols(pi.ID, proto.ProtoIDv2Hop); err == nil && len(ps) > 0 {
					relays = append(relays, pi)
					continue
				}
			}
			others = append(others, pi)
		}
		all := append(relays, others...)
		if num > 0 && len(all) > num {
			all = all[:num]
		}
		out := make(chan peer.AddrInfo, len(all))
		for _, pi := range all {
			out <- pi
		}
		close(out)
		return out
	}
}
