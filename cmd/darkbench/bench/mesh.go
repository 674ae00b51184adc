package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"darkchat/identity"
	"darkchat/p2p"
	"darkchat/p2p/p2ptest"
)

const (
	meshNodes = 100
	// meshExtraLinks is how many random peers each node dials besides its
	// ring neighbour: about 8 connections per node, the same graph (seeded)
	// for both configurations.
	meshExtraLinks   = 3
	meshMinDelivered = 99.9
	meshMaxP99       = 100 * time.Millisecond
)

// meshStepResult is one publish rate tried.
type meshStepResult struct {
	rate      int
	delivered float64 // percent of (messages × receiving nodes)
	p50, p99  time.Duration
	drops     int64 // messages lost in queues (tracer)
}

func (s meshStepResult) ok() bool { return s.delivered >= meshMinDelivered && s.p99 < meshMaxP99 }

func (s meshStepResult) String() string {
	return fmt.Sprintf("%d msg/s: %.3f%% delivered, p50 %.1f ms, p99 %.1f ms, %d dropped in queues", s.rate, s.delivered, ms(s.p50), ms(s.p99), s.drops)
}

func runMeshScale(ctx context.Context, e *Env) ([]Result, error) {
	type ramp struct {
		best     meshStepResult // highest rate meeting both criteria
		capacity meshStepResult // highest rate delivering meshMinDelivered
		steps    []meshStepResult
	}
	run := func(darkchat bool) (ramp, error) {
		name := map[bool]string{true: "darkchat", false: "stock"}[darkchat]
		mesh, err := startMesh(ctx, darkchat)
		if err != nil {
			return ramp{}, fmt.Errorf("%s mesh: %w", name, err)
		}
		defer mesh.close()
		e.progress("%s: %d mocknet nodes up, %d connections", name, meshNodes, mesh.conns)
		var r ramp
		err = mesh.ramp(ctx, e, name, func(s meshStepResult) { r.steps = append(r.steps, s) })
		for _, s := range r.steps {
			if s.ok() && s.rate > r.best.rate {
				r.best = s
			}
			if s.delivered >= meshMinDelivered && s.rate > r.capacity.rate {
				r.capacity = s
			}
		}
		return r, err
	}
	var dark ramp
	err := e.profile(func() (err error) {
		dark, err = run(true)
		return err
	})
	if err != nil {
		return nil, err
	}
	stock, err := run(false)
	if err != nil {
		return nil, err
	}
	res := newResult("mesh-scale", "max_rate_msgs_per_s", float64(dark.best.rate), "msg/s",
		"stock go-libp2p-pubsub GossipSub (defaults, StrictSign) + app signature validator", float64(stock.best.rate), ptr(ratioAtLeast(3)))
	// Delivery is reported at the rate found; no rate, no figure.
	if dark.best.rate > 0 {
		res.DeliveredPct = pct(dark.best.delivered)
	}
	if stock.best.rate > 0 {
		res.BaselineDeliveredPct = pct(stock.best.delivered)
	}
	at := func(s meshStepResult) string {
		if s.rate == 0 {
			return "no rate tried met both criteria"
		}
		return fmt.Sprintf("p99 %.1f ms at %d msg/s", ms(s.p99), s.rate)
	}
	res.Note = fmt.Sprintf("%d nodes on mocknet, ~%d connections each, every node subscribed; highest rate with >= %.1f%% delivered and p99 < %v: darkchat %s, stock %s; darkchat: the production p2p node (p2p.NewWithHost through p2ptest) on mocknet hosts, with the gateway's validators",
		meshNodes, 2+2*meshExtraLinks, meshMinDelivered, meshMaxP99, at(dark.best), at(stock.best))
	capRes := newResult("mesh-scale", "max_rate_delivered_msgs_per_s", float64(dark.capacity.rate), "msg/s",
		"stock go-libp2p-pubsub GossipSub (defaults, StrictSign) + app signature validator", float64(stock.capacity.rate), nil)
	capRes.DeliveredPct, capRes.BaselineDeliveredPct = pct(dark.capacity.delivered), pct(stock.capacity.delivered)
	capRes.Note = fmt.Sprintf("highest rate tried with >= %.1f%% delivered, whatever the latency: darkchat p99 %.0f ms, stock p99 %.0f ms",
		meshMinDelivered, ms(dark.capacity.p99), ms(stock.capacity.p99))
	return []Result{res, capRes}, nil
}

