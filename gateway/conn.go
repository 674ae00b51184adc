package gateway

import (
	"bytes"
	"errors"
	"math"
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
	// writeFrames writes a batch of queued frames with as few syscalls as
	// the framing allows, within deadline.
	writeFrames(frames []outFrame, deadline time.Time) error
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

// outFrame is one entry of a session's write queue. WebSocket control
// frames are entries of their own kind, never bytes mixed into the stream
// of objects (a text message may hold any bytes, so no prefix could mark
// one).
type outFrame struct {
	data []byte
	kind outKind
}

type outKind uint8

const (
	// outObject is a protocol object: a line on TCP, a text message on
	// WebSocket.
	outObject outKind = iota
	// outPong answers a WebSocket ping; data is the ping's payload.
	outPong
	// outClose is the WebSocket close frame; data is its payload (code
	// and reason). It is the last entry a session queues.
	outClose
)

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

// tcpConn frames newline-delimited JSON on a TCP connection. It is one
// per session, idle ones included, hence the small fields.
type tcpConn struct {
	c       net.Conn
	partial *[]byte // an incomplete line, without its '\n'; nil when there is none
	max     int32
}

func newTCPConn(c net.Conn, maxLine int) *tcpConn {
	return &tcpConn{c: c, max: int32(min(maxLine, math.MaxInt32))}
}

func (t *tcpConn) netConn() net.Conn { return t.c }

func (t *tcpConn) deframe(data []byte, h frameHandler) error {
	var partial []byte
	if t.partial != nil {
		partial = *t.partial
	}
	max := int(t.max)
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			// A line longer than max without its '\n' can never be
			// valid: refuse it before buffering more. A final '\r'
			// counts towards max (PROTOCOL.md §1).
			if len(partial)+len(data) > max {
				return errFrameTooLarge
			}
			t.keep(append(partial, data...))
			return nil
		}
		line := data[:i]
		data = data[i+1:]
		if len(partial) > 0 {
			partial = append(partial, line...)
			line = partial
		}
		if len(line) > max { // its '\r', if any, included
			return errFrameTooLarge
		}
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		ok := h.handleFrame(line)
		partial, t.partial = nil, nil // the line is handled: nothing kept
		if !ok {
			return errStop
		}
	}
	return nil
}

// keep stores p as the incomplete line; an empty p releases it. The slice
// header is allocated only when a line starts to be kept.
func (t *tcpConn) keep(p []byte) {
	switch {
	case len(p) == 0:
		t.partial = nil
	case t.partial == nil:
		t.partial = new([]byte)
		*t.partial = p
	default:
		*t.partial = p
	}
}

func (t *tcpConn) writeFrames(frames []outFrame, deadline time.Time) error {
	buf := getBuf()
	defer putBuf(buf)
	for _, f := range frames {
		if f.kind != outObject {
			continue // WebSocket control frames have no line form
		}
		*buf = append(*buf, f.data...)
		*buf = append(*buf, '\n')
	}
	t.c.SetWriteDeadline(deadline)
	_, err := t.c.Write(*buf)
	return err
}

func (t *tcpConn) close() error { return t.c.Close() }
