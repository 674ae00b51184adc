package gateway

import (
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"darkchat/internal/synfilter"
)

// Connection limits are applied when a connection is accepted, on both
// gateway ports, before a byte is read: a connection over a limit is
// closed at once, after a one-line refusal written to the fresh socket (on
// plain TCP only: a TLS connection would need a handshake first, which is
// the cost being refused). A limit checked later, after a WebSocket upgrade
// or a login, lets an attacker hold descriptors with connections that
// never get that far.
//
// Every accepted connection counts, from accept to close, towards two
// limits shared by both ports, because they share the process's
// descriptors:
//
//   - MaxSessionsPerIP per source: sessions and HTTP connections on the
//     WebSocket port that have not upgraded (yet) alike. A WebSocket session
//     keeps the slot its HTTP connection took. Browsers fetch the page over
//     a few keep-alive connections, which close after HandshakeTimeout idle.
//   - MaxConns in total. Its last eighth is kept for newcomers: while the
//     node is that full, only sources holding fewer than newcomerConns
//     connections get in, so that a few addresses each at the per-source
//     limit cannot fill the node and shut out users from elsewhere.
//
// Refusing at accept is not enough against a source that keeps connecting
// while over its limits. Its connections wait in the listening socket's
// accept queue (somaxconn, 4096 by default) before the node can refuse
// them, and each refusal makes it connect again: a few thousand connection
// attempts in flight from two addresses keep the queue full, and the
// kernel then drops every new connection's SYN, an honest user's too, whose
// retry comes a second later. So a source refused FloodRefusals times
// within a second is marked as flooding, for floodMemory after its last
// refusal, and the flood filter (internal/synfilter) lets only one in
// floodPass of its SYNs through to the queue: a trickle the node refuses
// at once, while its clients' TCP retries still get through, more slowly,
// when it is below its limits again. A source that is not flooding gets
// its refusal as before.

// newcomerConns: while the node is within its newcomer reserve of MaxConns,
// only sources holding fewer connections than this are accepted. It leaves
// room for a browser's page connections and its WebSocket.
const newcomerConns = 8

// floodMemory is how long a source stays marked as flooding after its last
// refusal. Its SYNs that the filter lets through keep the mark while it
// floods on: refused ones, and also admitted ones once floodKeepPasses of
// them come within a second (a source can be below its limits while it
// floods, when the node closes its sessions as fast as it opens them).
// When the mark ends, it takes FloodRefusals refusals to be marked again,
// and meanwhile every SYN its kernel kept retrying arrives at once.
const floodMemory = 10 * time.Second

// floodKeepPasses: connections within a second from a marked source, one
// in floodPass of its attempts, that show it still floods: about 128
// attempts a second. A user behind that address retrying a few times does
// not come near.
const floodKeepPasses = 2

// floodPass: the flood filter lets one in floodPass SYNs of a flooding
// source through (a power of two). Thousands of connection attempts a
// second become tens, which the node refuses as fast as they come.
const floodPass = 64

// maxFloodFiltered bounds the sources marked as flooding at once, and so
// the flood filter's program. Sources past it are still refused at accept.
const maxFloodFiltered = synfilter.MaxSources

// refusalLogInterval is how often refused connections are logged, as one
// summary line: an attacker can cause a refusal per connection attempt.
const refusalLogInterval = time.Minute

// refuseWriteTimeout bounds the refusal written to a fresh socket, whose
// send buffer is empty: the write does not wait in practice.
const refuseWriteTimeout = 100 * time.Millisecond

