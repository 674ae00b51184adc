package p2p

import (
	"errors"
	"log/slog"
	"regexp"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Topic namespaces darkchat uses: chat channels, named by the channel-name
// rule of PROTOCOL.md, and DM inbox shards, numbered 0..MaxInboxShards-1.
// Nothing else enters the router's state.
var topicFilter = regexp.MustCompile(`^darkchat/v1/(channel/[a-z0-9][a-z0-9._-]{0,63}|dm/(0|[1-9][0-9]{0,2}|10[01][0-9]|102[0-3]))$`)

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
// refused for peerBanDuration.
const (
	maxTopicsPerPeer = 1024
	subscribeBurst   = 1024
	subscribeRate    = 8
	peerBanDuration  = 10 * time.Minute
	// maxBannedPeers bounds the ban list; the oldest ban goes first.
	maxBannedPeers = 4096
	// guardSummaryInterval is how often the guard logs what it refused:
	// one summary line per interval, never a line per event.
	guardSummaryInterval = 30 * time.Second
)

var errPeerBanned = errors.New("peer banned for abusing the mesh")

// peerGuard holds the per-peer budgets of what remote peers send the
// GossipSub router. Its inspect method runs in GossipSub's event loop and
// must stay cheap. State exists only for connected peers (forget drops it
// on disconnect) and for at most maxBannedPeers bans.
type peerGuard struct {
	log *slog.Logger
	ban func(peer.ID) // disconnects a peer; called without mu held

	mu     sync.Mutex
	peers  map[peer.ID]*peerBudget
	banned map[peer.ID]time.Time // until when
	// counts since the last summary, by reason
	refused map[string]int
	bans    int
}

type peerBudget struct {
	topics    map[string]struct{}
	subTokens float64
	lastFill  time.Time
}

func newPeerGuard(log *slog.Logger, ban func(peer.ID)) *peerGuard {
	return &peerGuard{
		log:     log,
		ban:     ban,
		peers:   make(map[peer.ID]*peerBudget),
		banned:  make(map[peer.ID]time.Time),
		refused: make(map[string]int),
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
	if len(subs) == 0 {
		g.mu.Unlock()
		return nil
	}
	b := g.peers[from]
	if b == nil {
		b = &peerBudget{topics: make(map[string]struct{}), subTokens: subscribeBurst, lastFill: now}
		g.peers[from] = b
	}
	b.subTokens = min(subscribeBurst, b.subTokens+now.Sub(b.lastFill).Seconds()*subscribeRate)
	b.lastFill = now
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

// banLocked refuses from's RPCs and connections for peerBanDuration.
func (g *peerGuard) banLocked(from peer.ID, now time.Time) {
	if _, ok := g.banned[from]; !ok && len(g.banned) >= maxBannedPeers {
		evictOldest(g.banned, func(t time.Time) time.Time { return t })
	}
	g.banned[from] = now.Add(peerBanDuration)
	delete(g.peers, from)
	g.bans++
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
	delete(g.peers, p)
	g.mu.Unlock()
}

// summarize logs what was refused since the last call, if anything.
func (g *peerGuard) summarize() {
	g.mu.Lock()
	refused, bans := g.refused, g.bans
	g.refused, g.bans = make(map[string]int), 0
	banned := len(g.banned)
	g.mu.Unlock()
	if len(refused) == 0 && bans == 0 {
		return
	}
	attrs := []any{"new_bans", bans, "banned_peers", banned}
	for reason, n := range refused {
		attrs = append(attrs, reason, n)
	}
	g.log.Warn("refused abusive peers' RPCs (summary)", attrs...)
}
