package gateway

import (
	"encoding/json"
	"slices"
	"testing"

	"darkchat/identity"
)

// Two clients logged in with one identity are both told; when one ends,
// the other is told it is the only one again. Another key hears nothing.
func TestSessionsOfOneIdentity(t *testing.T) {
	n := startNode(t, nil)
	count := func(c *client) int {
		c.t.Helper()
		var f struct {
			Count int `json:"count"`
		}
		if err := json.Unmarshal(c.expect("sessions").raw, &f); err != nil {
			t.Fatal(err)
		}
		return f.Count
	}
	first := dialTCP(t, n.tcpAddr)
	first.login()
	other := dialTCP(t, n.tcpAddr)
	other.login()
	second := dialTCP(t, n.tcpAddr)
	second.key = first.key
	second.login()
	if a, b := count(first), count(second); a != 2 || b != 2 {
		t.Fatalf("sessions of the shared key: %d and %d, want 2 and 2", a, b)
	}
	second.tcp.Close()
	if got := count(first); got != 1 {
		t.Fatalf("after the second ended: %d, want 1", got)
	}
	other.assertNoMore("sessions")
}

// The registry keeps every session of a key, whichever of them ends first.
func TestIdentitiesRegistry(t *testing.T) {
	var ids identities
	var key, otherKey identity.PublicKey
	key[0], otherKey[0] = 1, 2
	sessionOf := func(k identity.PublicKey) *session {
		return &session{key: k, closing: true} // closing: nothing is sent to it
	}
	// twin's key shares key's first 8 bytes, the registry's index.
	twinKey := key
	twinKey[31] = 9
	a, b, c, other, twin := sessionOf(key), sessionOf(key), sessionOf(key), sessionOf(otherKey), sessionOf(twinKey)
	list := func() []*session {
		ids.mu.Lock()
		defer ids.mu.Unlock()
		return ids.listLocked(key, 1)
	}
	for _, s := range []*session{twin, a, b, other, c, b} { // b twice: registered once
		ids.add(s)
	}
	if got := list(); !slices.Equal(got, []*session{a, b, c}) {
		t.Fatalf("sessions of the key: %p, want %p", got, []*session{a, b, c})
	}
	for _, step := range []struct {
		remove *session
		want   []*session
	}{{a, []*session{b, c}}, {a, []*session{b, c}}, {c, []*session{b}}, {b, nil}} {
		ids.remove(step.remove)
		if got := list(); !slices.Equal(got, step.want) {
			t.Fatalf("after removing %p: %p, want %p", step.remove, got, step.want)
		}
	}
	ids.mu.Lock()
	twins := ids.listLocked(twinKey, 1)
	ids.mu.Unlock()
	if !slices.Equal(twins, []*session{twin}) {
		t.Fatalf("the key sharing the first 8 bytes has %p, want its own session only", twins)
	}
	ids.remove(twin)
	if len(ids.first) != 1 || len(ids.more) != 0 {
		t.Fatalf("left behind: %d first, %d more; want only the other key's", len(ids.first), len(ids.more))
	}
}
