package identity

import (
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf8"
)

const (
	// DMKindMessage and DMKindReceipt are the kinds of inner DM.
	DMKindMessage = 1
	DMKindReceipt = 2

	// MaxDMBodyLen is the largest DM body, in bytes of UTF-8.
	MaxDMBodyLen = 4096

	// AnonymousUsername is the username a client puts in a DM when the
	// user has set none. It is always a valid DM username.
	AnonymousUsername = "anonymous"

	// DMTagSize is the size of the routing tag at the front of an envelope.
	DMTagSize = 16

	// DMShards is the number of DM inbox shards: a recipient's DMs are
	// published to shard DMShard(DMTag(recipient), DMShards). 64 divides
	// 65536, so DMShard is exactly uniform over the tags.
	DMShards = 64

	// DMTimestampWindow is guidance for receiving clients: drop a DM whose
	// Timestamp is further than this from the local clock. OpenDM does not
	// check it (it has no clock and no history); see OpenDM.
	DMTimestampWindow = 2 * time.Minute

	// EnvelopeVersion is the first byte of a DM envelope.
	EnvelopeVersion = 0x01

	// dmEncSize is the size of HPKE's encapsulated key for MLKEM768-X25519:
	// an ML-KEM-768 ciphertext (1088 bytes) and an X25519 point (32).
	dmEncSize = 1088 + 32
	// aeadTagSize is ChaCha20-Poly1305's tag.
	aeadTagSize = 16
	// envelopeHeaderLen is the version byte and the tag: the AAD.
	envelopeHeaderLen = 1 + DMTagSize
	// envelopeOverhead is everything in an envelope except the padded
	// plaintext (1153 bytes).
	envelopeOverhead = envelopeHeaderLen + dmEncSize + aeadTagSize

	// MinEnvelopeSize and MaxEnvelopeSize bound an envelope (1665 and 9345
	// bytes); only the five sizes EnvelopeSizes lists are valid.
	MinEnvelopeSize = envelopeOverhead + 512
	MaxEnvelopeSize = envelopeOverhead + 8192

	dmPaddingLenSize = 4

	// The inner encoding is kind, sender, recipient, then username and body
	// (message) or ack (receipt), then timestamp, ID and signature.
	dmInnerFixedLen      = 1 + 2*PublicKeySize + 8 + MessageIDSize + SignatureSize
	maxDMMessageInnerLen = dmInnerFixedLen + 2*lenPrefixSize + MaxUsernameLen + MaxDMBodyLen // 4289
	maxDMInnerLen        = maxDMMessageInnerLen
	maxDMSignedLen       = len(DomainDM) + maxDMMessageInnerLen - 1 - SignatureSize
	dmEnvelopeInfoPrefix = "darkchat/v1/dm-envelope\x00"
	dmTagDomain          = "darkchat/v1/dm-tag\x00"
	dmEnvelopeInfoLen    = len(dmEnvelopeInfoPrefix) + PublicKeySize
)

// The largest inner DM and its length prefix fit the largest bucket (a
// negative constant here would not compile).
const _ = uint(8192 - dmPaddingLenSize - maxDMInnerLen)

// dmBuckets are the padded plaintext sizes. An envelope's size reveals only
// which bucket its message fell in; the largest holds the largest DM.
var dmBuckets = [...]int{512, 1024, 2048, 4096, 8192}

// EnvelopeSizes returns the five valid envelope sizes, one per padding
// bucket: 1665, 2177, 3201, 5249 and 9345 bytes.
func EnvelopeSizes() []int {
	s := make([]int, len(dmBuckets))
	for i, b := range dmBuckets {
		s[i] = envelopeOverhead + b
	}
	return s
}

// The HPKE suite of every envelope: base mode, KEM MLKEM768-X25519, KDF
// HKDF-SHA256, AEAD ChaCha20-Poly1305 (see doc.go for why ChaCha20).
var (
	dmKDF  = hpke.HKDFSHA256()
	dmAEAD = hpke.ChaCha20Poly1305()
)

// DMTag returns the routing tag of DMs to recipient: the first 16 bytes of
// SHA-256("darkchat/v1/dm-tag\x00" || recipient). Nodes route on it without
// learning the recipient's key from the envelope (though anyone who guesses
// the key can compute its tag).
func DMTag(recipient PublicKey) [DMTagSize]byte {
	h := sha256.New()
	h.Write([]byte(dmTagDomain))
	h.Write(recipient[:])
	var sum [sha256.Size]byte
	var tag [DMTagSize]byte
	copy(tag[:], h.Sum(sum[:0]))
	return tag
}

