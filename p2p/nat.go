package p2p

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	relayclient "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// maxHolePunchPeers bounds the hole-punch history: one entry per remote
// peer, the oldest forgotten first. maxObservers bounds the observed-address
// memory the same way.
const (
	maxHolePunchPeers = 256
	maxObservers      = 256
)

// natTracker gathers what the `nat` console command explains. It is the
// hole-punching service's EventTracer, and records the host's events about
// the addresses peers observe us at, the NAT type libp2p infers from them,
// and the relay addresses AutoRelay holds.
type natTracker struct {
	net network.Network // set by New before any event; for which observers are still connected

	mu    sync.Mutex
	peers map[peer.ID]*holePunchRecord

	observed   map[observer]observation // what each peer last saw us as, per transport
	natTypes   map[network.NATTransportProtocol]network.NATDeviceType
	relayAddrs []ma.Multiaddr // from AutoRelay: our reservations
	// lostRelay says which reservation ended last, when and how, for a
	// node that finds itself without one.
	lostRelay string
}

type holePunchRecord struct {
	attempts   int // synchronised dials (libp2p makes up to three a round)
	successes  int
	last       time.Time
	outcome    string // human-readable outcome of the latest attempt
	inProgress bool   // between the start and the end of a synchronised dial

	// The node's retry schedule (holePunchLoop): rounds started so far,
	// the limit, and when the next round may start.
	rounds, maxRounds int
	nextRound         time.Time
}

// observer is one peer's view of us over one kind of transport: a NAT maps
// TCP and UDP separately, and hole punching needs both.
type observer struct {
	peer peer.ID
	udp  bool
}

type observation struct {
	addr ma.Multiaddr
	at   time.Time
}

func newNATTracker() *natTracker {
	return &natTracker{
		peers:    make(map[peer.ID]*holePunchRecord),
		observed: make(map[observer]observation),
		natTypes: make(map[network.NATTransportProtocol]network.NATDeviceType),
	}
}

// Trace implements holepunch.EventTracer. It sees both sides of DCUtR: the
// node that accepted a relayed connection starts the hole punch, the other
// one answers, and both dial at once.
func (t *natTracker) Trace(evt *holepunch.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := t.recordLocked(evt.Remote)
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
		rec.inProgress = true
		rec.outcome = fmt.Sprintf("hole punch in progress (relay rtt %v, punching %s)",
			e.RTT.Round(time.Millisecond), strings.Join(e.RemoteAddrs, " "))
	case *holepunch.EndHolePunchEvt:
		rec.inProgress = false
		if e.Success {
			rec.successes++
			rec.outcome = fmt.Sprintf("hole punch succeeded in %v", e.EllapsedTime.Round(time.Millisecond))
		} else {
			rec.outcome = "hole punch failed: " + oneLine(e.Error)
		}
	case *holepunch.ProtocolErrorEvt:
		rec.inProgress = false
		rec.outcome = "hole punch protocol error: " + oneLine(e.Error)
	}
}

func (t *natTracker) recordLocked(p peer.ID) *holePunchRecord {
	rec := t.peers[p]
	if rec == nil {
		if len(t.peers) >= maxHolePunchPeers {
			evictOldest(t.peers, func(r *holePunchRecord) time.Time { return r.last })
		}
		rec = &holePunchRecord{last: time.Now()}
		t.peers[p] = rec
	}
	return rec
}

// scheduled records that libp2p's own round with p counts as round rounds
// and the node will retry at next if p is still relayed then.
func (t *natTracker) scheduled(p peer.ID, rounds int, next time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := t.recordLocked(p)
	rec.rounds, rec.maxRounds, rec.nextRound = rounds, maxHolePunchRounds, next
}

// retrying records that the node started round round of limit with p; the
// one after it may start at next.
func (t *natTracker) retrying(p peer.ID, round, limit int, next time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := t.recordLocked(p)
	rec.rounds, rec.maxRounds, rec.nextRound = round, limit, next
	rec.last = time.Now()
	rec.outcome = fmt.Sprintf("retry round %d of %d started", round, limit)
}

// everPunched reports whether a hole punch with p was ever started, from
// either side.
func (t *natTracker) everPunched(p peer.ID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := t.peers[p]
	return rec != nil && (rec.attempts > 0 || rec.rounds > 0)
}

// punching reports whether a synchronised dial with p is under way.
func (t *natTracker) punching(p peer.ID) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := t.peers[p]
	return rec != nil && rec.inProgress
}

// roundsLine describes a peer's retry schedule for the report.
func (r *holePunchRecord) roundsLine() string {
	switch {
	case r.maxRounds == 0:
		return ""
	case r.rounds >= r.maxRounds:
		return fmt.Sprintf("; round %d of %d, no more retries", r.rounds, r.maxRounds)
	default:
		return fmt.Sprintf("; round %d of %d, next round at %s if still relayed", r.rounds, r.maxRounds, r.nextRound.UTC().Format(time.RFC3339))
	}
}

