package gateway

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"darkchat/identity"
	"darkchat/p2p"
	"darkchat/proto"
)

// presenceFields signs the here and gone records of a join or refresh.
func (c *client) presenceFields(channel, user string, sess identity.PresenceSession, at time.Time, ttl time.Duration) (here, gone string) {
	c.t.Helper()
	h, g, err := identity.NewPresencePair(c.key, channel, user, sess, at, ttl)
	if err != nil {
		c.t.Fatal(err)
	}
	here, _ = proto.EncodePresence(&h)
	gone, _ = proto.EncodePresence(&g)
	return here, gone
}

var presenceClock atomic.Int64

// presenceNow is now, or a millisecond after the last time it returned.
func presenceNow() time.Time {
	for {
		last, now := presenceClock.Load(), time.Now().UnixMilli()
		next := max(now, last+1)
		if presenceClock.CompareAndSwap(last, next) {
			return time.UnixMilli(next)
		}
	}
}

// joinListed joins channel as user with presence records for sess, each
// dated a millisecond after the last at least (a client's records of one
// session are ordered by their timestamps).
func (c *client) joinListed(channel, user string, sess identity.PresenceSession) {
	c.t.Helper()
	here, gone := c.presenceFields(channel, user, sess, presenceNow(), proto.PresenceTTL)
	c.send(map[string]any{"type": "join", "channel": channel, "username": user, "presence": here, "gone": gone})
	c.expect("joined")
}

// names asks for channel's members and returns "name=key8" sorted as the
// node sent them.
func (c *client) names(channel string) []string {
	c.t.Helper()
	c.send(map[string]any{"type": "names", "channel": channel})
	var out []string
	for {
		f := c.expect("names")
		var n proto.Names
		if err := json.Unmarshal(f.raw, &n); err != nil {
			c.t.Fatal(err)
		}
		if n.Channel != channel || n.Members == nil {
			c.t.Fatalf("names answer %s", f.raw)
		}
		for _, m := range n.Members {
			out = append(out, m.Username+"="+m.Key[:8])
		}
		if !n.More {
			return out
		}
	}
}

// expectPresence waits for a presence event and returns it.
func (c *client) expectPresence() proto.PresenceEvent {
	c.t.Helper()
	f := c.expect("presence")
	var ev proto.PresenceEvent
	if err := json.Unmarshal(f.raw, &ev); err != nil {
		c.t.Fatal(err)
	}
	return ev
}

// expectPresenceOf skips presence events of other keys.
func (c *client) expectPresenceOf(key identity.PublicKey) proto.PresenceEvent {
	c.t.Helper()
	for {
		if ev := c.expectPresence(); ev.Key == key.String() {
			return ev
		}
	}
}

func entry(c *client, name string) string { return name + "=" + c.key.Public().String()[:8] }

// Two sessions on one node: names lists the listed ones, sorted by name;
// the other sessions hear joins, renames and leaves; a session that does
// not give records is not listed; a session that goes away is gone.
func TestPresenceOnOneNode(t *testing.T) {
	n := startNode(t, nil)
	alice, bob, carol := dialTCP(t, n.tcpAddr), dialTCP(t, n.tcpAddr), dialTCP(t, n.tcpAddr)
	alice.loginWithBundle()
	bob.login()
	carol.login()
	alice.joinListed("dev", "alice", identity.PresenceSession{1})
	if ev := alice.expectPresence(); ev.State != "here" || ev.Username != "alice" || ev.Sessions != 1 {
		t.Fatalf("alice's own event: %+v", ev)
	}
	bob.joinListed("dev", "bob", identity.PresenceSession{2})
	if ev := alice.expectPresenceOf(bob.key.Public()); ev.State != "here" || ev.Username != "bob" || ev.Channel != "dev" {
		t.Fatalf("alice saw %+v", ev)
	}
	carol.join("dev", "carol") // unlisted
	if got, want := bob.names("dev"), []string{entry(alice, "alice"), entry(bob, "bob")}; !slices.Equal(got, want) {
		t.Fatalf("names: %v, want %v", got, want)
	}
	if got := carol.names("dev"); len(got) != 2 {
		t.Fatalf("carol's names: %v", got)
	}

	// A rename is a here with the new name; the old name is not listed.
	bob.joinListed("dev", "robert", identity.PresenceSession{2})
	if ev := alice.expectPresenceOf(bob.key.Public()); ev.State != "here" || ev.Username != "robert" {
		t.Fatalf("rename: %+v", ev)
	}
	// Leaving publishes the gone.
	bob.send(map[string]any{"type": "leave", "channel": "dev"})
	bob.expect("left")
	if ev := alice.expectPresenceOf(bob.key.Public()); ev.State != "gone" || ev.Username != "robert" {
		t.Fatalf("leave: %+v", ev)
	}
	if got, want := alice.names("dev"), []string{entry(alice, "alice")}; !slices.Equal(got, want) {
		t.Fatalf("names after the leave: %v, want %v", got, want)
	}

	// whois says where the user is listed, among the asker's channels.
	carol.send(map[string]any{"type": "whois", "key": alice.key.Public().String()})
	f := carol.expect("bundle")
	var b proto.Bundle
	json.Unmarshal(f.raw, &b)
	if len(b.Present) != 1 || b.Present[0] != (proto.Present{Channel: "dev", Username: "alice"}) {
		t.Fatalf("whois: %s", f.raw)
	}

	// A session that goes away is gone too.
	dave := dialTCP(t, n.tcpAddr)
	dave.login()
	dave.joinListed("dev", "dave", identity.PresenceSession{4})
	if ev := alice.expectPresenceOf(dave.key.Public()); ev.State != "here" {
		t.Fatalf("dave: %+v", ev)
	}
	dave.tcp.Close()
	if ev := alice.expectPresenceOf(dave.key.Public()); ev.State != "gone" || ev.Username != "dave" {
		t.Fatalf("dave's disconnect: %+v", ev)
	}
}

