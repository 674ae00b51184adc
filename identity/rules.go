package identity

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Owned channels (PROTOCOL.md §4.7). A channel named <base>.<fp>, where fp
// is the first OwnerFingerprintLen lowercase hex digits of a public key,
// belongs to that key: its rules record (operators, bans, topic, whether it
// is open) must be signed by it, or by an operator it named. The name
// certifies the owner by itself, as a user's address does, so any node can
// check a record alone, without asking anyone who the owner is.

// Domain-separation prefixes of the owned-channel encodings (see
// encoding.go for the others and for why each purpose has its own).
const (
	DomainChannelOps   = "darkchat/v1/channel-ops\x00"
	DomainChannelRules = "darkchat/v1/channel-rules\x00"
	DomainChannelKick  = "darkchat/v1/channel-kick\x00"
)

const (
	// OwnerFingerprintLen is how many hex digits of the owner's key an
	// owned channel's name ends with: 80 bits, so making a key whose
	// fingerprint matches a given channel's takes about 2^80 key
	// generations.
	OwnerFingerprintLen = 20
	// MaxOwnedBaseLen is the longest base of an owned channel's name: with
	// the dot and the fingerprint the name is at most MaxChannelLen.
	MaxOwnedBaseLen = MaxChannelLen - 1 - OwnerFingerprintLen

	// MaxChannelOps bounds a record's operators.
	MaxChannelOps = 32
	// MaxChannelBans bounds a record's banned keys. 512 keys keep the
	// largest record (MaxRulesRecordSize, about 18 KB) within one client
	// line in base64 (24 KB of the default 32 KiB) and far within one
	// mesh message (64 KiB).
	MaxChannelBans = 512
	// MaxTopicLen bounds a channel topic, in bytes of UTF-8.
	MaxTopicLen = 300
	// MaxKickReasonLen bounds a kick's reason, in bytes of UTF-8.
	MaxKickReasonLen = 200

	// RulesClockSkew is how far ahead of a verifier's clock a record or a
	// kick may be dated.
	RulesClockSkew = 5 * time.Minute

	// ChannelRulesVersion is the first byte of a rules record's wire
	// form, ChannelKickVersion of a kick's.
	ChannelRulesVersion = 0x01
	ChannelKickVersion  = 0x01

	// MaxRulesRecordSize is the largest wire form of a rules record
	// (18,006 bytes): the most every decoder and transport must accept.
	MaxRulesRecordSize = 1 + lenPrefixSize + MaxChannelLen + PublicKeySize + 8 + lenPrefixSize + MaxChannelOps*PublicKeySize +
		SignatureSize + 8 + lenPrefixSize + MaxChannelBans*PublicKeySize + lenPrefixSize + MaxTopicLen + 1 + PublicKeySize + 8 + SignatureSize
	// MaxKickRecordSize is the largest wire form of a kick (409 bytes).
	MaxKickRecordSize = 1 + lenPrefixSize + MaxChannelLen + 2*PublicKeySize + 8 + lenPrefixSize + MaxKickReasonLen + SignatureSize
)

// Fingerprint returns the first OwnerFingerprintLen hex digits of key: the
// suffix of the channels it owns.
func Fingerprint(key PublicKey) string { return key.String()[:OwnerFingerprintLen] }

// ChannelOwnerFingerprint reports whether channel is owned (its last
// dot-separated part is exactly OwnerFingerprintLen lowercase hex digits,
// after a non-empty base) and returns that part.
func ChannelOwnerFingerprint(channel string) (fp string, owned bool) {
	i := strings.LastIndexByte(channel, '.')
	if i < 1 || len(channel)-i-1 != OwnerFingerprintLen {
		return "", false
	}
	fp = channel[i+1:]
	if firstNonLowerHex(fp) >= 0 {
		return "", false
	}
	return fp, true
}

// IsOwnedChannel reports whether channel is an owned channel's name.
func IsOwnedChannel(channel string) bool {
	_, ok := ChannelOwnerFingerprint(channel)
	return ok
}

