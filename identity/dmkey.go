package identity

import (
	"bytes"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/sha256"
	"fmt"
	"io"
	"sync"
)

const (
	// DMPublicKeySize is the size of a DM public key: the HPKE
	// MLKEM768-X25519 (X-Wing) encapsulation key, an ML-KEM-768
	// encapsulation key (1184 bytes) followed by an X25519 point (32).
	DMPublicKeySize = 1184 + 32

	// dmKeyInfo is the HKDF info that turns the Ed25519 seed into the DM
	// key's input keying material. Its own label keeps the derived bytes
	// independent of the Ed25519 key.
	dmKeyInfo = "darkchat/v1/dm-kem-key"

	// dmKeyIKMSize is the length of the input keying material handed to
	// DeriveKeyPair: Nsk of MLKEM768-X25519 (32 bytes), as RFC 9180
	// section 7.1.3 asks of ikm.
	dmKeyIKMSize = 32
)

// dmKEM is the KEM of every DM key and envelope.
var dmKEM = hpke.MLKEM768X25519()

// DMPublicKey is a user's public key for direct messages: the serialized
// HPKE MLKEM768-X25519 public key (SerializePublicKey). Users publish it in
// their KeyBundle, signed by their identity key. The zero value is not a key.
type DMPublicKey [DMPublicKeySize]byte

// ParseDMPublicKey checks that b is a DMPublicKeySize-byte MLKEM768-X25519
// public key (the ML-KEM part must be canonical, as FIPS 203 requires, and
// the X25519 part not of small order) and returns it. The all-zero key is
// refused.
func ParseDMPublicKey(b []byte) (DMPublicKey, error) {
	var k DMPublicKey
	if len(b) != DMPublicKeySize {
		return k, fmt.Errorf("%w DM public key: want %d bytes, got %d", ErrMalformed, DMPublicKeySize, len(b))
	}
	copy(k[:], b)
	if _, err := k.hpkeKey(); err != nil {
		return DMPublicKey{}, err
	}
	return k, nil
}

// Bytes returns a copy of the key's bytes.
func (k DMPublicKey) Bytes() []byte { return append([]byte(nil), k[:]...) }

// IsZero reports whether k is the zero value (never a real key).
func (k DMPublicKey) IsZero() bool { return k == DMPublicKey{} }

// hpkeKey parses k for crypto/hpke. crypto/hpke takes any 32 bytes as the
// X25519 part, but one of small order makes every encapsulation fail
// (crypto/ecdh refuses the all-zero shared secret), so such a key is
// refused here: a key that parses is one a DM can be sealed to.
func (k DMPublicKey) hpkeKey() (hpke.PublicKey, error) {
	if k.IsZero() {
		return nil, fmt.Errorf("%w DM public key: all zero", ErrMalformed)
	}
	pk, err := dmKEM.NewPublicKey(k[:])
	if err != nil {
		return nil, fmt.Errorf("%w DM public key: %w", ErrMalformed, err)
	}
	x, err := ecdh.X25519().NewPublicKey(k[DMPublicKeySize-dmX25519Size:])
	if err == nil {
		_, err = x25519Probe().ECDH(x)
	}
	if err != nil {
		return nil, fmt.Errorf("%w DM public key: X25519 part: %w", ErrMalformed, err)
	}
	return pk, nil
}

// dmX25519Size is the size of the X25519 point at the end of a DM key.
const dmX25519Size = 32

// x25519Probe is a fixed X25519 key whose exchange with a DM key's X25519
// part fails exactly when that part has small order (any clamped scalar
// maps those points, and only those, to zero).
var x25519Probe = sync.OnceValue(func() *ecdh.PrivateKey {
	k, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{0x5a}, dmX25519Size))
	if err != nil {
		panic(err)
	}
	return k
})

// DMPrivateKey is a user's key for opening direct messages: the HPKE
// MLKEM768-X25519 private key derived from the identity seed, together with
// the identity public key it belongs to (envelopes are addressed to the
// identity; see OpenDM). The zero value is not a key.
//
// Derivation costs about as much as a few signatures, so a client derives
// it once per identity (PrivateKey.DMKey) and keeps the value; the package
// caches nothing.
type DMPrivateKey struct {
	identity PublicKey
	key      hpke.PrivateKey
	pub      DMPublicKey
}

// DMKey derives the user's DM key pair from the Ed25519 seed, so the key
// file (and the browser export) still holds one 32-byte secret:
//
//	ikm  = HKDF-SHA256(secret = seed, salt = none, info = "darkchat/v1/dm-kem-key", L = 32)
//	pair = DeriveKeyPair(ikm) of HPKE KEM MLKEM768-X25519 (0x647a)
//
// DeriveKeyPair is RFC 9180's, as crypto/hpke implements it for the hybrid
// KEM of draft-ietf-hpke-pq: dk = SHAKE256(ikm || "HPKE-v1" || "KEM" ||
// 0x647a || u16(13) || "DeriveKeyPair" || u16(32)) truncated to 32 bytes,
// then the X-Wing private key is expanded from dk with SHAKE256 (64 bytes of
// ML-KEM-768 seed, then 32 bytes of X25519 scalar). The same seed always
// gives the same DM key; testdata/dm_vectors.json pins the result.
func (k PrivateKey) DMKey() (DMPrivateKey, error) {
	if k.IsZero() {
		return DMPrivateKey{}, fmt.Errorf("DM key: %w", ErrInvalidKey)
	}
	ikm, err := hkdf.Key(sha256.New, k.key[:SeedSize], nil, dmKeyInfo, dmKeyIKMSize)
	if err != nil {
		return DMPrivateKey{}, fmt.Errorf("DM key: %w", err)
	}
	priv, err := dmKEM.DeriveKeyPair(ikm)
	if err != nil {
		return DMPrivateKey{}, fmt.Errorf("DM key: %w", err)
	}
	d := DMPrivateKey{identity: k.Public(), key: priv}
	copy(d.pub[:], priv.PublicKey().Bytes())
	return d, nil
}

// IsZero reports whether k is the zero value rather than a derived key.
func (k DMPrivateKey) IsZero() bool { return k.key == nil }

// Public returns the DM public key to publish in a KeyBundle.
func (k DMPrivateKey) Public() DMPublicKey { return k.pub }

// Identity returns the identity public key the DM key was derived for.
func (k DMPrivateKey) Identity() PublicKey { return k.identity }

// String identifies the key by its identity, so that logging a DMPrivateKey
// by mistake never prints the secret.
func (k DMPrivateKey) String() string {
	return "identity.DMPrivateKey(identity " + k.identity.String() + ")"
}

// GoString is String for %#v.
func (k DMPrivateKey) GoString() string { return k.String() }

// Format makes every fmt verb print String.
func (k DMPrivateKey) Format(f fmt.State, verb rune) { io.WriteString(f, k.String()) }
