package p2p

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"regexp"
	"slices"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"

	"darkchat/internal/synfilter"
)

// Topic namespaces darkchat uses: chat channels (darkchat/v2/channel/),
// named by the channel-name rule of PROTOCOL.md, DM inbox shards
// (darkchat/v1/dm/), numbered 0..MaxInboxShards-1, and the one history
// topic (darkchat/v2/history).
// Nothing else enters the router's state; in particular not the previous
// version's channel topics (darkchat/v1/channel/), which its nodes keep
// announcing: they cost a subscription token each, like any unknown topic.
var topicFilter = regexp.MustCompile(`^darkchat/(v2/(channel/[a-z0-9][a-z0-9._-]{0,63}|history)|v1/dm/(0|[1-9][0-9]{0,2}|10[01][0-9]|102[0-3]))$`)

// Per-peer subscription limits. GossipSub keeps, for every topic a peer
// announces, an entry in its topic tables, and go-libp2p-pubsub has no
// per-peer cap of its own (its subscription-filter wrapper bounds one RPC,
// not a peer): a peer announcing millions of topics would grow the node
// without bound. The guard counts per connection's life:
//
//   - maxTopicsPerPeer topics subscribed at once;
//   - SUBSCRIBE announcements through a token bucket (subscribeBurst at
//     once, subscribeRate a second after that), so subscribe/unsubscribe
//     churn cannot stand in for many topics.
//
// A peer that exceeds either has the RPC dropped and is disconnected and
// refused for peerBanDuration. A node carries at most 960 channels, 64 DM
// shards and the history topic; nodes of the previous version allowed
// 1024 topics and do not count the history topic (their filter drops it).
const (
	maxTopicsPerPeer = 1088
	subscribeBurst   = 1024
	subscribeRate    = 8
	peerBanDuration  = 10 * time.Minute
	// maxBannedPeers bounds the ban list; the oldest ban goes first.
	maxBannedPeers = 4096
	// guardSummaryInterval is how often the guard logs what it refused:
	// one summary line per interval, never a line per event.
	guardSummaryInterval = 30 * time.Second
)

// Per-peer control budgets. GossipSub's control messages (IHAVE, IWANT,
// IDONTWANT message IDs; GRAFT and PRUNE) cost the router a decode and a
// lookup each, and go-libp2p-pubsub caps only how many IHAVEs it acts on
// per heartbeat, not how many it is sent. An honest router sends a few
// thousand IDs per topic per heartbeat (its gossip window) and a GRAFT or
// PRUNE per topic at most per heartbeat; the budgets leave ample room for
// that and cut off a peer that streams them.
const (
	controlIDBurst  = 20_000
	controlIDRate   = 10_000
	meshChangeBurst = 2 * maxTopicsPerPeer
	meshChangeRate  = 32
)

// Ignored messages per peer. A message the validator ignores (over an
// author's, a new key's or probation's budget; stale; a re-signed copy) is
// no proof of malice, but each still costs the node a decode and a place in
// GossipSub's caches for minutes. An honest peer forwards only what passed
// its own node's budgets, which are the same as ours, so what we ignore of
// it stays in the hundreds a second; a peer whose ignored messages run past
// ignoredBurst, then ignoredRate a second, is flooding and is banned.
// A new peer from an address whose peers were banned (suspect) gets
// suspectIgnoredBurst: an attacker rotating peer IDs learns nothing new
// from the next one.
//
// Several peers together can stay under their own budgets and still make
// the node decode and cache tens of thousands of messages a second that it
// then ignores. The node's budget for all peers (nodeIgnoredBurst, then
// nodeIgnoredRate a second) bounds that: once it is spent, a peer whose
// ignored messages in the current second pass heavyIgnoredPerSecond is
// banned. Honest peers, each ignored a few hundred times a second at most,
// are untouched; a flood spread over a few peer IDs is cut off within a
// second or two of the node's budget running out.
const (
	ignoredBurst          = 10_000
	ignoredRate           = 2_000
	suspectIgnoredBurst   = 100
	nodeIgnoredBurst      = 10_000
	nodeIgnoredRate       = 2_000
	heavyIgnoredPerSecond = 500
)

