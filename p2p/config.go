package p2p

import (
	"fmt"
	"github.com/libp2p/go-libp2p/core/peer"
	"log/slog"
	"net/netip"
	"time"

	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
)

// Validator checks one channel message received from the mesh or published
// locally. It runs exactly once per message on each node, before the message
// is forwarded or delivered. It returns the decoded message, which is handed
// to members as Message.Payload, or an error: an error wrapping ErrIgnore
// drops the message quietly, any other error rejects it and penalises the
// forwarding peer. It is called concurrently and must not block. from is
// the peer that forwarded the message, or empty for a local publication.
type Validator func(from peer.ID, channel string, data []byte) (payload any, err error)

// Config configures a Node. New requires Key; everything else has a default.
type Config struct {
	// Key is the node's identity key (see LoadOrCreateNodeKey).
	Key crypto.PrivKey
	// ListenIP is the address the peer port listens on ("0.0.0.0" for all).
	ListenIP netip.Addr
	// PeerPort is the TCP and UDP (QUIC) port; 0 picks free ports.
	PeerPort int
	// Bootstrap lists peers to connect to at start, each "ip:port" or a
	// multiaddr ending in /p2p/<peer-id>. Failures are logged, and retried
	// by the discovery loop while the node has no peers.
	Bootstrap []string
	// Validator checks channel messages; nil accepts any message within
	// MaxMessageSize.
	Validator Validator
	// ParallelValidation says which channel messages Validator may check
	// beside each other, on every core (their checks' side effects do not
	// depend on order); the others are checked one at a time in arrival
	// order. Either way a topic delivers and forwards its messages in the
	// order they arrived (order.go). channel is "" on the history topic.
	// Nil: one at a time, all of them.
	ParallelValidation func(channel string, data []byte) bool
	// InboxValidator checks DM envelopes on inbox shards (the node cannot
	// open them: it checks their format); nil accepts any message within
	// MaxMessageSize.
	InboxValidator Validator
	// BundleValidator validates and orders user key bundles stored in the
	// DHT (namespace BundleNamespace); nil stores none.
	BundleValidator record.Validator
	// RulesValidator validates and orders owned channels' rules records
	// stored in the DHT (namespace RulesNamespace); nil stores none.
	RulesValidator record.Validator
	// MaxMessageSize bounds a channel message on the wire.
	MaxMessageSize int
	// RelayService makes the node offer circuit relay v2 to others while
	// it is publicly reachable (see Reachability).
	RelayService bool
	// Reachability is how the node decides whether others can dial it:
	// from evidence (ReachabilityAuto, the default) or as the operator
	// says. Public nodes relay; private ones reserve relay slots.
	Reachability ReachabilityMode
	// Announce lists addresses to advertise besides those libp2p finds:
	// a public address that no interface of this machine has (a cloud
	// provider's 1:1 NAT, a forwarded port). libp2p advertises an address
	// peers observe only once four of them agree, which a lone public node
	// may never see.
	Announce []ma.Multiaddr
	// ConnLow and ConnHigh are the connection manager's watermarks.
	ConnLow, ConnHigh int
	// DedupTTL is how long a delivered message's ID is remembered so that a
	// replay is never delivered twice. It must exceed the application's
	// timestamp window on both sides.
	DedupTTL time.Duration
	// DedupMax bounds the de-duplication memory (entries).
	DedupMax int
	// NoDHT runs the node without its Kademlia DHT, on a host whose
	// connections its caller wires (NewWithHost on a simulated network):
	// no rendezvous discovery, no DHT peer routing, no DM route lookups,
	// and PutBundle and GetBundle fail with ErrNoDHT. Bootstrap peers are
	// still dialled.
	NoDHT bool
	// Registerer, if set, receives the node's metrics: libp2p's own
	// (swarm, resource manager, identify, AutoNAT, AutoRelay, hole
	// punching, relay service, event bus), GossipSub's (metrics.go) and the
	// node's gauges. nil: the node and its host keep no metrics. libp2p's
	// collectors are process-wide, so nodes sharing a process share their
	// figures; darkchatd runs one node per process.
	Registerer prometheus.Registerer
	// Logger receives the node's logs; nil discards them.
	Logger *slog.Logger
	// OnAddrsChanged, if set, is called from the node's event goroutine with
	// the node's full listen multiaddrs whenever they change. It may be
	// called before New returns.
	OnAddrsChanged func([]ma.Multiaddr)
}

// Defaults chosen for a chat node: a chat message is at most a few KiB, so
// 64 KiB leaves room for DM envelopes and protocol growth while keeping a
// hostile peer's single message cheap to reject.
const (
	DefaultMaxMessageSize = 64 << 10
	DefaultConnLow        = 64
	DefaultConnHigh       = 192
	DefaultDedupTTL       = 10 * time.Minute
	DefaultDedupMax       = 1 << 20
)

func (c *Config) setDefaults() error {
	if !c.ListenIP.IsValid() {
		c.ListenIP = netip.IPv4Unspecified()
	}
	if c.PeerPort < 0 || c.PeerPort > 65535 {
		return fmt.Errorf("p2p: peer port %d out of range", c.PeerPort)
	}
	if c.MaxMessageSize <= 0 {
		c.MaxMessageSize = DefaultMaxMessageSize
	}
	if c.ConnLow <= 0 {
		c.ConnLow = DefaultConnLow
	}
	if c.ConnHigh == 0 {
		c.ConnHigh = max(DefaultConnHigh, c.ConnLow*2)
	}
	if c.ConnHigh <= c.ConnLow {
		return fmt.Errorf("p2p: ConnHigh (%d) must exceed ConnLow (%d)", c.ConnHigh, c.ConnLow)
	}
	if c.DedupTTL <= 0 {
		c.DedupTTL = DefaultDedupTTL
	}
	if c.DedupMax <= 0 {
		c.DedupMax = DefaultDedupMax
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
