package gateway

import (
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"darkchat/identity"
	"darkchat/p2p"
)

// AuthorLimit bounds how fast one author's channel messages pass a node's
// mesh validator, whichever gateway or peer they came through. The gateway
// limits each session (Config.Rate), but a custom client or a peer that
// bypasses the gateways publishes straight into the mesh; every node
// applies this limit to every message it verifies, so such a flood under
// one key stops at the first honest node. A message over the limit is
// ignored, not rejected: the peer that forwarded it may have seen the
// author's messages in another order, and is not at fault.
type AuthorLimit struct {
	// Rate is an author's sustained messages a second; 0 disables the
	// limit (benchmarks).
	Rate float64
	// Burst is how many an author may send at once.
	Burst int
}

// Defaults: well above what one person types, and above a few sessions of
// one key at the gateway's own per-session limit (DefaultRate, DefaultBurst).
const (
	DefaultAuthorRate  = 20
	DefaultAuthorBurst = 100
	// maxTrackedAuthors bounds the authors whose buckets a node keeps
	// (about 100 bytes each); when it is full, idle authors are dropped,
	// and if none is idle a new author's message is ignored until one is.
	maxTrackedAuthors = 1 << 16
	// authorSweepEvery bounds how often a full table is swept.
	authorSweepEvery = time.Second
)

// New authors. Keys cost nothing to make, so the per-author limit alone
// cannot stop a flood under many fresh keys from a custom peer. A key this
// node has not seen yet (no bucket) is admitted only within two budgets,
// checked before its signature is verified:
//
//   - the forwarding peer's: newAuthorBurst at once, newAuthorRate a second
//     after that;
//   - the node's: nodeNewAuthorBurst at once, nodeNewAuthorRate a second,
//     so rotating peer IDs do not multiply the peer budget.
//
// Over either, the message is ignored, never held against the peer: an
// honest relay forwards whatever new keys an attacker made it admit, and a
// node that has just joined a busy channel hears many keys new to it, so
// overuse is no proof of malice (banning on it would let an attacker get
// honest relays banned). Honest peers forward new keys at the pace people
// join a channel; a node that has just joined a busy channel learns its
// active authors within the burst. A local session's new key is exempt:
// the gateway limits sessions per address and logins.
const (
	newAuthorBurst     = 64
	newAuthorRate      = 16
	nodeNewAuthorBurst = 256
	nodeNewAuthorRate  = 64
	// Probation: for probationPeriod after a node first saw a key, the
	// key's messages also spend the probation budget of whoever
	// introduced it: the forwarding peer's (peerProbationBurst, then
	// peerProbationRate a second, for all the keys it introduced
	// together) and the node's for all peers (nodeProbationBurst,
	// nodeProbationRate; when it is spent, introducers that used more
	// than half of their own are cut first); over them the messages are
	// ignored. A peer
	// cannot introduce a thousand keys and then flood at a thousand
	// times the author rate. Keys of this node's own sessions spend
	// localProbation*, a little less than what every other node allows
	// this node as their introducer, so a local sender is told
	// (rate_limited) before other nodes would drop its messages.
	probationPeriod     = 10 * time.Minute
	peerProbationBurst  = 200
	peerProbationRate   = 200
	nodeProbationBurst  = 400
	nodeProbationRate   = 200
	localProbationBurst = 160
	localProbationRate  = 160
	// maxTrackedPeers bounds the per-peer new-author budgets kept; when
	// it is full, budgets back at their burst are dropped, and if none
	// is, a new peer's new keys are ignored until one is.
	maxTrackedPeers = 4096
)

// errAuthorLimited marks a message refused by the author limit; the
// gateway reports it to the sender as rate_limited.
var errAuthorLimited = errors.New("author limit")

// DefaultAuthorLimit is the limit darkchatd applies unless told otherwise.
var DefaultAuthorLimit = AuthorLimit{Rate: DefaultAuthorRate, Burst: DefaultAuthorBurst}

