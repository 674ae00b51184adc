package identity

import (
	"bytes"
	"fmt"
	"time"
)

const (
	// KeyBundleVersion is the first byte of a key bundle's wire form.
	KeyBundleVersion = 0x01

	// KeyBundleSize is the size of every version-1 key bundle (1333 bytes):
	// version, identity, length-prefixed DM key, issued, expires, signature.
	KeyBundleSize = 1 + PublicKeySize + lenPrefixSize + DMPublicKeySize + 8 + 8 + SignatureSize

	// MaxKeyBundleSize bounds a key bundle on the wire: the DHT validator,
	// the gateways and the clients drop anything longer before parsing it.
	// It leaves room above KeyBundleSize so that a later version may add a
	// field without every transport limit changing; version 1 decoders
	// accept exactly KeyBundleSize bytes.
	MaxKeyBundleSize = 1536

	// MaxKeyBundleTTL is the longest validity (Expires - Issued) a bundle
	// may claim. A bundle lapses unless its owner re-signs it within this
	// period, so the bundles of abandoned identities (a lost key, a deleted
	// browser profile) and of superseded formats stop being served;
	// a client re-signs (NewKeyBundle) at login and before expiry.
	MaxKeyBundleTTL = 7 * 24 * time.Hour

	// KeyBundleClockSkew is how far in the future Issued may be when a
	// bundle is verified: clocks differ, but a bundle dated far ahead would
	// win "newest wins" against every honest refresh until that date.
	KeyBundleClockSkew = 5 * time.Minute

	keyBundleSignedLen = len(DomainKeyBundle) + KeyBundleSize - 1 - SignatureSize
)

// KeyBundle is what a user publishes so that others can send them direct
// messages: their identity key and their DM public key, signed by the
// identity key, with a validity period. The user's address is the identity
// key, so a client that looks up a bundle for an address verifies it against
// that address (Verify): a node that stores or relays bundles cannot
// substitute its own DM key.
type KeyBundle struct {
	Identity PublicKey
	DM       DMPublicKey
	Issued   int64 // Unix milliseconds
	Expires  int64 // Unix milliseconds, after Issued, at most MaxKeyBundleTTL later
	Sig      [SignatureSize]byte
}

// NewKeyBundle derives priv's DM key and returns a bundle issued at now,
// valid for ttl (1ms <= ttl <= MaxKeyBundleTTL), signed by priv.
func NewKeyBundle(priv PrivateKey, now time.Time, ttl time.Duration) (KeyBundle, error) {
	if ttl < time.Millisecond || ttl > MaxKeyBundleTTL {
		return KeyBundle{}, fmt.Errorf("new key bundle: ttl %v must be at least 1ms and at most %v", ttl, MaxKeyBundleTTL)
	}
	dk, err := priv.DMKey()
	if err != nil {
		return KeyBundle{}, fmt.Errorf("new key bundle: %w", err)
	}
	b := KeyBundle{DM: dk.Public(), Issued: now.UnixMilli()}
	b.Expires = b.Issued + ttl.Milliseconds()
	b.Sign(priv)
	return b, nil
}

// IssuedTime and ExpiresTime return Issued and Expires as time.Time.
func (b KeyBundle) IssuedTime() time.Time  { return time.UnixMilli(b.Issued) }
func (b KeyBundle) ExpiresTime() time.Time { return time.UnixMilli(b.Expires) }

// validate checks the rules that do not need a clock or the signature: a
// DM key is present, and 0 < Expires - Issued <= MaxKeyBundleTTL.
func (b *KeyBundle) validate() error {
	if b.DM.IsZero() {
		return fmt.Errorf("%w key bundle: no DM public key", ErrMalformed)
	}
	if b.Expires <= b.Issued {
		return fmt.Errorf("%w key bundle: expires (%d) is not after issued (%d)", ErrMalformed, b.Expires, b.Issued)
	}
	// Expires > Issued, so the difference fits in a uint64 even when the
	// int64 subtraction would overflow.
	if d := uint64(b.Expires) - uint64(b.Issued); d > uint64(MaxKeyBundleTTL.Milliseconds()) {
		return fmt.Errorf("%w key bundle: valid for %d ms, over the limit of %v", ErrMalformed, d, MaxKeyBundleTTL)
	}
	return nil
}

// SignedBytes returns the bytes the signature covers:
//
//	DomainKeyBundle || identity (32) || len u32 || DM public key (1216) ||
//	issued i64 || expires i64
func (b KeyBundle) SignedBytes() []byte {
	return b.appendSigned(make([]byte, 0, keyBundleSignedLen))
}

func (b *KeyBundle) appendSigned(buf []byte) []byte {
	buf = append(buf, DomainKeyBundle...)
	return b.appendFields(buf)
}

func (b *KeyBundle) appendFields(buf []byte) []byte {
	buf = append(buf, b.Identity[:]...)
	buf = appendBytes(buf, b.DM[:])
	buf = appendInt64(buf, b.Issued)
	return appendInt64(buf, b.Expires)
}

