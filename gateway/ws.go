package gateway

import (
	"bytes"
	"encoding/binary"
	"math"
	"net"
	"strconv"
	"time"
	"unicode/utf8"
)

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// Close codes (RFC 6455 §7.4.1). The node picks one by why the session
// ends (wsCloseCode), so that a browser's CloseEvent tells a protocol
// violation from a policy decision or a shutdown; the reason text is the
// error code of PROTOCOL.md §2.9.
const (
	closeNormal          uint16 = 1000 // the client went away or closed
	closeGoingAway       uint16 = 1001 // the node is shutting down
	closeProtocolError   uint16 = 1002 // framing, opcode, masking, reserved bits, control frames
	closeUnsupportedData uint16 = 1003 // a binary message: the protocol is JSON text
	closeNoStatus        uint16 = 1005 // a client close frame had no code; never sent
	closeInvalidData     uint16 = 1007 // a text message or close reason that is not UTF-8 (§8.1)
	closePolicy          uint16 = 1008 // the node's rules: login, limits, timeouts, slow reading
	closeTooBig          uint16 = 1009 // a message over max_line
	closeInternal        uint16 = 1011 // the node failed
)

// wsError is a client frame that breaks RFC 6455 or the protocol's use of
// it. The session ends with a bad_frame error and a close frame with code.
type wsError struct {
	code uint16
	msg  string
}

func (e wsError) Error() string { return "websocket: " + e.msg }

var (
	errReservedBits = wsError{closeProtocolError, "reserved bits set (no extension was negotiated)"}
	errBadOpcode    = wsError{closeProtocolError, "unknown opcode"}
	errBadControl   = wsError{closeProtocolError, "control frames must be unfragmented and at most 125 bytes"}
	errNewMessage   = wsError{closeProtocolError, "new message inside a fragmented one"}
	errContinuation = wsError{closeProtocolError, "continuation frame outside a fragmented message"}
	errUnmasked     = wsError{closeProtocolError, "client frames must be masked"}
	errShortClose   = wsError{closeProtocolError, "close frame with a 1-byte payload (a code takes 2)"}
	errCloseCode    = wsError{closeProtocolError, "close code not allowed on the wire"}
	errBinary       = wsError{closeUnsupportedData, "binary frames are not part of the protocol; send JSON in text frames"}
	errTextUTF8     = wsError{closeInvalidData, "text message is not valid UTF-8"}
	errReasonUTF8   = wsError{closeInvalidData, "close reason is not valid UTF-8"}
)

// peerClosed: the client sent a close frame with code (closeNoStatus when
// it carried none). The node answers with the same code (§5.5.1).
type peerClosed struct{ code uint16 }

func (e peerClosed) Error() string {
	return "websocket: client closed the connection (" + strconv.Itoa(int(e.code)) + ")"
}

// wsConn frames JSON text messages on a WebSocket whose handshake gorilla
// has done. Both directions are handled here on the raw socket: reads parse
// client frames incrementally (masking, fragmentation, control frames, the
// size limit, UTF-8) so an idle session holds no buffer, and writes put
// server frames straight on the socket, so a batch of messages is one
// syscall. Pongs and the close frame go through the session's queue as
// entries of their own kind, keeping a single writer.
type wsConn struct {
	raw net.Conn
	max int

	partial   []byte // an incomplete frame, header included
	msg       []byte // a fragmented text message being assembled
	inMessage bool   // continuation frames are expected
}

func newWSConn(raw net.Conn, maxLine int) *wsConn {
	return &wsConn{raw: raw, max: maxLine}
}

func (w *wsConn) netConn() net.Conn { return w.raw }

func (w *wsConn) deframe(data []byte, h frameHandler) error {
	if len(w.partial) > 0 {
		w.partial = append(w.partial, data...)
		data = w.partial
	}
	for len(data) > 0 {
		n, err := w.nextFrame(data, h)
		if err != nil {
			w.partial = nil
			return err
		}
		if n == 0 {
			break // incomplete: wait for more bytes
		}
		data = data[n:]
	}
	w.partial = keepPartial(w.partial, data)
	return nil
}