// Per-peer DHT writes (PUT_VALUE and ADD_PROVIDER requests). An honest node
// stores its users' key bundles (one each, republished every 10 minutes)
// and a rendezvous provider record per channel it is in, re-advertised
// every few hours; peers whose records fall near this node's ID send it
// theirs too. The budget is far above that and bans a peer that streams
// writes; the record store's own limits (dhtstore.go) bound all peers
// together.
const (
	dhtWriteBurst = 1024
	dhtWriteRate  = 8
)

// Per-peer validation budgets. Every message a peer forwards waits in
// GossipSub's one validation queue, shared by all peers; a peer that fills
// it delays and then drops everyone's messages, and drops for a full queue
// never reach the validator, so they would never cost the sender its
// score. The guard caps how many of one peer's messages may wait: a peer
// starts untrusted (a small share), earns trust with trustStreak valid
// messages in a row, and loses it with an invalid or ignored one. Invalid messages are strikes;
// maxStrikes within strikeWindow ban the peer (disconnected and refused for
// peerBanDuration), and the first one bans a peer that has not yet sent a
// valid message. New peers from an address that already had
// suspectIPBans peers banned start with the smallest share.
const (
	// pressurePending: budgets apply only while this many messages of all
	// peers wait for validation, so an honest peer's burst on a quiet
	// node is never cut.
	pressurePending     = validateQueueSize / 4
	maxPendingUntrusted = 256
	// trustStreak: a peer is trusted with the whole queue after this many
	// valid messages in a row; an ignored or invalid one starts the count
	// again. A flood that mixes a few valid messages into many ignored
	// ones never earns it.
	trustStreak       = 64
	maxPendingSuspect = 8
	maxPendingTrusted = validateQueueSize
	maxStrikes        = 4 // GossipSub graylists a peer at its 5th invalid message (peer score), after which its RPCs never reach us
	strikeWindow      = time.Minute
	suspectIPBans     = 4
	// maxSuspectIPs bounds the per-address ban counts.
	maxSuspectIPs = 4096
	// pendingStall is how long a peer's pending count may go without a
	// message of it leaving validation before the count is presumed
	// stale and reset: GossipSub drops a few messages without a trace
	// (one already delivered by another path, a topic just left).
	pendingStall = 5 * time.Second
)

// The subscription limits every darkchat node holds its peers to, for
// whoever paces this node's own subscriptions (the gateway).
const (
	MaxTopicsPerPeer      = maxTopicsPerPeer
	SubscribeRatePerPeer  = subscribeRate
	SubscribeBurstPerPeer = subscribeBurst
)

var errPeerBanned = errors.New("peer banned for abusing the mesh")

// peerGuard holds the per-peer budgets of what remote peers send the
// GossipSub router. Its inspect method runs in GossipSub's event loop and
// must stay cheap. State exists only for connected peers (forget drops it
// on disconnect) and for at most maxBannedPeers bans.
type peerGuard struct {
	log *slog.Logger
	ban func(peer.ID) // disconnects a peer; called without mu held

	ipOf func(peer.ID) string // the remote IP of a connected peer, "" if unknown

	mu           sync.Mutex
	totalPending int // of all peers
	peers        map[peer.ID]*peerBudget
	banned       map[peer.ID]time.Time // until when
	// ipBans counts bans per remote IP within peerBanDuration, for the
	// budget of new peers from that address.
	ipBans map[string]*ipBanCount
	// the node's budget of ignored messages, all peers together
	nodeIgnoredTokens   float64
	nodeIgnoredLastFill time.Time
	// thinnedChanged is signalled when an address is newly thinned.
	thinnedChanged chan struct{}
	// counts since the last summary, by reason
	refused map[string]int
	bans    int
	// readWaits counts the times a peer's stream was not read because
	// its messages waited for validation (back-pressure), since the last
	// summary.
	readWaits int
}

