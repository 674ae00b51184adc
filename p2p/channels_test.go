package p2p

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// blockTopicOpen makes n's opening of topicName wait until the returned
// release is called; entered is closed when the first opener arrives, and
// opens counts the openers.
func blockTopicOpen(n *Node, topicName string) (entered <-chan struct{}, opens *atomic.Int32, release func()) {
	in, out := make(chan struct{}), make(chan struct{})
	var enterOnce, releaseOnce sync.Once
	opens = new(atomic.Int32)
	n.beforeTopicOpen = func(name string) {
		if name != topicName {
			return
		}
		opens.Add(1)
		enterOnce.Do(func() { close(in) })
		<-out
	}
	return in, opens, func() { releaseOnce.Do(func() { close(out) }) }
}

// A join stuck in GossipSub (here: a topic open that does not finish)
// holds up neither sends nor joins and leaves on other channels: the node
// takes no node-wide lock across a GossipSub round trip. Concurrent joins
// of the stuck channel wait for the one opener instead of opening twice.
func TestBlockedJoinDoesNotDelayOtherChannels(t *testing.T) {
	n := newTestNode(t, nil)
	x, err := n.Subscribe("x", 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Close)

	entered, opens, release := blockTopicOpen(n, channelTopicPrefix+"y")
	t.Cleanup(release) // first: leaving x and closing the node wait for the opener
	y1 := &Subscription{node: n, channel: "y", ch: make(chan *Message, 8)}
	y2 := &Subscription{node: n, channel: "y", ch: make(chan *Message, 8)}
	joined := make(chan error, 2)
	go func() { joined <- n.Join("y", y1) }()
	<-entered
	go func() { joined <- n.Join("y", y2) }()

	// While y's open is stuck: x sends and delivers, another channel is
	// joined and left, the node answers about its channels, and y is not
	// joined yet. A deadline bounds the whole; none of it should need it.
	const deadline = 10 * time.Second
	meanwhile := make(chan error, 1)
	go func() { meanwhile <- whileStuck(n, x) }()
	select {
	case err := <-meanwhile:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(deadline):
		t.Fatal("channel x is held up by y's stuck join")
	}
	select {
	case err := <-joined:
		t.Fatalf("a join of y returned (%v) while its topic was still opening", err)
	default:
	}

	release()
	for range 2 {
		select {
		case err := <-joined:
			if err != nil {
				t.Fatalf("join y: %v", err)
			}
		case <-time.After(deadline):
			t.Fatal("joins of y did not finish once the topic opened")
		}
	}
	if k := opens.Load(); k != 1 {
		t.Fatalf("y's topic opened %d times for two concurrent joins, want once", k)
	}
	if got := n.Channels(); got["y"] != 2 {
		t.Fatalf("channels after the joins: %v, want y with 2 members", got)
	}
	if err := n.Publish(t.Context(), "y", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Subscription{y1, y2} {
		if m := recv(t, s, deadline); string(m.Data) != "hello" {
			t.Fatalf("y delivered %q", m.Data)
		}
	}
}

// Close waits for a join whose topic is still opening, and that join
// reports the node closed; nothing of the topic is left behind.
func TestCloseDuringJoin(t *testing.T) {
	n := newTestNode(t, nil)
	entered, _, release := blockTopicOpen(n, channelTopicPrefix+"y")
	joined := make(chan error, 1)
	go func() { joined <- n.Join("y", &Subscription{node: n, channel: "y", ch: make(chan *Message, 1)}) }()
	<-entered
	closed := make(chan error, 1)
	go func() { closed <- n.Close() }()
	<-n.ctx.Done() // Close has begun
	release()
	select {
	case err := <-joined:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("join during Close: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("join did not return during Close")
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung behind a join")
	}
	n.chMu.Lock()
	left := len(n.channels)
	n.chMu.Unlock()
	if left != 0 {
		t.Fatalf("%d topics left after Close", left)
	}
}

// Members are copy-on-write: joining and leaving while messages are
// delivered never changes the list a delivery is iterating (the race
// detector checks), and each member sees the messages sent while it is in.
func TestMembersChangeDuringDelivery(t *testing.T) {
	n := newTestNode(t, nil)
	stay, err := n.Subscribe("busy", 512)
	if err != nil {
		t.Fatal(err)
	}
	defer stay.Close()
	done := make(chan struct{})
	churned := make(chan error, 1)
	go func() {
		defer close(churned)
		for {
			select {
			case <-done:
				return
			default:
			}
			s, err := n.Subscribe("busy", 512)
			if err != nil {
				churned <- err
				return
			}
			s.Close()
		}
	}()
	const messages = 200
	for i := range messages {
		if err := n.Publish(t.Context(), "busy", fmt.Appendf(nil, "m%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range messages {
		if m := recv(t, stay, 10*time.Second); string(m.Data) != fmt.Sprintf("m%d", i) {
			t.Fatalf("message %d is %q", i, m.Data)
		}
	}
	close(done)
	if err := <-churned; err != nil {
		t.Fatal(err)
	}
}

// whileStuck is what TestBlockedJoinDoesNotDelayOtherChannels does while
// y's join is stuck.
func whileStuck(n *Node, x *Subscription) error {
	ctx := context.Background()
	for i := range 20 {
		want := fmt.Sprintf("m%d", i)
		if err := n.Publish(ctx, "x", []byte(want)); err != nil {
			return fmt.Errorf("send on x: %w", err)
		}
		if m, ok := <-x.C(); !ok || string(m.Data) != want {
			return fmt.Errorf("x delivered %v (open %v), want %s", m, ok, want)
		}
	}
	z, err := n.Subscribe("z", 1)
	if err != nil {
		return fmt.Errorf("join z: %w", err)
	}
	z.Close()
	if got := n.Channels(); len(got) != 1 || got["x"] != 1 {
		return fmt.Errorf("channels while y is opening: %v, want only x", got)
	}
	if err := n.Publish(ctx, "y", []byte("early")); !errors.Is(err, ErrNotJoined) {
		return fmt.Errorf("send on y before its join finished: %v, want ErrNotJoined", err)
	}
	return nil
}

// A DM to an inbox shard nobody serves waits for a route while the node
// looks the shard up: the publisher's deadline ends the wait, and so does
// closing the node, which leaves no goroutine of the lookup behind.
func TestCloseEndsDMRouteLookup(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	a, b := newTestNode(t, nil), newTestNode(t, nil)
	link(t, a, b) // b serves no shard

	short, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	if err := a.PublishDM(short, 9, []byte("sealed")); !errors.Is(err, ErrNoRoute) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("DM to an unserved shard: %v, want ErrNoRoute after the deadline", err)
	}

	published := make(chan error, 1)
	go func() { published <- a.PublishDM(context.Background(), 9, []byte("sealed")) }()
	waitFor(t, 10*time.Second, "the DM to wait for a route", func() bool {
		a.chMu.Lock()
		defer a.chMu.Unlock()
		c := a.channels[inboxTopicPrefix+"9"]
		return c != nil && c.publishers > 0
	})
	closed := make(chan struct{})
	go func() {
		a.Close()
		b.Close()
		close(closed)
	}()
	select {
	case err := <-published:
		if !errors.Is(err, ErrNoRoute) || !errors.Is(err, ErrClosed) {
			t.Fatalf("DM waiting for a route when the node closed: %v, want ErrNoRoute and ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("closing the node did not end the DM's wait for a route")
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hung behind a DM's route lookup")
	}
}
