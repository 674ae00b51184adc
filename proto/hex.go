package proto

import (
	"encoding/hex"
	"errors"
	"fmt"

	"darkchat/identity"
)

// The hex policy (PROTOCOL.md §1): binary values (public keys, signatures,
// message IDs) are written in lowercase hex, and only lowercase hex is read.
// One spelling per value means a node echoes exactly what the client sent
// (ok, errors naming an id or key) and both sides can compare IDs as
// strings. encoding/hex writes lowercase; CheckHex and DecodeHex refuse
// anything else, uppercase included.

// Hex lengths of the binary fields.
const (
	KeyHexLen = 2 * identity.PublicKeySize
	SigHexLen = 2 * identity.SignatureSize
	IDHexLen  = 2 * identity.MessageIDSize
)

// ErrHex is wrapped by every refusal of the hex policy.
var ErrHex = errors.New("not lowercase hex")

// CheckHex requires s to be exactly n lowercase hex characters. field
// names the value in the error.
func CheckHex(field, s string, n int) error {
	if len(s) != n {
		return fmt.Errorf("%w: %s: want %d lowercase hex characters, got %d characters", ErrHex, field, n, len(s))
	}
	for i := 0; i < len(s); i++ {
		if !isLowerHex(s[i]) {
			return fmt.Errorf("%w: %s: want lowercase hex, character %d is %q", ErrHex, field, i+1, s[i])
		}
	}
	return nil
}

// DecodeHex decodes s, which must be exactly 2*len(dst) lowercase hex
// characters, into dst without allocating.
func DecodeHex(dst []byte, field, s string) error {
	if err := CheckHex(field, s, 2*len(dst)); err != nil {
		return err
	}
	for i := range dst {
		dst[i] = unhex(s[2*i])<<4 | unhex(s[2*i+1])
	}
	return nil
}

// ParseKey parses a user's public key under the hex policy.
func ParseKey(s string) (identity.PublicKey, error) {
	var k identity.PublicKey
	if err := CheckHex("key", s, KeyHexLen); err != nil {
		return k, err
	}
	return identity.ParsePublicKey(s)
}

// AppendHex appends b in the protocol's spelling.
func AppendHex(dst, b []byte) []byte { return hex.AppendEncode(dst, b) }

func isLowerHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

// unhex is one checked digit's value.
func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c - 'a' + 10
}
