package gateway

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"darkchat/identity"
	"darkchat/p2p"
	"darkchat/proto"
)

// Fuzz targets for the checks a node runs on bytes from other peers: the
// mesh validators p2p calls with a GossipSub message's Data, and the DHT
// record validator for key bundles. None may panic; what they accept must
// be exactly what an honest sender can make (so random bytes are refused),
// and what they hand on must be consistent with what they checked.

// fuzzNow is the fixed clock of these targets; their seeds are made for it.
var fuzzNow = time.UnixMilli(1764086400123)

// fuzzPeer is the forwarding peer of the seeds (a peer ID's bytes; the
// validators only use it as a map key). The empty ID is a local
// publication.
const fuzzPeer = "\x00$\x08\x01\x12 fuzz-peer-0123456789abcdef012"

func fuzzKey(f *testing.F, seed byte) identity.PrivateKey {
	f.Helper()
	k, err := identity.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		f.Fatal(err)
	}
	return k
}

func FuzzChannelValidator(f *testing.F) {
	k := fuzzKey(f, 1)
	for i, m := range []struct {
		channel, username, body string
		causal                  identity.Causal // version 2 when Present
	}{
		{"lobby", "alice", "hello, world", identity.Causal{}},
		{"dev.go_1-x", "Bob_2.x-Y", "héllo \"quoted\" \\ <b>🌍</b>\n", identity.Causal{}},
		{"a", "Z", "", identity.Causal{}},
		{"lobby", "alice", "answering two", identity.Causal{Present: true, Prev: identity.ShortID{1, 2, 3, 4, 5, 6, 7, 8},
			Refs: [identity.MaxCausalRefs]identity.ShortID{{0xa0, 0xa1}, {0xb0}}, NRefs: 2}},
		{"lobby", "bob", "first in the channel", identity.Causal{Present: true}},
	} {
		cm, err := identity.NewChannelMessage(k, m.channel, m.username, m.body, fuzzNow.Add(time.Duration(i%3-1)*time.Minute))
		if err != nil {
			f.Fatal(err)
		}
		if m.causal.Present {
			cm.Causal = m.causal
			cm.Sign(k)
		}
		wire, err := cm.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		v := ChannelValidator(func() time.Time { return fuzzNow }, DefaultTimestampWindow, DefaultAuthorLimit, nil)
		if _, err := v(fuzzPeer, m.channel, wire); err != nil {
			f.Fatalf("seed refused: %v", err)
		}
		f.Add(fuzzPeer, m.channel, wire)
		f.Add("", m.channel, wire)
		f.Add(fuzzPeer, "other", wire)
		f.Add(fuzzPeer, m.channel, wire[:len(wire)-1])
	}
	f.Add(fuzzPeer, "lobby", []byte{})
	f.Fuzz(func(t *testing.T, from, channel string, data []byte) {
		validate := ChannelValidator(func() time.Time { return fuzzNow }, DefaultTimestampWindow, DefaultAuthorLimit, nil)
		payload, err := validate(peer.ID(from), channel, bytes.Clone(data))
		if err != nil {
			if payload != nil {
				t.Fatalf("refused with %v but returned a payload", err)
			}
			return
		}
		// Accepted: recheck every rule independently.
		var m identity.ChannelMessage
		if err := m.UnmarshalBinary(data); err != nil {
			t.Fatalf("accepted bytes that do not decode: %v", err)
		}
		if m.Channel != channel {
			t.Fatalf("accepted a message for %q on %q", m.Channel, channel)
		}
		if err := m.Verify(); err != nil {
			t.Fatalf("accepted a message whose signature fails: %v", err)
		}
		if d := m.Time().Sub(fuzzNow); d > DefaultTimestampWindow || d < -DefaultTimestampWindow {
			t.Fatalf("accepted a message %v from now", d)
		}
		mm, ok := payload.(*meshMessage)
		if !ok {
			t.Fatalf("payload is %T, want *meshMessage", payload)
		}
		if mm.DedupKey() != m.DedupKey() {
			t.Fatal("payload's dedup key is not the message's")
		}
		// The frame every session of the channel receives is one JSON
		// object carrying the message unchanged.
		obj, err := proto.Decode(mm.clientFrame())
		fr, ok := obj.(*proto.Message)
		if err != nil || !ok {
			t.Fatalf("client frame %q is not a message object: %v", mm.clientFrame(), err)
		}
		if fr.Channel != m.Channel || fr.Username != m.Username || fr.Body != m.Body ||
			fr.TS != m.Timestamp || fr.Key != m.Author.String() {
			t.Fatalf("client frame %s does not carry the message %+v", mm.clientFrame(), m)
		}
		// Whole, causal context included (version 2): a client verifies
		// the signature from the frame's fields.
		back, err := fr.ChannelMessage()
		if err != nil {
			t.Fatalf("client frame %s: %v", mm.clientFrame(), err)
		}
		if back != m {
			t.Fatalf("client frame %s carries %+v, not the message %+v", mm.clientFrame(), back, m)
		}
		if err := back.Verify(); err != nil {
			t.Fatalf("client frame %s does not verify: %v", mm.clientFrame(), err)
		}
	})
}

