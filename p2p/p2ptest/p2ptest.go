// Package p2ptest runs N real darkchat nodes (p2p.NewWithHost: the
// production GossipSub options, validators, peer guard, replay filter and
// channels) on a simulated network, for tests and benchmarks:
//
//   - SimNet: go-libp2p's simulated network (x/simlibp2p, QUIC over
//     simnet's UDP links) with per-link latency and per-node bandwidth.
//     Run it inside testing/synctest's bubble and every timer (GossipSub's
//     heartbeat, the links' latency, the node's loops) runs on fake time:
//     a thousand nodes fit on a laptop and a minute of mesh life takes
//     seconds.
//   - MockNet: go-libp2p's in-memory mocknet, on real time, for
//     benchmarks that measure wall-clock latency and throughput.
//
// A run is reproducible from Options.Seed: the same seed gives the same
// topology and the same node keys (so the same peer IDs, hence the same
// GossipSub tie-breaks). Scheduling still varies on real time; under
// synctest it varies only with the order goroutines run in.
//
// The nodes run without a DHT unless Options.DHT: the topology is the one
// given, not what rendezvous discovery would grow.
package p2ptest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	"github.com/marcopolo/simnet"
	ma "github.com/multiformats/go-multiaddr"

	"darkchat/gateway"
	"darkchat/p2p"
)

// Network is the simulated network the nodes run on.
type Network int

const (
	// SimNet is go-libp2p's simnet: QUIC over simulated UDP links with
	// latency and bandwidth. Use it inside synctest.Test for fake time.
	SimNet Network = iota
	// MockNet is go-libp2p's in-memory mocknet, on real time.
	MockNet
)

func (n Network) String() string {
	switch n {
	case SimNet:
		return "simnet"
	case MockNet:
		return "mocknet"
	}
	return fmt.Sprintf("Network(%d)", int(n))
}

// Defaults for Options.
const (
	DefaultDegree    = 8
	DefaultLatency   = 10 * time.Millisecond // one way, per link
	DefaultBandwidth = 100_000_000           // bits per second, each node's uplink and downlink (SimNet)
)

// Options configures a Mesh.
type Options struct {
	// Nodes is how many darkchat nodes to start.
	Nodes int
	// Seed derives the topology and the node keys.
	Seed uint64
	// Network is SimNet (the default) or MockNet.
	Network Network
	// Edges is the topology: each pair of node indexes is connected.
	// Nil means a random Degree-regular graph drawn from Seed
	// (RandomRegular).
	Edges [][2]int
	// Degree is the random topology's degree (DefaultDegree, or Nodes-1
	// for fewer nodes).
	Degree int
	// Latency is the one-way latency between nodes a and b; nil means
	// DefaultLatency on every link.
	Latency func(a, b int) time.Duration
	// Bandwidth is each node's uplink and downlink in bits per second on
	// SimNet, and each link's in each direction on MockNet; 0 means
	// DefaultBandwidth on SimNet and unlimited on MockNet (mocknet's
	// bandwidth shaping sleeps per write, which distorts latency at high
	// rates).
	Bandwidth int
	// Gateway gives the nodes the gateway's validators
	// (gateway.ChannelValidator with the default timestamp window and no
	// author limit, gateway.InboxValidator); false accepts any message
	// within the size limit.
	Gateway bool
	// DHT starts each node's DHT and rendezvous discovery, which dial
	// beyond Edges.
	DHT bool
	// Config, if set, adjusts node i's configuration before it starts.
	Config func(i int, cfg *p2p.Config)
	// Logger receives the nodes' and the network's logs; nil discards
	// them.
	Logger *slog.Logger
	// Stock starts stock go-libp2p-pubsub GossipSub with its defaults
	// (StockNode, in Mesh.Stock) on the hosts instead of darkchat nodes
	// (Mesh.Nodes stays empty): the baseline, on the same hosts, keys and
	// topology. Mesh.Join, JoinNode and Publish work on either.
	Stock bool
	// OnRPC, if set, is called for every GossipSub RPC frame node
	// receives from a peer, as read off the node's inbound GossipSub
	// streams before GossipSub looks at it: the frame's size on the
	// stream (length prefix included) and the data of every message it
	// carries, duplicates included. It runs on the stream's reading
	// goroutine and must not block or keep published.
	OnRPC func(node int, frameBytes int, published [][]byte)
	// NoConnect leaves the nodes unconnected: call Mesh.Connect.
	NoConnect bool
}

// Mesh is a running set of nodes. Close it when done (inside the synctest
// bubble that started it).
type Mesh struct {
	Nodes []*p2p.Node
	Hosts []host.Host
	// Edges is the topology the nodes were connected as.
	Edges [][2]int

	// Stock holds the stock GossipSub nodes under Options.Stock.
	Stock []*StockNode

	sim  *simnet.Simnet
	mn   mocknet.Mocknet
	opts Options
	// SimNet only: each node's UDP endpoint, and the node index of each
	// address (read by the router's latency function while AddNode
	// writes).
	conns     []*simConn
	addrMu    sync.RWMutex
	addrIndex map[string]int
	// sides is Partition's cut: each node's side (nil: no cut).
	sides atomic.Pointer[[]int]
	// gateways are the nodes' gateways started by StartGateway, which
	// tests call from many goroutines at once.
	gatewaysMu sync.Mutex
	gateways   []*Gateway
	// down marks the nodes stopped by Crash or Leave.
	down []bool
}