// sourceOf is what the per-IP limits count by: an IPv4 address, or the /64
// an IPv6 address is in. A household or a host gets a whole /64, so
// counting single IPv6 addresses would give one attacker 2^64 shares.
func sourceOf(ip netip.Addr) netip.Addr {
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// refusal is why a connection was not accepted.
type refusal uint8

const (
	admitted refusal = iota
	refusedPerSource
	refusedFull
)

// connLimiter counts the gateway's open connections, in total and per
// source, and marks the sources that flood.
type connLimiter struct {
	perSource int
	max       int
	reserve   int // the last slots of max, kept for newcomers
	// floodRefusals is the refusals within a second that mark a source
	// as flooding; 0 never marks one.
	floodRefusals int

	mu       sync.Mutex
	open     int
	bySource map[netip.Addr]*sourceConns
	// flooding maps the sources marked as flooding to when their mark
	// ends.
	flooding map[netip.Addr]*floodMark

	// Refusals since the last summary log line, by reason; refusedTotal
	// since the start, for metrics.
	refused, refusedTotal [3]atomic.Int64
	// changed is signalled when a source is marked as flooding.
	changed chan struct{}
}

// sourceConns is one source's open connections, and its refusals in the
// second sec (Unix time).
type sourceConns struct {
	n        int
	sec      int64
	refusals int
}

// floodMark is a source's mark as flooding: until when it holds, and the
// connections of the source admitted in the second sec (Unix time).
type floodMark struct {
	until  time.Time
	sec    int64
	passes int
}

func newConnLimiter(perSource, maxConns, floodRefusals int) *connLimiter {
	return &connLimiter{perSource: perSource, max: maxConns, reserve: maxConns / 8, floodRefusals: max(floodRefusals, 0),
		bySource: make(map[netip.Addr]*sourceConns), flooding: make(map[netip.Addr]*floodMark),
		changed: make(chan struct{}, 1)}
}

// acquire counts a new connection from src, or says why it is refused.
func (l *connLimiter) acquire(src netip.Addr) refusal {
	l.mu.Lock()
	defer l.mu.Unlock()
	sc := l.bySource[src]
	n := 0
	if sc != nil {
		n = sc.n
	}
	why := admitted
	switch {
	case n >= l.perSource:
		why = refusedPerSource
	case l.open >= l.max:
		why = refusedFull
	case l.open >= l.max-l.reserve && n >= newcomerConns:
		why = refusedFull
	}
	if why != admitted {
		l.refused[why].Add(1)
		l.refusedTotal[why].Add(1)
		if sc != nil && l.floodRefusals > 0 {
			l.countRefusal(src, sc, time.Now())
		}
		return why
	}
	if sc == nil {
		sc = &sourceConns{}
		l.bySource[src] = sc
	}
	sc.n++
	l.open++
	if m := l.flooding[src]; m != nil {
		now := time.Now()
		if sec := now.Unix(); m.sec != sec {
			m.sec, m.passes = sec, 0
		}
		if m.passes++; m.passes >= floodKeepPasses {
			m.until = now.Add(floodMemory) // flooding on
		}
	}
	return admitted
}

// countRefusal records a refusal of src, which has open connections, and
// marks it as flooding at floodRefusals within a second. Call with mu
// held.
func (l *connLimiter) countRefusal(src netip.Addr, sc *sourceConns, now time.Time) {
	if sec := now.Unix(); sc.sec != sec {
		sc.sec, sc.refusals = sec, 0
	}
	sc.refusals++
	if m := l.flooding[src]; m != nil {
		m.until = now.Add(floodMemory) // flooding on
		return
	}
	if sc.refusals >= l.floodRefusals && len(l.flooding) < maxFloodFiltered {
		l.flooding[src] = &floodMark{until: now.Add(floodMemory)}
		select {
		case l.changed <- struct{}{}:
		default:
		}
	}
}

// abused counts a session of src closed for abuse (too many errors) as a
// refusal towards marking src as flooding.
func (l *connLimiter) abused(src netip.Addr) {
	if l.floodRefusals <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if sc := l.bySource[src]; sc != nil {
		l.countRefusal(src, sc, time.Now())
	}
}

func (l *connLimiter) release(src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if sc := l.bySource[src]; sc != nil {
		if sc.n--; sc.n <= 0 {
			delete(l.bySource, src)
		}
	}
}

// counts returns the open connections, in total and from src.
func (l *connLimiter) counts(src netip.Addr) (total, fromSrc int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if sc := l.bySource[src]; sc != nil {
		fromSrc = sc.n
	}
	return l.open, fromSrc
}

// floodingCount returns how many sources are marked as flooding.
func (l *connLimiter) floodingCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.flooding)
}

// floodingAt returns the sources marked as flooding at now, sorted, and
// when the earliest mark ends (zero if none is set). Ended marks are
// dropped.
func (l *connLimiter) floodingAt(now time.Time) (srcs []netip.Addr, next time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for src, m := range l.flooding {
		until := m.until
		if !now.Before(until) {
			delete(l.flooding, src)
			continue
		}
		if next.IsZero() || until.Before(next) {
			next = until
		}
		srcs = append(srcs, src)
	}
	slices.SortFunc(srcs, netip.Addr.Compare)
	return srcs, next
}

