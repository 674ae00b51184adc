//go:build !js

package client_test

import (
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"darkchat/client"
	"darkchat/identity"
	"darkchat/proto"
	"darkchat/tstest/clienttest"
)

// member is a session in a test channel, with its events.
type member struct {
	s  *client.Session
	ev events
}

func joinMember(t *testing.T, addr, channel, username string) member {
	t.Helper()
	return joinMemberKey(t, addr, channel, username, newKey(t))
}

func joinMemberKey(t *testing.T, addr, channel, username string, key identity.PrivateKey) member {
	t.Helper()
	ev := newEvents()
	s := dialSession(t, addr, client.SessionConfig{Key: key, OnEvent: ev.on})
	if err := s.Join(testCtx(t), channel, username); err != nil {
		t.Fatal(err)
	}
	if j := waitEvent[client.EventJoined](t, ev); j.Channel != channel {
		t.Fatalf("joined %s, want %s", j.Channel, channel)
	}
	return member{s, ev}
}

// say sends body and waits for the node's ok.
func (m member) say(t *testing.T, channel, body string) identity.ShortID {
	t.Helper()
	id, err := m.s.Send(testCtx(t), channel, body)
	if err != nil {
		t.Fatal(err)
	}
	for waitEvent[client.EventOK](t, m.ev).ID != id {
	}
	var raw [identity.MessageIDSize]byte
	hex.Decode(raw[:], []byte(id))
	return identity.Short(raw)
}

// hear waits for the message with body and returns it.
func (m member) hear(t *testing.T, body string) client.EventMessage {
	t.Helper()
	for {
		ev := waitEvent[client.EventMessage](t, m.ev)
		if ev.Message.Body == body {
			return ev
		}
	}
}

// Every message sent is a version-2 one naming the sender's previous
// message in the channel and the newest messages of others it holds,
// newest first; the signature covers them and they reach the others as
// sent.
func TestSessionSendsCausalContext(t *testing.T) {
	addr := (&clienttest.Server{}).StartTCP(t)
	alice := joinMember(t, addr, "lobby", "alice")
	bob := joinMember(t, addr, "lobby", "bob")
	carol := joinMember(t, addr, "lobby", "carol")

	a1 := alice.say(t, "lobby", "a1")
	if m := bob.hear(t, "a1").Message; !m.Causal.Present || m.Causal.Prev != (identity.ShortID{}) || m.Causal.NRefs != 0 {
		t.Fatalf("a first message in an empty channel carries %+v, want version 2 with nothing named", m.Causal)
	}
	carol.hear(t, "a1")
	b1 := bob.say(t, "lobby", "b1")
	if m := alice.hear(t, "b1").Message; m.Causal.Prev != (identity.ShortID{}) || !slices.Equal(m.Causal.RefList(), []identity.ShortID{a1}) {
		t.Fatalf("b1 carries %+v, want refs [a1]", m.Causal)
	}
	carol.hear(t, "b1")
	c1 := carol.say(t, "lobby", "c1")
	if m := alice.hear(t, "c1").Message; !slices.Equal(m.Causal.RefList(), []identity.ShortID{b1, a1}) {
		t.Fatalf("c1 carries %+v, want refs [b1 a1]", m.Causal)
	}
	bob.hear(t, "c1")
	alice.say(t, "lobby", "a2")
	m := bob.hear(t, "a2").Message
	if m.Causal.Prev != a1 || !slices.Equal(m.Causal.RefList(), []identity.ShortID{c1, b1}) {
		t.Fatalf("a2 carries %+v, want prev a1 %x and refs [c1 b1]", m.Causal, a1)
	}
	if err := m.Verify(); err != nil || m.Version() != identity.ChannelMessageVersion2 {
		t.Fatalf("a2 as received: version %d, %v", m.Version(), err)
	}
	// Sent without waiting for the ok: the next still names it.
	if _, err := alice.s.Send(testCtx(t), "lobby", "a3"); err != nil {
		t.Fatal(err)
	}
	alice.say(t, "lobby", "a4")
	a3 := bob.hear(t, "a3").Message
	if got := bob.hear(t, "a4").Message.Causal.Prev; got != identity.Short(a3.ID) {
		t.Fatalf("a4's prev is %x, want a3 %x", got, identity.Short(a3.ID))
	}
}

