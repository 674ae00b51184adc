package identity

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"
)

// DomainPresence prefixes the signed bytes of a presence record.
const DomainPresence = "darkchat/v1/presence\x00"

// Presence records (PROTOCOL.md §2.12 and §4): a user announces, signed,
// that it is in a channel under a username, for a while. Nodes keep the
// newest record of each (key, channel, session) until it expires, and
// answer "who is here" from them; the signature keeps a node from listing
// a user who is not there, or under another name.
const (
	// PresenceVersion is the first byte of a presence record's wire form.
	// It is distinct from the channel message versions (0x01, 0x02), so
	// that the two travel on one topic.
	PresenceVersion = 0x10

	// PresenceSessionSize is the size of a record's session: random
	// bytes the client picks per login session, so that one identity on
	// two clients is two entries, and one's leaving does not remove the
	// other.
	PresenceSessionSize = 8

	// PresenceHere and PresenceGone are a record's states.
	PresenceHere = 1
	PresenceGone = 2

	// MaxPresenceTTL bounds Expires − Timestamp: a record no one refreshes
	// (its client and its node gone without a word) lists the user for at
	// most this long.
	MaxPresenceTTL = 10 * time.Minute

	// presenceFixedLen: key, two length prefixes, session, state,
	// timestamp, expires.
	presenceFixedLen = PublicKeySize + 2*lenPrefixSize + PresenceSessionSize + 1 + 8 + 8

	// MinPresenceWireLen and MaxPresenceWireLen bound the wire form (132
	// and 226 bytes).
	MinPresenceWireLen = 1 + presenceFixedLen + 1 + 1 + SignatureSize
	MaxPresenceWireLen = 1 + presenceFixedLen + MaxChannelLen + MaxUsernameLen + SignatureSize

	maxPresenceSignedLen = len(DomainPresence) + presenceFixedLen + MaxChannelLen + MaxUsernameLen
)

// PresenceSession identifies one login session of a user.
type PresenceSession [PresenceSessionSize]byte

// NewPresenceSession returns a random session.
func NewPresenceSession() PresenceSession {
	var s PresenceSession
	rand.Read(s[:])
	return s
}

// Presence is a signed presence record.
type Presence struct {
	Key       PublicKey
	Channel   string
	Username  string
	Session   PresenceSession
	State     uint8 // PresenceHere or PresenceGone
	Timestamp int64 // Unix milliseconds, set by the author
	Expires   int64 // Unix milliseconds
	Sig       [SignatureSize]byte
}

// NewPresencePair returns the here and gone records a client signs
// together for (channel, username, session): both at now, expiring ttl
// later. The client hands both to its node, which publishes here at once
// and gone when the client leaves or goes away; the gone, at the same
// timestamp, wins over that here but over no later refresh.
func NewPresencePair(priv PrivateKey, channel, username string, session PresenceSession, now time.Time, ttl time.Duration) (here, gone Presence, err error) {
	if priv.IsZero() {
		return here, gone, fmt.Errorf("new presence: %w", ErrInvalidKey)
	}
	here = Presence{
		Channel:   channel,
		Username:  username,
		Session:   session,
		State:     PresenceHere,
		Timestamp: now.UnixMilli(),
		Expires:   now.Add(ttl).UnixMilli(),
	}
	if err := here.Validate(); err != nil {
		return Presence{}, Presence{}, fmt.Errorf("new presence: %w", err)
	}
	gone = here
	gone.State = PresenceGone
	here.Sign(priv)
	gone.Sign(priv)
	return here, gone, nil
}

// Validate checks the field rules UnmarshalBinary enforces: names, state,
// and 0 < Expires − Timestamp ≤ MaxPresenceTTL.
func (p *Presence) Validate() error {
	if err := ValidateChannelName(p.Channel); err != nil {
		return err
	}
	if err := ValidateUsername(p.Username); err != nil {
		return err
	}
	if p.State != PresenceHere && p.State != PresenceGone {
		return fmt.Errorf("%w presence: state %d, want %d (here) or %d (gone)", ErrMalformed, p.State, PresenceHere, PresenceGone)
	}
	// Subtraction in uint64 would wrap; compare with care for extremes.
	if p.Expires <= p.Timestamp || p.Expires-p.Timestamp > MaxPresenceTTL.Milliseconds() || p.Expires-p.Timestamp < 0 {
		return fmt.Errorf("%w presence: expires must be 1 ms to %v after the timestamp", ErrMalformed, MaxPresenceTTL)
	}
	return nil
}

