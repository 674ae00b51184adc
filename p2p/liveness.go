package p2p

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	mss "github.com/multiformats/go-multistream"
)

// A connection can die on one side only. When the network between two
// nodes is cut, the side that is told at once (a local firewall refusing a
// send) closes its connection, and when the network heals it dials again;
// the other side still holds the old connection, which looks healthy until
// its keep-alives time out (30 s for QUIC, 40 s for yamux over TCP). Until
// then libp2p keeps choosing the old connection for new streams — it has
// more streams open — so that side's GossipSub writes, repair answers
// included, go nowhere, and the channel is not repaired after a short cut.
//
// So a peer's new connection is taken as a hint: the node pings each of
// the peer's other connections over that connection itself, and closes the
// ones that do not answer within staleProbeTimeout. GossipSub then opens
// its stream again over the live connection, and the repair that a new
// stream starts (Node.OnMeshPeer) follows.
const staleProbeTimeout = 3 * time.Second

// maxStaleProbes bounds the probes in flight node-wide: one per peer at a
// time, so a peer opening connections in a loop costs one ping per
// staleProbeTimeout at most, and a crowd of them is answered with no probes
// beyond this many (their older connections then live out their
// keep-alives).
const maxStaleProbes = 32

// staleProber runs the probes. The zero value is not usable; see
// newStaleProber.
type staleProber struct {
	n *Node

	mu       sync.Mutex
	inFlight map[peer.ID]struct{} // at most maxStaleProbes
}

func newStaleProber(n *Node) *staleProber {
	return &staleProber{n: n, inFlight: make(map[peer.ID]struct{})}
}

// notifiee is registered on the host's network; its callbacks run on the
// swarm's goroutines and return at once.
func (sp *staleProber) notifiee() network.Notifiee {
	return &network.NotifyBundle{ConnectedF: func(net network.Network, c network.Conn) {
		p := c.RemotePeer()
		if len(net.ConnsToPeer(p)) < 2 {
			return
		}
		sp.mu.Lock()
		_, busy := sp.inFlight[p]
		if busy || len(sp.inFlight) >= maxStaleProbes {
			sp.mu.Unlock()
			return
		}
		sp.inFlight[p] = struct{}{}
		sp.mu.Unlock()
		if !sp.n.spawn(func() { sp.probe(net, p, c) }) {
			sp.done(p)
		}
	}}
}

func (sp *staleProber) done(p peer.ID) {
	sp.mu.Lock()
	delete(sp.inFlight, p)
	sp.mu.Unlock()
}

// probe pings, in parallel, each connection to p other than fresh, and
// closes those that do not answer.
func (sp *staleProber) probe(net network.Network, p peer.ID, fresh network.Conn) {
	defer sp.done(p)
	var wg sync.WaitGroup
	for _, c := range net.ConnsToPeer(p) {
		if c == fresh || c.IsClosed() {
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(sp.n.ctx, staleProbeTimeout)
			defer cancel()
			err := pingConn(ctx, c)
			if err == nil || sp.n.ctx.Err() != nil {
				return
			}
			sp.n.log.Debug("closing a connection that no longer answers, after the peer connected again",
				"peer", p, "addr", c.RemoteMultiaddr(), "err", err)
			c.Close()
			sp.n.guard.count("stale connections closed after their peer connected again", 1)
		})
	}
	wg.Wait()
}

// pingConn runs one libp2p ping (ping.ID) over c itself, not over the
// connection the host would pick for the peer. A peer that answers it does
// not speak ping is alive all the same.
func pingConn(ctx context.Context, c network.Conn) error {
	s, err := c.NewStream(network.WithAllowLimitedConn(ctx, "liveness probe"))
	if err != nil {
		return fmt.Errorf("open stream: %w", err)
	}
	defer s.Reset()
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	if err := s.SetProtocol(ping.ID); err != nil {
		return err
	}
	if err := mss.SelectProtoOrFail(protocol.ID(ping.ID), s); err != nil {
		var na mss.ErrNotSupported[protocol.ID]
		if errors.As(err, &na) {
			return nil // it answered: alive, without the ping service
		}
		return fmt.Errorf("negotiate ping: %w", err)
	}
	var out, in [ping.PingSize]byte
	rand.Read(out[:])
	if _, err := s.Write(out[:]); err != nil {
		return fmt.Errorf("send ping: %w", err)
	}
	if _, err := io.ReadFull(s, in[:]); err != nil {
		return fmt.Errorf("read pong: %w", err)
	}
	if in != out {
		return errors.New("pong does not echo the ping")
	}
	return nil
}
