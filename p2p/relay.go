package p2p

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
)

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

// relayRecheck is how often the candidate stream offers AutoRelay the
// connected relays again: one that refused a reservation comes out of
// AutoRelay's backoff, and a relay that restarted may accept again.
const relayRecheck = 30 * time.Second

// relaySource feeds AutoRelay with relay candidates: the connected peers
// that offer the circuit relay v2 hop protocol, as soon as identify tells
// us they do. AutoRelay polls a peer source at most every MinInterval and
// waits for the returned channel to close; this one stays open while
// AutoRelay is looking, so a relay is offered the moment it connects or
// starts its relay service, not up to a polling interval later. The
// node's event loop tells it (notify) when a peer was identified or
// changed protocols.
type relaySource struct {
	ready chan struct{} // closed by setHost
	h     host.Host
	// spawn runs a stream on one of the node's goroutines; stop ends the
	// streams when the node closes (AutoRelay's own search ends only with
	// the host, after the node has waited for its goroutines).
	spawn func(func()) bool
	stop  <-chan struct{}

	mu      sync.Mutex
	changes chan struct{} // closed and replaced by notify
}

func newRelaySource(spawn func(func()) bool, stop <-chan struct{}) *relaySource {
	return &relaySource{ready: make(chan struct{}), spawn: spawn, stop: stop, changes: make(chan struct{})}
}

// setHost hands the source the host; AutoRelay may ask for candidates
// while libp2p.New is still building it.
func (s *relaySource) setHost(h host.Host) {
	s.h = h
	close(s.ready)
}

// notify wakes every candidate stream to look at the connected peers again.
func (s *relaySource) notify() {
	s.mu.Lock()
	close(s.changes)
	s.changes = make(chan struct{})
	s.mu.Unlock()
}

func (s *relaySource) changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changes
}

// candidates is an autorelay.PeerSource. Its stream runs on a goroutine of
// the node's and ends when ctx does (AutoRelay stopped looking) or the node
// closes.
func (s *relaySource) candidates(ctx context.Context, num int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo)
	if !s.spawn(func() {
		defer close(out)
		s.offer(ctx, num, out)
	}) {
		close(out)
	}
	return out
}

// offer sends the connected relays (up to num each time it looks; 0: all)
// to out: each one once when it appears, and all of them again every
// relayRecheck.
func (s *relaySource) offer(ctx context.Context, num int, out chan<- peer.AddrInfo) {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return
	case <-s.stop:
		return
	}
	tick := time.NewTicker(relayRecheck)
	defer tick.Stop()
	// offered holds the relays this stream has offered that were still
	// relays at its last look, so it is bounded by the connected peers.
	offered := make(map[peer.ID]bool)
	for {
		changed := s.changed() // before looking, so no change goes unseen
		next := make(map[peer.ID]bool, len(offered))
		for _, p := range s.h.Network().Peers() {
			if num > 0 && len(next) == num {
				break
			}
			if !s.isRelay(p) {
				continue
			}
			next[p] = true
			if offered[p] {
				continue
			}
			select {
			case out <- s.h.Peerstore().PeerInfo(p):
			case <-ctx.Done():
				return
			case <-s.stop:
				return
			}
		}
		offered = next
		select {
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		case <-changed:
		case <-tick.C:
			clear(offered) // offer every relay again
		}
	}
}

// isRelay reports whether p is directly connected and announces the hop
// protocol: a node relays only while it is publicly reachable, and a peer
// we reach only through a relay cannot be one.
func (s *relaySource) isRelay(p peer.ID) bool {
	direct := false
	for _, c := range s.h.Network().ConnsToPeer(p) {
		if !isRelayed(c.RemoteMultiaddr()) {
			direct = true
			break
		}
	}
	if !direct || s.h.Network().Connectedness(p) != network.Connected {
		return false
	}
	ps, err := s.h.Peerstore().SupportsProtocols(p, proto.ProtoIDv2Hop)
	return err == nil && len(ps) > 0
}
