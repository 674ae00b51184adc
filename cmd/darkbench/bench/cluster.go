package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"

	"darkchat/gateway"
	"darkchat/identity"
	"darkchat/p2p"
)

// benchNode is a real darkchat node (p2p.Node on 127.0.0.1 with TCP and
// QUIC) with its gateway serving TCP and WebSocket on loopback.
type benchNode struct {
	node    *p2p.Node
	gw      *gateway.Server
	tcpAddr string
	wsURL   string
	// verified counts channel messages this node's validator accepted:
	// each is one Ed25519 verification on this node.
	verified atomic.Int64
	// verifier batches the node's signature verifications.
	verifier *identity.Verifier
}

// benchGatewayConfig is the gateway's default configuration with the
// limits meant for people typing lifted: the per-session send rate
// (default 5/s, burst 20) and the sessions per IP address (default 64; all
// benchmark clients come from loopback).
func benchGatewayConfig() gateway.Config {
	// MaxConns: every client of a benchmark comes from 127.0.0.1, and the
	// node keeps its last eighth of MaxConns (sized from the open-file
	// limit, halved) for newcomers, which session-memory's 9,000 sessions
	// from one address ran into. The scenarios size themselves to the
	// open-file limit instead.
	return gateway.Config{Rate: 1e9, Burst: 1 << 30, MaxSessionsPerIP: 1 << 20, MaxConns: max(fileLimit(), gateway.DefaultMaxConns)}
}

func startNode(cfg gateway.Config) (*benchNode, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	bn := &benchNode{}
	// Owned channels' records, shared by the validator and the gateway,
	// as darkchatd wires them: the validator's lookup of each message's
	// author is part of what is measured.
	rules := gateway.NewRulesTable()
	bn.verifier = identity.NewVerifier(runtime.GOMAXPROCS(0), identity.DefaultVerifyBatch, identity.DefaultVerifyQueued)
	validate := gateway.ChannelValidator(nil, gateway.DefaultTimestampWindow, gateway.AuthorLimit{}, nil,
		gateway.WithRules(rules), gateway.WithVerifier(bn.verifier))
	node, err := p2p.New(p2p.Config{
		Key:      key,
		ListenIP: netip.MustParseAddr("127.0.0.1"),
		Validator: func(from peer.ID, channel string, data []byte) (any, error) {
			payload, err := validate(from, channel, data)
			if err == nil && channel != "" { // channel messages; "" is the history topic
				bn.verified.Add(1)
			}
			return payload, err
		},
		ParallelValidation: gateway.ParallelValidation,
		InboxValidator:     gateway.InboxValidator(),
		BundleValidator:    gateway.BundleValidator{},
		RulesValidator:     gateway.RulesValidator{},
	})
	if err != nil {
		bn.verifier.Close()
		return nil, err
	}
	bn.node = node
	cfg.Rules = rules
	if bn.gw, err = gateway.New(cfg, node, node.ID().String(), nil); err != nil {
		node.Close()
		return nil, err
	}
	tl, err := gateway.Listen("127.0.0.1:0") // as darkchatd listens
	if err != nil {
		bn.close()
		return nil, err
	}
	wl, err := gateway.Listen("127.0.0.1:0")
	if err != nil {
		tl.Close()
		bn.close()
		return nil, err
	}
	go bn.gw.ServeTCP(tl)
	go bn.gw.ServeWS(wl)
	bn.tcpAddr, bn.wsURL = tl.Addr().String(), "ws://"+wl.Addr().String()+"/ws"
	return bn, nil
}

func (bn *benchNode) close() {
	if bn.gw != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		bn.gw.Close(ctx)
		cancel()
	}
	bn.node.Close()
	bn.verifier.Close()
}

// stats returns the node's loss counters (p2p.Node.Stats): messages it
// dropped (full validation or subscription queue) and messages it could
// not queue for a peer.
func (bn *benchNode) stats() (dropped, notSent uint64) {
	st := bn.node.Stats()
	return st.Dropped, st.NotSent
}

// lossReport describes the loss counters of nodes named by names.
func lossReport(names string, nodes ...*benchNode) string {
	var b []byte
	for i, n := range nodes {
		d, ns := n.stats()
		if i > 0 {
			b = append(b, "; "...)
		}
		b = fmt.Appendf(b, "%c: dropped %d, not sent %d", names[i], d, ns)
	}
	return string(b)
}

// connect dials b from a.
func connect(ctx context.Context, a, b *benchNode) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	info := peer.AddrInfo{ID: b.node.ID(), Addrs: b.node.Host().Addrs()}
	if err := a.node.Host().Connect(ctx, info); err != nil {
		return fmt.Errorf("connect %s -> %s: %w", a.node.ID().ShortString(), b.node.ID().ShortString(), err)
	}
	return nil
}