// A message naming one the client never got makes it ask the channel's
// history once, after 3 to 5 s; the missing message comes late, once.
func TestSessionAsksForGap(t *testing.T) {
	srv := &clienttest.Server{}
	bobPriv := newKey(t)
	bobKey := bobPriv.Public()
	srv.Drop = func(to identity.PublicKey, m identity.ChannelMessage) bool {
		return to == bobKey && m.Body == "lost"
	}
	addr := srv.StartTCP(t)
	alice := joinMember(t, addr, "lobby", "alice")
	bob := joinMemberKey(t, addr, "lobby", "bob", bobPriv)

	alice.say(t, "lobby", "first")
	bob.hear(t, "first")
	lost := alice.say(t, "lobby", "lost")
	alice.say(t, "lobby", "after")
	after := bob.hear(t, "after")
	heard := time.Now()
	if after.Message.Causal.Prev != lost {
		t.Fatalf("after names %x, want the lost message %x", after.Message.Causal.Prev, lost)
	}
	late := waitEvent[client.EventMessage](t, bob.ev)
	waited := time.Since(heard)
	if late.Message.Body != "lost" || !late.Late || late.History == "" {
		t.Fatalf("bob got %q late=%v history=%q, want the lost message, late", late.Message.Body, late.Late, late.History)
	}
	if waited < 2900*time.Millisecond || waited > 7*time.Second {
		t.Errorf("the lost message came %v after the message naming it, want 3 to 5 s and the request's round trip", waited)
	}
	end := waitEvent[client.EventHistoryEnd](t, bob.ev)
	if !end.Auto || end.ID != late.History || end.Fresh != 1 || end.Err != nil {
		t.Fatalf("history end %+v, want the session's own request with 1 new message", end)
	}
	// Nothing more is asked: the next message arrives with no history
	// before it.
	alice.say(t, "lobby", "done")
	for {
		switch ev := waitEvent[client.Event](t, bob.ev).(type) {
		case client.EventMessage:
			if ev.Late || ev.Message.Body != "done" {
				t.Fatalf("bob got %q late=%v, want done", ev.Message.Body, ev.Late)
			}
			return
		case client.EventHistoryEnd:
			t.Fatalf("a second history request: %+v", ev)
		}
	}
}

// lostAndAfter has srv keep "lost" and "after" from the member with key
// to, and returns what then repairs them for that member: the node's
// repair brings "after" late (for no request of the member's), which
// names "lost", and the member's own history request brings "lost".
func lostAndAfter(t *testing.T, srv *clienttest.Server, to identity.PublicKey) (repair func(m member)) {
	var mu sync.Mutex
	var after identity.ChannelMessage
	srv.Drop = func(dst identity.PublicKey, m identity.ChannelMessage) bool {
		if dst != to || m.Body != "lost" && m.Body != "after" {
			return false
		}
		if m.Body == "after" {
			mu.Lock()
			after = m
			mu.Unlock()
		}
		return true
	}
	return func(member member) {
		t.Helper()
		mu.Lock()
		m := proto.NewMessage(&after)
		mu.Unlock()
		m.Late = true
		frame, err := proto.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		srv.Inject(frame)
		if ev := member.hear(t, "after"); !ev.Late || ev.History != "" {
			t.Fatalf("after came %+v, want late from a repair", ev)
		}
		if ev := member.hear(t, "lost"); !ev.Late || ev.History == "" {
			t.Fatalf("lost came %+v, want late, answering the member's own history request", ev)
		}
	}
}

// A late message from the node's repair that names a message the client
// lacks makes it ask for it too: whatever the repair missed, the messages
// it brought name.
func TestSessionAsksForGapInRepair(t *testing.T) {
	srv := &clienttest.Server{}
	bobPriv := newKey(t)
	bobKey := bobPriv.Public()
	repair := lostAndAfter(t, srv, bobKey)
	addr := srv.StartTCP(t)
	alice := joinMember(t, addr, "lobby", "alice")
	bob := joinMemberKey(t, addr, "lobby", "bob", bobPriv)

	alice.say(t, "lobby", "first")
	bob.hear(t, "first")
	alice.say(t, "lobby", "lost")
	alice.say(t, "lobby", "after")
	// The node's repair brings "after" (late, for no request of bob's);
	// it names "lost".
	repair(bob)
}