type authorBucket struct {
	tokens float64
	last   time.Time
	// introducer is the peer that forwarded the author's first message
	// here (empty: a local session), and since is when; until
	// probationPeriod later, the author's messages also spend the
	// introducer's probation budget.
	introducer peer.ID
	since      time.Time
}

// peerBudget is what one forwarding peer may spend: new keys it
// introduces, and messages of the keys it introduced while they are on
// probation.
type peerBudget struct {
	newKeys, probation authorBucket
	// presenceKeys: keys new to the node whose presence records the
	// peer forwards (admitPresence).
	presenceKeys authorBucket
}

// authorLimiter holds one token bucket per recently active author.
type authorLimiter struct {
	lim AuthorLimit

	mu        sync.Mutex
	buckets   map[identity.PublicKey]*authorBucket
	lastSweep time.Time

	// new-author budgets: per forwarding peer, and the node's
	peers         map[peer.ID]*peerBudget
	lastPeerSweep time.Time
	node          authorBucket // new keys from all peers
	nodePresence  authorBucket // new keys' presence records from all peers
	// probation budgets: of the keys all peers introduced, and of those
	// local sessions introduced
	nodeProbation, localProbation authorBucket
}

func newAuthorLimiter(lim AuthorLimit) *authorLimiter {
	if lim.Rate <= 0 {
		return nil
	}
	return &authorLimiter{
		lim:            lim,
		buckets:        make(map[identity.PublicKey]*authorBucket),
		peers:          make(map[peer.ID]*peerBudget),
		node:           authorBucket{tokens: nodeNewAuthorBurst},
		nodePresence:   authorBucket{tokens: nodeNewPresenceKeyBurst},
		nodeProbation:  authorBucket{tokens: nodeProbationBurst},
		localProbation: authorBucket{tokens: localProbationBurst},
	}
}

// admit checks, before a message's signature is verified, that its author
// is already known or may be introduced by from (empty: a local
// publication). It spends a new-author token of from and of the node for a
// new one; the author's own bucket is created by allow, once the signature
// holds.
func (l *authorLimiter) admit(from peer.ID, author identity.PublicKey, now time.Time) error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if a, ok := l.buckets[author]; ok {
		if now.Sub(a.since) >= probationPeriod {
			return nil
		}
		return l.probationLocked(a.introducer, now)
	}
	if from == "" {
		return nil // a local session's new key: its bucket is created by allow
	}
	return l.spendNewKeyLocked(from, now, messageKeys)
}

// newKeyBudget is one kind of new-key budget: the forwarding peer's
// bucket and the node's, their limits, and how a refusal reads.
type newKeyBudget struct {
	peer                func(*peerBudget) *authorBucket
	node                func(*authorLimiter) *authorBucket
	peerBurst, peerRate int
	nodeBurst, nodeRate int
	peerWhat, nodeWhat  string
}

var (
	messageKeys = newKeyBudget{
		peer:      func(b *peerBudget) *authorBucket { return &b.newKeys },
		node:      func(l *authorLimiter) *authorBucket { return &l.node },
		peerBurst: newAuthorBurst, peerRate: newAuthorRate, nodeBurst: nodeNewAuthorBurst, nodeRate: nodeNewAuthorRate,
		peerWhat: "peer introduces new keys", nodeWhat: "new keys arrive",
	}
	presenceKeys = newKeyBudget{
		peer:      func(b *peerBudget) *authorBucket { return &b.presenceKeys },
		node:      func(l *authorLimiter) *authorBucket { return &l.nodePresence },
		peerBurst: newPresenceKeyBurst, peerRate: newPresenceKeyRate, nodeBurst: nodeNewPresenceKeyBurst, nodeRate: nodeNewPresenceKeyRate,
		peerWhat: "peer forwards presence of new keys", nodeWhat: "presence of new keys arrives",
	}
)