// One key on two sessions is one member with two sessions: one leaving
// does not make it gone.
func TestPresenceTwoSessionsOfOneKey(t *testing.T) {
	n := startNode(t, nil)
	a1, a2, bob := dialTCP(t, n.tcpAddr), dialTCP(t, n.tcpAddr), dialTCP(t, n.tcpAddr)
	a2.key = a1.key
	for _, c := range []*client{a1, a2, bob} {
		c.login()
	}
	bob.join("dev", "bob")
	a1.joinListed("dev", "alice", identity.PresenceSession{1})
	bob.expectPresenceOf(a1.key.Public())
	a2.joinListed("dev", "alice", identity.PresenceSession{2})
	if ev := a1.expectPresenceOf(a1.key.Public()); ev.Sessions != 1 {
		t.Fatalf("first: %+v", ev)
	}
	if ev := a1.expectPresenceOf(a1.key.Public()); ev.State != "here" || ev.Sessions != 2 {
		t.Fatalf("a1 told of its key's second session: %+v", ev)
	}
	a2.send(map[string]any{"type": "leave", "channel": "dev"})
	a2.expect("left")
	if ev := bob.expectPresenceOf(a1.key.Public()); ev.State != "here" || ev.Sessions != 1 {
		// bob saw sessions 2 first
		if ev2 := bob.expectPresenceOf(a1.key.Public()); ev2.State != "here" || ev2.Sessions != 1 {
			t.Fatalf("after one session left: %+v then %+v", ev, ev2)
		}
	}
	if got := bob.names("dev"); len(got) != 1 {
		t.Fatalf("names: %v", got)
	}
}

// Alice on node A and bob on node B, real libp2p nodes: each node's names
// lists both within 5 s (B learns alice, who joined before it carried the
// channel, from A's table); bob's leave reaches alice as gone.
func TestPresenceAcrossNodes(t *testing.T) {
	a, b := startNode(t, nil), startNode(t, nil)
	linkNodes(t, a, b)
	alice := dialTCP(t, a.tcpAddr)
	alice.login()
	alice.joinListed("lobby", "alice", identity.PresenceSession{1})
	bob := dialTCP(t, b.tcpAddr)
	bob.login()
	start := time.Now()
	bob.joinListed("lobby", "bob", identity.PresenceSession{2})
	want := []string{entry(alice, "alice"), entry(bob, "bob")}
	waitUntil(t, 5*time.Second, "both nodes to list alice and bob", func() bool {
		return slices.Equal(memberNames(a, "lobby"), want) && slices.Equal(memberNames(b, "lobby"), want)
	})
	t.Logf("both listed after %v", time.Since(start).Round(time.Millisecond))
	if got := bob.names("lobby"); !slices.Equal(got, want) {
		t.Fatalf("bob's names: %v", got)
	}
	alice.expectPresenceOf(bob.key.Public())
	bob.send(map[string]any{"type": "leave", "channel": "lobby"})
	bob.expect("left")
	if ev := alice.expectPresenceOf(bob.key.Public()); ev.State != "gone" {
		t.Fatalf("alice saw %+v", ev)
	}
	if got := alice.names("lobby"); !slices.Equal(got, want[:1]) {
		t.Fatalf("alice's names after bob left: %v", got)
	}
}

func memberNames(n *testNode, channel string) []string {
	var out []string
	for _, m := range n.gw.presence.members(channel) {
		out = append(out, m.Username+"="+m.Key[:8])
	}
	return out
}

