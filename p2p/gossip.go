package p2p

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Queue sizes. A client may send a burst of messages (the gateway's rate
// limit allows bursts), and every one of them must leave the node: the
// per-peer outbound queue (GossipSub's default is 32 RPCs) and the
// validation queue (default 32) are sized for many sessions bursting at
// once. Any overflow is counted and logged by dropTracer, never silent.
const (
	peerOutboundQueueSize = 4096
	validateQueueSize     = 8192
)

func newPubSub(ctx context.Context, n *Node) (*pubsub.PubSub, error) {
	opts := append(meshOptions(n.cfg.MaxMessageSize),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(func(s map[peer.ID]float64) {
			n.scores.Store(&s)
		}), time.Second),
		pubsub.WithRawTracer(n.drops),
		pubsub.WithAppSpecificRpcInspector(n.guard.inspect),
		pubsub.WithLogger(slog.New(routineHandler{newRateLimitedHandler(n.log.With("component", "gossipsub").Handler())})),
	)
	if n.disc != nil {
		opts = append(opts, pubsub.WithDiscovery(n.disc))
	}
	return pubsub.NewGossipSub(ctx, gatedHost{Host: n.host, ctx: ctx, guard: n.guard, onStream: n.drops.meshPeer}, opts...)
}

// gatedHost is the host as GossipSub sees it: the streams its handlers
// read are gated by the guard's back-pressure (peerGuard.readGate).
type gatedHost struct {
	host.Host
	ctx   context.Context
	guard *peerGuard
	// onStream is told of each inbound GossipSub stream: a peer that
	// opens its stream again after losing the old one may have sent
	// this node messages, repair answers among them, that went down with
	// the old one.
	onStream func(peer.ID)
}

func (h gatedHost) gate(handler network.StreamHandler) network.StreamHandler {
	return func(s network.Stream) {
		h.onStream(s.Conn().RemotePeer())
		handler(&gatedStream{Stream: s, ctx: h.ctx, guard: h.guard, peer: s.Conn().RemotePeer()})
	}
}

func (h gatedHost) SetStreamHandler(pid protocol.ID, handler network.StreamHandler) {
	h.Host.SetStreamHandler(pid, h.gate(handler))
}

func (h gatedHost) SetStreamHandlerMatch(pid protocol.ID, match func(protocol.ID) bool, handler network.StreamHandler) {
	h.Host.SetStreamHandlerMatch(pid, match, h.gate(handler))
}

// gatedStream is a peer's inbound GossipSub stream; each read first waits
// while too many of the peer's messages wait for validation.
type gatedStream struct {
	network.Stream
	ctx   context.Context
	guard *peerGuard
	peer  peer.ID
}

func (s *gatedStream) Read(p []byte) (int, error) {
	s.guard.readGate(s.ctx, s.peer)
	return s.Stream.Read(p)
}

// meshOptions is darkchat's GossipSub configuration without what ties it
// to one node (discovery, tracing, logging). maxMessageSize is
// Config.MaxMessageSize.
func meshOptions(maxMessageSize int) []pubsub.Option {
	params, thresholds := peerScoreParams()
	return []pubsub.Option{
		// Users sign their messages; a second libp2p signature per message
		// would double the verification cost. No author, no seqno, no
		// signature, and the ID is a hash of the content.
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(messageID),
		// A chat message published here goes straight to every subscribed
		// peer with a good score, not only to the mesh: channels are small,
		// and a message sent right after joining must not wait for the
		// next heartbeat to build a mesh.
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerScore(params, thresholds),
		pubsub.WithPeerOutboundQueueSize(peerOutboundQueueSize),
		pubsub.WithValidateQueueSize(validateQueueSize),
		pubsub.WithSeenMessagesTTL(seenMessagesTTL),
		// One validation worker takes messages from the queue in the
		// order they arrived, and gives each its ticket in that order
		// (order.go); the validators themselves run asynchronously, one
		// goroutine per message, as many at once as the guard lets into
		// validation, and verify their signatures in batches on every
		// core (identity.Verifier). The tickets keep the delivery order.
		pubsub.WithValidateWorkers(1),
		pubsub.WithValidateThrottle(validateQueueSize),
		pubsub.WithSubscriptionFilter(pubsub.WrapLimitSubscriptionFilter(
			pubsub.NewRegexpSubscriptionFilter(topicFilter), maxTopicsPerPeer)),
		// An RPC frame may batch several messages; keep room for at least
		// a few of the largest.
		pubsub.WithMaxMessageSize(max(1<<20, 4*maxMessageSize)),
	}
}

