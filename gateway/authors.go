package gateway

import (
	"errors"
	"fmt"
	"github.com/libp2p/go-libp2p/core/peer"
	"sync"
	"time"

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
	if l.node.last.IsZero() {
		l.node.last = now
	}
	refill(&l.node, now, nodeNewAuthorBurst, nodeNewAuthorRate)
	pb := l.peerLocked(from, now)
	if pb == nil {
		return fmt.Errorf("%w: new keys from %d peers at once, the most this node tracks: %w", errAuthorLimited, len(l.peers), p2p.ErrIgnore)
	}
	b := &pb.newKeys
	refill(b, now, newAuthorBurst, newAuthorRate)
	if b.tokens < 1 {
		return fmt.Errorf("%w: peer introduces new keys faster than %d a second (burst %d): %w", errAuthorLimited, newAuthorRate, newAuthorBurst, p2p.ErrIgnore)
	}
	if l.node.tokens < 1 {
		return fmt.Errorf("%w: new keys arrive faster than %d a second (burst %d) at this node: %w", errAuthorLimited, nodeNewAuthorRate, nodeNewAuthorBurst, p2p.ErrIgnore)
	}
	b.tokens--
	l.node.tokens--
	return nil
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
		newKeys:   authorBucket{tokens: newAuthorBurst, last: now},
		probation: authorBucket{tokens: peerProbationBurst, last: now},
	}
	l.peers[p] = b
	return b
}

// sweepPeersLocked drops the per-peer budgets back at their burst and
// reports whether that made room; at most once per authorSweepEvery.
func (l *authorLimiter) sweepPeersLocked(now time.Time) bool {
	if now.Sub(l.lastPeerSweep) < authorSweepEvery {
		return false
	}
	l.lastPeerSweep = now
	for p, b := range l.peers {
		if b.newKeys.tokens+now.Sub(b.newKeys.last).Seconds()*newAuthorRate >= newAuthorBurst &&
			b.probation.tokens+now.Sub(b.probation.last).Seconds()*peerProbationRate >= peerProbationBurst {
			delete(l.peers, p)
		}
	}
	return len(l.peers) < maxTrackedPeers
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
	if now.Sub(l.lastSweep) < authorSweepEvery {
		return false
	}
	l.lastSweep = now
	for a, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.lim.Rate >= burst {
			delete(l.buckets, a)
		}
	}
	return len(l.buckets) < maxTrackedAuthors
}
