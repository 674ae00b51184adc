package identity

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

const (
	// MaxBodyLen is the largest channel message body, in bytes of UTF-8.
	MaxBodyLen = 4096

	// ChannelMessageVersion is the first byte of the wire form of a
	// message without causal context, ChannelMessageVersion2 of one with
	// it (Causal.Present).
	ChannelMessageVersion  = 0x01
	ChannelMessageVersion2 = 0x02

	// ShortIDSize is the size of a causal reference: the first 8 bytes of
	// the message ID it names. Within the last thousand messages of a
	// channel two IDs share them with odds of about 1 in 10^13, and an
	// author cannot aim a new ID at another's short ID (2^64 tries).
	ShortIDSize = 8
	// MaxCausalRefs bounds Causal.Refs.
	MaxCausalRefs = 2
	// causalMaxLen is the largest causal context on the wire: prev, a
	// count, the references.
	causalMaxLen = ShortIDSize + 1 + MaxCausalRefs*ShortIDSize

	// MessageIDSize is the size of a random message ID.
	MessageIDSize = 16

	// fixed parts of the wire form: version, author, three length
	// prefixes, timestamp, ID, signature.
	channelMessageFixedLen = 1 + PublicKeySize + 3*lenPrefixSize + 8 + MessageIDSize + SignatureSize

	// MinChannelMessageWireLen and MaxChannelMessageWireLen bound the wire
	// form (135 and 4350 bytes): use the maximum as the mesh's message size
	// limit.
	MinChannelMessageWireLen = channelMessageFixedLen + 1 + 1
	MaxChannelMessageWireLen = channelMessageFixedLen + MaxChannelLen + MaxUsernameLen + MaxBodyLen + causalMaxLen

	// maxSignedLen is the largest SignedBytes of a valid message; Verify
	// builds the signed bytes in a stack buffer of this size.
	maxSignedLen = len(DomainChannelMessage) + MaxChannelMessageWireLen - 1 - SignatureSize
)

// ChannelMessage is a message posted to a channel, signed by its author.
// Nodes and clients trust only what the signature covers: the author key,
// channel, username, body, timestamp and ID. The username is a label chosen
// by the author; the key is the identity.
type ChannelMessage struct {
	Author    PublicKey
	Channel   string
	Username  string
	Body      string
	Timestamp int64 // Unix milliseconds, set by the author
	ID        [MessageIDSize]byte
	// Causal is what the author had seen of the channel when writing
	// (version 2, when Causal.Present); the signature covers it.
	Causal Causal
	Sig    [SignatureSize]byte
}

// ShortID names a message in a causal context: its ID's first ShortIDSize
// bytes.
type ShortID [ShortIDSize]byte

// Short returns the short form of a message ID.
func Short(id [MessageIDSize]byte) ShortID { return ShortID(id[:ShortIDSize]) }

// Causal is a message's causal context, after Waku's Scalable Data Sync:
// the author's previous message in the channel and the newest messages of
// others the author had seen. A receiver that does not hold a message named
// here has missed it and can ask the channel for it; an author whose
// message is named, directly or through the messages that name it, learns
// that the naming member has seen it.
type Causal struct {
	// Present makes the message a version-2 one; the other fields are
	// zero otherwise.
	Present bool
	// Prev is the author's previous message in this channel, zero when
	// the author has none (or no longer remembers it).
	Prev ShortID
	// Refs[:NRefs] are the newest messages of other authors in this
	// channel that the author had seen, newest first.
	Refs  [MaxCausalRefs]ShortID
	NRefs int
}

// RefList returns the references in use.
func (c *Causal) RefList() []ShortID { return c.Refs[:c.NRefs] }

// NewMessageID returns a random message ID. With 128 random bits, IDs do
// not collide in practice, so receivers de-duplicate by ID.
func NewMessageID() [MessageIDSize]byte {
	var id [MessageIDSize]byte
	// crypto/rand.Read never returns an error (it aborts the program if the
	// OS random source fails), so there is nothing to handle.
	rand.Read(id[:])
	return id
}