func FuzzInboxValidator(f *testing.F) {
	alice, bob := fuzzKey(f, 1), fuzzKey(f, 2)
	bundle, err := identity.NewKeyBundle(bob, fuzzNow, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	shardOfBob := fmt.Sprint(shardOf(bob.Public()))
	for _, body := range []string{"hi", string(bytes.Repeat([]byte("x"), 2000))} {
		env, _, err := identity.SealDM(alice, bundle, "alice", body, fuzzNow)
		if err != nil {
			f.Fatal(err)
		}
		if _, err := InboxValidator()(fuzzPeer, shardOfBob, env); err != nil {
			f.Fatalf("seed refused: %v", err)
		}
		f.Add(fuzzPeer, shardOfBob, env)
		f.Add("", shardOfBob, env)
		f.Add(fuzzPeer, "0", env)
		f.Add(fuzzPeer, shardOfBob, env[:len(env)-1])
	}
	receipt, _, err := identity.SealReceipt(alice, bundle, [identity.MessageIDSize]byte{1}, fuzzNow)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(fuzzPeer, shardOfBob, receipt)
	f.Add(fuzzPeer, "", []byte{identity.EnvelopeVersion})
	f.Fuzz(func(t *testing.T, from, shard string, data []byte) {
		payload, err := InboxValidator()(peer.ID(from), shard, bytes.Clone(data))
		if err != nil {
			if payload != nil {
				t.Fatalf("refused with %v but returned a payload", err)
			}
			return
		}
		if !slices.Contains(identity.EnvelopeSizes(), len(data)) {
			t.Fatalf("accepted an envelope of %d bytes", len(data))
		}
		if data[0] != identity.EnvelopeVersion {
			t.Fatalf("accepted envelope version %#x", data[0])
		}
		tag := [identity.DMTagSize]byte(data[1 : 1+identity.DMTagSize])
		if want := fmt.Sprint(identity.DMShard(tag, identity.DMShards)); shard != want {
			t.Fatalf("accepted an envelope for shard %s on shard %q", want, shard)
		}
		e, ok := payload.(*dmEnvelope)
		if !ok {
			t.Fatalf("payload is %T, want *dmEnvelope", payload)
		}
		if e.tag != tag {
			t.Fatalf("payload tag %x, envelope tag %x", e.tag, tag)
		}
		obj, err := proto.Decode(e.clientFrame())
		fr, ok := obj.(*proto.DM)
		if err != nil || !ok {
			t.Fatalf("client frame %q: %v", e.clientFrame(), err)
		}
		if got, err := base64.StdEncoding.DecodeString(fr.Envelope); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("client frame does not carry the envelope: %v", err)
		}
	})
}

