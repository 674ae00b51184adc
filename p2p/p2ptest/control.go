package p2ptest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"

	"github.com/libp2p/go-libp2p"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/marcopolo/simnet"
	"github.com/quic-go/quic-go"
	"go.uber.org/fx"
	"google.golang.org/protobuf/proto"
)

// simConn is a node's UDP endpoint on simnet. While paused it drops every
// packet the node sends and every packet sent to it, as if its network
// were cut; the node itself keeps running.
type simConn struct {
	*simnet.SimConn
	paused atomic.Bool
	node   int
	mesh   *Mesh
}

func (c *simConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.paused.Load() || c.mesh.cutOff(c.node, addr) {
		return len(p), nil
	}
	return c.SimConn.WriteTo(p, addr)
}

func (c *simConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.SimConn.ReadFrom(p)
		if err != nil || !c.paused.Load() {
			return n, addr, err
		}
	}
}

// fixedSourceIP is the source address QUIC dials from: the node's own.
type fixedSourceIP net.IP

func (ip fixedSourceIP) PreferredSourceIPForDestination(*net.UDPAddr) (net.IP, error) {
	return net.IP(ip), nil
}

// quicSimnet makes the host's QUIC transport listen and dial on a simnet
// endpoint at ip (what x/simlibp2p's QUICSimnet does, keeping the
// endpoint for Pause and BytesSent).
func quicSimnet(sim *simnet.Simnet, link simnet.NodeBiDiLinkSettings, ip net.IP, onConn func(*simConn)) libp2p.Option {
	return libp2p.QUICReuse(
		func(l fx.Lifecycle, resetKey quic.StatelessResetKey, tokenKey quic.TokenGeneratorKey, opts ...quicreuse.Option) (*quicreuse.ConnManager, error) {
			cm, err := quicreuse.NewConnManager(resetKey, tokenKey, opts...)
			if err != nil {
				return nil, err
			}
			// A connection manager given to libp2p is not closed by it.
			l.Append(fx.StopHook(cm.Close))
			return cm, nil
		},
		quicreuse.OverrideSourceIPSelector(func() (quicreuse.SourceIPSelector, error) {
			return fixedSourceIP(ip), nil
		}),
		quicreuse.OverrideListenUDP(func(_ string, addr *net.UDPAddr) (net.PacketConn, error) {
			c := &simConn{SimConn: sim.NewEndpoint(addr, link)}
			onConn(c)
			return c, nil
		}),
	)
}

// countingHost is a node's host as its GossipSub router sees it: the
// inbound streams its handlers read are parsed for Options.OnRPC.
type countingHost struct {
	host.Host
	node  int
	onRPC func(node int, frameBytes int, published [][]byte)
}

func (h *countingHost) wrap(handler network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) { handler(&countingStream{Stream: s, h: h}) }
}

func (h *countingHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, h.wrap(handler))
}

func (h *countingHost) SetStreamHandlerMatch(pid protocol.ID, match func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, match, h.wrap(handler))
}

// countingStream splits what its reader reads into GossipSub's
// length-prefixed RPC frames.
type countingStream struct {
	network.Stream
	h   *countingHost
	buf []byte
	bad bool
}

func (s *countingStream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	if n > 0 && !s.bad {
		s.feed(p[:n])
	}
	return n, err
}

func (s *countingStream) feed(b []byte) {
	s.buf = append(s.buf, b...)
	for {
		size, k := binary.Uvarint(s.buf)
		if k < 0 {
			s.bad, s.buf = true, nil
			return
		}
		if k == 0 || uint64(len(s.buf)-k) < size {
			return
		}
		end := k + int(size)
		var rpc pb.RPC
		var published [][]byte
		if proto.Unmarshal(s.buf[k:end], &rpc) == nil {
			for _, m := range rpc.Publish {
				published = append(published, m.Data)
			}
		}
		s.h.onRPC(s.h.node, end, published)
		s.buf = s.buf[end:]
		if len(s.buf) == 0 {
			s.buf = nil
		}
	}
}

var errNotSimNet = errors.New("p2ptest: only on SimNet")

// AddNode starts a new node (the next index, its key from the seed) on
// the simulated network and connects it to the given nodes. The caller
// joins it to channels (JoinNode).
func (m *Mesh) AddNode(ctx context.Context, connectTo []int) (int, error) {
	if m.sim == nil {
		return 0, errNotSimNet
	}
	i := len(m.Hosts)
	if err := m.addSimNetHost(i); err != nil {
		return 0, err
	}
	if err := m.startNode(i); err != nil {
		return 0, err
	}
	for _, j := range connectTo {
		b := m.Hosts[j]
		if err := m.Hosts[i].Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
			return i, fmt.Errorf("connect node %d to %d: %w", i, j, err)
		}
	}
	return i, nil
}

