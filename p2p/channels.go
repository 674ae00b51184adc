package p2p

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/discovery"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Topic namespaces; the subscription filter refuses every topic outside
// them. Chat channels are darkchat/v1/channel/<name>; direct messages travel
// on darkchat/v1/dm/<shard>, inbox topics sharded by a hash of the
// recipient's key so that a node subscribes only to its users' shards.
const (
	channelTopicPrefix = "darkchat/v1/channel/"
	inboxTopicPrefix   = "darkchat/v1/dm/"
)

// MaxChannelNameLen bounds channel names at this layer; the gateway applies
// the user-facing naming rules.
const MaxChannelNameLen = 64

// subscriptionBuffer is GossipSub's per-subscription queue. The channel's
// reader drains it without blocking (members never block), so it only has
// to absorb scheduling hiccups; GossipSub drops and traces a message when it
// is full, which the drop tracer logs.
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
	DeliverMessage(*Message)
}

// channel is a joined GossipSub topic (a chat channel or an inbox shard)
// and its local members.
type channel struct {
	name      string // channel name or shard number
	topicName string
	inbox     bool
	topic     *pubsub.Topic
	sub       *pubsub.Subscription
	done      chan struct{} // closed when the reader exits

	mu      sync.RWMutex
	members map[Member]struct{}

	// linger, for an inbox shard whose last member left, unsubscribes it
	// later unless a member joins first. Guarded by the node's chMu.
	linger *time.Timer

	node *Node
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

func (n *Node) join(name, topicName string, inbox bool, m Member) error {
	n.chMu.Lock()
	defer n.chMu.Unlock()
	if n.ctx.Err() != nil {
		return ErrClosed
	}
	c := n.channels[topicName]
	if c == nil {
		var err error
		if c, err = n.subscribe(name, topicName, inbox); err != nil {
			return err
		}
		n.channels[topicName] = c
	}
	if c.linger != nil {
		c.linger.Stop()
		c.linger = nil
	}
	c.mu.Lock()
	c.members[m] = struct{}{}
	c.mu.Unlock()
	return nil
}

func (n *Node) leave(topicName string, m Member) {
	n.chMu.Lock()
	defer n.chMu.Unlock()
	c := n.channels[topicName]
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.members, m)
	empty := len(c.members) == 0
	c.mu.Unlock()
	switch {
	case !empty:
	case c.inbox:
		if c.linger == nil {
			c.linger = time.AfterFunc(inboxLinger, func() { n.endLinger(c) })
		}
	default:
		c.teardown()
		delete(n.channels, topicName)
	}
}

// endLinger unsubscribes an inbox shard whose linger ran out with no member.
func (n *Node) endLinger(c *channel) {
	n.chMu.Lock()
	defer n.chMu.Unlock()
	if n.channels[c.topicName] != c || c.linger == nil {
		return // closed, or a member came back
	}
	c.mu.RLock()
	empty := len(c.members) == 0
	c.mu.RUnlock()
	if empty {
		c.linger = nil
		c.teardown()
		delete(n.channels, c.topicName)
	}
}

// Channels returns the channels with local members and their member counts.
func (n *Node) Channels() map[string]int {
	n.chMu.Lock()
	defer n.chMu.Unlock()
	out := make(map[string]int, len(n.channels))
	for _, c := range n.channels {
		if c.inbox {
			continue
		}
		c.mu.RLock()
		out[c.name] = len(c.members)
		c.mu.RUnlock()
	}
	return out
}

// ChannelPeers returns the peers subscribed to channel that messages can
// be sent to now. GossipSub learns a new peer's subscriptions before its
// outbound stream is open, and a message published to such a peer in
// between is dropped; those peers are left out until the stream is open.
func (n *Node) ChannelPeers(name string) []peer.ID {
	n.chMu.Lock()
	c := n.channels[channelTopicPrefix+name]
	n.chMu.Unlock()
	if c == nil {
		return nil
	}
	return n.routers.routable(c.topic.ListPeers())
}

// Publish validates data with the node's Validator and sends it to the
// channel's subscribers on the mesh; local members receive it too. The
// channel must have a local member. A message the validator refuses is
// returned with the validator's error (wrapping ErrIgnore when ignored, and
// ErrDuplicate for a message already seen).
func (n *Node) Publish(ctx context.Context, name string, data []byte) error {
	n.chMu.Lock()
	c := n.channels[channelTopicPrefix+name]
	n.chMu.Unlock()
	if c == nil {
		return fmt.Errorf("publish to %q: %w", name, ErrNotJoined)
	}
	return n.publish(ctx, c.topic, name, data)
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
	topicName := inboxTopicPrefix + name
	n.chMu.Lock()
	c := n.channels[topicName]
	if c == nil {
		c = n.outbox[topicName]
		if c == nil {
			topic, err := n.openTopic(name, topicName, true)
			if err != nil {
				n.chMu.Unlock()
				return err
			}
			c = &channel{name: name, topicName: topicName, inbox: true, topic: topic, node: n}
			n.outbox[topicName] = c
		}
	}
	local := c.sub != nil // this node serves the shard itself
	n.chMu.Unlock()
	if !local {
		if err := n.awaitTopicPeer(ctx, c.topic); err != nil {
			return fmt.Errorf("%w: inbox shard %d: %v", ErrNoRoute, shard, err)
		}
	}
	return n.publish(ctx, c.topic, name, data)
}

