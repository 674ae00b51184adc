package p2p

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	routedhost "github.com/libp2p/go-libp2p/p2p/host/routed"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Node is one darkchat mesh node. It is safe for concurrent use.
type Node struct {
	cfg Config
	log *slog.Logger

	basic host.Host // the host the node runs on
	// intro is basic's address and reachability introspection when New
	// built the host, nil on a host the caller passed to NewWithHost: the
	// reachability decision, hole punching and the SYN filter run only
	// with it.
	intro introspectableHost
	// ownsHost is true when New built basic: Close closes it then, and
	// only then.
	ownsHost bool
	host     host.Host           // basic wrapped with DHT peer routing (basic itself without a DHT)
	dht      *dht.IpfsDHT        // nil with Config.NoDHT
	disc     discovery.Discovery // DHT rendezvous with a query backoff cache; nil with Config.NoDHT
	ps       *pubsub.PubSub
	nat      *natTracker
	reach    reachState         // the reachability verdict (reach.go)
	hps      *holepunch.Service // DCUtR, with the node's retries (holepunch.go)
	drops    *dropTracer
	guard    *peerGuard // per-peer budgets and bans (guard.go)
	orders   orders     // each topic's validation order (order.go)
	routers  *routerPeers
	lost     *lostPeers // GossipSub peers to dial again (redial.go)
	// redialWake wakes redialLoop when a peer is lost.
	redialWake chan struct{}
	dedup      *dedupSet
	// oldPeers: the previous-version peers already warned about; the
	// event loop's alone (version.go).
	oldPeers *oldPeers
	// staleProbe checks a peer's older connections when it makes a new
	// one (liveness.go).
	staleProbe network.Notifiee

	// ctx is the node's lifetime: it ends when Close begins, and every
	// goroutine the node starts (spawn) ends with it.
	ctx    context.Context
	cancel context.CancelFunc
	// psCancel stops GossipSub, which outlives ctx so that Close can leave
	// topics cleanly.
	psCancel context.CancelFunc

	goMu     sync.Mutex     // guards stopping against wg.Add
	stopping bool           // set by Close: spawn starts nothing more
	wg       sync.WaitGroup // every goroutine the node started

	closeOnce sync.Once
	closeErr  error

	// chMu guards channels and the fields of each entry marked so. It is
	// never held across a GossipSub round trip (see channel).
	chMu     sync.Mutex
	channels map[string]*channel // by topic name: chat channels and inbox shards
	// publishersDone (on chMu) is signalled when a topic's last DM
	// publisher lets go of it.
	publishersDone *sync.Cond

	// beforeTopicOpen, if set (by tests), runs before the node opens a
	// topic, outside every lock.
	beforeTopicOpen func(topicName string)

	scores atomic.Pointer[map[peer.ID]float64] // last GossipSub score snapshot
	relays *relaySource                        // AutoRelay's candidates (relay.go)

	// One-slot wake-ups the event loop sends (events.go).
	kickDisc         chan struct{} // a peer connected: discover now
	discAddrsChanged chan struct{} // our addresses changed: re-advertise if the relay ones did
	discPeerLost     chan struct{} // a peer disconnected: discover soon
	reachWake        chan struct{} // new reachability evidence
}

// New starts a node on a libp2p host of its own: TCP and QUIC on the peer
// port, with darkchat's connection manager, resource limits, peer guard,
// AutoNAT v2, AutoRelay, the relay service (Config.RelayService) and hole
// punching; then it starts the node as NewWithHost does, plus the
// reachability decision, hole-punch retries and the SYN filter on the
// listening sockets, which need that host. The caller must Close the node,
// which closes the host.
func New(cfg Config) (_ *Node, err error) {
	if cfg.Key == nil {
		return nil, errors.New("p2p: Config.Key is required")
	}
	n, err := newNode(cfg)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			n.closeParts()
		}
	}()
	ih, err := newHost(&n.cfg, n.guard, n.relays)
	if err != nil {
		return nil, err
	}
	n.basic, n.intro, n.ownsHost = ih, ih, true
	if err := checkListening(ih, n.cfg.PeerPort); err != nil {
		return nil, err
	}
	if err := n.start(); err != nil {
		return nil, err
	}
	return n, nil
}

