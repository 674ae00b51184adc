package p2p

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
)

// maxHolePunchPeers bounds the hole-punch history: one entry per remote
// peer, the oldest forgotten first.
const maxHolePunchPeers = 256

// natTracker records hole-punch outcomes for the `nat` console command. It
// is the hole-punching service's EventTracer.
type natTracker struct {
	mu    sync.Mutex
	peers map[peer.ID]*holePunchRecord
}

type holePunchRecord struct {
	attempts  int
	successes int
	last      time.Time
	outcome   string // human-readable outcome of the latest attempt
}

func newNATTracker() *natTracker {
	return &natTracker{peers: make(map[peer.ID]*holePunchRecord)}
}

// Trace implements holepunch.EventTracer.
func (t *natTracker) Trace(evt *holepunch.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rec := t.peers[evt.Remote]
	if rec == nil {
		if len(t.peers) >= maxHolePunchPeers {
			t.evictOldestLocked()
		}
		rec = &holePunchRecord{}
		t.peers[evt.Remote] = rec
	}
	rec.last = time.Unix(0, evt.Timestamp)
	switch e := evt.Evt.(type) {
	case *holepunch.DirectDialEvt:
		if e.Success {
			rec.outcome = fmt.Sprintf("direct dial succeeded in %v", e.EllapsedTime.Round(time.Millisecond))
		} else {
			rec.outcome = "direct dial failed: " + e.Error
		}
	case *holepunch.StartHolePunchEvt:
		rec.attempts++
		rec.outcome = fmt.Sprintf("hole punch started (rtt %v)", e.RTT.Round(time.Millisecond))
	case *holepunch.EndHolePunchEvt:
		if e.Success {
			rec.successes++
			rec.outcome = fmt.Sprintf("hole punch succeeded in %v", e.EllapsedTime.Round(time.Millisecond))
		} else {
			rec.outcome = "hole punch failed: " + e.Error
		}
	case *holepunch.ProtocolErrorEvt:
		rec.outcome = "hole punch protocol error: " + e.Error
	}
}

func (t *natTracker) evictOldestLocked() {
	var oldest peer.ID
	var oldestT time.Time
	for p, r := range t.peers {
		if oldest == "" || r.last.Before(oldestT) {
			oldest, oldestT = p, r.last
		}
	}
	delete(t.peers, oldest)
}

// NATReport explains the node's reachability: what AutoNAT decided, the
// addresses others observe, relay reservations held, and the hole-punch
// history per peer, one fact a line.
func (n *Node) NATReport() []string {
	reach := n.Reachability()
	lines := []string{"reachability: " + reachabilityWord(reach) + " (" + reachabilityWhy(reach) + ")"}

	var observed, relayAddrs []string
	for _, a := range n.host.Addrs() {
		if isRelayed(a) {
			relayAddrs = append(relayAddrs, a.String())
		}
	}
	observed = n.observedAddrs()
	if len(observed) == 0 {
		lines = append(lines, "observed addrs: none yet (peers report the address they see us at after connecting)")
	} else {
		lines = append(lines, "observed addrs:")
		for _, a := range observed {
			lines = append(lines, "  "+a)
		}
	}
	if len(relayAddrs) == 0 {
		lines = append(lines, "relay reservations: none")
	} else {
		lines = append(lines, fmt.Sprintf("relay reservations: %d", len(relayAddrs)))
		for _, a := range relayAddrs {
			lines = append(lines, "  "+a)
		}
	}

	n.nat.mu.Lock()
	ids := make([]peer.ID, 0, len(n.nat.peers))
	for p := range n.nat.peers {
		ids = append(ids, p)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	if len(ids) == 0 {
		lines = append(lines, "hole punching: no attempts")
	} else {
		lines = append(lines, "hole punching:")
		for _, p := range ids {
			r := n.nat.peers[p]
			lines = append(lines, fmt.Sprintf("  %s: %d attempts, %d succeeded; last %s at %s",
				p, r.attempts, r.successes, r.outcome, r.last.UTC().Format(time.RFC3339)))
		}
	}
	n.nat.mu.Unlock()

	for _, pi := range n.Peers() {
		if pi.Relayed {
			lines = append(lines, fmt.Sprintf("peer %s is relayed via %s", pi.ID, pi.Addr))
		}
	}
	return lines
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
		return "AutoNAT: peers dialled us back; offering relay service if enabled"
	case network.ReachabilityPrivate:
		return "AutoNAT: peers could not dial us back; using relays and hole punching"
	default:
		return "AutoNAT has not decided: it needs peers with public addresses to dial us back"
	}
}

func isRelayed(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// observedAddrs returns the direct addresses the host advertises that are
// not its own interface addresses: those learned from peers (identify's
// observed addresses) or from port mapping.
func (n *Node) observedAddrs() []string {
	local := make(map[string]bool)
	if ifaces, err := n.host.Network().InterfaceListenAddresses(); err == nil {
		for _, a := range ifaces {
			local[a.String()] = true
		}
	}
	var out []string
	for _, a := range n.basic.AllAddrs() {
		if !local[a.String()] {
			out = append(out, a.String())
		}
	}
	return out
}