// NodeKey is node i's host key for seed: Ed25519, as libp2p's default
// identity (GossipSub scores, and mocknet would otherwise pick ECDSA).
func NodeKey(seed uint64, i int) (crypto.PrivKey, error) {
	var s [32]byte
	binary.BigEndian.PutUint64(s[:], seed)
	binary.BigEndian.PutUint64(s[8:], uint64(i))
	copy(s[16:], "darkchat p2ptest")
	k, _, err := crypto.GenerateEd25519Key(rand.NewChaCha8(s))
	if err != nil {
		return nil, fmt.Errorf("node %d key: %w", i, err)
	}
	return k, nil
}

// Start builds the hosts, starts a darkchat node on each and connects them
// as the topology says. On SimNet, call it inside synctest.Test.
func Start(ctx context.Context, opts Options) (_ *Mesh, err error) {
	if opts.Nodes < 1 {
		return nil, errors.New("p2ptest: Options.Nodes must be at least 1")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Latency == nil {
		opts.Latency = func(int, int) time.Duration { return DefaultLatency }
	}
	m := &Mesh{Edges: opts.Edges, opts: opts}
	if m.Edges == nil {
		d := opts.Degree
		if d == 0 {
			d = min(DefaultDegree, opts.Nodes-1)
		}
		if m.Edges, err = RandomRegular(opts.Nodes, d, opts.Seed); err != nil {
			return nil, err
		}
	}
	for _, e := range m.Edges {
		if e[0] < 0 || e[1] < 0 || e[0] >= opts.Nodes || e[1] >= opts.Nodes || e[0] == e[1] {
			return nil, fmt.Errorf("p2ptest: edge %v outside %d nodes", e, opts.Nodes)
		}
	}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	switch opts.Network {
	case SimNet:
		err = m.buildSimNet(opts)
	case MockNet:
		err = m.buildMockNet(opts)
	default:
		err = fmt.Errorf("p2ptest: unknown network %v", opts.Network)
	}
	if err != nil {
		return m, err
	}
	for i := range m.Hosts {
		if err := m.startNode(i); err != nil {
			return m, err
		}
	}
	if opts.NoConnect {
		return m, nil
	}
	if opts.Network == SimNet {
		for _, e := range m.Edges {
			a, b := m.Hosts[e[0]], m.Hosts[e[1]]
			if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
				return m, fmt.Errorf("connect node %d to %d: %w", e[0], e[1], err)
			}
		}
	} else {
		for _, e := range m.Edges {
			if _, err := m.mn.ConnectPeers(m.Hosts[e[0]].ID(), m.Hosts[e[1]].ID()); err != nil {
				return m, fmt.Errorf("connect node %d to %d: %w", e[0], e[1], err)
			}
		}
	}
	return m, nil
}

// startNode starts node i's darkchat node (or stock GossipSub) on its
// host.
func (m *Mesh) startNode(i int) error {
	opts := m.opts
	m.down = append(m.down, false)
	var h host.Host = m.Hosts[i]
	if opts.OnRPC != nil {
		h = &countingHost{Host: h, node: i, onRPC: opts.OnRPC}
	}
	if opts.Stock {
		s, err := newStockNode(h)
		if err != nil {
			return fmt.Errorf("stock node %d: %w", i, err)
		}
		m.Stock = append(m.Stock, s)
		return nil
	}
	cfg := p2p.Config{NoDHT: !opts.DHT, Logger: opts.Logger.With("node", i)}
	if opts.Gateway {
		cfg.Validator = gateway.ChannelValidator(nil, gateway.DefaultTimestampWindow, gateway.AuthorLimit{}, nil)
		cfg.ParallelValidation = gateway.ParallelValidation
		cfg.InboxValidator = gateway.InboxValidator()
	}
	if opts.Config != nil {
		opts.Config(i, &cfg)
	}
	n, err := p2p.NewWithHost(h, cfg)
	if err != nil {
		return fmt.Errorf("node %d: %w", i, err)
	}
	m.Nodes = append(m.Nodes, n)
	return nil
}

// simnetPort is the UDP port every SimNet node listens on, each at its own
// public IPv4 address (GossipSub's IP colocation score would penalise
// nodes sharing one).
const simnetPort = 8000

