package p2p

import (
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
)

// Validation runs on many goroutines at once (GossipSub's asynchronous
// validators, one goroutine per message, and the node's batching
// signature Verifier), yet every topic delivers and forwards its messages
// in the order they arrived, so each author's lines stay in the order
// typed, here and at every node downstream.
//
// GossipSub's single validation worker takes messages from its queue in
// arrival order and traces each (ValidateMessage) before starting its
// validation: that is where a message gets its ticket, a number in its
// topic's arrival order. A ticket is done when its message is delivered
// (traced as DeliverMessage on the event loop, which forwards it in the
// same step) or dropped (RejectMessage, or its validator's verdict). An
// accepted message's validator returns only when every earlier ticket is
// done, so GossipSub hands it on after them; its own verification, the
// expensive part, ran beside theirs.
//
// Validators with side effects that depend on order (presence tables,
// rules records, history repair) must not run beside each other: a topic's
// Config.ParallelValidation says which messages may. A serial message
// validates only when every earlier ticket is done; a parallel one
// validates once every earlier serial message is done, and is held only
// at its return.

// Limits of the ordering.
const (
	// acceptedStall is how long a ticket whose message was accepted may
	// wait for its delivery before the tickets behind it stop waiting for
	// it. GossipSub drops an accepted message without a trace when another
	// copy of it (the same ID: a local publication racing the same
	// message from a peer) was delivered first; delivered ends those
	// copies' tickets. This bounds any other such path. It is long: a
	// loaded node's event loop can take a second to deliver what its
	// validators accepted, and a ticket given up on lets the messages
	// behind it overtake it.
	acceptedStall = 10 * time.Second
	// issuedStall is how long a ticket may wait for its validation to
	// start (GossipSub traces a drop for every path it knows of; this
	// bounds the ones it might not).
	issuedStall = 10 * time.Second
)

// topicOrder is one topic's tickets. Its size is bounded by the messages
// in validation at once (GossipSub's validation throttle).
type topicOrder struct {
	parallel func(data []byte) bool // nil: every message serial
	stalls   *atomic.Uint64         // node-wide count of tickets given up on

	mu         sync.Mutex
	next       uint64 // the next ticket's number
	head       uint64 // the lowest ticket not done
	lastSerial uint64 // 1 + the number of the last serial ticket (0: none)
	byNum      map[uint64]*ticket
	byMsg      map[*pubsub.Message]*ticket
	byID       map[string]*ticket // the newest ticket of each message ID (older copies: ticket.sameID)
}

type ticket struct {
	n        uint64
	msg      *pubsub.Message
	sameID   *ticket // an older ticket of another copy of msg (same ID), or nil
	parallel bool
	// validateAfter: a parallel ticket validates once head ≥ it (every
	// earlier serial ticket done).
	validateAfter uint64
	issued        time.Time
	started       bool
	accepted      time.Time // zero until its validator accepted it
	done          bool
	turn          chan struct{} // closed when head reaches n; made on demand
}

func newTopicOrder(parallel func([]byte) bool, stalls *atomic.Uint64) *topicOrder {
	return &topicOrder{parallel: parallel, stalls: stalls,
		byNum: make(map[uint64]*ticket), byMsg: make(map[*pubsub.Message]*ticket), byID: make(map[string]*ticket)}
}

// issue gives m the next ticket (from ValidateMessage, in arrival order).
func (o *topicOrder) issue(m *pubsub.Message, now time.Time) {
	parallel := o.parallel != nil && o.parallel(m.Data)
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.byMsg[m]; ok {
		return
	}
	t := &ticket{n: o.next, msg: m, parallel: parallel, validateAfter: o.lastSerial, issued: now}
	o.next++
	if !parallel {
		o.lastSerial = t.n + 1
	}
	o.byNum[t.n] = t
	o.byMsg[m] = t
	t.sameID = o.byID[m.ID]
	o.byID[m.ID] = t
}

// ticketOf returns m's ticket, or nil (a message traced before its topic
// was ordered).
func (o *topicOrder) ticketOf(m *pubsub.Message) *ticket {
	o.mu.Lock()
	defer o.mu.Unlock()
	t := o.byMsg[m]
	if t != nil {
		t.started = true
	}
	return t
}

// beforeValidate waits until t may validate.
func (o *topicOrder) beforeValidate(t *ticket) {
	if t.parallel {
		o.waitHead(t.validateAfter)
	} else {
		o.waitHead(t.n)
	}
}

