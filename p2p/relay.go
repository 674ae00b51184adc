package p2p

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
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
// starts its relay service, not up to a polling interval later.
type relaySource struct {
	ready chan struct{} // closed by setHost
	h     host.Host
}

func newRelaySource() *relaySource { return &relaySource{ready: make(chan struct{})} }

// setHost hands the source the host; AutoRelay may ask for candidates
// while libp2p.New is still building it.
func (s *relaySource) setHost(h host.Host) {
	s.h = h
	close(s.ready)
}

// candidates is an autorelay.PeerSource. The stream's goroutine belongs to
// AutoRelay's search: it ends when ctx does (AutoRelay stopped looking, or
// the host closed).
func (s *relaySource) candidates(ctx context.Context, num int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo)
	go func() {
		defer close(out)
		select {
		case <-s.ready:
		case <-ctx.Done():
			return
		}
		sub, err := s.h.EventBus().Subscribe([]any{
			new(event.EvtPeerIdentificationCompleted),
			new(event.EvtPeerProtocolsUpdated),
		}, eventbus.Name("darkchat relay candidates"))
		if err != nil {
			return
		}
		defer sub.Close()
		offer := func(p peer.ID) bool {
			if !s.isRelay(p) {
				return true
			}
			select {
			case out <- s.h.Peerstore().PeerInfo(p):
				return true
			case <-ctx.Done():
				return false
			}
		}
		offerAll := func() bool {
			offered := 0
			for _, p := range s.h.Network().Peers() {
				if num > 0 && offered == num {
					break
				}
				if s.isRelay(p) {
					offered++
					if !offer(p) {
						return false
					}
				}
			}
			return true
		}
		if !offerAll() {
			return
		}
		tick := time.NewTicker(relayRecheck)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				var p peer.ID
				switch e := e.(type) {
				case event.EvtPeerIdentificationCompleted:
					p = e.Peer
				case event.EvtPeerProtocolsUpdated:
					p = e.Peer
				}
				if !offer(p) {
					return
				}
			case <-tick.C:
				if !offerAll() {
					return
				}
			}
		}
	}()
	return out
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
