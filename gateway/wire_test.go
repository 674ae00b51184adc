package gateway

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
		want := jsonFrame(t, messageFrame{
			Type: "message", Channel: m.Channel, Username: m.Username, Key: m.Author.String(), Body: m.Body,
			TS: m.Timestamp, ID: hex.EncodeToString(m.ID[:]), Sig: hex.EncodeToString(m.Sig[:]),
		})
		if got := appendMessageFrame(nil, &m); !bytes.Equal(got, want) {
			t.Fatalf("message frame\n got %s\nwant %s", got, want)
		}
		if got, want := mustJSON(okFrame{Type: "ok", ID: body}), jsonFrame(t, okFrame{Type: "ok", ID: body}); !bytes.Equal(got, want) {
			t.Fatalf("ok frame\n got %s\nwant %s", got, want)
		}
	})
}

// FuzzDecodeFlatRequest: whatever the fast decoder accepts, encoding/json
// decodes to the same request.
func FuzzDecodeFlatRequest(f *testing.F) {
	for _, s := range []string{
		`{"type":"send","channel":"lobby","username":"a","body":"hi","ts":1700000000000,"id":"00","sig":"00"}`,
		` { "type" : "login" , "key" : "ab", "sig":"cd" } `, `{"type":"x","ts":-0}`, `{"type":"x","ts":01}`,
		`{"type":"x","ts":1.5}`, `{"type":"x","ts":1e3}`, `{"type":"x","ts":99999999999999999999}`,
		`{"Type":"x"}`, `{"type":"x","type":"y"}`, `{"type":"x","body":"\u00e9"}`, `{"type":"x","body":"é"}`,
		`{"type":"x","body":"\xff"}`, `{"type":"x"} x`, `{"type":"x",}`, `{"type":null}`, `{}`, `{"type":""}`,
		`{"type":"x","other":1}`, `{"type":"x","body":"a	b"}`, "{\"type\":\"x\"}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := decodeFlatRequest(data)
		if !ok {
			return
		}
		var want request
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("fast decoder accepted %q, encoding/json refuses it: %v", data, err)
		}
		if got != want {
			t.Fatalf("%q:\n got %+v\nwant %+v", data, got, want)
		}
		if got.Type == "" {
			t.Fatalf("accepted %q without a type", data)
		}
	})
}

func BenchmarkDecodeRequest(b *testing.B) {
	data := []byte(`{"type":"send","channel":"bench","username":"s0","body":"m000123 hello there","ts":1700000000000,"id":"00112233445566778899aabbccddeeff","sig":"` + hex.EncodeToString(make([]byte, 64)) + `"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, cerr := decodeRequest(data); cerr != nil {
			b.Fatal(cerr)
		}
	}
}

func BenchmarkMessageFrame(b *testing.B) {
	m := identity.ChannelMessage{Channel: "bench", Username: "s0", Body: "m000123 hello there", Timestamp: 1700000000000}
	b.ReportAllocs()
	for b.Loop() {
		appendMessageFrame(nil, &m)
	}
}

// Hex fields decode in place, upper or lower case, and anything else is a
// named bad_json error.
func TestDecodeHexInto(t *testing.T) {
	var dst [3]byte
	for _, tc := range []struct {
		in   string
		want []byte
		ok   bool
	}{
		{"00ff7A", []byte{0x00, 0xff, 0x7a}, true},
		{"ABCDEF", []byte{0xab, 0xcd, 0xef}, true},
		{"00ff7", nil, false},
		{"00ff7a00", nil, false},
		{"00fg7a", nil, false},
		{"  ff7a", nil, false},
	} {
		cerr := decodeHexInto(dst[:], "id", tc.in)
		switch {
		case tc.ok && (cerr != nil || string(dst[:]) != string(tc.want)):
			t.Errorf("%q: got %x, %v", tc.in, dst, cerr)
		case !tc.ok && (cerr == nil || cerr.code != codeBadJSON):
			t.Errorf("%q: accepted or wrong error %v", tc.in, cerr)
		}
	}
}
