package p2ptest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"darkchat/gateway"
)

// Gateway is a darkchat gateway (gateway.Server, the production code)
// running on one node of the mesh and serving line-framed sessions over
// in-memory connections (net.Pipe), so that real clients can use the node
// inside a synctest bubble: every session, timer and write runs on the
// bubble's fake time.
type Gateway struct {
	Server *gateway.Server
	ln     *pipeListener
	served chan error // ServeTCP's result
}

// StartGateway starts a gateway on darkchat node i with cfg (zero: the
// defaults; its flood filter, which needs a kernel socket, is off).
func (m *Mesh) StartGateway(i int, cfg gateway.Config) (*Gateway, error) {
	if m.opts.Stock {
		return nil, errors.New("p2ptest: stock nodes have no gateway")
	}
	if i < 0 || i >= len(m.Nodes) {
		return nil, fmt.Errorf("p2ptest: no node %d", i)
	}
	if cfg.Logger == nil {
		cfg.Logger = m.opts.Logger.With("node", i, "component", "gateway")
	}
	cfg.FloodRefusals = -1
	n := m.Nodes[i]
	srv, err := gateway.New(cfg, n, n.ID().String(), nil)
	if err != nil {
		return nil, fmt.Errorf("node %d gateway: %w", i, err)
	}
	g := &Gateway{Server: srv, ln: newPipeListener(i), served: make(chan error, 1)}
	go func() { g.served <- srv.ServeTCP(g.ln) }()
	m.gatewaysMu.Lock()
	m.gateways = append(m.gateways, g)
	m.gatewaysMu.Unlock()
	return g, nil
}

// Dial opens a session connection to the gateway, as a client's TCP
// connection from its own address.
func (g *Gateway) Dial() (net.Conn, error) { return g.ln.dial() }

func (g *Gateway) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := g.Server.Close(ctx)
	if serr := <-g.served; !errors.Is(serr, gateway.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

// pipeListener accepts the server ends of net.Pipe connections. Each
// connection claims its own client address in 100.64.0.0/10 (the node's
// index and a counter), so the gateway's per-address limits see one
// client per address.
type pipeListener struct {
	node  int
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once

	mu   sync.Mutex
	next uint32
}

func newPipeListener(node int) *pipeListener {
	return &pipeListener{node: node, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) addr(host uint32) *net.TCPAddr {
	a := netip.AddrFrom4([4]byte{100, 64 | byte(host>>16)&0x3f, byte(host >> 8), byte(host)})
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(a, 7001))
}

func (l *pipeListener) dial() (net.Conn, error) {
	l.mu.Lock()
	l.next++
	client := l.addr(uint32(l.node)<<8 | l.next&0xff)
	l.mu.Unlock()
	server := l.Addr()
	c, s := net.Pipe()
	select {
	case l.conns <- &addrConn{Conn: s, local: server, remote: client}:
		return &addrConn{Conn: c, local: client, remote: server}, nil
	case <-l.done:
		c.Close()
		s.Close()
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return l.addr(0) }

// addrConn is a pipe end with TCP addresses.
type addrConn struct {
	net.Conn
	local, remote net.Addr
}

func (c *addrConn) LocalAddr() net.Addr  { return c.local }
func (c *addrConn) RemoteAddr() net.Addr { return c.remote }
