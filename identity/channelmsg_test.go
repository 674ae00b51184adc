package identity_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"

	"darkchat/identity"
)

func testMessage(t testing.TB) identity.ChannelMessage {
	t.Helper()
	k, err := identity.NewKeyFromSeed(seedOf(1))
	if err != nil {
		t.Fatal(err)
	}
	m, err := identity.NewChannelMessage(k, "general", "alice", "hello, world", testNow)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestChannelMessageRoundTrip(t *testing.T) {
	m := testMessage(t)
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	if m.Timestamp != testNow.UnixMilli() || !m.Time().Equal(testNow) || m.ID == ([16]byte{}) {
		t.Errorf("NewChannelMessage stamped %d, id %x", m.Timestamp, m.ID)
	}
	wire, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(wire) != 1+32+4+7+4+5+4+12+8+16+64 {
		t.Errorf("wire is %d bytes", len(wire))
	}
	if wire[0] != identity.ChannelMessageVersion {
		t.Errorf("version byte %#x", wire[0])
	}
	signed := m.SignedBytes()
	if !bytes.Equal(wire[1:len(wire)-64], signed[len(identity.DomainChannelMessage):]) {
		t.Error("wire fields differ from signed fields")
	}
	var got identity.ChannelMessage
	if err := got.UnmarshalBinary(wire); err != nil {
		t.Fatal(err)
	}
	if got != m {
		t.Errorf("decoded %+v, want %+v", got, m)
	}
	if err := got.Verify(); err != nil {
		t.Error(err)
	}
}

func TestNewChannelMessageValidates(t *testing.T) {
	k := mustKey(t, seedOf(1))
	for _, tt := range []struct{ channel, user, body string }{
		{"General", "alice", "x"},
		{"general", "", "x"},
		{"general", "alice", strings.Repeat("x", identity.MaxBodyLen+1)},
		{"general", "alice", "\xff"},
	} {
		if _, err := identity.NewChannelMessage(k, tt.channel, tt.user, tt.body, testNow); err == nil {
			t.Errorf("NewChannelMessage(%q, %q, %d-byte body) succeeded", tt.channel, tt.user, len(tt.body))
		}
	}
	m, err := identity.NewChannelMessage(k, "general", "alice", strings.Repeat("x", identity.MaxBodyLen), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.MarshalBinary(); err != nil {
		t.Error(err)
	}
}

func TestChannelMessageTamper(t *testing.T) {
	other := mustKey(t, seedOf(2)).Public()
	tests := []struct {
		name   string
		tamper func(m *identity.ChannelMessage)
	}{
		{"author", func(m *identity.ChannelMessage) { m.Author = other }},
		{"author bit", func(m *identity.ChannelMessage) { m.Author[31] ^= 1 }},
		{"channel", func(m *identity.ChannelMessage) { m.Channel = "random" }},
		{"username", func(m *identity.ChannelMessage) { m.Username = "mallory" }},
		{"body", func(m *identity.ChannelMessage) { m.Body = "hello, World" }},
		{"body empty", func(m *identity.ChannelMessage) { m.Body = "" }},
		{"timestamp", func(m *identity.ChannelMessage) { m.Timestamp++ }},
		{"id", func(m *identity.ChannelMessage) { m.ID[15] ^= 0x80 }},
		{"sig", func(m *identity.ChannelMessage) { m.Sig[0] ^= 1 }},
		{"sig zero", func(m *identity.ChannelMessage) { m.Sig = [64]byte{} }},
		// Length prefixes stop bytes moving between fields.
		{"shift username into channel", func(m *identity.ChannelMessage) {
			m.Channel, m.Username = m.Channel+"a", strings.TrimPrefix(m.Username, "a")
		}},
		{"shift body into username", func(m *identity.ChannelMessage) {
			m.Username, m.Body = m.Username+"h", strings.TrimPrefix(m.Body, "h")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := testMessage(t)
			tt.tamper(&m)
			if err := m.Verify(); !errors.Is(err, identity.ErrBadSignature) {
				t.Errorf("tampered %s: Verify = %v, want ErrBadSignature", tt.name, err)
			}
		})
	}
}

// wireOffsets returns the offsets of the length fields in a wire form.
func wireOffsets(m identity.ChannelMessage) (channel, username, body int) {
	channel = 1 + 32
	username = channel + 4 + len(m.Channel)
	body = username + 4 + len(m.Username)
	return
}

func TestChannelMessageUnmarshalStrict(t *testing.T) {
	m := testMessage(t)
	wire, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	offC, offU, offB := wireOffsets(m)
	edit := func(f func(w []byte) []byte) []byte { return f(append([]byte(nil), wire...)) }
	setLen := func(off int, n uint32) []byte {
		return edit(func(w []byte) []byte { binary.BigEndian.PutUint32(w[off:], n); return w })
	}
	// build re-encodes m with fields replaced, without validation, to make
	// well-framed wire forms with bad content.
	build := func(channel, username, body string) []byte {
		b := []byte{identity.ChannelMessageVersion}
		b = append(b, m.Author[:]...)
		for _, s := range []string{channel, username, body} {
			b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
			b = append(b, s...)
		}
		b = binary.BigEndian.AppendUint64(b, uint64(m.Timestamp))
		b = append(b, m.ID[:]...)
		return append(b, m.Sig[:]...)
	}

	tests := []struct {
		name    string
		in      []byte
		wantErr string
	}{
		{"nil", nil, "truncated version"},
		{"version only", wire[:1], "truncated author"},
		{"version 0", edit(func(w []byte) []byte { w[0] = 0; return w }), "unknown version 0x00"},
		{"version 3", edit(func(w []byte) []byte { w[0] = 3; return w }), "unknown version 0x03"},
		{"truncated signature", wire[:len(wire)-1], "truncated signature"},
		{"trailing byte", append(append([]byte(nil), wire...), 0), "1 unexpected bytes"},
		{"trailing message", append(append([]byte(nil), wire...), wire...), "unexpected bytes"},
		{"channel length past end", setLen(offC, 50)[:offC+10], "truncated channel: need 50 bytes, 6 left"},
		{"channel length huge", setLen(offC, 0xffffffff), "over the size limit"},
		{"channel length 65", setLen(offC, 65), "channel is 65 bytes, over the size limit (64 bytes)"},
		{"username length 33", setLen(offU, 33), "username is 33 bytes, over the size limit (32 bytes)"},
		{"body length 4097", setLen(offB, 4097), "body is 4097 bytes, over the size limit (4096 bytes)"},
		{"body length shorter", setLen(offB, 5), "unexpected bytes"},
		{"body length longer", setLen(offB, 13), "truncated"},
		{"input over max", make([]byte, identity.MaxChannelMessageWireLen+1), "over the size limit"},
		{"empty channel", build("", "alice", "hi"), "invalid channel name"},
		{"uppercase channel", build("General", "alice", "hi"), "invalid channel name"},
		{"channel with NUL", build("gen\x00", "alice", "hi"), "invalid channel name"},
		{"empty username", build("general", "", "hi"), "invalid username"},
		{"username with space", build("general", "al ice", "hi"), "invalid username"},
		{"username escape", build("general", "\x1b[31m", "hi"), "invalid username"},
		{"body invalid UTF-8", build("general", "alice", "hi\xff"), "not valid UTF-8"},
		{"body truncated UTF-8", build("general", "alice", "h\xc3"), "not valid UTF-8"},
		{"body surrogate", build("general", "alice", "\xed\xa0\x80"), "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := m // must stay unchanged on error
			err := got.UnmarshalBinary(tt.in)
			if !errors.Is(err, identity.ErrMalformed) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want ErrMalformed containing %q", err, tt.wantErr)
			}
			if got != m {
				t.Error("failed UnmarshalBinary modified the message")
			}
		})
	}

	// Every strict prefix of a valid wire form is rejected.
	for n := 0; n < len(wire); n++ {
		var got identity.ChannelMessage
		if err := got.UnmarshalBinary(wire[:n]); !errors.Is(err, identity.ErrMalformed) {
			t.Errorf("prefix of %d bytes: %v", n, err)
		}
	}
}

