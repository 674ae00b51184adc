package gateway

import (
	"cmp"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"darkchat/identity"
)

// Three nodes in a line, B without members: alice (TCP on A) and bob
// (WebSocket on C) chat in lobby; carol in another channel sees nothing.
func TestChatAcrossThreeNodes(t *testing.T) {
	a, b, c := startNode(t, nil), startNode(t, nil), startNode(t, nil)
	linkNodes(t, a, b)
	linkNodes(t, c, b)

	alice := dialTCP(t, a.tcpAddr)
	alice.login()
	alice.join("lobby", "alice")
	bob := dialWS(t, c.wsURL)
	bob.login()
	bob.join("lobby", "bob")
	carol := dialTCP(t, c.tcpAddr)
	carol.login()
	carol.join("other", "carol")

	waitUntil(t, 30*time.Second, "A and C to find each other in lobby", func() bool {
		return len(a.node.ChannelPeers("lobby")) > 0 && len(c.node.ChannelPeers("lobby")) > 0
	})

	const n = 20
	for i := range n {
		alice.say("lobby", "alice", fmt.Sprintf("hello %d", i))
		bob.say("lobby", "bob", fmt.Sprintf("hi %d", i))
	}
	for _, tc := range []struct {
		to      *client
		from    string
		fromKey string
		bodyFmt string
	}{
		{bob, "alice", alice.key.Public().String(), "hello %d"},
		{alice, "bob", bob.key.Public().String(), "hi %d"},
	} {
		for i := range n {
			f := tc.to.expect("message")
			if f.User != tc.from || f.Key != tc.fromKey || f.Channel != "lobby" || f.Body != fmt.Sprintf(tc.bodyFmt, i) {
				t.Fatalf("message %d to %s: %s", i, tc.from, f.raw)
			}
		}
	}
	// Nothing more: no duplicates, no echo of one's own messages, and
	// nothing for carol.
	for _, cl := range []*client{alice, bob, carol} {
		cl.assertNoMore("message")
	}
	if got := b.node.Channels(); len(got) != 0 {
		t.Fatalf("B has channel members %v", got)
	}
}