type peerBudget struct {
	topics    map[string]struct{}
	subTokens float64
	lastFill  time.Time
	// control budgets, refilled at lastFill too
	idTokens, meshTokens float64
	// DHT writes, refilled at dhtLastFill
	dhtTokens   float64
	dhtLastFill time.Time
	// ignored messages, refilled at ignoredLastFill
	ignoredTokens   float64
	ignoredLastFill time.Time
	// ignored messages in the second that began at ignoredSecond
	ignoredThisSecond int
	ignoredSecond     time.Time

	ip           string
	pending      int       // messages waiting for validation
	lastProgress time.Time // when one of them last left validation
	trusted      bool      // its last trustStreak messages were valid
	proven       bool      // it has sent a valid message on this connection
	streak       int       // valid messages in a row
	suspect      bool      // from an address with suspectIPBans bans
	strikes      int       // invalid messages in the current window
	strikeStart  time.Time
	// room is closed when pending falls below readShare; a reader of the
	// peer's GossipSub stream waits on it (readGate). nil: nobody waits.
	room chan struct{}
}

type ipBanCount struct {
	n    int
	last time.Time
	// accept tokens: new inbound connections from this address while it
	// is suspect (see allowAccept).
	tokens   float64
	lastFill time.Time
	// thinned: it ran out of accept tokens, and the SYN filter thins out
	// its connection attempts until peerBanDuration after its last ban.
	thinned bool
}

// Inbound connections from an address whose peers were banned: each costs
// the node a security handshake before the gater can see the new peer ID,
// so a banned attacker reconnecting under fresh IDs in a loop would make
// the node pay for every try. Such an address gets suspectAcceptBurst
// connections at once and suspectAcceptRate a second after that, less once
// its bans pass suspectIPBans (acceptRate), until peerBanDuration after its
// last ban. Connections already open (an honest
// node behind the same address) are not touched.
//
// An address that runs out of those tokens is connecting in a loop the
// moment it is refused; refusing each try would still cost the node an
// accept and a close, and the attacker nothing but a retry. Its SYNs are
// thinned out in the kernel instead (internal/synfilter, on libp2p's TCP
// listening sockets): one in thinnedSYNPass gets through, and the others
// leave its kernel waiting a retransmission timeout, a second and more.
const (
	suspectAcceptBurst   = 4
	suspectAcceptRate    = 2
	minSuspectAcceptRate = 0.1
	thinnedSYNPass       = 8
)

func newPeerGuard(log *slog.Logger, ban func(peer.ID), ipOf func(peer.ID) string) *peerGuard {
	return &peerGuard{
		log:     log,
		ban:     ban,
		ipOf:    ipOf,
		peers:   make(map[peer.ID]*peerBudget),
		banned:  make(map[peer.ID]time.Time),
		ipBans:  make(map[string]*ipBanCount),
		refused: make(map[string]int),

		thinnedChanged: make(chan struct{}, 1),
	}
}

// budgetLocked returns from's budget, creating it on first sight.
func (g *peerGuard) budgetLocked(from peer.ID, now time.Time) *peerBudget {
	b := g.peers[from]
	if b == nil {
		b = &peerBudget{topics: make(map[string]struct{}), subTokens: subscribeBurst, idTokens: controlIDBurst, meshTokens: meshChangeBurst, lastFill: now, lastProgress: now,
			dhtTokens: dhtWriteBurst, dhtLastFill: now, ignoredTokens: ignoredBurst, ignoredLastFill: now}
		b.ip = g.ipOf(from)
		if c := g.ipBans[b.ip]; b.ip != "" && c != nil && c.n >= suspectIPBans && now.Sub(c.last) < peerBanDuration {
			b.suspect = true
			b.ignoredTokens = suspectIgnoredBurst
		}
		g.peers[from] = b
	}
	return b
}

// Back-pressure on the mesh. GossipSub has none: what a peer sends while
// the validation queue is full is dropped, and a node that verifies more
// slowly than its peers publish (a receiver with many local sessions, or
// a slower machine) would lose messages that its peers' gateways had
// answered ok. Instead, the node stops reading a peer's GossipSub stream
// while readShare of that peer's messages wait for validation. The peer's
// writes then block, its queue for this node fills, and its publishers
// wait for room (routerPeers.waitForRoom), so the sending gateways slow
// their clients down rather than answer ok for messages that are then
// dropped. A peer is never read from for longer than pendingStall without
// progress: one that stops being validated (its messages dropped
// elsewhere) is not held forever.
const (
	readShareTrusted   = 512
	readShareUntrusted = maxPendingUntrusted / 2
	readShareSuspect   = maxPendingSuspect / 2
)