// OwnsChannel reports whether channel is owned by key.
func OwnsChannel(channel string, key PublicKey) bool {
	fp, ok := ChannelOwnerFingerprint(channel)
	return ok && fp == Fingerprint(key)
}

// OwnedChannelName returns base.<fingerprint of owner>, the name of the
// channel owner creates from base; base must match
// [a-z0-9][a-z0-9._-]{0,42}.
func OwnedChannelName(base string, owner PublicKey) (string, error) {
	if len(base) > MaxOwnedBaseLen {
		return "", fmt.Errorf("%w %q: an owned channel's base is at most %d characters", ErrInvalidChannelName, clip(base), MaxOwnedBaseLen)
	}
	if err := ValidateChannelName(base); err != nil {
		return "", err
	}
	name := base + "." + Fingerprint(owner)
	if err := ValidateChannelName(name); err != nil {
		return "", err
	}
	return name, nil
}

// ChannelRules is an owned channel's rules record. The owner signs the
// operator list (OpsSig, over the channel, the owner, OpsVersion and Ops);
// the owner or an operator signs the whole record (Sig, over every field,
// OpsSig included). Operators can therefore change the bans, the topic and
// whether the channel is open, but not who the operators are.
//
// Records are ordered (Compare): higher OpsVersion, then higher Version,
// then the larger SHA-256 of the wire form. Every node keeps the greatest
// valid record it has seen, so concurrent updates end the same everywhere.
type ChannelRules struct {
	Channel    string
	Owner      PublicKey
	OpsVersion int64
	Ops        []PublicKey // sorted, no duplicates, at most MaxChannelOps
	OpsSig     [SignatureSize]byte
	Version    int64
	Bans       []PublicKey // sorted, no duplicates, at most MaxChannelBans
	Topic      string
	// Open: anyone not banned may post. Otherwise only the owner and the
	// operators may.
	Open      bool
	Signer    PublicKey
	Timestamp int64 // Unix milliseconds, set by the signer
	Sig       [SignatureSize]byte
}

// NewChannelRules returns the first record of channel, which owner must
// own: version 1 of everything, no operators, no bans, no topic, open,
// signed by owner at now.
func NewChannelRules(owner PrivateKey, channel string, now time.Time) (ChannelRules, error) {
	if owner.IsZero() {
		return ChannelRules{}, fmt.Errorf("new channel rules: %w", ErrInvalidKey)
	}
	r := ChannelRules{Channel: channel, Owner: owner.Public(), OpsVersion: 1, Version: 1, Open: true, Timestamp: now.UnixMilli()}
	if err := r.Validate(); err != nil {
		return ChannelRules{}, fmt.Errorf("new channel rules: %w", err)
	}
	r.SignOps(owner)
	r.Sign(owner)
	return r, nil
}

// Clone returns a copy of r that shares no slices with it.
func (r *ChannelRules) Clone() ChannelRules {
	c := *r
	c.Ops = slices.Clone(r.Ops)
	c.Bans = slices.Clone(r.Bans)
	return c
}

// IsOperator reports whether key is the owner or one of the operators.
func (r *ChannelRules) IsOperator(key PublicKey) bool {
	if key == r.Owner {
		return true
	}
	_, ok := slices.BinarySearchFunc(r.Ops, key, comparePublicKey)
	return ok
}

// IsBanned reports whether key is banned.
func (r *ChannelRules) IsBanned(key PublicKey) bool {
	_, ok := slices.BinarySearchFunc(r.Bans, key, comparePublicKey)
	return ok
}

// MayPost reports whether key may post in the channel: not banned, and the
// channel open or key an operator.
func (r *ChannelRules) MayPost(key PublicKey) bool {
	return !r.IsBanned(key) && (r.Open || r.IsOperator(key))
}

// SetOps replaces the operators (sorted and de-duplicated here).
func (r *ChannelRules) SetOps(ops []PublicKey) { r.Ops = sortKeys(ops) }

// SetBans replaces the banned keys (sorted and de-duplicated here).
func (r *ChannelRules) SetBans(bans []PublicKey) { r.Bans = sortKeys(bans) }