func TestBadInputGetsNamedErrors(t *testing.T) {
	a := startNode(t, func(c *Config) { c.MaxLine = 2048 })
	good := dialTCP(t, a.tcpAddr)
	good.login()
	good.join("lobby", "good")
	watcher := dialTCP(t, a.tcpAddr)
	watcher.login()
	watcher.join("lobby", "watcher")

	t.Run("garbage", func(t *testing.T) {
		c := dialTCP(t, a.tcpAddr)
		c.sendRaw("this is not json")
		c.expectError(codeBadJSON)
		c.sendRaw(`{"type":"login","key":5}`)
		if f := c.expectError(codeBadJSON); !strings.Contains(f.Message, `"key"`) {
			t.Fatalf("error does not name the field: %s", f.Message)
		}
		c.sendRaw(`[[[[[[[[[[[[1]]]]]]]]]]]]`)
		c.expectError(codeBadJSON)
		c.sendRaw(`{"type":"dance"}`)
		c.expectError(codeNotLoggedIn)
	})
	t.Run("oversized line", func(t *testing.T) {
		c := dialTCP(t, a.tcpAddr)
		c.sendRaw(strings.Repeat("x", 3000))
		c.expectError(codeTooLarge)
		c.expectClosed()
	})
	t.Run("message before login", func(t *testing.T) {
		c := dialTCP(t, a.tcpAddr)
		c.sendMsg("lobby", "eve", "sneaky", nil)
		c.expectError(codeNotLoggedIn)
	})
	t.Run("wrong login signature", func(t *testing.T) {
		c := dialTCP(t, a.tcpAddr)
		other, _ := identity.GenerateKey()
		m := c.loginMsg()
		m["sig"] = fmt.Sprintf("%x", identity.SignLogin(other, c.hello.Challenge))
		c.send(m)
		c.expectError(codeBadSignature)
		c.expectClosed()
	})
	t.Run("replayed login signature", func(t *testing.T) {
		first := dialTCP(t, a.tcpAddr)
		captured := first.loginMsg()
		first.send(captured)
		first.expect("welcome")
		replay := dialTCP(t, a.tcpAddr)
		replay.send(captured)
		replay.expectError(codeBadSignature)
		replay.expectClosed()
	})
	t.Run("message signed by another key", func(t *testing.T) {
		c := dialTCP(t, a.tcpAddr)
		c.login()
		c.join("lobby", "mallory")
		other, _ := identity.GenerateKey()
		c.sendMsg("lobby", "mallory", "forged", &other)
		c.expectError(codeBadSignature)
	})
	t.Run("channel not joined", func(t *testing.T) {
		c := dialTCP(t, a.tcpAddr)
		c.login()
		c.sendMsg("elsewhere", "x", "hi", nil)
		if f := c.expectError(codeNotJoined); !strings.Contains(f.Message, "join it first") {
			t.Fatalf("message %q", f.Message)
		}
	})
	t.Run("bad names and replays", func(t *testing.T) {
		c := dialTCP(t, a.tcpAddr)
		c.login()
		c.send(map[string]any{"type": "join", "channel": "Bad Name!", "username": "x"})
		c.expectError(codeBadChannel)
		c.send(map[string]any{"type": "join", "channel": "ok", "username": "-bad"})
		c.expectError(codeBadUsername)
		c.join("lobby", "rex")
		c.sendMsg("lobby", "someone-else", "hi", nil)
		c.expectError(codeBadUsername)
		m, _ := identity.NewChannelMessage(c.key, "lobby", "rex", "once", time.Now())
		req := map[string]any{"type": "send", "channel": "lobby", "username": "rex", "body": "once",
			"ts": m.Timestamp, "id": fmt.Sprintf("%x", m.ID), "sig": fmt.Sprintf("%x", m.Sig)}
		c.send(req)
		c.expect("ok")
		c.send(req)
		c.expectError(codeDuplicate)
		old, _ := identity.NewChannelMessage(c.key, "lobby", "rex", "old", time.Now().Add(-10*time.Minute))
		c.send(map[string]any{"type": "send", "channel": "lobby", "username": "rex", "body": "old",
			"ts": old.Timestamp, "id": fmt.Sprintf("%x", old.ID), "sig": fmt.Sprintf("%x", old.Sig)})
		c.expectError(codeBadTimestamp)
	})

	// The honest session still works, and the watcher saw only "once".
	good.say("lobby", "good", "still here")
	if f := watcher.expect("message"); f.Body != "once" {
		t.Fatalf("watcher got %s", f.raw)
	}
	if f := watcher.expect("message"); f.Body != "still here" {
		t.Fatalf("watcher got %s", f.raw)
	}
}

func TestGarbageFloodCloses(t *testing.T) {
	a := startNode(t, nil)
	c := dialTCP(t, a.tcpAddr)
	for range maxErrors {
		c.sendRaw("junk")
	}
	for range maxErrors {
		c.expectError(codeBadJSON)
	}
	c.expectError(codeTooManyErrors)
	c.expectClosed()
}

func TestRateLimitRefusesWithError(t *testing.T) {
	a := startNode(t, func(c *Config) { c.Rate = 0.001; c.Burst = 3 })
	c := dialTCP(t, a.tcpAddr)
	c.login()
	c.join("lobby", "fast")
	for range 3 {
		c.say("lobby", "fast", "ok")
	}
	c.sendMsg("lobby", "fast", "one too many", nil)
	if f := c.expectError(codeRateLimited); !strings.Contains(f.Message, "not sent") {
		t.Fatalf("message %q", f.Message)
	}
}

func TestLoginTimeoutAndSessionsPerIP(t *testing.T) {
	a := startNode(t, func(c *Config) { c.LoginTimeout = 300 * time.Millisecond; c.MaxSessionsPerIP = 2 })
	c1 := dialTCP(t, a.tcpAddr)
	dialTCP(t, a.tcpAddr)
	c3, err := dialRaw(a.tcpAddr)
	if err != nil {
		t.Fatal(err)
	}
	if f := c3; !strings.Contains(f, codeTooManySessions) {
		t.Fatalf("third session got %q", f)
	}
	c1.expectError(codeLoginTimeout)
	c1.expectClosed()
}