// DMShard maps a tag to one of shards inbox shards: the big-endian uint16
// of tag[0:2] modulo shards (uniform when shards divides 65536, as DMShards
// does). It returns 0 when shards < 1.
func DMShard(tag [DMTagSize]byte, shards int) int {
	if shards < 1 {
		return 0
	}
	return int(binary.BigEndian.Uint16(tag[:2])) % shards
}

// DM is a direct message or a delivery receipt, as the recipient sees it
// after OpenDM. It travels only inside an envelope's ciphertext (sealed
// sender): nodes never see any of these fields.
//
// A message (Kind DMKindMessage) carries Username and Body and a zero Ack.
// A receipt (Kind DMKindReceipt) carries Ack, the ID of the message it
// acknowledges, and an empty Username and Body. Both are signed by Sender
// over every field including Recipient, so a DM cannot be re-addressed.
type DM struct {
	Kind      byte
	Sender    PublicKey
	Recipient PublicKey
	Username  string // messages: ValidateUsername's rules, or AnonymousUsername
	Body      string // messages: at most MaxDMBodyLen bytes of UTF-8
	Timestamp int64  // Unix milliseconds, set by the sender
	ID        [MessageIDSize]byte
	Ack       [MessageIDSize]byte // receipts: the acknowledged message's ID
	Sig       [SignatureSize]byte
}

// Time returns Timestamp as a time.Time.
func (m *DM) Time() time.Time { return time.UnixMilli(m.Timestamp) }

// DedupKey identifies the DM by sender and ID, for the receiver's replay
// check (see DMTimestampWindow).
func (m *DM) DedupKey() string { return string(m.Sender[:]) + string(m.ID[:]) }

// Validate checks the field rules that UnmarshalBinary enforces: a known
// kind; for a message a valid username, a body of at most MaxDMBodyLen bytes
// of UTF-8 and a zero Ack; for a receipt an empty username and body and a
// non-zero Ack. It does not check the signature.
func (m *DM) Validate() error {
	switch m.Kind {
	case DMKindMessage:
		if m.Username != AnonymousUsername {
			if err := ValidateUsername(m.Username); err != nil {
				return fmt.Errorf("%w DM: %w", ErrMalformed, err)
			}
		}
		if len(m.Body) > MaxDMBodyLen {
			return fmt.Errorf("%w DM: body is %d bytes, %w (MaxDMBodyLen %d)", ErrMalformed, len(m.Body), ErrTooLarge, MaxDMBodyLen)
		}
		if !utf8.ValidString(m.Body) {
			return fmt.Errorf("%w DM: body is not valid UTF-8", ErrMalformed)
		}
		if m.Ack != [MessageIDSize]byte{} {
			return fmt.Errorf("%w DM: a message has no ack ID", ErrMalformed)
		}
	case DMKindReceipt:
		if m.Username != "" || m.Body != "" {
			return fmt.Errorf("%w DM: a receipt has no username or body", ErrMalformed)
		}
		if m.Ack == [MessageIDSize]byte{} {
			return fmt.Errorf("%w DM: a receipt must name the acknowledged message ID", ErrMalformed)
		}
	default:
		return fmt.Errorf("%w DM: unknown kind %d", ErrMalformed, m.Kind)
	}
	return nil
}

// SignedBytes returns the bytes the signature covers. For a message:
//
//	DomainDM || sender (32) || recipient (32) || len u32 || username ||
//	len u32 || body || timestamp i64 || id (16)
//
// for a receipt:
//
//	DomainReceipt || sender (32) || recipient (32) || ack (16) ||
//	timestamp i64 || id (16)
//
// and nil for an unknown kind.
func (m *DM) SignedBytes() []byte {
	return m.appendSigned(make([]byte, 0, maxDMSignedLen))
}

func (m *DM) appendSigned(b []byte) []byte {
	switch m.Kind {
	case DMKindMessage:
		b = append(b, DomainDM...)
	case DMKindReceipt:
		b = append(b, DomainReceipt...)
	default:
		return nil
	}
	return m.appendFields(b)
}

// appendFields appends the signed fields without the domain prefix: the
// signed bytes and the inner encoding share them.
func (m *DM) appendFields(b []byte) []byte {
	b = append(b, m.Sender[:]...)
	b = append(b, m.Recipient[:]...)
	if m.Kind == DMKindReceipt {
		b = append(b, m.Ack[:]...)
	} else {
		b = appendStr(b, m.Username)
		b = appendStr(b, m.Body)
	}
	b = appendInt64(b, m.Timestamp)
	return append(b, m.ID[:]...)
}