// Sign sets Identity to priv's public key and Sig to the signature over
// SignedBytes. With the zero key it sets both to zero (so Verify fails).
// Sign does not check the fields; NewKeyBundle does.
func (b *KeyBundle) Sign(priv PrivateKey) {
	b.Identity = priv.Public()
	b.Sig = [SignatureSize]byte{}
	copy(b.Sig[:], priv.sign(b.SignedBytes()))
}

// Verify checks that the bundle belongs to expect (the address the caller
// asked for: Identity must equal it), that its fields follow the rules, that
// it is valid at now (now before Expires; Issued at most KeyBundleClockSkew
// after now), and that Sig is Identity's signature over SignedBytes. The
// checks run cheapest first. Errors wrap ErrWrongIdentity, ErrMalformed,
// ErrExpired, ErrNotYetValid or ErrBadSignature.
//
// Verify does not check that the DM key parses (Unmarshal and SealDM do).
func (b KeyBundle) Verify(expect PublicKey, now time.Time) error {
	if b.Identity != expect {
		return fmt.Errorf("key bundle: %w: it is for %s, want %s", ErrWrongIdentity, b.Identity, expect)
	}
	if err := b.validate(); err != nil {
		return err
	}
	ms := now.UnixMilli()
	if ms >= b.Expires {
		return fmt.Errorf("key bundle: %w at %s", ErrExpired, b.ExpiresTime().UTC().Format(time.RFC3339))
	}
	if b.Issued > ms && uint64(b.Issued)-uint64(ms) > uint64(KeyBundleClockSkew.Milliseconds()) {
		return fmt.Errorf("key bundle: %w: issued %s, more than %v ahead of now", ErrNotYetValid,
			b.IssuedTime().UTC().Format(time.RFC3339), KeyBundleClockSkew)
	}
	var buf [keyBundleSignedLen]byte
	if !verify(b.Identity, b.appendSigned(buf[:0]), b.Sig[:]) {
		return fmt.Errorf("key bundle: %w for identity %s", ErrBadSignature, b.Identity)
	}
	return nil
}

// Marshal returns the wire form (KeyBundleSize bytes):
//
//	0x01 || identity (32) || len u32 (1216) || DM public key (1216) ||
//	issued i64 || expires i64 || sig (64)
//
// that is the version byte, SignedBytes without the domain prefix, and the
// signature. It refuses a bundle that Unmarshal would reject.
func (b KeyBundle) Marshal() ([]byte, error) {
	if err := b.validate(); err != nil {
		return nil, err
	}
	if _, err := b.DM.hpkeKey(); err != nil {
		return nil, fmt.Errorf("key bundle: %w", err)
	}
	buf := make([]byte, 0, KeyBundleSize)
	buf = append(buf, KeyBundleVersion)
	buf = b.appendFields(buf)
	return append(buf, b.Sig[:]...), nil
}

// Unmarshal decodes the wire form strictly: known version, a DM key of
// exactly DMPublicKeySize bytes that parses as an MLKEM768-X25519 public key,
// 0 < Expires - Issued <= MaxKeyBundleTTL, no trailing bytes. It does not
// verify the signature or the times (Verify does). On error b is unchanged.
func (b *KeyBundle) Unmarshal(data []byte) error {
	if len(data) > MaxKeyBundleSize {
		return fmt.Errorf("%w key bundle: %d bytes, %w (%d bytes)", ErrMalformed, len(data), ErrTooLarge, MaxKeyBundleSize)
	}
	d := decoder{buf: data}
	if v := d.uint8("version"); d.err == nil && v != KeyBundleVersion {
		return fmt.Errorf("%w key bundle: unknown version %#02x, want %#02x", ErrMalformed, v, KeyBundleVersion)
	}
	id := d.raw("identity", PublicKeySize)
	dm := d.bytes("DM public key", DMPublicKeySize)
	issued := d.int64("issued")
	expires := d.int64("expires")
	sig := d.raw("signature", SignatureSize)
	if err := d.finish(); err != nil {
		return fmt.Errorf("%w key bundle: %w", ErrMalformed, err)
	}
	dmKey, err := ParseDMPublicKey(dm)
	if err != nil {
		return fmt.Errorf("key bundle: %w", err)
	}
	out := KeyBundle{DM: dmKey, Issued: issued, Expires: expires}
	copy(out.Identity[:], id)
	copy(out.Sig[:], sig)
	if err := out.validate(); err != nil {
		return err
	}
	*b = out
	return nil
}

// Newer reports whether a should replace b when both are valid bundles of
// the same identity: "newest wins" by Issued. Ties are broken by Expires,
// then by the DM key bytes, then by the signature, so Newer is a strict
// total order and every node keeps the same record.
func Newer(a, b KeyBundle) bool {
	if a.Issued != b.Issued {
		return a.Issued > b.Issued
	}
	if a.Expires != b.Expires {
		return a.Expires > b.Expires
	}
	if c := bytes.Compare(a.DM[:], b.DM[:]); c != 0 {
		return c > 0
	}
	return bytes.Compare(a.Sig[:], b.Sig[:]) > 0
}