// accept records that t's validator accepted its message and waits until
// every earlier ticket is done, so that it is delivered after them.
func (o *topicOrder) accept(t *ticket, now time.Time) {
	o.mu.Lock()
	t.accepted = now
	o.mu.Unlock()
	o.waitHead(t.n)
}

// finish marks m's ticket done (dropped).
func (o *topicOrder) finish(m *pubsub.Message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if t := o.byMsg[m]; t != nil {
		o.doneLocked(t)
	}
}

// delivered marks m's ticket done, and those of the other copies of m
// still in validation: GossipSub delivers one message ID once and drops the
// other copies without a trace. It returns those copies.
func (o *topicOrder) delivered(m *pubsub.Message) (copies []*pubsub.Message) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var chain []*ticket
	for t := o.byID[m.ID]; t != nil; t = t.sameID {
		chain = append(chain, t)
	}
	for _, t := range chain {
		if !t.done && t.msg != m {
			copies = append(copies, t.msg)
		}
		o.doneLocked(t)
	}
	if t := o.byMsg[m]; t != nil {
		o.doneLocked(t)
	}
	return copies
}

func (o *topicOrder) doneLocked(t *ticket) {
	if t.done {
		return
	}
	t.done = true
	delete(o.byMsg, t.msg)
	if id := t.msg.ID; o.byID[id] == t {
		older := t.sameID
		for older != nil && older.done {
			older = older.sameID
		}
		if older != nil {
			o.byID[id] = older
		} else {
			delete(o.byID, id)
		}
	}
	for o.head < o.next {
		h := o.byNum[o.head]
		if !h.done {
			if h.turn != nil {
				close(h.turn)
				h.turn = nil
			}
			return
		}
		if h.turn != nil { // a parallel ticket's validateAfter
			close(h.turn)
		}
		delete(o.byNum, o.head)
		o.head++
	}
}

// waitHead waits until every ticket before n is done.
func (o *topicOrder) waitHead(n uint64) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		o.mu.Lock()
		if o.head >= n {
			o.mu.Unlock()
			return
		}
		w := o.byNum[n]
		if w == nil { // n was never issued: nothing to wait for
			o.mu.Unlock()
			return
		}
		if w.turn == nil {
			w.turn = make(chan struct{})
		}
		turn := w.turn
		o.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(acceptedStall)
		} else {
			timer.Reset(acceptedStall)
		}
		select {
		case <-turn:
			return
		case now := <-timer.C:
			o.skipStalled(now)
		}
	}
}

// skipStalled gives up on the head ticket if its message was accepted but
// not delivered for acceptedStall, or its validation never started within
// issuedStall.
func (o *topicOrder) skipStalled(now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	h := o.byNum[o.head]
	if h == nil || h.done {
		return
	}
	if (!h.accepted.IsZero() && now.Sub(h.accepted) >= acceptedStall) ||
		(!h.started && now.Sub(h.issued) >= issuedStall) {
		o.stalls.Add(1)
		o.doneLocked(h)
	}
}

// release ends the topic's ordering: its waiters go on.
func (o *topicOrder) release() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, t := range o.byNum {
		o.doneLocked(t)
	}
}

// orders is the node's topicOrder per topic name.
type orders struct {
	stalls atomic.Uint64
	mu     sync.RWMutex
	topics map[string]*topicOrder
}

func (r *orders) get(topic string) *topicOrder {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.topics[topic]
}

func (r *orders) add(topic string, parallel func([]byte) bool) *topicOrder {
	o := newTopicOrder(parallel, &r.stalls)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.topics == nil {
		r.topics = make(map[string]*topicOrder)
	}
	r.topics[topic] = o
	return o
}

func (r *orders) remove(topic string) {
	r.mu.Lock()
	o := r.topics[topic]
	delete(r.topics, topic)
	r.mu.Unlock()
	if o != nil {
		o.release()
	}
}

// issue, finish: the tracer's hooks (dropTracer).
func (r *orders) issue(m *pubsub.Message) {
	if o := r.get(m.GetTopic()); o != nil {
		o.issue(m, time.Now())
	}
}

func (r *orders) finish(m *pubsub.Message) {
	if o := r.get(m.GetTopic()); o != nil {
		o.finish(m)
	}
}

// delivered is topicOrder.delivered for m's topic.
func (r *orders) delivered(m *pubsub.Message) []*pubsub.Message {
	if o := r.get(m.GetTopic()); o != nil {
		return o.delivered(m)
	}
	return nil
}
