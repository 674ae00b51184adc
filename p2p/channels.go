package p2p

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Topic namespaces; the subscription filter refuses every topic outside
// them. Chat channels are darkchat/v2/channel/<name>; direct messages travel
// on darkchat/v1/dm/<shard>, inbox topics sharded by a hash of the
// recipient's key so that a node subscribes only to its users' shards.
//
// Channels moved from darkchat/v1/channel/ with version-2 channel messages
// (PROTOCOL.md §4.3): nodes of the previous version refuse those as
// malformed and would penalise the node forwarding them, so the two
// versions share no channel topic. The old channel topics are outside the
// filter: a peer announcing them spends a subscription token per topic, as
// for any unknown topic, and holds no state (see peerGuard.inspect).
const (
	channelTopicPrefix = "darkchat/v2/channel/"
	inboxTopicPrefix   = "darkchat/v1/dm/"
	// historyTopic carries the history requests and answers of every
	// channel (the gateway's wire forms name the channel). It is a topic
	// of its own, not the channels' topics, and of this version: history
	// answers carry version-2 messages, which nodes of the previous
	// version would refuse; their subscription filter drops this topic,
	// and they keep working beside newer nodes.
	historyTopic = "darkchat/v2/history"
	// historyName is its name in the node's table of topics, and the
	// channel its validator is called with: none.
	historyName = ""
)

// MaxChannelNameLen bounds channel names at this layer; the gateway applies
// the user-facing naming rules.
const MaxChannelNameLen = 64

// subscriptionBuffer is a subscription's queue of delivered messages
// (the channel's own, filled by GossipSub's event loop through the
// subscription's message filter, see channel.take). The channel's reader
// drains it without blocking (members never block), so it only has to
// absorb scheduling hiccups; a message that finds it full is dropped and
// counted as undeliverable, which the drop tracer logs.
const subscriptionBuffer = 4096

// Message is one verified message from a channel or a DM inbox shard.
type Message struct {
	// Channel is the channel name, or the shard number for an inbox.
	Channel string
	// Inbox is true for messages from a DM inbox shard.
	Inbox bool
	// Data is the message as it travelled on the mesh. Members must not
	// modify it: it is shared by all of them.
	Data []byte
	// Payload is what the Validator decoded from Data.
	Payload any
	// ReceivedFrom is the peer that forwarded the message to this node
	// (this node itself for local publications).
	ReceivedFrom peer.ID
	// Local is true for messages published on this node.
	Local bool
}

// Member receives a topic's messages on behalf of local clients.
type Member interface {
	// DeliverMessage is called from the topic's reader goroutine for every
	// message, including those the member's own node published. It must
	// not block: a member with a full queue decides itself what to do (the
	// gateway disconnects the slow client with a notice).
	//
	// It must not call back into the Node (Join, Leave, Publish, ...),
	// not even from a goroutine it waits for: leaving a topic waits for
	// the topic's reader to exit, and the reader is the goroutine running
	// DeliverMessage. A member that wants to leave records it and leaves
	// from its own goroutine.
	DeliverMessage(*Message)
}

// channel is one GossipSub topic the node uses: a chat channel or a DM
// inbox shard it is subscribed to, or an inbox shard it only publishes DMs
// to.
//
// Locking. Node.chMu guards the node's topic map and the fields below marked
// so, and is only ever held for map and field updates, never across a
// GossipSub round trip: opening, subscribing to and closing a topic go
// through GossipSub's event loop, which is busy on a loaded node, and one
// channel's join must not stall another channel's sends. Such an operation
// runs outside chMu by one goroutine at a time per topic (its operator, see
// Node.operate), with busy set; anyone else who needs the topic waits for
// busy to close and looks again. Members are copy-on-write, so the reader
// fans out without taking any lock.
type channel struct {
	name      string // channel name or shard number
	topicName string
	inbox     bool
	node      *Node

	// Guarded by Node.chMu.
	topic *pubsub.Topic        // nil until opened
	sub   *pubsub.Subscription // nil unless subscribed
	done  chan struct{}        // closed when the reader of sub exits
	stop  chan struct{}        // closed to make the reader of sub exit
	// busy is set while an operator opens, subscribes to or closes the
	// topic outside chMu, and closed when it is done.
	busy chan struct{}
	// publishers counts PublishDM calls using topic; while there are any,
	// the topic is not closed (their route lookups hold event handlers on
	// it: GossipSub refuses to close a topic with one, and must not see
	// one cancelled while it closes the topic).
	publishers int
	// linger, for an inbox shard whose last member left, unsubscribes it
	// later unless a member joins first; lingerGen tells a timer that has
	// been replaced or stopped that it is stale.
	linger    *time.Timer
	lingerGen uint64

	// members is replaced, never modified, under Node.chMu; the reader
	// loads it without a lock.
	members atomic.Pointer[[]Member]
}