func TestShutdownNotifiesSessions(t *testing.T) {
	a := startNode(t, nil)
	c := dialWS(t, a.wsURL)
	c.login()
	ctx, cancel := contextWithTimeout(5 * time.Second)
	defer cancel()
	if err := a.gw.Close(ctx); err != nil {
		t.Fatal(err)
	}
	c.expectError(codeShutdown)
	c.expectClosed()
}

// A client that sends without reading its answers is slowed down to the
// pace at which it reads them: the node stops reading its requests while
// the client's queue is half full. It is not cut off as a slow consumer,
// and every request is answered, in order.
func TestSenderThatDoesNotReadIsSlowedNotCut(t *testing.T) {
	a := startNode(t, func(c *Config) {
		c.SendQueue, c.SocketSendBuffer = 8, 16<<10
		c.Rate, c.Burst = 1e6, 1e6
	})
	sender := dialTCP(t, a.tcpAddr)
	if err := sender.tcp.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	sender.login()
	sender.join("lobby", "sender")

	// About 2,000 oks: several times what the kernel's buffers hold.
	const n = 2000
	var lines []byte
	ids := make([]string, n)
	for i := range n {
		m, err := identity.NewChannelMessage(sender.key, "lobby", "sender", fmt.Sprint(i), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = hex.EncodeToString(m.ID[:])
		lines = fmt.Appendf(lines, `{"type":"send","channel":"lobby","username":"sender","body":"%d","ts":%d,"id":"%s","sig":"%s"}`+"\n",
			i, m.Timestamp, ids[i], hex.EncodeToString(m.Sig[:]))
	}
	written := make(chan error, 1)
	go func() {
		_, err := sender.tcp.Write(lines)
		written <- err
	}()
	for i := range n {
		f, err := sender.next(10 * time.Second)
		if err != nil {
			t.Fatalf("after %d oks: %v", i, err)
		}
		if f.Type != "ok" || f.ID != ids[i] {
			t.Fatalf("answer %d: %.200s, want ok for %s", i, f.raw, ids[i])
		}
		if i < n/2 {
			time.Sleep(time.Millisecond) // the slowness under test
		}
	}
	if err := <-written; err != nil {
		t.Fatalf("writing the requests: %v", err)
	}
}

// senderAndReader logs in two members of lobby on a: "sender" over TCP
// and "fast", a client that reads at once, over WebSocket.
func senderAndReader(t *testing.T, a *testNode) (sender, fast *client) {
	t.Helper()
	sender = dialTCP(t, a.tcpAddr)
	sender.login()
	sender.join("lobby", "sender")
	fast = dialWS(t, a.wsURL)
	fast.login()
	fast.join("lobby", "fast")
	return sender, fast
}

// A client that falls behind for a moment (it stops reading while more
// than its own send queue is delivered to it) borrows room from the node's
// shared allowance and then gets every message; when two lag at once and
// the allowance cannot hold both, one is cut off as a slow consumer and the
// other still gets everything. The allowance is all given back.
func TestLaggingClientBorrowsQueueRoom(t *testing.T) {
	const ownQueue, shared = 64, 480
	a := startNode(t, func(c *Config) {
		c.SendQueue, c.SharedSendQueue, c.SocketSendBuffer = ownQueue, shared, 16<<10
		c.Rate, c.Burst = 1e6, 1e6
	})
	sender, fast := senderAndReader(t, a)
	lagging := func(name string) *client {
		c := dialTCP(t, a.tcpAddr)
		// A fixed receive buffer, so that the kernel holds the same
		// number of frames in both bursts (autotuning would grow it
		// after the first), and well above an MSS on loopback (64 KB),
		// so that reading opens the window at once.
		if err := c.tcp.(*net.TCPConn).SetReadBuffer(128 << 10); err != nil {
			t.Fatal(err)
		}
		c.login()
		c.join("lobby", name)
		return c
	}
	// readAll reads messages first..first+n-1 in order, or reports the
	// error frame or read error that came instead.
	readAll := func(c *client, first, n int) error {
		for i := first; i < first+n; {
			f, err := c.next(10 * time.Second)
			switch {
			case err != nil:
				return fmt.Errorf("before message %d: %w", i, err)
			case f.Type == "ping":
				continue
			case f.Type != "message":
				return fmt.Errorf("before message %d: %.200s", i, f.raw)
			case !strings.HasPrefix(f.Body, fmt.Sprintf("%d ", i)):
				return fmt.Errorf("got %.20q, want message %d", f.Body, i)
			}
			i++
		}
		return nil
	}
	// burst sends n messages of 4,000 bytes (some fit the sockets'
	// buffers; the rest wait in the node) while the lagging clients read
	// nothing, and returns once the reading client, which reads as they
	// come and so never lags, has them all.
	body := strings.Repeat("z", 4000)
	seq := 0
	burst := func(n int) (first int) {
		first = seq
		fastRead := make(chan error, 1)
		go func() { fastRead <- readAll(fast, first, n) }()
		for range n {
			sender.say("lobby", "sender", fmt.Sprintf("%d %s", seq, body))
			seq++
		}
		if err := <-fastRead; err != nil {
			t.Fatalf("reading client: %v", err)
		}
		return first
	}
	allGivenBack := func() bool { return a.gw.sharedQueued.Load() == 0 }

	// One client, five times its own queue behind: it borrows, then
	// reads everything.
	one := lagging("one")
	first := burst(5 * ownQueue)
	if used := a.gw.sharedQueued.Load(); used == 0 || used > shared {
		t.Fatalf("shared allowance in use while one client lags: %d frames, want 1..%d", used, shared)
	}
	if err := readAll(one, first, 5*ownQueue); err != nil {
		t.Fatalf("lagging client: %v", err)
	}
	waitUntil(t, 10*time.Second, "the shared allowance given back", allGivenBack)

	// Two clients each needing more than half the allowance: the first
	// to find it spent is cut off, the other gets every message.
	two := lagging("two")
	first = burst(7 * ownQueue)
	errOne, errTwo := readAll(one, first, 7*ownQueue), readAll(two, first, 7*ownQueue)
	if (errOne == nil) == (errTwo == nil) {
		t.Fatalf("two lagging clients beyond the allowance: got %v and %v, want exactly one cut off", errOne, errTwo)
	}
	if err := cmp.Or(errOne, errTwo); !strings.Contains(err.Error(), codeSlowConsumer) {
		t.Fatalf("the lagging client cut off was told %v, want %s", err, codeSlowConsumer)
	}
	waitUntil(t, 10*time.Second, "the shared allowance given back", allGivenBack)
}

// A client that reads more slowly than its channel talks is disconnected
// with a notice once its queue overflows, while a reading client keeps
// getting every message promptly.
func TestSlowConsumerIsDisconnected(t *testing.T) {
	a := startNode(t, func(c *Config) {
		c.SendQueue, c.SocketSendBuffer = 8, 16<<10
		c.Rate, c.Burst = 1e6, 1e6
	})
	sender, fast := senderAndReader(t, a)
	slow := dialTCP(t, a.tcpAddr)
	if err := slow.tcp.(*net.TCPConn).SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	slow.login()
	slow.join("lobby", "slow")
	before := a.gw.Sessions()

	// The slow client reads a frame every 20 ms and remembers the last;
	// once the node has dropped it, it drains what the kernel buffered.
	lastFrame := make(chan frame, 1)
	var dropped atomic.Bool
	var slowFrames atomic.Int64
	go func() {
		var last frame
		for {
			f, err := slow.next(30 * time.Second)
			if err != nil {
				lastFrame <- last
				return
			}
			last = f
			slowFrames.Add(1)
			if !dropped.Load() {
				time.Sleep(20 * time.Millisecond) // the slowness under test
			}
		}
	}()

	body := strings.Repeat("z", 4000)
	deadline := time.Now().Add(90 * time.Second)
	for i := 0; a.gw.Sessions() == before; i++ {
		if time.Now().After(deadline) {
			t.Fatal("slow client never disconnected")
		}
		start := time.Now()
		sender.say("lobby", "sender", fmt.Sprintf("%d %s", i, body))
		f := fast.expect("message")
		if !strings.HasPrefix(f.Body, fmt.Sprintf("%d ", i)) {
			t.Fatalf("fast reader got %.20q, want message %d", f.Body, i)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("message %d took %v to reach the reading client", i, d)
		}
	}
	dropped.Store(true)
	select {
	case last := <-lastFrame:
		if last.Code != codeSlowConsumer {
			t.Fatalf("last frame to the slow client: %.200s", last.raw)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("slow client's connection not closed; it read %d frames", slowFrames.Load())
	}
}