// oneLine folds a multi-line error (libp2p lists one line per address it
// dialled) into one line of the report.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func evictOldest[K comparable, V any](m map[K]V, when func(V) time.Time) {
	var oldest K
	found := false
	var oldestT time.Time
	for k, v := range m {
		if !found || when(v).Before(oldestT) {
			oldest, oldestT, found = k, when(v), true
		}
	}
	delete(m, oldest)
}

// record takes in one host event the report explains (the node's event
// loop passes them on).
func (t *natTracker) record(e any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch e := e.(type) {
	case event.EvtPeerIdentificationCompleted:
		if e.ObservedAddr == nil || e.Conn == nil || isRelayed(e.Conn.RemoteMultiaddr()) {
			return // a relay's view of us is not our address
		}
		key := observer{peer: e.Peer, udp: isUDP(e.ObservedAddr)}
		if _, ok := t.observed[key]; !ok && len(t.observed) >= maxObservers {
			evictOldest(t.observed, func(o observation) time.Time { return o.at })
		}
		t.observed[key] = observation{addr: e.ObservedAddr, at: time.Now()}
	case event.EvtNATDeviceTypeChanged:
		t.natTypes[e.TransportProtocol] = e.NatDeviceType
	case event.EvtAutoRelayAddrsUpdated:
		for _, old := range t.relayAddrs {
			id := relayOf(old)
			if slices.ContainsFunc(e.RelayAddrs, func(a ma.Multiaddr) bool { return relayOf(a) == id }) {
				continue
			}
			how := "the relay went away (disconnected)"
			if pid, err := peer.Decode(id); err == nil && t.net != nil && t.net.Connectedness(pid) == network.Connected {
				how = "not renewed: the relay refused or expired it"
			}
			t.lostRelay = "reservation via " + id + " ended at " + time.Now().UTC().Format(time.RFC3339) + ": " + how
		}
		t.relayAddrs = slices.Clone(e.RelayAddrs)
	}
}

// NATReport explains the node's reachability, one fact a line: the
// verdict and its evidence, the addresses peers observe us at and the NAT
// type libp2p infers from them, the relay reservations held (or why there
// is none, and what the operator can do) and whether this node relays for
// others (or why not), the hole-punch history per peer, and why each
// connected peer is direct or relayed.
//
// A private node without a reservation asks each connected relay for one,
// to report the relay's answer; that can take up to reservationProbeTimeout.
func (n *Node) NATReport() []string {
	if n.intro == nil {
		return n.hostlessNATReport()
	}
	t := n.nat
	reach, why, since := n.reach.get()
	var diagnosis []string
	if reach != network.ReachabilityPublic && len(circuitAddrs(n.host.Addrs())) == 0 {
		diagnosis = n.noReservationDiagnosis()
	}
	announceHint := n.announceHint(reach)
	t.mu.Lock()
	defer t.mu.Unlock()

	line := "reachability: " + reachabilityWord(reach) + " (" + why + ")"
	if !since.IsZero() {
		line += " since " + since.UTC().Format(time.RFC3339)
	}
	lines := []string{line}
	lines = append(lines, announceHint...)

	if reachable, unreachable, _ := n.intro.ConfirmedAddrs(); len(reachable)+len(unreachable) > 0 {
		lines = append(lines, "AutoNAT v2 address checks:")
		for _, a := range reachable {
			lines = append(lines, "  reachable   "+a.String())
		}
		for _, a := range unreachable {
			lines = append(lines, "  unreachable "+a.String())
		}
	}

	lines = append(lines, t.observedLines(n.host.Network())...)
	lines = append(lines, t.relayLines(n, reach, diagnosis)...)

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
			lines = append(lines, fmt.Sprintf("  %s: %d attempts, %d succeeded; last: %s at %s%s",
				p, r.attempts, r.successes, r.outcome, r.last.UTC().Format(time.RFC3339), r.roundsLine()))
		}
	}

	for _, pi := range n.Peers() {
		lines = append(lines, t.peerLine(pi))
	}
	return lines
}

// hostlessNATReport is NATReport on a host the caller built (NewWithHost):
// the node cannot introspect it, so it decides nothing and reports what it
// knows, the peers and how they are connected.
func (n *Node) hostlessNATReport() []string {
	lines := []string{"reachability: unknown (the node runs on a host its caller built: no reachability decision, relay reservations or hole punching)"}
	n.nat.mu.Lock()
	defer n.nat.mu.Unlock()
	for _, pi := range n.Peers() {
		lines = append(lines, n.nat.peerLine(pi))
	}
	return lines
}

