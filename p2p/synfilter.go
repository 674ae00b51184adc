package p2p

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"time"

	ma "github.com/multiformats/go-multiaddr"

	"darkchat/internal/synfilter"
)

// synFilterMinInterval spaces out updates of the SYN filter: each one
// looks through the process's descriptors for libp2p's listening sockets.
const synFilterMinInterval = time.Second

// synFilterLoop keeps the SYN filter on libp2p's TCP listening sockets
// and QUIC's UDP sockets in step with the addresses the guard thins out
// (guard.go, allowAccept), until the node closes.
func (n *Node) synFilterLoop() {
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
		tcpPorts, quicPorts := n.listenPorts()
		set, err := synfilter.SetOnSockets(synfilter.TCP, tcpPorts, srcs, thinnedSYNPass)
		qset, qerr := synfilter.SetOnSockets(synfilter.QUIC, quicPorts, srcs, thinnedSYNPass)
		set += qset
		err = cmp.Or(err, qerr)
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

// listenPorts returns the TCP and the QUIC (UDP) ports the host listens
// on.
func (n *Node) listenPorts() (tcp, quic []int) {
	for _, a := range n.basic.Network().ListenAddresses() {
		if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil {
			if v, err := a.ValueForProtocol(ma.P_UDP); err == nil {
				if port, err := strconv.Atoi(v); err == nil {
					quic = append(quic, port)
				}
			}
		} else if v, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			if port, err := strconv.Atoi(v); err == nil {
				tcp = append(tcp, port)
			}
		}
	}
	return tcp, quic
}