// Down reports whether node i was stopped by Crash or Leave.
func (m *Mesh) Down(i int) bool { return m.down[i] }

// Crash stops node i as a crash would: its host closes at once, telling
// no peer anything beyond what closing QUIC connections does; then the
// node's router stops (it can no longer send).
func (m *Mesh) Crash(i int) error {
	if m.down[i] {
		return nil
	}
	m.down[i] = true
	err := m.Hosts[i].Close()
	return errors.Join(err, m.stopRouter(i))
}

// Leave stops node i's darkchat node (Node.Close: it leaves its topics,
// which GossipSub announces to its peers) or stock router; the caller
// closes the host later (CloseHost), as a process exits after its
// node.
func (m *Mesh) Leave(i int) error {
	if m.down[i] {
		return nil
	}
	m.down[i] = true
	return m.stopRouter(i)
}

// CloseHost closes node i's host.
func (m *Mesh) CloseHost(i int) error { return m.Hosts[i].Close() }

func (m *Mesh) stopRouter(i int) error {
	if m.opts.Stock {
		return m.Stock[i].Close()
	}
	return m.Nodes[i].Close()
}

// Publish publishes data on channel from node i (darkchat or stock).
func (m *Mesh) Publish(ctx context.Context, i int, channel string, data []byte) error {
	if m.opts.Stock {
		return m.Stock[i].Publish(ctx, channel, data)
	}
	return m.Nodes[i].Publish(ctx, channel, data)
}

// Pause cuts node i off the simulated network (true) or reconnects it
// (false): while paused, every packet it sends or is sent is dropped. Its
// connections stay open on both sides until QUIC gives up on them.
func (m *Mesh) Pause(i int, paused bool) error {
	if m.sim == nil {
		return errNotSimNet
	}
	m.conns[i].paused.Store(paused)
	return nil
}

// Partition cuts the simulated network between groups of nodes: every
// packet between two nodes that side puts on different sides is dropped,
// both ways, until Heal. The nodes keep running, and their connections
// across the cut stay open on both sides until QUIC gives up on them, as
// in a real network split. Nodes added later are on no side: never cut.
func (m *Mesh) Partition(side func(i int) int) error {
	if m.sim == nil {
		return errNotSimNet
	}
	sides := make([]int, len(m.Hosts))
	for i := range sides {
		sides[i] = side(i)
	}
	m.sides.Store(&sides)
	return nil
}

// Heal ends Partition's cut.
func (m *Mesh) Heal() error {
	if m.sim == nil {
		return errNotSimNet
	}
	m.sides.Store(nil)
	return nil
}

// cutOff reports whether Partition drops a packet from node from to addr.
func (m *Mesh) cutOff(from int, addr net.Addr) bool {
	sp := m.sides.Load()
	if sp == nil {
		return false
	}
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return false
	}
	m.addrMu.RLock()
	to, ok := m.addrIndex[ua.IP.String()]
	m.addrMu.RUnlock()
	sides := *sp
	return ok && from < len(sides) && to < len(sides) && sides[from] != sides[to]
}

// BytesSent is how many UDP payload bytes node i has sent on the
// simulated network (QUIC packets: every protocol, headers included).
func (m *Mesh) BytesSent(i int) int64 {
	if m.sim == nil {
		return 0
	}
	return int64(m.conns[i].Stats().BytesSent)
}

// Connect dials every edge of the topology at once (each node dials its
// edges in turn, all nodes concurrently), on SimNet, for a mesh started
// with Options.NoConnect.
func (m *Mesh) Connect(ctx context.Context) error {
	if m.sim == nil {
		return errNotSimNet
	}
	dials := make([][]int, len(m.Hosts))
	for _, e := range m.Edges {
		dials[e[0]] = append(dials[e[0]], e[1])
	}
	errs := make([]error, len(m.Hosts))
	var wg sync.WaitGroup
	for a, to := range dials {
		wg.Go(func() {
			for _, b := range to {
				hb := m.Hosts[b]
				if err := m.Hosts[a].Connect(ctx, peer.AddrInfo{ID: hb.ID(), Addrs: hb.Addrs()}); err != nil {
					errs[a] = errors.Join(errs[a], fmt.Errorf("connect node %d to %d: %w", a, b, err))
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
