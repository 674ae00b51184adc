package gateway

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"darkchat/identity"
	"darkchat/p2p"
)

// Presence records on the mesh (PROTOCOL.md §2.12) travel on their
// channel's topic, where ChannelValidator hands them to
// presenceValidator.validate.
//
// Each key may announce itself in a channel presenceBurst times at once and
// then once every presenceEvery: a client refreshes every 2 minutes, joins
// and renames now and then, and a reconnecting one joins again. Gone
// records do not spend from the bucket (each ends a here, and a user who
// joins and renames quickly must still be seen to leave); they pass the
// author limit like every record, and the member table holds at most
// maxPresenceSessionsPerKey sessions of a key, so a key cannot fill it
// with gone records either. Over the limit a record is ignored, never
// held against the forwarding peer, which may have seen the author's
// records in another order.
const (
	presenceBurst = 4
	presenceEvery = 20 * time.Second
	// maxPresenceBuckets bounds the (key, channel) buckets a node keeps
	// (about 100 bytes each); when full, the buckets back at their burst
	// are dropped, at most once per authorSweepEvery, and if none is a
	// new key's records are ignored until one is.
	maxPresenceBuckets = 1 << 16
)

// errPresenceLimited marks a presence record refused by the per-key
// presence limit; the gateway reports it to the client as rate_limited.
var errPresenceLimited = fmt.Errorf("presence limit: %d announcements at once, then one every %v per key and channel", presenceBurst, presenceEvery)

// presencePayload is a verified presence record as the mesh delivers it to
// the channel's sessions; the first session that gets it applies it to the
// node's member table (applied), once per node.
type presencePayload struct {
	rec     identity.Presence
	wire    []byte
	applied atomic.Bool
}

// DedupKey implements p2p.Keyed: a record is one per key, channel,
// session, timestamp and state, however many valid signatures its author
// makes for it.
func (p *presencePayload) DedupKey() string {
	r := &p.rec
	b := make([]byte, 0, 1+identity.PublicKeySize+len(r.Channel)+1+identity.PresenceSessionSize+9)
	b = append(b, 'p')
	b = append(b, r.Key[:]...)
	b = append(b, r.Channel...)
	b = append(b, 0)
	b = append(b, r.Session[:]...)
	b = append(b, byte(r.Timestamp>>56), byte(r.Timestamp>>48), byte(r.Timestamp>>40), byte(r.Timestamp>>32),
		byte(r.Timestamp>>24), byte(r.Timestamp>>16), byte(r.Timestamp>>8), byte(r.Timestamp), r.State)
	return string(b)
}

var _ p2p.Keyed = (*presencePayload)(nil)

type presenceKey struct {
	key     identity.PublicKey
	channel string
}

// presenceValidator checks presence records for ChannelValidator.
type presenceValidator struct {
	window  time.Duration
	authors *authorLimiter // nil: no author limit
	bans    *BanList       // nil: none

	mu        sync.Mutex
	buckets   map[presenceKey]*authorBucket
	lastSweep time.Time
}

func newPresenceValidator(window time.Duration, authors *authorLimiter) *presenceValidator {
	return &presenceValidator{window: window, authors: authors, buckets: make(map[presenceKey]*authorBucket)}
}

// validate checks one record from the topic of channel: strict decoding,
// the channel named inside is the topic's, dated no further ahead than the
// message window (far ahead: rejected, as for messages), not expired, the
// author admitted before the signature is verified (a new key costs the
// forwarding peer's presence budget, admitPresence), the signature, and
// then the key's presence limit. A record may be up to its TTL (at most identity.MaxPresenceTTL)
// old: its expiry, which the signature covers, is what bounds a replay,
// and a node that joins a channel learns its members from records signed
// minutes before.
func (v *presenceValidator) validate(from peer.ID, channel string, data []byte, now time.Time) (any, error) {
	p := &presencePayload{wire: data}
	if err := p.rec.UnmarshalBinary(data); err != nil {
		return nil, err
	}
	r := &p.rec
	if r.Channel != channel {
		return nil, fmt.Errorf("presence for channel %q published on %q", r.Channel, channel)
	}
	if ahead := time.UnixMilli(r.Timestamp).Sub(now); ahead > v.window {
		if ahead > 2*v.window && from != "" {
			return nil, fmt.Errorf("presence dated %v ahead of the node's clock, beyond ±%v: forged", ahead.Round(time.Second), 2*v.window)
		}
		return nil, fmt.Errorf("presence dated %v ahead of the node's clock, beyond ±%v: %w", ahead.Round(time.Second), v.window, p2p.ErrIgnore)
	}
	if now.UnixMilli() >= r.Expires {
		return nil, fmt.Errorf("presence expired %v ago: %w", now.Sub(r.ExpiresTime()).Round(time.Second), p2p.ErrIgnore)
	}
	if err := v.bans.refuseMessage(r.Key); err != nil {
		return nil, err // before the signature: costs no verification
	}
	if err := v.authors.admitPresence(from, r.Key, now); err != nil {
		return nil, err
	}
	if err := r.Verify(); err != nil {
		return nil, err
	}
	if err := v.authors.allow(from, r.Key, now); err != nil {
		return nil, err
	}
	if r.State == identity.PresenceHere {
		if err := v.allow(presenceKey{r.Key, r.Channel}, now); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// allow takes a token from k's presence bucket.
func (v *presenceValidator) allow(k presenceKey, now time.Time) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	b := v.buckets[k]
	if b == nil {
		if len(v.buckets) >= maxPresenceBuckets && !v.sweepLocked(now) {
			return fmt.Errorf("%w: %d keys announce themselves at once, the most this node tracks: %w", errPresenceLimited, len(v.buckets), p2p.ErrIgnore)
		}
		b = &authorBucket{tokens: presenceBurst, last: now}
		v.buckets[k] = b
	}
	refill(b, now, presenceBurst, 1/presenceEvery.Seconds())
	if b.tokens < 1 {
		return fmt.Errorf("%w: %w", errPresenceLimited, p2p.ErrIgnore)
	}
	b.tokens--
	return nil
}

// sweepLocked drops the buckets back at their burst and reports whether
// that made room; at most once per authorSweepEvery.
func (v *presenceValidator) sweepLocked(now time.Time) bool {
	return sweepFull(v.buckets, &v.lastSweep, now, maxPresenceBuckets, func(b *authorBucket) bool {
		return b.fullAt(now, presenceBurst, 1/presenceEvery.Seconds())
	})
}
