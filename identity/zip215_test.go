package identity

import (
	"crypto/ed25519"
	"crypto/sha512"
	"fmt"
	"testing"
	"time"

	"filippo.io/edwards25519"
)

// sigVector is one signature verdict to agree on.
type sigVector struct {
	name  string
	pub   PublicKey
	msg   []byte
	sig   []byte
	valid bool
	// stdValid is crypto/ed25519's verdict, to show that the vector is an
	// edge case on which verifiers differ (or not).
	stdValid bool
}

// scalarOf returns a scalar from 64 bytes of seed material.
func scalarOf(t *testing.T, seed string) *edwards25519.Scalar {
	t.Helper()
	h := sha512.Sum512([]byte(seed))
	s, err := edwards25519.NewScalar().SetUniformBytes(h[:])
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signRaw signs msg for the point encoding pubEnc with secret scalar a and
// nonce point encoding rEnc of nonce scalar r: s = r + H(R || A || msg)·a.
func signRaw(t *testing.T, a, r *edwards25519.Scalar, pubEnc, rEnc, msg []byte) []byte {
	t.Helper()
	h := sha512.New()
	h.Write(rEnc)
	h.Write(pubEnc)
	h.Write(msg)
	k, err := edwards25519.NewScalar().SetUniformBytes(h.Sum(nil))
	if err != nil {
		t.Fatal(err)
	}
	s := edwards25519.NewScalar().MultiplyAdd(k, a, r)
	return append(append([]byte{}, rEnc...), s.Bytes()...)
}

// zip215Vectors are the edge cases on which Ed25519 verifiers disagree:
// keys with a torsion component (the cofactored equation accepts what the
// cofactorless one rejects 7 times in 8), a non-canonical R, small-order
// keys in every encoding (valid by ZIP-215, refused here on every path),
// and a non-canonical S (refused by all).
func zip215Vectors(t *testing.T) []sigVector {
	t.Helper()
	var order8 edwards25519.Point
	if _, err := order8.SetBytes(smallOrderY[3][:]); err != nil {
		t.Fatal(err)
	}
	var vs []sigVector
	add := func(name string, pub PublicKey, msg, sig []byte, valid bool) {
		vs = append(vs, sigVector{name: name, pub: pub, msg: msg, sig: sig, valid: valid,
			stdValid: ed25519.Verify(pub[:], msg, sig)})
	}
	for i := range 8 {
		// A mixed-order key: A = aB + T, T of order 8.
		a := scalarOf(t, fmt.Sprint("mixed key ", i))
		r := scalarOf(t, fmt.Sprint("mixed nonce ", i))
		A := new(edwards25519.Point).ScalarBaseMult(a)
		A.Add(A, &order8)
		var pub PublicKey
		copy(pub[:], A.Bytes())
		R := new(edwards25519.Point).ScalarBaseMult(r)
		msg := []byte(DomainChannelMessage + fmt.Sprint("mixed-order key ", i))
		add(fmt.Sprint("mixed-order key ", i), pub, msg, signRaw(t, a, r, pub[:], R.Bytes(), msg), true)
	}
	// R the identity, encoded as y = p + 1 (not reduced): r = 0.
	{
		a := scalarOf(t, "non-canonical R key")
		var pub PublicKey
		copy(pub[:], new(edwards25519.Point).ScalarBaseMult(a).Bytes())
		msg := []byte(DomainChannelMessage + "non-canonical R")
		add("non-canonical R", pub, msg, signRaw(t, a, edwards25519.NewScalar(), pub[:], smallOrderY[6][:], msg), true)
	}
	// Small-order keys, every encoding and sign, with R = the identity and
	// S = 0 (which ZIP-215 accepts for the points of order 1, 2 and 4):
	// refused.
	for i, y := range smallOrderY {
		for _, sign := range []byte{0, 0x80} {
			pub := PublicKey(y)
			pub[31] |= sign
			msg := []byte(DomainChannelMessage + "small order")
			sig := append(append([]byte{}, smallOrderY[0][:]...), make([]byte, 32)...)
			add(fmt.Sprintf("small-order key %d sign %x", i, sign), pub, msg, sig, false)
		}
	}
	// S not below the group order: S + L for a valid signature.
	{
		priv, err := NewKeyFromSeed(make([]byte, SeedSize))
		if err != nil {
			t.Fatal(err)
		}
		msg := []byte(DomainChannelMessage + "non-canonical S")
		sig := priv.sign(msg)
		add("valid", priv.Public(), msg, sig, true)
		// L = 2^252 + 27742317777372353535851937790883648493, little-endian.
		l := [32]byte{0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
			31: 0x10}
		bad := append([]byte{}, sig...)
		carry := 0
		for i := range 32 {
			v := int(bad[32+i]) + int(l[i]) + carry
			bad[32+i], carry = byte(v), v>>8
		}
		add("non-canonical S", priv.Public(), msg, bad, false)
	}
	return vs
}

// Every path that verifies gives each edge-case vector the same verdict:
// verify (logins, channel messages, DMs, bundles, receipts, presence,
// rules; the browser runs the same code), a batch of one, and a batch
// mixed with valid signatures, whose failure falls back to VerifyEach.
func TestZIP215VerdictsAgree(t *testing.T) {
	vs := zip215Vectors(t)
	differ := 0
	good := vs[len(vs)-2] // "valid"
	for _, v := range vs {
		if got := verify(v.pub, v.msg, v.sig); got != v.valid {
			t.Errorf("%s: verify %v, want %v", v.name, got, v.valid)
		}
		b := NewBatch(4)
		b.add(v.pub, v.msg, v.sig)
		if got := b.Verify(); got != v.valid {
			t.Errorf("%s: batch of one %v, want %v", v.name, got, v.valid)
		}
		b.Reset()
		b.add(good.pub, good.msg, good.sig)
		b.add(v.pub, v.msg, v.sig)
		b.add(good.pub, good.msg, good.sig)
		if got := b.Verify(); got != v.valid {
			t.Errorf("%s: mixed batch %v, want %v", v.name, got, v.valid)
		}
		if each := b.VerifyEach(nil); !each[0] || each[1] != v.valid || !each[2] {
			t.Errorf("%s: VerifyEach %v", v.name, each)
		}
		if v.stdValid != v.valid {
			differ++
		}
	}
	// The vectors are edge cases: crypto/ed25519 alone would split a mesh
	// on some of them.
	if differ == 0 {
		t.Fatal("crypto/ed25519 agrees on every vector: they test nothing")
	}
	t.Logf("%d vectors, %d on which crypto/ed25519 differs", len(vs), differ)
}

// A channel message signed with a mixed-order key verifies alone and in a
// batch; one with a small-order key in neither.
func TestChannelMessageEdgeKeys(t *testing.T) {
	var order8 edwards25519.Point
	if _, err := order8.SetBytes(smallOrderY[4][:]); err != nil {
		t.Fatal(err)
	}
	a, r := scalarOf(t, "channel key"), scalarOf(t, "channel nonce")
	A := new(edwards25519.Point).ScalarBaseMult(a)
	A.Add(A, &order8)
	m := ChannelMessage{Channel: "dev", Username: "edge", Body: "hi", Timestamp: time.Now().UnixMilli(), ID: NewMessageID()}
	copy(m.Author[:], A.Bytes())
	copy(m.Sig[:], signRaw(t, a, r, m.Author[:], new(edwards25519.Point).ScalarBaseMult(r).Bytes(), m.SignedBytes()))
	if err := m.Verify(); err != nil {
		t.Fatalf("mixed-order key: %v", err)
	}
	b := NewBatch(2)
	b.AddChannelMessage(&m)
	if !b.Verify() {
		t.Fatal("mixed-order key: the batch refuses what Verify accepts")
	}

	small := m
	small.Author = PublicKey(smallOrderY[0])
	small.Sig = [SignatureSize]byte{0: 1}
	if small.Verify() == nil {
		t.Fatal("small-order key verified")
	}
	b.Reset()
	b.AddChannelMessage(&small)
	if b.Verify() {
		t.Fatal("small-order key verified in a batch")
	}
}
