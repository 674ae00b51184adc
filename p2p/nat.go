package p2p

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
)

// maxHolePunchPeers bounds the hole-punch history: one entry per remote
// peer, the oldest forgotten first. maxObservers bounds the observed-address
// memory the same way.
const (
	maxHolePunchPeers = 256
	maxObservers      = 256
)

// natTracker gathers what the `nat` console command explains. It is the
// hole-punching service's EventTracer, and watches the host's event bus for
// the addresses peers observe us at, the NAT type libp2p infers from them,
// the relay addresses AutoRelay holds, and AutoNAT's verdicts.
type natTracker struct {
	mu    sync.Mutex
	peers map[peer.ID]*holePunchRecord

	observed     map[peer.ID]observation // what each peer last saw us as
	natTypes     map[network.NATTransportProtocol]network.NATDeviceType
	relayAddrs   []ma.Multiaddr // from AutoRelay: our reservations
	reachChanged time.Time      // when AutoNAT last changed its verdict
}

type holePunchRecord struct {
	attempts  int
	successes int
	last      time.Time
	outcome   string // human-readable outcome of the latest attempt
}

type observation struct {
	addr ma.Multiaddr
	at   time.Time
}

func newNATTracker() *natTracker {
	return &natTracker{
		peers:    make(map[peer.ID]*holePunchRecord),
		observed: make(map[peer.ID]observation),
		natTypes: make(map[network.NATTransportProtocol]network.NATDeviceType),
	}
}

// Trace implements holepunch.EventTracer. It sees both sides of DCUtR: the
// node that accepted a relayed connection starts the hole punch, the other
// one answers, and both dial at once.
func (t *natTracker) Trace(evt *holepunch.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := t.peers[evt.Remote]
	if rec == nil {
		if len(t.peers) >= maxHolePunchPeers {
			evictOldest(t.peers, func(r *holePunchRecord) time.Time { return r.last })
		}
		rec = &holePunchRecord{}
		t.peers[evt.Remote] = rec
	}
	rec.last = time.Unix(0, evt.Timestamp)
	switch e := evt.Evt.(type) {
	case *holepunch.DirectDialEvt:
		if e.Success {
			rec.outcome = fmt.Sprintf("direct dial succeeded in %v, no hole punch needed", e.EllapsedTime.Round(time.Millisecond))
		} else {
			rec.outcome = "direct dial failed, hole punching next: " + oneLine(e.Error)
		}
	case *holepunch.StartHolePunchEvt:
		rec.attempts++
		rec.outcome = fmt.Sprintf("hole punch in progress (relay rtt %v, punching %s)",
			e.RTT.Round(time.Millisecond), strings.Join(e.RemoteAddrs, " "))
	case *holepunch.EndHolePunchEvt:
		if e.Success {
			rec.successes++
			rec.outcome = fmt.Sprintf("hole punch succeeded in %v", e.EllapsedTime.Round(time.Millisecond))
		} else {
			rec.outcome = "hole punch failed: " + oneLine(e.Error)
		}
	case *holepunch.ProtocolErrorEvt:
		rec.outcome = "hole punch protocol error: " + oneLine(e.Error)
	}
}

// oneLine folds a multi-line error (libp2p lists one line per address it
// dialled) into one line of the report.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func evictOldest[V any](m map[peer.ID]V, when func(V) time.Time) {
	var oldest peer.ID
	var oldestT time.Time
	for p, v := range m {
		if oldest == "" || when(v).Before(oldestT) {
			oldest, oldestT = p, when(v)
		}
	}
	delete(m, oldest)
}

// watch subscribes to the host's events the report explains. The
// subscription is made before watch returns, so no event is missed; its
// goroutine ends when the host's network closes.
func (t *natTracker) watch(h host.Host) error {
	done := networkDone(h.Network())
	if done == nil {
		return fmt.Errorf("network %T cannot tell when it closes", h.Network())
	}
	sub, err := h.EventBus().Subscribe([]any{
		new(event.EvtPeerIdentificationCompleted),
		new(event.EvtNATDeviceTypeChanged),
		new(event.EvtAutoRelayAddrsUpdated),
		new(event.EvtLocalReachabilityChanged),
	}, eventbus.Name("darkchat nat report"))
	if err != nil {
		return fmt.Errorf("subscribe to NAT events: %w", err)
	}
	go func() {
		defer sub.Close()
		for {
			select {
			case <-done:
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				t.record(e)
			}
		}
	}()
	return nil
}