func sortKeys(keys []PublicKey) []PublicKey {
	out := slices.Clone(keys)
	slices.SortFunc(out, comparePublicKey)
	return slices.Compact(out)
}

func comparePublicKey(a, b PublicKey) int { return bytes.Compare(a[:], b[:]) }

// Validate checks the rules that need neither a clock nor a signature: the
// channel is owned by Owner, the lists are sorted, free of duplicates and
// within their bounds, the owner is neither an operator nor banned, no
// operator is banned, and the topic is at most MaxTopicLen bytes of UTF-8
// without control characters.
func (r *ChannelRules) Validate() error {
	if err := ValidateChannelName(r.Channel); err != nil {
		return fmt.Errorf("%w channel rules: %w", ErrMalformed, err)
	}
	fp, owned := ChannelOwnerFingerprint(r.Channel)
	if !owned {
		return fmt.Errorf("%w channel rules: channel %q is not owned (its name does not end in .<%d hex digits>)", ErrMalformed, r.Channel, OwnerFingerprintLen)
	}
	if fp != Fingerprint(r.Owner) {
		return fmt.Errorf("%w channel rules: owner %s does not match the channel's fingerprint %s", ErrMalformed, r.Owner, fp)
	}
	if len(r.Ops) > MaxChannelOps {
		return fmt.Errorf("%w channel rules: %d operators, %w (%d)", ErrMalformed, len(r.Ops), ErrTooLarge, MaxChannelOps)
	}
	if len(r.Bans) > MaxChannelBans {
		return fmt.Errorf("%w channel rules: %d bans, %w (%d)", ErrMalformed, len(r.Bans), ErrTooLarge, MaxChannelBans)
	}
	if err := checkSortedKeys("operators", r.Ops); err != nil {
		return err
	}
	if err := checkSortedKeys("bans", r.Bans); err != nil {
		return err
	}
	if r.IsBanned(r.Owner) {
		return fmt.Errorf("%w channel rules: the owner cannot be banned", ErrMalformed)
	}
	if slices.Contains(r.Ops, r.Owner) {
		return fmt.Errorf("%w channel rules: the owner is not listed as an operator", ErrMalformed)
	}
	for _, op := range r.Ops {
		if r.IsBanned(op) {
			return fmt.Errorf("%w channel rules: operator %s is banned; deop first", ErrMalformed, op)
		}
	}
	return ValidateTopic(r.Topic)
}

// ValidateTopic checks a channel topic: at most MaxTopicLen bytes of UTF-8,
// no control characters (no line breaks, no terminal escapes).
func ValidateTopic(topic string) error {
	return checkText("topic", topic, MaxTopicLen)
}

func checkText(what, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%w %s: %d bytes, %w (%d)", ErrMalformed, what, len(s), ErrTooLarge, max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w %s: not valid UTF-8", ErrMalformed, what)
	}
	if i := strings.IndexFunc(s, unicode.IsControl); i >= 0 {
		return fmt.Errorf("%w %s: control character at byte %d", ErrMalformed, what, i)
	}
	return nil
}

func checkSortedKeys(what string, keys []PublicKey) error {
	for i := 1; i < len(keys); i++ {
		if comparePublicKey(keys[i-1], keys[i]) >= 0 {
			return fmt.Errorf("%w channel rules: %s are not sorted without duplicates", ErrMalformed, what)
		}
	}
	return nil
}

// OpsSignedBytes returns the bytes OpsSig covers:
//
//	DomainChannelOps || len u32 || channel || owner (32) ||
//	opsVersion i64 || count u32 || count × key (32)
func (r *ChannelRules) OpsSignedBytes() []byte {
	b := append([]byte(nil), DomainChannelOps...)
	return r.appendOps(b)
}

func (r *ChannelRules) appendOps(b []byte) []byte {
	b = appendStr(b, r.Channel)
	b = append(b, r.Owner[:]...)
	b = appendInt64(b, r.OpsVersion)
	return appendKeys(b, r.Ops)
}

func appendKeys(b []byte, keys []PublicKey) []byte {
	b = appendUint32(b, uint32(len(keys)))
	for _, k := range keys {
		b = append(b, k[:]...)
	}
	return b
}

