package gateway

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"darkchat/identity"
	"darkchat/proto"
)

// signCausal signs a channel message of c's with causal context causal
// (version 2 when causal.Present).
func (c *client) signCausal(channel, user, body string, causal identity.Causal) identity.ChannelMessage {
	c.t.Helper()
	m, err := identity.NewChannelMessage(c.key, channel, user, body, time.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	m.Causal = causal
	m.Sign(c.key)
	return m
}

// sendObject sends m as a send object, after edit (if not nil) changed
// its fields.
func (c *client) sendObject(m *identity.ChannelMessage, edit func(map[string]any)) {
	c.t.Helper()
	var obj map[string]any
	if err := json.Unmarshal(proto.AppendSend(nil, m), &obj); err != nil {
		c.t.Fatal(err)
	}
	if edit != nil {
		edit(obj)
	}
	c.send(obj)
}

// deliveredMessage decodes a message frame the way a client does and
// checks that its signature verifies from the frame's fields.
func deliveredMessage(t testing.TB, f frame) (proto.Message, map[string]any, identity.ChannelMessage) {
	t.Helper()
	var pm proto.Message
	var fields map[string]any
	if err := json.Unmarshal(f.raw, &pm); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(f.raw, &fields); err != nil {
		t.Fatal(err)
	}
	cm, err := pm.ChannelMessage()
	if err != nil {
		t.Fatalf("message %s: %v", f.raw, err)
	}
	if err := cm.Verify(); err != nil {
		t.Fatalf("message %s does not verify: %v", f.raw, err)
	}
	return pm, fields, cm
}

func shortHex(ids ...identity.ShortID) string {
	var s string
	for _, id := range ids {
		s += hex.EncodeToString(id[:])
	}
	return s
}

// Version-2 messages (with prev and refs) cross the mesh with their causal
// context intact and verifiable, beside version-1 messages from clients of
// the previous version, and history answers carry both versions; malformed
// causal fields are bad_json, tampered ones bad_signature, and the session
// goes on.
func TestCausalContextAcrossNodes(t *testing.T) {
	a, b := startNode(t, nil), startNode(t, nil)
	linkNodes(t, a, b)
	alice := dialTCP(t, a.tcpAddr) // a client of this version
	alice.login()
	alice.join("lobby", "alice")
	carol := dialTCP(t, a.tcpAddr) // a client of the previous version
	carol.login()
	carol.join("lobby", "carol")
	bob := dialWS(t, b.wsURL)
	bob.login()
	bob.join("lobby", "bob")
	waitUntil(t, 30*time.Second, "A and B to find each other in lobby", func() bool {
		return len(a.node.ChannelPeers("lobby")) > 0 && len(b.node.ChannelPeers("lobby")) > 0
	})

	// (a) prev and two references, from alice on A to bob on B.
	prev := identity.ShortID{0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}
	r1 := identity.ShortID{0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77}
	r2 := identity.ShortID{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7}
	v2 := alice.signCausal("lobby", "alice", "with context", identity.Causal{Present: true, Prev: prev, Refs: [identity.MaxCausalRefs]identity.ShortID{r1, r2}, NRefs: 2})
	alice.sendObject(&v2, nil)
	if f := alice.expect("ok"); f.ID != hex.EncodeToString(v2.ID[:]) {
		t.Fatalf("ok for %s", f.ID)
	}
	got := bob.expect("message")
	pm, _, cm := deliveredMessage(t, got)
	if pm.Prev != shortHex(prev) || pm.Refs != shortHex(r1, r2) {
		t.Fatalf("delivered prev %q refs %q, want %q and %q: %s", pm.Prev, pm.Refs, shortHex(prev), shortHex(r1, r2), got.raw)
	}
	if cm != v2 {
		t.Fatalf("delivered %+v, sent %+v", cm, v2)
	}
	v2Frame := got
	if f := carol.expect("message"); !strings.Contains(string(f.raw), `"prev":"`+shortHex(prev)+`"`) {
		t.Fatalf("carol, on alice's node, got %s", f.raw)
	}

	// (b) carol's client sends what clients of the previous version send:
	// no prev, no refs.
	v1ID := carol.sendMsg("lobby", "carol", "old style", nil)
	if f := carol.expect("ok"); f.ID != v1ID {
		t.Fatalf("ok for %s, want %s", f.ID, v1ID)
	}
	got = bob.expect("message")
	pm, fields, cm := deliveredMessage(t, got)
	if pm.ID != v1ID || cm.Causal.Present || cm.Version() != identity.ChannelMessageVersion {
		t.Fatalf("version-1 message delivered as %s", got.raw)
	}
	for _, k := range []string{"prev", "refs"} {
		if _, ok := fields[k]; ok {
			t.Fatalf("version-1 message delivered with %q: %s", k, got.raw)
		}
	}
	v1Frame := got
	alice.expect("message")

	// (c) malformed causal fields: bad_json naming the field; the
	// session goes on.
	for _, c := range []struct {
		name, field string
		edit        func(map[string]any)
	}{
		{"prev of 15 hex digits", "prev", func(o map[string]any) { o["prev"] = strings.Repeat("a", 15) }},
		{"refs of 24 hex digits", "refs", func(o map[string]any) { o["refs"] = strings.Repeat("b", 24) }},
		{"refs without prev", "refs without prev", func(o map[string]any) { delete(o, "prev") }},
		{"uppercase prev", "prev", func(o map[string]any) { o["prev"] = strings.Repeat("A", 16) }},
		{"three refs", "refs", func(o map[string]any) { o["refs"] = strings.Repeat("c", 48) }},
	} {
		m := alice.signCausal("lobby", "alice", c.name, identity.Causal{Present: true, Prev: prev, Refs: [identity.MaxCausalRefs]identity.ShortID{r1}, NRefs: 1})
		alice.sendObject(&m, c.edit)
		f := alice.expectError("bad_json")
		if f.ID != hex.EncodeToString(m.ID[:]) || !strings.Contains(f.Message, c.field) {
			t.Fatalf("%s: error %s does not name the message and %q", c.name, f.raw, c.field)
		}
	}

	// (d) refs that are valid hex but not what alice signed.
	m := alice.signCausal("lobby", "alice", "tampered", identity.Causal{Present: true, Prev: prev, Refs: [identity.MaxCausalRefs]identity.ShortID{r1, r2}, NRefs: 2})
	alice.sendObject(&m, func(o map[string]any) { o["refs"] = shortHex(r2, r1) })
	if f := alice.expectError("bad_signature"); f.ID != hex.EncodeToString(m.ID[:]) {
		t.Fatalf("bad_signature for %s, want %x", f.ID, m.ID)
	}
	// Nor a version-2 message passed off as version 1.
	m = alice.signCausal("lobby", "alice", "stripped", identity.Causal{Present: true, Prev: prev})
	alice.sendObject(&m, func(o map[string]any) { delete(o, "prev") })
	alice.expectError("bad_signature")

	// The session still works, and a version-2 message without refs
	// (prev only) goes through.
	m = alice.signCausal("lobby", "alice", "still here", identity.Causal{Present: true, Prev: identity.Short(v2.ID)})
	alice.sendObject(&m, nil)
	alice.expect("ok")
	got = bob.expect("message")
	pm, fields, cm = deliveredMessage(t, got)
	if cm != m || pm.Prev != shortHex(identity.Short(v2.ID)) {
		t.Fatalf("delivered %s", got.raw)
	}
	if _, ok := fields["refs"]; ok {
		t.Fatalf("empty refs delivered: %s", got.raw)
	}
	carol.expect("message")
	bob.assertNoMore("message") // none of the refused ones

	// History answers keep the causal context: a newcomer on B asks, bob
	// answers with the frames he received, and the late copies verify.
	carol.send(map[string]any{"type": "leave", "channel": "lobby"})
	carol.expect("left")
	dave := dialTCP(t, b.tcpAddr)
	dave.login()
	dave.join("lobby", "dave")
	reqID := newHistoryID(t)
	dave.sendRaw(fmt.Sprintf(`{"type":"history","channel":"lobby","id":%q,"limit":50}`, reqID))
	answerHistory(alice, reqID, nil)
	answerHistory(bob, reqID, []frame{v2Frame, v1Frame})
	late := map[string]identity.ChannelMessage{}
	for {
		f := dave.expectOneOf("message", "history_end")
		if f.Type == "history_end" {
			break
		}
		_, _, cm := deliveredMessage(t, f)
		late[hex.EncodeToString(cm.ID[:])] = cm
	}
	if got := late[hex.EncodeToString(v2.ID[:])]; got != v2 {
		t.Fatalf("history delivered %+v, want %+v", got, v2)
	}
	if got := late[v1ID]; got.Causal.Present || got.Body != "old style" {
		t.Fatalf("history delivered %+v for the version-1 message", got)
	}
}
