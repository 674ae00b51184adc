package gateway

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestConnLimiter(t *testing.T) {
	a, b, c, d := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.0.0.4")
	// max 16: the last 2 slots are for sources holding fewer than
	// newcomerConns (8) connections.
	l := newConnLimiter(12, 16, 0)
	steps := []struct {
		src     netip.Addr
		release bool
		want    refusal
	}{
		{src: a}, {src: a}, {src: a}, {src: a}, {src: a}, {src: a},
		{src: a}, {src: a}, {src: a}, {src: a}, {src: a}, {src: a}, // a holds 12
		{src: a, want: refusedPerSource},
		{src: b}, {src: b}, // 14: the reserve begins
		{src: b},                         // b holds 2: a newcomer
		{src: a, want: refusedPerSource}, // the per-source limit comes first
		{src: c},                         // 16: full
		{src: d, want: refusedFull},
		{src: a, release: true},
		{src: d}, // a newcomer gets the freed slot
		{src: a, release: true},
		{src: a, want: refusedFull}, // a holds 10: not a newcomer
		{src: c},                    // c holds 1: one
	}
	for i, st := range steps {
		if st.release {
			l.release(st.src)
			continue
		}
		if got := l.acquire(st.src); got != st.want {
			t.Fatalf("step %d (%v): got %d, want %d", i, st.src, got, st.want)
		}
	}
	if total, fromA := l.counts(a); total != 16 || fromA != 10 {
		t.Fatalf("open %d, from a %d; want 16 and 10", total, fromA)
	}
	if l.refused[refusedPerSource].Load() != 2 || l.refused[refusedFull].Load() != 2 {
		t.Fatalf("refusals counted %d per source, %d full", l.refused[refusedPerSource].Load(), l.refused[refusedFull].Load())
	}
}

// A source refused FloodRefusals times within a second is marked as
// flooding; each later refusal renews the mark, which ends floodMemory
// after the last one, whether the source still has connections or not.
func TestConnLimiterMarksFloods(t *testing.T) {
	a, b := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("2001:db8::")
	l := newConnLimiter(2, 100, 3)
	flooding := func(at time.Time) []netip.Addr {
		srcs, _ := l.floodingAt(at)
		return srcs
	}
	signalled := func() bool {
		select {
		case <-l.changed:
			return true
		default:
			return false
		}
	}
	for _, src := range []netip.Addr{a, a, b, b} {
		if l.acquire(src) != admitted {
			t.Fatalf("%v refused below its limit", src)
		}
	}
	l.acquire(a)
	l.acquire(a)
	if got := flooding(time.Now()); len(got) != 0 || signalled() {
		t.Fatalf("2 refusals: flooding %v, want none and no signal", got)
	}
	l.acquire(a) // the third within a second, unless the second ended
	l.acquire(a)
	l.acquire(a)
	got, until := l.floodingAt(time.Now())
	if !slices.Equal(got, []netip.Addr{a}) || !signalled() {
		t.Fatalf("5 refusals: flooding %v, want [%v] after a signal", got, a)
	}
	l.release(a)
	l.release(a)
	if got := flooding(time.Now()); !slices.Equal(got, []netip.Addr{a}) {
		t.Fatalf("without connections: flooding %v, want [%v] until the mark ends", got, a)
	}
	if got := flooding(until); len(got) != 0 || l.floodingCount() != 0 {
		t.Fatalf("after floodMemory: flooding %v, %d marked; want none", got, l.floodingCount())
	}
	for range 5 {
		l.acquire(b)
	}
	if got := flooding(time.Now()); !slices.Equal(got, []netip.Addr{b}) || !signalled() {
		t.Fatalf("flooding %v, want [%v] (an IPv6 /64) after a signal", got, b)
	}
}