// seenMessagesTTL is how long GossipSub remembers a message ID as seen (and
// its delivery record for the peer score); go-libp2p-pubsub's default is 2
// minutes. Every message a peer sends costs a few hundred bytes for that
// long, valid or not, so under a flood the seen cache is what grows the
// node. Duplicates of a message come within GossipSub's gossip window (a
// few seconds); later copies of a delivered message are still caught by
// the node's own de-duplication set (10 minutes, DedupTTL), so 30 s loses
// nothing.
const seenMessagesTTL = 30 * time.Second

// messageID is the SHA-256 of the topic and the message bytes. The
// application's wire encodings are canonical (one encoding per message), so
// equal content means the same message.
func messageID(m *pb.Message) string {
	h := sha256.New()
	h.Write([]byte(m.GetTopic()))
	h.Write([]byte{0})
	h.Write(m.Data)
	return string(h.Sum(nil))
}

// topicValidator wraps the application's Validator with the checks every
// channel message gets (checkMessage) and, given the topic's order, holds
// each message to its ticket's turn (order.go): a serial one before it is
// checked, an accepted one before its verdict goes back to GossipSub.
func (n *Node) topicValidator(channel string, validate Validator, order *topicOrder) pubsub.ValidatorEx {
	check := n.checkMessage(channel, validate)
	return func(_ context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		var t *ticket
		if order != nil {
			t = order.ticketOf(m)
		}
		if t == nil {
			return check(from, m)
		}
		order.beforeValidate(t)
		res := check(from, m)
		if res == pubsub.ValidationAccept {
			order.accept(t, time.Now())
		} // else GossipSub traces the drop (RejectMessage), which ends t
		return res
	}
}

// checkMessage is a topic's validation of one message: the guard's ban,
// size, de-duplication beyond GossipSub's seen-cache, the application's
// Validator, and a clean verdict for the peer score.
func (n *Node) checkMessage(channel string, validate Validator) func(from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
	return func(from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		// A peer banned while its messages waited in the queue: drop the
		// rest unverified, so an attacker costs the node maxStrikes
		// verifications whatever it queued before the ban, and honest
		// messages behind them do not wait for the rest.
		if n.guard.isBanned(from) {
			return pubsub.ValidationIgnore
		}
		if len(m.Data) == 0 || len(m.Data) > n.cfg.MaxMessageSize {
			n.logReject(channel, from, "size", len(m.Data))
			return pubsub.ValidationReject
		}
		// A local publication carries a slot for the verdict, so the
		// publisher learns why its message was refused.
		slot, _ := m.ValidatorData.(*publishSlot)
		if slot != nil {
			slot.validated = true
		}
		if n.dedup.Seen(m.ID) {
			if slot != nil {
				slot.err = fmt.Errorf("%w: message already seen", ErrDuplicate)
			}
			return pubsub.ValidationIgnore
		}
		verdict := func(err error) pubsub.ValidationResult {
			if slot != nil {
				slot.err = err
			}
			if errors.Is(err, ErrIgnore) {
				return pubsub.ValidationIgnore
			}
			n.logReject(channel, from, err.Error(), len(m.Data))
			return pubsub.ValidationReject
		}
		var payload any
		if validate != nil {
			var err error
			src := from
			if src == n.ID() {
				src = "" // a local publication
			}
			if payload, err = validate(src, channel, m.Data); err != nil {
				return verdict(err)
			}
		}
		var key dedupKey
		k, keyed := payload.(Keyed)
		if keyed {
			key = payloadKey(k.DedupKey())
		}
		if !n.dedup.AddKeyed(m.ID, key, keyed) {
			// A re-signed copy of a message already delivered: the author
			// misbehaved, not the peer that forwarded it (it may have seen
			// this copy first), so it is ignored, not held against the peer.
			return verdict(fmt.Errorf("%w: message id already seen (%w)", ErrDuplicate, ErrIgnore))
		}
		m.ValidatorData = payload
		return pubsub.ValidationAccept
	}
}