// memberList returns the current members; the slice must not be modified.
func (c *channel) memberList() []Member {
	if p := c.members.Load(); p != nil {
		return *p
	}
	return nil
}

// addMember adds m unless it is a member already. Callers hold chMu.
func (c *channel) addMember(m Member) {
	old := c.memberList()
	if slices.Contains(old, m) {
		return
	}
	next := make([]Member, len(old), len(old)+1)
	copy(next, old)
	next = append(next, m)
	c.members.Store(&next)
}

// removeMember removes m and reports whether it was a member. Callers hold
// chMu.
func (c *channel) removeMember(m Member) bool {
	old := c.memberList()
	i := slices.Index(old, m)
	if i < 0 {
		return false
	}
	next := make([]Member, 0, len(old)-1)
	next = append(next, old[:i]...)
	next = append(next, old[i+1:]...)
	c.members.Store(&next)
	return true
}

// inboxLinger is how long a node stays subscribed to a DM inbox shard after
// its last user there left. Users reconnect (a browser reload, a flaky
// link) and logins come in bursts; re-subscribing and re-advertising a
// shard each time is most of a login's cost, and a DM sent while the user
// reconnects still reaches the node.
const inboxLinger = 2 * time.Minute

// Join adds m to channel's local members. The node subscribes to the
// channel's topic when its first member joins. Joining twice is a no-op.
func (n *Node) Join(name string, m Member) error {
	if err := checkChannelName(name); err != nil {
		return err
	}
	return n.join(name, channelTopicPrefix+name, false, m)
}

// Leave removes m from channel's members; the node unsubscribes when the
// last one leaves. Leaving a channel one is not in is a no-op.
func (n *Node) Leave(name string, m Member) {
	n.leave(channelTopicPrefix+name, m)
}

// JoinHistory adds m to the members of the history topic, subscribing to
// it with the first member. Its messages are checked by Config.Validator,
// with channel "" (the data names the channel).
func (n *Node) JoinHistory(m Member) error {
	return n.join(historyName, historyTopic, false, m)
}

// LeaveHistory removes m from the history topic's members.
func (n *Node) LeaveHistory(m Member) { n.leave(historyTopic, m) }

// PublishHistory validates data and sends it on the history topic. The
// node must have joined it.
func (n *Node) PublishHistory(ctx context.Context, data []byte) error {
	topic := n.joinedTopicNamed(historyTopic)
	if topic == nil {
		return fmt.Errorf("publish history: %w", ErrNotJoined)
	}
	return n.publish(ctx, topic, historyName, data)
}

// JoinInbox adds m to the members of DM inbox shard, subscribing to it with
// the first member. Messages are checked by Config.InboxValidator.
func (n *Node) JoinInbox(shard int, m Member) error {
	name, err := shardName(shard)
	if err != nil {
		return err
	}
	return n.join(name, inboxTopicPrefix+name, true, m)
}

// LeaveInbox removes m from the members of DM inbox shard.
func (n *Node) LeaveInbox(shard int, m Member) {
	if name, err := shardName(shard); err == nil {
		n.leave(inboxTopicPrefix+name, m)
	}
}