// A marked source's mark is also kept by the connections the filter lets
// through that are admitted, once floodKeepPasses come within a second
// (one alone does not), and a source whose sessions are closed for abuse
// is marked like one refused at accept.
func TestConnLimiterMarkKeptByPassesAndAbuse(t *testing.T) {
	a, c := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.3")
	l := newConnLimiter(1, 100, 3)
	l.acquire(a)
	for range 3 {
		l.acquire(a) // refused
	}
	l.release(a)
	_, until := l.floodingAt(time.Now())
	if until.IsZero() {
		t.Fatal("3 refusals did not mark the source")
	}
	// One admitted connection alone keeps nothing.
	l.acquire(a)
	l.release(a)
	if srcs, _ := l.floodingAt(until); len(srcs) != 0 {
		t.Fatalf("one admitted connection kept the mark: %v", srcs)
	}
	l.acquire(a)
	for range 3 {
		l.acquire(a)
	}
	l.release(a)
	_, until = l.floodingAt(time.Now())
	// Admitted connections in quick succession: at least floodKeepPasses
	// of them fall within one second.
	for range 2*floodKeepPasses - 1 {
		if l.acquire(a) != admitted {
			t.Fatal("a marked source below its limit was refused")
		}
		l.release(a)
	}
	if srcs, _ := l.floodingAt(until); !slices.Equal(srcs, []netip.Addr{a}) {
		t.Fatalf("admitted connections of a flooding source did not keep its mark: %v", srcs)
	}

	if l.acquire(c) != admitted {
		t.Fatal("a new source was refused")
	}
	for range 3 {
		l.abused(c)
	}
	if srcs, _ := l.floodingAt(time.Now()); !slices.Contains(srcs, c) {
		t.Fatalf("3 sessions closed for abuse did not mark the source: %v", srcs)
	}
}

// An IPv6 /64 is one source: a host or household gets a whole /64.
func TestSourceOf(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::"},
		{"2001:db8:1:2::1", "2001:db8:1:2::"},
		{"2001:db8:1:3::1", "2001:db8:1:3::"},
		{"::1", "::"},
	} {
		if got := sourceOf(netip.MustParseAddr(tc.ip)); got != netip.MustParseAddr(tc.want) {
			t.Errorf("%s: got %v, want %s", tc.ip, got, tc.want)
		}
	}
}

func TestDefaultMaxConns(t *testing.T) {
	for _, tc := range []struct{ fds, want int }{
		{0, DefaultMaxConns}, {256, minMaxConns}, {1024, 256}, {20000, 9744}, {1 << 20, 1<<19 - 256},
	} {
		if got := defaultMaxConns(tc.fds); got != tc.want {
			t.Errorf("open-file limit %d: %d, want %d", tc.fds, got, tc.want)
		}
	}
}

// floodPerPort is how many connections each attacking address opens to
// each gateway port in TestConnectionFloodLeavesRoomForOthers.
const floodPerPort = 500

// Two addresses open many idle connections to both gateway ports and hold
// them, the way issue 14's attack used up the node's descriptors. Each
// keeps at most MaxSessionsPerIP (both ports together); the rest are
// refused at accept, with a too_many_sessions error on the TCP port and a
// 429 on the WebSocket port, and closed. A user from a third address logs
// in within a second on both gateways.
func TestConnectionFloodLeavesRoomForOthers(t *testing.T) {
	// The node keeps what it admitted for the whole test, however slowly
	// the machine opens the flood (TestPreUpgradeConnectionsTimeOut
	// covers the timeouts). Every connection is to get its refusal: no
	// flood filter (TestFloodFilter covers it).
	a := startNode(t, func(c *Config) {
		c.HandshakeTimeout, c.LoginTimeout, c.FloodRefusals = time.Minute, time.Minute, -1
	})
	wsAddr := strings.TrimSuffix(strings.TrimPrefix(a.wsURL, "ws://"), "/ws")
	attackers := []string{"127.0.0.1", "127.0.0.3"}

	start := time.Now()
	var flood []*floodConn
	for _, ip := range attackers {
		for range floodPerPort {
			flood = append(flood, dialIdle(t, a.tcpAddr, ip, "tcp"), dialIdle(t, wsAddr, ip, "ws"))
		}
	}
	t.Logf("%d connections opened from %v in %v", len(flood), attackers, time.Since(start).Round(time.Millisecond))
	// Each attacker is refused all but MaxSessionsPerIP connections.
	wantRefused := int64(len(flood) - len(attackers)*DefaultMaxSessionsPerIP)
	waitUntil(t, 20*time.Second, "the node to accept or refuse every connection", func() bool {
		return a.gw.limiter.refused[refusedPerSource].Load() >= wantRefused
	})
	for _, ip := range attackers {
		if _, n := a.gw.limiter.counts(netip.MustParseAddr(ip)); n != DefaultMaxSessionsPerIP {
			t.Errorf("%s holds %d connections, want %d", ip, n, DefaultMaxSessionsPerIP)
		}
	}

	// The attack goes on (every connection still held on the attackers'
	// side) while an honest user logs in from another address.
	for _, gw := range []struct {
		name string
		dial func() *client
	}{
		{"TCP", func() *client { return dialTCPFrom(t, a.tcpAddr, "127.0.0.2") }},
		{"WebSocket", func() *client { return dialWSFrom(t, a.wsURL, "127.0.0.2") }},
	} {
		start := time.Now()
		c := gw.dial()
		c.login()
		d := time.Since(start)
		t.Logf("honest login on the %s gateway during the flood: %v", gw.name, d.Round(time.Microsecond))
		if d > time.Second {
			t.Errorf("honest login on the %s gateway took %v, want at most 1s", gw.name, d)
		}
	}

	// From the attackers' side: the refused connections were closed
	// with a reason, and each address kept at most the limit.
	var wg sync.WaitGroup
	deadline := time.Now().Add(2 * time.Second)
	for _, fc := range flood {
		wg.Add(1)
		go func() { defer wg.Done(); fc.readUntil(deadline) }()
	}
	wg.Wait()
	open := map[string]int{}
	for _, fc := range flood {
		if !fc.closed {
			open[fc.from]++
			continue
		}
		want := "too_many_sessions"
		if fc.port == "ws" {
			want = "HTTP/1.1 429 Too Many Requests"
		}
		if !strings.Contains(fc.got, want) {
			t.Fatalf("a refused %s connection got %q, want %q", fc.port, fc.got, want)
		}
	}
	for _, ip := range attackers {
		if open[ip] > DefaultMaxSessionsPerIP {
			t.Errorf("%s still has %d connections open, want at most %d", ip, open[ip], DefaultMaxSessionsPerIP)
		}
	}
}

