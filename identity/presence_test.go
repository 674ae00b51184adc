package identity_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"darkchat/identity"
)

// Run "go test ./identity -run TestPresenceVectors -update" to regenerate
// testdata/presence_vectors.json after a deliberate change of the
// encoding (the -update flag is declared in vectors_test.go).
const presenceVectorsPath = "testdata/presence_vectors.json"

// presenceVectorFile is the layout of testdata/presence_vectors.json;
// "_hex" fields are lowercase hex of raw bytes.
type presenceVectorFile struct {
	Format        string                   `json:"format"`
	Description   []string                 `json:"description"`
	DomainHex     string                   `json:"domain_prefix_hex"`
	Records       []presenceVector         `json:"records"`
	NegativeCases []presenceNegativeVector `json:"negative_cases"`
}

type presenceVector struct {
	Name            string `json:"name"`
	SeedHex         string `json:"seed_hex"`
	KeyHex          string `json:"public_key_hex"`
	Channel         string `json:"channel"`
	Username        string `json:"username"`
	SessionHex      string `json:"session_hex"`
	State           int    `json:"state"`
	TimestampUnixMs int64  `json:"timestamp_unix_ms"`
	ExpiresUnixMs   int64  `json:"expires_unix_ms"`
	SignedBytesHex  string `json:"signed_bytes_hex"`
	SignatureHex    string `json:"signature_hex"`
	WireHex         string `json:"wire_hex"`
}

type presenceNegativeVector struct {
	Name          string `json:"name"`
	Check         string `json:"check"` // presence_unmarshal or presence_verify
	WireHex       string `json:"wire_hex"`
	ExpectedError string `json:"expected_error"`
}

func presenceRecord(t *testing.T, seed byte, channel, username string, session byte, state uint8, ts, expires int64) identity.Presence {
	t.Helper()
	p := identity.Presence{Channel: channel, Username: username, State: state, Timestamp: ts, Expires: expires}
	for i := range p.Session {
		p.Session[i] = session + byte(i)
	}
	p.Sign(mustKey(t, seedOf(seed)))
	return p
}

func buildPresenceVectors(t *testing.T) presenceVectorFile {
	t.Helper()
	v := presenceVectorFile{
		Format: "darkchat-presence-test-vectors-v1",
		Description: []string{
			"Presence records (PROTOCOL.md §2.12, §4): signed bytes = \"darkchat/v1/presence\\x00\" || key (32) || u32 len || channel || u32 len || username || session (8) || state u8 (1 here, 2 gone) || timestamp i64 || expires i64 (Unix ms, big-endian).",
			"wire = 0x10 || signed bytes without the prefix || signature (64). Decoders require 0 < expires - timestamp <= 600000 ms.",
			"negative_cases: check presence_unmarshal must fail to decode (malformed); presence_verify decodes but the signature does not verify (bad_signature).",
		},
		DomainHex: hx([]byte(identity.DomainPresence)),
	}
	add := func(name string, p identity.Presence, seed byte) {
		wire, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		v.Records = append(v.Records, presenceVector{
			Name: name, SeedHex: hx(seedOf(seed)), KeyHex: p.Key.String(), Channel: p.Channel, Username: p.Username,
			SessionHex: hx(p.Session[:]), State: int(p.State), TimestampUnixMs: p.Timestamp, ExpiresUnixMs: p.Expires,
			SignedBytesHex: hx(p.SignedBytes()), SignatureHex: hx(p.Sig[:]), WireHex: hx(wire),
		})
	}
	here := presenceRecord(t, 0x01, "dev", "alice", 0x10, identity.PresenceHere, 1700000000000, 1700000300000)
	gone := presenceRecord(t, 0x01, "dev", "alice", 0x10, identity.PresenceGone, 1700000000000, 1700000300000)
	add("here: alice in dev, five minutes", here, 0x01)
	add("gone signed with the same timestamp (it wins over the here above)", gone, 0x01)
	add("maximum lengths, ten-minute expiry", presenceRecord(t, 0x02, strings.Repeat("c", identity.MaxChannelLen), strings.Repeat("U", identity.MaxUsernameLen),
		0xf0, identity.PresenceHere, 1700000001000, 1700000601000), 0x02)

	wire, _ := here.MarshalBinary()
	edit := func(f func(w []byte) []byte) string { return hx(f(bytes.Clone(wire))) }
	offUser := 1 + 32 + 4 + len(here.Channel)
	offSession := offUser + 4 + len(here.Username)
	offState := offSession + identity.PresenceSessionSize
	offExpires := offState + 1 + 8
	neg := func(name, check, w, want string) {
		v.NegativeCases = append(v.NegativeCases, presenceNegativeVector{Name: name, Check: check, WireHex: w, ExpectedError: want})
	}
	neg("username changed after signing", "presence_verify", edit(func(w []byte) []byte { w[offUser+4] = 'b'; return w }), "bad_signature")
	neg("state changed to gone after signing", "presence_verify", edit(func(w []byte) []byte { w[offState] = identity.PresenceGone; return w }), "bad_signature")
	neg("unknown version 0x11", "presence_unmarshal", edit(func(w []byte) []byte { w[0] = 0x11; return w }), "malformed")
	neg("state 3", "presence_unmarshal", edit(func(w []byte) []byte { w[offState] = 3; return w }), "malformed")
	neg("expires 11 minutes after the timestamp", "presence_unmarshal", edit(func(w []byte) []byte {
		w[offExpires+5] += 0x0a // +0x0a0000 ms ≈ 655 s
		return w
	}), "malformed")
	neg("expires equal to the timestamp", "presence_unmarshal", edit(func(w []byte) []byte {
		copy(w[offExpires:offExpires+8], w[offExpires-8:offExpires])
		return w
	}), "malformed")
	neg("truncated signature", "presence_unmarshal", edit(func(w []byte) []byte { return w[:len(w)-1] }), "malformed")
	neg("trailing byte", "presence_unmarshal", edit(func(w []byte) []byte { return append(w, 0) }), "malformed")
	neg("username with a space", "presence_unmarshal", edit(func(w []byte) []byte { w[offUser+4] = ' '; return w }), "malformed")
	return v
}

