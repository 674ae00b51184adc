package identity_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"math"
	"testing"
	"time"

	"darkchat/identity"
)

func TestKeyBundleRoundTrip(t *testing.T) {
	k := mustKey(t, seedOf(1))
	b, err := identity.NewKeyBundle(k, testNow, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dk, err := k.DMKey()
	if err != nil {
		t.Fatal(err)
	}
	if b.Identity != k.Public() || b.DM != dk.Public() || b.Issued != testNow.UnixMilli() ||
		b.Expires != testNow.Add(24*time.Hour).UnixMilli() {
		t.Fatalf("fields: %+v", b)
	}
	if !b.IssuedTime().Equal(testNow) || !b.ExpiresTime().Equal(testNow.Add(24*time.Hour)) {
		t.Error("IssuedTime/ExpiresTime")
	}
	wire, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if len(wire) != identity.KeyBundleSize || identity.KeyBundleSize != 1333 || identity.MaxKeyBundleSize < identity.KeyBundleSize {
		t.Fatalf("wire is %d bytes (KeyBundleSize %d, max %d)", len(wire), identity.KeyBundleSize, identity.MaxKeyBundleSize)
	}
	// Layout: version || signed bytes without the prefix || signature.
	signed := b.SignedBytes()
	if !bytes.HasPrefix(signed, []byte(identity.DomainKeyBundle)) || wire[0] != 1 ||
		!bytes.Equal(wire[1:len(wire)-64], signed[len(identity.DomainKeyBundle):]) || !bytes.Equal(wire[len(wire)-64:], b.Sig[:]) {
		t.Fatal("wire form is not version || signed fields || sig")
	}
	if !ed25519.Verify(ed25519.PublicKey(b.Identity[:]), signed, b.Sig[:]) {
		t.Fatal("signature is not Ed25519 over SignedBytes")
	}
	var got identity.KeyBundle
	if err := got.Unmarshal(wire); err != nil || got != b {
		t.Fatalf("Unmarshal: %+v, %v", got, err)
	}
	if err := got.Verify(k.Public(), testNow); err != nil {
		t.Fatal(err)
	}
	if _, err := identity.NewKeyBundle(identity.PrivateKey{}, testNow, time.Hour); !errors.Is(err, identity.ErrInvalidKey) {
		t.Errorf("zero key: %v", err)
	}
	for _, ttl := range []time.Duration{0, -time.Hour, time.Microsecond, identity.MaxKeyBundleTTL + time.Millisecond} {
		if _, err := identity.NewKeyBundle(k, testNow, ttl); err == nil {
			t.Errorf("ttl %v accepted", ttl)
		}
	}
	if _, err := identity.NewKeyBundle(k, testNow, identity.MaxKeyBundleTTL); err != nil {
		t.Errorf("ttl MaxKeyBundleTTL: %v", err)
	}
}

func TestKeyBundleVerify(t *testing.T) {
	k1, k2 := mustKey(t, seedOf(1)), mustKey(t, seedOf(2))
	b, err := identity.NewKeyBundle(k1, testNow, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := identity.NewKeyBundle(k2, testNow, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	resign := func(f func(*identity.KeyBundle)) identity.KeyBundle {
		c := b
		f(&c)
		c.Sign(k1)
		return c
	}
	edit := func(f func(*identity.KeyBundle)) identity.KeyBundle {
		c := b
		f(&c)
		return c
	}
	skew := identity.KeyBundleClockSkew
	tests := []struct {
		name   string
		b      identity.KeyBundle
		expect identity.PublicKey
		now    time.Time
		want   error // nil: valid
	}{
		{"valid", b, k1.Public(), testNow, nil},
		{"valid just before expiry", b, k1.Public(), testNow.Add(24*time.Hour - time.Millisecond), nil},
		{"valid: issued within the clock skew", b, k1.Public(), testNow.Add(-skew), nil},
		{"wrong identity", b, k2.Public(), testNow, identity.ErrWrongIdentity},
		{"another user's bundle", other, k1.Public(), testNow, identity.ErrWrongIdentity},
		{"expired", b, k1.Public(), testNow.Add(24 * time.Hour), identity.ErrExpired},
		{"issued in the future", b, k1.Public(), testNow.Add(-skew - time.Millisecond), identity.ErrNotYetValid},
		{"bad signature", edit(func(c *identity.KeyBundle) { c.Sig[0] ^= 1 }), k1.Public(), testNow, identity.ErrBadSignature},
		{"zero signature", edit(func(c *identity.KeyBundle) { c.Sig = [64]byte{} }), k1.Public(), testNow, identity.ErrBadSignature},
		{"DM key substituted", edit(func(c *identity.KeyBundle) { c.DM = other.DM }), k1.Public(), testNow, identity.ErrBadSignature},
		{"expiry extended", edit(func(c *identity.KeyBundle) { c.Expires++ }), k1.Public(), testNow, identity.ErrBadSignature},
		{"issued changed", edit(func(c *identity.KeyBundle) { c.Issued-- }), k1.Public(), testNow, identity.ErrBadSignature},
		{"identity swapped with a valid signature of another key", edit(func(c *identity.KeyBundle) { c.Identity = k2.Public() }), k2.Public(), testNow, identity.ErrBadSignature},
		{"validity over 7 days", resign(func(c *identity.KeyBundle) {
			c.Expires = c.Issued + identity.MaxKeyBundleTTL.Milliseconds() + 1
		}), k1.Public(), testNow, identity.ErrMalformed},
		{"validity exactly 7 days", resign(func(c *identity.KeyBundle) {
			c.Expires = c.Issued + identity.MaxKeyBundleTTL.Milliseconds()
		}), k1.Public(), testNow, nil},
		{"expires before issued", resign(func(c *identity.KeyBundle) { c.Expires = c.Issued - 1 }), k1.Public(), testNow, identity.ErrMalformed},
		{"expires equals issued", resign(func(c *identity.KeyBundle) { c.Expires = c.Issued }), k1.Public(), testNow, identity.ErrMalformed},
		{"overflowing validity", resign(func(c *identity.KeyBundle) { c.Issued, c.Expires = math.MinInt64, math.MaxInt64 }), k1.Public(), testNow, identity.ErrMalformed},
		{"no DM key", resign(func(c *identity.KeyBundle) { c.DM = identity.DMPublicKey{} }), k1.Public(), testNow, identity.ErrMalformed},
		{"far-future bundle", resign(func(c *identity.KeyBundle) { c.Issued, c.Expires = math.MaxInt64-1, math.MaxInt64 }), k1.Public(), testNow, identity.ErrNotYetValid},
	}
	for _, tt := range tests {
		err := tt.b.Verify(tt.expect, tt.now)
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("%s: Verify = %v, want %v", tt.name, err, tt.want)
		}
	}
	// A bundle signed under another purpose's prefix never verifies.
	ed := ed25519.NewKeyFromSeed(seedOf(1))
	fields := b.SignedBytes()[len(identity.DomainKeyBundle):]
	for _, d := range []string{identity.DomainDM, identity.DomainReceipt, identity.DomainChannelMessage, identity.DomainLogin} {
		c := b
		copy(c.Sig[:], ed25519.Sign(ed, append([]byte(d), fields...)))
		if err := c.Verify(k1.Public(), testNow); !errors.Is(err, identity.ErrBadSignature) {
			t.Errorf("signed under %q: %v", d, err)
		}
	}
}

func TestKeyBundleUnmarshalStrict(t *testing.T) {
	k := mustKey(t, seedOf(1))
	b, err := identity.NewKeyBundle(k, testNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	wire, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	const offDM = 1 + 32
	const offIssued = offDM + 4 + 1216
	edit := func(f func([]byte) []byte) []byte { return f(append([]byte(nil), wire...)) }
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"version 2", edit(func(w []byte) []byte { w[0] = 2; return w })},
		{"truncated", wire[:len(wire)-1]},
		{"trailing byte", append(append([]byte(nil), wire...), 0)},
		{"oversized", make([]byte, identity.MaxKeyBundleSize+1)},
		{"DM key length 1215", edit(func(w []byte) []byte {
			binary.BigEndian.PutUint32(w[offDM:], 1215)
			return append(w[:offDM+4+1215], w[offDM+4+1216:]...)
		})},
		{"DM key length 1217", edit(func(w []byte) []byte {
			binary.BigEndian.PutUint32(w[offDM:], 1217)
			return append(w[:offDM+4+1216], append([]byte{0}, w[offDM+4+1216:]...)...)
		})},
		{"DM key length past the end", edit(func(w []byte) []byte { binary.BigEndian.PutUint32(w[offDM:], 0xffffffff); return w })},
		{"DM key not canonical", edit(func(w []byte) []byte { w[offDM+4], w[offDM+5] = 0xff, 0xff; return w })},
		{"DM key all zero", edit(func(w []byte) []byte { clear(w[offDM+4 : offDM+4+1216]); return w })},
		{"expires before issued", edit(func(w []byte) []byte { binary.BigEndian.PutUint64(w[offIssued+8:], 0); return w })},
		{"validity over 7 days", edit(func(w []byte) []byte {
			binary.BigEndian.PutUint64(w[offIssued+8:], uint64(b.Issued+identity.MaxKeyBundleTTL.Milliseconds()+1))
			return w
		})},
	}
	for _, tt := range tests {
		got := b
		if err := got.Unmarshal(tt.in); !errors.Is(err, identity.ErrMalformed) {
			t.Errorf("%s: Unmarshal = %v, want malformed", tt.name, err)
		}
		if got != b {
			t.Errorf("%s: bundle changed on error", tt.name)
		}
	}
	var zero identity.KeyBundle
	if _, err := zero.Marshal(); !errors.Is(err, identity.ErrMalformed) {
		t.Errorf("Marshal of the zero bundle: %v", err)
	}
}

func TestKeyBundleNewer(t *testing.T) {
	k := mustKey(t, seedOf(1))
	old, err := identity.NewKeyBundle(k, testNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	newer, err := identity.NewKeyBundle(k, testNow.Add(time.Millisecond), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !identity.Newer(newer, old) || identity.Newer(old, newer) {
		t.Error("a later Issued must win")
	}
	if identity.Newer(old, old) {
		t.Error("a bundle is not newer than itself")
	}
	longer, err := identity.NewKeyBundle(k, testNow, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !identity.Newer(longer, old) || identity.Newer(old, longer) {
		t.Error("same Issued: the later Expires wins")
	}
	// Same times, different signature bytes: still a strict order.
	a, b := old, old
	b.Sig[63] ^= 1
	if identity.Newer(a, b) == identity.Newer(b, a) {
		t.Error("Newer is not a strict total order")
	}
}