// limitedListener applies the connection limits to what ln accepts. The
// connections it returns release their slot when closed.
type limitedListener struct {
	net.Listener
	lim *connLimiter
	// refusals holds the bytes written to a refused plain TCP connection,
	// by reason; nil writes nothing.
	refusals *[3][]byte
}

// Accept returns the next connection within the limits. Connections over
// a limit are refused and closed here, and Accept goes on waiting; it
// returns when ln does.
func (ln *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := sourceOf(addrIP(c.RemoteAddr()))
		why := ln.lim.acquire(src)
		if why == admitted {
			return &countedConn{Conn: c, lim: ln.lim}, nil
		}
		if _, plain := c.(*net.TCPConn); plain && ln.refusals != nil {
			c.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
			c.Write(ln.refusals[why])
		}
		c.Close()
	}
}

// countedConn is an accepted connection holding a slot of the limits until
// it is closed.
//
// It is one per idle session, so it keeps nothing it can compute: the
// slot's source comes from the connection's remote address again.
type countedConn struct {
	net.Conn
	lim      *connLimiter
	released atomic.Bool
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	if c.released.CompareAndSwap(false, true) {
		c.lim.release(sourceOf(addrIP(c.RemoteAddr())))
	}
	return err
}

// NetConn returns the accepted connection (the name tls.Conn and gorilla
// use for the same).
func (c *countedConn) NetConn() net.Conn { return c.Conn }

// tcpOf returns the TCP socket behind an accepted connection, or nil for
// TLS and anything else.
func tcpOf(c net.Conn) *net.TCPConn {
	if cc, ok := c.(*countedConn); ok {
		c = cc.Conn
	}
	tc, _ := c.(*net.TCPConn)
	return tc
}

// logRefusals writes a summary of refused connections every interval in
// which there were some, until the server closes.
func (s *Server) logRefusals() {
	defer s.bgWG.Done()
	t := time.NewTicker(refusalLogInterval)
	defer t.Stop()
	for {
		select {
		case <-s.bgCtx.Done():
			return
		case <-t.C:
		}
		perSource := s.limiter.refused[refusedPerSource].Swap(0)
		full := s.limiter.refused[refusedFull].Swap(0)
		if perSource+full == 0 {
			continue
		}
		open, _ := s.limiter.counts(netip.Addr{})
		s.log.Warn("refused client connections", "per_ip_limit", perSource, "node_full", full,
			"open", open, "max_conns", s.cfg.MaxConns, "flooding_sources", s.limiter.floodingCount(),
			"interval", refusalLogInterval)
	}
}

// Channel limits bound the node's channel state: each channel with a local
// member is a GossipSub topic the node subscribes to, with its own mesh,
// queues and goroutines (about 50 KB alone, 66–114 KB in a busy mesh), so
// the per-session limit alone lets one address hold
// MaxSessionsPerIP × MaxChannels of them. They count distinct channels: a
// channel that several sessions are in counts once for their address and
// once for the node. Like MaxConns, the last eighth of MaxNodeChannels is
// kept for addresses in fewer than newcomerChannels channels.
//
// The node's subscriptions are also bounded by what its mesh peers accept
// from it: p2p's peer guard (p2p/guard.go) disconnects and bans for ten
// minutes a peer that is subscribed to more than 1024 topics at once or
// announces new subscriptions faster than a burst of 1024 then 8 a second.
// A node announces its whole subscription list to a peer that connects,
// then each new subscription. So MaxNodeChannels plus the DM inbox shards
// must stay within meshTopicBudget, and a join that gives a channel its
// first local member (a new subscription) spends a token of a node-wide
// bucket and of its source's, paced well under the guard's rate: without
// them, one client joining and leaving new channels in a loop had the node
// banned by every peer within a second.

// meshTopicBudget is the channel and inbox topics a peer lets the node
// subscribe to at once: 1024, what nodes of the previous version allow
// (they do not count the history topic; nodes of this version allow
// p2p.MaxTopicsPerPeer, room for it).
const meshTopicBudget = 1024

