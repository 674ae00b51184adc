package identity_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"darkchat/identity"
)

// Every decoder must reject bad input with an error (never panic), and what
// it accepts must be canonical: encoding the result gives the input back.

func FuzzParsePublicKey(f *testing.F) {
	f.Add(seed1PublicHex)
	f.Add(strings.ToUpper(seed1PublicHex))
	f.Add(seed1PublicHex[:63] + "g")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := identity.ParsePublicKey(s)
		if err != nil {
			if !errors.Is(err, identity.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if k.String() != strings.ToLower(s) {
			t.Fatalf("ParsePublicKey(%q).String() = %q", s, k)
		}
	})
}

func FuzzParseKeyFile(f *testing.F) {
	canonical := identity.KeyFileHeader + "\n" + seed1Hex + "\n"
	f.Add([]byte(canonical))
	f.Add([]byte(strings.ReplaceAll(canonical, "\n", "\r\n")))
	f.Add([]byte(strings.TrimSuffix(canonical, "\n")))
	f.Add([]byte(canonical + "\n"))
	f.Add([]byte("darkchat-identity-v2\n" + seed1Hex))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := identity.ParseKeyFile(data)
		if err != nil {
			if !errors.Is(err, identity.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		out := identity.MarshalKeyFile(k)
		// Only line endings may differ from the canonical form.
		norm := strings.ReplaceAll(string(data), "\r\n", "\n")
		if !strings.HasSuffix(norm, "\n") {
			norm += "\n"
		}
		if string(out) != norm {
			t.Fatalf("ParseKeyFile(%q) re-marshals as %q", data, out)
		}
		back, err := identity.ParseKeyFile(out)
		if err != nil || !bytes.Equal(back.Seed(), k.Seed()) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func FuzzParseChallenge(f *testing.F) {
	f.Add("dcl1." + vectorNodeID + ".000102030405060708090a0b0c0d0e0f.1700000060")
	f.Add("dcl1.a.000102030405060708090a0b0c0d0e0f.0")
	f.Add("dcl1.a.000102030405060708090a0b0c0d0e0f.9223372036854775807")
	f.Add("dcl1.a.000102030405060708090a0b0c0d0e0f.01")
	f.Add("dcl1..000102030405060708090a0b0c0d0e0f.1")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := identity.ParseChallenge(s)
		if err != nil {
			if !errors.Is(err, identity.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		if c.String() != s {
			t.Fatalf("ParseChallenge(%q).String() = %q", s, c)
		}
	})
}

func FuzzChannelMessageUnmarshal(f *testing.F) {
	k, err := identity.NewKeyFromSeed(seedOf(1))
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range []identity.ChannelMessage{
		{Channel: "general", Username: "alice", Body: "hello, world", Timestamp: 1700000000123},
		{Channel: "a", Username: "Z", Body: "", Timestamp: -1},
		{Channel: "dev.go_1-x", Username: "Bob_2.x-Y", Body: "héllo 🌍", Timestamp: 1},
	} {
		m.ID = identity.NewMessageID()
		m.Sign(k)
		wire, err := m.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(wire)
		f.Add(wire[:len(wire)-1])
	}
	seed, _ := hex.DecodeString("01" + strings.Repeat("00", 32) + "ffffffff")
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		var m identity.ChannelMessage
		if err := m.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, identity.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		out, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("accepted message does not marshal: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("round trip changed the bytes:\n in %x\nout %x", data, out)
		}
		// Verify must not panic on arbitrary keys and signatures.
		m.Verify()
	})
}
