package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/hdevalence/ed25519consensus"
)

const (
	// PublicKeySize is the size of an Ed25519 public key in bytes.
	PublicKeySize = ed25519.PublicKeySize
	// SeedSize is the size of an Ed25519 private key seed in bytes.
	SeedSize = ed25519.SeedSize
	// SignatureSize is the size of an Ed25519 signature in bytes.
	SignatureSize = ed25519.SignatureSize
)

// PublicKey is a user's Ed25519 public key. It is also the user's address,
// written as 64 lowercase hex characters.
type PublicKey [PublicKeySize]byte

// String returns the key as 64 lowercase hex characters.
func (p PublicKey) String() string { return hex.EncodeToString(p[:]) }

// IsZero reports whether p is the zero value (never a real user's key).
func (p PublicKey) IsZero() bool { return p == PublicKey{} }

// MarshalText implements encoding.TextMarshaler, so a PublicKey is a hex
// string in JSON.
func (p PublicKey) MarshalText() ([]byte, error) {
	return hex.AppendEncode(make([]byte, 0, 2*PublicKeySize), p[:]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler with ParsePublicKey's
// rules.
func (p *PublicKey) UnmarshalText(text []byte) error {
	k, err := ParsePublicKey(string(text))
	if err != nil {
		return err
	}
	*p = k
	return nil
}

// ParsePublicKey parses exactly 64 hex characters (either case) into a key.
// It does not check that the bytes are a valid curve point: an invalid key,
// or one of small order, simply never verifies a signature.
func ParsePublicKey(s string) (PublicKey, error) {
	var p PublicKey
	if len(s) != 2*PublicKeySize {
		return p, fmt.Errorf("%w public key: want %d hex characters, got %d", ErrMalformed, 2*PublicKeySize, len(s))
	}
	if i := firstNonHex(s); i >= 0 {
		return p, fmt.Errorf("%w public key: character %d (%q) is not a hex digit", ErrMalformed, i+1, s[i])
	}
	// Cannot fail: length and alphabet were checked above.
	hex.Decode(p[:], []byte(s))
	return p, nil
}

// firstNonHex returns the index of the first byte of s that is not a hex
// digit, or -1. It lets parsers say where the problem is.
func firstNonHex(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return i
		}
	}
	return -1
}

// firstNonLowerHex is firstNonHex for formats that are canonical lowercase.
func firstNonLowerHex(s string) int {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return i
		}
	}
	return -1
}

// PrivateKey is a user's Ed25519 private key. The zero value is not a key:
// signing with it yields no signature (see ErrInvalidKey).
//
// There is deliberately no exported method that signs arbitrary bytes: every
// signature this package makes starts with a domain prefix (see encoding.go),
// so a signature made for one purpose can never be valid for another.
type PrivateKey struct {
	key ed25519.PrivateKey // 64 bytes: seed || public key
}

// GenerateKey returns a new random key from crypto/rand.
func GenerateKey() (PrivateKey, error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("generate key: %w", err)
	}
	return PrivateKey{key: key}, nil
}

// NewKeyFromSeed derives the key for a 32-byte Ed25519 seed (RFC 8032).
func NewKeyFromSeed(seed []byte) (PrivateKey, error) {
	if len(seed) != SeedSize {
		return PrivateKey{}, fmt.Errorf("%w seed: want %d bytes, got %d", ErrMalformed, SeedSize, len(seed))
	}
	return PrivateKey{key: ed25519.NewKeyFromSeed(seed)}, nil
}

// IsZero reports whether k is the zero value rather than a real key.
func (k PrivateKey) IsZero() bool { return len(k.key) != ed25519.PrivateKeySize }

// Public returns the public key, or the zero PublicKey for the zero PrivateKey.
func (k PrivateKey) Public() PublicKey {
	var p PublicKey
	if !k.IsZero() {
		copy(p[:], k.key[SeedSize:])
	}
	return p
}

// Seed returns a copy of the 32-byte seed, the only secret that needs to be
// stored (the key file holds exactly this). It is nil for the zero key.
func (k PrivateKey) Seed() []byte {
	if k.IsZero() {
		return nil
	}
	return append([]byte(nil), k.key[:SeedSize]...)
}

// String identifies the key by its public half, so that logging a PrivateKey
// by mistake (%v, %s) never prints the secret.
func (k PrivateKey) String() string { return "identity.PrivateKey(public " + k.Public().String() + ")" }

// GoString is String for %#v.
func (k PrivateKey) GoString() string { return k.String() }

// Format makes every fmt verb (%x and %d included, which would otherwise
// print the struct's bytes) print String.
func (k PrivateKey) Format(f fmt.State, verb rune) { io.WriteString(f, k.String()) }

// sign signs msg, which must already start with a domain prefix. It returns
// nil for the zero key instead of panicking inside crypto/ed25519.
func (k PrivateKey) sign(msg []byte) []byte {
	if k.IsZero() {
		return nil
	}
	return ed25519.Sign(k.key, msg)
}

// verify reports whether sig is pub's signature of msg, by the ZIP-215
// rules (ed25519consensus: the cofactored equation; non-canonical point
// encodings accepted, S must be below the group order), and a key of
// small order verifies nothing (for such a key anyone can make signatures
// without a private key). Every path that verifies a signature (nodes,
// gateways, the clients, the browser) goes through here or through Batch,
// which gives the same verdicts: Ed25519 verifiers disagree on edge cases
// (crypto/ed25519 checks the cofactorless equation and rejects a
// non-canonical R), and a mesh whose nodes disagree on a message's
// validity can be split by it.
func verify(pub PublicKey, msg, sig []byte) bool {
	return len(sig) == SignatureSize && !hasSmallOrder(pub) && ed25519consensus.Verify(pub[:], msg, sig)
}

// smallOrderY lists the y coordinates, as 255-bit little-endian encodings,
// of the eight points of order 1, 2, 4 and 8 on the Ed25519 curve: 1, p-1,
// 0, the two y of the order-8 points, and p and p+1 (0 and 1 encoded
// without reduction, which crypto/ed25519 also decodes). Each is a point
// with either sign of x.
//
// For such a public key A, [k]A takes at most eight values, so R = -[k]A
// and S = 0 is a valid signature of a message whenever R guesses right
// (always, for the identity point): a forgery needs no private key.
// Honest keys are never of small order.
var smallOrderY = [...][PublicKeySize]byte{
	{0x01},
	{0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	{},
	{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
		0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05},
	{0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f,
		0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a},
	{0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
	{0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
}

// hasSmallOrder reports whether pub encodes a point of small order, with
// either sign bit.
func hasSmallOrder(pub PublicKey) bool {
	pub[31] &= 0x7f // the sign of x
	for _, y := range smallOrderY {
		if pub == y {
			return true
		}
	}
	return false
}
