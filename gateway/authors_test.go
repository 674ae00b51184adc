package gateway

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/libp2p/go-libp2p/core/peer"
	"testing"
	"time"

	"darkchat/identity"
	"darkchat/p2p"
)

// One author cannot publish past its limit through any path into the
// validator; other authors are unaffected, and the bucket refills.
func TestChannelValidatorLimitsEachAuthor(t *testing.T) {
	clock := time.Now()
	now := func() time.Time { return clock }
	validate := ChannelValidator(now, DefaultTimestampWindow, AuthorLimit{Rate: 1, Burst: 3}, nil)
	mallory, alice := mustKey(t), mustKey(t)
	send := func(k identity.PrivateKey) error {
		m, err := identity.NewChannelMessage(k, "lobby", "u", "hi", clock)
		if err != nil {
			t.Fatal(err)
		}
		data, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		_, err = validate("", "lobby", data)
		return err
	}
	for i := range 3 {
		if err := send(mallory); err != nil {
			t.Fatalf("message %d within the burst: %v", i, err)
		}
	}
	if err := send(mallory); !errors.Is(err, p2p.ErrIgnore) {
		t.Fatalf("message past the burst: %v, want an ignored message", err)
	}
	if err := send(alice); err != nil {
		t.Fatalf("another author: %v", err)
	}
	clock = clock.Add(time.Second)
	if err := send(mallory); err != nil {
		t.Fatalf("a second later: %v", err)
	}
}

// The author table is bounded: when it is full of active authors a new one
// is refused; once they are idle, a sweep makes room.
func TestAuthorLimiterIsBounded(t *testing.T) {
	l := newAuthorLimiter(AuthorLimit{Rate: 1, Burst: 2})
	start := time.Now()
	key := func(i int) identity.PublicKey {
		var k identity.PublicKey
		binary.BigEndian.PutUint64(k[:], uint64(i))
		return k
	}
	for i := range maxTrackedAuthors {
		if err := l.allow("", key(i), start); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.allow("", key(maxTrackedAuthors), start); !errors.Is(err, p2p.ErrIgnore) {
		t.Fatalf("a new author with the table full of active ones: %v", err)
	}
	if len(l.buckets) > maxTrackedAuthors {
		t.Fatalf("%d authors tracked, want at most %d", len(l.buckets), maxTrackedAuthors)
	}
	if err := l.allow("", key(maxTrackedAuthors), start.Add(3*authorSweepEvery)); err != nil {
		t.Fatalf("a new author once the others are idle: %v", err)
	}
}

func mustKey(t *testing.T) identity.PrivateKey {
	t.Helper()
	k, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// A peer introduces new keys only within its budget, checked before the
// signature (over it they are ignored); keys already known pass, and the
// node's own budget caps what many peers introduce together.
func TestNewAuthorsNeedTheForwardingPeersBudget(t *testing.T) {
	l := newAuthorLimiter(DefaultAuthorLimit)
	now := time.Now()
	key := func(i int) identity.PublicKey {
		var k identity.PublicKey
		binary.BigEndian.PutUint64(k[:], uint64(i))
		return k
	}
	// introduce admits key i through from and records it as the validator
	// does once the signature holds.
	introduce := func(from peer.ID, i int) error {
		if err := l.admit(from, key(i), now); err != nil {
			return err
		}
		return l.allow(from, key(i), now)
	}
	const mallory, bob = peer.ID("mallory"), peer.ID("bob")
	for i := range newAuthorBurst {
		if err := introduce(mallory, i); err != nil {
			t.Fatalf("new key %d within the peer's burst: %v", i, err)
		}
	}
	if err := introduce(mallory, newAuthorBurst); !errors.Is(err, p2p.ErrIgnore) {
		t.Fatalf("a new key past the peer's burst: %v, want ignored", err)
	}
	if err := introduce(mallory, 0); err != nil {
		t.Fatalf("a known key from a peer out of budget: %v", err)
	}
	if err := introduce("", 1<<20); err != nil {
		t.Fatalf("a local publication by a new key: %v", err)
	}
	if err := introduce(bob, 5000); err != nil {
		t.Fatalf("another peer's new key: %v", err)
	}
	// The node's budget: 1024 at once across peers (mallory and bob spent
	// 257 of it), however many peer IDs.
	admitted := 0
	for p := 0; p < 8; p++ {
		for i := range newAuthorBurst {
			if introduce(peer.ID(fmt.Sprint("sybil", p)), 10_000+p*1000+i) == nil {
				admitted++
			}
		}
	}
	if want := nodeNewAuthorBurst - newAuthorBurst - 1; admitted != want {
		t.Fatalf("%d new keys admitted from 8 more peers, want %d (the node's burst)", admitted, want)
	}
	now = now.Add(time.Second)
	if err := introduce(bob, 6000); err != nil {
		t.Fatalf("a new key a second later: %v", err)
	}
}

// The keys one peer introduced share its probation budget for their first
// probationPeriod, so many fresh keys cannot flood at many times the
// author rate; keys of local sessions share a smaller one, so their
// senders are told before other nodes would drop their messages.
func TestNewKeysShareTheirIntroducersProbation(t *testing.T) {
	l := newAuthorLimiter(AuthorLimit{Rate: 1e6, Burst: 1e6})
	now := time.Now()
	key := func(i int) identity.PublicKey {
		var k identity.PublicKey
		binary.BigEndian.PutUint64(k[:], uint64(i))
		return k
	}
	send := func(from peer.ID, i int) error {
		if err := l.admit(from, key(i), now); err != nil {
			return err
		}
		return l.allow(from, key(i), now)
	}
	const keys = newAuthorBurst
	for i := range keys {
		if err := send("mallory", i); err != nil {
			t.Fatalf("introducing key %d: %v", i, err)
		}
		if err := send("", 10_000+i); err != nil {
			t.Fatalf("a local key %d: %v", i, err)
		}
	}
	count := func(from peer.ID, base int) (passed int) {
		for round := range 30 {
			for i := range keys {
				if send(peer.ID(fmt.Sprint(from, round)), base+i) == nil {
					passed++
				}
			}
		}
		return passed
	}
	if passed := count("relay", 0); passed != peerProbationBurst {
		t.Fatalf("%d messages of mallory's %d new keys passed, want its probation burst %d", passed, keys, peerProbationBurst)
	}
	if passed := count("", 10_000); passed != localProbationBurst {
		t.Fatalf("%d messages of %d new local keys passed, want the local probation burst %d", passed, keys, localProbationBurst)
	}
	now = now.Add(probationPeriod)
	for i := range keys {
		if err := send("relay", i); err != nil {
			t.Fatalf("after probation, key %d: %v", i, err)
		}
	}
}