// keepApart closes every connection between a and b as soon as it opens
// and counts how many it closed. darkchat nodes find each other through the
// DHT and connect directly; the line topology A–B–C of the benchmarks
// exists only while A and C are kept apart. Each closed connection also
// puts the other's addresses in the swarm's dial backoff (5 s; a
// successful connection clears it), or the DHT's lookups would redial at
// once, hundreds of times a second.
func keepApart(a, b *benchNode) *atomic.Int64 {
	var closed atomic.Int64
	guard := func(self *benchNode, forbidden peer.ID) *network.NotifyBundle {
		return &network.NotifyBundle{ConnectedF: func(n network.Network, c network.Conn) {
			if c.RemotePeer() != forbidden {
				return
			}
			closed.Add(1)
			if sw, ok := n.(*swarm.Swarm); ok {
				for _, addr := range self.node.Host().Peerstore().Addrs(forbidden) {
					sw.Backoff().AddBackoff(forbidden, addr)
				}
			}
			go c.Close()
		}}
	}
	a.node.Host().Network().Notify(guard(a, b.node.ID()))
	b.node.Host().Network().Notify(guard(b, a.node.ID()))
	return &closed
}

// countingMember is a p2p.Member that counts a channel's messages and the
// ones that did not come from the expected neighbour.
type countingMember struct {
	via     peer.ID
	count   atomic.Int64
	bypass  atomic.Int64
	prefix  byte
	matched atomic.Int64 // messages whose body has prefix
}

func (m *countingMember) DeliverMessage(msg *p2p.Message) {
	m.count.Add(1)
	if m.via != "" && msg.ReceivedFrom != m.via {
		m.bypass.Add(1)
	}
	if m.prefix != 0 && hasSeqBody(msg.Data, m.prefix) {
		m.matched.Add(1)
	}
}

// hasSeqBody reports whether data contains a makeBody body with prefix.
func hasSeqBody(data []byte, prefix byte) bool {
	for i := 0; i+10 <= len(data); i++ {
		if data[i] == prefix {
			if _, ok := bodySeq(data[i:i+10], prefix); ok {
				return true
			}
		}
	}
	return false
}

// line is three nodes A–B–C with A and C kept apart. B has a member in the
// benchmark channel so that it is subscribed and relays (GossipSub relays
// a topic only through subscribed nodes), and C has one that tells whether
// messages arrive through B.
type line struct {
	a, b, c   *benchNode
	apart     *atomic.Int64
	bMember   *countingMember
	cMember   *countingMember
	channel   string
	closeFunc func()
}

func startLine(ctx context.Context, channel string, cfg gateway.Config) (*line, error) {
	var nodes []*benchNode
	cleanup := func() {
		for _, n := range nodes {
			n.close()
		}
	}
	for range 3 {
		n, err := startNode(cfg)
		if err != nil {
			cleanup()
			return nil, err
		}
		nodes = append(nodes, n)
	}
	l := &line{a: nodes[0], b: nodes[1], c: nodes[2], channel: channel, closeFunc: cleanup}
	l.apart = keepApart(l.a, l.c)
	if err := errors.Join(connect(ctx, l.a, l.b), connect(ctx, l.b, l.c)); err != nil {
		cleanup()
		return nil, err
	}
	l.bMember = &countingMember{prefix: 'w'}
	l.cMember = &countingMember{via: l.b.node.ID(), prefix: 'w'}
	if err := errors.Join(l.b.node.Join(channel, l.bMember), l.c.node.Join(channel, l.cMember)); err != nil {
		cleanup()
		return nil, err
	}
	return l, nil
}

func (l *line) close() { l.closeFunc() }

// verified returns the verification counters of A, B and C.
func (l *line) verified() [3]int64 {
	return [3]int64{l.a.verified.Load(), l.b.verified.Load(), l.c.verified.Load()}
}

// warmUp sends probe messages from sender (a client on A that joined the
// channel) until C's member has received probes through B for a full
// GossipSub heartbeat, so that B's mesh includes C and A's includes B.
func (l *line) warmUp(ctx context.Context, sender *protoClient, username string) error {
	deadline := time.Now().Add(30 * time.Second)
	var firstVia time.Time
	for i := 0; ; i++ {
		if time.Now().After(deadline) {
			return fmt.Errorf("line warm-up: no probe reached C through B within 30s (B got %d, C %d, bypass %d)",
				l.bMember.matched.Load(), l.cMember.matched.Load(), l.cMember.bypass.Load())
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		m, err := signedMessage(sender.key, l.channel, username, makeBody('w', i))
		if err != nil {
			return err
		}
		if err := sender.write(appendSend(nil, &m)); err != nil {
			return err
		}
		if _, err := sender.expect("ok", 10*time.Second); err != nil {
			return fmt.Errorf("line warm-up: %w", err)
		}
		if l.cMember.matched.Load() > 0 && firstVia.IsZero() {
			firstVia = time.Now()
		}
		if !firstVia.IsZero() && time.Since(firstVia) > 1500*time.Millisecond && l.bMember.matched.Load() > 0 {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
}
