package identity_test

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"darkchat/identity"
)

// dmParty is a test user: identity key, DM key and a verified key bundle.
type dmParty struct {
	key    identity.PrivateKey
	dm     identity.DMPrivateKey
	bundle identity.KeyBundle
}

// dmKeyOf is mustKey for benchmarks and fuzz targets.
func dmKeyOf(t testing.TB, seed byte) identity.PrivateKey {
	t.Helper()
	k, err := identity.NewKeyFromSeed(seedOf(seed))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// dmUnhex is unhex for benchmarks and fuzz targets.
func dmUnhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in vectors: %v", err)
	}
	return b
}

func newDMParty(t testing.TB, seed byte) dmParty {
	t.Helper()
	k := dmKeyOf(t, seed)
	dk, err := k.DMKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := identity.NewKeyBundle(k, testNow, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Verify(k.Public(), testNow); err != nil {
		t.Fatal(err)
	}
	return dmParty{k, dk, b}
}

// Layout offsets of an envelope, written out independently of the package.
const (
	tEncSize      = 1088 + 32
	tEnvHeader    = 1 + 16
	tEnvOverhead  = tEnvHeader + tEncSize + 16
	tInfoPrefix   = "darkchat/v1/dm-envelope\x00"
	tTagDomain    = "darkchat/v1/dm-tag\x00"
	tDMKeyInfo    = "darkchat/v1/dm-kem-key"
	tMaxInnerSize = 1 + 32 + 32 + 4 + 32 + 4 + 4096 + 8 + 16 + 64
)

var tBuckets = []int{512, 1024, 2048, 4096, 8192}

// sealRaw builds an envelope from the layout in doc.go with crypto/hpke
// directly, so tests can seal plaintexts the package would never produce.
// tag, the info recipient and the DM key are separate so each binding can be
// broken on its own.
func sealRaw(t testing.TB, tag [16]byte, infoRecipient identity.PublicKey, dmKey identity.DMPublicKey, plaintext []byte) []byte {
	t.Helper()
	pk, err := hpke.MLKEM768X25519().NewPublicKey(dmKey.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	enc, s, err := hpke.NewSender(pk, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), append([]byte(tInfoPrefix), infoRecipient[:]...))
	if err != nil {
		t.Fatal(err)
	}
	env := append([]byte{0x01}, tag[:]...)
	env = append(env, enc...)
	ct, err := s.Seal(env[:tEnvHeader], plaintext)
	if err != nil {
		t.Fatal(err)
	}
	return append(env, ct...)
}

// padRaw pads inner the documented way into a plaintext of size bucket.
func padRaw(inner []byte, bucket int) []byte {
	p := make([]byte, bucket)
	binary.BigEndian.PutUint32(p, uint32(len(inner)))
	copy(p[4:], inner)
	return p
}

func smallestBucket(n int) int {
	for _, b := range tBuckets {
		if n <= b {
			return b
		}
	}
	return -1
}

func TestDMRoundTrip(t *testing.T) {
	alice, bob := newDMParty(t, 1), newDMParty(t, 2)

	env, id, err := identity.SealDM(alice.key, bob.bundle, "alice", "hello, bob 🌍", testNow)
	if err != nil {
		t.Fatal(err)
	}
	m, err := identity.OpenDM(bob.dm, env)
	if err != nil {
		t.Fatal(err)
	}
	want := identity.DM{Kind: identity.DMKindMessage, Sender: alice.key.Public(), Recipient: bob.key.Public(),
		Username: "alice", Body: "hello, bob 🌍", Timestamp: testNow.UnixMilli(), ID: id, Sig: m.Sig}
	if m != want {
		t.Fatalf("opened %+v\nwant %+v", m, want)
	}
	if !m.Time().Equal(testNow) {
		t.Errorf("Time() = %v", m.Time())
	}

	renv, rid, err := identity.SealReceipt(bob.key, alice.bundle, id, testNow.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	r, err := identity.OpenDM(alice.dm, renv)
	if err != nil {
		t.Fatal(err)
	}
	wantR := identity.DM{Kind: identity.DMKindReceipt, Sender: bob.key.Public(), Recipient: alice.key.Public(),
		Timestamp: testNow.Add(time.Second).UnixMilli(), ID: rid, Ack: id, Sig: r.Sig}
	if r != wantR {
		t.Fatalf("opened receipt %+v\nwant %+v", r, wantR)
	}
	if rid == id {
		t.Error("receipt reuses the message ID")
	}

	// A DM to oneself works (notes to self, other sessions of the user).
	self, _, err := identity.SealDM(alice.key, alice.bundle, identity.AnonymousUsername, "", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := identity.OpenDM(alice.dm, self); err != nil || m.Username != "anonymous" || m.Body != "" {
		t.Fatalf("self DM: %+v, %v", m, err)
	}

	// Sealing is randomized: the same DM never gives the same envelope.
	var dm identity.DM
	dm = want
	e1, err1 := dm.Seal(bob.bundle)
	e2, err2 := dm.Seal(bob.bundle)
	if err1 != nil || err2 != nil || bytes.Equal(e1, e2) {
		t.Fatalf("Seal twice: equal=%v, %v, %v", bytes.Equal(e1, e2), err1, err2)
	}
}

func TestEnvelopeLayout(t *testing.T) {
	alice, bob := newDMParty(t, 1), newDMParty(t, 2)
	env, _, err := identity.SealDM(alice.key, bob.bundle, "alice", "hi", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if env[0] != 0x01 {
		t.Errorf("version byte %#x", env[0])
	}
	h := sha256.Sum256(append([]byte(tTagDomain), pubBytes(bob.key)...))
	if !bytes.Equal(env[1:17], h[:16]) {
		t.Errorf("tag %x, want %x", env[1:17], h[:16])
	}
	tag, err := identity.EnvelopeTag(env)
	if err != nil || tag != identity.DMTag(bob.key.Public()) || !bytes.Equal(tag[:], h[:16]) {
		t.Errorf("EnvelopeTag = %x, %v", tag, err)
	}
	// Open it independently with crypto/hpke from the documented layout.
	pt := openRaw(t, bob, env)
	n := binary.BigEndian.Uint32(pt)
	var m identity.DM
	if err := m.UnmarshalBinary(pt[4 : 4+n]); err != nil || m.Body != "hi" {
		t.Fatalf("inner: %+v, %v", m, err)
	}
	if err := m.Verify(); err != nil {
		t.Fatal(err)
	}
	// Nothing readable leaks outside the ciphertext.
	for _, s := range [][]byte{[]byte("alice"), pubBytes(alice.key), pubBytes(bob.key)} {
		if bytes.Contains(env, s) {
			t.Errorf("envelope contains %x in the clear", s)
		}
	}
}

// openRaw decrypts env for p with crypto/hpke directly.
func openRaw(t testing.TB, p dmParty, env []byte) []byte {
	t.Helper()
	ikm, err := hkdf.Key(sha256.New, p.key.Seed(), nil, tDMKeyInfo, 32)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := hpke.MLKEM768X25519().DeriveKeyPair(ikm)
	if err != nil {
		t.Fatal(err)
	}
	pub := p.key.Public()
	r, err := hpke.NewRecipient(env[tEnvHeader:tEnvHeader+tEncSize], sk, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), append([]byte(tInfoPrefix), pub[:]...))
	if err != nil {
		t.Fatal(err)
	}
	pt, err := r.Open(env[:tEnvHeader], env[tEnvHeader+tEncSize:])
	if err != nil {
		t.Fatal(err)
	}
	return pt
}

func TestDMPaddingBuckets(t *testing.T) {
	alice, bob := newDMParty(t, 1), newDMParty(t, 2)
	if got, want := identity.EnvelopeSizes(), []int{1665, 2177, 3201, 5249, 9345}; !equalInts(got, want) {
		t.Fatalf("EnvelopeSizes = %v, want %v", got, want)
	}
	if identity.MinEnvelopeSize != 1665 || identity.MaxEnvelopeSize != 9345 {
		t.Fatalf("Min/MaxEnvelopeSize = %d/%d", identity.MinEnvelopeSize, identity.MaxEnvelopeSize)
	}
	for _, tt := range []struct {
		body int
		size int
	}{
		{0, 1665}, {100, 1665}, {1000, 3201}, {4000, 9345}, {4096, 9345},
	} {
		env, _, err := identity.SealDM(alice.key, bob.bundle, "alice", strings.Repeat("x", tt.body), testNow)
		if err != nil {
			t.Fatal(err)
		}
		if len(env) != tt.size {
			t.Errorf("body %d bytes: envelope %d bytes, want %d", tt.body, len(env), tt.size)
		}
	}
	// Every body length lands on the smallest bucket that holds it; check
	// the boundaries: inner length 4+162+body crosses 512, 1024, 2048, 4096.
	for _, bucket := range tBuckets[:4] {
		for _, delta := range []int{0, 1} {
			body := bucket - 4 - (1 + 32 + 32 + 4 + 5 + 4 + 8 + 16 + 64) + delta
			env, _, err := identity.SealDM(alice.key, bob.bundle, "alice", strings.Repeat("y", body), testNow)
			if err != nil {
				t.Fatal(err)
			}
			want := tEnvOverhead + smallestBucket(bucket+delta)
			if len(env) != want {
				t.Errorf("body %d: envelope %d bytes, want %d", body, len(env), want)
			}
			if _, err := identity.OpenDM(bob.dm, env); err != nil {
				t.Errorf("body %d: %v", body, err)
			}
		}
	}
	renv, _, err := identity.SealReceipt(bob.key, alice.bundle, [16]byte{1}, testNow)
	if err != nil || len(renv) != 1665 {
		t.Errorf("receipt envelope %d bytes, %v", len(renv), err)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOpenDMEveryByteFlipped(t *testing.T) {
	alice, bob := newDMParty(t, 1), newDMParty(t, 2)
	env, _, err := identity.SealDM(alice.key, bob.bundle, "alice", "flip me", testNow)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := identity.OpenDM(bob.dm, env); err != nil {
		t.Fatal(err)
	}
	counts := map[error]int{}
	mod := append([]byte(nil), env...)
	for i := range env {
		mod[i] ^= 0x01
		_, err := identity.OpenDM(bob.dm, mod)
		mod[i] = env[i]
		var class error
		for _, s := range []error{identity.ErrMalformed, identity.ErrNotForMe, identity.ErrDecrypt} {
			if errors.Is(err, s) {
				class = s
				break
			}
		}
		if class == nil {
			t.Fatalf("byte %d flipped: OpenDM error %v, want malformed, not for me or cannot decrypt", i, err)
		}
		counts[class]++
	}
	// version byte -> malformed; tag -> not for me; the rest -> decrypt.
	if counts[identity.ErrMalformed] != 1 || counts[identity.ErrNotForMe] != 16 || counts[identity.ErrDecrypt] != len(env)-17 {
		t.Errorf("error classes %v", counts)
	}
}

func TestOpenDMRejects(t *testing.T) {
	alice, bob, carol := newDMParty(t, 1), newDMParty(t, 2), newDMParty(t, 3)
	env, _, err := identity.SealDM(alice.key, bob.bundle, "alice", "hello", testNow)
	if err != nil {
		t.Fatal(err)
	}
	bobTag := identity.DMTag(bob.key.Public())
	signed := func(m identity.DM) []byte {
		m.Sign(alice.key)
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	okInner := signed(identity.DM{Kind: identity.DMKindMessage, Recipient: bob.key.Public(), Username: "alice", Body: "hi", Timestamp: 1})
	sealToBob := func(pt []byte) []byte { return sealRaw(t, bobTag, bob.key.Public(), bob.bundle.DM, pt) }

	// The independent sealer is right: a well-formed plaintext opens.
	if _, err := identity.OpenDM(bob.dm, sealToBob(padRaw(okInner, 512))); err != nil {
		t.Fatalf("independently sealed envelope: %v", err)
	}

	tamperedBody := append([]byte(nil), okInner...)
	tamperedBody[1+32+32+4+5+4] ^= 1 // 'h' -> 'i'
	nonZeroPad := padRaw(okInner, 512)
	nonZeroPad[511] = 1
	tooLong := padRaw(okInner, 512)
	binary.BigEndian.PutUint32(tooLong, 509)
	tooLongInner := padRaw(okInner, 8192)
	binary.BigEndian.PutUint32(tooLongInner, tMaxInnerSize+1)

	tests := []struct {
		name string
		me   identity.DMPrivateKey
		env  []byte
		want error
	}{
		{"empty", bob.dm, nil, identity.ErrMalformed},
		{"truncated by one byte", bob.dm, env[:len(env)-1], identity.ErrMalformed},
		{"extended by one byte", bob.dm, append(append([]byte(nil), env...), 0), identity.ErrMalformed},
		{"truncated to the header", bob.dm, env[:tEnvHeader+tEncSize], identity.ErrMalformed},
		{"oversized", bob.dm, make([]byte, identity.MaxEnvelopeSize+1), identity.ErrTooLarge},
		{"version 2", bob.dm, append([]byte{2}, env[1:]...), identity.ErrMalformed},
		{"wrong recipient (not my tag)", carol.dm, env, identity.ErrNotForMe},
		{"sender cannot open", alice.dm, env, identity.ErrNotForMe},
		{"tag rewritten to carol's", carol.dm, withTag(env, identity.DMTag(carol.key.Public())), identity.ErrDecrypt},
		{"sealed to carol's DM key under bob's tag and info", bob.dm,
			sealRaw(t, bobTag, bob.key.Public(), carol.bundle.DM, padRaw(okInner, 512)), identity.ErrDecrypt},
		{"info names carol", bob.dm, sealRaw(t, bobTag, carol.key.Public(), bob.bundle.DM, padRaw(okInner, 512)), identity.ErrDecrypt},
		{"re-addressed: signed for carol, sealed to bob", bob.dm,
			sealToBob(padRaw(signed(identity.DM{Kind: identity.DMKindMessage, Recipient: carol.key.Public(), Username: "alice", Body: "hi", Timestamp: 1}), 512)),
			identity.ErrReaddressed},
		{"inner signature broken", bob.dm, sealToBob(padRaw(tamperedBody, 512)), identity.ErrBadSignature},
		{"padding not zero", bob.dm, sealToBob(nonZeroPad), identity.ErrMalformed},
		{"not the smallest bucket", bob.dm, sealToBob(padRaw(okInner, 1024)), identity.ErrMalformed},
		{"length past the plaintext", bob.dm, sealToBob(tooLong), identity.ErrMalformed},
		{"length over the largest DM", bob.dm, sealToBob(tooLongInner), identity.ErrMalformed},
		{"inner garbage", bob.dm, sealToBob(padRaw([]byte{9, 9, 9}, 512)), identity.ErrMalformed},
		{"inner trailing byte", bob.dm, sealToBob(padRaw(append(okInner, 0), 512)), identity.ErrMalformed},
		{"zero key", identity.DMPrivateKey{}, env, identity.ErrInvalidKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := identity.OpenDM(tt.me, tt.env)
			if !errors.Is(err, tt.want) {
				t.Fatalf("OpenDM = %+v, %v; want %v", m, err, tt.want)
			}
			if m != (identity.DM{}) {
				t.Errorf("returned a DM with the error: %+v", m)
			}
		})
	}
}

func pubBytes(k identity.PrivateKey) []byte {
	p := k.Public()
	return p[:]
}

// fmtAll prints v with every verb that could dump a struct's bytes.
func fmtAll(v any) string {
	return fmt.Sprintf("%v %+v %#v %s %x %X %d %q", v, v, v, v, v, v, v, v)
}

func withTag(env []byte, tag [16]byte) []byte {
	e := append([]byte(nil), env...)
	copy(e[1:17], tag[:])
	return e
}

func TestSealDMRejects(t *testing.T) {
	alice, bob := newDMParty(t, 1), newDMParty(t, 2)
	noIdentity := bob.bundle
	noIdentity.Identity = identity.PublicKey{}
	noDMKey := bob.bundle
	noDMKey.DM = identity.DMPublicKey{}
	badDMKey := bob.bundle
	for i := 0; i < 2; i++ {
		badDMKey.DM[i] = 0xff // first ML-KEM coefficient 4095 >= q
	}
	tests := []struct {
		name     string
		priv     identity.PrivateKey
		to       identity.KeyBundle
		username string
		body     string
		want     error
	}{
		{"zero sender", identity.PrivateKey{}, bob.bundle, "alice", "x", identity.ErrInvalidKey},
		{"zero recipient identity", alice.key, noIdentity, "alice", "x", identity.ErrMalformed},
		{"zero DM key", alice.key, noDMKey, "alice", "x", identity.ErrMalformed},
		{"non-canonical DM key", alice.key, badDMKey, "alice", "x", identity.ErrMalformed},
		{"empty username", alice.key, bob.bundle, "", "x", identity.ErrInvalidUsername},
		{"bad username", alice.key, bob.bundle, "al ice", "x", identity.ErrInvalidUsername},
		{"body too large", alice.key, bob.bundle, "alice", strings.Repeat("x", identity.MaxDMBodyLen+1), identity.ErrTooLarge},
		{"body not UTF-8", alice.key, bob.bundle, "alice", "\xff", identity.ErrMalformed},
	}
	for _, tt := range tests {
		env, _, err := identity.SealDM(tt.priv, tt.to, tt.username, tt.body, testNow)
		if !errors.Is(err, tt.want) || env != nil {
			t.Errorf("%s: SealDM = %d bytes, %v; want %v", tt.name, len(env), err, tt.want)
		}
	}
	if _, _, err := identity.SealReceipt(alice.key, bob.bundle, [16]byte{}, testNow); !errors.Is(err, identity.ErrMalformed) {
		t.Errorf("receipt for the zero ID: %v", err)
	}

	// A signed DM cannot be sealed to someone it was not signed for.
	m := identity.DM{Kind: identity.DMKindMessage, Recipient: alice.key.Public(), Username: "a", Timestamp: 1}
	m.Sign(alice.key)
	if _, err := m.Seal(bob.bundle); !errors.Is(err, identity.ErrReaddressed) {
		t.Errorf("Seal to another bundle: %v", err)
	}
}

func TestDMSignatureBindsEveryField(t *testing.T) {
	alice, bob, carol := newDMParty(t, 1), newDMParty(t, 2), newDMParty(t, 3)
	msg := identity.DM{Kind: identity.DMKindMessage, Recipient: bob.key.Public(), Username: "alice", Body: "hi", Timestamp: 5, ID: [16]byte{7}}
	msg.Sign(alice.key)
	rcp := identity.DM{Kind: identity.DMKindReceipt, Recipient: bob.key.Public(), Ack: [16]byte{7}, Timestamp: 5, ID: [16]byte{8}}
	rcp.Sign(alice.key)
	for _, m := range []identity.DM{msg, rcp} {
		if err := m.Verify(); err != nil {
			t.Fatal(err)
		}
	}
	edits := []struct {
		name string
		base identity.DM
		f    func(*identity.DM)
	}{
		{"recipient", msg, func(m *identity.DM) { m.Recipient = carol.key.Public() }},
		{"sender", msg, func(m *identity.DM) { m.Sender = carol.key.Public() }},
		{"username", msg, func(m *identity.DM) { m.Username = "alicf" }},
		{"body", msg, func(m *identity.DM) { m.Body = "ho" }},
		{"timestamp", msg, func(m *identity.DM) { m.Timestamp++ }},
		{"id", msg, func(m *identity.DM) { m.ID[15] = 1 }},
		{"message as receipt", msg, func(m *identity.DM) { m.Kind = identity.DMKindReceipt }},
		{"receipt recipient", rcp, func(m *identity.DM) { m.Recipient = carol.key.Public() }},
		{"receipt ack", rcp, func(m *identity.DM) { m.Ack[0] = 8 }},
		{"receipt timestamp", rcp, func(m *identity.DM) { m.Timestamp-- }},
		{"receipt as message", rcp, func(m *identity.DM) { m.Kind = identity.DMKindMessage }},
	}
	for _, e := range edits {
		m := e.base
		e.f(&m)
		if err := m.Verify(); !errors.Is(err, identity.ErrBadSignature) {
			t.Errorf("%s changed: Verify = %v", e.name, err)
		}
	}
	unknown := msg
	unknown.Kind = 3
	if err := unknown.Verify(); !errors.Is(err, identity.ErrMalformed) {
		t.Errorf("unknown kind: %v", err)
	}
	if unknown.SignedBytes() != nil {
		t.Error("unknown kind has signed bytes")
	}
}

func TestDMSignedBytesLayout(t *testing.T) {
	a, b := newDMParty(t, 1), newDMParty(t, 2)
	m := identity.DM{Kind: identity.DMKindMessage, Sender: a.key.Public(), Recipient: b.key.Public(),
		Username: "al", Body: "xyz", Timestamp: 0x0102030405060708, ID: [16]byte{0xaa}}
	var want []byte
	want = append(want, "darkchat/v1/dm\x00"...)
	want = append(want, m.Sender[:]...)
	want = append(want, m.Recipient[:]...)
	want = append(want, 0, 0, 0, 2, 'a', 'l', 0, 0, 0, 3, 'x', 'y', 'z', 1, 2, 3, 4, 5, 6, 7, 8)
	want = append(want, m.ID[:]...)
	if got := m.SignedBytes(); !bytes.Equal(got, want) {
		t.Errorf("message signed bytes\n got %x\nwant %x", got, want)
	}
	inner, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if wantInner := append(append([]byte{1}, want[15:]...), m.Sig[:]...); !bytes.Equal(inner, wantInner) {
		t.Errorf("inner\n got %x\nwant %x", inner, wantInner)
	}

	r := identity.DM{Kind: identity.DMKindReceipt, Sender: a.key.Public(), Recipient: b.key.Public(),
		Ack: [16]byte{0xbb}, Timestamp: -2, ID: [16]byte{0xcc}}
	want = append([]byte("darkchat/v1/receipt\x00"), r.Sender[:]...)
	want = append(want, r.Recipient[:]...)
	want = append(want, r.Ack[:]...)
	want = append(want, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe)
	want = append(want, r.ID[:]...)
	if got := r.SignedBytes(); !bytes.Equal(got, want) {
		t.Errorf("receipt signed bytes\n got %x\nwant %x", got, want)
	}
	inner, err = r.MarshalBinary()
	if err != nil || len(inner) != 169 {
		t.Errorf("receipt inner %d bytes, %v", len(inner), err)
	}
}

func TestDMUnmarshalStrict(t *testing.T) {
	a, b := newDMParty(t, 1), newDMParty(t, 2)
	m := identity.DM{Kind: identity.DMKindMessage, Recipient: b.key.Public(), Username: "alice", Body: "hello", Timestamp: 9, ID: [16]byte{1}}
	m.Sign(a.key)
	inner, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got identity.DM
	if err := got.UnmarshalBinary(inner); err != nil || got != m {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	offUser := 1 + 32 + 32
	offBody := offUser + 4 + 5
	edit := func(f func([]byte) []byte) []byte { return f(append([]byte(nil), inner...)) }
	bad := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"kind 0", edit(func(w []byte) []byte { w[0] = 0; return w })},
		{"kind 3", edit(func(w []byte) []byte { w[0] = 3; return w })},
		{"receipt kind on message bytes", edit(func(w []byte) []byte { w[0] = 2; return w })},
		{"truncated", inner[:len(inner)-1]},
		{"trailing byte", append(append([]byte(nil), inner...), 0)},
		{"username length 33", edit(func(w []byte) []byte { binary.BigEndian.PutUint32(w[offUser:], 33); return w })},
		{"username length past the end", edit(func(w []byte) []byte { binary.BigEndian.PutUint32(w[offUser:], 0xffffffff); return w })},
		{"body length 4097", edit(func(w []byte) []byte { binary.BigEndian.PutUint32(w[offBody:], 4097); return w })},
		{"bad username", edit(func(w []byte) []byte { w[offUser+4] = ' '; return w })},
		{"empty username", edit(func(w []byte) []byte {
			binary.BigEndian.PutUint32(w[offUser:], 0)
			return append(w[:offUser+4], w[offUser+4+5:]...)
		})},
		{"body not UTF-8", edit(func(w []byte) []byte { w[offBody+4] = 0xff; return w })},
		{"oversized", make([]byte, tMaxInnerSize+1)},
	}
	for _, tt := range bad {
		before := got
		if err := got.UnmarshalBinary(tt.in); !errors.Is(err, identity.ErrMalformed) {
			t.Errorf("%s: UnmarshalBinary = %v, want malformed", tt.name, err)
		}
		if got != before {
			t.Errorf("%s: the DM changed on error", tt.name)
		}
	}

	// Receipts: zero ack, or a username or body, are refused.
	r := identity.DM{Kind: identity.DMKindReceipt, Recipient: b.key.Public(), Timestamp: 9, ID: [16]byte{2}}
	if _, err := r.MarshalBinary(); !errors.Is(err, identity.ErrMalformed) {
		t.Errorf("receipt with zero ack: %v", err)
	}
	r.Ack[0] = 1
	r.Body = "x"
	if _, err := r.MarshalBinary(); !errors.Is(err, identity.ErrMalformed) {
		t.Errorf("receipt with body: %v", err)
	}
	r.Body = ""
	r.Sign(a.key)
	rin, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	zeroAck := append([]byte(nil), rin...)
	clear(zeroAck[65 : 65+16])
	if err := got.UnmarshalBinary(zeroAck); !errors.Is(err, identity.ErrMalformed) {
		t.Errorf("decoded receipt with zero ack: %v", err)
	}
	withAck := m
	withAck.Ack[0] = 1
	if _, err := withAck.MarshalBinary(); !errors.Is(err, identity.ErrMalformed) {
		t.Errorf("message with an ack: %v", err)
	}
}

func TestDMTagAndShard(t *testing.T) {
	k := mustKey(t, seedOf(1))
	pub := k.Public()
	h := sha256.Sum256(append([]byte(tTagDomain), pub[:]...))
	tag := identity.DMTag(pub)
	if !bytes.Equal(tag[:], h[:16]) {
		t.Fatalf("DMTag = %x, want %x", tag, h[:16])
	}
	if identity.DMTag(mustKey(t, seedOf(2)).Public()) == tag {
		t.Fatal("two keys share a tag")
	}
	if identity.DMShards != 64 {
		t.Errorf("DMShards = %d", identity.DMShards)
	}
	for _, tt := range []struct {
		b0, b1 byte
		shards int
		want   int
	}{
		{0, 0, 64, 0}, {0, 63, 64, 63}, {0, 64, 64, 0}, {0xff, 0xff, 64, 63}, {0x12, 0x34, 64, 0x1234 % 64},
		{0x12, 0x34, 1, 0}, {0x12, 0x34, 0, 0}, {0x12, 0x34, -5, 0}, {0xff, 0xff, 1000, 65535 % 1000},
	} {
		var tg [16]byte
		tg[0], tg[1] = tt.b0, tt.b1
		if got := identity.DMShard(tg, tt.shards); got != tt.want {
			t.Errorf("DMShard(%02x%02x.., %d) = %d, want %d", tt.b0, tt.b1, tt.shards, got, tt.want)
		}
	}
	// Uniform: over all 65536 prefixes every shard gets exactly 1024.
	counts := make([]int, identity.DMShards)
	for i := 0; i < 1<<16; i++ {
		var tg [16]byte
		binary.BigEndian.PutUint16(tg[:], uint16(i))
		counts[identity.DMShard(tg, identity.DMShards)]++
	}
	for s, c := range counts {
		if c != 1024 {
			t.Fatalf("shard %d gets %d of 65536 tags", s, c)
		}
	}
}

func TestEnvelopeTag(t *testing.T) {
	alice, bob := newDMParty(t, 1), newDMParty(t, 2)
	for _, size := range identity.EnvelopeSizes() {
		env := make([]byte, size)
		env[0] = 1
		env[5] = 0xab
		tag, err := identity.EnvelopeTag(env)
		if err != nil || tag[4] != 0xab {
			t.Errorf("size %d: %x, %v", size, tag, err)
		}
	}
	env, _, err := identity.SealReceipt(alice.key, bob.bundle, [16]byte{1}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]byte{nil, {1}, env[:len(env)-1], append(append([]byte(nil), env...), 0), append([]byte{0}, env[1:]...), make([]byte, 1664), make([]byte, 100000)} {
		if _, err := identity.EnvelopeTag(bad); !errors.Is(err, identity.ErrMalformed) {
			t.Errorf("%d bytes: EnvelopeTag error %v", len(bad), err)
		}
	}
}

func TestDMKeyDerivation(t *testing.T) {
	k1 := mustKey(t, seedOf(1))
	a, err := k1.DMKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := mustKey(t, seedOf(1)).DMKey()
	if err != nil {
		t.Fatal(err)
	}
	if a.Public() != b.Public() || a.Public().IsZero() || a.Identity() != k1.Public() {
		t.Fatal("same seed gives different DM keys")
	}
	c, err := mustKey(t, seedOf(2)).DMKey()
	if err != nil {
		t.Fatal(err)
	}
	if c.Public() == a.Public() {
		t.Fatal("different seeds give the same DM key")
	}
	// The derivation as documented: HKDF-SHA256 then RFC 9180 DeriveKeyPair.
	ikm, err := hkdf.Key(sha256.New, seedOf(1), nil, tDMKeyInfo, 32)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := hpke.MLKEM768X25519().DeriveKeyPair(ikm)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sk.PublicKey().Bytes(), a.Public().Bytes()) {
		t.Fatal("DM key does not follow the documented derivation")
	}
	if len(a.Public().Bytes()) != identity.DMPublicKeySize || identity.DMPublicKeySize != 1216 {
		t.Fatalf("DM public key is %d bytes", len(a.Public().Bytes()))
	}
	if _, err := (identity.PrivateKey{}).DMKey(); !errors.Is(err, identity.ErrInvalidKey) {
		t.Errorf("zero key: %v", err)
	}
	if !(identity.DMPrivateKey{}).IsZero() || a.IsZero() {
		t.Error("IsZero")
	}
	// Printing the private key never prints secret material.
	for _, s := range []string{a.String(), fmtAll(a)} {
		if !strings.Contains(s, k1.Public().String()) || strings.Contains(s, "0101010101") {
			t.Errorf("DMPrivateKey prints %q", s)
		}
	}
}

func TestParseDMPublicKey(t *testing.T) {
	a := newDMParty(t, 1)
	raw := a.dm.Public().Bytes()
	k, err := identity.ParseDMPublicKey(raw)
	if err != nil || k != a.dm.Public() {
		t.Fatalf("ParseDMPublicKey: %v", err)
	}
	raw[0] ^= 1
	if a.dm.Public().Bytes()[0] == raw[0] {
		t.Fatal("Bytes does not return a copy")
	}
	badCoeff := a.dm.Public().Bytes()
	badCoeff[0], badCoeff[1] = 0xff, 0xff
	for _, tt := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"short", raw[:1215]},
		{"long", append(a.dm.Public().Bytes(), 0)},
		{"all zero", make([]byte, 1216)},
		{"ML-KEM coefficient out of range", badCoeff},
	} {
		if _, err := identity.ParseDMPublicKey(tt.in); !errors.Is(err, identity.ErrMalformed) {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}