func (m *Mesh) buildSimNet(opts Options) error {
	m.addrIndex = make(map[string]int, opts.Nodes)
	latency := opts.Latency
	m.sim = &simnet.Simnet{
		Logger: opts.Logger.With("component", "simnet"),
		LatencyFunc: func(p *simnet.Packet) time.Duration {
			m.addrMu.RLock()
			from, okFrom := m.addrIndex[p.From.(*net.UDPAddr).IP.String()]
			to, okTo := m.addrIndex[p.To.(*net.UDPAddr).IP.String()]
			m.addrMu.RUnlock()
			if !okFrom || !okTo {
				return DefaultLatency
			}
			return latency(from, to)
		},
	}
	for i := range opts.Nodes {
		if err := m.addSimNetHost(i); err != nil {
			return err
		}
	}
	m.sim.Start()
	return nil
}

// addSimNetHost builds node i's host on the simulated network.
func (m *Mesh) addSimNetHost(i int) error {
	opts := m.opts
	key, err := NodeKey(opts.Seed, i)
	if err != nil {
		return err
	}
	bw := opts.Bandwidth
	if bw == 0 {
		bw = DefaultBandwidth
	}
	link := simnet.NodeBiDiLinkSettings{
		Downlink: simnet.LinkSettings{BitsPerSecond: bw},
		Uplink:   simnet.LinkSettings{BitsPerSecond: bw},
	}
	ip := simnet.IntToPublicIPv4(i)
	m.addrMu.Lock()
	m.addrIndex[ip.String()] = i
	m.addrMu.Unlock()
	h, err := libp2p.New(
		libp2p.Identity(key),
		libp2p.ListenAddrStrings(fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", ip, simnetPort)),
		quicSimnet(m.sim, link, ip, func(c *simConn) {
			c.node, c.mesh = i, m
			m.conns = append(m.conns, c)
		}),
		// As x/simlibp2p does: identify's address discovery stalls
		// synctest, and the simulated network needs no resource
		// accounting.
		libp2p.DisableIdentifyAddressDiscovery(),
		libp2p.ResourceManager(&network.NullResourceManager{}),
	)
	if err != nil {
		return fmt.Errorf("node %d host: %w", i, err)
	}
	if len(m.conns) != i+1 {
		h.Close()
		return fmt.Errorf("node %d host: %d UDP endpoints for %d hosts", i, len(m.conns), i+1)
	}
	m.Hosts = append(m.Hosts, h)
	return nil
}

func (m *Mesh) buildMockNet(opts Options) error {
	m.mn = mocknet.New()
	for i := range opts.Nodes {
		key, err := NodeKey(opts.Seed, i)
		if err != nil {
			return err
		}
		// One /64 per node, from the documentation prefix (mocknet sends
		// nothing anywhere): GossipSub's IP colocation score groups IPv6
		// peers by /64.
		h, err := m.mn.AddPeer(key, ma.StringCast(fmt.Sprintf("/ip6/2001:db8:%x:%x::1/tcp/4242", i>>16, i&0xffff)))
		if err != nil {
			return fmt.Errorf("node %d host: %w", i, err)
		}
		m.Hosts = append(m.Hosts, h)
	}
	for _, e := range m.Edges {
		l, err := m.mn.LinkPeers(m.Hosts[e[0]].ID(), m.Hosts[e[1]].ID())
		if err != nil {
			return fmt.Errorf("link node %d to %d: %w", e[0], e[1], err)
		}
		// Mocknet links are symmetric: the latency from a to b.
		l.SetOptions(mocknet.LinkOptions{Latency: opts.Latency(e[0], e[1]), Bandwidth: float64(opts.Bandwidth) / 8})
	}
	return nil
}

// Join adds member(i) to channel on every node i.
func (m *Mesh) Join(channel string, member func(i int) p2p.Member) error {
	for i := range m.Hosts {
		if m.down[i] {
			continue
		}
		if err := m.JoinNode(i, channel, member(i)); err != nil {
			return err
		}
	}
	return nil
}

// JoinNode adds member to channel on node i (darkchat or stock).
func (m *Mesh) JoinNode(i int, channel string, member p2p.Member) error {
	var err error
	if m.opts.Stock {
		err = m.Stock[i].Join(channel, member)
	} else {
		err = m.Nodes[i].Join(channel, member)
	}
	if err != nil {
		return fmt.Errorf("node %d joins %q: %w", i, channel, err)
	}
	return nil
}

// Close stops every node, then the hosts, then the network.
func (m *Mesh) Close() error {
	var errs []error
	m.gatewaysMu.Lock()
	gateways := m.gateways
	m.gateways = nil
	m.gatewaysMu.Unlock()
	for _, g := range gateways {
		if err := g.close(); err != nil {
			errs = append(errs, err)
		}
	}
	for i, n := range m.Nodes {
		if err := n.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close node %d: %w", i, err))
		}
	}
	m.Nodes = nil
	for _, s := range m.Stock {
		s.Close()
	}
	m.Stock = nil
	if m.mn != nil {
		// Closes the hosts too.
		if err := m.mn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close mocknet: %w", err))
		}
	} else {
		for i, h := range m.Hosts {
			if err := h.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close host %d: %w", i, err))
			}
		}
	}
	m.Hosts = nil
	if m.sim != nil {
		m.sim.Close()
		m.sim = nil
	}
	return errors.Join(errs...)
}
