package p2p

import (
	"context"
	"errors"
	"fmt"
	dhtpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
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

// newHost builds the libp2p host.
//
// Reachability is the node's own decision (startReachability), not AutoNAT
// v1's: v1 is pinned to "unknown", which it announces once at start, so
// AutoRelay looks for relays from the first moment (it runs while
// reachability is unknown or private) and the node's verdict, emitted on the
// same event bus, drives AutoRelay, the relay service and the DHT's mode from
// then on. AutoNAT v2 runs as client and server: its per-address checks are
// the strongest evidence, and NATed nodes can serve them to a public node.
//
// Hole punching is started by the node (newHolePunchService) so that it can
// retry.
func newHost(cfg *Config, guard *peerGuard, relays *relaySource) (introspectableHost, error) {
	cm, err := connmgr.NewConnManager(cfg.ConnLow, cfg.ConnHigh, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		return nil, fmt.Errorf("connection manager: %w", err)
	}
	v4, v6 := connLimitsPerSubnet()
	rcOpts := []rcmgr.Option{rcmgr.WithLimitPerSubnet(v4, v6)}
	if cfg.Registerer == nil {
		rcOpts = append(rcOpts, rcmgr.WithMetricsDisabled())
	}
	// With metrics, the resource manager reports its use and limits
	// through its default stats reporter (rcmgr.StatsTraceReporter);
	// libp2p registers those collectors (libp2p_rcmgr_*) on the
	// registerer it is given below.
	base, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(resourceLimits(peerFDBudget(processFDLimit()))), rcOpts...)
	if err != nil {
		return nil, fmt.Errorf("resource manager: %w", err)
	}
	rm := guardedResourceManager{base, guard}

	opts := []libp2p.Option{
		libp2p.Identity(cfg.Key),
		libp2p.ListenAddrs(listenAddrs(cfg.ListenIP, cfg.PeerPort)...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionGater(bannedPeerGater{guard}),
		libp2p.UserAgent(nodeAgent),
		pinAutoNATv1(network.ReachabilityUnknown),
		libp2p.EnableAutoNATv2(),
		libp2p.EnableAutoRelayWithPeerSource(relays.candidates,
			// Reserve with whatever relay is connected, at once: a chat
			// mesh may have a single public node.
			autorelay.WithBootDelay(0),
			autorelay.WithMinCandidates(1),
			// Two reservations, so that losing one relay leaves the node
			// reachable while AutoRelay finds a replacement.
			autorelay.WithNumRelays(2),
			// How often AutoRelay may ask for candidates again when the
			// stream relays.candidates returns has ended (it ends only when
			// AutoRelay stops looking).
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
	if cfg.Registerer != nil {
		opts = append(opts, libp2p.PrometheusRegisterer(cfg.Registerer))
	} else {
		// Without it libp2p would register on Prometheus's global
		// registry, which nothing serves.
		opts = append(opts, libp2p.DisableMetrics())
	}
	if cfg.RelayService {
		opts = append(opts, libp2p.EnableRelayService(relay.WithResources(relayResources())))
	}
	if len(cfg.Announce) > 0 {
		announce := slices.Clone(cfg.Announce)
		opts = append(opts, libp2p.AddrsFactory(func(addrs []ma.Multiaddr) []ma.Multiaddr {
			for _, a := range announce {
				if !slices.ContainsFunc(addrs, a.Equal) {
					addrs = append(addrs, a)
				}
			}
			return addrs
		}))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("start libp2p host: %w", err)
	}
	relays.setHost(h)
	ih, ok := h.(introspectableHost)
	if !ok {
		h.Close()
		return nil, fmt.Errorf("libp2p returned %T, which does not report addresses and reachability", h)
	}
	return ih, nil
}

// guardedResourceManager throttles new inbound connections from addresses
// whose peers the guard banned. It sits in the resource manager because
// that is the one hook both transports call before the handshake: TCP at
// accept, QUIC when the client's first packet arrives (quic-go's
// ConnContext). The connection gater's InterceptAccept runs after QUIC's
// handshake, when a rotating attacker has already made the node do a TLS
// handshake with ML-KEM and two signature checks.
type guardedResourceManager struct {
	network.ResourceManager
	g *peerGuard
}

func (r guardedResourceManager) OpenConnection(dir network.Direction, usefd bool, endpoint ma.Multiaddr) (network.ConnManagementScope, error) {
	if dir == network.DirInbound && endpoint != nil {
		if ip, err := manet.ToIP(endpoint); err == nil && !r.g.allowAccept(ip.String()) {
			return nil, errSuspectAddress
		}
	}
	return r.ResourceManager.OpenConnection(dir, usefd, endpoint)
}

var errSuspectAddress = errors.New("connections from this address are throttled: its peers were banned")

// bannedPeerGater refuses connections to and from peers the guard banned.
type bannedPeerGater struct{ g *peerGuard }

func (b bannedPeerGater) InterceptPeerDial(p peer.ID) bool           { return !b.g.isBanned(p) }
func (bannedPeerGater) InterceptAddrDial(peer.ID, ma.Multiaddr) bool { return true }
func (bannedPeerGater) InterceptAccept(network.ConnMultiaddrs) bool  { return true }
func (bannedPeerGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
func (b bannedPeerGater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return !b.g.isBanned(p)
}

// ParseAnnounceAddr parses an --announce address: ip:port, meaning that
// port over TCP and QUIC, or a multiaddr without /p2p.
func ParseAnnounceAddr(s string) ([]ma.Multiaddr, error) {
	if strings.HasPrefix(s, "/") {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("bad multiaddr %q: %v", s, err)
		}
		if _, err := a.ValueForProtocol(ma.P_P2P); err == nil {
			return nil, fmt.Errorf("announce address %q must not name a peer (/p2p/...)", s)
		}
		return []ma.Multiaddr{a}, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return nil, fmt.Errorf("announce address %q is neither ip:port nor a multiaddr", s)
	}
	if ap.Addr().Zone() != "" {
		// A link-local zone means nothing to other hosts, and multiaddrs
		// cannot carry one in /ip6.
		return nil, fmt.Errorf("announce address %q has an IPv6 zone; announce an address other hosts can reach", s)
	}
	return listenAddrs(ap.Addr(), int(ap.Port())), nil
}

// pinAutoNATv1 makes libp2p's AutoNAT v1 report r and probe nothing; the
// node decides reachability itself (reach.go).
func pinAutoNATv1(r network.Reachability) libp2p.Option {
	return func(cfg *libp2p.Config) error {
		cfg.AutoNATConfig.ForceReachability = &r
		return nil
	}
}

// BundleNamespace is the DHT record namespace of user key bundles: a
// bundle lives under /darkchat-bundle/<identity key hex>.
const BundleNamespace = "darkchat-bundle"

func newDHT(h host.Host, cfg *Config, guard *peerGuard) (*dht.IpfsDHT, error) {
	opts := []dht.Option{
		dht.ProtocolPrefix(DHTProtocolPrefix),
		dht.Datastore(newBoundedStore()),
		// Each peer's writes (PUT_VALUE, ADD_PROVIDER) go through its
		// budget in the peer guard; a peer over it is banned, and its
		// stream reset before the request is handled further.
		dht.OnRequestHook(func(_ context.Context, s network.Stream, req *dhtpb.Message) {
			switch req.GetType() {
			case dhtpb.Message_PUT_VALUE, dhtpb.Message_ADD_PROVIDER:
				if !guard.dhtWrite(s.Conn().RemotePeer()) {
					s.Reset()
				}
			}
		}),
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
	if cfg.RulesValidator != nil {
		opts = append(opts, dht.NamespacedValidator(RulesNamespace, cfg.RulesValidator))
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