func appendUint32(b []byte, v uint32) []byte {
	return append(b, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// SignedBytes returns the bytes Sig covers:
//
//	DomainChannelRules || len u32 || channel || owner (32) ||
//	opsVersion i64 || count u32 || count × operator (32) || opsSig (64) ||
//	version i64 || count u32 || count × banned key (32) ||
//	len u32 || topic || open u8 (0 or 1) || signer (32) || timestamp i64
func (r *ChannelRules) SignedBytes() []byte {
	b := make([]byte, 0, len(DomainChannelRules)+MaxRulesRecordSize)
	b = append(b, DomainChannelRules...)
	return r.appendFields(b)
}

func (r *ChannelRules) appendFields(b []byte) []byte {
	b = r.appendOps(b)
	b = append(b, r.OpsSig[:]...)
	b = appendInt64(b, r.Version)
	b = appendKeys(b, r.Bans)
	b = appendStr(b, r.Topic)
	open := byte(0)
	if r.Open {
		open = 1
	}
	b = append(b, open)
	b = append(b, r.Signer[:]...)
	return appendInt64(b, r.Timestamp)
}

// SignOps sets OpsSig to owner's signature over OpsSignedBytes. Call it
// whenever Ops or OpsVersion change, then Sign.
func (r *ChannelRules) SignOps(owner PrivateKey) {
	r.OpsSig = [SignatureSize]byte{}
	copy(r.OpsSig[:], owner.sign(r.OpsSignedBytes()))
}

// Sign sets Signer to signer's public key and Sig to its signature over
// SignedBytes. Set Timestamp first.
func (r *ChannelRules) Sign(signer PrivateKey) {
	r.Signer = signer.Public()
	r.Sig = [SignatureSize]byte{}
	copy(r.Sig[:], signer.sign(r.SignedBytes()))
}

// Verify checks the record alone: Validate, Timestamp at most
// RulesClockSkew after now, OpsSig by Owner, Signer the owner or an
// operator, and Sig by Signer. Errors wrap ErrMalformed, ErrNotYetValid or
// ErrBadSignature.
func (r *ChannelRules) Verify(now time.Time) error {
	if err := r.Validate(); err != nil {
		return err
	}
	if !r.IsOperator(r.Signer) {
		return fmt.Errorf("%w channel rules: signer %s is neither the owner nor an operator", ErrBadSignature, r.Signer)
	}
	if ahead := r.Timestamp - now.UnixMilli(); ahead > RulesClockSkew.Milliseconds() {
		return fmt.Errorf("channel rules: %w: dated %v ahead of now (at most %v)", ErrNotYetValid, time.Duration(ahead)*time.Millisecond, RulesClockSkew)
	}
	if !verify(r.Owner, r.OpsSignedBytes(), r.OpsSig[:]) {
		return fmt.Errorf("channel rules: %w: operator list not signed by the owner %s", ErrBadSignature, r.Owner)
	}
	if !verify(r.Signer, r.SignedBytes(), r.Sig[:]) {
		return fmt.Errorf("channel rules: %w for signer %s", ErrBadSignature, r.Signer)
	}
	return nil
}

// MarshalBinary returns the wire form, in the DHT and inside the channel's
// announcements:
//
//	0x01 || SignedBytes without the domain prefix || sig (64)
//
// It refuses a record that UnmarshalBinary would reject.
func (r *ChannelRules) MarshalBinary() ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 1+len(r.Channel)+len(r.Topic)+PublicKeySize*(len(r.Ops)+len(r.Bans))+300)
	b = append(b, ChannelRulesVersion)
	b = r.appendFields(b)
	return append(b, r.Sig[:]...), nil
}

