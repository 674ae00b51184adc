package p2p

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
)

// Redialing lost peers. A network split longer than the transports'
// timeouts closes every connection across it; when it heals, nothing
// would connect the two sides again but discovery, whose rounds back off
// to discoveryMaxInterval while nothing new turns up, so a healed split
// could stay split for minutes, and with no DHT (a small testnet, or the
// DHT servers all on one side) for good. So the node remembers the
// GossipSub peers it lost and dials each again, soon and then every
// redialMaxBackoff, until it is back or redialGiveUp has passed. A peer
// that left for good costs a dial every few seconds for those minutes; the
// ones the guard banned are not dialled.
const (
	// maxLostPeers bounds the peers remembered; the one lost longest ago
	// goes first.
	maxLostPeers       = 64
	redialFirst        = time.Second
	redialMaxBackoff   = 8 * time.Second
	redialGiveUp       = 10 * time.Minute
	maxRedialsInFlight = 8
)

// lostPeers is the node's memory of lost GossipSub peers. The event loop
// adds and removes; the discovery loop takes the ones due.
type lostPeers struct {
	mu       sync.Mutex
	peers    map[peer.ID]*lostPeer
	inFlight int
}

type lostPeer struct {
	since, next time.Time
	backoff     time.Duration
	dialing     bool
}

func newLostPeers() *lostPeers { return &lostPeers{peers: make(map[peer.ID]*lostPeer)} }

// add remembers p, lost at now.
func (l *lostPeers) add(p peer.ID, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.peers[p]; ok {
		return
	}
	if len(l.peers) >= maxLostPeers {
		var oldest peer.ID
		var at time.Time
		for id, lp := range l.peers {
			if !lp.dialing && (oldest == "" || lp.since.Before(at)) {
				oldest, at = id, lp.since
			}
		}
		if oldest == "" {
			return
		}
		delete(l.peers, oldest)
	}
	l.peers[p] = &lostPeer{since: now, next: now.Add(redialFirst), backoff: redialFirst}
}

// remove forgets p: it is back.
func (l *lostPeers) remove(p peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.peers, p)
}

// due returns the peers to dial now, at most maxRedialsInFlight dials at
// once, marking them as being dialled and scheduling their next attempt;
// it forgets those lost more than redialGiveUp ago. next is when the
// earliest remaining attempt is due (zero: none).
func (l *lostPeers) due(now time.Time) (dial []peer.ID, next time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, lp := range l.peers {
		if now.Sub(lp.since) > redialGiveUp {
			delete(l.peers, p)
			continue
		}
		if lp.dialing {
			continue
		}
		if !now.Before(lp.next) && l.inFlight < maxRedialsInFlight {
			lp.dialing = true
			l.inFlight++
			lp.backoff = min(2*lp.backoff, redialMaxBackoff)
			lp.next = now.Add(lp.backoff)
			dial = append(dial, p)
			continue
		}
		if next.IsZero() || lp.next.Before(next) {
			next = lp.next
		}
	}
	return dial, next
}

// dialed records the end of a dial of p.
func (l *lostPeers) dialed(p peer.ID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inFlight--
	if lp := l.peers[p]; lp != nil {
		lp.dialing = false
	}
}

// peerLost is the event loop's note that p disconnected: a GossipSub peer
// the guard did not ban is dialled again (see redialLost).
func (n *Node) peerLost(p peer.ID) {
	if !n.routers.known(p) || n.guard.isBanned(p) {
		return
	}
	n.lost.add(p, time.Now())
	signal(n.redialWake)
}

// redialLoop dials lost peers when they are due, until the node closes.
func (n *Node) redialLoop() {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.redialWake:
		case <-timer.C:
		}
		timer.Stop()
		if next := n.redialLost(); !next.IsZero() {
			// Peers due while maxRedialsInFlight dials run wait for
			// one of them to end.
			timer.Reset(max(time.Until(next), redialFirst/4))
		}
	}
}

// redialLost dials the lost peers that are due, each on its own goroutine
// (a dead peer's dial takes dialTimeout), within the connection manager's
// low watermark, and returns when the next ones are due (zero: none but
// those being dialled, whose ends wake redialLoop).
func (n *Node) redialLost() time.Time {
	dial, next := n.lost.due(time.Now())
	for _, p := range dial {
		if len(n.host.Network().Peers()) >= n.cfg.ConnLow || n.guard.isBanned(p) ||
			n.host.Network().Connectedness(p) == network.Connected {
			n.lost.dialed(p)
			continue
		}
		started := n.spawn(func() {
			defer func() {
				n.lost.dialed(p)
				signal(n.redialWake) // its next attempt is to be scheduled
			}()
			// This loop is the lost peer's backoff: the swarm's own,
			// which grows with every dial that failed during a cut (5 s
			// plus the square of the failures in seconds), would keep
			// the peer away long after the network heals.
			if sw, ok := n.host.Network().(*swarm.Swarm); ok {
				sw.Backoff().Clear(p)
			}
			ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
			defer cancel()
			if err := n.host.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
				n.log.Debug("lost peer still unreachable; will retry", "peer", p, "err", err)
				return
			}
			n.log.Debug("lost peer reconnected", "peer", p)
		})
		if !started {
			n.lost.dialed(p)
		}
	}
	return next
}