// awaitTopicPeer returns once GossipSub can send to a peer subscribed to
// topic, looking subscribers up in the DHT and dialling them meanwhile.
// (GossipSub's own readiness check counts only mesh peers, which a topic the
// node is not subscribed to never has.)
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
	lookupCtx, stop := context.WithCancel(ctx)
	defer stop()
	go n.dialTopicPeers(lookupCtx, topic.String())
	joined := make(chan struct{}, 1)
	go func() {
		for {
			ev, err := events.NextPeerEvent(lookupCtx)
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
	}()
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

// dialTopicPeers looks up a topic's subscribers in the DHT, as GossipSub's
// topic discovery does, and dials those not yet connected, until ctx ends.
func (n *Node) dialTopicPeers(ctx context.Context, topicName string) {
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
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
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
	return nil
}

// openTopic registers the topic's validator and joins it (without
// subscribing). Callers hold chMu.
func (n *Node) openTopic(name, topicName string, inbox bool) (*pubsub.Topic, error) {
	validator := n.cfg.Validator
	scores := channelScoreParams()
	if inbox {
		validator = n.cfg.InboxValidator
		scores = inboxScoreParams()
	}
	if err := n.ps.RegisterTopicValidator(topicName, n.topicValidator(name, validator),
		// Inline: validation runs on GossipSub's bounded worker pool
		// instead of a goroutine per message.
		pubsub.WithValidatorInline(true)); err != nil {
		return nil, fmt.Errorf("register validator for %q: %w", topicName, err)
	}
	topic, err := n.ps.Join(topicName)
	if err != nil {
		n.ps.UnregisterTopicValidator(topicName)
		return nil, fmt.Errorf("join topic %q: %w", topicName, err)
	}
	if err := topic.SetScoreParams(scores); err != nil {
		topic.Close()
		n.ps.UnregisterTopicValidator(topicName)
		return nil, fmt.Errorf("score params for %q: %w", topicName, err)
	}
	return topic, nil
}

// subscribe opens (or takes over from the outbox) the topic and starts its
// reader. Callers hold chMu.
func (n *Node) subscribe(name, topicName string, inbox bool) (*channel, error) {
	var topic *pubsub.Topic
	if c := n.outbox[topicName]; c != nil {
		topic = c.topic
		delete(n.outbox, topicName)
	} else {
		var err error
		if topic, err = n.openTopic(name, topicName, inbox); err != nil {
			return nil, err
		}
	}
	sub, err := topic.Subscribe(pubsub.WithBufferSize(subscriptionBuffer))
	if err != nil {
		topic.Close()
		n.ps.UnregisterTopicValidator(topicName)
		return nil, fmt.Errorf("subscribe to %q: %w", topicName, err)
	}
	c := &channel{
		name:      name,
		topicName: topicName,
		inbox:     inbox,
		topic:     topic,
		sub:       sub,
		done:      make(chan struct{}),
		members:   make(map[Member]struct{}),
		node:      n,
	}
	go c.read()
	return c, nil
}

// read is the channel's only reader: it hands each message to every member.
func (c *channel) read() {
	defer close(c.done)
	for {
		pm, err := c.sub.Next(c.node.ctx)
		if err != nil {
			return // cancelled subscription or closed node
		}
		msg := &Message{
			Channel:      c.name,
			Inbox:        c.inbox,
			Data:         pm.Data,
			Payload:      pm.ValidatorData,
			ReceivedFrom: pm.ReceivedFrom,
			Local:        pm.ReceivedFrom == c.node.ID(),
		}
		c.mu.RLock()
		for m := range c.members {
			m.DeliverMessage(msg)
		}
		c.mu.RUnlock()
	}
}

// teardown unsubscribes and waits for the reader to exit; the topic can be
// closed only once GossipSub has processed the cancellation, which the
// reader's exit signals. Outbox topics have no subscription.
func (c *channel) teardown() {
	if c.linger != nil {
		c.linger.Stop()
		c.linger = nil
	}
	if c.sub != nil {
		c.sub.Cancel()
		<-c.done
	}
	topicName := c.topicName
	if err := c.topic.Close(); err != nil {
		c.node.log.Warn("close topic", "channel", c.name, "err", err)
	}
	c.node.ps.UnregisterTopicValidator(topicName)
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
