package identity

import (
	"encoding/binary"
	"fmt"
)

// Domain-separation prefixes. Every signature in darkchat covers
// prefix || fields, and each purpose has its own prefix, so a signature made
// for one purpose never verifies for another (a channel-message signature
// cannot be replayed as a login, a DM signature cannot be posted to a
// channel). The NUL terminator keeps one prefix from being a prefix of
// another purpose's encoding, and "v1" lets a future encoding change the
// prefix instead of being confused with this one.
const (
	DomainLogin          = "darkchat/v1/login\x00"
	DomainChannelMessage = "darkchat/v1/channel-message\x00"
	// DomainChannelMessage2 covers a channel message with its causal
	// context (ChannelMessage.Causal).
	DomainChannelMessage2 = "darkchat/v2/channel-message\x00"
	DomainDM              = "darkchat/v1/dm\x00"
	DomainKeyBundle       = "darkchat/v1/key-bundle\x00"
	DomainReceipt         = "darkchat/v1/receipt\x00"
)

// Field encoding, shared by every signed structure and wire form:
//
//   - variable-length field: 4-byte big-endian length, then the bytes;
//   - fixed-size field (keys 32 B, message IDs 16 B, signatures 64 B): raw;
//   - integer: 8-byte big-endian two's complement (int64), 1 byte for uint8.
//
// The length prefixes make the encoding injective: no two different field
// lists encode to the same bytes, so a signature cannot be reinterpreted by
// moving bytes from one field to the next.

const lenPrefixSize = 4

// The append helpers below encode one field each. They are plain append
// functions (not methods on a buffer struct) so the compiler can keep a
// caller's buffer on the stack: Verify builds the signed bytes of every
// incoming message without allocating. Prefixes, fixed-size fields and
// version bytes need no helper: append them.

// appendStr appends a length-prefixed string field. Callers bound their
// fields far below 4 GiB, the largest length the prefix holds.
func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

// appendBytes appends a length-prefixed byte field.
func appendBytes(b, field []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(field)))
	return append(b, field...)
}

// appendInt64 appends an 8-byte big-endian two's complement integer.
func appendInt64(b []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(v))
}

// decoder reads canonical fields from untrusted input. It never copies:
// variable-length fields are returned as sub-slices of the input, and a
// length prefix is checked against its bound and against the bytes actually
// left before it is used, so a peer cannot make us allocate or read more than
// it sent. After the first error every read returns zero values and err keeps
// that first error, so callers check once at the end.
type decoder struct {
	buf []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.buf = nil
}

// raw returns the next n bytes.
func (d *decoder) raw(what string, n int) []byte {
	return d.take(what, "", n)
}

// take returns the next n bytes; what and suffix name the field in the
// error (passed separately so that the success path does not build a
// string).
func (d *decoder) take(what, suffix string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.buf) < n {
		d.fail(fmt.Errorf("truncated %s%s: need %d bytes, %d left", what, suffix, n, len(d.buf)))
		return nil
	}
	b := d.buf[:n:n]
	d.buf = d.buf[n:]
	return b
}

func (d *decoder) uint8(what string) uint8 {
	b := d.raw(what, 1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (d *decoder) int64(what string) int64 {
	b := d.raw(what, 8)
	if b == nil {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}

// bytes returns a length-prefixed field of at most max bytes.
func (d *decoder) bytes(what string, max int) []byte {
	p := d.take(what, " length", lenPrefixSize)
	if p == nil {
		return nil
	}
	n := binary.BigEndian.Uint32(p)
	if uint64(n) > uint64(max) {
		d.fail(fmt.Errorf("%s is %d bytes, %w (%d bytes)", what, n, ErrTooLarge, max))
		return nil
	}
	return d.raw(what, int(n))
}

// finish returns the first error, or an error if input is left over: a
// strict decoder accepts exactly one encoding per value, so nothing can be
// smuggled after the last field.
func (d *decoder) finish() error {
	if d.err == nil && len(d.buf) != 0 {
		d.err = fmt.Errorf("%d unexpected bytes after the last field", len(d.buf))
	}
	return d.err
}
