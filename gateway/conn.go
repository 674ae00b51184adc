package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"time"
)

// frameConn is one client connection seen as a sequence of frames: lines on
// TCP, text messages on WebSocket. Reading is push-style so that an idle
// session needs neither a goroutine nor a read buffer: whoever reads the
// socket (the poller's handler or a blocking reader, see session.go) hands
// the bytes to deframe, which keeps only an incomplete frame's bytes between
// calls. deframe is called only by the session's current reader,
// writeFrames only by its writer.
type frameConn interface {
	// netConn is the socket the bytes come from and go to.
	netConn() net.Conn
	// deframe splits data into frames and passes each to h in order. It
	// returns errStop if h asked to stop, errFrameTooLarge for a frame over
	// the limit, or another error that ends the session.
	deframe(data []byte, h frameHandler) error
	// writeFrames writes a batch of frames with as few syscalls as the
	// framing allows, within deadline.
	writeFrames(frames [][]byte, deadline time.Time) error
	close() error
}

// frameHandler receives what deframe finds. The frame slice is only valid
// during the call.
type frameHandler interface {
	// handleFrame executes one client frame and reports whether to go on.
	handleFrame(frame []byte) bool
	// queuePong answers a WebSocket ping through the session's writer.
	queuePong(payload []byte)
}

var (
	errFrameTooLarge = errors.New("frame too large")
	// errStop: the handler asked deframe to stop (the session is ending).
	errStop = errors.New("stop reading")
)

// badFrameError is a WebSocket framing violation; the session ends with a
// bad_frame error.
type badFrameError string

func (e badFrameError) Error() string { return string(e) }

// writeBufs recycles batch buffers across sessions: an idle session holds
// none, and a busy one borrows a buffer only while writing.
var writeBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// maxPooledBuf keeps a rare huge batch from pinning memory in the pool.
const maxPooledBuf = 256 << 10

func getBuf() *[]byte { return writeBufs.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) <= maxPooledBuf {
		*b = (*b)[:0]
		writeBufs.Put(b)
	}
}

// keepPartial stores the incomplete tail of a read for the next one. An
// empty tail releases the buffer, so an idle session holds none.
func keepPartial(partial, tail []byte) []byte {
	if len(tail) == 0 {
		return nil
	}
	if cap(partial) > 4*len(tail) && cap(partial) > 2048 {
		partial = nil // do not keep a big frame's buffer for a small tail
	}
	// tail may alias partial (it is a suffix of it): append copies
	// forwards, which is safe for an overlapping move to the front.
	return append(partial[:0], tail...)
}

// tcpConn frames newline-delimited JSON on a TCP connection.
type tcpConn struct {
	c       net.Conn
	max     int
	partial []byte // an incomplete line, without its '\n'
}

func newTCPConn(c net.Conn, maxLine int) *tcpConn {
	return &tcpConn{c: c, max: maxLine}
}

func (t *tcpConn) netConn() net.Conn { return t.c }

func (t *tcpConn) deframe(data []byte, h frameHandler) error {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			// A line longer than max without its '\n' can never be
			// valid: refuse it before buffering more.
			if len(t.partial)+len(data) > t.max+1 { // +1: a final '\r'
				return errFrameTooLarge
			}
			t.partial = append(t.partial, data...)
			return nil
		}
		line := data[:i]
		data = data[i+1:]
		if len(t.partial) > 0 {
			t.partial = append(t.partial, line...)
			line = t.partial
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) > t.max {
			return errFrameTooLarge
		}
		ok := h.handleFrame(line)
		t.partial = keepPartial(t.partial, nil)
		if !ok {
			return errStop
		}
	}
	return nil
}

func (t *tcpConn) writeFrames(frames [][]byte, deadline time.Time) error {
	buf := getBuf()
	defer putBuf(buf)
	for _, f := range frames {
		*buf = append(*buf, f...)
		*buf = append(*buf, '\n')
	}
	t.c.SetWriteDeadline(deadline)
	_, err := t.c.Write(*buf)
	return err
}