// New-subscription pacing. After a peer connects and takes the node's
// subscription list (at most meshTopicBudget − 64 topics, leaving 64 of the
// guard's 1024-token burst), the node-wide bucket spends at most
// subscribeBurst + subscribeRate·t tokens against the guard's 64 + 8·t, with
// room for inbox shards (which linger two minutes after their last member,
// so they churn slowly). One source gets a smaller share, so a single
// address cannot spend the node's budget.
const (
	subscribeBurst       = 32
	subscribeRate        = 4
	sourceSubscribeBurst = 16
	sourceSubscribeRate  = 1
)

// newcomerChannels: while the node is within its reserve of
// MaxNodeChannels, only addresses in fewer channels than this may add one.
const newcomerChannels = 8

// channelLimiter counts the distinct channels with local members, in total
// and per source, and paces new subscriptions.
type channelLimiter struct {
	perSource, max, reserve int

	mu       sync.Mutex
	members  map[string]int                // channel → member sessions
	bySource map[netip.Addr]map[string]int // source → channel → its sessions in it
	node     tokenBucket                   // new subscriptions, node-wide
	// sources holds the per-source subscription buckets. A full bucket
	// is the same as none, so full ones are pruned when the map has
	// doubled since the last pruning.
	sources   map[netip.Addr]*tokenBucket
	pruneSize int
}

func newChannelLimiter(perSource, max int, now time.Time) *channelLimiter {
	return &channelLimiter{perSource: perSource, max: max, reserve: max / 8,
		members: make(map[string]int), bySource: make(map[netip.Addr]map[string]int),
		node:    newTokenBucket(subscribeRate, subscribeBurst, now),
		sources: make(map[netip.Addr]*tokenBucket), pruneSize: 64}
}

// names returns the channels with local members.
func (l *channelLimiter) names() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Collect(maps.Keys(l.members))
}

// join counts a session from src joining channel, or returns the error
// that refuses it.
func (l *channelLimiter) join(src netip.Addr, channel string, now time.Time) *clientError {
	l.mu.Lock()
	defer l.mu.Unlock()
	mine := l.bySource[src]
	if mine[channel] == 0 && len(mine) >= l.perSource {
		return &clientError{code: codeTooManyChannels, channel: channel,
			msg: "the sessions from your IP address are in " + itoa(len(mine)) + " channels together, the most allowed; leave one first"}
	}
	if l.members[channel] == 0 {
		if n := len(l.members); n >= l.max || n >= l.max-l.reserve && len(mine) >= newcomerChannels {
			return &clientError{code: codeNodeFull, channel: channel,
				msg: "this node carries as many channels as it allows (" + itoa(l.max) + "); join one it carries, or use another node"}
		}
		if !l.takeSubscription(src, now) {
			return &clientError{code: codeRateLimited, channel: channel,
				msg: "this node starts at most " + itoa(subscribeRate) + " new channels a second (" + itoa(sourceSubscribeRate) +
					" for your IP address), as its mesh peers require; channel not joined, try again shortly"}
		}
	}
	if mine == nil {
		mine = make(map[string]int, 1)
		l.bySource[src] = mine
	}
	mine[channel]++
	l.members[channel]++
	return nil
}

// takeSubscription spends a token of src's bucket and of the node's.
func (l *channelLimiter) takeSubscription(src netip.Addr, now time.Time) bool {
	b := l.sources[src]
	if b == nil {
		if len(l.sources) >= l.pruneSize {
			for a, sb := range l.sources {
				if sb.full(now) {
					delete(l.sources, a)
				}
			}
			l.pruneSize = max(64, 2*len(l.sources))
		}
		nb := newTokenBucket(sourceSubscribeRate, sourceSubscribeBurst, now)
		b = &nb
		l.sources[src] = b
	}
	if !b.take(now) {
		return false
	}
	if !l.node.take(now) {
		b.refund()
		return false
	}
	return true
}

// leave undoes one join.
func (l *channelLimiter) leave(src netip.Addr, channel string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if mine := l.bySource[src]; mine != nil {
		if mine[channel]--; mine[channel] <= 0 {
			delete(mine, channel)
			if len(mine) == 0 {
				delete(l.bySource, src)
			}
		}
	}
	if l.members[channel]--; l.members[channel] <= 0 {
		delete(l.members, channel)
	}
}

// counts returns the distinct channels with local members, and those of
// src's sessions.
func (l *channelLimiter) counts(src netip.Addr) (total, fromSrc int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.members), len(l.bySource[src])
}