// spendNewKeyLocked spends a token of from's and of the node's budget of
// kind for a key new to the node, or says why it cannot.
func (l *authorLimiter) spendNewKeyLocked(from peer.ID, now time.Time, kind newKeyBudget) error {
	node := kind.node(l)
	if node.last.IsZero() {
		node.last = now
	}
	refill(node, now, float64(kind.nodeBurst), float64(kind.nodeRate))
	pb := l.peerLocked(from, now)
	if pb == nil {
		return fmt.Errorf("%w: new keys from %d peers at once, the most this node tracks: %w", errAuthorLimited, len(l.peers), p2p.ErrIgnore)
	}
	b := kind.peer(pb)
	refill(b, now, float64(kind.peerBurst), float64(kind.peerRate))
	if b.tokens < 1 {
		return fmt.Errorf("%w: %s faster than %d a second (burst %d): %w", errAuthorLimited, kind.peerWhat, kind.peerRate, kind.peerBurst, p2p.ErrIgnore)
	}
	if node.tokens < 1 {
		return fmt.Errorf("%w: %s faster than %d a second (burst %d) at this node: %w", errAuthorLimited, kind.nodeWhat, kind.nodeRate, kind.nodeBurst, p2p.ErrIgnore)
	}
	b.tokens--
	node.tokens--
	return nil
}

// Presence records of keys new to the node. A channel's members announce
// themselves when they join, and a node that has just joined a busy
// channel, or that links two groups of its nodes, hears hundreds of keys
// new to it within seconds: a thousand-member channel filling up through
// one peer, or a table of up to 256 records republished by a node that
// met another group. The new-key budgets above, sized for messages, would
// ignore most of them, and GossipSub marks each record seen before the
// validator runs, so its other copies would be dropped and the node would
// miss those members until their next refresh (2 minutes). Presence
// records have budgets of their own: one costs a verification (about
// 40 µs: nodeNewPresenceKeyRate is 2% of a core) and a member-table entry,
// bounded per channel and node, and a key's presence is limited to one
// record every 20 s (presenceValidator.allow). They spend no probation
// budget, which bounds messages: a key first seen through its presence
// still has its messages on probation under that introducer.
const (
	newPresenceKeyBurst     = 1024
	newPresenceKeyRate      = 256
	nodeNewPresenceKeyBurst = 4096
	nodeNewPresenceKeyRate  = 512
)