// MaxInboxShards bounds the shard numbers a node accepts.
const MaxInboxShards = 1024

func shardName(shard int) (string, error) {
	if shard < 0 || shard >= MaxInboxShards {
		return "", fmt.Errorf("inbox shard %d out of range [0, %d)", shard, MaxInboxShards)
	}
	return strconv.Itoa(shard), nil
}

// settledLocked returns topicName's entry once no operator is working on
// it, creating the entry if there is none. It is called with chMu held and
// returns with chMu held, releasing it while it waits.
func (n *Node) settledLocked(ctx context.Context, name, topicName string, inbox bool) (*channel, error) {
	for {
		if n.ctx.Err() != nil {
			return nil, ErrClosed
		}
		c := n.channels[topicName]
		if c == nil {
			c = &channel{name: name, topicName: topicName, inbox: inbox, node: n}
			n.channels[topicName] = c
			return c, nil
		}
		if c.busy == nil {
			return c, nil
		}
		busy := c.busy
		n.chMu.Unlock()
		var err error
		select {
		case <-busy:
		case <-ctx.Done():
			err = ctx.Err()
		}
		n.chMu.Lock()
		if err != nil {
			return nil, err
		}
	}
}

// operate runs op outside chMu as c's only operator: whoever needs c
// meanwhile waits in settledLocked. It is called with chMu held, c not
// busy, and returns with chMu held. op must not touch c's guarded fields;
// the caller applies its results after operate returns.
func (n *Node) operate(c *channel, op func() error) error {
	busy := make(chan struct{})
	c.busy = busy
	n.chMu.Unlock()
	err := op()
	n.chMu.Lock()
	c.busy = nil
	close(busy)
	return err
}

// dropIfUnopenedLocked removes c from the node's topics if it holds no
// topic: its opening failed.
func (n *Node) dropIfUnopenedLocked(c *channel) {
	if c.topic == nil && n.channels[c.topicName] == c {
		delete(n.channels, c.topicName)
	}
}

func (n *Node) join(name, topicName string, inbox bool, m Member) error {
	n.chMu.Lock()
	defer n.chMu.Unlock()
	c, err := n.settledLocked(context.Background(), name, topicName, inbox)
	if err != nil {
		return err
	}
	if c.sub == nil {
		topic := c.topic
		opened := topic == nil
		var sub *pubsub.Subscription
		in := make(chan *pubsub.Message, subscriptionBuffer)
		err := n.operate(c, func() error {
			var err error
			if opened {
				if topic, err = n.openTopic(name, topicName, inbox); err != nil {
					return err
				}
			}
			// GossipSub's own queue stays empty: the filter takes every
			// message into in, whose length the reader can see.
			take := c.take(in)
			if sub, err = topic.Subscribe(pubsub.WithBufferSize(1), pubsub.WithMessageFilter(take)); err != nil {
				if opened {
					n.closeTopic(c, topic)
				}
				return fmt.Errorf("subscribe to %q: %w", topicName, err)
			}
			return nil
		})
		if err != nil {
			n.dropIfUnopenedLocked(c)
			return err
		}
		c.topic, c.sub, c.done, c.stop = topic, sub, make(chan struct{}), make(chan struct{})
		done, stop := c.done, c.stop
		if !n.spawn(func() { c.read(in, stop, done) }) {
			// The node is closing; Close tears the topic down once
			// this operation is over.
			close(done)
			return ErrClosed
		}
	}
	c.stopLingerLocked()
	c.addMember(m)
	return nil
}

func (n *Node) leave(topicName string, m Member) {
	n.chMu.Lock()
	defer n.chMu.Unlock()
	c := n.channels[topicName]
	if c == nil {
		return
	}
	// Members are only added to a settled topic, and a topic is only
	// unsubscribed once it has none, so m is never a member of a busy one.
	if c.busy != nil || !c.removeMember(m) || len(c.memberList()) > 0 {
		return
	}
	if c.inbox {
		c.startLingerLocked()
		return
	}
	n.unsubscribeLocked(c)
}

