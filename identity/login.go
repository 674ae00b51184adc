package identity

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

const (
	// ChallengePrefix starts every login challenge string ("darkchat login
	// v1"); a new format gets a new prefix.
	ChallengePrefix = "dcl1"
	// MaxChallengeLen bounds a challenge string. The longest valid one is
	// 4+1+128+1+32+1+19 = 186 bytes.
	MaxChallengeLen = 256
	// MaxNodeIDLen bounds a node ID (libp2p peer IDs are about 52 characters
	// in base58btc and 59 in base32).
	MaxNodeIDLen = 128
	// DefaultChallengeTTL is how long a challenge stays valid: long enough
	// for the manual "sign" flow, short enough to limit a stolen signature.
	DefaultChallengeTTL = time.Minute

	nonceSize = 16
)

// Challenge is a parsed login challenge. Its string form is
//
//	dcl1.<node-peer-id>.<nonce: 32 lowercase hex>.<expiry: unix seconds>
//
// The string is self-contained (it names the node and the expiry) so a user
// can sign it offline with "darkchat sign <challenge>".
type Challenge struct {
	NodeID string
	Nonce  [nonceSize]byte
	Expiry time.Time // whole seconds
}

// String returns the challenge string, the exact bytes that get signed.
func (c Challenge) String() string {
	b := make([]byte, 0, MaxChallengeLen)
	b = append(b, ChallengePrefix...)
	b = append(b, '.')
	b = append(b, c.NodeID...)
	b = append(b, '.')
	b = hex.AppendEncode(b, c.Nonce[:])
	b = append(b, '.')
	b = strconv.AppendInt(b, c.Expiry.Unix(), 10)
	return string(b)
}

// NewChallenge returns a fresh challenge for nodeID (the serving node's
// libp2p peer ID string) with a random nonce, expiring ttl after now
// (rounded up to a whole second).
func NewChallenge(nodeID string, now time.Time, ttl time.Duration) (string, error) {
	if err := validateNodeID(nodeID); err != nil {
		return "", fmt.Errorf("new challenge: %w", err)
	}
	if ttl <= 0 {
		return "", fmt.Errorf("new challenge: ttl must be positive, got %v", ttl)
	}
	c := Challenge{NodeID: nodeID}
	if _, err := rand.Read(c.Nonce[:]); err != nil {
		return "", fmt.Errorf("new challenge: %w", err)
	}
	exp := now.Add(ttl)
	secs := exp.Unix()
	if exp.Nanosecond() != 0 {
		secs++
	}
	c.Expiry = time.Unix(secs, 0)
	return c.String(), nil
}

// ParseChallenge parses a challenge string. It is strict: the result's
// String() is exactly s, so a challenge has one spelling.
func ParseChallenge(s string) (Challenge, error) {
	var c Challenge
	if len(s) > MaxChallengeLen {
		return c, fmt.Errorf("%w login challenge: %d bytes is %w (%d bytes)", ErrMalformed, len(s), ErrTooLarge, MaxChallengeLen)
	}
	parts := strings.Split(s, ".")
	if len(parts) != 4 || parts[0] != ChallengePrefix {
		return c, fmt.Errorf("%w login challenge: want %s.<node-id>.<nonce>.<expiry>", ErrMalformed, ChallengePrefix)
	}
	if err := validateNodeID(parts[1]); err != nil {
		return c, fmt.Errorf("%w login challenge: %w", ErrMalformed, err)
	}
	nonce := parts[2]
	if len(nonce) != 2*nonceSize || firstNonLowerHex(nonce) >= 0 {
		return c, fmt.Errorf("%w login challenge: nonce must be %d lowercase hex characters", ErrMalformed, 2*nonceSize)
	}
	exp := parts[3]
	if !isDecimal(exp) {
		return c, fmt.Errorf("%w login challenge: expiry must be unix seconds in decimal, without sign or leading zeros", ErrMalformed)
	}
	secs, err := strconv.ParseInt(exp, 10, 64)
	if err != nil {
		return c, fmt.Errorf("%w login challenge: expiry: %w", ErrMalformed, err)
	}
	c.NodeID = parts[1]
	hex.Decode(c.Nonce[:], []byte(nonce)) // cannot fail: checked above
	c.Expiry = time.Unix(secs, 0)
	return c, nil
}