// Sign sets Sender to priv's public key and Sig to the signature over
// SignedBytes. With the zero key or an unknown kind it sets Sig to zero (so
// Verify fails). Sign does not validate the fields; SealDM does.
func (m *DM) Sign(priv PrivateKey) {
	m.Sender = priv.Public()
	m.Sig = [SignatureSize]byte{}
	if signed := m.SignedBytes(); signed != nil {
		copy(m.Sig[:], priv.sign(signed))
	}
}

// Verify checks Sig against Sender over SignedBytes. It does not check the
// field rules, the recipient, the timestamp window or duplicates (OpenDM
// and the receiving client do).
func (m *DM) Verify() error {
	var buf [maxDMSignedLen]byte
	signed := m.appendSigned(buf[:0])
	if signed == nil {
		return fmt.Errorf("%w DM: unknown kind %d", ErrMalformed, m.Kind)
	}
	if !verify(m.Sender, signed, m.Sig[:]) {
		return fmt.Errorf("DM: %w for sender %s", ErrBadSignature, m.Sender)
	}
	return nil
}

// MarshalBinary returns the inner encoding, the plaintext inside an
// envelope before padding:
//
//	kind (1) || SignedBytes without the domain prefix || sig (64)
//
// (162 to 4289 bytes for a message, 169 for a receipt). It refuses a DM that
// UnmarshalBinary would reject.
func (m *DM) MarshalBinary() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, dmInnerFixedLen+2*lenPrefixSize+len(m.Username)+len(m.Body)+MessageIDSize)
	b = append(b, m.Kind)
	b = m.appendFields(b)
	return append(b, m.Sig[:]...), nil
}

// UnmarshalBinary decodes the inner encoding strictly: known kind, every
// length within its limit and within the input, no trailing bytes, the
// rules of Validate. It does not verify the signature. On error m is left
// unchanged.
func (m *DM) UnmarshalBinary(data []byte) error {
	if len(data) > maxDMInnerLen {
		return fmt.Errorf("%w DM: %d bytes, %w (%d bytes)", ErrMalformed, len(data), ErrTooLarge, maxDMInnerLen)
	}
	d := decoder{buf: data}
	var out DM
	out.Kind = d.uint8("kind")
	if d.err == nil && out.Kind != DMKindMessage && out.Kind != DMKindReceipt {
		return fmt.Errorf("%w DM: unknown kind %d", ErrMalformed, out.Kind)
	}
	sender := d.raw("sender", PublicKeySize)
	recipient := d.raw("recipient", PublicKeySize)
	var username, body, ack []byte
	if out.Kind == DMKindReceipt {
		ack = d.raw("ack", MessageIDSize)
	} else {
		username = d.bytes("username", MaxUsernameLen)
		body = d.bytes("body", MaxDMBodyLen)
	}
	ts := d.int64("timestamp")
	id := d.raw("id", MessageIDSize)
	sig := d.raw("signature", SignatureSize)
	if err := d.finish(); err != nil {
		return fmt.Errorf("%w DM: %w", ErrMalformed, err)
	}
	copy(out.Sender[:], sender)
	copy(out.Recipient[:], recipient)
	out.Username = string(username)
	out.Body = string(body)
	copy(out.Ack[:], ack)
	out.Timestamp = ts
	copy(out.ID[:], id)
	copy(out.Sig[:], sig)
	if err := out.Validate(); err != nil {
		return err
	}
	*m = out
	return nil
}

// SealDM signs a message from sender to the owner of the key bundle and
// seals it into an envelope. The caller must have verified the bundle
// (KeyBundle.Verify against the address the user typed). It returns the
// envelope to publish and the message ID, which the recipient's receipt
// will acknowledge.
func SealDM(sender PrivateKey, to KeyBundle, username, body string, now time.Time) (envelope []byte, id [MessageIDSize]byte, err error) {
	m := DM{Kind: DMKindMessage, Username: username, Body: body}
	return sealNew(sender, to, &m, now)
}

// SealReceipt signs a receipt acknowledging message ID ack and seals it to
// the owner of the key bundle (the message's sender; verify the bundle
// first). It returns the envelope and the receipt's own ID.
func SealReceipt(sender PrivateKey, to KeyBundle, ack [MessageIDSize]byte, now time.Time) ([]byte, [MessageIDSize]byte, error) {
	m := DM{Kind: DMKindReceipt, Ack: ack}
	return sealNew(sender, to, &m, now)
}