// NewChannelMessage validates the fields and returns a message stamped with
// now, a fresh ID, and signed by priv.
func NewChannelMessage(priv PrivateKey, channel, username, body string, now time.Time) (ChannelMessage, error) {
	if priv.IsZero() {
		return ChannelMessage{}, fmt.Errorf("new channel message: %w", ErrInvalidKey)
	}
	m := ChannelMessage{
		Author:    priv.Public(),
		Channel:   channel,
		Username:  username,
		Body:      body,
		Timestamp: now.UnixMilli(),
		ID:        NewMessageID(),
	}
	if err := m.Validate(); err != nil {
		return ChannelMessage{}, fmt.Errorf("new channel message: %w", err)
	}
	m.Sign(priv)
	return m, nil
}

// Time returns Timestamp as a time.Time.
func (m *ChannelMessage) Time() time.Time { return time.UnixMilli(m.Timestamp) }

// Validate checks the field rules that UnmarshalBinary enforces: channel and
// username rules, body at most MaxBodyLen bytes of valid UTF-8. Call it on a
// message built from anything other than UnmarshalBinary (for example JSON
// from a client); MarshalBinary calls it too.
func (m *ChannelMessage) Validate() error {
	if err := ValidateChannelName(m.Channel); err != nil {
		return err
	}
	if err := ValidateUsername(m.Username); err != nil {
		return err
	}
	if len(m.Body) > MaxBodyLen {
		return fmt.Errorf("%w channel message: body is %d bytes, %w (MaxBodyLen %d)", ErrMalformed, len(m.Body), ErrTooLarge, MaxBodyLen)
	}
	if !utf8.ValidString(m.Body) {
		return fmt.Errorf("%w channel message: body is not valid UTF-8", ErrMalformed)
	}
	if c := &m.Causal; c.NRefs < 0 || c.NRefs > MaxCausalRefs || (!c.Present && (c.NRefs != 0 || c.Prev != ShortID{})) {
		return fmt.Errorf("%w channel message: causal context with %d references (at most %d, and none without a version-2 message)", ErrMalformed, c.NRefs, MaxCausalRefs)
	}
	return nil
}

// SignedBytes returns the bytes the signature covers:
//
//	DomainChannelMessage || author (32) || len u32 || channel ||
//	len u32 || username || len u32 || body || timestamp i64 || id (16)
//
// and for a version-2 message (Causal.Present)
//
//	DomainChannelMessage2 || the same fields ||
//	prev (8) || n u8 (0..2) || n × ref (8)
func (m *ChannelMessage) SignedBytes() []byte {
	return m.appendSigned(make([]byte, 0, maxSignedLen))
}

func (m *ChannelMessage) appendSigned(b []byte) []byte {
	if m.Causal.Present {
		b = append(b, DomainChannelMessage2...)
	} else {
		b = append(b, DomainChannelMessage...)
	}
	return m.appendFields(b)
}

// appendFields appends the signed fields without the domain prefix: the
// signed bytes and the wire form share them.
func (m *ChannelMessage) appendFields(b []byte) []byte {
	b = append(b, m.Author[:]...)
	b = appendStr(b, m.Channel)
	b = appendStr(b, m.Username)
	b = appendStr(b, m.Body)
	b = appendInt64(b, m.Timestamp)
	b = append(b, m.ID[:]...)
	if c := &m.Causal; c.Present {
		b = append(b, c.Prev[:]...)
		b = append(b, byte(c.NRefs))
		for _, r := range c.RefList() {
			b = append(b, r[:]...)
		}
	}
	return b
}

// Version returns the message's wire version: ChannelMessageVersion2 with
// a causal context, ChannelMessageVersion without.
func (m *ChannelMessage) Version() byte {
	if m.Causal.Present {
		return ChannelMessageVersion2
	}
	return ChannelMessageVersion
}

// Sign sets Author to priv's public key and Sig to the signature over
// SignedBytes. With the zero key it sets both to zero (so Verify fails).
// Sign does not validate the fields; NewChannelMessage does.
func (m *ChannelMessage) Sign(priv PrivateKey) {
	m.Author = priv.Public()
	m.Sig = [SignatureSize]byte{}
	copy(m.Sig[:], priv.sign(m.SignedBytes()))
}