// Connections on the WebSocket port that do not upgrade are closed after
// HandshakeTimeout: one that sends nothing, one that never finishes its
// headers, and a keep-alive connection idle after a page request. Their
// slots are free again.
func TestPreUpgradeConnectionsTimeOut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	a := startNode(t, func(c *Config) { c.HandshakeTimeout = timeout })
	wsAddr := strings.TrimSuffix(strings.TrimPrefix(a.wsURL, "ws://"), "/ws")
	for _, tc := range []struct{ name, send string }{
		{"silent", ""},
		{"slow headers", "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"},
		{"idle keep-alive", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
	} {
		fc := dialIdle(t, wsAddr, "127.0.0.1", "ws")
		start := time.Now()
		if tc.send != "" {
			fc.c.Write([]byte(tc.send))
		}
		fc.readUntil(start.Add(10 * time.Second))
		d := time.Since(start)
		t.Logf("%s: closed after %v", tc.name, d.Round(time.Millisecond))
		if !fc.closed || d < timeout/2 || d > 5*timeout+time.Second {
			t.Errorf("%s: closed %v after %v, want closed after about %v", tc.name, fc.closed, d, timeout)
		}
		if tc.name == "idle keep-alive" && !strings.HasPrefix(fc.got, "HTTP/1.1 404") {
			t.Errorf("page request answered %q", fc.got)
		}
	}
	waitUntil(t, 5*time.Second, "the slots to be released", func() bool {
		total, _ := a.gw.limiter.counts(netip.Addr{})
		return total == 0
	})
}

// MaxConns bounds the connections of both ports together, keeping its last
// eighth for addresses that hold few: an address at the per-IP limit
// cannot take those, a newcomer can, and once the node is full everyone
// is refused with node_full (a 503 on the WebSocket port) until a
// connection closes.
func TestGlobalConnectionCap(t *testing.T) {
	a := startNode(t, func(c *Config) { c.MaxConns, c.MaxSessionsPerIP = 16, 12 })
	wsAddr := strings.TrimSuffix(strings.TrimPrefix(a.wsURL, "ws://"), "/ws")
	firstLine := func(addr, from string) string {
		t.Helper()
		fc := dialIdle(t, addr, from, "")
		fc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, err := bufio.NewReader(fc.c).ReadString('\n')
		if err != nil {
			t.Fatalf("from %s: %v", from, err)
		}
		return line
	}
	for i := range 13 { // 12 sessions, then too many from one address
		line := firstLine(a.tcpAddr, "127.0.0.1")
		if want := `"hello"`; i == 12 {
			if !strings.Contains(line, codeTooManySessions) {
				t.Fatalf("13th connection from 127.0.0.1 got %q", line)
			}
		} else if !strings.Contains(line, want) {
			t.Fatalf("connection %d got %q", i, line)
		}
	}
	// 127.0.0.3 takes the last two slots outside the reserve and one in it.
	for range 3 {
		if line := firstLine(a.tcpAddr, "127.0.0.3"); !strings.Contains(line, `"hello"`) {
			t.Fatalf("127.0.0.3 got %q", line)
		}
	}
	honest := dialWSFrom(t, a.wsURL, "127.0.0.2") // the 16th
	honest.login()
	if line := firstLine(a.tcpAddr, "127.0.0.4"); !strings.Contains(line, codeNodeFull) {
		t.Fatalf("connection to a full node got %q", line)
	}
	if line := firstLine(wsAddr, "127.0.0.4"); !strings.HasPrefix(line, "HTTP/1.1 503") {
		t.Fatalf("WebSocket connection to a full node got %q", line)
	}
	honest.ws.Close()
	waitUntil(t, 5*time.Second, "the honest session's slot to be released", func() bool {
		total, _ := a.gw.limiter.counts(netip.Addr{})
		return total < 16
	})
	late := dialWSFrom(t, a.wsURL, "127.0.0.4")
	late.login()
}