func sealNew(sender PrivateKey, to KeyBundle, m *DM, now time.Time) ([]byte, [MessageIDSize]byte, error) {
	if sender.IsZero() {
		return nil, [MessageIDSize]byte{}, fmt.Errorf("seal DM: %w", ErrInvalidKey)
	}
	m.Recipient = to.Identity
	m.Timestamp = now.UnixMilli()
	m.ID = NewMessageID()
	if err := m.Validate(); err != nil {
		return nil, [MessageIDSize]byte{}, fmt.Errorf("seal DM: %w", err)
	}
	m.Sign(sender)
	env, err := m.Seal(to)
	if err != nil {
		return nil, [MessageIDSize]byte{}, err
	}
	return env, m.ID, nil
}

// Seal encrypts the signed DM m to the owner of the key bundle to and
// returns the envelope:
//
//	0x01 || DMTag(to.Identity) (16) || enc (1120) || ciphertext (bucket + 16)
//
// m.Recipient must be to.Identity (else ErrReaddressed) and not the zero
// key. Seal neither signs m nor checks its signature; SealDM and
// SealReceipt build, sign and seal in one step. HPKE encapsulation is
// randomized, so sealing the same DM twice gives different envelopes.
func (m *DM) Seal(to KeyBundle) ([]byte, error) {
	if to.Identity.IsZero() {
		return nil, fmt.Errorf("seal DM: %w key bundle: zero identity key", ErrMalformed)
	}
	if m.Recipient != to.Identity {
		return nil, fmt.Errorf("seal DM: %w: signed for %s, key bundle is %s", ErrReaddressed, m.Recipient, to.Identity)
	}
	inner, err := m.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("seal DM: %w", err)
	}
	pk, err := to.DM.hpkeKey()
	if err != nil {
		return nil, fmt.Errorf("seal DM: %w", err)
	}
	plaintext := pad(inner)
	var info [dmEnvelopeInfoLen]byte
	enc, sender, err := hpke.NewSender(pk, dmKDF, dmAEAD, envelopeInfo(&info, to.Identity))
	if err != nil {
		return nil, fmt.Errorf("seal DM: %w", err)
	}
	if len(enc) != dmEncSize {
		return nil, fmt.Errorf("seal DM: encapsulated key is %d bytes, want %d", len(enc), dmEncSize)
	}
	env := make([]byte, 0, envelopeOverhead+len(plaintext))
	env = append(env, EnvelopeVersion)
	tag := DMTag(to.Identity)
	env = append(env, tag[:]...)
	env = append(env, enc...)
	ct, err := sender.Seal(env[:envelopeHeaderLen], plaintext)
	if err != nil {
		return nil, fmt.Errorf("seal DM: %w", err)
	}
	return append(env, ct...), nil
}

// envelopeInfo writes the HPKE info, "darkchat/v1/dm-envelope\x00" ||
// recipient, into buf: it binds the protocol version and the recipient's
// identity key into the key schedule.
func envelopeInfo(buf *[dmEnvelopeInfoLen]byte, recipient PublicKey) []byte {
	n := copy(buf[:], dmEnvelopeInfoPrefix)
	copy(buf[n:], recipient[:])
	return buf[:]
}

// bucketFor returns the smallest bucket that holds n plaintext bytes, or 0.
func bucketFor(n int) int {
	for _, b := range dmBuckets {
		if n <= b {
			return b
		}
	}
	return 0
}

// pad returns u32 len(inner) || inner || zeros, filled up to the smallest
// bucket that holds it. inner comes from MarshalBinary, so it fits.
func pad(inner []byte) []byte {
	p := make([]byte, bucketFor(dmPaddingLenSize+len(inner)))
	binary.BigEndian.PutUint32(p, uint32(len(inner)))
	copy(p[dmPaddingLenSize:], inner)
	return p
}

// unpad reverses pad strictly: the length fits, the plaintext is exactly
// the smallest bucket that holds it (one encoding per DM), and every padding
// byte is zero.
func unpad(p []byte) ([]byte, error) {
	if len(p) < dmPaddingLenSize {
		return nil, fmt.Errorf("padded plaintext is %d bytes", len(p))
	}
	n := binary.BigEndian.Uint32(p)
	if uint64(n) > uint64(maxDMInnerLen) || int(n) > len(p)-dmPaddingLenSize {
		return nil, fmt.Errorf("inner length %d does not fit (at most %d, %d bytes left)", n, maxDMInnerLen, len(p)-dmPaddingLenSize)
	}
	end := dmPaddingLenSize + int(n)
	if want := bucketFor(end); len(p) != want {
		return nil, fmt.Errorf("padded to %d bytes, want %d (the smallest bucket for %d bytes)", len(p), want, end)
	}
	for i, c := range p[end:] {
		if c != 0 {
			return nil, fmt.Errorf("padding byte %d is %#02x, want 0", i, c)
		}
	}
	return p[dmPaddingLenSize:end], nil
}

