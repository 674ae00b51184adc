package p2p

import (
	"crypto/sha256"
	"sync"
	"time"
)

// dedupKey is what the set stores: a message ID (SHA-256, see messageID)
// as is, anything else hashed. Fixed-size keys hold no pointers, so the
// garbage collector never scans the (large) maps, and a lookup hashes 32
// bytes without allocating.
type dedupKey [sha256.Size]byte

// idKey turns a message ID into a key. darkchat's IDs are SHA-256 sums, so
// they are used directly; an ID of another length is hashed.
func idKey(id string) dedupKey {
	var k dedupKey
	if len(id) == len(k) {
		copy(k[:], id)
		return k
	}
	return sha256.Sum256([]byte(id))
}

// payloadKey turns a Keyed payload's key into a set key: the SHA-256 of
// "k" and the key. Message IDs hash the topic first, which never starts
// with "k" followed by a payload key's bytes, so the two cannot collide
// short of a SHA-256 collision.
func payloadKey(key string) dedupKey {
	var buf [64]byte
	b := append(buf[:0], 'k')
	b = append(b, key...)
	return sha256.Sum256(b)
}

// dedupSet remembers message IDs for at least ttl so that a message replayed
// after GossipSub's seen-cache forgot it (30 s, seenMessagesTTL) is still
// dropped. It keeps two generations of at most max/2 entries each (a
// keyed message takes two) and starts a new one when the current
// generation is ttl old or would overflow. Rotation happens on use: an
// entry is remembered from when it is added until the rotation after next,
// so for at least ttl and less than 3×ttl. Rotation on size means that
// under a flood beyond max entries per ttl, entries are kept for less than
// ttl; the application's timestamp window still rejects anything older
// than it. The set holds at most max entries (4 if max is smaller: a
// generation holds at least one keyed message).
type dedupSet struct {
	mu      sync.Mutex
	ttl     time.Duration
	maxGen  int
	cur     map[dedupKey]struct{}
	prev    map[dedupKey]struct{}
	rotated time.Time
	now     func() time.Time // the clock; tests pass a fake one
}

// newDedupSet returns a set keeping entries for at least ttl within limit
// entries, reading the time from now.
func newDedupSet(ttl time.Duration, limit int, now func() time.Time) *dedupSet {
	return &dedupSet{
		ttl:     ttl,
		maxGen:  max(limit/2, 2),
		cur:     make(map[dedupKey]struct{}),
		prev:    make(map[dedupKey]struct{}),
		rotated: now(),
		now:     now,
	}
}

// Seen reports whether id was added within the retention period.
func (d *dedupSet) Seen(id string) bool {
	k := idKey(id)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.maybeRotateLocked(0)
	return d.hasLocked(k)
}

// Add records id.
func (d *dedupSet) Add(id string) {
	k := idKey(id)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.maybeRotateLocked(1)
	d.cur[k] = struct{}{}
}

// AddKeyed records a message ID and its payload's key (the zero key when
// the payload has none) in one step. It reports false, recording nothing,
// when the payload key was already there.
func (d *dedupSet) AddKeyed(id string, key dedupKey, keyed bool) bool {
	ik := idKey(id)
	d.mu.Lock()
	defer d.mu.Unlock()
	adding := 1
	if keyed {
		adding = 2
	}
	d.maybeRotateLocked(adding)
	if keyed {
		if d.hasLocked(key) {
			return false
		}
		d.cur[key] = struct{}{}
	}
	d.cur[ik] = struct{}{}
	return true
}

func (d *dedupSet) hasLocked(k dedupKey) bool {
	if _, ok := d.cur[k]; ok {
		return true
	}
	_, ok := d.prev[k]
	return ok
}

// Len returns the number of IDs remembered.
func (d *dedupSet) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.cur) + len(d.prev)
}

// maybeRotateLocked starts a new generation when the current one is ttl
// old, or too full to take adding more entries. An entry added just
// before a rotation survives in prev for one more full period, so every
// entry is kept for at least ttl unless the size bound forces an early
// rotation.
func (d *dedupSet) maybeRotateLocked(adding int) {
	now := d.now()
	age := now.Sub(d.rotated)
	if age < d.ttl && len(d.cur)+adding <= d.maxGen {
		return
	}
	if age >= 2*d.ttl {
		d.cur = make(map[dedupKey]struct{}) // everything is older than ttl
	}
	d.prev, d.cur = d.cur, make(map[dedupKey]struct{}, len(d.cur))
	d.rotated = now
}