func TestChannelMessageMarshalValidates(t *testing.T) {
	m := testMessage(t)
	m.Channel = "Bad Channel"
	if _, err := m.MarshalBinary(); !errors.Is(err, identity.ErrInvalidChannelName) {
		t.Errorf("MarshalBinary with bad channel: %v", err)
	}
	m = testMessage(t)
	m.Body = strings.Repeat("x", identity.MaxBodyLen+1)
	if _, err := m.MarshalBinary(); !errors.Is(err, identity.ErrTooLarge) {
		t.Errorf("MarshalBinary with big body: %v", err)
	}
}

func TestChannelMessageWireBounds(t *testing.T) {
	k := mustKey(t, seedOf(1))
	small, _ := identity.NewChannelMessage(k, "a", "b", "", testNow)
	big, _ := identity.NewChannelMessage(k, strings.Repeat("c", 64), strings.Repeat("u", 32), strings.Repeat("x", 4096), testNow)
	big.Causal = identity.Causal{Present: true, NRefs: identity.MaxCausalRefs}
	for _, c := range []struct {
		m    identity.ChannelMessage
		want int
	}{{small, identity.MinChannelMessageWireLen}, {big, identity.MaxChannelMessageWireLen}} {
		w, err := c.m.MarshalBinary()
		if err != nil || len(w) != c.want {
			t.Errorf("wire %d bytes (%v), want %d", len(w), err, c.want)
		}
	}
	if identity.MinChannelMessageWireLen != 135 || identity.MaxChannelMessageWireLen != 4350 {
		t.Errorf("bounds %d..%d, documented as 135..4350", identity.MinChannelMessageWireLen, identity.MaxChannelMessageWireLen)
	}
}