// A member whose records are not refreshed expires: the others are told
// it is gone.
func TestPresenceExpiry(t *testing.T) {
	n := startNode(t, nil)
	alice, bob := dialTCP(t, n.tcpAddr), dialTCP(t, n.tcpAddr)
	alice.login()
	bob.login()
	alice.join("dev", "alice")
	here, gone := bob.presenceFields("dev", "bob", identity.PresenceSession{9}, time.Now(), 2*time.Second)
	bob.send(map[string]any{"type": "join", "channel": "dev", "username": "bob", "presence": here, "gone": gone})
	bob.expect("joined")
	if ev := alice.expectPresenceOf(bob.key.Public()); ev.State != "here" {
		t.Fatal(ev)
	}
	start := time.Now()
	if ev := alice.expectPresenceOf(bob.key.Public()); ev.State != "gone" {
		t.Fatal(ev)
	}
	if d := time.Since(start); d > 2*time.Second+presenceSweepEvery+time.Second {
		t.Errorf("expiry told after %v", d)
	}
	if got := alice.names("dev"); len(got) != 0 {
		t.Fatalf("names: %v", got)
	}
}

// Bad records are refused with an error naming the channel and the
// problem, and the join does not happen.
func TestPresenceBadRecords(t *testing.T) {
	n := startNode(t, nil)
	c := dialTCP(t, n.tcpAddr)
	c.login()
	other, _ := identity.GenerateKey()
	now := time.Now()
	sess := identity.PresenceSession{5}
	sign := func(key identity.PrivateKey, channel, user string, at time.Time, ttl time.Duration) (string, string) {
		h, g, err := identity.NewPresencePair(key, channel, user, sess, at, ttl)
		if err != nil {
			t.Fatal(err)
		}
		hs, _ := proto.EncodePresence(&h)
		gs, _ := proto.EncodePresence(&g)
		return hs, gs
	}
	h, g := sign(c.key, "dev", "alice", now, time.Minute)
	oh, og := sign(other, "dev", "alice", now, time.Minute)
	_, g2 := sign(c.key, "dev", "alice", now.Add(time.Second), time.Minute)
	sh, sg := sign(c.key, "dev", "alice", now.Add(-5*time.Minute), 10*time.Minute)
	flip := func(s string) string { // the last signature byte
		b := []byte(s)
		b[len(b)-1] ^= 1
		if b[len(b)-1] > 'f' || (b[len(b)-1] > '9' && b[len(b)-1] < 'a') {
			b[len(b)-1] = '0'
		}
		return string(b)
	}
	for _, tc := range []struct {
		name, here, gone, user, code, says string
	}{
		{"another key's records", oh, og, "alice", "bad_key", "signed by your key"},
		{"another username", h, g, "bob", "bad_username", `name "alice"`},
		{"here and gone of different timestamps", h, g2, "alice", "bad_json", "share session"},
		{"here and gone swapped", g, h, "alice", "bad_json", "here record"},
		{"dated outside the window", sh, sg, "alice", "bad_timestamp", "check your clock"},
		{"gone's signature", h, flip(g), "alice", "bad_signature", "gone record"},
		{"here's signature", flip(h), g, "alice", "bad_signature", "here record"},
		{"not hex", "zz" + h[2:], g, "alice", "bad_json", "presence"},
		{"gone missing", h, "", "alice", "bad_json", "gone"},
	} {
		c.send(map[string]any{"type": "join", "channel": "dev", "username": tc.user, "presence": tc.here, "gone": tc.gone})
		f := c.expectError(tc.code)
		if f.Channel != "dev" || !strings.Contains(f.Message, tc.says) {
			t.Errorf("%s: %s", tc.name, f.raw)
		}
	}
	c.send(map[string]any{"type": "names", "channel": "dev"})
	c.expectError("not_joined")
	if n.gw.presence.carries("dev") {
		t.Error("the node carries dev after refused joins")
	}
}

// Refreshes beyond the per-key limit are refused as rate_limited; the
// client is told which channel.
func TestPresenceRefreshLimit(t *testing.T) {
	n := startNode(t, nil)
	c := dialTCP(t, n.tcpAddr)
	c.login()
	sess := identity.PresenceSession{3}
	c.joinListed("dev", "alice", sess)
	for i := 1; ; i++ {
		here, gone := c.presenceFields("dev", "alice", sess, presenceNow(), proto.PresenceTTL)
		c.send(map[string]any{"type": "presence", "channel": "dev", "presence": here, "gone": gone})
		if i < presenceBurst {
			c.assertNoMore("error")
			continue
		}
		if f := c.expectError("rate_limited"); f.Channel != "dev" {
			t.Fatalf("%s", f.raw)
		}
		break
	}
	c.send(map[string]any{"type": "presence", "channel": "other", "presence": "00", "gone": "00"})
	c.expectError("not_joined")
}