// observedLines lists the addresses connected peers observe us at (one
// observer is enough for hole punching; libp2p advertises an observed
// address only once four peers agree) and the NAT type.
func (t *natTracker) observedLines(net network.Network) []string {
	count := make(map[string]int)
	for k, o := range t.observed {
		if net.Connectedness(k.peer) == network.Connected {
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
func (t *natTracker) relayLines(n *Node, reach network.Reachability, diagnosis []string) []string {
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
		if reach == network.ReachabilityPublic {
			lines = append(lines, "relay reservations: none (not needed: this node is publicly reachable)")
		} else {
			lines = append(lines, "relay reservations: none")
			if t.lostRelay != "" {
				lines = append(lines, "  last "+t.lostRelay)
			}
			lines = append(lines, diagnosis...)
		}
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
		lines = append(lines, "relay service: disabled by --relay-service=false (this node does not relay for others)")
	case slices.Contains(n.host.Mux().Protocols(), proto.ProtoIDv2Hop):
		lines = append(lines, "relay service: offering circuit relay v2 to private nodes (no time or data limit per relayed connection)")
	case n.cfg.Reachability == ReachabilityPrivate:
		lines = append(lines, "relay service: idle: --reachability private says others cannot dial this node")
	case reach == network.ReachabilityPrivate:
		lines = append(lines, "relay service: idle: others cannot dial this node (see reachability above)")
	default:
		lines = append(lines, "relay service: idle: this node is not known to be publicly reachable (see reachability above); "+
			"if it is (a VPS, a forwarded port), start it with --reachability public to relay at once")
	}
	return lines
}

// announceHint warns a node that others can dial but that advertises no
// public address (behind a cloud provider's 1:1 NAT, or a forwarded port):
// peers could not reach it through the DHT, and NATed nodes could not use
// its relay, so it names the flag that fixes it.
func (n *Node) announceHint(reach network.Reachability) []string {
	if reach != network.ReachabilityPublic {
		return nil
	}
	for _, a := range n.host.Addrs() {
		if !isRelayed(a) && manet.IsPublicAddr(a) {
			return nil
		}
	}
	seen := n.nat.observedAddrs()
	at := "the address peers dialled"
	if len(seen) > 0 {
		at = seen[0].String()
	}
	return []string{"addresses: this node advertises no public address, so NATed nodes cannot use its relay; peers reach it at " +
		at + ": start it with --announce <public-ip>:<peer-port>"}
}

// reservationProbeTimeout bounds how long the `nat` report waits for
// relays to answer a reservation request.
const reservationProbeTimeout = 5 * time.Second

// maxReservationProbes bounds the relays one report asks.
const maxReservationProbes = 4

// noReservationDiagnosis says why a node that is not public holds no relay
// reservation, and what the operator can do: no relay connected, or each
// connected relay's answer to a reservation request (a refusal and its
// reason, or an acceptance: AutoRelay will take one shortly).
func (n *Node) noReservationDiagnosis() []string {
	var relays []peer.ID
	for _, pi := range n.Peers() {
		if pi.Relayed {
			continue
		}
		if ps, err := n.host.Peerstore().SupportsProtocols(pi.ID, proto.ProtoIDv2Hop); err == nil && len(ps) > 0 {
			relays = append(relays, pi.ID)
		}
	}
	if len(relays) == 0 {
		direct := 0
		for _, pi := range n.Peers() {
			if !pi.Relayed {
				direct++
			}
		}
		if direct == 0 {
			return []string{"  why: no peer is connected directly; peer with a public node: --peer <its-ip>:<its-peer-port>"}
		}
		return []string{fmt.Sprintf("  why: none of the %d directly connected peers offers a relay; "+
			"peer with a public node (--peer <its-ip>:<its-peer-port>) and check its own `nat`: "+
			"its relay service must say \"offering\" (--reachability public forces it on a public node)", direct)}
	}
	if len(relays) > maxReservationProbes {
		relays = relays[:maxReservationProbes]
	}
	ctx, cancel := context.WithTimeout(n.ctx, reservationProbeTimeout)
	defer cancel()
	lines := make([]string, len(relays))
	var wg sync.WaitGroup
	for i, p := range relays {
		wg.Go(func() {
			_, err := relayclient.Reserve(ctx, n.host, n.host.Peerstore().PeerInfo(p))
			if err != nil {
				lines[i] = "  relay " + p.String() + " refused a reservation: " + oneLine(err.Error())
			} else {
				lines[i] = "  relay " + p.String() + " accepts reservations: AutoRelay is taking one"
			}
		})
	}
	wg.Wait()
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
		why = "last hole punch: " + rec.outcome + rec.roundsLine()
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

// observedAddrs returns the distinct addresses that connected peers
// observe us at over direct connections, the most recent first. A single
// observer is enough: libp2p's own hole punching trusts one, and a lone
// public node is often the only observer a NATed node has.
func (t *natTracker) observedAddrs() []ma.Multiaddr {
	t.mu.Lock()
	obs := make([]observation, 0, len(t.observed))
	for k, o := range t.observed {
		if t.net == nil || t.net.Connectedness(k.peer) == network.Connected {
			obs = append(obs, o)
		}
	}
	t.mu.Unlock()
	slices.SortFunc(obs, func(a, b observation) int { return b.at.Compare(a.at) })
	out := make([]ma.Multiaddr, 0, len(obs))
	for _, o := range obs {
		if !slices.ContainsFunc(out, o.addr.Equal) {
			out = append(out, o.addr)
		}
	}
	return out
}

func isUDP(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_UDP)
	return err == nil
}

func isRelayed(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}