// UnmarshalBinary must not allocate more than its input: lengths come from
// untrusted peers.
func TestChannelMessageUnmarshalAllocation(t *testing.T) {
	k := mustKey(t, seedOf(1))
	m, _ := identity.NewChannelMessage(k, strings.Repeat("c", 64), strings.Repeat("u", 32), strings.Repeat("x", 4000), testNow)
	wire, _ := m.MarshalBinary()
	huge := append([]byte(nil), wire...)
	binary.BigEndian.PutUint32(huge[1+32:], 0xfffffff0)

	for _, in := range [][]byte{wire, huge, wire[:200]} {
		var got identity.ChannelMessage
		const runs = 200
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for range runs {
			got.UnmarshalBinary(in)
		}
		runtime.ReadMemStats(&after)
		perCall := (after.TotalAlloc - before.TotalAlloc) / runs
		// Error paths allocate their error message; allow for that.
		if limit := uint64(len(in)) + 512; perCall > limit {
			t.Errorf("%d-byte input: %d bytes allocated per call, want at most %d", len(in), perCall, limit)
		}
	}
}

func TestChannelMessageVerifyDoesNotAllocate(t *testing.T) {
	m := testMessage(t)
	allocs := testing.AllocsPerRun(20, func() {
		if m.Verify() != nil {
			t.Fatal("verify failed")
		}
	})
	if allocs != 0 {
		t.Errorf("Verify allocates %v times per call", allocs)
	}
}

func TestNewMessageID(t *testing.T) {
	seen := map[[16]byte]bool{}
	for range 100 {
		id := identity.NewMessageID()
		if seen[id] {
			t.Fatalf("duplicate message ID %x", id)
		}
		seen[id] = true
	}
}