// UnmarshalBinary decodes the wire form strictly: known version, every
// length and count within its limit and within the input, open 0 or 1, no
// trailing bytes, and Validate. It does not verify the signatures or the
// timestamp (Verify does). On error r is unchanged.
func (r *ChannelRules) UnmarshalBinary(data []byte) error {
	if len(data) > MaxRulesRecordSize {
		return fmt.Errorf("%w channel rules: %d bytes, %w (%d bytes)", ErrMalformed, len(data), ErrTooLarge, MaxRulesRecordSize)
	}
	d := decoder{buf: data}
	if v := d.uint8("version"); d.err == nil && v != ChannelRulesVersion {
		return fmt.Errorf("%w channel rules: unknown version %#02x, want %#02x", ErrMalformed, v, ChannelRulesVersion)
	}
	var out ChannelRules
	out.Channel = string(d.bytes("channel", MaxChannelLen))
	copy(out.Owner[:], d.raw("owner", PublicKeySize))
	out.OpsVersion = d.int64("ops version")
	out.Ops = d.keys("operators", MaxChannelOps)
	copy(out.OpsSig[:], d.raw("ops signature", SignatureSize))
	out.Version = d.int64("version")
	out.Bans = d.keys("bans", MaxChannelBans)
	out.Topic = string(d.bytes("topic", MaxTopicLen))
	switch open := d.uint8("open"); {
	case d.err != nil:
	case open > 1:
		return fmt.Errorf("%w channel rules: open is %d, want 0 or 1", ErrMalformed, open)
	default:
		out.Open = open == 1
	}
	copy(out.Signer[:], d.raw("signer", PublicKeySize))
	out.Timestamp = d.int64("timestamp")
	copy(out.Sig[:], d.raw("signature", SignatureSize))
	if err := d.finish(); err != nil {
		return fmt.Errorf("%w channel rules: %w", ErrMalformed, err)
	}
	if err := out.Validate(); err != nil {
		return err
	}
	*r = out
	return nil
}

// keys reads a u32 count and that many public keys, at most max.
func (d *decoder) keys(what string, max int) []PublicKey {
	p := d.take(what, " count", 4)
	if p == nil {
		return nil
	}
	n := uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])
	if uint64(n) > uint64(max) {
		d.fail(fmt.Errorf("%d %s, %w (%d)", n, what, ErrTooLarge, max))
		return nil
	}
	raw := d.raw(what, int(n)*PublicKeySize)
	if raw == nil || n == 0 {
		return nil
	}
	keys := make([]PublicKey, n)
	for i := range keys {
		copy(keys[i][:], raw[i*PublicKeySize:])
	}
	return keys
}

// RulesHash is the SHA-256 of a record's wire form, the last tie-break of
// the order.
type RulesHash [sha256.Size]byte

// String returns the hash in lowercase hex.
func (h RulesHash) String() string { return hex.EncodeToString(h[:]) }

// HashRules returns the SHA-256 of wire.
func HashRules(wire []byte) RulesHash { return sha256.Sum256(wire) }

// CompareRules orders two records of the same channel, given with their
// wire forms' hashes: +1 if a wins over b, -1 if b wins, 0 if they are the
// same record. A higher OpsVersion wins, then a higher Version, then the
// larger hash. Only the owner can raise OpsVersion, so a record signed by
// an operator the owner has since removed (with the old OpsVersion) loses
// to the owner's record that removed it, whatever its Version.
func CompareRules(a *ChannelRules, ah RulesHash, b *ChannelRules, bh RulesHash) int {
	if a.OpsVersion != b.OpsVersion {
		if a.OpsVersion > b.OpsVersion {
			return 1
		}
		return -1
	}
	if a.Version != b.Version {
		if a.Version > b.Version {
			return 1
		}
		return -1
	}
	return bytes.Compare(ah[:], bh[:])
}

// ChannelKick removes Target's sessions from an owned channel on every node
// that has them, once; Target may join again unless banned. The signer must
// be the owner or an operator in the rules record the verifying node holds
// (without a record: the owner).
type ChannelKick struct {
	Channel   string
	Target    PublicKey
	Signer    PublicKey
	Timestamp int64 // Unix milliseconds
	Reason    string
	Sig       [SignatureSize]byte
}

