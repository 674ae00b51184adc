package proto

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"testing"

	"darkchat/identity"
)

// jsonFrame is what encoding/json makes of v, the reference the
// hand-written encoders must match byte for byte.
func jsonFrame(t testing.TB, v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

var jsonStringSeeds = []string{
	"", "hi", `a "quoted" \ back`, "tab\tnl\nret\rbs\bff\f", "\x00\x01\x1f\x7f", "<b>&amp;</b>",
	"héllo wörld ✓ 🎉", "\u2028\u2029", "bad \xff utf8 \xc3", "\xed\xa0\x80 surrogate", "\U0010ffff",
}

// FuzzAppendMessageFrame: the hand-written message, send and ok objects
// are encoding/json's, byte for byte, whatever strings they carry.
func FuzzAppendMessageFrame(f *testing.F) {
	for i, s := range jsonStringSeeds {
		f.Add(s, "user"+s, "lobby", int64(i)*1e12-5)
	}
	f.Fuzz(func(t *testing.T, body, username, channel string, ts int64) {
		var m identity.ChannelMessage
		m.Channel, m.Username, m.Body, m.Timestamp = channel, username, body, ts
		for i := range m.Author {
			m.Author[i] = byte(i * 7)
		}
		for i := range m.ID {
			m.ID[i] = byte(i * 13)
		}
		for i := range m.Sig {
			m.Sig[i] = byte(i * 3)
		}
		want := jsonFrame(t, struct {
			Type string `json:"type"`
			Message
		}{"message", Message{
			Channel: m.Channel, Username: m.Username, Key: m.Author.String(), Body: m.Body,
			TS: m.Timestamp, ID: hex.EncodeToString(m.ID[:]), Sig: hex.EncodeToString(m.Sig[:]),
		}})
		if got := AppendMessageFrame(nil, &m); !bytes.Equal(got, want) {
			t.Fatalf("message frame\n got %s\nwant %s", got, want)
		}
		want, err := Encode(NewSend(&m))
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendSend(nil, &m); !bytes.Equal(got, want) {
			t.Fatalf("send\n got %s\nwant %s", got, want)
		}
		want = jsonFrame(t, struct {
			Type string `json:"type"`
			OK
		}{"ok", OK{ID: body}})
		if got, err := Encode(&OK{ID: body}); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("ok frame\n got %s, %v\nwant %s", got, err, want)
		}
	})
}

// The delivered message is the Message object Decode expects.
func TestMessageFrameDecodes(t *testing.T) {
	key, err := identity.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	m, err := identity.NewChannelMessage(key, "lobby", "alice", "hi <b>\n", identityTestTime)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := Decode(AppendMessageFrame(nil, &m))
	if err != nil {
		t.Fatal(err)
	}
	got, err := obj.(*Message).ChannelMessage()
	if err != nil {
		t.Fatal(err)
	}
	if got != m {
		t.Fatalf("got %+v, want %+v", got, m)
	}
}

// The shared ping and pong objects are Encode's.
func TestEncodedPingPong(t *testing.T) {
	for obj, want := range map[Object][]byte{&Ping{}: EncodedPing, &Pong{}: EncodedPong} {
		if got, err := Encode(obj); err != nil || !bytes.Equal(got, want) {
			t.Errorf("Encode(%T) = %s, %v; want %s", obj, got, err, want)
		}
	}
}

func BenchmarkMessageFrame(b *testing.B) {
	m := identity.ChannelMessage{Channel: "bench", Username: "s0", Body: "m000123 hello there", Timestamp: 1700000000000}
	b.ReportAllocs()
	for b.Loop() {
		AppendMessageFrame(nil, &m)
	}
}