// meshNet is meshNodes nodes on a mocknet, all members of one channel,
// each recording its deliveries. The darkchat mesh is p2ptest's: real
// darkchat nodes (p2p.NewWithHost, the gateway's validators) on mocknet
// hosts. The stock mesh is go-libp2p-pubsub's GossipSub with its defaults
// and an application signature check, on the same graph.
type meshNet struct {
	key   identity.PrivateKey
	conns int // per node

	publish func(ctx context.Context, node int, wire []byte)
	drops   func() int64 // messages lost in queues so far
	stop    func()

	probes []atomic.Int64 // warm-up probes received, per node
	step   atomic.Pointer[meshStep]
}

// meshStep is the bookkeeping of one rate step.
type meshStep struct {
	sentAt []atomic.Int64 // unix nanos, per sequence number
	total  atomic.Int64
	hist   histogram
}

// meshEdges is the benchmark's graph: a ring keeps it connected, and
// meshExtraLinks seeded random links per node make it a mesh.
func meshEdges() [][2]int {
	rng := mrand.New(mrand.NewPCG(1, 2))
	linked := map[[2]int]bool{}
	var edges [][2]int
	link := func(a, b int) {
		e := [2]int{min(a, b), max(a, b)}
		if a == b || linked[e] {
			return
		}
		linked[e] = true
		edges = append(edges, e)
	}
	for i := range meshNodes {
		link(i, (i+1)%meshNodes)
		for range meshExtraLinks {
			link(i, rng.IntN(meshNodes))
		}
	}
	return edges
}

func startMesh(ctx context.Context, darkchat bool) (_ *meshNet, err error) {
	m := &meshNet{probes: make([]atomic.Int64, meshNodes), stop: func() {}}
	if m.key, err = identity.GenerateKey(); err != nil {
		return nil, err
	}
	edges := meshEdges()
	m.conns = 2 * len(edges) / meshNodes
	if darkchat {
		err = m.startDarkchat(ctx, edges)
	} else {
		err = m.startStock(ctx, edges)
	}
	if err != nil {
		m.close()
		return nil, err
	}
	if err := m.warmUp(ctx); err != nil {
		m.close()
		return nil, err
	}
	return m, nil
}

// meshMember records one darkchat node's deliveries. It runs on the
// topic's reader goroutine, so it only counts (see p2p.Member).
type meshMember struct {
	m    *meshNet
	node int
}

func (mm meshMember) DeliverMessage(msg *p2p.Message) {
	if !msg.Local {
		mm.m.record(mm.node, msg.Data)
	}
}

func (m *meshNet) startDarkchat(ctx context.Context, edges [][2]int) error {
	mesh, err := p2ptest.Start(ctx, p2ptest.Options{
		Nodes: meshNodes, Seed: 1, Network: p2ptest.MockNet, Edges: edges, Gateway: true,
		// No added latency: the figure is the nodes' own cost.
		Latency: func(int, int) time.Duration { return 0 },
	})
	if err != nil {
		return err
	}
	m.stop = func() { mesh.Close() }
	if err := mesh.Join(benchChannel, func(i int) p2p.Member { return meshMember{m, i} }); err != nil {
		return err
	}
	m.publish = func(ctx context.Context, i int, wire []byte) {
		mesh.Nodes[i].Publish(ctx, benchChannel, wire)
	}
	m.drops = func() int64 {
		var total int64
		for _, n := range mesh.Nodes {
			s := n.Stats()
			total += int64(s.Dropped + s.NotSent)
		}
		return total
	}
	return nil
}

func (m *meshNet) startStock(ctx context.Context, edges [][2]int) error {
	ctx, cancel := context.WithCancel(ctx)
	mn := mocknet.New()
	var wg sync.WaitGroup
	m.stop = func() {
		cancel()
		wg.Wait()
		mn.Close()
	}
	tracer := &dropCounter{}
	m.drops = tracer.total
	topicName := p2ptestChannelTopic
	topics := make([]*pubsub.Topic, meshNodes)
	hosts := make([]host.Host, meshNodes)
	for i := range meshNodes {
		k, err := p2ptest.NodeKey(1, i)
		if err != nil {
			return err
		}
		// One /64 per node, as p2ptest's mocknet: GossipSub's IP
		// colocation score groups IPv6 peers by /64.
		if hosts[i], err = mn.AddPeer(k, ma.StringCast(fmt.Sprintf("/ip6/2001:db8:0:%x::1/tcp/4242", i+1))); err != nil {
			return err
		}
		ps, err := pubsub.NewGossipSub(ctx, hosts[i], pubsub.WithRawTracer(tracer))
		if err != nil {
			return err
		}
		if err := ps.RegisterTopicValidator(topicName, appSignatureValidator); err != nil {
			return err
		}
		if topics[i], err = ps.Join(topicName); err != nil {
			return err
		}
		sub, err := topics[i].Subscribe()
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				msg, err := sub.Next(ctx)
				if err != nil {
					return
				}
				if msg.ReceivedFrom != hosts[i].ID() {
					m.record(i, msg.Data)
				}
			}
		}()
	}
	for _, e := range edges {
		if _, err := mn.LinkPeers(hosts[e[0]].ID(), hosts[e[1]].ID()); err != nil {
			return err
		}
		if _, err := mn.ConnectPeers(hosts[e[0]].ID(), hosts[e[1]].ID()); err != nil {
			return err
		}
	}
	m.publish = func(ctx context.Context, i int, wire []byte) { topics[i].Publish(ctx, wire) }
	return nil
}

