package gateway

import (
	"errors"
	"fmt"
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
}

func newAuthorLimiter(lim AuthorLimit) *authorLimiter {
	if lim.Rate <= 0 {
		return nil
	}
	return &authorLimiter{lim: lim, buckets: make(map[identity.PublicKey]*authorBucket)}
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