func (b *peerBudget) readShare() int {
	switch {
	case b.trusted:
		return readShareTrusted
	case b.suspect:
		return readShareSuspect
	default:
		return readShareUntrusted
	}
}

// readGate waits, within ctx and at most pendingStall, while readShare of
// p's messages wait for validation; GossipSub's reader of p's stream calls
// it before each read (gatedStream).
func (g *peerGuard) readGate(ctx context.Context, p peer.ID) {
	g.mu.Lock()
	b := g.peers[p]
	if b == nil || b.pending < b.readShare() {
		g.mu.Unlock()
		return
	}
	if now := time.Now(); now.Sub(b.lastProgress) > pendingStall {
		// GossipSub drops some messages without a trace (a topic just
		// left, one delivered by another path): the count is stale.
		g.totalPending -= b.pending
		b.pending = 0
		b.lastProgress = now
		g.mu.Unlock()
		return
	}
	if b.room == nil {
		b.room = make(chan struct{})
	}
	room := b.room
	g.readWaits++
	g.mu.Unlock()
	t := time.NewTimer(pendingStall)
	defer t.Stop()
	select {
	case <-room:
	case <-ctx.Done():
	case <-t.C:
	}
}

// openRoomLocked wakes a reader waiting for b's pending count to fall.
func (b *peerBudget) openRoomLocked() {
	if b.room != nil && b.pending < b.readShare() {
		close(b.room)
		b.room = nil
	}
}

func (b *peerBudget) maxPending() int {
	switch {
	case b.trusted:
		return maxPendingTrusted
	case b.suspect:
		return maxPendingSuspect
	default:
		return maxPendingUntrusted
	}
}

// inspect is GossipSub's app-specific RPC inspector: an error drops the RPC.
func (g *peerGuard) inspect(from peer.ID, rpc *pubsub.RPC) error {
	subs := rpc.GetSubscriptions()
	now := time.Now()
	g.mu.Lock()
	if until, ok := g.banned[from]; ok {
		if now.Before(until) {
			g.refused["banned peer"]++
			g.mu.Unlock()
			return errPeerBanned
		}
		delete(g.banned, from)
	}
	msgs := len(rpc.GetPublish())
	ctl := rpc.GetControl()
	if len(subs) == 0 && msgs == 0 && ctl == nil {
		g.mu.Unlock()
		return nil
	}
	b := g.budgetLocked(from, now)
	elapsed := now.Sub(b.lastFill).Seconds()
	b.subTokens = min(subscribeBurst, b.subTokens+elapsed*subscribeRate)
	b.idTokens = min(controlIDBurst, b.idTokens+elapsed*controlIDRate)
	b.meshTokens = min(meshChangeBurst, b.meshTokens+elapsed*meshChangeRate)
	b.lastFill = now
	if ctl != nil {
		ids := 0
		for _, c := range ctl.GetIhave() {
			ids += len(c.GetMessageIDs())
		}
		for _, c := range ctl.GetIwant() {
			ids += len(c.GetMessageIDs())
		}
		for _, c := range ctl.GetIdontwant() {
			ids += len(c.GetMessageIDs())
		}
		b.idTokens -= float64(ids)
		b.meshTokens -= float64(len(ctl.GetGraft()) + len(ctl.GetPrune()))
		var violation string
		switch {
		case b.idTokens < 0:
			violation = "gossip message IDs"
		case b.meshTokens < 0:
			violation = "GRAFT and PRUNE"
		}
		if violation != "" {
			g.refused[violation]++
			g.banLocked(from, now)
			g.mu.Unlock()
			g.ban(from)
			return errors.New("p2p: peer exceeded its " + violation + " budget")
		}
	}
	if msgs > 0 {
		if b.pending > 0 && now.Sub(b.lastProgress) > pendingStall {
			g.totalPending -= b.pending
			b.pending = 0
			b.openRoomLocked()
		}
		if g.totalPending+msgs > pressurePending && b.pending+msgs > b.maxPending() {
			// Dropped before it costs a verification. An honest peer
			// that outruns its share under pressure loses these
			// messages to us, but not to the channel: GossipSub's
			// gossip offers them again and our other mesh peers
			// forward them. A peer that already sent an invalid
			// message gets a strike for it.
			g.refused["validation budget"] += msgs
			if b.strikes > 0 && g.strikeLocked(from, b, now) {
				g.mu.Unlock()
				g.ban(from)
				return errPeerBanned
			}
			g.mu.Unlock()
			return errors.New("p2p: peer exceeded its validation budget")
		}
		if b.pending == 0 {
			b.lastProgress = now
		}
		b.pending += msgs
		g.totalPending += msgs
	}
	if len(subs) == 0 {
		g.mu.Unlock()
		return nil
	}
	var violation string
	for _, s := range subs {
		topic := s.GetTopicid()
		if !s.GetSubscribe() {
			delete(b.topics, topic)
			continue
		}
		if _, ok := b.topics[topic]; ok {
			continue
		}
		if !topicFilter.MatchString(topic) {
			// The subscription filter drops it; it costs no state, but a
			// token all the same, so junk cannot be announced for free.
			if b.subTokens < 1 {
				violation = "subscription rate"
				break
			}
			b.subTokens--
			continue
		}
		switch {
		case b.subTokens < 1:
			violation = "subscription rate"
		case len(b.topics) >= maxTopicsPerPeer:
			violation = "topics per peer"
		}
		if violation != "" {
			break
		}
		b.subTokens--
		b.topics[topic] = struct{}{}
	}
	if violation == "" {
		g.mu.Unlock()
		return nil
	}
	g.refused[violation]++
	g.banLocked(from, now)
	g.mu.Unlock()
	g.ban(from)
	return errors.New("p2p: peer exceeded its " + violation + " budget")
}

