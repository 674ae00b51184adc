package p2p

import (
	"crypto/sha256"
	"fmt"
	"maps"
	"strconv"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
)

// Messages validated in parallel, whose validations end in another order
// than they began, are still delivered and forwarded in the order they
// arrived: one hop and two hops from their author, every message comes in
// the order it was sent.
func TestParallelValidationKeepsArrivalOrder(t *testing.T) {
	const n = 2000
	// Each message received from a peer costs its validator a different
	// amount of work (up to about a millisecond), so validations running
	// beside each other end out of order: without the tickets, b delivers
	// the messages out of order within the first few dozen. The author's
	// own node validates its messages at once, so they reach b faster
	// than b validates one.
	validate := func(from peer.ID, _ string, data []byte) (any, error) {
		i, err := strconv.Atoi(string(data[3:]))
		if err != nil {
			return nil, err
		}
		if from != "" {
			h := sha256.Sum256(data)
			for range int(h[0]) * 20 {
				h = sha256.Sum256(h[:])
			}
		}
		return i, nil
	}
	parallel := func(c *Config) {
		c.Registerer = prometheus.NewRegistry() // for the mesh (inMesh)
		// No discovery: a and c must not find each other, so that all c
		// gets comes through b.
		c.NoDHT = true
		c.Validator = validate
		c.ParallelValidation = func(string, []byte) bool { return true }
	}
	a, b, c := newTestNode(t, parallel), newTestNode(t, parallel), newTestNode(t, parallel)
	link(t, a, b)
	link(t, b, c)
	subB, err := b.Subscribe("lobby", n)
	if err != nil {
		t.Fatal(err)
	}
	subC, err := c.Subscribe("lobby", n)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Subscribe("lobby", n); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a, b and c to see each other in the channel", func() bool {
		return contains(a.ChannelPeers("lobby"), b.ID()) && contains(c.ChannelPeers("lobby"), b.ID()) &&
			contains(b.ChannelPeers("lobby"), a.ID()) && contains(b.ChannelPeers("lobby"), c.ID())
	})
	// b forwards to its mesh only; a peer outside it gets messages by
	// gossip, later and in another order.
	waitFor(t, 10*time.Second, "c in b's mesh", func() bool { return inMesh(b, c.ID(), "lobby") })
	if a.Host().Network().Connectedness(c.ID()) == network.Connected {
		t.Fatal("a and c found each other: c would hear a directly, in another order than through b")
	}
	for i := range n {
		if err := a.Publish(t.Context(), "lobby", fmt.Appendf(nil, "ok:%06d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for name, sub := range map[string]*Subscription{"b": subB, "c": subC} {
		for i := range n {
			if got := recv(t, sub, 20*time.Second).Payload.(int); got != i {
				t.Fatalf("%s's message %d is message %d (b: %+v, c: %+v; guard refused at b: %v; stalls at b: %d)", name, i, got,
					b.Stats(), c.Stats(), refusedAt(b), b.orders.stalls.Load())
			}
		}
	}
}

func refusedAt(n *Node) map[string]int {
	n.guard.mu.Lock()
	defer n.guard.mu.Unlock()
	return maps.Clone(n.guard.refused)
}

// inMesh reports whether p is in n's mesh of channel (n needs a
// Registerer: the mesh is tracked by its metrics).
func inMesh(n *Node, p peer.ID, channel string) bool {
	m := n.drops.metrics
	m.meshMu.Lock()
	defer m.meshMu.Unlock()
	_, ok := m.mesh[p][channelTopicPrefix+channel]
	return ok
}

// A ticket waits for every earlier one; an accepted message GossipSub
// never delivers holds the ones behind it for acceptedStall only, and is
// counted; one whose validation never starts, for issuedStall.
func TestTopicOrderGivesUpOnStalledTickets(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var stalls atomic.Uint64
		o := newTopicOrder(nil, &stalls)
		m1, m2, m3 := &pubsub.Message{Message: &pb.Message{}, ID: "1"}, &pubsub.Message{Message: &pb.Message{}, ID: "2"}, &pubsub.Message{Message: &pb.Message{}, ID: "3"}
		o.issue(m1, time.Now())
		o.issue(m2, time.Now())
		o.issue(m3, time.Now())

		// m1 validates and is accepted, then delivered: m2 goes on at once.
		t1 := o.ticketOf(m1)
		o.beforeValidate(t1)
		o.accept(t1, time.Now())
		t2 := o.ticketOf(m2)
		go func() {
			time.Sleep(time.Millisecond)
			o.finish(m1) // delivered
		}()
		start := time.Now()
		o.beforeValidate(t2)
		if waited := time.Since(start); waited != time.Millisecond {
			t.Fatalf("m2 waited %v for m1's delivery, want 1ms", waited)
		}
		// m2 is accepted but never delivered: m3 waits acceptedStall.
		o.accept(t2, time.Now())
		t3 := o.ticketOf(m3)
		start = time.Now()
		o.beforeValidate(t3)
		if waited := time.Since(start); waited != acceptedStall {
			t.Fatalf("m3 waited %v behind an undelivered message, want %v", waited, acceptedStall)
		}
		if stalls.Load() != 1 {
			t.Fatalf("%d stalls counted, want 1", stalls.Load())
		}
		o.finish(m3)

		// A ticket whose validation never starts: the next waits
		// issuedStall.
		m4, m5 := &pubsub.Message{Message: &pb.Message{}, ID: "4"}, &pubsub.Message{Message: &pb.Message{}, ID: "5"}
		o.issue(m4, time.Now())
		o.issue(m5, time.Now())
		t5 := o.ticketOf(m5)
		start = time.Now()
		o.beforeValidate(t5)
		if waited := time.Since(start); waited < issuedStall || waited > issuedStall+acceptedStall {
			t.Fatalf("m5 waited %v behind a validation that never started, want %v to %v", waited, issuedStall, issuedStall+acceptedStall)
		}
		o.release()
	})
}

// GossipSub delivers a message ID once and drops, without a trace, the
// other copies of it that were in validation at the same time (a local
// publication and a peer's copy): the delivery ends their tickets too, so
// the messages behind them do not wait.
func TestTopicOrderEndsOtherCopiesOnDelivery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var stalls atomic.Uint64
		o := newTopicOrder(nil, &stalls)
		local := &pubsub.Message{Message: &pb.Message{}, ID: "same"}
		copied := &pubsub.Message{Message: &pb.Message{}, ID: "same", ReceivedFrom: "peer"}
		next := &pubsub.Message{Message: &pb.Message{}, ID: "next"}
		for _, m := range []*pubsub.Message{local, copied, next} {
			o.issue(m, time.Now())
		}
		tl := o.ticketOf(local)
		o.beforeValidate(tl)
		o.accept(tl, time.Now())
		if got := o.delivered(local); len(got) != 1 || got[0] != copied {
			t.Fatalf("delivering one copy ended %v, want the other copy", got)
		}
		start := time.Now()
		o.beforeValidate(o.ticketOf(next))
		if waited := time.Since(start); waited != 0 || stalls.Load() != 0 {
			t.Fatalf("the next message waited %v (%d stalls) behind a copy GossipSub drops", waited, stalls.Load())
		}
		if got := o.delivered(next); len(got) != 0 || len(o.byID) != 0 || len(o.byMsg) != 0 || len(o.byNum) != 0 {
			t.Fatalf("left behind: copies %v, %d IDs, %d messages, %d tickets", got, len(o.byID), len(o.byMsg), len(o.byNum))
		}
	})
}
