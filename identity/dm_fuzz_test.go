package identity_test

import (
	"bytes"
	"errors"
	"os"
	"testing"
	"time"

	"darkchat/identity"
)

// Fuzz targets for every DM parser of outside input. Like fuzz_test.go:
// bad input gives an error wrapping a package sentinel (never a panic), and
// what a decoder accepts is canonical.

// dmFuzzVectors loads the stored vectors for seeds; fuzzing still runs
// (with fewer seeds) if the file is missing.
func dmFuzzVectors(f *testing.F) dmVectorFile {
	var v dmVectorFile
	if data, err := os.ReadFile(dmVectorsPath); err == nil {
		if err := decodeStrict(data, &v); err != nil {
			f.Fatalf("decode %s: %v", dmVectorsPath, err)
		}
	}
	return v
}

func FuzzKeyBundleUnmarshal(f *testing.F) {
	k := dmKeyOf(f, 1)
	b, err := identity.NewKeyBundle(k, testNow, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	wire, err := b.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(wire)
	f.Add(wire[:len(wire)-1])
	f.Add(wire[:40])
	for _, n := range dmFuzzVectors(f).NegativeCases {
		if n.WireHex != "" {
			f.Add(dmUnhex(f, n.WireHex))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var b identity.KeyBundle
		if err := b.Unmarshal(data); err != nil {
			if !errors.Is(err, identity.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		out, err := b.Marshal()
		if err != nil {
			t.Fatalf("accepted bundle does not marshal: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("round trip changed the bytes:\n in %x\nout %x", data, out)
		}
		// Verify must not panic on arbitrary fields.
		b.Verify(b.Identity, testNow)
	})
}

func FuzzDMUnmarshal(f *testing.F) {
	a, b := dmKeyOf(f, 1), dmKeyOf(f, 2)
	for _, m := range []identity.DM{
		{Kind: identity.DMKindMessage, Recipient: b.Public(), Username: "alice", Body: "hello", Timestamp: 1},
		{Kind: identity.DMKindMessage, Recipient: b.Public(), Username: identity.AnonymousUsername, Body: "", Timestamp: -1},
		{Kind: identity.DMKindReceipt, Recipient: b.Public(), Ack: [16]byte{1}, Timestamp: 2},
	} {
		m.ID = identity.NewMessageID()
		m.Sign(a)
		inner, err := m.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(inner)
		f.Add(inner[:len(inner)-1])
	}
	for _, n := range dmFuzzVectors(f).NegativeCases {
		if n.InnerHex != "" {
			f.Add(dmUnhex(f, n.InnerHex))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var m identity.DM
		if err := m.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, identity.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		out, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("accepted DM does not marshal: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("round trip changed the bytes:\n in %x\nout %x", data, out)
		}
		m.Verify()
	})
}

// openDMErrors are the errors OpenDM may return for bad input.
var openDMErrors = []error{identity.ErrMalformed, identity.ErrNotForMe, identity.ErrDecrypt, identity.ErrReaddressed, identity.ErrBadSignature}

func checkOpenResult(t *testing.T, me identity.DMPrivateKey, m identity.DM, err error) {
	t.Helper()
	if err != nil {
		for _, s := range openDMErrors {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("OpenDM error wraps no expected sentinel: %v", err)
	}
	if m.Recipient != me.Identity() {
		t.Fatalf("accepted a DM for %s", m.Recipient)
	}
	if err := m.Verify(); err != nil {
		t.Fatalf("accepted a DM whose signature fails: %v", err)
	}
	if err := m.Validate(); err != nil {
		t.Fatalf("accepted an invalid DM: %v", err)
	}
}

// FuzzOpenDM feeds arbitrary envelopes to a fixed recipient (seed 0x02).
func FuzzOpenDM(f *testing.F) {
	alice, bob := newDMParty(f, 1), newDMParty(f, 2)
	env, _, err := identity.SealDM(alice.key, bob.bundle, "alice", "hello", testNow)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(env)
	f.Add(env[:len(env)-1])
	f.Add(append(env, 0))
	seed2 := hx(seedOf(2))
	v := dmFuzzVectors(f)
	for _, e := range v.Envelopes {
		if e.RecipientSeedHex == seed2 {
			f.Add(dmUnhex(f, e.EnvelopeHex))
		}
	}
	for _, n := range v.NegativeCases {
		if n.EnvelopeHex != "" {
			f.Add(dmUnhex(f, n.EnvelopeHex))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := identity.OpenDM(bob.dm, data)
		checkOpenResult(t, bob.dm, m, err)
		if tag, err := identity.EnvelopeTag(data); err == nil && tag != [16]byte(data[1:17]) {
			t.Fatal("EnvelopeTag returned another tag")
		}
	})
}

// FuzzOpenDMPlaintext seals arbitrary plaintexts correctly to the recipient,
// so the fuzzer reaches what only a real sender can: unpadding, inner
// decoding, the recipient and signature checks.
func FuzzOpenDMPlaintext(f *testing.F) {
	alice, bob := newDMParty(f, 1), newDMParty(f, 2)
	m := identity.DM{Kind: identity.DMKindMessage, Recipient: bob.key.Public(), Username: "alice", Body: "hi", Timestamp: 1}
	m.Sign(alice.key)
	inner, err := m.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(padRaw(inner, 512))
	f.Add(padRaw(inner, 1024))
	f.Add(inner)
	r := identity.DM{Kind: identity.DMKindReceipt, Recipient: bob.key.Public(), Ack: [16]byte{1}, Timestamp: 1}
	r.Sign(alice.key)
	rin, err := r.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(padRaw(rin, 512))
	tag := identity.DMTag(bob.key.Public())
	f.Fuzz(func(t *testing.T, plaintext []byte) {
		if len(plaintext) > 8192 {
			return
		}
		env := sealRaw(t, tag, bob.key.Public(), bob.bundle.DM, plaintext)
		got, err := identity.OpenDM(bob.dm, env)
		checkOpenResult(t, bob.dm, got, err)
		if err == nil {
			// Only the canonical padding of a valid DM opens.
			in, _ := got.MarshalBinary()
			if !bytes.Equal(padRaw(in, smallestBucket(4+len(in))), plaintext) {
				t.Fatalf("accepted a non-canonical plaintext %x", plaintext)
			}
		}
	})
}
