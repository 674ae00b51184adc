package p2p

import (
	"sync"
	"time"
)

// dedupSet remembers message IDs for at least ttl so that a message replayed
// after GossipSub's seen-cache forgot it (two minutes) is still dropped. It
// keeps two generations of at most max/2 IDs each and rotates when the
// current generation is ttl old or full. Rotation on size means that under
// a flood beyond max IDs per ttl, IDs are kept for less than ttl; the
// application's timestamp window still rejects anything older than it.
type dedupSet struct {
	mu      sync.Mutex
	ttl     time.Duration
	maxGen  int
	cur     map[string]struct{}
	prev    map[string]struct{}
	rotated time.Time
	now     func() time.Time
}

func newDedupSet(ttl time.Duration, limit int) *dedupSet {
	return &dedupSet{
		ttl:     ttl,
		maxGen:  max(limit/2, 1),
		cur:     make(map[string]struct{}),
		prev:    make(map[string]struct{}),
		rotated: time.Now(),
		now:     time.Now,
	}
}

// Seen reports whether id was added within the retention period.
func (d *dedupSet) Seen(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.maybeRotateLocked()
	if _, ok := d.cur[id]; ok {
		return true
	}
	_, ok := d.prev[id]
	return ok
}

// Add records id.
func (d *dedupSet) Add(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.maybeRotateLocked()
	d.cur[id] = struct{}{}
}

// Len returns the number of IDs remembered.
func (d *dedupSet) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.cur) + len(d.prev)
}

// maybeRotateLocked starts a new generation. An ID added just before a
// rotation survives in prev for one more full period, so every ID is kept
// for at least ttl unless the size bound forces an early rotation.
func (d *dedupSet) maybeRotateLocked() {
	now := d.now()
	if now.Sub(d.rotated) < d.ttl && len(d.cur) < d.maxGen {
		return
	}
	if now.Sub(d.rotated) >= 2*d.ttl {
		d.cur = make(map[string]struct{}) // everything is older than ttl
	}
	d.prev, d.cur = d.cur, make(map[string]struct{}, len(d.cur))
	d.rotated = now
}