// NewChannelKick returns a kick of target from channel, signed by signer at
// now.
func NewChannelKick(signer PrivateKey, channel string, target PublicKey, reason string, now time.Time) (ChannelKick, error) {
	if signer.IsZero() {
		return ChannelKick{}, fmt.Errorf("new channel kick: %w", ErrInvalidKey)
	}
	k := ChannelKick{Channel: channel, Target: target, Timestamp: now.UnixMilli(), Reason: reason}
	if err := k.Validate(); err != nil {
		return ChannelKick{}, fmt.Errorf("new channel kick: %w", err)
	}
	k.Sign(signer)
	return k, nil
}

// Validate checks an owned channel and a reason of at most
// MaxKickReasonLen bytes of UTF-8 without control characters.
func (k *ChannelKick) Validate() error {
	if err := ValidateChannelName(k.Channel); err != nil {
		return fmt.Errorf("%w channel kick: %w", ErrMalformed, err)
	}
	if !IsOwnedChannel(k.Channel) {
		return fmt.Errorf("%w channel kick: channel %q is not owned", ErrMalformed, k.Channel)
	}
	return checkText("kick reason", k.Reason, MaxKickReasonLen)
}

// SignedBytes returns the bytes Sig covers:
//
//	DomainChannelKick || len u32 || channel || target (32) || signer (32) ||
//	timestamp i64 || len u32 || reason
func (k *ChannelKick) SignedBytes() []byte {
	b := make([]byte, 0, len(DomainChannelKick)+MaxKickRecordSize)
	b = append(b, DomainChannelKick...)
	return k.appendFields(b)
}

func (k *ChannelKick) appendFields(b []byte) []byte {
	b = appendStr(b, k.Channel)
	b = append(b, k.Target[:]...)
	b = append(b, k.Signer[:]...)
	b = appendInt64(b, k.Timestamp)
	return appendStr(b, k.Reason)
}

// Sign sets Signer to signer's public key and Sig to its signature.
func (k *ChannelKick) Sign(signer PrivateKey) {
	k.Signer = signer.Public()
	k.Sig = [SignatureSize]byte{}
	copy(k.Sig[:], signer.sign(k.SignedBytes()))
}

// Verify checks Sig against Signer. Whether Signer may kick, and whether
// the timestamp is recent, depend on the verifier's rules and clock.
func (k *ChannelKick) Verify() error {
	if !verify(k.Signer, k.SignedBytes(), k.Sig[:]) {
		return fmt.Errorf("channel kick: %w for signer %s", ErrBadSignature, k.Signer)
	}
	return nil
}

// MarshalBinary returns the wire form:
//
//	0x01 || SignedBytes without the domain prefix || sig (64)
func (k *ChannelKick) MarshalBinary() ([]byte, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, MaxKickRecordSize)
	b = append(b, ChannelKickVersion)
	b = k.appendFields(b)
	return append(b, k.Sig[:]...), nil
}

// UnmarshalBinary decodes the wire form strictly; it does not verify.
func (k *ChannelKick) UnmarshalBinary(data []byte) error {
	if len(data) > MaxKickRecordSize {
		return fmt.Errorf("%w channel kick: %d bytes, %w (%d bytes)", ErrMalformed, len(data), ErrTooLarge, MaxKickRecordSize)
	}
	d := decoder{buf: data}
	if v := d.uint8("version"); d.err == nil && v != ChannelKickVersion {
		return fmt.Errorf("%w channel kick: unknown version %#02x, want %#02x", ErrMalformed, v, ChannelKickVersion)
	}
	var out ChannelKick
	out.Channel = string(d.bytes("channel", MaxChannelLen))
	copy(out.Target[:], d.raw("target", PublicKeySize))
	copy(out.Signer[:], d.raw("signer", PublicKeySize))
	out.Timestamp = d.int64("timestamp")
	out.Reason = string(d.bytes("reason", MaxKickReasonLen))
	copy(out.Sig[:], d.raw("signature", SignatureSize))
	if err := d.finish(); err != nil {
		return fmt.Errorf("%w channel kick: %w", ErrMalformed, err)
	}
	if err := out.Validate(); err != nil {
		return err
	}
	*k = out
	return nil
}