// FuzzBundleValidator gives the DHT record validator arbitrary keys and
// values: Validate accepts only a current bundle signed by the key the
// record key names, in its one canonical encoding, and Select, given the
// value among some of three fixed records (two valid bundles of one user,
// one of another user) in any order, picks a valid one that no other
// valid one is newer than. One fuzzed value keeps inputs small: a
// bundle is 1,333 bytes, and each run verifies every value.
func FuzzBundleValidator(f *testing.F) {
	alice, bob := fuzzKey(f, 1), fuzzKey(f, 2)
	var wires [][]byte
	for _, b := range []struct {
		k      identity.PrivateKey
		issued time.Time
	}{
		{alice, fuzzNow.Add(-time.Hour)},
		{alice, fuzzNow.Add(-time.Minute)},
		{bob, fuzzNow},
	} {
		kb, err := identity.NewKeyBundle(b.k, b.issued, 24*time.Hour)
		if err != nil {
			f.Fatal(err)
		}
		w, err := kb.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		wires = append(wires, w)
	}
	key := func(k identity.PrivateKey) string { return "/" + p2p.BundleNamespace + "/" + k.Public().String() }
	v := BundleValidator{Now: func() time.Time { return fuzzNow }}
	if i, err := v.Select(key(alice), wires); err != nil || i != 1 {
		f.Fatalf("seeds: Select = %d, %v; want 1", i, err)
	}
	newer, err := identity.NewKeyBundle(alice, fuzzNow, 24*time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	newest, _ := newer.Marshal()
	f.Add(key(alice), newest, uint8(0x1f))
	f.Add(key(alice), wires[0], uint8(0x0a))
	f.Add(key(bob), wires[2], uint8(0x1c))
	f.Add(key(alice), newest[:len(newest)-1], uint8(0x1d))
	f.Add(key(alice), []byte{}, uint8(0x00))
	f.Add("/"+p2p.BundleNamespace+"/"+string(bytes.ToUpper([]byte(alice.Public().String()))), newest, uint8(0x1e))
	f.Add("/other/"+alice.Public().String(), newest, uint8(0x1f))
	f.Fuzz(func(t *testing.T, key string, value []byte, pick uint8) {
		// The low 3 bits pick the fixed records, the next 2 where value goes.
		var values [][]byte
		for i, w := range wires {
			if pick&(1<<i) != 0 {
				values = append(values, w)
			}
		}
		at := int(pick>>3&3) % (len(values) + 1)
		values = slices.Insert(values, at, value)
		v := BundleValidator{Now: func() time.Time { return fuzzNow }}
		valid := make([]*identity.KeyBundle, len(values))
		for i, val := range values {
			err := v.Validate(key, bytes.Clone(val))
			if err != nil {
				continue
			}
			var kb identity.KeyBundle
			if err := kb.Unmarshal(val); err != nil {
				t.Fatalf("Validate accepted a value that does not decode: %v", err)
			}
			if want := "/" + p2p.BundleNamespace + "/" + kb.Identity.String(); key != want {
				t.Fatalf("Validate accepted %s's bundle under %q", kb.Identity, key)
			}
			if err := kb.Verify(kb.Identity, fuzzNow); err != nil {
				t.Fatalf("Validate accepted a bundle that does not verify: %v", err)
			}
			if out, _ := kb.Marshal(); !bytes.Equal(out, val) {
				t.Fatal("Validate accepted a non-canonical encoding")
			}
			valid[i] = &kb
		}
		i, err := v.Select(key, values)
		if !slices.ContainsFunc(valid, func(b *identity.KeyBundle) bool { return b != nil }) {
			if err == nil {
				t.Fatalf("Select chose value %d of %d, none valid", i, len(values))
			}
			return
		}
		if err != nil {
			t.Fatalf("Select refused a set with a valid bundle: %v", err)
		}
		if i < 0 || i >= len(values) || valid[i] == nil {
			t.Fatalf("Select chose %d, not a valid value", i)
		}
		for j, other := range valid {
			if other != nil && identity.Newer(*other, *valid[i]) {
				t.Fatalf("Select chose %d, but %d is newer", i, j)
			}
		}
	})
}

// FuzzCheckOrigin: the WebSocket handshake's Origin check never panics,
// accepts a missing Origin and the configured one, and accepts any other
// only if it names the host the request was sent to.
func FuzzCheckOrigin(f *testing.F) {
	const configured = "https://chat.example"
	for _, s := range [][2]string{
		{"", "node.example:8080"},
		{configured, "node.example"},
		{"http://node.example:8080", "node.example:8080"},
		{"http://NODE.example:8080", "node.example:8080"},
		{"https://evil.example", "node.example"},
		{"http://node.example.evil.example", "node.example"},
		{"http://evil.example@node.example", "node.example"},
		{"null", "null"},
		{"http://[::1]:80", "[::1]:80"},
		{"%zz", ""},
	} {
		f.Add(s[0], s[1])
	}
	srv := &Server{cfg: Config{AllowedOrigins: []string{configured}}}
	request := func(origin, host string) *http.Request {
		r := &http.Request{Header: http.Header{}, Host: host}
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		return r
	}
	f.Fuzz(func(t *testing.T, origin, host string) {
		ok := srv.checkOrigin(request(origin, host))
		switch {
		case origin == "" || origin == configured:
			if !ok {
				t.Fatalf("refused Origin %q", origin)
			}
		case ok:
			u, err := url.Parse(origin)
			if err != nil || !strings.EqualFold(u.Host, host) {
				t.Fatalf("accepted Origin %q for host %q", origin, host)
			}
		}
		// An origin naming another host is refused.
		if other := "https://x" + host; srv.checkOrigin(request(other, host)) {
			t.Fatalf("accepted Origin %q for host %q", other, host)
		}
	})
}

// FuzzHistoryWire: the history topic's wire forms (requests and answers,
// from any peer) decode without panicking, and what decodes encodes back
// to the same bytes; the validator takes any bytes on the history topic.
func FuzzHistoryWire(f *testing.F) {
	k := fuzzKey(f, 2)
	cm, err := identity.NewChannelMessage(k, "lobby", "alice", "hi", fuzzNow)
	if err != nil {
		f.Fatal(err)
	}
	wire, _ := cm.MarshalBinary()
	cm2, err := identity.NewChannelMessage(k, "lobby", "alice", "and then", fuzzNow.Add(time.Millisecond))
	if err != nil {
		f.Fatal(err)
	}
	cm2.Causal = identity.Causal{Present: true, Prev: identity.Short(cm.ID), Refs: [identity.MaxCausalRefs]identity.ShortID{{9}}, NRefs: 1}
	cm2.Sign(k)
	wire2, _ := cm2.MarshalBinary()
	req := &historyRequestWire{channel: "lobby", limit: 3, since: 1, have: []messageID{{7}}}
	f.Add(req.marshal())
	f.Add(marshalHistoryAnswers(req.id, "lobby", [][]byte{wire})[0])
	f.Add(marshalHistoryAnswers(req.id, "lobby", [][]byte{wire, wire2})[0])
	f.Add([]byte{wireHistoryAnswer})
	f.Fuzz(func(t *testing.T, data []byte) {
		if r, err := unmarshalHistoryRequest(data); err == nil {
			if again := r.marshal(); !bytes.Equal(again, data) {
				t.Fatalf("request %x re-encodes as %x", data, again)
			}
		}
		if id, ch, wires, err := unmarshalHistoryAnswer(data); err == nil {
			// Answers past historyAnswerBytes (another node's may be) are
			// re-packed into several.
			if again := marshalHistoryAnswers(id, ch, wires); len(data) <= historyAnswerBytes && (len(again) != 1 || !bytes.Equal(again[0], data)) {
				t.Fatalf("answer %x re-encodes as %x", data, again)
			}
		}
		validate := ChannelValidator(func() time.Time { return fuzzNow }, DefaultTimestampWindow, DefaultAuthorLimit, nil)
		validate(fuzzPeer, "", data)
		validate("", "", data)
	})
}