// SignedBytes returns the bytes the signature covers:
//
//	DomainPresence || key (32) || len u32 || channel || len u32 ||
//	username || session (8) || state u8 || timestamp i64 || expires i64
func (p *Presence) SignedBytes() []byte {
	return p.appendSigned(make([]byte, 0, maxPresenceSignedLen))
}

func (p *Presence) appendSigned(b []byte) []byte {
	return p.appendFields(append(b, DomainPresence...))
}

func (p *Presence) appendFields(b []byte) []byte {
	b = append(b, p.Key[:]...)
	b = appendStr(b, p.Channel)
	b = appendStr(b, p.Username)
	b = append(b, p.Session[:]...)
	b = append(b, p.State)
	b = appendInt64(b, p.Timestamp)
	return appendInt64(b, p.Expires)
}

// Sign sets Key to priv's public key and Sig to the signature over
// SignedBytes.
func (p *Presence) Sign(priv PrivateKey) {
	p.Key = priv.Public()
	p.Sig = [SignatureSize]byte{}
	copy(p.Sig[:], priv.sign(p.SignedBytes()))
}

// Verify checks Sig against Key over SignedBytes. It does not check the
// clock (a receiver's business) nor the field rules (UnmarshalBinary and
// Validate do).
func (p *Presence) Verify() error {
	var buf [maxPresenceSignedLen]byte
	if !verify(p.Key, p.appendSigned(buf[:0]), p.Sig[:]) {
		return fmt.Errorf("presence: %w for key %s", ErrBadSignature, p.Key)
	}
	return nil
}

// MarshalBinary returns the wire form:
//
//	0x10 || key (32) || len u32 || channel || len u32 || username ||
//	session (8) || state u8 || timestamp i64 || expires i64 || sig (64)
//
// that is PresenceVersion, SignedBytes without the domain prefix, and the
// signature.
func (p *Presence) MarshalBinary() ([]byte, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 1+presenceFixedLen+len(p.Channel)+len(p.Username)+SignatureSize)
	b = append(b, PresenceVersion)
	b = p.appendFields(b)
	return append(b, p.Sig[:]...), nil
}

// UnmarshalBinary decodes the wire form strictly (version, lengths within
// their limits and the input, no trailing bytes, valid names, state and
// expiry). It does not verify the signature. On error p is unchanged.
func (p *Presence) UnmarshalBinary(data []byte) error {
	if len(data) > MaxPresenceWireLen {
		return fmt.Errorf("%w presence: %d bytes, %w (%d bytes)", ErrMalformed, len(data), ErrTooLarge, MaxPresenceWireLen)
	}
	d := decoder{buf: data}
	if v := d.uint8("version"); d.err == nil && v != PresenceVersion {
		return fmt.Errorf("%w presence: unknown version %#02x, want %#02x", ErrMalformed, v, PresenceVersion)
	}
	key := d.raw("key", PublicKeySize)
	channel := d.bytes("channel", MaxChannelLen)
	username := d.bytes("username", MaxUsernameLen)
	session := d.raw("session", PresenceSessionSize)
	state := d.uint8("state")
	ts := d.int64("timestamp")
	expires := d.int64("expires")
	sig := d.raw("signature", SignatureSize)
	if err := d.finish(); err != nil {
		return fmt.Errorf("%w presence: %w", ErrMalformed, err)
	}
	var out Presence
	copy(out.Key[:], key)
	out.Channel = string(channel)
	out.Username = string(username)
	copy(out.Session[:], session)
	out.State = state
	out.Timestamp = ts
	out.Expires = expires
	copy(out.Sig[:], sig)
	if err := out.Validate(); err != nil {
		if errors.Is(err, ErrMalformed) {
			return err
		}
		return fmt.Errorf("%w presence: %w", ErrMalformed, err)
	}
	*p = out
	return nil
}

// Newer reports whether p supersedes q, a record of the same key, channel
// and session: the greater (Timestamp, State) wins. A client signs its
// here and gone with one timestamp, so the gone its node publishes when it
// leaves beats that here, and any later refresh beats the gone.
func (p *Presence) Newer(q *Presence) bool {
	if p.Timestamp != q.Timestamp {
		return p.Timestamp > q.Timestamp
	}
	return p.State > q.State
}

// Time returns Timestamp as a time.Time.
func (p *Presence) Time() time.Time { return time.UnixMilli(p.Timestamp) }

// ExpiresTime returns Expires as a time.Time.
func (p *Presence) ExpiresTime() time.Time { return time.UnixMilli(p.Expires) }