// validateNodeID accepts libp2p peer-ID strings: base58btc ("12D3KooW...",
// "Qm...") and base32 ("bafz...") are both plain ASCII letters and digits.
// Anything else (notably '.', the challenge separator) is rejected.
func validateNodeID(id string) error {
	ok := len(id) >= 1 && len(id) <= MaxNodeIDLen
	for i := 0; ok && i < len(id); i++ {
		ok = isAlnum(id[i])
	}
	if !ok {
		return fmt.Errorf("node ID %q: must be 1 to %d ASCII letters and digits (a libp2p peer ID)", clip(id), MaxNodeIDLen)
	}
	return nil
}

// isDecimal reports whether s is a non-negative decimal number in canonical
// form: digits only, no leading zero unless s is "0".
func isDecimal(s string) bool {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// loginStatement returns the bytes a login signature covers:
//
//	DomainLogin || len(challenge) u32 || challenge || client public key (32)
//
// Including the client key binds the signature to the key it is presented
// with; including the challenge binds it to the node ID, nonce and expiry.
func loginStatement(challenge string, pub PublicKey) []byte {
	b := make([]byte, 0, len(DomainLogin)+lenPrefixSize+len(challenge)+PublicKeySize)
	b = append(b, DomainLogin...)
	b = appendStr(b, challenge)
	return append(b, pub[:]...)
}

// LoginStatement returns the signed statement for a challenge and client
// key, for tests and other implementations; SignLogin and VerifyLogin build
// it themselves.
func LoginStatement(challenge string, pub PublicKey) []byte { return loginStatement(challenge, pub) }

// SignLogin signs challenge with priv and returns the 64-byte signature (nil
// for the zero key). It signs any string: a client that knows which node it
// meant to reach should ParseChallenge and compare NodeID first, because that
// binding is what stops a malicious node from relaying another node's
// challenge and logging in there as the user.
func SignLogin(priv PrivateKey, challenge string) []byte {
	return priv.sign(loginStatement(challenge, priv.Public()))
}

// VerifyLogin checks a login: sig must be pub's signature over challenge,
// the challenge must be well formed, name nodeID and not be expired at now.
// Cheap checks run before the signature check.
//
// VerifyLogin cannot know whether the challenge was issued or already used:
// the gateway must pass the challenge it issued on this connection (never one
// echoed by the client) and forget it after one attempt, which makes each
// challenge single-use.
func VerifyLogin(pub PublicKey, challenge string, sig []byte, nodeID string, now time.Time) error {
	if len(sig) != SignatureSize {
		return fmt.Errorf("login: %w: want %d bytes, got %d", ErrBadSignature, SignatureSize, len(sig))
	}
	c, err := ParseChallenge(challenge)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if c.NodeID != nodeID {
		return fmt.Errorf("login: %w: the challenge is for node %s, this is %s", ErrWrongNode, c.NodeID, clip(nodeID))
	}
	if !c.Expiry.After(now) {
		return fmt.Errorf("login: challenge %w at %s", ErrExpired, c.Expiry.UTC().Format(time.RFC3339))
	}
	if !verify(pub, loginStatement(challenge, pub), sig) {
		return fmt.Errorf("login: %w for key %s", ErrBadSignature, pub)
	}
	return nil
}

// LoginSignatureValid reports whether sig is pub's signature of the login
// statement for challenge, by the rules every verifier uses (verify): the
// check a client makes on a signature its user typed, before sending it.
func LoginSignatureValid(pub PublicKey, challenge string, sig []byte) bool {
	return verify(pub, loginStatement(challenge, pub), sig)
}
