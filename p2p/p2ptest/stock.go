package p2ptest

import (
	"context"
	"errors"
	"fmt"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"darkchat/identity"
	"darkchat/p2p"
)

// StockNode is stock go-libp2p-pubsub GossipSub with its defaults on a
// mesh host, the baseline darkchat's nodes are compared with
// (Options.Stock). Its only addition is a topic validator checking the
// channel message's signature, as an application on stock GossipSub would
// (and as darkchat's validator does), so both verify the same work.
type StockNode struct {
	PubSub *pubsub.PubSub
	host   host.Host
	cancel context.CancelFunc

	mu     sync.Mutex
	topics map[string]*stockTopic
	closed bool
}

type stockTopic struct {
	topic  *pubsub.Topic
	sub    *pubsub.Subscription
	cancel context.CancelFunc
	done   chan struct{}
}

// StockTopic is the stock nodes' GossipSub topic for a channel (any name
// does: stock GossipSub has no topic filter).
func StockTopic(channel string) string { return "darkchat/stock/channel/" + channel }

func newStockNode(h host.Host) (*StockNode, error) {
	ctx, cancel := context.WithCancel(context.Background())
	ps, err := pubsub.NewGossipSub(ctx, h)
	if err != nil {
		cancel()
		return nil, err
	}
	return &StockNode{PubSub: ps, host: h, cancel: cancel, topics: map[string]*stockTopic{}}, nil
}

func stockValidator(_ context.Context, _ peer.ID, msg *pubsub.Message) bool {
	var m identity.ChannelMessage
	return m.UnmarshalBinary(msg.Data) == nil && m.Verify() == nil
}

// Join subscribes to channel's topic and hands member every message
// delivered on it, as a darkchat node does (Local for its own).
func (s *StockNode) Join(channel string, member p2p.Member) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("p2ptest: stock node closed")
	}
	if s.topics[channel] != nil {
		return fmt.Errorf("p2ptest: stock node already in %q", channel)
	}
	name := StockTopic(channel)
	if err := s.PubSub.RegisterTopicValidator(name, stockValidator); err != nil {
		return err
	}
	topic, err := s.PubSub.Join(name)
	if err != nil {
		return err
	}
	sub, err := topic.Subscribe()
	if err != nil {
		topic.Close()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &stockTopic{topic: topic, sub: sub, cancel: cancel, done: make(chan struct{})}
	s.topics[channel] = t
	self := s.host.ID()
	go func() {
		defer close(t.done)
		for {
			msg, err := sub.Next(ctx)
			if err != nil {
				return
			}
			member.DeliverMessage(&p2p.Message{Channel: channel, Data: msg.Data,
				ReceivedFrom: msg.ReceivedFrom, Local: msg.ReceivedFrom == self})
		}
	}()
	return nil
}

// Publish publishes data on channel's topic; the node must have joined it.
func (s *StockNode) Publish(ctx context.Context, channel string, data []byte) error {
	s.mu.Lock()
	t := s.topics[channel]
	s.mu.Unlock()
	if t == nil {
		return fmt.Errorf("publish to %q: %w", channel, p2p.ErrNotJoined)
	}
	return t.topic.Publish(ctx, data)
}

// Close leaves every topic (GossipSub tells its peers: PRUNE and
// unsubscribe) and stops the router; the host stays open.
func (s *StockNode) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	topics := s.topics
	s.topics = nil
	s.mu.Unlock()
	for _, t := range topics {
		t.sub.Cancel()
		t.cancel()
		<-t.done
		t.topic.Close()
	}
	s.cancel()
	return nil
}