// p2ptestChannelTopic is the stock mesh's topic name; any name does, the
// stock router has no topic filter.
const p2ptestChannelTopic = "darkchat/v2/channel/" + benchChannel

func (m *meshNet) close() { m.stop() }

// record counts one delivery to node i of a message from another node.
func (m *meshNet) record(i int, data []byte) {
	prefix, seq, ok := wireBodySeq(data)
	if !ok {
		return
	}
	if prefix == 'w' {
		m.probes[i].Add(1)
		return
	}
	st := m.step.Load()
	if st == nil || seq >= len(st.sentAt) {
		return // not this step's
	}
	if t := st.sentAt[seq].Load(); t > 0 {
		st.hist.add(time.Since(time.Unix(0, t)))
	}
	st.total.Add(1)
}

// wireBodySeq reads makeBody's prefix and sequence number from a channel
// message's wire form (version, author, then length-prefixed channel,
// username and body).
func wireBodySeq(data []byte) (prefix byte, seq int, ok bool) {
	off := 1 + identity.PublicKeySize
	for range 2 { // channel, username
		if len(data) < off+4 {
			return 0, 0, false
		}
		off += 4 + int(binary.BigEndian.Uint32(data[off:]))
	}
	if len(data) < off+4+10 {
		return 0, 0, false
	}
	body := data[off+4:]
	seq, ok = bodySeq(body, body[0])
	return body[0], seq, ok
}

// warmUp publishes probes from rotating nodes until every node has
// received some and then for two GossipSub heartbeats more, so meshes
// have formed.
func (m *meshNet) warmUp(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	var allSince time.Time
	for i := 0; ; i++ {
		if time.Now().After(deadline) {
			return errors.New("warm-up: probes did not reach every node within 30s")
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		all := true
		for j := range m.probes {
			if m.probes[j].Load() == 0 {
				all = false
				break
			}
		}
		if all && allSince.IsZero() {
			allSince = time.Now()
		}
		if !allSince.IsZero() && time.Since(allSince) > 2*time.Second {
			return nil
		}
		cm, err := signedMessage(m.key, benchChannel, "s0", makeBody('w', i))
		if err != nil {
			return err
		}
		wire, _ := cm.MarshalBinary()
		m.publish(ctx, i%meshNodes, wire)
		time.Sleep(20 * time.Millisecond)
	}
}

// ramp tries rising publish rates while the mesh still delivers
// meshMinDelivered (whatever the latency: the highest such rate is the
// mesh's capacity), then one rate between the best passing both criteria
// and the next one tried.
func (m *meshNet) ramp(ctx context.Context, e *Env, name string, record func(meshStepResult)) error {
	stepTime := pick(e, time.Second, 3*time.Second)
	rate, factor := pick(e, 20.0, 10.0), pick(e, 4.0, 1.4)
	maxSteps := pick(e, 3, 14)
	var pass, next int
	for range maxSteps {
		s, err := m.runStep(ctx, int(rate), stepTime)
		if err != nil {
			return err
		}
		record(s)
		e.progress("%s: %v", name, s)
		if s.ok() {
			pass, next = s.rate, 0
		} else if next == 0 {
			next = s.rate
		}
		if s.delivered < meshMinDelivered || s.p99 > 2*time.Second {
			break
		}
		rate *= factor
	}
	if !e.Quick && pass > 0 && next > 0 {
		if mid := (pass + next) / 2; mid > pass && mid < next {
			s, err := m.runStep(ctx, mid, stepTime)
			if err != nil {
				return err
			}
			record(s)
			e.progress("%s: %v", name, s)
		}
	}
	return nil
}

// runStep publishes rate messages per second for d, from nodes in turn,
// and waits up to 3 s for the deliveries to finish.
func (m *meshNet) runStep(ctx context.Context, rate int, d time.Duration) (meshStepResult, error) {
	// At least 30 messages, so that a p99 means something at low rates.
	n := max(30, int(float64(rate)*d.Seconds()))
	wires := make([][]byte, n)
	for i := range wires {
		cm, err := signedMessage(m.key, benchChannel, "s0", makeBody('m', i))
		if err != nil {
			return meshStepResult{}, err
		}
		wires[i], _ = cm.MarshalBinary()
	}
	st := &meshStep{sentAt: make([]atomic.Int64, n)}
	m.step.Store(st)
	defer m.step.Store(nil)
	drops0 := m.drops()

	// Publishers: a few goroutines sharing the pace, so one slow local
	// validation does not delay the next message.
	const publishers = 4
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			idx := make([]int, 0, n/publishers+1)
			for i := p; i < n; i += publishers {
				idx = append(idx, i)
			}
			pace(len(idx), max(1, rate/publishers), stop, func(k int) error {
				i := idx[k]
				st.sentAt[i].Store(time.Now().UnixNano())
				m.publish(ctx, i%meshNodes, wires[i])
				return nil
			})
		}()
	}
	wg.Wait()
	close(stop)
	want := int64(n) * (meshNodes - 1)
	deadline := time.Now().Add(3 * time.Second)
	for st.total.Load() < want && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	return meshStepResult{
		rate:      rate,
		delivered: 100 * float64(st.total.Load()) / float64(want),
		p50:       st.hist.quantile(0.50),
		p99:       st.hist.quantile(0.99),
		drops:     m.drops() - drops0,
	}, ctx.Err()
}