// nextFrame consumes one frame from the front of b and returns its length,
// or 0 if b does not hold all of it yet. Payloads are unmasked in place.
//
// Each rule is checked as soon as the bytes it needs have arrived, and in
// the order gorilla/websocket's reader checks them (FuzzWSFraming compares
// the two): the first two bytes (reserved bits, opcode, control-frame
// rules, fragmentation state, masking), then the length (a 64-bit length
// with its top bit set is refused at once), then, with the whole header,
// the size limit and the binary refusal, which therefore never wait for a
// payload that would be thrown away; UTF-8 once a text message is whole.
func (w *wsConn) nextFrame(b []byte, h frameHandler) (int, error) {
	if len(b) < 2 {
		return 0, nil
	}
	fin, op, size7 := b[0]&0x80 != 0, b[0]&0x0f, b[1]&0x7f
	control := op&0x8 != 0
	switch {
	case b[0]&0x70 != 0:
		return 0, errReservedBits
	case op != opContinuation && op != opText && op != opBinary && op != opClose && op != opPing && op != opPong:
		return 0, errBadOpcode
	case control && (size7 > 125 || !fin):
		return 0, errBadControl
	case (op == opText || op == opBinary) && w.inMessage:
		return 0, errNewMessage
	case op == opContinuation && !w.inMessage:
		return 0, errContinuation
	case b[1]&0x80 == 0:
		return 0, errUnmasked
	}
	size, hdr := uint64(size7), 2
	switch size7 {
	case 126:
		if len(b) < 4 {
			return 0, nil
		}
		size, hdr = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, nil
		}
		size, hdr = binary.BigEndian.Uint64(b[2:]), 10
		if size > math.MaxInt64 {
			return 0, errFrameTooLarge
		}
	}
	if len(b) < hdr+4 {
		return 0, nil
	}
	if !control && size > uint64(w.max-len(w.msg)) {
		return 0, errFrameTooLarge
	}
	if op == opBinary {
		return 0, errBinary
	}
	total := hdr + 4 + int(size)
	if len(b) < total {
		return 0, nil
	}
	payload := b[hdr+4 : total]
	unmask(payload, [4]byte(b[hdr:hdr+4]))
	switch op {
	case opText:
		if !fin {
			w.msg, w.inMessage = append(w.msg[:0], payload...), true
			return total, nil
		}
		if !utf8.Valid(payload) {
			return 0, errTextUTF8
		}
		if !h.handleFrame(payload) {
			return 0, errStop
		}
	case opContinuation:
		w.msg = append(w.msg, payload...)
		if fin {
			msg := w.msg
			w.msg, w.inMessage = nil, false
			// A character may be split between fragments: only the
			// whole message must be UTF-8.
			if !utf8.Valid(msg) {
				return 0, errTextUTF8
			}
			if !h.handleFrame(msg) {
				return 0, errStop
			}
		}
	case opClose:
		return 0, parseClose(payload)
	case opPing:
		h.queuePong(bytes.Clone(payload))
	}
	return total, nil
}

// parseClose checks a client's close frame (RFC 6455 §5.5.1, §7.4): no
// payload, or a code a peer may send followed by a UTF-8 reason.
func parseClose(payload []byte) error {
	switch len(payload) {
	case 0:
		return peerClosed{closeNoStatus}
	case 1:
		return errShortClose
	}
	code := binary.BigEndian.Uint16(payload)
	if !validCloseCode(code) {
		return errCloseCode
	}
	if !utf8.Valid(payload[2:]) {
		return errReasonUTF8
	}
	return peerClosed{code}
}

// validCloseCode reports whether a peer may send code: the codes of RFC
// 6455 §7.4.1 and the IANA registry meant for the wire (1005, 1006 and 1015
// are not), and 3000–4999 for libraries and applications. It is the set
// gorilla/websocket accepts.
func validCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1013:
		return true
	}
	return code >= 3000 && code <= 4999
}

// closePayload is a close frame's payload: the code and a reason, cut to
// fit a control frame.
func closePayload(code uint16, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// unmask XORs p with the frame's masking key, eight bytes at a time.
func unmask(p []byte, key [4]byte) {
	k := uint64(binary.LittleEndian.Uint32(key[:]))
	k |= k << 32
	for len(p) >= 8 {
		binary.LittleEndian.PutUint64(p, binary.LittleEndian.Uint64(p)^k)
		p = p[8:]
	}
	for i := range p {
		p[i] ^= key[i&3]
	}
}

func (w *wsConn) writeFrames(frames []outFrame, deadline time.Time) error {
	buf := getBuf()
	defer putBuf(buf)
	for _, f := range frames {
		op := byte(opText)
		switch f.kind {
		case outPong:
			op = opPong
		case outClose:
			op = opClose
		}
		*buf = appendWSFrame(*buf, op, f.data)
	}
	w.raw.SetWriteDeadline(deadline)
	_, err := w.raw.Write(*buf)
	return err
}

// appendWSFrame appends one unfragmented, unmasked server frame.
func appendWSFrame(b []byte, opcode byte, payload []byte) []byte {
	b = append(b, 0x80|opcode) // FIN
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// close drops the socket. The close frame, if any, was the last entry
// the session's writer wrote.
func (w *wsConn) close() error { return w.raw.Close() }
