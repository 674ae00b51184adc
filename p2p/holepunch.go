package p2p

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Hole-punch retries. libp2p runs DCUtR once per relayed connection (up to
// three synchronised dials); when that fails — a lost packet, a NAT mapping
// that was not there yet — the pair would stay relayed for as long as the
// connection lives. The node tries again with exponential backoff while the
// relayed connection to a mesh peer persists, and gives up after
// maxHolePunchRounds rounds (a symmetric NAT never opens).
const (
	maxHolePunchRounds       = 5
	holePunchRetryFirst      = 10 * time.Second
	holePunchRetryMax        = 3 * time.Minute
	holePunchCheckInterval   = 5 * time.Second
	maxConcurrentHolePunches = 4
)

// newHolePunchService starts DCUtR on h. The node builds the service itself
// rather than through libp2p.EnableHolePunching so that it can start a new
// round (Service.DirectConnect) when the first one fails.
//
// The addresses offered to the other side are our public listen addresses
// and the addresses connected peers observe us at: one observer is enough
// (a lone public node is often the only one a NATed node has).
func newHolePunchService(h host.Host, nat *natTracker) (*holepunch.Service, error) {
	ids, ok := h.(interface{ IDService() identify.IDService })
	if !ok {
		return nil, fmt.Errorf("host %T has no identify service", h)
	}
	addrs := func() []ma.Multiaddr {
		var out []ma.Multiaddr
		if own, err := h.Network().InterfaceListenAddresses(); err == nil {
			out = append(out, own...)
		}
		out = append(out, nat.observedAddrs()...)
		return slices.DeleteFunc(ma.Unique(out), func(a ma.Multiaddr) bool {
			return isRelayed(a) || !manet.IsPublicAddr(a)
		})
	}
	return holepunch.NewService(h, ids.IDService(), addrs, holepunch.WithTracer(nat))
}

// holePunchRetry is one peer's retry schedule.
type holePunchRetry struct {
	rounds  int       // rounds this node started, its own retries included
	next    time.Time // when the next round may start
	running bool
}

// holePunchLoop retries hole punching with peers that are still relayed.
// Only one side of a pair retries (initiatesHolePunch).
// It owns the retry map; rounds run on goroutines of the node's (at most
// maxConcurrentHolePunches), which report back on done, and it waits for
// them before it returns (Close closes the hole-punch service first, which
// ends them).
func (n *Node) holePunchLoop() {
	type result struct {
		p   peer.ID
		err error
	}
	retries := make(map[peer.ID]*holePunchRetry)
	done := make(chan result)
	running := 0
	tick := time.NewTicker(holePunchCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-n.ctx.Done():
			for ; running > 0; running-- {
				<-done
			}
			return
		case res := <-done:
			running--
			if r := retries[res.p]; r != nil {
				r.running = false
				if errors.Is(res.err, holepunch.ErrHolePunchActive) {
					r.rounds-- // the other side's round was still on: not ours to count
				}
			}
			continue
		case <-tick.C:
		}
		if !slices.Contains(n.basic.Mux().Protocols(), holepunch.Protocol) {
			continue // no public address yet: DirectConnect would block
		}
		now := time.Now()
		relayed := make(map[peer.ID]bool)
		for _, p := range n.basic.Network().Peers() {
			if n.initiatesHolePunch(p) && n.routers.isOpen(p) {
				relayed[p] = true
			}
		}
		for p, r := range retries {
			if !relayed[p] && !r.running {
				delete(retries, p) // direct now, or gone: a new relayed connection starts afresh
			}
		}
		for p := range relayed {
			r := retries[p]
			if r == nil {
				// libp2p started the first round when the relayed
				// connection arrived.
				r = &holePunchRetry{rounds: 1, next: now.Add(holePunchRetryFirst)}
				retries[p] = r
				n.nat.scheduled(p, r.rounds, r.next)
			}
			if r.running || r.rounds >= maxHolePunchRounds || now.Before(r.next) || running >= maxConcurrentHolePunches {
				continue
			}
			if n.nat.punching(p) {
				r.next = now.Add(holePunchCheckInterval)
				continue
			}
			if n.closeOutboundRelayed(p) {
				// DCUtR's stream must travel on a connection the other side
				// sees as outbound, or it resets it; with relayed
				// connections both ways the stream may take ours. The
				// duplicate is closed and the round starts next check.
				r.next = now.Add(holePunchCheckInterval)
				continue
			}
			r.rounds++
			r.running = true
			r.next = now.Add(min(holePunchRetryFirst<<(r.rounds-1), holePunchRetryMax))
			running++
			n.nat.retrying(p, r.rounds, maxHolePunchRounds, r.next)
			round := r.rounds
			if !n.spawn(func() {
				err := n.hps.DirectConnect(p)
				if err != nil {
					n.log.Debug("hole punch retry failed", "peer", p, "round", round, "err", err)
				}
				done <- result{p, err}
			}) {
				running-- // the node is closing; the loop ends next
				r.running = false
			}
		}
	}
}

// closeOutboundRelayed closes this node's outbound relayed connections to
// p, and reports whether there were any. It is called only on the side that
// punches, which keeps the relayed connection p dialled.
func (n *Node) closeOutboundRelayed(p peer.ID) bool {
	closed := false
	for _, c := range n.basic.Network().ConnsToPeer(p) {
		if isRelayed(c.RemoteMultiaddr()) && c.Stat().Direction == network.DirOutbound {
			c.Close()
			closed = true
		}
	}
	return closed
}

// initiatesHolePunch reports whether p is reached only through relays and
// this node is the one to punch: it accepted a relayed connection from p,
// and if each side also dialled the other through a relay, it has the
// lower peer ID (both would otherwise punch against each other).
func (n *Node) initiatesHolePunch(p peer.ID) bool {
	var inbound, outbound bool
	for _, c := range n.basic.Network().ConnsToPeer(p) {
		if !isRelayed(c.RemoteMultiaddr()) {
			return false
		}
		if c.Stat().Direction == network.DirInbound {
			inbound = true
		} else {
			outbound = true
		}
	}
	return inbound && (!outbound || n.ID() < p)
}