// floodConn is a connection that sends nothing unless told to.
type floodConn struct {
	c          net.Conn
	from, port string
	got        string // what the node sent
	closed     bool   // the node closed it
}

func dialIdle(t *testing.T, addr, from, port string) *floodConn {
	t.Helper()
	c, err := localDialer(from).Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	t.Cleanup(func() { c.Close() })
	return &floodConn{c: c, from: from, port: port}
}

// readUntil reads what the node sends until it closes the connection or
// the deadline passes.
func (fc *floodConn) readUntil(deadline time.Time) {
	fc.c.SetReadDeadline(deadline)
	var b strings.Builder
	_, err := io.Copy(&b, io.LimitReader(fc.c, 64<<10))
	fc.got = b.String()
	fc.closed = err == nil || !errors.Is(err, os.ErrDeadlineExceeded)
}

// Sessions are limited in the distinct channels they are in: per session,
// per address (a channel several of its sessions share counts once), and
// per node, whose last eighth is kept for addresses in few channels.
// Leaving, or closing the session, gives the channels back.
func TestChannelLimits(t *testing.T) {
	a := startNode(t, func(c *Config) { c.MaxChannels, c.MaxChannelsPerIP, c.MaxNodeChannels = 8, 12, 24 })
	session := func(from string) *client {
		c := dialTCPFrom(t, a.tcpAddr, from)
		c.login()
		return c
	}
	joinN := func(c *client, prefix string, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			c.join(fmt.Sprintf("%s%d", prefix, i), "u")
		}
	}
	refused := func(c *client, channel, code, says string) {
		t.Helper()
		c.send(map[string]any{"type": "join", "channel": channel, "username": "u"})
		f := c.expectError(code)
		if f.Channel != channel || !strings.Contains(f.Message, says) {
			t.Fatalf("join %s refused with %q (channel %q), want a message with %q", channel, f.Message, f.Channel, says)
		}
	}
	nodeChannels := func() int { n, _ := a.gw.channels.counts(netip.Addr{}); return n }

	a1, a2 := session("127.0.0.1"), session("127.0.0.1")
	joinN(a1, "a", 0, 8)
	refused(a1, "a8", codeTooManyChannels, "per session")
	joinN(a2, "a", 0, 1) // shared with a1: not a new channel for the address
	joinN(a2, "a", 8, 12)
	refused(a2, "a12", codeTooManyChannels, "IP address")
	b1, b2 := session("127.0.0.2"), session("127.0.0.2")
	joinN(b1, "b", 0, 8)
	joinN(b2, "b", 8, 9) // 21 channels: the newcomers' reserve begins
	refused(b2, "b9", codeNodeFull, "as many channels as it allows")
	c1 := session("127.0.0.3")
	joinN(c1, "c", 0, 3) // a newcomer takes the reserve: 24, full
	refused(c1, "c3", codeNodeFull, "as many channels as it allows")
	c1.join("a0", "u") // a channel the node carries is always open
	if n := nodeChannels(); n != 24 {
		t.Fatalf("node counts %d channels, want 24", n)
	}
	a1.send(map[string]any{"type": "leave", "channel": "a1"})
	a1.expect("left")
	c1.join("c3", "u")

	a2.tcp.Close() // a8..a11 go; a0 stays, a1 and c1 are in it
	waitUntil(t, 5*time.Second, "the closed session's channels to be given back", func() bool { return nodeChannels() == 20 })
	if _, fromA := a.gw.channels.counts(netip.MustParseAddr("127.0.0.1")); fromA != 7 {
		t.Fatalf("127.0.0.1 counts %d channels, want 7", fromA)
	}
	b2.join("b9", "u")
}

