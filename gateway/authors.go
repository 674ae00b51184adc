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
//     after that. A peer that keeps introducing keys past its budget runs
//     into debt; its messages are ignored until the debt passes
//     newAuthorDebt, and from then on rejected, which costs it its score
//     and gets it banned by the peer guard after a few.
//   - the node's: nodeNewAuthorBurst at once, nodeNewAuthorRate a second,
//     so rotating peer IDs do not multiply the peer budget. Over it new
//     keys are ignored (no one peer is at fault).
//
// Honest peers forward new keys at the pace people join a channel; a node
// that has just joined a busy channel learns its active authors within the
// burst. Local publications (from a session on this node) are exempt: the
// gateway limits sessions per address and logins.
const (
	newAuthorBurst     = 256
	newAuthorRate      = 16
	newAuthorDebt      = 256
	nodeNewAuthorBurst = 1024
	nodeNewAuthorRate  = 64
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
}

// authorLimiter holds one token bucket per recently active author.
type authorLimiter struct {
	lim AuthorLimit

	mu        sync.Mutex
	buckets   map[identity.PublicKey]*authorBucket
	lastSweep time.Time

	// new-author budgets: per forwarding peer, and the node's
	peers         map[peer.ID]*authorBucket
	lastPeerSweep time.Time
	node          authorBucket
}

func newAuthorLimiter(lim AuthorLimit) *authorLimiter {
	if lim.Rate <= 0 {
		return nil
	}
	return &authorLimiter{
		lim:     lim,
		buckets: make(map[identity.PublicKey]*authorBucket),
		peers:   make(map[peer.ID]*authorBucket),
		node:    authorBucket{tokens: nodeNewAuthorBurst},
	}
}

// admit checks, before a message's signature is verified, that its author
// is already known or may be introduced by from (empty: a local
// publication). It spends a new-author token of from and of the node for a
// new one; the author's own bucket is created by allow, once the signature
// holds.
func (l *authorLimiter) admit(from peer.ID, author identity.PublicKey, now time.Time) error {
	if l == nil || from == "" {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.buckets[author]; ok {
		return nil
	}
	if l.node.last.IsZero() {
		l.node.last = now
	}
	l.node.tokens = min(nodeNewAuthorBurst, l.node.tokens+now.Sub(l.node.last).Seconds()*nodeNewAuthorRate)
	l.node.last = now
	b := l.peers[from]
	if b == nil {
		if len(l.peers) >= maxTrackedPeers && !l.sweepPeersLocked(now) {
			return fmt.Errorf("%w: new keys from %d peers at once, the most this node tracks: %w", errAuthorLimited, len(l.peers), p2p.ErrIgnore)
		}
		b = &authorBucket{tokens: newAuthorBurst, last: now}
		l.peers[from] = b
	}
	b.tokens = min(newAuthorBurst, b.tokens+now.Sub(b.last).Seconds()*newAuthorRate)
	b.last = now
	if b.tokens < 1 {
		b.tokens = max(b.tokens-1, -newAuthorDebt-1)
		if b.tokens < -newAuthorDebt {
			return fmt.Errorf("peer introduces new keys far faster than %d a second (burst %d)", newAuthorRate, newAuthorBurst)
		}
		return fmt.Errorf("%w: peer introduces new keys faster than %d a second (burst %d): %w", errAuthorLimited, newAuthorRate, newAuthorBurst, p2p.ErrIgnore)
	}
	if l.node.tokens < 1 {
		return fmt.Errorf("%w: new keys arrive faster than %d a second (burst %d) at this node: %w", errAuthorLimited, nodeNewAuthorRate, nodeNewAuthorBurst, p2p.ErrIgnore)
	}
	b.tokens--
	l.node.tokens--
	return nil
}

// sweepPeersLocked drops the per-peer budgets back at their burst and
// reports whether that made room; at most once per authorSweepEvery.
func (l *authorLimiter) sweepPeersLocked(now time.Time) bool {
	if now.Sub(l.lastPeerSweep) < authorSweepEvery {
		return false
	}
	l.lastPeerSweep = now
	for p, b := range l.peers {
		if b.tokens+now.Sub(b.last).Seconds()*newAuthorRate >= newAuthorBurst {
			delete(l.peers, p)
		}
	}
	return len(l.peers) < maxTrackedPeers
}

// allow takes a token from author's bucket, or says why it cannot.
func (l *authorLimiter) allow(author identity.PublicKey, now time.Time) error {
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
		b = &authorBucket{tokens: burst, last: now}
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