// unsubscribeLocked ends c's subscription, and closes its topic unless a
// DM is being published on it. c must be settled and have no member.
// Called with chMu held; returns with it held.
func (n *Node) unsubscribeLocked(c *channel) {
	sub, stop, done, topic := c.sub, c.stop, c.done, c.topic
	closeTopic := c.publishers == 0
	n.operate(c, func() error {
		if sub != nil {
			sub.Cancel()
			close(stop)
			<-done
		}
		if closeTopic && topic != nil {
			n.closeTopic(c, topic)
		}
		return nil
	})
	c.sub, c.done, c.stop = nil, nil, nil
	if closeTopic {
		c.topic = nil
		delete(n.channels, c.topicName)
	}
}

// startLingerLocked schedules an inbox shard without members to be
// unsubscribed after inboxLinger. Callers hold chMu.
func (c *channel) startLingerLocked() {
	if c.linger != nil {
		return
	}
	c.lingerGen++
	gen, n := c.lingerGen, c.node
	c.linger = time.AfterFunc(inboxLinger, func() {
		// The timer's goroutine only hands the work to one the node
		// counts, so Close waits for it.
		n.spawn(func() { n.endLinger(c, gen) })
	})
}

// stopLingerLocked cancels a pending linger. Callers hold chMu.
func (c *channel) stopLingerLocked() {
	if c.linger != nil {
		c.linger.Stop()
		c.linger = nil
		c.lingerGen++
	}
}

// endLinger unsubscribes an inbox shard whose linger ran out with no member.
func (n *Node) endLinger(c *channel, gen uint64) {
	n.chMu.Lock()
	defer n.chMu.Unlock()
	if n.channels[c.topicName] != c || c.linger == nil || c.lingerGen != gen || c.busy != nil {
		return // closed, a member came back, or the shard is changing anyway
	}
	c.linger = nil
	if len(c.memberList()) == 0 && c.sub != nil {
		n.unsubscribeLocked(c)
	}
}

// closeTopics tears down every topic; Close calls it once the node's
// context is cancelled, so no new topic appears meanwhile.
func (n *Node) closeTopics() {
	n.chMu.Lock()
	defer n.chMu.Unlock()
	for {
		var c *channel
		for _, c = range n.channels {
			break
		}
		if c == nil {
			return
		}
		if busy := c.busy; busy != nil {
			n.chMu.Unlock()
			<-busy
			n.chMu.Lock()
			continue
		}
		// DM publishers return at once now that the node's context has
		// ended; GossipSub must not see their event handlers go while it
		// closes the topic.
		for c.publishers > 0 {
			n.publishersDone.Wait()
		}
		if n.channels[c.topicName] != c || c.busy != nil {
			continue
		}
		c.stopLingerLocked()
		c.members.Store(nil)
		n.unsubscribeLocked(c)
	}
}

// Channels returns the channels with local members and their member counts.
func (n *Node) Channels() map[string]int {
	n.chMu.Lock()
	defer n.chMu.Unlock()
	out := make(map[string]int)
	for _, c := range n.channels {
		if k := len(c.memberList()); !c.inbox && c.topicName != historyTopic && k > 0 {
			out[c.name] = k
		}
	}
	return out
}

// joinedTopic returns the topic of a channel this node is subscribed to.
func (n *Node) joinedTopic(name string) *pubsub.Topic {
	return n.joinedTopicNamed(channelTopicPrefix + name)
}

// joinedTopicNamed is joinedTopic by topic name.
func (n *Node) joinedTopicNamed(topicName string) *pubsub.Topic {
	n.chMu.Lock()
	defer n.chMu.Unlock()
	c := n.channels[topicName]
	if c == nil || c.sub == nil || c.busy != nil {
		return nil
	}
	return c.topic
}

// ChannelPeers returns the peers subscribed to channel that messages can
// be sent to now. GossipSub learns a new peer's subscriptions before its
// outbound stream is open, and a message published to such a peer in
// between is dropped; those peers are left out until the stream is open.
func (n *Node) ChannelPeers(name string) []peer.ID {
	topic := n.joinedTopic(name)
	if topic == nil {
		return nil
	}
	return n.routers.routable(topic.ListPeers())
}