// validated records that one of from's messages left validation, valid
// or not. It is called from GossipSub's tracer (its event loop and its
// validation worker).
func (g *peerGuard) validated(from peer.ID, valid bool) {
	now := time.Now()
	g.mu.Lock()
	b := g.peers[from]
	if b == nil {
		g.mu.Unlock()
		return
	}
	g.leftValidationLocked(b, now)
	if valid {
		b.proven = true
		b.streak++
		b.trusted = b.streak >= trustStreak
		g.mu.Unlock()
		return
	}
	b.trusted, b.streak = false, 0
	banned := g.strikeLocked(from, b, now)
	g.mu.Unlock()
	if banned {
		g.ban(from)
	}
}

// strikeLocked counts one strike against from and bans it at maxStrikes
// within strikeWindow; it reports whether it banned.
func (g *peerGuard) strikeLocked(from peer.ID, b *peerBudget, now time.Time) bool {
	if now.Sub(b.strikeStart) > strikeWindow {
		b.strikes, b.strikeStart = 0, now
	}
	b.strikes++
	// A peer that has never sent a valid message gets no second chance:
	// honest nodes forward only what they validated, so its first
	// invalid message is enough, and an attacker rotating peer IDs costs
	// the node one verification per ID.
	if b.strikes < maxStrikes && b.proven {
		return false
	}
	g.refused["invalid messages"] += b.strikes
	g.banLocked(from, now)
	return true
}

// dhtWrite spends one of from's DHT-write tokens; past its budget the peer
// is banned and dhtWrite reports false. It is called from the DHT's
// request handlers, one goroutine per stream.
func (g *peerGuard) dhtWrite(from peer.ID) bool {
	now := time.Now()
	g.mu.Lock()
	if until, ok := g.banned[from]; ok && now.Before(until) {
		g.mu.Unlock()
		return false
	}
	b := g.budgetLocked(from, now)
	b.dhtTokens = min(dhtWriteBurst, b.dhtTokens+now.Sub(b.dhtLastFill).Seconds()*dhtWriteRate)
	b.dhtLastFill = now
	if b.dhtTokens >= 1 {
		b.dhtTokens--
		g.mu.Unlock()
		return true
	}
	g.refused["DHT writes"]++
	g.banLocked(from, now)
	g.mu.Unlock()
	g.ban(from)
	return false
}

