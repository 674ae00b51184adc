package p2p

import (
	"fmt"
	"testing"
	"time"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func (c *fakeClock) set(start time.Time, d time.Duration) { c.t = start.Add(d) }

const dedupTestTTL = 10 * time.Minute

func newFakeClockDedup(limit int) (*dedupSet, *fakeClock, time.Time) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: start}
	return newDedupSet(dedupTestTTL, limit, clock.now), clock, start
}

// An ID is remembered for at least the TTL, however close to a rotation
// it was added, and forgotten at the rotation after next.
func TestDedupRemembersForTTLAcrossRotation(t *testing.T) {
	const ttl = dedupTestTTL
	for _, tc := range []struct {
		name  string
		added time.Duration // after the set's first generation began
		// looks are when the set is used afterwards, in order: each
		// rotates it as due (at ttl, a moves to the previous
		// generation; at 2×ttl it is dropped). a must be remembered at
		// each.
		looks []time.Duration
	}{
		{"added as a generation begins", 0,
			[]time.Duration{ttl / 2, ttl - time.Nanosecond, ttl, 2*ttl - time.Nanosecond}},
		{"added just before a rotation", ttl - time.Nanosecond,
			[]time.Duration{ttl, 2*ttl - 2*time.Nanosecond, 2*ttl - time.Nanosecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, clock, start := newFakeClockDedup(1000)
			clock.set(start, tc.added)
			d.Add("a")
			for _, at := range tc.looks {
				clock.set(start, at)
				if !d.Seen("a") {
					t.Fatalf("added at %v, forgotten at %v: sooner than the TTL (%v)", tc.added, at, ttl)
				}
			}
			clock.set(start, 2*ttl)
			if d.Seen("a") {
				t.Fatalf("added at %v, still remembered at the rotation after next (%v)", tc.added, 2*ttl)
			}
			if k := d.Len(); k != 0 {
				t.Fatalf("%d entries left after every one was forgotten", k)
			}
		})
	}
}

// A set left alone for two TTLs forgets everything at its next use, even
// without the rotation in between.
func TestDedupForgetsAfterIdlePeriod(t *testing.T) {
	d, clock, start := newFakeClockDedup(1000)
	d.Add("a")
	clock.set(start, 2*dedupTestTTL)
	if d.Seen("a") {
		t.Fatal("remembered after two TTLs without use")
	}
	if k := d.Len(); k != 0 {
		t.Fatalf("%d entries left", k)
	}
}

// A message's payload key stays remembered across a rotation like its ID,
// so a re-signed copy is still refused.
func TestDedupKeyedAcrossRotation(t *testing.T) {
	d, clock, start := newFakeClockDedup(1000)
	key := payloadKey("author/1")
	if !d.AddKeyed("first signature", key, true) {
		t.Fatal("first copy refused")
	}
	clock.set(start, dedupTestTTL+time.Minute) // past a rotation
	if d.AddKeyed("second signature", key, true) {
		t.Fatal("a re-signed copy was accepted after a rotation")
	}
	if d.Seen("second signature") {
		t.Fatal("the refused copy was recorded")
	}
}

// However fast entries come, the set holds at most its limit; the newest
// are remembered and the oldest make room.
func TestDedupSizeBound(t *testing.T) {
	const limit = 10
	d, _, _ := newFakeClockDedup(limit)
	for i := range 100 {
		if i%3 == 0 {
			if !d.AddKeyed(fmt.Sprint(i), payloadKey(fmt.Sprint("key", i)), true) {
				t.Fatalf("message %d refused", i)
			}
		} else {
			d.Add(fmt.Sprint(i))
		}
		if k := d.Len(); k > limit {
			t.Fatalf("after %d additions the set holds %d entries, limit %d", i+1, k, limit)
		}
	}
	for i := 96; i < 100; i++ {
		if !d.Seen(fmt.Sprint(i)) {
			t.Errorf("recent ID %d forgotten", i)
		}
	}
	if d.Seen("0") {
		t.Error("the oldest ID is still there: the set did not rotate on size")
	}
}