// Keyed is implemented by validator payloads that carry their own identity
// (for example author and message ID). Such messages are de-duplicated by
// that key as well as by their bytes, so a re-signed copy of one message
// (Ed25519 admits several valid signatures for the same content) is still
// delivered only once.
type Keyed interface {
	DedupKey() string
}

// publishSlot travels as ValidatorData with a local publication and
// receives the validator's error. validated tells the publisher that the
// validator ran at all: GossipSub skips it for a message it has already
// delivered.
type publishSlot struct {
	err       error
	validated bool
}

func (n *Node) logReject(channel string, from peer.ID, reason string, size int) {
	n.log.Debug("rejected channel message", "channel", channel, "from", from, "reason", reason, "bytes", size)
}

// peerScoreParams returns GossipSub's global score parameters. The score is
// what makes a peer that forwards invalid messages lose its mesh slots and
// then be ignored: each invalid message costs 100 (squared count, decaying
// over an hour), so a handful of forgeries puts a peer below the graylist
// threshold. Colocation and behaviour penalties follow the values
// go-libp2p-pubsub's documentation and Ethereum's deployment use.
func peerScoreParams() (*pubsub.PeerScoreParams, *pubsub.PeerScoreThresholds) {
	_, loopback, _ := net.ParseCIDR("127.0.0.0/8")
	params := &pubsub.PeerScoreParams{
		SeenMsgTTL:    seenMessagesTTL,
		Topics:        map[string]*pubsub.TopicScoreParams{},
		TopicScoreCap: 100,
		AppSpecificScore: func(peer.ID) float64 {
			return 0
		},
		AppSpecificWeight: 1,
		// Many peers behind one IP is a Sybil signal, except on loopback
		// where every local test node shares an address.
		IPColocationFactorWeight:    -10,
		IPColocationFactorThreshold: 8,
		IPColocationFactorWhitelist: []*net.IPNet{loopback},
		BehaviourPenaltyWeight:      -10,
		BehaviourPenaltyThreshold:   6,
		BehaviourPenaltyDecay:       pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:               time.Second,
		DecayToZero:                 0.01,
		RetainScore:                 10 * time.Minute,
	}
	thresholds := &pubsub.PeerScoreThresholds{
		GossipThreshold:             -500,
		PublishThreshold:            -1000,
		GraylistThreshold:           -2500,
		AcceptPXThreshold:           10,
		OpportunisticGraftThreshold: 5,
	}
	return params, thresholds
}

// channelScoreParams scores a peer's behaviour in one channel. Chat traffic
// is sparse and bursty, so mesh-delivery deficit penalties (P3) would punish
// honest peers in quiet channels and stay off; time in mesh (P1) and first
// deliveries (P2) reward useful peers, and invalid messages (P4) punish.
func channelScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight:                    1,
		TimeInMeshWeight:               0.01,
		TimeInMeshQuantum:              time.Second,
		TimeInMeshCap:                  100,
		FirstMessageDeliveriesWeight:   1,
		FirstMessageDeliveriesDecay:    pubsub.ScoreParameterDecay(10 * time.Minute),
		FirstMessageDeliveriesCap:      50,
		InvalidMessageDeliveriesWeight: -100,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
	}
}

// inboxScoreParams scores behaviour on DM inbox shards. A node cannot open
// DMs, so its validator checks only the envelope's format; invalid ones are
// still penalised like invalid channel messages.
func inboxScoreParams() *pubsub.TopicScoreParams {
	p := channelScoreParams()
	p.TopicWeight = 0.5
	return p
}