// OnMeshPeer has f called for each peer GossipSub opens a stream to or
// accepts one from: a new mesh peer, or one back after a partition or a
// restart, which may hold messages this node's members missed. f runs on
// GossipSub's and the host's goroutines and must return at once (record
// the peer, act elsewhere).
func (n *Node) OnMeshPeer(f func(peer.ID)) { n.drops.onMeshPeer.Store(&f) }

// Publish validates data with the node's Validator and sends it to the
// channel's subscribers on the mesh; local members receive it too. The
// channel must have a local member. A message the validator refuses is
// returned with the validator's error (wrapping ErrIgnore when ignored, and
// ErrDuplicate for a message already seen).
func (n *Node) Publish(ctx context.Context, name string, data []byte) error {
	topic := n.joinedTopic(name)
	if topic == nil {
		return fmt.Errorf("publish to %q: %w", name, ErrNotJoined)
	}
	err := n.publish(ctx, topic, name, data)
	if errors.Is(err, pubsub.ErrTopicClosed) { // the last member left meanwhile
		return fmt.Errorf("publish to %q: %w", name, ErrNotJoined)
	}
	return err
}

// PublishDM sends a sealed DM envelope to inbox shard. The node need not be
// subscribed to the shard: it then finds the shard's subscribers through
// the DHT and waits, within ctx, until it is connected to at least one.
// ErrNoRoute means no node serving the shard could be found in time.
func (n *Node) PublishDM(ctx context.Context, shard int, data []byte) error {
	name, err := shardName(shard)
	if err != nil {
		return err
	}
	topic, local, release, err := n.dmTopic(ctx, name, inboxTopicPrefix+name)
	if err != nil {
		return err
	}
	defer release()
	if !local {
		if err := n.awaitTopicPeer(ctx, topic); err != nil {
			return fmt.Errorf("%w: inbox shard %d: %w", ErrNoRoute, shard, err)
		}
	}
	return n.publish(ctx, topic, name, data)
}

// dmTopic returns an inbox shard's topic, opening it without subscribing
// if the node has not (at most one such topic per shard, kept until the
// node closes), and whether the node is subscribed. The topic stays open
// until release is called.
func (n *Node) dmTopic(ctx context.Context, name, topicName string) (topic *pubsub.Topic, local bool, release func(), err error) {
	n.chMu.Lock()
	defer n.chMu.Unlock()
	c, err := n.settledLocked(ctx, name, topicName, true)
	if err != nil {
		return nil, false, nil, err
	}
	if c.topic == nil {
		var opened *pubsub.Topic
		err := n.operate(c, func() error {
			var err error
			opened, err = n.openTopic(name, topicName, true)
			return err
		})
		if err != nil {
			n.dropIfUnopenedLocked(c)
			return nil, false, nil, err
		}
		c.topic = opened
		if n.ctx.Err() != nil {
			return nil, false, nil, ErrClosed // Close tears it down
		}
	}
	c.publishers++
	release = func() {
		n.chMu.Lock()
		c.publishers--
		if c.publishers == 0 {
			n.publishersDone.Broadcast()
		}
		n.chMu.Unlock()
	}
	return c.topic, c.sub != nil, release, nil
}

