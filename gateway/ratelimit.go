package gateway

import "time"

// tokenBucket is an allowance: burst tokens, refilled at rate per second.
// A session's send allowance is used by its reader goroutine only; other
// buckets are guarded by their owner's lock.
type tokenBucket struct {
	rate   float64
	burst  float64
	tokens float64
	// last is when tokens was last refilled, as time since bucketEpoch
	// (every session has two buckets: 16 B less than a time.Time).
	last time.Duration
}

// bucketEpoch is the buckets' time zero. Times are measured from it with
// time.Time.Sub, on the monotonic clock when the times have one.
var bucketEpoch = time.Now()

func newTokenBucket(rate float64, burst int, now time.Time) tokenBucket {
	return tokenBucket{rate: rate, burst: float64(burst), tokens: float64(burst), last: now.Sub(bucketEpoch)}
}

// take spends one token if there is one. Callers that read the clock
// before taking their owner's lock may come in out of order: a now before
// the last one refills nothing and leaves last alone, so that no interval
// is counted twice.
func (b *tokenBucket) take(now time.Time) bool {
	at := now.Sub(bucketEpoch)
	if dt := (at - b.last).Seconds(); dt > 0 {
		b.tokens = min(b.burst, b.tokens+dt*b.rate)
		b.last = at
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// refund gives back a token taken for something that did not happen.
func (b *tokenBucket) refund() { b.tokens = min(b.burst, b.tokens+1) }

// full reports whether the bucket will have refilled by now, so that a
// fresh bucket would do the same.
func (b *tokenBucket) full(now time.Time) bool {
	return b.tokens+(now.Sub(bucketEpoch)-b.last).Seconds()*b.rate >= b.burst
}