// NewWithHost starts a node on a host the caller built (a simulated or
// in-memory network, for tests and benchmarks): GossipSub with darkchat's
// options, validators and peer scores, the peer guard's per-peer budgets,
// the replay filter, channels and DM inboxes, the DHT (unless
// Config.NoDHT) and discovery. Config.Key, ListenIP, PeerPort, Announce,
// RelayService and ConnLow/ConnHigh's connection manager are the host's
// business and are ignored (ConnLow still bounds discovery's dials).
//
// What needs the host New builds does not run: the reachability decision
// (Reachability reports unknown, and NATReport says why), hole punching,
// AutoRelay and the SYN filter; and the guard cannot refuse connections
// from banned peers or throttled addresses before the handshake, because
// that lives in the host's gater and resource manager. It still scores,
// budgets and disconnects peers.
//
// The caller owns h: Close stops the node and leaves h open, and the
// caller closes h after the node.
func NewWithHost(h host.Host, cfg Config) (_ *Node, err error) {
	if h == nil {
		return nil, errors.New("p2p: NewWithHost needs a host")
	}
	n, err := newNode(cfg)
	if err != nil {
		return nil, err
	}
	n.basic = h
	if err := n.start(); err != nil {
		n.closeParts()
		return nil, err
	}
	return n, nil
}

// newNode makes a node that runs nothing yet; New and NewWithHost give it
// a host and start it.
func newNode(cfg Config) (*Node, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		cfg:              cfg,
		log:              cfg.Logger,
		nat:              newNATTracker(),
		oldPeers:         newOldPeers(maxOldPeersRemembered),
		dedup:            newDedupSet(cfg.DedupTTL, cfg.DedupMax, time.Now),
		ctx:              ctx,
		cancel:           cancel,
		channels:         make(map[string]*channel),
		kickDisc:         make(chan struct{}, 1),
		discAddrsChanged: make(chan struct{}, 1),
		discPeerLost:     make(chan struct{}, 1),
		reachWake:        make(chan struct{}, 1),
	}
	n.routers = newRouterPeers()
	n.lost = newLostPeers()
	n.redialWake = make(chan struct{}, 1)
	n.guard = newPeerGuard(n.log, n.disconnect, n.remoteIP)
	n.drops = &dropTracer{log: n.log, routers: n.routers, guard: n.guard, orders: &n.orders, streamLost: n.resyncIfConnected}
	if cfg.Registerer != nil {
		m, err := newGossipMetrics(cfg.Registerer)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("p2p: register GossipSub metrics: %w", err)
		}
		n.drops.metrics = m
		if !cfg.NoDHT {
			if err := exportDHTMetrics(cfg.Registerer); err != nil {
				cancel()
				return nil, err
			}
		}
	}
	n.relays = newRelaySource(n.spawn, ctx.Done())
	n.publishersDone = sync.NewCond(&n.chMu)
	empty := map[peer.ID]float64{}
	n.scores.Store(&empty)
	return n, nil
}