// The member table's bounds: a key's sessions, a channel's entries; what
// does not fit is refused and counted, and expired entries make room.
func TestPresenceTableBounds(t *testing.T) {
	srv := &Server{cfg: Config{Now: time.Now}}
	tab := newPresenceTable(srv)
	tab.listen(&session{srv: srv, closing: true}, "dev")
	key, _ := identity.GenerateKey()
	now := time.Now()
	rec := func(k identity.PrivateKey, i int, ttl time.Duration) *identity.Presence {
		var s identity.PresenceSession
		s[0], s[1], s[2] = byte(i), byte(i>>8), byte(i>>16)
		h, _, err := identity.NewPresencePair(k, "dev", "u", s, now, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return &h
	}
	for i := range maxPresenceSessionsPerKey {
		if !tab.apply(rec(key, i, time.Minute), nil, now) {
			t.Fatalf("session %d refused", i)
		}
	}
	if tab.apply(rec(key, maxPresenceSessionsPerKey, time.Minute), nil, now) || tab.refusedKeyFull.Load() != 1 {
		t.Fatal("a key's sessions are not bounded")
	}
	// Fill the channel with other keys' records (signatures do not matter
	// to the table: the validator checked them).
	filler := identity.Presence{Channel: "dev", Username: "f", State: identity.PresenceHere, Timestamp: now.UnixMilli(), Expires: now.Add(time.Second).UnixMilli()}
	for i := maxPresenceSessionsPerKey; i < maxPresencePerChannel; i++ {
		r := filler
		r.Key[0], r.Key[1], r.Key[2] = byte(i), byte(i>>8), 0xee
		if !tab.apply(&r, nil, now) {
			t.Fatalf("entry %d refused", i)
		}
	}
	other, _ := identity.GenerateKey()
	if tab.apply(rec(other, 1, time.Minute), nil, now) || tab.refusedChannelFull.Load() != 1 {
		t.Fatal("a channel's entries are not bounded")
	}
	if got := len(tab.members("dev")); got != maxPresencePerChannel-maxPresenceSessionsPerKey+1 {
		t.Fatalf("%d members listed", got)
	}
	// Once the fillers expire, the sweep on a full channel makes room.
	later := now.Add(2 * time.Second)
	r := rec(other, 1, time.Minute)
	if !tab.apply(r, nil, later) {
		t.Fatal("expired entries did not make room")
	}
	if got := len(tab.members("dev")); got != 2 {
		t.Fatalf("%d members after the sweep", got)
	}
	tab.unlisten(&session{}, "dev")
	if tab.total == 0 {
		t.Fatal("a listener that was not there emptied the channel")
	}
	for s := range tab.channels["dev"].listeners {
		tab.unlisten(s, "dev")
	}
	if tab.total != 0 || tab.carries("dev") {
		t.Fatalf("%d entries left after the last session left", tab.total)
	}
}

// The mesh validator checks presence records: channel, clock, expiry and
// signature; a record is ignored, not rejected, when it may be an honest
// peer's late forward.
func TestPresenceValidator(t *testing.T) {
	now := time.Now()
	validate := ChannelValidator(func() time.Time { return now }, DefaultTimestampWindow, DefaultAuthorLimit, nil)
	key, _ := identity.GenerateKey()
	wire := func(channel string, at time.Time, ttl time.Duration, tamper bool) []byte {
		h, _, err := identity.NewPresencePair(key, channel, "alice", identity.PresenceSession{1}, at, ttl)
		if err != nil {
			t.Fatal(err)
		}
		if tamper {
			h.Username = "mallory"
		}
		w, _ := h.MarshalBinary()
		return w
	}
	const from = peer.ID("a forwarding peer")
	for _, tc := range []struct {
		name   string
		data   []byte
		ignore bool // else rejected
	}{
		{"other channel", wire("other", now, time.Minute, false), false},
		{"bad signature", wire("dev", now, time.Minute, true), false},
		{"expired", wire("dev", now.Add(-2*time.Minute), time.Minute, false), true},
		{"a little ahead", wire("dev", now.Add(3*time.Minute), time.Minute, false), true},
		{"far ahead", wire("dev", now.Add(5*time.Minute), time.Minute, false), false},
		{"truncated", wire("dev", now, time.Minute, false)[:100], false},
	} {
		_, err := validate(from, "dev", tc.data)
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if ignored := errors.Is(err, p2p.ErrIgnore); ignored != tc.ignore {
			t.Errorf("%s: %v (ignore %v)", tc.name, err, tc.ignore)
		}
	}
	// An old record still valid passes: it may be minutes old.
	p, err := validate(from, "dev", wire("dev", now.Add(-4*time.Minute), 5*time.Minute, false))
	if err != nil {
		t.Fatal(err)
	}
	if pp, ok := p.(*presencePayload); !ok || pp.rec.Username != "alice" {
		t.Fatalf("payload %#v", p)
	}
}
