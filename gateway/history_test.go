package gateway

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"darkchat/identity"
	"darkchat/p2p"
	"darkchat/proto"
)

func newHistoryID(t testing.TB) string {
	var id [16]byte
	rand.Read(id[:])
	return hex.EncodeToString(id[:])
}

// historyFrame is a history_request as a client reads it.
type historyFrame struct {
	Channel string `json:"channel"`
	ID      string `json:"id"`
	Limit   int    `json:"limit"`
	Since   int64  `json:"since"`
	Before  int64  `json:"before"`
}

// answerHistory plays a client that keeps held (message frames, oldest
// first): it waits for the history_request id (any, if empty) and answers
// with what it holds, newest first, as PROTOCOL.md §2.8 says. Other
// requests are set aside.
func answerHistory(c *client, id string, held []frame) {
	c.t.Helper()
	var r historyFrame
	var aside []frame
	for {
		f := c.expect("history_request")
		if err := json.Unmarshal(f.raw, &r); err != nil {
			c.t.Fatal(err)
		}
		if id == "" || r.ID == id {
			break
		}
		aside = append(aside, f)
	}
	c.stash = append(c.stash, aside...)
	sent := 0
	for i := len(held) - 1; i >= 0 && sent < r.Limit; i-- {
		var m struct {
			TS int64 `json:"ts"`
		}
		json.Unmarshal(held[i].raw, &m)
		if m.TS < r.Since || r.Before != 0 && m.TS >= r.Before {
			continue
		}
		c.sendRaw(fmt.Sprintf(`{"type":"history_answer","id":%q,"message":%s}`, r.ID, held[i].raw))
		sent++
	}
}

type lateFrame struct {
	ID      string `json:"id"`
	Body    string `json:"body"`
	Late    bool   `json:"late"`
	History string `json:"history"`
	Count   int    `json:"count"`
}

func decodeLate(t testing.TB, f frame) lateFrame {
	t.Helper()
	var l lateFrame
	if err := json.Unmarshal(f.raw, &l); err != nil {
		t.Fatal(err)
	}
	return l
}

// historyOf reads c's frames until the history_end of request reqID and
// returns the bodies of the messages that answered it, in order (live
// messages meanwhile are skipped), failing if the end's count differs.
func historyOf(t *testing.T, c *client, reqID string) []string {
	t.Helper()
	var bodies []string
	for {
		f := c.expectOneOf("message", "history_end")
		l := decodeLate(t, f)
		if f.Type == "history_end" {
			if l.ID != reqID || l.Count != len(bodies) {
				t.Fatalf("history_end %s after %d messages of %s", f.raw, len(bodies), reqID)
			}
			return bodies
		}
		if l.History == reqID {
			bodies = append(bodies, l.Body)
		}
	}
}

// lobbyOnTwoNodes starts two linked nodes, alice on the first and bob on
// the second, both in lobby, and waits until the nodes share it.
func lobbyOnTwoNodes(t *testing.T) (a, b *testNode, alice, bob *client) {
	t.Helper()
	a, b = startNode(t, nil), startNode(t, nil)
	linkNodes(t, a, b)
	alice = dialTCP(t, a.tcpAddr)
	alice.login()
	alice.join("lobby", "alice")
	bob = dialTCP(t, b.tcpAddr)
	bob.login()
	bob.join("lobby", "bob")
	waitUntil(t, 30*time.Second, "A and B to find each other in lobby", func() bool {
		return len(a.node.ChannelPeers("lobby")) > 0 && len(b.node.ChannelPeers("lobby")) > 0
	})
	return a, b, alice, bob
}