// awaitTopicPeer returns once GossipSub can send to a peer subscribed to
// topic, looking subscribers up in the DHT and dialling them meanwhile.
// (GossipSub's own readiness check counts only mesh peers, which a topic the
// node is not subscribed to never has.) The lookup's goroutines are the
// node's and end before it returns.
func (n *Node) awaitTopicPeer(ctx context.Context, topic *pubsub.Topic) error {
	ready, changed := n.routers.anyOf(topic.ListPeers())
	if ready {
		return nil
	}
	events, err := topic.EventHandler()
	if err != nil {
		return err
	}
	defer events.Cancel()
	// The lookup ends when the publisher's wait does, or the node closes.
	lookupCtx, stop := context.WithCancel(n.ctx)
	var lookups sync.WaitGroup
	defer func() {
		stop()
		lookups.Wait()
	}()
	joined := make(chan struct{}, 1)
	for _, f := range []func(){
		func() { n.dialTopicPeers(lookupCtx, topic.String()) },
		func() { watchPeerJoins(lookupCtx, events, joined) },
	} {
		lookups.Add(1)
		if !n.spawn(func() { defer lookups.Done(); f() }) {
			lookups.Done()
			return ErrClosed
		}
	}
	for {
		if ready, changed = n.routers.anyOf(topic.ListPeers()); ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.ctx.Done():
			return ErrClosed
		case <-joined:
		case <-changed:
		}
	}
}

// watchPeerJoins signals joined (without blocking) each time a peer
// subscribes to the topic of events, until ctx ends.
func watchPeerJoins(ctx context.Context, events *pubsub.TopicEventHandler, joined chan<- struct{}) {
	for {
		ev, err := events.NextPeerEvent(ctx)
		if err != nil {
			return
		}
		if ev.Type == pubsub.PeerJoin {
			select {
			case joined <- struct{}{}:
			default:
			}
		}
	}
}

// dialTopicPeers looks up a topic's subscribers in the DHT, as GossipSub's
// topic discovery does, and dials those not yet connected, until ctx ends.
func (n *Node) dialTopicPeers(ctx context.Context, topicName string) {
	if n.disc == nil {
		return // Config.NoDHT: the caller wires the connections; awaitTopicPeer waits for one
	}
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		if peers, err := n.disc.FindPeers(ctx, "floodsub:"+topicName, discovery.Limit(maxDialsPerRound)); err == nil {
			for pi := range peers {
				if pi.ID == n.ID() || n.host.Network().Connectedness(pi.ID) == network.Connected {
					continue
				}
				dctx, cancel := context.WithTimeout(ctx, dialTimeout)
				n.host.Connect(dctx, pi)
				cancel()
			}
		}
		retry.Reset(time.Second)
		select {
		case <-ctx.Done():
			return
		case <-retry.C:
		}
	}
}

func (n *Node) publish(ctx context.Context, topic *pubsub.Topic, name string, data []byte, opts ...pubsub.PubOpt) error {
	if len(data) > n.cfg.MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, len(data), n.cfg.MaxMessageSize)
	}
	// Listing the topic's peers goes through GossipSub's event loop; skip
	// it while no peer's queue is nearly full.
	if n.routers.anyFull() {
		if err := n.routers.waitForRoom(ctx, topic.ListPeers()); err != nil {
			return fmt.Errorf("publish to %q: peers are not keeping up: %w", name, err)
		}
	}
	slot := &publishSlot{}
	if err := topic.Publish(ctx, data, append(opts, pubsub.WithValidatorData(slot))...); err != nil {
		if slot.err != nil {
			return slot.err
		}
		return fmt.Errorf("publish to %q: %w", name, err)
	}
	// GossipSub silently skips, without validating it, a local publication
	// it has already delivered; tell the publisher instead. (Every
	// delivered message went through the validator, which remembers its ID
	// for longer than GossipSub does, so the validator itself reports the
	// others.)
	if !slot.validated {
		return fmt.Errorf("publish to %q: %w", name, ErrDuplicate)
	}
	if m := n.drops.metrics; m != nil {
		m.published[kindOf(topic.String())].Inc()
	}
	return nil
}

