package p2p

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	mss "github.com/multiformats/go-multistream"
)

// Connect peers with target, which is either "ip:port" (a node known only by
// address: its peer ID is learned first) or a multiaddr. A multiaddr without
// /p2p/<id> is treated like ip:port. It returns the peer's ID.
func (n *Node) Connect(ctx context.Context, target string) (peer.ID, error) {
	target = strings.TrimSpace(target)
	if strings.HasPrefix(target, "/") {
		addr, err := ma.NewMultiaddr(target)
		if err != nil {
			return "", fmt.Errorf("%w: %q: %v", ErrBadAddress, target, err)
		}
		if _, err := addr.ValueForProtocol(ma.P_P2P); err == nil {
			info, err := peer.AddrInfoFromP2pAddr(addr)
			if err != nil {
				return "", fmt.Errorf("%w: %q: %v", ErrBadAddress, target, err)
			}
			return info.ID, n.connectInfo(ctx, *info)
		}
		ip, port, err := ipPortOf(addr)
		if err != nil {
			return "", err
		}
		return n.ConnectAddress(ctx, ip, port)
	}
	ap, err := netip.ParseAddrPort(target)
	if err != nil {
		return "", fmt.Errorf("%w: %q: want ip:port or a multiaddr", ErrBadAddress, target)
	}
	return n.ConnectAddress(ctx, ap.Addr(), int(ap.Port()))
}

// ConnectAddress peers with the node listening on ip:port whose peer ID we
// do not know: a Noise handshake without the peer-ID check reveals the ID,
// then the node connects over TCP and QUIC addresses at that port.
func (n *Node) ConnectAddress(ctx context.Context, ip netip.Addr, port int) (peer.ID, error) {
	if !ip.IsValid() || ip.IsUnspecified() || ip.Zone() != "" || port <= 0 || port > 65535 {
		return "", fmt.Errorf("%w: %v:%d", ErrBadAddress, ip, port)
	}
	id, err := n.learnPeerID(ctx, netip.AddrPortFrom(ip.Unmap(), uint16(port)))
	if err != nil {
		return "", err
	}
	addrs := listenAddrs(ip.Unmap(), port)
	return id, n.connectInfo(ctx, peer.AddrInfo{ID: id, Addrs: addrs})
}

func (n *Node) connectInfo(ctx context.Context, info peer.AddrInfo) error {
	if info.ID == n.ID() {
		return fmt.Errorf("%w: that is this node's own address", ErrBadAddress)
	}
	if err := n.host.Connect(ctx, info); err != nil {
		return fmt.Errorf("connect to %s: %w", info.ID, err)
	}
	return nil
}

// learnPeerID dials addr over TCP and runs libp2p's security negotiation up
// to the end of the Noise handshake, which authenticates the remote's peer
// ID. The connection is then dropped; it served only to learn the ID.
func (n *Node) learnPeerID(ctx context.Context, addr netip.AddrPort) (peer.ID, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, dialTimeout)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr.String())
	if err != nil {
		return "", fmt.Errorf("dial %s: %w", addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if err := mss.SelectProtoOrFail(noise.ID, conn); err != nil {
		return "", fmt.Errorf("%s does not speak libp2p noise: %w", addr, err)
	}
	tpt, err := noise.New(noise.ID, n.cfg.Key, nil)
	if err != nil {
		return "", err
	}
	st, err := tpt.WithSessionOptions(noise.DisablePeerIDCheck())
	if err != nil {
		return "", err
	}
	sconn, err := st.SecureOutbound(ctx, conn, "")
	if err != nil {
		return "", fmt.Errorf("noise handshake with %s: %w", addr, err)
	}
	defer sconn.Close()
	return sconn.RemotePeer(), nil
}

func ipPortOf(addr ma.Multiaddr) (netip.Addr, int, error) {
	na, err := manet.ToNetAddr(addr)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("%w: %s: %v", ErrBadAddress, addr, err)
	}
	host, portStr, err := net.SplitHostPort(na.String())
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("%w: %s", ErrBadAddress, addr)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("%w: %s", ErrBadAddress, addr)
	}
	port, _ := strconv.Atoi(portStr)
	return ip, port, nil
}