// networkDone is the channel the swarm closes when it closes.
func networkDone(n network.Network) <-chan struct{} {
	if d, ok := n.(interface{ Done() <-chan struct{} }); ok {
		return d.Done()
	}
	return nil
}

func (t *natTracker) record(e any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch e := e.(type) {
	case event.EvtPeerIdentificationCompleted:
		if e.ObservedAddr == nil || e.Conn == nil || isRelayed(e.Conn.RemoteMultiaddr()) {
			return // a relay's view of us is not our address
		}
		if _, ok := t.observed[e.Peer]; !ok && len(t.observed) >= maxObservers {
			evictOldest(t.observed, func(o observation) time.Time { return o.at })
		}
		t.observed[e.Peer] = observation{addr: e.ObservedAddr, at: time.Now()}
	case event.EvtNATDeviceTypeChanged:
		t.natTypes[e.TransportProtocol] = e.NatDeviceType
	case event.EvtAutoRelayAddrsUpdated:
		t.relayAddrs = slices.Clone(e.RelayAddrs)
	case event.EvtLocalReachabilityChanged:
		t.reachChanged = time.Now()
	}
}

// NATReport explains the node's reachability, one fact a line: AutoNAT's
// verdict, the addresses peers observe us at and the NAT type libp2p infers
// from them, the relay reservations held and whether this node relays for
// others, the hole-punch history per peer, and why each connected peer is
// direct or relayed.
func (n *Node) NATReport() []string {
	t := n.nat
	reach := n.Reachability()
	t.mu.Lock()
	defer t.mu.Unlock()

	line := "reachability: " + reachabilityWord(reach) + " (" + reachabilityWhy(reach) + ")"
	if !t.reachChanged.IsZero() {
		line += " since " + t.reachChanged.UTC().Format(time.RFC3339)
	}
	lines := []string{line}

	if reachable, unreachable, _ := n.basic.ConfirmedAddrs(); len(reachable)+len(unreachable) > 0 {
		lines = append(lines, "AutoNAT v2 address checks:")
		for _, a := range reachable {
			lines = append(lines, "  reachable   "+a.String())
		}
		for _, a := range unreachable {
			lines = append(lines, "  unreachable "+a.String())
		}
	}

	lines = append(lines, t.observedLines(n.host.Network())...)
	lines = append(lines, t.relayLines(n)...)

	ids := make([]peer.ID, 0, len(t.peers))
	for p := range t.peers {
		ids = append(ids, p)
	}
	slices.Sort(ids)
	if len(ids) == 0 {
		lines = append(lines, "hole punching: no attempts")
	} else {
		lines = append(lines, "hole punching:")
		for _, p := range ids {
			r := t.peers[p]
			lines = append(lines, fmt.Sprintf("  %s: %d attempts, %d succeeded; last: %s at %s",
				p, r.attempts, r.successes, r.outcome, r.last.UTC().Format(time.RFC3339)))
		}
	}

	for _, pi := range n.Peers() {
		lines = append(lines, t.peerLine(pi))
	}
	return lines
}

// observedLines lists the addresses connected peers observe us at (one
// observer is enough for hole punching; libp2p advertises an observed
// address only once four peers agree) and the NAT type.
func (t *natTracker) observedLines(net network.Network) []string {
	count := make(map[string]int)
	for p, o := range t.observed {
		if net.Connectedness(p) == network.Connected {
			count[o.addr.String()]++
		}
	}
	if len(count) == 0 {
		return []string{"observed addrs: none (no connected peer has reported the address it sees us at)"}
	}
	addrs := make([]string, 0, len(count))
	for a := range count {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, func(a, b string) int {
		return cmp.Or(count[b]-count[a], strings.Compare(a, b))
	})
	lines := []string{"observed addrs (as connected peers see us):"}
	for _, a := range addrs {
		lines = append(lines, fmt.Sprintf("  %s (%d peers)", a, count[a]))
	}
	for _, proto := range []network.NATTransportProtocol{network.NATTransportUDP, network.NATTransportTCP} {
		typ, ok := t.natTypes[proto]
		if !ok || typ == network.NATDeviceTypeUnknown {
			continue
		}
		name := "UDP"
		if proto == network.NATTransportTCP {
			name = "TCP"
		}
		if typ == network.NATDeviceTypeEndpointDependent {
			lines = append(lines, "NAT type "+name+": endpoint-dependent (symmetric): each peer sees another port, hole punching will fail; relays carry the traffic")
		} else {
			lines = append(lines, "NAT type "+name+": endpoint-independent (cone): hole punching can work")
		}
	}
	return lines
}