// routerPeers tracks GossipSub's outbound side per peer: whether it has a
// queue yet, and how deep that queue is.
//
// GossipSub records a new peer's subscriptions as soon as they arrive,
// which can be before it has set up the peer's queue; a message published
// in between is not sent to that peer ("no send queue"). Publishers that
// need a peer to get a message (DMs) wait until one of the topic's peers
// has a queue.
//
// GossipSub drops what does not fit in a peer's queue. Publishers wait
// while a topic peer's queue is nearly full (flow control), so a burst is
// slowed down instead of lost; a peer whose queue has not moved for
// stuckAfter is not waited for, so one peer that stops reading cannot stall
// a channel (it loses messages, which are counted and logged).
type routerPeers struct {
	mu    sync.Mutex
	peers map[peer.ID]*peerQueue
	// full counts the peers whose queue is at or above queueHighWater, so
	// that publishers need not list a topic's peers (a round trip through
	// GossipSub's event loop) while no queue is nearly full. Written under
	// mu.
	full    atomic.Int32
	changed chan struct{} // closed and replaced when a peer gets a queue
	drained chan struct{} // closed and replaced when a full queue drains
	// lost records when GossipSub closed its stream to a peer, until it
	// opens a new one or the node forgets the peer (see
	// Node.reviveStreamless).
	lost map[peer.ID]time.Time
}

type peerQueue struct {
	open     bool      // GossipSub has an outbound stream to the peer
	depth    int       // RPCs queued and not yet written
	progress time.Time // last write to the peer
}

// Flow-control thresholds on a peer's queue depth (in RPCs).
const (
	queueHighWater = peerOutboundQueueSize * 3 / 4
	queueLowWater  = peerOutboundQueueSize / 2
	stuckAfter     = 2 * time.Second
)

func newRouterPeers() *routerPeers {
	return &routerPeers{peers: make(map[peer.ID]*peerQueue), changed: make(chan struct{}), drained: make(chan struct{}),
		lost: make(map[peer.ID]time.Time)}
}

func (r *routerPeers) queueLocked(id peer.ID) *peerQueue {
	q := r.peers[id]
	if q == nil {
		q = &peerQueue{progress: time.Now()}
		r.peers[id] = q
	}
	return q
}

func (r *routerPeers) add(id peer.ID) {
	r.mu.Lock()
	delete(r.lost, id)
	r.queueLocked(id).open = true
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// isOpen reports whether GossipSub has an outbound stream to id: id is a
// darkchat mesh peer this node exchanges traffic with.
func (r *routerPeers) isOpen(id peer.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.peers[id]
	return q != nil && q.open
}

func (r *routerPeers) remove(id peer.ID) {
	r.mu.Lock()
	if q := r.peers[id]; q != nil && q.depth >= queueHighWater {
		r.full.Add(-1)
		r.signalDrainedLocked()
	}
	delete(r.peers, id)
	r.lost[id] = time.Now()
	r.mu.Unlock()
}

// known reports whether id is a GossipSub peer of this node: one with a
// queue, or whose stream closed and was not yet forgotten.
func (r *routerPeers) known(id peer.ID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, lost := r.lost[id]
	return r.peers[id] != nil || lost
}

// streamless returns the peers whose GossipSub stream closed more than
// grace ago and was not replaced, and forgets those for which connected
// is false (they left; nothing to revive).
func (r *routerPeers) streamless(grace time.Duration, connected func(peer.ID) bool) []peer.ID {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []peer.ID
	now := time.Now()
	for p, at := range r.lost {
		switch {
		case !connected(p):
			delete(r.lost, p)
		case now.Sub(at) > grace:
			out = append(out, p)
			delete(r.lost, p)
		}
	}
	return out
}

// queued and written follow one RPC through a peer's queue.
func (r *routerPeers) queued(id peer.ID) {
	r.mu.Lock()
	q := r.queueLocked(id)
	q.depth++
	if q.depth == queueHighWater {
		r.full.Add(1)
	}
	r.mu.Unlock()
}

func (r *routerPeers) written(id peer.ID) {
	r.mu.Lock()
	if q := r.peers[id]; q != nil {
		if q.depth > 0 {
			if q.depth == queueHighWater {
				r.full.Add(-1)
			}
			q.depth--
		}
		q.progress = time.Now()
		if q.depth == queueLowWater {
			r.signalDrainedLocked()
		}
	}
	r.mu.Unlock()
}

func (r *routerPeers) signalDrainedLocked() {
	close(r.drained)
	r.drained = make(chan struct{})
}

// anyOf reports whether one of ps has a queue, and returns a channel closed
// at the next addition.
func (r *routerPeers) anyOf(ps []peer.ID) (bool, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range ps {
		if q := r.peers[p]; q != nil && q.open {
			return true, nil
		}
	}
	return false, r.changed
}

// routable returns the peers of ps whose outbound stream is open.
func (r *routerPeers) routable(ps []peer.ID) []peer.ID {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := ps[:0]
	for _, p := range ps {
		if q := r.peers[p]; q != nil && q.open {
			out = append(out, p)
		}
	}
	return out
}

// anyFull reports whether some peer's queue is at or above the high-water
// mark; only then can waitForRoom block.
func (r *routerPeers) anyFull() bool { return r.full.Load() > 0 }

// waitForRoom blocks while one of ps has a nearly full queue that is still
// moving, within ctx.
func (r *routerPeers) waitForRoom(ctx context.Context, ps []peer.ID) error {
	for {
		r.mu.Lock()
		full := false
		now := time.Now()
		for _, p := range ps {
			if q := r.peers[p]; q != nil && q.depth >= queueHighWater && now.Sub(q.progress) < stuckAfter {
				full = true
				break
			}
		}
		drained := r.drained
		r.mu.Unlock()
		if !full {
			return nil
		}
		t := time.NewTimer(stuckAfter)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-drained:
		case <-t.C: // re-check: the peer may count as stuck now
		}
		t.Stop()
	}
}