// A gap found in an old message still comes back when more than a page
// was said since: the request asks for the page before the message that
// named the missing one, not for the channel's newest.
func TestSessionAsksForOldGap(t *testing.T) {
	limits := proto.DefaultLimits
	limits.Rate, limits.Burst = 1e6, 1e6
	srv := &clienttest.Server{Limits: limits}
	bobPriv := newKey(t)
	bobKey := bobPriv.Public()
	repair := lostAndAfter(t, srv, bobKey)
	addr := srv.StartTCP(t)
	alice := joinMember(t, addr, "lobby", "alice")
	bob := joinMemberKey(t, addr, "lobby", "bob", bobPriv)

	alice.say(t, "lobby", "first")
	bob.hear(t, "first")
	alice.say(t, "lobby", "lost")
	alice.say(t, "lobby", "after")
	// Carol, who joins after them and so names neither, says a page and
	// a half more before bob learns of the gap.
	carol := joinMember(t, addr, "lobby", "carol")
	const more = proto.MaxHistoryLimit * 3 / 2
	for i := range more {
		carol.say(t, "lobby", fmt.Sprint("more ", i))
	}
	bob.hear(t, fmt.Sprint("more ", more-1))
	// The node's repair brings "after", which names "lost".
	repair(bob)
}

// A member that names an own message, or a message that names it, has
// seen it: the author's Store counts it, and an event says so.
func TestSessionSeen(t *testing.T) {
	addr := (&clienttest.Server{}).StartTCP(t)
	alice := joinMember(t, addr, "lobby", "alice")
	bob := joinMember(t, addr, "lobby", "bob")

	m1 := alice.say(t, "lobby", "m1")
	bob.hear(t, "m1")
	if seen := alice.s.Store().Seen("lobby"); len(seen) != 1 || seen[0].Count != 0 || seen[0].Body != "m1" {
		t.Fatalf("before anyone wrote: %+v, want m1 not seen", seen)
	}
	bob.say(t, "lobby", "b1")
	ev := waitEvent[client.EventSeen](t, alice.ev)
	if ev.Channel != "lobby" || ev.ID[:16] != hex.EncodeToString(m1[:]) || ev.Count != 1 || !slices.Equal(ev.By, []string{"bob"}) {
		t.Fatalf("seen event %+v, want m1 seen by bob", ev)
	}

	// Carol came after m1: her message names only bob's, which names m1.
	carol := joinMember(t, addr, "lobby", "carol")
	bob.say(t, "lobby", "b2")
	carol.hear(t, "b2")
	carol.say(t, "lobby", "c1")
	ev = waitEvent[client.EventSeen](t, alice.ev)
	if ev.Count != 2 || !slices.Equal(ev.By, []string{"bob", "carol"}) {
		t.Fatalf("seen event %+v, want m1 seen by bob and carol", ev)
	}
	seen := alice.s.Store().Seen("lobby")
	if len(seen) != 1 || seen[0].Count != 2 || !slices.Equal(seen[0].By, []string{"bob", "carol"}) || seen[0].Time.IsZero() {
		t.Fatalf("alice's Store: %+v, want m1 seen by bob and carol", seen)
	}
	// Another message of bob's adds nobody.
	alice.say(t, "lobby", "m2")
	bob.hear(t, "m2")
	bob.say(t, "lobby", "b3")
	ev = waitEvent[client.EventSeen](t, alice.ev)
	if ev.ID[:16] == hex.EncodeToString(m1[:]) || ev.Count != 1 {
		t.Fatalf("seen event %+v, want m2 seen by bob", ev)
	}
	if seen := alice.s.Store().Seen("lobby"); len(seen) != 2 || seen[0].Count != 2 || seen[1].Count != 1 {
		t.Fatalf("alice's Store: %+v", seen)
	}
}

// A node of the previous version (no message_version in its hello) gets
// version-1 messages, which it takes; a version-2 one would fail its
// signature check there.
func TestSessionSendsVersion1ToPreviousVersionNode(t *testing.T) {
	addr := (&clienttest.Server{PreviousVersion: true}).StartTCP(t)
	alice := joinMember(t, addr, "lobby", "alice")
	bob := joinMember(t, addr, "lobby", "bob")
	alice.say(t, "lobby", "a1")
	if m := bob.hear(t, "a1").Message; m.Causal.Present {
		t.Fatalf("alice sent a version-2 message to a node of the previous version: %+v", m.Causal)
	}
	alice.say(t, "lobby", "a2") // say fails the test on anything but ok
	if m := bob.hear(t, "a2").Message; m.Causal.Present || m.Verify() != nil {
		t.Fatalf("second message: causal %+v, verify %v", m.Causal, m.Verify())
	}
}