// admitPresence is admit for a presence record: a key already known is
// admitted without spending probation, and a new one within the presence
// budgets of from and of the node.
func (l *authorLimiter) admitPresence(from peer.ID, author identity.PublicKey, now time.Time) error {
	if l == nil || from == "" {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.buckets[author]; ok {
		return nil
	}
	return l.spendNewKeyLocked(from, now, presenceKeys)
}

// probationLocked spends a probation token of the keys introducer (empty:
// local sessions) introduced.
func (l *authorLimiter) probationLocked(introducer peer.ID, now time.Time) error {
	errOver := func(rate, burst int) error {
		return fmt.Errorf("%w: keys new to this node send faster than %d messages a second together (burst %d) in their first %v: %w",
			errAuthorLimited, rate, burst, probationPeriod, p2p.ErrIgnore)
	}
	if introducer == "" {
		refill(&l.localProbation, now, localProbationBurst, localProbationRate)
		if l.localProbation.tokens < 1 {
			return errOver(localProbationRate, localProbationBurst)
		}
		l.localProbation.tokens--
		return nil
	}
	ib := l.peerLocked(introducer, now)
	if ib == nil {
		return fmt.Errorf("%w: new keys from %d peers at once, the most this node tracks: %w", errAuthorLimited, len(l.peers), p2p.ErrIgnore)
	}
	refill(&ib.probation, now, peerProbationBurst, peerProbationRate)
	refill(&l.nodeProbation, now, nodeProbationBurst, nodeProbationRate)
	if ib.probation.tokens < 1 {
		return errOver(peerProbationRate, peerProbationBurst)
	}
	// The node's budget spent, introducers that spent more than half of
	// their own are cut first: a flood comes from the heavy ones, and an
	// honest introducer's few new users keep talking through it.
	if l.nodeProbation.tokens < 1 && ib.probation.tokens < peerProbationBurst/2 {
		return errOver(nodeProbationRate, nodeProbationBurst)
	}
	ib.probation.tokens--
	l.nodeProbation.tokens = max(l.nodeProbation.tokens-1, 0)
	return nil
}

// refill adds what b earned since its last use, up to burst.
func refill(b *authorBucket, now time.Time, burst, rate float64) {
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
}

// fullAt reports whether b, refilled at rate a second, is back at burst
// by now: a bucket a sweep can forget.
func (b *authorBucket) fullAt(now time.Time, burst, rate float64) bool {
	return b.tokens+now.Sub(b.last).Seconds()*rate >= burst
}

// peerLocked returns p's budget, creating it (full) on first sight; nil
// when the table is full of peers with spent budgets.
func (l *authorLimiter) peerLocked(p peer.ID, now time.Time) *peerBudget {
	if b := l.peers[p]; b != nil {
		return b
	}
	if len(l.peers) >= maxTrackedPeers && !l.sweepPeersLocked(now) {
		return nil
	}
	b := &peerBudget{
		newKeys:      authorBucket{tokens: newAuthorBurst, last: now},
		probation:    authorBucket{tokens: peerProbationBurst, last: now},
		presenceKeys: authorBucket{tokens: newPresenceKeyBurst, last: now},
	}
	l.peers[p] = b
	return b
}

// sweepPeersLocked drops the per-peer budgets back at their burst and
// reports whether that made room; at most once per authorSweepEvery.
func (l *authorLimiter) sweepPeersLocked(now time.Time) bool {
	return sweepFull(l.peers, &l.lastPeerSweep, now, maxTrackedPeers, func(b *peerBudget) bool {
		return b.newKeys.fullAt(now, newAuthorBurst, newAuthorRate) &&
			b.probation.fullAt(now, peerProbationBurst, peerProbationRate) &&
			b.presenceKeys.fullAt(now, newPresenceKeyBurst, newPresenceKeyRate)
	})
}

// sweepFull deletes from m the entries full reports back at their burst,
// at most once per authorSweepEvery (*last is when it last did), and
// reports whether m then holds fewer than limit: a flood of fresh keys
// costs one scan a second.
func sweepFull[K comparable, V any](m map[K]V, last *time.Time, now time.Time, limit int, full func(V) bool) bool {
	if now.Sub(*last) < authorSweepEvery {
		return false
	}
	*last = now
	maps.DeleteFunc(m, func(_ K, v V) bool { return full(v) })
	return len(m) < limit
}

// allow takes a token from author's bucket, or says why it cannot. A new
// author's bucket records from as its introducer.
func (l *authorLimiter) allow(from peer.ID, author identity.PublicKey, now time.Time) error {
	if l == nil {
		return nil
	}
	burst := float64(max(1, l.lim.Burst))
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[author]
	if b == nil {
		if len(l.buckets) >= maxTrackedAuthors && !l.sweepLocked(now, burst) {
			return fmt.Errorf("%w: %d authors active at once, the most this node tracks: %w", errAuthorLimited, len(l.buckets), p2p.ErrIgnore)
		}
		b = &authorBucket{tokens: burst, last: now, introducer: from, since: now}
		l.buckets[author] = b
	}
	b.tokens = min(burst, b.tokens+now.Sub(b.last).Seconds()*l.lim.Rate)
	b.last = now
	if b.tokens < 1 {
		return fmt.Errorf("%w: this key sends faster than %g messages a second (burst %d) across all its sessions: %w",
			errAuthorLimited, l.lim.Rate, l.lim.Burst, p2p.ErrIgnore)
	}
	b.tokens--
	return nil
}

// sweepLocked drops the authors whose buckets have refilled (idle ones)
// and reports whether that made room. It runs at most once per
// authorSweepEvery, so a flood of fresh keys costs one scan a second.
func (l *authorLimiter) sweepLocked(now time.Time, burst float64) bool {
	return sweepFull(l.buckets, &l.lastSweep, now, maxTrackedAuthors, func(b *authorBucket) bool {
		return b.fullAt(now, burst, l.lim.Rate)
	})
}
