package p2p

import (
	"net/netip"
	"slices"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"darkchat/internal/synfilter"
)

// synFilterMinInterval spaces out updates of the SYN filter: each one
// looks through the process's descriptors for libp2p's listening sockets.
const synFilterMinInterval = time.Second

// synFilterLoop keeps the SYN filter on libp2p's TCP listening sockets in
// step with the addresses the guard thins out (guard.go, allowAccept),
// until the node closes. QUIC takes no such filter: its handshakes are
// refused by the resource manager like a TCP one past the filter.
func (n *Node) synFilterLoop() {
	defer n.wg.Done()
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	var applied []netip.Addr
	warned := false
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.guard.thinnedChanged:
		case <-expiry.C:
		}
		srcs, next := n.guard.thinnedAt(time.Now())
		if !next.IsZero() {
			expiry.Reset(time.Until(next))
		}
		if slices.Equal(srcs, applied) {
			continue
		}
		set, err := synfilter.SetOnListeners(n.tcpListenPorts(), srcs, thinnedSYNPass)
		if err != nil && !warned {
			warned = true
			n.log.Warn("cannot thin out suspect addresses' connection attempts on the peer port; they are refused at accept instead", "err", err)
		}
		if set > 0 {
			applied = srcs
			n.log.Info("peer port: thinning out connection attempts from suspect addresses", "addresses", len(srcs), "sockets", set)
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(synFilterMinInterval):
		}
	}
}

// tcpListenPorts returns the TCP ports the host listens on.
func (n *Node) tcpListenPorts() []int {
	var ports []int
	for _, a := range n.basic.Network().ListenAddresses() {
		if _, err := a.ValueForProtocol(ma.P_TCP); err != nil {
			continue
		}
		if _, port, err := ipPortOf(a); err == nil && !slices.Contains(ports, port) {
			ports = append(ports, port)
		}
	}
	return ports
}
