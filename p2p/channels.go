package p2p

import (
	"context"
	"fmt"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
)

// channelTopicPrefix namespaces channel topics; the subscription filter
// refuses every topic outside darkchat's namespaces.
const channelTopicPrefix = "darkchat/v1/channel/"

// MaxChannelNameLen bounds channel names at this layer; the gateway applies
// the user-facing naming rules.
const MaxChannelNameLen = 64

// subscriptionBuffer is GossipSub's per-subscription queue. The channel's
// reader drains it without blocking (members never block), so it only has
// to absorb scheduling hiccups; GossipSub drops and traces a message when it
// is full, which the drop tracer logs.
const subscriptionBuffer = 4096

// Message is one verified channel message.
type Message struct {
	Channel string
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

// Member receives a channel's messages on behalf of local clients.
type Member interface {
	// DeliverChannelMessage is called from the channel's reader goroutine
	// for every message, including those the member's own node published.
	// It must not block: a member with a full queue decides itself what to
	// do (the gateway disconnects the slow client with a notice).
	DeliverChannelMessage(*Message)
}

// channel is a joined GossipSub topic and its local members.
type channel struct {
	name  string
	topic *pubsub.Topic
	sub   *pubsub.Subscription
	done  chan struct{} // closed when the reader exits

	mu      sync.RWMutex
	members map[Member]struct{}

	node *Node
}

// Join adds m to channel's local members. The node subscribes to the
// channel's topic when its first member joins. Joining twice is a no-op.
func (n *Node) Join(name string, m Member) error {
	if err := checkChannelName(name); err != nil {
		return err
	}
	n.chMu.Lock()
	defer n.chMu.Unlock()
	if n.ctx.Err() != nil {
		return ErrClosed
	}
	c := n.channels[name]
	if c == nil {
		var err error
		if c, err = n.subscribe(name); err != nil {
			return err
		}
		n.channels[name] = c
	}
	c.mu.Lock()
	c.members[m] = struct{}{}
	c.mu.Unlock()
	return nil
}

// Leave removes m from channel's members; the node unsubscribes when the
// last one leaves. Leaving a channel one is not in is a no-op.
func (n *Node) Leave(name string, m Member) {
	n.chMu.Lock()
	defer n.chMu.Unlock()
	c := n.channels[name]
	if c == nil {
		return
	}
	c.mu.Lock()
	delete(c.members, m)
	empty := len(c.members) == 0
	c.mu.Unlock()
	if empty {
		c.teardown()
		delete(n.channels, name)
	}
}

// Channels returns the channels with local members and their member counts.
func (n *Node) Channels() map[string]int {
	n.chMu.Lock()
	defer n.chMu.Unlock()
	out := make(map[string]int, len(n.channels))
	for name, c := range n.channels {
		c.mu.RLock()
		out[name] = len(c.members)
		c.mu.RUnlock()
	}
	return out
}

// ChannelPeers returns the mesh peers known to be subscribed to channel.
func (n *Node) ChannelPeers(name string) []peer.ID {
	n.chMu.Lock()
	c := n.channels[name]
	n.chMu.Unlock()
	if c == nil {
		return nil
	}
	return c.topic.ListPeers()
}

// Publish validates data with the node's Validator and sends it to the
// channel's subscribers on the mesh; local members receive it too. The
// channel must have a local member. A message the validator refuses is
// returned with the validator's error (wrapping ErrIgnore when ignored, and
// ErrDuplicate for a message already seen).
func (n *Node) Publish(ctx context.Context, name string, data []byte) error {
	if len(data) > n.cfg.MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrMessageTooLarge, len(data), n.cfg.MaxMessageSize)
	}
	n.chMu.Lock()
	c := n.channels[name]
	n.chMu.Unlock()
	if c == nil {
		return fmt.Errorf("publish to %q: %w", name, ErrNotJoined)
	}
	// GossipSub silently skips a local publication it has already
	// delivered; tell the publisher instead.
	topic := channelTopicPrefix + name
	if n.dedup.Seen(messageID(&pb.Message{Topic: &topic, Data: data})) {
		return fmt.Errorf("publish to %q: %w", name, ErrDuplicate)
	}
	slot := &publishSlot{}
	if err := c.topic.Publish(ctx, data, pubsub.WithValidatorData(slot)); err != nil {
		if slot.err != nil {
			return slot.err
		}
		return fmt.Errorf("publish to %q: %w", name, err)
	}
	return nil
}

func (n *Node) subscribe(name string) (*channel, error) {
	topicName := channelTopicPrefix + name
	if err := n.ps.RegisterTopicValidator(topicName, n.topicValidator(name),
		// Inline: validation runs on GossipSub's bounded worker pool
		// instead of a goroutine per message.
		pubsub.WithValidatorInline(true)); err != nil {
		return nil, fmt.Errorf("register validator for %q: %w", name, err)
	}
	topic, err := n.ps.Join(topicName)
	if err != nil {
		n.ps.UnregisterTopicValidator(topicName)
		return nil, fmt.Errorf("join topic %q: %w", name, err)
	}
	if err := topic.SetScoreParams(channelScoreParams()); err != nil {
		topic.Close()
		n.ps.UnregisterTopicValidator(topicName)
		return nil, fmt.Errorf("score params for %q: %w", name, err)
	}
	sub, err := topic.Subscribe(pubsub.WithBufferSize(subscriptionBuffer))
	if err != nil {
		topic.Close()
		n.ps.UnregisterTopicValidator(topicName)
		return nil, fmt.Errorf("subscribe to %q: %w", name, err)
	}
	c := &channel{
		name:    name,
		topic:   topic,
		sub:     sub,
		done:    make(chan struct{}),
		members: make(map[Member]struct{}),
		node:    n,
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
			Data:         pm.Data,
			Payload:      pm.ValidatorData,
			ReceivedFrom: pm.ReceivedFrom,
			Local:        pm.ReceivedFrom == c.node.ID(),
		}
		if c.node.cfg.LogMessages {
			c.node.log.Info("channel message", "channel", c.name, "from", pm.ReceivedFrom, "bytes", len(pm.Data), "local", pm.Local)
		}
		c.mu.RLock()
		for m := range c.members {
			m.DeliverChannelMessage(msg)
		}
		c.mu.RUnlock()
	}
}

// teardown unsubscribes and waits for the reader to exit; the topic can be
// closed only once GossipSub has processed the cancellation, which the
// reader's exit signals.
func (c *channel) teardown() {
	c.sub.Cancel()
	<-c.done
	topicName := channelTopicPrefix + c.name
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
