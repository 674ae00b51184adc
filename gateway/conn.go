package gateway

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// frameConn is one client connection seen as a sequence of frames: lines on
// TCP, text messages on WebSocket. readFrame is called only by the session's
// reader, writeFrames only by its writer.
type frameConn interface {
	// readFrame returns the next frame; the slice is valid until the next
	// call. A frame over the limit returns errFrameTooLarge.
	readFrame() ([]byte, error)
	setReadDeadline(time.Time) error
	// writeFrames writes a batch of frames with as few syscalls as the
	// framing allows, within deadline.
	writeFrames(frames [][]byte, deadline time.Time) error
	close() error
}

var errFrameTooLarge = errors.New("frame too large")

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

// tcpReadBuffer is small on purpose: most client lines are short, idle
// sessions dominate memory, and longer lines are assembled in line.
const tcpReadBuffer = 256

// tcpConn frames newline-delimited JSON on a TCP connection.
type tcpConn struct {
	c    net.Conn
	r    *bufio.Reader
	max  int
	line []byte
}

func newTCPConn(c net.Conn, maxLine int) *tcpConn {
	return &tcpConn{c: c, r: bufio.NewReaderSize(c, tcpReadBuffer), max: maxLine}
}

func (t *tcpConn) readFrame() ([]byte, error) {
	if cap(t.line) > 2048 {
		t.line = nil // do not keep a big line's buffer while idle
	}
	t.line = t.line[:0]
	for {
		chunk, err := t.r.ReadSlice('\n')
		if len(t.line)+len(chunk) > t.max+1 {
			return nil, errFrameTooLarge
		}
		if err == nil && len(t.line) == 0 {
			return trimEOL(chunk), nil // whole line in the buffer: no copy
		}
		t.line = append(t.line, chunk...)
		switch {
		case err == nil:
			return trimEOL(t.line), nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return nil, err
		}
	}
}

func trimEOL(b []byte) []byte {
	b = b[:len(b)-1]
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

func (t *tcpConn) setReadDeadline(d time.Time) error { return t.c.SetReadDeadline(d) }

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

// wsConn frames JSON text messages on a WebSocket. gorilla/websocket reads
// (it handles masking, fragmentation and the read limit); writes bypass it
// and put server frames straight on the socket, so a batch of messages is
// one syscall. Control frames that gorilla would write itself (pong, close)
// are routed through the session's queue instead, keeping a single writer.
type wsConn struct {
	ws  *websocket.Conn
	raw net.Conn

	closeOnce sync.Once
}

func newWSConn(ws *websocket.Conn, maxLine int, queuePong func(payload []byte)) *wsConn {
	ws.SetReadLimit(int64(maxLine))
	ws.SetPingHandler(func(data string) error {
		queuePong([]byte(data))
		return nil
	})
	// The reader sees the close as an error and ends the session, which
	// sends our close frame.
	ws.SetCloseHandler(func(int, string) error { return nil })
	return &wsConn{ws: ws, raw: ws.NetConn()}
}

func (w *wsConn) readFrame() ([]byte, error) {
	for {
		kind, data, err := w.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				return nil, errFrameTooLarge
			}
			return nil, err
		}
		if kind == websocket.TextMessage {
			return data, nil
		}
		return nil, fmt.Errorf("binary frames are not part of the protocol")
	}
}

func (w *wsConn) setReadDeadline(d time.Time) error { return w.ws.SetReadDeadline(d) }

// WebSocket opcodes (RFC 6455 §5.2).
const (
	opText  = 0x1
	opClose = 0x8
	opPong  = 0xA
)

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