func (t *tcpConn) close() error { return t.c.Close() }

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// errPeerClosed: the client sent a close frame.
var errPeerClosed = errors.New("websocket: client closed the connection")

// wsConn frames JSON text messages on a WebSocket whose handshake gorilla
// has done. Both directions are handled here on the raw socket: reads parse
// client frames incrementally (masking, fragmentation, control frames, the
// size limit) so an idle session holds no buffer, and writes put server
// frames straight on the socket, so a batch of messages is one syscall.
// Pongs go through the session's queue, keeping a single writer.
type wsConn struct {
	raw net.Conn
	max int

	partial   []byte // an incomplete frame, header included
	msg       []byte // a fragmented text message being assembled
	inMessage bool   // continuation frames are expected

	closeOnce sync.Once
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
func (w *wsConn) nextFrame(b []byte, h frameHandler) (int, error) {
	if len(b) < 2 {
		return 0, nil
	}
	fin, op := b[0]&0x80 != 0, b[0]&0x0f
	if b[0]&0x70 != 0 {
		return 0, badFrameError("reserved bits set (no extension was negotiated)")
	}
	if b[1]&0x80 == 0 {
		return 0, badFrameError("client frames must be masked")
	}
	size, hdr := uint64(b[1]&0x7f), 2
	switch size {
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
	}
	control := op&0x8 != 0
	switch {
	case control && (size > 125 || !fin):
		return 0, badFrameError("control frames must be unfragmented and at most 125 bytes")
	case !control && size > uint64(w.max-len(w.msg)):
		return 0, errFrameTooLarge
	}
	total := hdr + 4 + int(size)
	if len(b) < total {
		return 0, nil
	}
	payload := b[hdr+4 : total]
	unmask(payload, [4]byte(b[hdr:hdr+4]))
	switch op {
	case opText:
		if w.inMessage {
			return 0, badFrameError("new message inside a fragmented one")
		}
		if !fin {
			w.msg, w.inMessage = append(w.msg[:0], payload...), true
			return total, nil
		}
		if !h.handleFrame(payload) {
			return 0, errStop
		}
	case opContinuation:
		if !w.inMessage {
			return 0, badFrameError("continuation frame outside a fragmented message")
		}
		w.msg = append(w.msg, payload...)
		if fin {
			msg := w.msg
			w.msg, w.inMessage = nil, false
			if !h.handleFrame(msg) {
				return 0, errStop
			}
		}
	case opBinary:
		return 0, badFrameError("binary frames are not part of the protocol; send JSON in text frames")
	case opClose:
		return 0, errPeerClosed
	case opPing:
		h.queuePong(bytes.Clone(payload))
	case opPong:
	default:
		return 0, badFrameError("unknown opcode")
	}
	return total, nil
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

// wsPongPrefix marks a queued frame as a pong control frame rather than a
// text message; no JSON frame starts with a NUL byte.
const wsPongPrefix = "\x00pong:"

func (w *wsConn) writeFrames(frames [][]byte, deadline time.Time) error {
	buf := getBuf()
	defer putBuf(buf)
	for _, f := range frames {
		if len(f) >= len(wsPongPrefix) && string(f[:len(wsPongPrefix)]) == wsPongPrefix {
			*buf = appendWSFrame(*buf, opPong, f[len(wsPongPrefix):])
			continue
		}
		*buf = appendWSFrame(*buf, opText, f)
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

func (w *wsConn) close() error {
	w.closeOnce.Do(func() {
		// Best effort: tell the browser the session is over (1000: normal
		// closure) before dropping the socket.
		w.raw.SetWriteDeadline(time.Now().Add(time.Second))
		w.raw.Write(appendWSFrame(nil, opClose, []byte{0x03, 0xe8}))
	})
	return w.raw.Close()
}
