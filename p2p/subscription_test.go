package p2p

import (
	"errors"
	"sync"
)

// ErrSlowConsumer ends a Subscription whose reader fell behind.
var ErrSlowConsumer = errors.New("subscriber too slow: buffer full")

// Subscription is a Member with its own bounded queue, for p2p's tests,
// which read a channel's messages from a Go channel; it is not part of the
// node's API (applications implement Member, and p2ptest has a Counter).
// Policy when full: the subscription ends with ErrSlowConsumer rather than silently losing
// messages in the middle of a conversation; the consumer sees C closed and
// Err set, calls Close (which leaves the channel), and can subscribe again.
// Until Close, the ended subscription stays a member that discards
// messages: a Member must not call back into the node (see Member).
type Subscription struct {
	node    *Node
	channel string

	mu     sync.Mutex
	ch     chan *Message
	err    error
	closed bool
}

// Subscribe joins channel with a queue of buffer messages.
func (n *Node) Subscribe(channel string, buffer int) (*Subscription, error) {
	if buffer <= 0 {
		buffer = 256
	}
	s := &Subscription{node: n, channel: channel, ch: make(chan *Message, buffer)}
	if err := n.Join(channel, s); err != nil {
		return nil, err
	}
	return s, nil
}

// C delivers the channel's messages; it is closed when the subscription ends.
func (s *Subscription) C() <-chan *Message { return s.ch }

// Err reports why the subscription ended: nil while open or after Close,
// ErrSlowConsumer after an overflow.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close leaves the channel and closes C if the subscription has not ended
// already. Every Subscription must be closed.
func (s *Subscription) Close() {
	s.node.Leave(s.channel, s)
	s.end(nil)
}

// DeliverMessage implements Member.
func (s *Subscription) DeliverMessage(m *Message) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	select {
	case s.ch <- m:
		s.mu.Unlock()
		return
	default:
	}
	s.mu.Unlock()
	s.end(ErrSlowConsumer)
}

func (s *Subscription) end(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed, s.err = true, err
	close(s.ch)
}