// relayLines lists the reservations held, grouped by relay, and whether
// this node relays for others.
func (t *natTracker) relayLines(n *Node) []string {
	relayAddrs := t.relayAddrs
	if len(relayAddrs) == 0 { // AutoRelay has not reported yet; trust the host
		for _, a := range n.host.Addrs() {
			if isRelayed(a) {
				relayAddrs = append(relayAddrs, a)
			}
		}
	}
	byRelay := make(map[string][]string)
	for _, a := range relayAddrs {
		id := relayOf(a)
		byRelay[id] = append(byRelay[id], a.String())
	}
	var lines []string
	if len(byRelay) == 0 {
		lines = append(lines, "relay reservations: none")
	} else {
		lines = append(lines, fmt.Sprintf("relay reservations: %d", len(byRelay)))
		relays := make([]string, 0, len(byRelay))
		for id := range byRelay {
			relays = append(relays, id)
		}
		slices.Sort(relays)
		for _, id := range relays {
			state := "connected"
			if pid, err := peer.Decode(id); err == nil && n.host.Network().Connectedness(pid) != network.Connected {
				state = "not connected"
			}
			lines = append(lines, "  via "+id+" ("+state+"):")
			for _, a := range byRelay[id] {
				lines = append(lines, "    "+a)
			}
		}
	}
	switch {
	case !n.cfg.RelayService:
		lines = append(lines, "relay service: disabled (this node does not relay for others)")
	case slices.Contains(n.host.Mux().Protocols(), proto.ProtoIDv2Hop):
		lines = append(lines, "relay service: offering circuit relay v2 to private nodes (no time or data limit per relayed connection)")
	default:
		lines = append(lines, "relay service: idle until AutoNAT finds this node publicly reachable")
	}
	return lines
}

// peerLine says why a connected peer is direct or relayed.
func (t *natTracker) peerLine(pi PeerInfo) string {
	rec := t.peers[pi.ID]
	if !pi.Relayed {
		how := "dialled directly"
		if rec != nil && rec.successes > 0 {
			how = "hole punched"
		}
		return fmt.Sprintf("peer %s: direct over %s (%s)", pi.ID, pi.Addr, how)
	}
	why := "no hole punch yet: the node that accepts a relayed connection starts one once both sides know a public address"
	if rec != nil {
		why = "last hole punch: " + rec.outcome
	}
	return fmt.Sprintf("peer %s: relayed via %s over %s (%s)", pi.ID, relayOf(pi.Addr), pi.Addr, why)
}

// relayOf returns the relay's peer ID in a /p2p/<relay>/p2p-circuit address.
func relayOf(a ma.Multiaddr) string {
	var relay string
	ma.ForEach(a, func(c ma.Component) bool {
		switch c.Protocol().Code {
		case ma.P_P2P:
			relay = c.Value()
		case ma.P_CIRCUIT:
			return false
		}
		return true
	})
	if relay == "" {
		return "an unknown relay"
	}
	return relay
}

func reachabilityWord(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return "public"
	case network.ReachabilityPrivate:
		return "private"
	default:
		return "unknown"
	}
}

func reachabilityWhy(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return "AutoNAT: peers dialled us back"
	case network.ReachabilityPrivate:
		return "AutoNAT: peers could not dial us back; using relays and hole punching"
	default:
		return "AutoNAT has not decided: it needs connected peers with public addresses to dial us back"
	}
}

func isRelayed(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}