// dropTracer counts messages lost inside GossipSub's queues, so no loss is
// silent, and logs them as one summary line per interval (an attacker can
// cause them by the million). It also tells the guard when a peer's
// message leaves validation. Its methods run synchronously in GossipSub's
// event loop and validation worker and must stay cheap. With metrics, it
// also counts GossipSub's traffic for Prometheus (metrics.go).
type dropTracer struct {
	metrics *gossipMetrics // nil: no Config.Registerer
	routers *routerPeers   // told when GossipSub opens or loses a peer's stream
	guard   *peerGuard
	orders  *orders // the topics' validation order (order.go)
	// onMeshPeer, if set, is told of each peer GossipSub opens a stream
	// to (Node.OnMeshPeer).
	onMeshPeer atomic.Pointer[func(peer.ID)]
	// streamLost, if set, is told of each peer whose outbound stream
	// GossipSub lost (Node.resyncIfConnected).
	streamLost func(peer.ID)
	log        *slog.Logger
	dropped    atomic.Uint64
	notSent    atomic.Uint64

	queueFull, undeliverable atomic.Uint64 // parts of dropped, by where
	reported                 struct{ queueFull, undeliverable, notSent, stalls uint64 }
}

// summarize logs the losses since its last call, if any. It is called
// from one goroutine (the node's event loop).
func (t *dropTracer) summarize() {
	q, u, ns := t.queueFull.Load(), t.undeliverable.Load(), t.notSent.Load()
	r := &t.reported
	if st := t.orders.stalls.Load(); st != r.stalls {
		// Not a loss: the messages behind went on, in order otherwise.
		t.log.Info("validation order: stopped waiting for accepted messages GossipSub did not deliver since the last summary",
			"tickets", st-r.stalls)
		r.stalls = st
	}
	if q == r.queueFull && u == r.undeliverable && ns == r.notSent {
		return
	}
	t.log.Warn("messages lost in GossipSub queues since the last summary",
		"validation_queue_full", q-r.queueFull,
		"subscription_queue_full", u-r.undeliverable,
		"not_queued_to_peers", ns-r.notSent)
	r.queueFull, r.undeliverable, r.notSent = q, u, ns
}

// DropRPC is called when an RPC cannot be queued for a peer: its queue is
// full, or GossipSub is restarting its stream to that peer (this happens
// when one of two duplicate connections closes). The peer can still get the
// message from its other mesh peers or through gossip, so this is counted
// apart from messages the node itself lost.
func (t *dropTracer) DropRPC(rpc *pubsub.RPC, p peer.ID) {
	if k := len(rpc.GetPublish()); k > 0 {
		t.notSent.Add(uint64(k))
		if t.metrics != nil {
			t.metrics.dropped[dropNotQueuedToPeer].Add(float64(k))
		}
	}
}