// histogram counts durations in logarithmic buckets, 16 per doubling
// (about 4.4% wide), from 1 µs to about 18 minutes.
type histogram struct {
	b [640]atomic.Int64
}

func (h *histogram) add(d time.Duration) {
	us := max(float64(d)/float64(time.Microsecond), 1)
	k := int(math.Log2(us) * 16)
	h.b[min(max(k, 0), len(h.b)-1)].Add(1)
}

// quantile returns the upper edge of the bucket holding quantile q.
func (h *histogram) quantile(q float64) time.Duration {
	var total int64
	for i := range h.b {
		total += h.b[i].Load()
	}
	if total == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(total)))
	var seen int64
	for i := range h.b {
		if seen += h.b[i].Load(); seen >= rank {
			return time.Duration(math.Exp2(float64(i+1)/16) * float64(time.Microsecond))
		}
	}
	return time.Duration(math.Exp2(float64(len(h.b))/16) * float64(time.Microsecond))
}

// dropCounter is a RawTracer counting messages lost in GossipSub's queues:
// a full validation queue, a full subscription buffer, an RPC not queued
// for a peer.
type dropCounter struct {
	validation, subscription, rpc atomic.Int64
}

func (d *dropCounter) total() int64 {
	return d.validation.Load() + d.subscription.Load() + d.rpc.Load()
}

func (d *dropCounter) DropRPC(rpc *pubsub.RPC, _ peer.ID)   { d.rpc.Add(int64(len(rpc.GetPublish()))) }
func (d *dropCounter) UndeliverableMessage(*pubsub.Message) { d.subscription.Add(1) }
func (d *dropCounter) RejectMessage(_ *pubsub.Message, reason string) {
	if reason == pubsub.RejectValidationQueueFull || reason == pubsub.RejectValidationThrottled {
		d.validation.Add(1)
	}
}
func (d *dropCounter) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (d *dropCounter) OnClosedOutboundStream(peer.ID)                       {}
func (d *dropCounter) Join(string)                                          {}
func (d *dropCounter) Leave(string)                                         {}
func (d *dropCounter) Graft(peer.ID, string)                                {}
func (d *dropCounter) Prune(peer.ID, string)                                {}
func (d *dropCounter) ValidateMessage(*pubsub.Message)                      {}
func (d *dropCounter) DeliverMessage(*pubsub.Message)                       {}
func (d *dropCounter) DuplicateMessage(*pubsub.Message)                     {}
func (d *dropCounter) ThrottlePeer(peer.ID)                                 {}
func (d *dropCounter) RecvRPC(*pubsub.RPC)                                  {}
func (d *dropCounter) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (d *dropCounter) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