// start runs the node on n.basic: the DHT, GossipSub and the node's loops,
// and, when the node built its host (n.intro), the reachability decision,
// hole punching and the SYN filter. On error, the caller closes the parts
// started so far (closeParts).
func (n *Node) start() (err error) {
	n.nat.net = n.basic.Network()
	// Subscribed as soon as there is a host, so that no event is missed;
	// the event loop reads it once the node is complete.
	events, err := subscribeHostEvents(n.basic.EventBus())
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			events.Close()
		}
	}()
	n.host = n.basic
	// Before GossipSub: a peer that identifies this node while only one of
	// the two is announced must not take it for the previous version.
	registerChannelsMarker(n.basic)
	if !n.cfg.NoDHT {
		if n.dht, err = newDHT(n.basic, &n.cfg, n.guard); err != nil {
			return fmt.Errorf("start DHT: %w", err)
		}
		n.host = routedhost.Wrap(n.basic, n.dht)
		if n.disc, err = newDiscovery(n.dht); err != nil {
			return err
		}
	}
	if n.intro != nil {
		if err := n.startReachability(); err != nil {
			return err
		}
		if n.hps, err = newHolePunchService(n.basic, n.nat); err != nil {
			return fmt.Errorf("start hole punching: %w", err)
		}
	}
	psCtx, psCancel := context.WithCancel(context.Background())
	n.psCancel = psCancel
	if n.ps, err = newPubSub(psCtx, n); err != nil {
		return fmt.Errorf("start GossipSub: %w", err)
	}
	n.staleProbe = newStaleProber(n).notifiee()
	n.basic.Network().Notify(n.staleProbe)
	if n.cfg.Registerer != nil {
		if err := n.cfg.Registerer.Register(newNodeCollector(n)); err != nil {
			return fmt.Errorf("register the node's metrics: %w", err)
		}
	}
	// Nothing else can call Close yet, so these start.
	n.spawn(func() { n.eventLoop(events) })
	n.spawn(n.discoveryLoop)
	n.spawn(n.redialLoop)
	if n.intro != nil {
		n.spawn(n.holePunchLoop)
		n.spawn(n.synFilterLoop)
	}
	return nil
}

// checkListening fails unless the host listens on both TCP and QUIC:
// libp2p starts as long as one listener works, which would hide a peer port
// taken by another process.
func checkListening(h host.Host, port int) error {
	var tcp, quic bool
	for _, a := range h.Network().ListenAddresses() {
		if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil {
			quic = true
		} else if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			tcp = true
		}
	}
	switch {
	case !tcp:
		return fmt.Errorf("cannot listen on TCP port %d (is another process using it?)", port)
	case !quic:
		return fmt.Errorf("cannot listen on QUIC (UDP) port %d (is another process using it?)", port)
	}
	return nil
}

// Close stops the node's goroutines, leaves every topic, and closes the
// GossipSub router, the DHT and, if New built it, the host, in that order
// (a host passed to NewWithHost is its caller's to close, after the node).
// It is idempotent and safe to call concurrently.
func (n *Node) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.closeParts() })
	return n.closeErr
}

// closeParts closes what New or NewWithHost has started so far.
func (n *Node) closeParts() error {
	if n.staleProbe != nil {
		n.basic.Network().StopNotify(n.staleProbe)
	}
	n.stopGoroutines()
	n.closeTopics()
	if n.psCancel != nil {
		n.psCancel()
	}
	var err error
	if n.dht != nil {
		err = n.dht.Close()
	}
	if n.basic != nil && n.ownsHost {
		if herr := n.basic.Close(); err == nil {
			err = herr
		}
	}
	return err
}

// stopGoroutines makes spawn refuse, ends the node's context and waits for
// every goroutine the node started: the event, discovery, reachability,
// hole-punch and SYN-filter loops, topic readers, DM route lookups,
// AutoRelay's candidate streams, linger timers' work and disconnects.
func (n *Node) stopGoroutines() {
	n.goMu.Lock()
	n.stopping = true
	n.cancel()
	n.goMu.Unlock()
	if n.hps != nil {
		n.hps.Close() // ends hole-punch rounds in flight, which holePunchLoop waits for
	}
	n.wg.Wait()
}