func (t *dropTracer) UndeliverableMessage(m *pubsub.Message) {
	t.dropped.Add(1)
	t.undeliverable.Add(1)
	if t.metrics != nil {
		t.metrics.dropped[dropSubscriptionQueueFull].Inc()
	}
}

func (t *dropTracer) RejectMessage(m *pubsub.Message, reason string) {
	t.orders.finish(m)
	if t.metrics != nil {
		t.metrics.reject(m, reason)
	}
	switch reason {
	case pubsub.RejectValidationQueueFull, pubsub.RejectValidationThrottled:
		t.dropped.Add(1)
		t.queueFull.Add(1)
		t.guard.left(m.ReceivedFrom)
	case pubsub.RejectValidationFailed, pubsub.RejectInvalidSignature:
		t.guard.validated(m.ReceivedFrom, false)
	case pubsub.RejectValidationIgnored:
		t.guard.ignored(m.ReceivedFrom)
	default: // ignored (stale), blacklisted, self-origin, signature policy
		t.guard.left(m.ReceivedFrom)
	}
}

func (t *dropTracer) DeliverMessage(m *pubsub.Message) {
	for _, c := range t.orders.delivered(m) {
		// GossipSub drops this copy without a trace of its own: it
		// leaves validation here.
		t.guard.left(c.ReceivedFrom)
	}
	if t.metrics != nil {
		t.metrics.delivered[kindOf(m.GetTopic())].Inc()
	}
	if !m.Local {
		t.guard.validated(m.ReceivedFrom, true)
	}
}

func (t *dropTracer) DuplicateMessage(m *pubsub.Message) {
	if t.metrics != nil {
		t.metrics.receive(m)
		t.metrics.duplicate[kindOf(m.GetTopic())].Inc()
	}
	t.guard.left(m.ReceivedFrom)
}

func (t *dropTracer) Join(string)  {}
func (t *dropTracer) Leave(string) {}

func (t *dropTracer) Graft(p peer.ID, topic string) {
	if t.metrics != nil {
		t.metrics.graftPeer(p, topic)
	}
}

func (t *dropTracer) Prune(p peer.ID, topic string) {
	if t.metrics != nil {
		t.metrics.prunePeer(p, topic)
	}
}

// ValidateMessage sees each message the first time it arrives, before
// validation; local publications too, which are not counted as received.
func (t *dropTracer) ValidateMessage(m *pubsub.Message) {
	t.orders.issue(m)
	if t.metrics != nil && !m.Local {
		t.metrics.receive(m)
	}
}

func (t *dropTracer) ThrottlePeer(peer.ID) {
	if t.metrics != nil {
		t.metrics.throttled.Inc()
	}
}

func (t *dropTracer) RecvRPC(rpc *pubsub.RPC) {
	if t.metrics != nil {
		countRPC(&t.metrics.rpcRecv, rpc)
	}
}

func (t *dropTracer) SendRPC(rpc *pubsub.RPC, p peer.ID) {
	if t.metrics != nil {
		countRPC(&t.metrics.rpcSent, rpc)
	}
	t.routers.queued(p)
}
func (t *dropTracer) SendRPCCompleted(_ *pubsub.RPC, p peer.ID, _ time.Duration) {
	t.routers.written(p)
}

// The outbound stream opens after GossipSub has created the peer's queue.
func (t *dropTracer) OnNewOutboundStream(p peer.ID, _ protocol.ID) {
	t.routers.add(p)
	t.meshPeer(p)
}

// meshPeer tells Node.OnMeshPeer's function of p, if one is set.
func (t *dropTracer) meshPeer(p peer.ID) {
	if f := t.onMeshPeer.Load(); f != nil {
		(*f)(p)
	}
}
func (t *dropTracer) OnClosedOutboundStream(p peer.ID) {
	if t.metrics != nil {
		t.metrics.peerGone(p)
	}
	t.routers.remove(p)
	if t.streamLost != nil {
		t.streamLost(p)
	}
}