// A client that was not there asks for the channel's history: the members
// on both nodes are asked, both answer with the same messages, and the
// requester gets each message once, oldest first, marked late, except the
// one it said it has; then history_end with the count.
func TestHistoryFromMembers(t *testing.T) {
	a, _, alice, bob := lobbyOnTwoNodes(t)

	// What alice and bob say; each keeps the other's messages as received
	// and its own as sent.
	const n = 10
	var aliceHeld, bobHeld []frame
	for i := range n {
		from, to := alice, bob
		user := "alice"
		if i%2 == 1 {
			from, to, user = bob, alice, "bob"
		}
		from.say("lobby", user, fmt.Sprintf("line %d", i))
		f := to.expect("message")
		aliceHeld, bobHeld = append(aliceHeld, f), append(bobHeld, f)
	}

	dave := dialTCP(t, a.tcpAddr)
	dave.login()
	dave.join("lobby", "dave")
	reqID := newHistoryID(t)
	have := decodeLate(t, aliceHeld[3]).ID
	dave.sendRaw(fmt.Sprintf(`{"type":"history","channel":"lobby","id":%q,"limit":50,"have":[%q]}`, reqID, have))
	answerHistory(alice, reqID, aliceHeld)
	answerHistory(bob, reqID, bobHeld)

	var got []string
	for {
		f := dave.expectOneOf("message", "history_end")
		l := decodeLate(t, f)
		if f.Type == "history_end" {
			if l.ID != reqID || l.Count != len(got) {
				t.Fatalf("history_end %s after %d messages", f.raw, len(got))
			}
			break
		}
		if !l.Late || l.History != reqID {
			t.Fatalf("history message not marked late for %s: %s", reqID, f.raw)
		}
		got = append(got, l.Body)
	}
	var want []string
	for i := range n {
		if i != 3 {
			want = append(want, fmt.Sprintf("line %d", i))
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("history:\n got %q\nwant %q", got, want)
	}
	// Nobody else got the answers, and the requester was not asked.
	alice.assertNoMore("message")
	bob.assertNoMore("message")
	for _, f := range dave.stash {
		if f.Type == "history_request" && decodeLate(t, f).ID == reqID {
			t.Fatalf("the requester was asked for its own request: %s", f.raw)
		}
	}
}

// What a history request may not do: ask for a channel not joined, reuse
// an ID, come faster than once every 2 s after a burst of 4, or answer a
// request the node did not give the session.
func TestHistoryLimits(t *testing.T) {
	a := startNode(t, nil)
	c := dialTCP(t, a.tcpAddr)
	c.login()
	c.send(map[string]any{"type": "history", "channel": "lobby", "id": newHistoryID(t)})
	if f := c.expectError(codeNotJoined); f.Channel != "lobby" {
		t.Fatalf("not_joined without the channel: %s", f.raw)
	}
	c.join("lobby", "carol")
	c.send(map[string]any{"type": "history", "channel": "lobby", "id": newHistoryID(t), "limit": 201})
	c.expectError(codeBadJSON)
	id := newHistoryID(t)
	c.send(map[string]any{"type": "history", "channel": "lobby", "id": id})
	c.send(map[string]any{"type": "history", "channel": "lobby", "id": id})
	if f := c.expectError(codeDuplicate); f.ID != id {
		t.Fatalf("duplicate without the request's id: %s", f.raw)
	}
	for range 3 {
		c.send(map[string]any{"type": "history", "channel": "lobby", "id": newHistoryID(t)})
	}
	c.expectError(codeRateLimited)

	m, err := identity.NewChannelMessage(c.key, "lobby", "carol", "hi", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	c.sendRaw(fmt.Sprintf(`{"type":"history_answer","id":%q,"message":{"channel":"lobby","username":"carol","key":%q,"body":"hi","ts":%d,"id":%q,"sig":%q}}`,
		newHistoryID(t), c.key.Public().String(), m.Timestamp, hex.EncodeToString(m.ID[:]), hex.EncodeToString(m.Sig[:])))
	c.expectError(codeBadJSON)
	// The first request ends with nothing found.
	if f := c.expect("history_end"); decodeLate(t, f).Count != 0 {
		t.Fatalf("history_end on a channel nobody else is in: %s", f.raw)
	}
}

// sayHeld sends body as c's message in channel and returns it as the
// message frame a client keeps for history.
func sayHeld(c *client, channel, user, body string) frame {
	c.t.Helper()
	return sayHeldAt(c, channel, user, body, time.Now())
}

// sayHeldAt is sayHeld for a message dated at.
func sayHeldAt(c *client, channel, user, body string, at time.Time) frame {
	c.t.Helper()
	m, err := identity.NewChannelMessage(c.key, channel, user, body, at)
	if err != nil {
		c.t.Fatal(err)
	}
	line, err := proto.Encode(proto.NewSend(&m))
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(string(line))
	if f := c.expect("ok"); f.ID != hex.EncodeToString(m.ID[:]) {
		c.t.Fatalf("ok for %s", f.raw)
	}
	raw, err := json.Marshal(proto.NewMessage(&m))
	if err != nil {
		c.t.Fatal(err)
	}
	return frame{Type: "message", raw: raw}
}

// Two nodes apart while their users talk, then joined: each node asks the
// channel for what its members missed, and each user gets the other
// side's messages, marked late, once, without anyone asking.
func TestRepairAfterPartition(t *testing.T) {
	a, b := startNode(t, nil), startNode(t, nil)
	alice := dialTCP(t, a.tcpAddr)
	alice.login()
	alice.join("lobby", "alice")
	bob := dialTCP(t, b.tcpAddr)
	bob.login()
	bob.join("lobby", "bob")

	var aliceHeld, bobHeld []frame
	for i := range 3 {
		// Each a millisecond later than the last at least: repaired
		// messages come in time order, and an author's two messages of
		// one millisecond that name no predecessor (these carry no
		// causal context) have none.
		at := time.Now().Add(time.Duration(i) * time.Millisecond)
		aliceHeld = append(aliceHeld, sayHeldAt(alice, "lobby", "alice", fmt.Sprintf("a%d", i), at))
		bobHeld = append(bobHeld, sayHeldAt(bob, "lobby", "bob", fmt.Sprintf("b%d", i), at))
	}
	linkNodes(t, a, b)
	// Each node asks once the other is its mesh peer in lobby; each
	// client answers from what it keeps.
	answerHistory(alice, "", aliceHeld)
	answerHistory(bob, "", bobHeld)
	for _, tc := range []struct {
		c    *client
		want []string
	}{{alice, []string{"b0", "b1", "b2"}}, {bob, []string{"a0", "a1", "a2"}}} {
		var got []string
		for range tc.want {
			f := tc.c.expect("message")
			l := decodeLate(t, f)
			if !l.Late || l.History != "" {
				t.Fatalf("repaired message not marked late, or with a request: %s", f.raw)
			}
			got = append(got, l.Body)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("repaired:\n got %q\nwant %q", got, tc.want)
		}
		tc.c.assertNoMore("message")
		tc.c.assertNoMore("history_end")
	}
}

// A repair request from another node whose have list names a message
// this node never delivered in a channel with members here shows that
// this node was cut off too: it is behind and repairs the channel itself
// (a healed partition that only the other side noticed). A have list it
// knows all of, one whose only unknown IDs are its newest (still on
// their way), a session's request, or a channel without members here,
// is no reason.
func TestBehindOnAnotherNodesHaveList(t *testing.T) {
	n := startNode(t, nil)
	bob := dialTCP(t, n.tcpAddr)
	bob.login()
	bob.join("lobby", "bob")
	held := sayHeld(bob, "lobby", "bob", "known")
	known, err := hex.DecodeString(decodeLate(t, held).ID)
	if err != nil {
		t.Fatal(err)
	}
	var knownID, unknownID messageID
	copy(knownID[:], known)
	unknownID[0] = 1
	var inFlight []messageID // the requester's newest, unknown here
	for i := range behindInFlight {
		var id messageID
		id[0], id[1] = 2, byte(i)
		inFlight = append(inFlight, id)
	}
	repair := func(channel string, have ...messageID) *historyRequestPayload {
		return &historyRequestPayload{wire: &historyRequestWire{channel: channel, limit: proto.MaxHistoryLimit,
			since: time.Now().Add(-syncSince).UnixMilli(), have: have}, channel: channel}
	}
	// The node records a delivery on its topic's reader, after the ok.
	waitUntil(t, 5*time.Second, "the node to record bob's message", func() bool {
		a := n.gw.history
		a.mu.Lock()
		defer a.mu.Unlock()
		_, ok := a.recentLocked("lobby").set[knownID]
		return ok
	})
	session := repair("lobby", append([]messageID{unknownID}, inFlight...)...)
	session.wire.limit = 10
	for _, tc := range []struct {
		name string
		p    *historyRequestPayload
		want bool
	}{
		{"all known", repair("lobby", append([]messageID{knownID}, inFlight...)...), false},
		{"empty", repair("lobby"), false},
		{"one unknown", repair("lobby", append([]messageID{knownID, unknownID}, inFlight...)...), true},
		{"a session's request", session, false},
		{"no members", repair("elsewhere", append([]messageID{unknownID}, inFlight...)...), false},
	} {
		if got := n.gw.behind(tc.p); got != tc.want {
			t.Errorf("%s: behind = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// Another node's repair request covers this node's only while what it
// lists as its newest has come here too: the newest it lists that this
// node lacks are pending (they may be on their way), and once they have
// come the cover holds; if they never come, the requester, which has
// them, asks for nothing that brings them (a message sent while two nodes
// had no path).
func TestCoverWaitsForTheRequestersNewest(t *testing.T) {
	n := startNode(t, nil)
	bob := dialTCP(t, n.tcpAddr)
	bob.login()
	bob.join("lobby", "bob")
	ids := make([]messageID, 2)
	for i := range ids {
		held := sayHeld(bob, "lobby", "bob", fmt.Sprintf("m%d", i))
		raw, err := hex.DecodeString(decodeLate(t, held).ID)
		if err != nil {
			t.Fatal(err)
		}
		copy(ids[i][:], raw)
	}
	waitUntil(t, 5*time.Second, "the node to record bob's messages", func() bool { return n.gw.deliveredAll("lobby", ids) })
	var lacking messageID
	lacking[0] = 7
	// The requester has both messages, and one more this node lacks,
	// its newest; the requests come after the messages were delivered
	// here more than coverInFlight ago, as knowsAllWeDo counts them.
	request := func(have ...messageID) *historyRequestPayload {
		var key messageID
		key[0] = 9
		f := newHaveFilter(len(have), key)
		for _, id := range have {
			f.add(id)
		}
		return &historyRequestPayload{wire: &historyRequestWire{channel: "lobby", limit: proto.MaxHistoryLimit,
			since: time.Now().Add(-syncSince).UnixMilli(), have: have, filter: f}, channel: "lobby"}
	}
	// A delivery counts against a requester only coverInFlight after it
	// (before, it may still be on its way there): then one that lacks
	// this node's message does not cover it.
	waitUntil(t, 5*time.Second, "a requester lacking bob's second message to cover no more", func() bool {
		_, covers := n.gw.knowsAllWeDo(request(ids[0]))
		return !covers
	})
	if pending, covers := n.gw.knowsAllWeDo(request(ids...)); !covers || len(pending) != 0 {
		t.Errorf("a level requester: covers %v, pending %x", covers, pending)
	}
	pending, covers := n.gw.knowsAllWeDo(request(append(ids, lacking)...))
	if !covers || !slices.Equal(pending, []messageID{lacking}) {
		t.Fatalf("a requester with one more: covers %v, pending %x, want covering with %x pending", covers, pending, lacking)
	}
	if n.gw.deliveredAll("lobby", pending) {
		t.Error("the pending message counts as delivered here")
	}
}

// oldMessages signs n messages of key's in lobby ("old 0" … "old n-1"),
// a second apart and ending now, as a client keeps them: their message
// objects, IDs (hex) and timestamps.
func oldMessages(t *testing.T, key identity.PrivateKey, n int) (held []frame, ids []string, stamps []int64) {
	t.Helper()
	start := time.Now().Add(-time.Duration(n) * time.Second)
	for i := range n {
		m, err := identity.NewChannelMessage(key, "lobby", "bob", fmt.Sprintf("old %d", i), start.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(proto.NewMessage(&m))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, frame{Type: "message", raw: raw})
		ids = append(ids, hex.EncodeToString(m.ID[:]))
		stamps = append(stamps, m.Timestamp)
	}
	return held, ids, stamps
}

// A member answers newest first, at most limit messages a page: when the
// requester has the newest ones, they crowd out a full page, and the
// member's node asks it for the page before, and the one before that,
// until the requester has limit messages it lacked.
func TestMemberPagesPastWhatTheRequesterHas(t *testing.T) {
	_, _, alice, bob := lobbyOnTwoNodes(t)

	// bob keeps 250 messages, a second apart; alice has the newest 150.
	const kept, had, limit = 250, 150, 100
	held, ids, _ := oldMessages(t, bob.key, kept)
	have, err := json.Marshal(ids[kept-had:])
	if err != nil {
		t.Fatal(err)
	}
	reqID := newHistoryID(t)
	alice.sendRaw(fmt.Sprintf(`{"type":"history","channel":"lobby","id":%q,"limit":%d,"have":%s}`, reqID, limit, have))
	// Pages: the newest 100 (all had), the 100 before them (50 had, 50
	// not), then the 100 before those.
	for range 3 {
		answerHistory(bob, reqID, held)
	}
	var got []string
	for {
		f := alice.expectOneOf("message", "history_end")
		if f.Type == "history_end" {
			break
		}
		got = append(got, decodeLate(t, f).Body)
	}
	var want []string
	for i := kept - had - limit; i < kept-had; i++ {
		want = append(want, fmt.Sprintf("old %d", i))
	}
	if !slices.Equal(got, want) {
		t.Errorf("history through pages:\n got %q\nwant %q", got, want)
	}
	bob.assertNoMoreOf("history_request", reqID)
}

// A session's request with before gets the newest messages dated before
// it (a client's gap request finds a message older than the channel's
// newest page), and one whose before is not after since is refused.
func TestHistoryBefore(t *testing.T) {
	_, _, alice, bob := lobbyOnTwoNodes(t)
	const kept, limit, gap = 300, 10, 40 // alice lacks message 40 of bob's 300
	held, _, stamps := oldMessages(t, bob.key, kept)
	reqID := newHistoryID(t)
	alice.sendRaw(fmt.Sprintf(`{"type":"history","channel":"lobby","id":%q,"limit":%d,"before":%d}`, reqID, limit, stamps[gap+1]+1))
	answerHistory(bob, reqID, held)
	var want []string
	for i := gap + 2 - limit; i <= gap+1; i++ {
		want = append(want, fmt.Sprintf("old %d", i))
	}
	if got := historyOf(t, alice, reqID); !slices.Equal(got, want) {
		t.Errorf("history before message %d:\n got %q\nwant %q", gap+1, got, want)
	}

	bad := newHistoryID(t)
	alice.sendRaw(fmt.Sprintf(`{"type":"history","channel":"lobby","id":%q,"since":%d,"before":%d}`, bad, stamps[5], stamps[5]))
	if f := alice.expectError(codeBadJSON); !strings.Contains(f.Message, "before") {
		t.Errorf("before not after since: %s", f.raw)
	}
}

// A member answers with what its client holds, newest first; what the
// answering node delivered after the request reached it is on its way to
// the requester as well (live, or in answers, which every node hears),
// and is not sent again.
func TestAnswersLeaveOutWhatCameAfterTheRequest(t *testing.T) {
	a, _, alice, bob := lobbyOnTwoNodes(t)
	said := sayHeld(alice, "lobby", "alice", "before the request")
	bob.expect("message")

	dave := dialTCP(t, a.tcpAddr)
	dave.login()
	dave.join("lobby", "dave")
	reqID := newHistoryID(t)
	dave.sendRaw(fmt.Sprintf(`{"type":"history","channel":"lobby","id":%q,"limit":50}`, reqID))
	// The request has reached bob's node; then alice says more.
	f := bob.expect("history_request")
	bob.stash = append(bob.stash, f)
	after := sayHeld(alice, "lobby", "alice", "after the request")
	bob.expect("message")
	held := []frame{said, after}
	answerHistory(bob, reqID, held)
	answerHistory(alice, reqID, held)

	history := historyOf(t, dave, reqID)
	if want := []string{"before the request"}; !slices.Equal(history, want) {
		t.Errorf("history %q, want %q", history, want)
	}
}

// A session's history request leaves out what its node delivered to it
// since it joined, even when its client lists none of it in have: the
// answers bring only what it has not shown.
func TestHistoryLeavesOutWhatTheSessionWasGiven(t *testing.T) {
	_, _, alice, bob := lobbyOnTwoNodes(t)
	old, err := identity.NewChannelMessage(bob.key, "lobby", "bob", "before alice came", time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(proto.NewMessage(&old))
	if err != nil {
		t.Fatal(err)
	}
	seen := sayHeld(bob, "lobby", "bob", "alice saw this")
	alice.expect("message")

	reqID := newHistoryID(t)
	alice.sendRaw(fmt.Sprintf(`{"type":"history","channel":"lobby","id":%q,"limit":50}`, reqID))
	answerHistory(bob, reqID, []frame{{Type: "message", raw: raw}, seen})
	history := historyOf(t, alice, reqID)
	if want := []string{"before alice came"}; !slices.Equal(history, want) {
		t.Errorf("history %q, want %q", history, want)
	}
}

// The node remembers the last recentIDs delivered IDs of a channel, and
// lists the newest of them, oldest first.
func TestRecentDelivered(t *testing.T) {
	r := &recentDelivered{set: make(map[messageID]int64)}
	id := func(i int) messageID { var m messageID; m[0], m[1] = byte(i>>8), byte(i); return m }
	for i := range recentIDs + 10 {
		r.add(id(i))
		r.add(id(i)) // twice: counted once
	}
	if len(r.set) != recentIDs {
		t.Fatalf("%d IDs remembered, want %d", len(r.set), recentIDs)
	}
	if _, ok := r.set[id(9)]; ok {
		t.Error("the oldest IDs were not forgotten")
	}
	got := r.newest(3)
	if want := []messageID{id(recentIDs + 7), id(recentIDs + 8), id(recentIDs + 9)}; !slices.Equal(got, want) {
		t.Errorf("newest(3) = %x, want %x", got, want)
	}
}

// The validator's side of history: requests are budgeted per forwarding
// peer and per node; an answer is accepted only for a request seen, only
// with messages new for it and validly signed, so a second member's
// answer with the same messages goes no further, and a forged one is
// rejected (held against the peer), not ignored.
func TestHistoryTracker(t *testing.T) {
	now := time.Now()
	tr := newHistoryTracker()
	req := func(from peer.ID, i int) error {
		w := &historyRequestWire{channel: "lobby", limit: 5}
		w.id[0], w.id[1] = byte(i>>8), byte(i)
		_, err := tr.request(from, w.marshal(), now)
		return err
	}
	for i := range peerHistoryBurst {
		if err := req("p1", i); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if err := req("p1", 1000); !errors.Is(err, p2p.ErrIgnore) {
		t.Fatalf("a peer's request over its budget: %v, want ignored", err)
	}
	accepted := peerHistoryBurst
	for i := range 2 * nodeHistoryBurst {
		if req(peer.ID(fmt.Sprint("p", i+2)), 2000+i) == nil {
			accepted++
		}
	}
	if accepted != nodeHistoryBurst {
		t.Errorf("%d requests from many peers accepted at once, want the node's burst %d", accepted, nodeHistoryBurst)
	}

	key, _ := identity.GenerateKey()
	var wires [][]byte
	for i := range 3 {
		m, err := identity.NewChannelMessage(key, "lobby", "bob", fmt.Sprint(i), now)
		if err != nil {
			t.Fatal(err)
		}
		w, _ := m.MarshalBinary()
		wires = append(wires, w)
	}
	var id messageID // request 0, seen above
	ans := marshalHistoryAnswers(id, "lobby", wires)
	if len(ans) != 1 {
		t.Fatalf("%d answers for 3 small messages", len(ans))
	}
	p, err := tr.answer(ans[0], now, DefaultTimestampWindow)
	if err != nil || len(p.(*historyAnswerPayload).msgs) != 3 {
		t.Fatalf("first answer: %v, %v", p, err)
	}
	if _, err := tr.answer(ans[0], now, DefaultTimestampWindow); !errors.Is(err, p2p.ErrIgnore) {
		t.Errorf("the same answer again: %v, want ignored", err)
	}
	var unknown messageID
	unknown[0] = 0xff
	if _, err := tr.answer(marshalHistoryAnswers(unknown, "lobby", wires)[0], now, DefaultTimestampWindow); !errors.Is(err, p2p.ErrIgnore) {
		t.Errorf("an answer to an unknown request: %v, want ignored", err)
	}
	forged := slices.Clone(wires[0])
	forged[len(forged)-1] ^= 1 // the signature's last byte
	var id2 messageID
	id2[1] = 1 // request 1
	if _, err := tr.answer(marshalHistoryAnswers(id2, "lobby", [][]byte{forged})[0], now, DefaultTimestampWindow); err == nil || errors.Is(err, p2p.ErrIgnore) {
		t.Errorf("a forged message in an answer: %v, want rejected", err)
	}
	// Among valid ones, verified as a batch: the answer is rejected all
	// the same, and nothing of it counts as answered.
	var fresh [][]byte
	for i := range 4 {
		m, _ := identity.NewChannelMessage(key, "lobby", "bob", fmt.Sprint("more ", i), now)
		w, _ := m.MarshalBinary()
		fresh = append(fresh, w)
	}
	forged2 := slices.Clone(fresh[2])
	forged2[len(forged2)-1] ^= 1
	mixed := [][]byte{fresh[0], fresh[1], forged2, fresh[3]}
	if _, err := tr.answer(marshalHistoryAnswers(id2, "lobby", mixed)[0], now, DefaultTimestampWindow); !errors.Is(err, identity.ErrBadSignature) {
		t.Errorf("a forged message among valid ones in an answer: %v, want rejected for its signature", err)
	}
	if p, err := tr.answer(marshalHistoryAnswers(id2, "lobby", fresh)[0], now, DefaultTimestampWindow); err != nil || len(p.(*historyAnswerPayload).msgs) != 4 {
		t.Errorf("the valid messages after a rejected answer: %v, %v", p, err)
	}
	if _, err := tr.answer(marshalHistoryAnswers(id2, "other", wires)[0], now, DefaultTimestampWindow); !errors.Is(err, p2p.ErrIgnore) {
		t.Errorf("an answer naming another channel than its request: %v, want ignored", err)
	}
}

// Two members answering one request with limit messages each disagree at
// the edge of the page: one sends a newer message the other skipped, the
// other sends the oldest of the page. A node that hears the first answer
// first still accepts, and so delivers and forwards, all of the second:
// dropping its oldest message left the nodes that overhear a repair
// without it (the requester got it by another path and pages below it).
// A third answer past twice the limit is cut.
func TestHistoryTrackerTakesAnswerersWhoDisagree(t *testing.T) {
	const limit = 5
	now := time.Now()
	tr := newHistoryTracker()
	w := &historyRequestWire{channel: "lobby", limit: limit}
	w.id[0] = 7
	if _, err := tr.request("p1", w.marshal(), now); err != nil {
		t.Fatal(err)
	}
	key, _ := identity.GenerateKey()
	msgs := make([][]byte, 3*limit) // oldest first
	for i := range msgs {
		m, err := identity.NewChannelMessage(key, "lobby", "bob", fmt.Sprint(i), now.Add(time.Duration(i-len(msgs))*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		msgs[i], _ = m.MarshalBinary()
	}
	accepted := func(wires [][]byte) int {
		t.Helper()
		p, err := tr.answer(marshalHistoryAnswers(w.id, "lobby", wires)[0], now, DefaultTimestampWindow)
		if errors.Is(err, p2p.ErrIgnore) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		return len(p.(*historyAnswerPayload).msgs)
	}
	newest := len(msgs) - 1
	// The first member skipped the page's oldest (msgs[newest-limit])
	// for the newest, which the second member skipped.
	first := msgs[newest-limit+1 : newest+1]
	second := msgs[newest-limit : newest]
	if n := accepted(first); n != limit {
		t.Fatalf("first answer: %d of %d accepted", n, limit)
	}
	if n := accepted(second); n != 1 {
		t.Fatalf("second answer, whose one new message is the page's oldest: %d accepted, want 1", n)
	}
	if n := accepted(msgs[:newest-limit]); n != limit-1 {
		t.Fatalf("a third answer with %d more: %d accepted, want %d (twice the limit in all)", newest-limit, n, limit-1)
	}
}

// Every history wire form decodes to what was encoded, and truncated or
// padded ones are refused.
func TestHistoryWire(t *testing.T) {
	w := &historyRequestWire{channel: "lobby", limit: 7, since: 1234, have: []messageID{{1}, {2}}}
	w.id[3] = 9
	b := w.marshal()
	got, err := unmarshalHistoryRequest(b)
	if err != nil || got.channel != "lobby" || got.limit != 7 || got.since != 1234 || len(got.have) != 2 || got.have[1] != (messageID{2}) || got.id != w.id {
		t.Fatalf("request round trip: %+v, %v", got, err)
	}
	for _, bad := range [][]byte{b[:len(b)-1], append(slices.Clone(b), 0), b[:20]} {
		if _, err := unmarshalHistoryRequest(bad); err == nil {
			t.Errorf("accepted a request of %d bytes", len(bad))
		}
	}
	// A repair's page: a bound and a filter of what the node has.
	w.before, w.filter = 5678, newHaveFilter(3, w.id)
	w.filter.add(messageID{7})
	b = w.marshal()
	got, err = unmarshalHistoryRequest(b)
	if err != nil || got.before != 5678 || got.filter == nil || !got.filter.has(messageID{7}) || got.filter.has(messageID{8}) {
		t.Fatalf("request with a filter round trip: %+v, %v", got, err)
	}
	for _, bad := range [][]byte{b[:len(b)-1], append(slices.Clone(b), 0)} {
		if _, err := unmarshalHistoryRequest(bad); err == nil {
			t.Errorf("accepted a request with a filter of %d bytes", len(bad))
		}
	}
	w.before, w.filter = w.since, nil
	if _, err := unmarshalHistoryRequest(w.marshal()); err == nil {
		t.Error("accepted a request whose before is not after its since")
	}
	a := marshalHistoryAnswers(w.id, "lobby", [][]byte{{1, 2, 3}, {4}})[0]
	id, ch, wires, err := unmarshalHistoryAnswer(a)
	if err != nil || id != w.id || ch != "lobby" || len(wires) != 2 || !slices.Equal(wires[0], []byte{1, 2, 3}) {
		t.Fatalf("answer round trip: %x %q %v %v", id, ch, wires, err)
	}
	for _, bad := range [][]byte{a[:len(a)-1], append(slices.Clone(a), 0)} {
		if _, _, _, err := unmarshalHistoryAnswer(bad); err == nil {
			t.Errorf("accepted an answer of %d bytes", len(bad))
		}
	}
}

// The have filter: every ID added is found; of IDs never added, about
// the rate it is sized for are; and another request's key (its ID) errs
// on other IDs, so the next request repairs what a false positive kept
// back.
func TestHaveFilter(t *testing.T) {
	const n = recentIDs
	id := func(i int) messageID {
		var m messageID
		binary.BigEndian.PutUint64(m[:], uint64(i))
		m[15] = 0xd5
		return m
	}
	var k1, k2 messageID
	k1[0], k2[0] = 1, 2
	f1, f2 := newHaveFilter(n, k1), newHaveFilter(n, k2)
	if len(f1.bits) != maxHaveFilterBytes {
		t.Errorf("filter for %d IDs has %d bytes, want %d", n, len(f1.bits), maxHaveFilterBytes)
	}
	for i := range n {
		f1.add(id(i))
		f2.add(id(i))
	}
	for i := range n {
		if !f1.has(id(i)) {
			t.Fatalf("ID %d added and not found", i)
		}
	}
	const trials = 200_000
	fp1, both := 0, 0
	for i := n; i < n+trials; i++ {
		if f1.has(id(i)) {
			fp1++
			if f2.has(id(i)) {
				both++
			}
		}
	}
	// 32 bits and 16 hashes an entry: about 3e-7 expected, 0.07 of the
	// trials.
	if fp1 > 2 {
		t.Errorf("%d false positives in %d, want about 3e-7 of them", fp1, trials)
	}
	if both > 2 {
		t.Errorf("%d IDs were false positives under both keys: the key does not change where the filter errs", both)
	}
	// Its count estimate tells a requester level with a node from one
	// that has more (knowsAllWeDo).
	for _, want := range []int{n, 300} {
		f := newHaveFilter(want, k1)
		for i := range want {
			f.add(id(i))
		}
		if est := f.estimatedCount(); math.Abs(est-float64(want)) > 0.03*float64(want) {
			t.Errorf("a filter of %d IDs estimates %.1f", want, est)
		}
	}
	if small := newHaveFilter(3, k1); len(small.bits) != minHaveFilterBytes {
		t.Errorf("filter for 3 IDs has %d bytes, want %d", len(small.bits), minHaveFilterBytes)
	}
}