// spawn runs f on a goroutine of the node's, which Close waits for; f must
// return once the node's context ends. It starts nothing and reports false
// once Close has begun.
func (n *Node) spawn(f func()) bool {
	n.goMu.Lock()
	defer n.goMu.Unlock()
	if n.stopping {
		return false
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
	return true
}

// disconnect closes every connection to p. It may be called from
// GossipSub's event loop, so it does not wait for the connections to close.
func (n *Node) disconnect(p peer.ID) {
	if h := n.basic; h != nil {
		n.spawn(func() { h.Network().ClosePeer(p) })
	}
}

// resyncIfConnected closes every connection to p if GossipSub lost its
// stream to p while a connection to p remains. It runs in GossipSub's
// event loop, when the stream is found closed.
//
// GossipSub then opens a new stream over the remaining connection, but it
// has already forgotten which topics p subscribes to, and p, whose own
// stream to this node is fine, has no reason to tell them again: from then
// on this node sends p nothing on any topic, for as long as the connection
// lasts. It happens whenever the connection that carried the stream closes
// while another one lives: the stale connection of a healed network cut
// (liveness.go), a relayed connection replaced. In a channel of two nodes,
// one side's messages and repair answers would stop reaching the other for
// good. Disconnecting makes both GossipSubs forget the other wholly; the
// redial (redial.go) connects them again a second later, and the new
// streams exchange subscriptions afresh.
func (n *Node) resyncIfConnected(p peer.ID) {
	if n.basic == nil || n.basic.Network().Connectedness(p) != network.Connected {
		return
	}
	n.log.Debug("GossipSub lost its stream to a peer still connected; reconnecting so that both exchange subscriptions again", "peer", p)
	n.guard.count("peers reconnected after their GossipSub stream broke on a live connection", 1)
	n.disconnect(p)
}

// remoteIP returns the IP address of a connection to p, or "" if none.
func (n *Node) remoteIP(p peer.ID) string {
	if n.basic == nil {
		return ""
	}
	for _, c := range n.basic.Network().ConnsToPeer(p) {
		if ip, err := manet.ToIP(c.RemoteMultiaddr()); err == nil {
			return ip.String()
		}
	}
	return ""
}

// ID returns the node's peer ID.
func (n *Node) ID() peer.ID { return n.host.ID() }

// Host exposes the libp2p host, for tests and diagnostics.
func (n *Node) Host() host.Host { return n.host }

// Addrs returns the node's full multiaddrs (ending in /p2p/<id>), sorted.
func (n *Node) Addrs() []ma.Multiaddr {
	self := ma.StringCast("/p2p/" + n.ID().String())
	var out []ma.Multiaddr
	for _, a := range n.host.Addrs() {
		out = append(out, a.Encapsulate(self))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// Reachability is the node's verdict on whether others can dial it (see
// decideReachability).
func (n *Node) Reachability() network.Reachability {
	r, _, _ := n.reach.get()
	return r
}

// PeerInfo describes one connected peer.
type PeerInfo struct {
	ID peer.ID
	// Addr is the remote address of the preferred connection: a direct one
	// when there is one.
	Addr ma.Multiaddr
	// Relayed is true when every connection to the peer goes through a
	// circuit relay. (libp2p's Limited flag cannot tell: a relay with
	// unlimited resources leaves it false on relayed connections.)
	Relayed bool
}

// Peers lists connected peers, sorted by peer ID.
func (n *Node) Peers() []PeerInfo {
	var out []PeerInfo
	for _, p := range n.host.Network().Peers() {
		conns := n.host.Network().ConnsToPeer(p)
		if len(conns) == 0 {
			continue
		}
		info := PeerInfo{ID: p, Addr: conns[0].RemoteMultiaddr(), Relayed: true}
		for _, c := range conns {
			if !isRelayed(c.RemoteMultiaddr()) {
				info.Addr, info.Relayed = c.RemoteMultiaddr(), false
				break
			}
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// PeerScore returns the GossipSub score of p from the last snapshot (taken
// every second), and whether p was scored at all.
func (n *Node) PeerScore(p peer.ID) (float64, bool) {
	s, ok := (*n.scores.Load())[p]
	return s, ok
}

// Stats counts messages the node could not handle.
type Stats struct {
	// Dropped counts messages this node lost: its validation queue or a
	// local subscription queue was full. Each is logged as a warning.
	Dropped uint64
	// NotSent counts messages not queued for one peer (its queue was full
	// or its stream was restarting); the peer may still receive them from
	// other peers or through gossip.
	NotSent uint64
}

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	return Stats{Dropped: n.drops.dropped.Load(), NotSent: n.drops.notSent.Load()}
}