// A client joining and leaving new channels in a loop cannot get its node
// banned by its mesh peers (p2p's guard bans a peer that announces new
// subscriptions faster than 1024 at once then 8 a second): new channels
// are paced, the rest refused with rate_limited, a session refused
// maxErrors times is closed (the churner logs in again), and the link
// stays up.
func TestChannelChurnKeepsMeshPeers(t *testing.T) {
	a, b := startNode(t, nil), startNode(t, nil)
	linkNodes(t, a, b)
	churner := dialTCP(t, a.tcpAddr)
	churner.login()
	const attempts = 1100 // more than the guard's burst
	joined, limited, closed := 0, 0, 0
	for i := range attempts {
		ch := fmt.Sprintf("churn-%d", i)
		churner.send(map[string]any{"type": "join", "channel": ch, "username": "u"})
		churner.send(map[string]any{"type": "leave", "channel": ch})
		f, err := churner.next(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case f.Type == "joined":
			joined++
			churner.expect("left")
		case f.Code == codeRateLimited:
			limited++
			// The leave's not_joined, or the session's end.
			g, err := churner.next(10 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			switch g.Code {
			case codeNotJoined:
			case codeTooManyErrors:
				closed++
				churner = dialTCP(t, a.tcpAddr)
				churner.login()
			default:
				t.Fatalf("after a refused join: %s", g.raw)
			}
		default:
			t.Fatalf("join %d: %s", i, f.raw)
		}
	}
	t.Logf("%d joins of new channels, %d refused with rate_limited, %d sessions closed for it", joined, limited, closed)
	if closed == 0 {
		t.Fatal("no session was closed for its refused joins")
	}
	if joined < sourceSubscribeBurst || limited == 0 {
		t.Fatalf("%d joined, %d rate limited", joined, limited)
	}
	// A message from a user of A (another address, so its own budget)
	// reaches B: B processed every announcement above and kept A.
	alice := dialTCPFrom(t, a.tcpAddr, "127.0.0.2")
	alice.login()
	alice.join("after-churn", "alice")
	bob := dialTCP(t, b.tcpAddr)
	bob.login()
	bob.join("after-churn", "bob")
	waitUntil(t, 30*time.Second, "A and B to mesh in after-churn", func() bool {
		return len(a.node.ChannelPeers("after-churn")) > 0 && len(b.node.ChannelPeers("after-churn")) > 0
	})
	alice.say("after-churn", "alice", "still linked")
	if f := bob.expect("message"); f.Body != "still linked" {
		t.Fatalf("bob got %s", f.raw)
	}
}

func TestChannelLimiterPacesSubscriptions(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newChannelLimiter(1<<20, 1<<20, now)
	srcs := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")}
	n := 0
	join := func(src netip.Addr) *clientError {
		n++
		return l.join(src, fmt.Sprintf("ch%d", n), now)
	}
	for i := range sourceSubscribeBurst {
		if cerr := join(srcs[0]); cerr != nil {
			t.Fatalf("join %d: %v", i, cerr)
		}
	}
	if cerr := join(srcs[0]); cerr == nil || cerr.code != codeRateLimited {
		t.Fatalf("over the source's burst: %v", cerr)
	}
	// Another source gets the rest of the node's burst, no more.
	for range subscribeBurst - sourceSubscribeBurst {
		if cerr := join(srcs[1]); cerr != nil {
			t.Fatal(cerr)
		}
	}
	if cerr := join(srcs[2]); cerr == nil || cerr.code != codeRateLimited {
		t.Fatalf("over the node's burst: %v", cerr)
	}
	// An existing channel needs no token.
	if cerr := l.join(srcs[0], "ch1", now); cerr != nil {
		t.Fatal(cerr)
	}
	// A second later the node has refilled subscribeRate tokens.
	now = now.Add(time.Second)
	granted := 0
	for _, src := range srcs {
		for range 4 {
			if join(src) == nil {
				granted++
			}
		}
	}
	if granted != subscribeRate {
		t.Fatalf("%d new channels after a second, want %d", granted, subscribeRate)
	}
}

// Sessions read the clock before they take the limiter's lock, so joins
// arrive with times out of order. Each stretch of time refills the bucket
// once: joins at t+2s, then t+1s, then t+2s again get the 2 seconds' tokens
// and no more (before the fix, t+1s moved the bucket back and the second
// t+2s refilled that second again).
func TestTokenBucketOutOfOrderTimes(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newTokenBucket(1, 2, t0)
	b.take(t0)
	b.take(t0) // empty
	granted := 0
	for _, at := range []time.Duration{2 * time.Second, time.Second, 2 * time.Second, time.Second, 2 * time.Second} {
		if b.take(t0.Add(at)) {
			granted++
		}
	}
	if granted != 2 {
		t.Fatalf("%d tokens for 2 seconds at 1/s, want 2", granted)
	}
}