func TestPresenceVectors(t *testing.T) {
	built := buildPresenceVectors(t)
	if *update {
		data, err := json.MarshalIndent(built, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(presenceVectorsPath, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(presenceVectorsPath)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	var stored presenceVectorFile
	if err := json.Unmarshal(data, &stored); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(stored, built) {
		t.Fatalf("%s differs from what the implementation computes (run with -update after a deliberate change)", presenceVectorsPath)
	}
	// Check the stored file from its fields alone, as another
	// implementation would.
	for _, r := range stored.Records {
		k := mustKey(t, unhex(t, r.SeedHex))
		if k.Public().String() != r.KeyHex {
			t.Errorf("%s: key", r.Name)
		}
		var p identity.Presence
		if err := p.UnmarshalBinary(unhex(t, r.WireHex)); err != nil {
			t.Fatalf("%s: %v", r.Name, err)
		}
		if err := p.Verify(); err != nil {
			t.Errorf("%s: %v", r.Name, err)
		}
		if p.Channel != r.Channel || p.Username != r.Username || hx(p.Session[:]) != r.SessionHex || int(p.State) != r.State ||
			p.Timestamp != r.TimestampUnixMs || p.Expires != r.ExpiresUnixMs || hx(p.SignedBytes()) != r.SignedBytesHex {
			t.Errorf("%s: decoded %+v", r.Name, p)
		}
	}
	for _, n := range stored.NegativeCases {
		var p identity.Presence
		err := p.UnmarshalBinary(unhex(t, n.WireHex))
		if n.Check == "presence_verify" {
			if err != nil {
				t.Fatalf("%s: does not decode: %v", n.Name, err)
			}
			err = p.Verify()
		}
		if !errors.Is(err, expectedErrors[n.ExpectedError]) {
			t.Errorf("%s: got %v, want %s", n.Name, err, n.ExpectedError)
		}
	}
}

func TestPresencePair(t *testing.T) {
	k := mustKey(t, seedOf(0x03))
	now := time.UnixMilli(1700000000000)
	sess := identity.NewPresenceSession()
	here, gone, err := identity.NewPresencePair(k, "dev", "bob", sess, now, 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []identity.Presence{here, gone} {
		wire, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if len(wire) < identity.MinPresenceWireLen || len(wire) > identity.MaxPresenceWireLen {
			t.Errorf("wire of %d bytes outside [%d, %d]", len(wire), identity.MinPresenceWireLen, identity.MaxPresenceWireLen)
		}
		var back identity.Presence
		if err := back.UnmarshalBinary(wire); err != nil || back != p {
			t.Fatalf("round trip: %v, %+v != %+v", err, back, p)
		}
		if err := back.Verify(); err != nil {
			t.Fatal(err)
		}
	}
	if !gone.Newer(&here) || here.Newer(&gone) {
		t.Error("gone at the same timestamp must win over here")
	}
	later, _, _ := identity.NewPresencePair(k, "dev", "bob", sess, now.Add(time.Minute), 5*time.Minute)
	if !later.Newer(&gone) || gone.Newer(&later) {
		t.Error("a later refresh must win over the gone")
	}
	// A here's signature does not verify as its gone.
	forged := here
	forged.State = identity.PresenceGone
	if err := forged.Verify(); !errors.Is(err, identity.ErrBadSignature) {
		t.Errorf("here re-labelled gone: %v", err)
	}
	if _, _, err := identity.NewPresencePair(k, "dev", "bob", sess, now, identity.MaxPresenceTTL+time.Millisecond); !errors.Is(err, identity.ErrMalformed) {
		t.Errorf("TTL over the limit: %v", err)
	}
	if _, _, err := identity.NewPresencePair(k, "Dev", "bob", sess, now, time.Minute); !errors.Is(err, identity.ErrInvalidChannelName) {
		t.Errorf("bad channel: %v", err)
	}
	// Extreme timestamps do not wrap into a valid expiry.
	p := here
	p.Timestamp, p.Expires = -1<<63, 1<<63-1
	if err := p.Validate(); !errors.Is(err, identity.ErrMalformed) {
		t.Errorf("extreme expiry accepted: %v", err)
	}
}

func FuzzPresenceUnmarshal(f *testing.F) {
	k, _ := identity.NewKeyFromSeed(seedOf(0x01))
	here, _, _ := identity.NewPresencePair(k, "dev", "alice", identity.PresenceSession{1}, time.UnixMilli(1700000000000), time.Minute)
	w, _ := here.MarshalBinary()
	f.Add(w)
	f.Fuzz(func(t *testing.T, data []byte) {
		var p identity.Presence
		if err := p.UnmarshalBinary(data); err != nil {
			return
		}
		out, err := p.MarshalBinary()
		if err != nil || !bytes.Equal(out, data) {
			t.Fatalf("decoded %x, re-encoded %x (%v)", data, out, err)
		}
	})
}