// Verify checks Sig against Author over SignedBytes. It does not check the
// field rules (UnmarshalBinary and Validate do) nor the timestamp window or
// duplicates, which depend on the receiver's clock and history.
//
// Verification is the cost of a message (about 50 µs), so a node verifies
// each message exactly once, before forwarding and delivering it.
func (m *ChannelMessage) Verify() error {
	// The signed bytes of a valid message fit on the stack: no allocation
	// per verification.
	var buf [maxSignedLen]byte
	if !verify(m.Author, m.appendSigned(buf[:0]), m.Sig[:]) {
		return fmt.Errorf("channel message: %w for author %s", ErrBadSignature, m.Author)
	}
	return nil
}

// MarshalBinary returns the wire form used on the mesh:
//
//	0x01 || author (32) || len u32 || channel || len u32 || username ||
//	len u32 || body || timestamp i64 || id (16) || sig (64)
//
// or, for a version-2 message,
//
//	0x02 || the same fields || prev (8) || n u8 || n × ref (8) || sig (64)
//
// that is the version byte, SignedBytes without the domain prefix, and the
// signature. It refuses a message that UnmarshalBinary would reject.
func (m *ChannelMessage) MarshalBinary() ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, channelMessageFixedLen+len(m.Channel)+len(m.Username)+len(m.Body)+causalMaxLen)
	b = append(b, m.Version())
	b = m.appendFields(b)
	return append(b, m.Sig[:]...), nil
}

// UnmarshalBinary decodes the wire form strictly: known version, every
// length within its limit and within the input, no trailing bytes, valid
// names and UTF-8 body. It allocates at most the size of the input (the
// three strings). It does NOT verify the signature: the caller does that,
// once. On error m is left unchanged.
func (m *ChannelMessage) UnmarshalBinary(data []byte) error {
	if len(data) > MaxChannelMessageWireLen {
		return fmt.Errorf("%w channel message: %d bytes, %w (%d bytes)", ErrMalformed, len(data), ErrTooLarge, MaxChannelMessageWireLen)
	}
	d := decoder{buf: data}
	v := d.uint8("version")
	if d.err == nil && v != ChannelMessageVersion && v != ChannelMessageVersion2 {
		return fmt.Errorf("%w channel message: unknown version %#02x, want %#02x or %#02x", ErrMalformed, v, ChannelMessageVersion, ChannelMessageVersion2)
	}
	author := d.raw("author", PublicKeySize)
	channel := d.bytes("channel", MaxChannelLen)
	username := d.bytes("username", MaxUsernameLen)
	body := d.bytes("body", MaxBodyLen)
	ts := d.int64("timestamp")
	id := d.raw("id", MessageIDSize)
	var causal Causal
	if v == ChannelMessageVersion2 {
		causal.Present = true
		copy(causal.Prev[:], d.raw("prev", ShortIDSize))
		causal.NRefs = int(d.uint8("reference count"))
		if d.err == nil && causal.NRefs > MaxCausalRefs {
			return fmt.Errorf("%w channel message: %d causal references, at most %d", ErrMalformed, causal.NRefs, MaxCausalRefs)
		}
		for i := range causal.NRefs {
			copy(causal.Refs[i][:], d.raw("reference", ShortIDSize))
		}
	}
	sig := d.raw("signature", SignatureSize)
	if err := d.finish(); err != nil {
		return fmt.Errorf("%w channel message: %w", ErrMalformed, err)
	}
	var out ChannelMessage
	copy(out.Author[:], author)
	out.Channel = string(channel)
	out.Username = string(username)
	out.Body = string(body)
	out.Timestamp = ts
	copy(out.ID[:], id)
	out.Causal = causal
	copy(out.Sig[:], sig)
	if err := out.Validate(); err != nil {
		if errors.Is(err, ErrMalformed) {
			return err
		}
		return fmt.Errorf("%w channel message: %w", ErrMalformed, err)
	}
	*m = out
	return nil
}

// DedupKey identifies the message by author and message ID. Receivers
// de-duplicate on it rather than on the bytes: Ed25519 admits more than one
// valid signature for the same content, so an author could otherwise make
// one message appear twice.
func (m *ChannelMessage) DedupKey() string {
	return string(m.Author[:]) + string(m.ID[:])
}
