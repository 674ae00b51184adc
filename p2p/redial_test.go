package p2p

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// A lost peer is dialled again redialFirst after it was lost, then with a
// backoff that doubles up to redialMaxBackoff, never twice at once, and is
// forgotten after redialGiveUp; the memory holds maxLostPeers, dropping
// the one lost longest ago.
func TestLostPeersSchedule(t *testing.T) {
	l := newLostPeers()
	t0 := time.Unix(1000, 0)
	l.add("p", t0)
	if dial, next := l.due(t0); len(dial) != 0 || !next.Equal(t0.Add(redialFirst)) {
		t.Fatalf("at loss: dial %v, next %v; want none, next at +%v", dial, next.Sub(t0), redialFirst)
	}
	var attempts []time.Duration
	now := t0
	for now.Sub(t0) < time.Minute {
		dial, next := l.due(now)
		if len(dial) == 1 {
			attempts = append(attempts, now.Sub(t0))
			if again, _ := l.due(now); len(again) != 0 {
				t.Fatal("a peer being dialled was due again")
			}
			l.dialed("p")
			_, next = l.due(now)
		}
		now = next
	}
	want := []time.Duration{1 * time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second, 23 * time.Second, 31 * time.Second}
	if len(attempts) < len(want) || !slices.Equal(attempts[:len(want)], want) {
		t.Errorf("attempts at %v, want %v then every %v", attempts, want, redialMaxBackoff)
	}
	if dial, next := l.due(t0.Add(redialGiveUp + time.Second)); len(dial) != 0 || !next.IsZero() {
		t.Errorf("after giving up: dial %v, next %v", dial, next)
	}
	for i := range maxLostPeers + 1 {
		l.add(peer.ID(fmt.Sprint("q", i)), t0.Add(time.Duration(i)*time.Millisecond))
	}
	if len(l.peers) != maxLostPeers {
		t.Errorf("%d lost peers remembered, want %d", len(l.peers), maxLostPeers)
	}
	if _, ok := l.peers["q0"]; ok {
		t.Error("the peer lost longest ago was kept over a newer one")
	}
	l.remove("q1")
	if _, ok := l.peers["q1"]; ok {
		t.Error("a peer back was not forgotten")
	}
}