// leftValidationLocked records that one of b's messages left the
// validation queue at now.
func (g *peerGuard) leftValidationLocked(b *peerBudget, now time.Time) {
	if b.pending > 0 {
		b.pending--
		g.totalPending--
	}
	b.lastProgress = now
	b.openRoomLocked()
}

// ignored records that one of from's messages was ignored by the validator
// (over an author's or a new key's budget, stale, a re-signed copy). It is
// no strike, but the peer is no longer trusted with the whole validation
// queue: a peer forwarding a flood of valid messages that nodes ignore
// would otherwise fill it ahead of everyone else's.
func (g *peerGuard) ignored(from peer.ID) { g.ignoredAt(from, time.Now()) }

func (g *peerGuard) ignoredAt(from peer.ID, now time.Time) {
	g.mu.Lock()
	b := g.peers[from]
	if b == nil {
		g.mu.Unlock()
		return
	}
	g.leftValidationLocked(b, now)
	b.trusted, b.streak = false, 0
	burst := float64(ignoredBurst)
	if b.suspect {
		burst = suspectIgnoredBurst
	}
	b.ignoredTokens = min(burst, b.ignoredTokens+now.Sub(b.ignoredLastFill).Seconds()*ignoredRate)
	b.ignoredLastFill = now
	b.ignoredTokens--
	if now.Sub(b.ignoredSecond) >= time.Second {
		b.ignoredSecond, b.ignoredThisSecond = now, 0
	}
	b.ignoredThisSecond++
	if g.nodeIgnoredLastFill.IsZero() {
		g.nodeIgnoredTokens, g.nodeIgnoredLastFill = nodeIgnoredBurst, now
	}
	g.nodeIgnoredTokens = min(nodeIgnoredBurst, g.nodeIgnoredTokens+now.Sub(g.nodeIgnoredLastFill).Seconds()*nodeIgnoredRate)
	g.nodeIgnoredLastFill = now
	g.nodeIgnoredTokens = max(g.nodeIgnoredTokens-1, 0)
	switch {
	case b.ignoredTokens < 0:
		g.refused["ignored messages"] += ignoredBurst
	case g.nodeIgnoredTokens < 1 && b.ignoredThisSecond > heavyIgnoredPerSecond:
		g.refused["ignored messages"] += b.ignoredThisSecond
	default:
		g.mu.Unlock()
		return
	}
	g.banLocked(from, now)
	g.mu.Unlock()
	g.ban(from)
}

// left records that one of from's messages was dropped before validation
// (a duplicate, or a full queue), so it no longer waits.
func (g *peerGuard) left(from peer.ID) {
	g.mu.Lock()
	if b := g.peers[from]; b != nil && b.pending > 0 {
		b.pending--
		g.totalPending--
		b.lastProgress = time.Now()
		b.openRoomLocked()
	}
	g.mu.Unlock()
}

// banLocked refuses from's RPCs and connections for peerBanDuration, and
// counts the ban against its address.
func (g *peerGuard) banLocked(from peer.ID, now time.Time) {
	if _, ok := g.banned[from]; !ok && len(g.banned) >= maxBannedPeers {
		evictOldest(g.banned, func(t time.Time) time.Time { return t })
	}
	g.banned[from] = now.Add(peerBanDuration)
	ip := ""
	if b := g.peers[from]; b != nil {
		ip = b.ip
	}
	if ip != "" {
		c := g.ipBans[ip]
		if c == nil {
			if len(g.ipBans) >= maxSuspectIPs {
				evictOldest(g.ipBans, func(c *ipBanCount) time.Time { return c.last })
			}
			c = &ipBanCount{}
			g.ipBans[ip] = c
		}
		if now.Sub(c.last) > peerBanDuration {
			c.n, c.thinned = 0, false
		}
		c.n++
		c.last = now
	}
	if b := g.peers[from]; b != nil {
		g.totalPending -= b.pending
	}
	delete(g.peers, from)
	g.bans++
}