// openTopic registers the topic's validator and joins it (without
// subscribing). It makes GossipSub round trips: callers do not hold chMu.
func (n *Node) openTopic(name, topicName string, inbox bool) (*pubsub.Topic, error) {
	if n.beforeTopicOpen != nil {
		n.beforeTopicOpen(topicName)
	}
	validator := n.cfg.Validator
	scores := channelScoreParams()
	if inbox {
		validator = n.cfg.InboxValidator
		scores = inboxScoreParams()
	}
	// Inboxes' validators check a DM envelope's form, cheaply: they run
	// inline on GossipSub's validation worker, which keeps the arrival
	// order by itself. Channels' validators verify signatures: they run
	// asynchronously, ordered by the topic's tickets (order.go).
	valOpt := pubsub.WithValidatorInline(true)
	var order *topicOrder
	if !inbox {
		var parallel func([]byte) bool
		if p := n.cfg.ParallelValidation; p != nil {
			parallel = func(data []byte) bool { return p(name, data) }
		}
		order = n.orders.add(topicName, parallel)
		valOpt = pubsub.WithValidatorConcurrency(validateQueueSize)
	}
	unregister := func() {
		n.ps.UnregisterTopicValidator(topicName)
		n.orders.remove(topicName)
	}
	if err := n.ps.RegisterTopicValidator(topicName, n.topicValidator(name, validator, order), valOpt); err != nil {
		n.orders.remove(topicName)
		return nil, fmt.Errorf("register validator for %q: %w", topicName, err)
	}
	topic, err := n.ps.Join(topicName)
	if err != nil {
		unregister()
		return nil, fmt.Errorf("join topic %q: %w", topicName, err)
	}
	if err := topic.SetScoreParams(scores); err != nil {
		topic.Close()
		unregister()
		return nil, fmt.Errorf("score params for %q: %w", topicName, err)
	}
	return topic, nil
}

// closeTopic leaves a topic and unregisters its validator. It makes
// GossipSub round trips: callers do not hold chMu.
func (n *Node) closeTopic(c *channel, topic *pubsub.Topic) {
	if err := topic.Close(); err != nil {
		if n.ctx.Err() != nil {
			// While the node closes, a DM publisher may not have let go
			// of the topic yet; GossipSub itself closes next.
			n.log.Debug("close topic", "channel", c.name, "inbox", c.inbox, "err", err)
		} else {
			n.log.Warn("close topic", "channel", c.name, "inbox", c.inbox, "err", err)
		}
	}
	n.ps.UnregisterTopicValidator(c.topicName)
	n.orders.remove(c.topicName)
}

// read is the only reader of sub: it hands each message to every member,
// and closes done when sub ends (cancelled, or the node closed).
// take returns the subscription's message filter: it runs on GossipSub's
// event loop for every message delivered to the subscription, puts it in
// the channel's queue in (never blocking: a full queue drops the message
// and counts it, as GossipSub does for its own), and keeps it out of
// GossipSub's queue.
func (c *channel) take(in chan<- *pubsub.Message) func(*pubsub.Message) bool {
	return func(pm *pubsub.Message) bool {
		select {
		case in <- pm:
		default:
			c.node.drops.UndeliverableMessage(pm)
		}
		return false
	}
}

// read hands the messages of in to the members until stop is closed.
// (The gateway's sessions batch their writes themselves: a session's
// writer started by one delivery takes the frames queued meanwhile.)
func (c *channel) read(in <-chan *pubsub.Message, stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		var pm *pubsub.Message
		select {
		case pm = <-in:
		case <-stop:
			return
		case <-c.node.ctx.Done():
			return
		}
		msg := &Message{
			Channel:      c.name,
			Inbox:        c.inbox,
			Data:         pm.Data,
			Payload:      pm.ValidatorData,
			ReceivedFrom: pm.ReceivedFrom,
			Local:        pm.ReceivedFrom == c.node.ID(),
		}
		for _, m := range c.memberList() {
			m.DeliverMessage(msg)
		}
	}
}

func checkChannelName(name string) error {
	if name == "" || len(name) > MaxChannelNameLen {
		return fmt.Errorf("channel name must be 1..%d bytes, got %d", MaxChannelNameLen, len(name))
	}
	for i := 0; i < len(name); i++ {
		if b := name[i]; b <= ' ' || b >= 0x7f || b == '/' {
			return fmt.Errorf("channel name %q: byte %#x not allowed", name, b)
		}
	}
	return nil
}