// checkEnvelope checks what anyone can check without a key: the size is one
// of EnvelopeSizes and the version is known.
func checkEnvelope(env []byte) error {
	if len(env) > MaxEnvelopeSize {
		return fmt.Errorf("%w envelope: %d bytes, %w (%d bytes)", ErrMalformed, len(env), ErrTooLarge, MaxEnvelopeSize)
	}
	if bucketFor(len(env)-envelopeOverhead) != len(env)-envelopeOverhead {
		return fmt.Errorf("%w envelope: %d bytes, want one of %v", ErrMalformed, len(env), EnvelopeSizes())
	}
	if env[0] != EnvelopeVersion {
		return fmt.Errorf("%w envelope: unknown version %#02x, want %#02x", ErrMalformed, env[0], EnvelopeVersion)
	}
	return nil
}

// EnvelopeTag returns an envelope's routing tag, for nodes to route it
// without opening it. It checks the size (one of EnvelopeSizes) and the
// version, so nodes can drop malformed envelopes before forwarding them;
// only the recipient can check the rest.
func EnvelopeTag(envelope []byte) ([DMTagSize]byte, error) {
	var tag [DMTagSize]byte
	if err := checkEnvelope(envelope); err != nil {
		return tag, err
	}
	copy(tag[:], envelope[1:envelopeHeaderLen])
	return tag, nil
}

// OpenDM opens an envelope addressed to me and returns the DM, after
// checking, in order: size and version (ErrMalformed), that the tag is
// DMTag(me.Identity()) (ErrNotForMe), HPKE decryption with the version and
// tag as AAD and me's identity in info (ErrDecrypt: any modified byte fails
// here), strict unpadding and decoding (ErrMalformed), that the signed
// recipient is me (ErrReaddressed: a DM signed for someone else and
// re-encrypted to me), and the sender's signature (ErrBadSignature).
//
// The returned DM's Sender is authenticated. OpenDM has no clock and no
// history: the receiving client drops DMs whose Timestamp is outside
// DMTimestampWindow and DMs whose DedupKey it has already seen.
func OpenDM(me DMPrivateKey, envelope []byte) (DM, error) {
	if me.IsZero() {
		return DM{}, fmt.Errorf("open DM: %w", ErrInvalidKey)
	}
	if err := checkEnvelope(envelope); err != nil {
		return DM{}, err
	}
	if tag := DMTag(me.identity); [DMTagSize]byte(envelope[1:envelopeHeaderLen]) != tag {
		return DM{}, fmt.Errorf("open DM: %w: tag %x is not %s's", ErrNotForMe, envelope[1:envelopeHeaderLen], me.identity)
	}
	var info [dmEnvelopeInfoLen]byte
	enc := envelope[envelopeHeaderLen : envelopeHeaderLen+dmEncSize]
	r, err := hpke.NewRecipient(enc, me.key, dmKDF, dmAEAD, envelopeInfo(&info, me.identity))
	if err != nil {
		return DM{}, fmt.Errorf("open DM: %w: %w", ErrDecrypt, err)
	}
	plaintext, err := r.Open(envelope[:envelopeHeaderLen], envelope[envelopeHeaderLen+dmEncSize:])
	if err != nil {
		return DM{}, fmt.Errorf("open DM: %w: %w", ErrDecrypt, err)
	}
	inner, err := unpad(plaintext)
	if err != nil {
		return DM{}, fmt.Errorf("open DM: %w envelope: %w", ErrMalformed, err)
	}
	var m DM
	if err := m.UnmarshalBinary(inner); err != nil {
		return DM{}, fmt.Errorf("open DM: %w", err)
	}
	if m.Recipient != me.identity {
		return DM{}, fmt.Errorf("open DM: %w: signed for %s, not %s", ErrReaddressed, m.Recipient, me.identity)
	}
	if err := m.Verify(); err != nil {
		return DM{}, fmt.Errorf("open DM: %w", err)
	}
	return m, nil
}