// allowAccept reports whether a new inbound connection from ip may
// proceed to its handshake (for the connection gater).
func (g *peerGuard) allowAccept(ip string) bool { return g.allowAcceptAt(ip, time.Now()) }

// acceptRate is how many new connections a second an address gets that
// had the given number of bans within peerBanDuration: suspectAcceptRate up to suspectIPBans
// bans, then less in proportion, so an address that keeps earning bans
// (dozens a minute from a rotating attacker) costs the node ever fewer
// handshakes, down to minSuspectAcceptRate.
func acceptRate(bans int) float64 {
	if bans <= suspectIPBans {
		return suspectAcceptRate
	}
	return max(minSuspectAcceptRate, suspectAcceptRate*suspectIPBans/float64(bans))
}

func (g *peerGuard) allowAcceptAt(ip string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.ipBans[ip]
	if c == nil || now.Sub(c.last) > peerBanDuration {
		return true
	}
	if c.lastFill.IsZero() {
		c.tokens, c.lastFill = suspectAcceptBurst, now
	}
	c.tokens = min(suspectAcceptBurst, c.tokens+now.Sub(c.lastFill).Seconds()*acceptRate(c.n))
	c.lastFill = now
	if c.tokens < 1 {
		g.refused["connections from a suspect address"]++
		if !c.thinned {
			c.thinned = true
			select {
			case g.thinnedChanged <- struct{}{}:
			default:
			}
		}
		return false
	}
	c.tokens--
	return true
}

// thinnedAt returns the addresses whose SYNs are thinned out at now, the
// most recently banned first, at most synfilter.MaxSources of them, and
// when the next of them stops being thinned (zero if none).
func (g *peerGuard) thinnedAt(now time.Time) ([]netip.Addr, time.Time) {
	g.mu.Lock()
	type entry struct {
		addr netip.Addr
		last time.Time
	}
	var es []entry
	for ip, c := range g.ipBans {
		if !c.thinned || now.Sub(c.last) > peerBanDuration {
			continue
		}
		if a, err := netip.ParseAddr(ip); err == nil {
			es = append(es, entry{a.Unmap(), c.last})
		}
	}
	g.mu.Unlock()
	slices.SortFunc(es, func(a, b entry) int { return b.last.Compare(a.last) })
	es = es[:min(len(es), synfilter.MaxSources)]
	var next time.Time
	addrs := make([]netip.Addr, 0, len(es))
	for _, e := range es {
		addrs = append(addrs, e.addr)
		if until := e.last.Add(peerBanDuration); next.IsZero() || until.Before(next) {
			next = until
		}
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	return addrs, next
}

// isBanned reports whether p is banned now (for the connection gater).
func (g *peerGuard) isBanned(p peer.ID) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.banned[p]
	return ok && time.Now().Before(until)
}

// forget drops a disconnected peer's budget: its subscriptions went with
// its connection.
func (g *peerGuard) forget(p peer.ID) {
	g.mu.Lock()
	if b := g.peers[p]; b != nil {
		g.totalPending -= b.pending
		b.pending = 0
		b.openRoomLocked()
	}
	delete(g.peers, p)
	g.mu.Unlock()
}

// count adds k events of reason to the next summary.
func (g *peerGuard) count(reason string, k int) {
	g.mu.Lock()
	g.refused[reason] += k
	g.mu.Unlock()
}

// summarize logs what was refused since the last call, if anything.
func (g *peerGuard) summarize() {
	g.mu.Lock()
	refused, bans, waits := g.refused, g.bans, g.readWaits
	g.refused, g.bans, g.readWaits = make(map[string]int), 0, 0
	banned := len(g.banned)
	g.mu.Unlock()
	if waits > 0 {
		g.log.Info("back-pressure: peers' streams went unread while their messages waited for validation (this node verifies more slowly than they send)", "pauses", waits)
	}
	if len(refused) == 0 && bans == 0 {
		return
	}
	attrs := []any{"new_bans", bans, "banned_peers", banned}
	for reason, n := range refused {
		attrs = append(attrs, reason, n)
	}
	g.log.Warn("peer guard summary: refused and repaired since the last summary", attrs...)
}
