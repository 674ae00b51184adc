package gateway

import (
	"encoding/binary"
	"errors"
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
		_, err = validate("lobby", data)
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
		if err := l.allow(key(i), start); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.allow(key(maxTrackedAuthors), start); !errors.Is(err, p2p.ErrIgnore) {
		t.Fatalf("a new author with the table full of active ones: %v", err)
	}
	if len(l.buckets) > maxTrackedAuthors {
		t.Fatalf("%d authors tracked, want at most %d", len(l.buckets), maxTrackedAuthors)
	}
	if err := l.allow(key(maxTrackedAuthors), start.Add(3*authorSweepEvery)); err != nil {
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
