//go:build !js

package client

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"sync"
)

// DialTCP connects to a node's line-framed TCP gateway at addr (host:port).
func DialTCP(ctx context.Context, addr string) (Transport, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("dial tcp gateway: %w", err)
	}
	return NewLineTransport(conn), nil
}

// NewLineTransport frames objects as lines ("\n" after each, a "\r" before
// it ignored) on conn, which the transport then owns.
func NewLineTransport(conn net.Conn) Transport {
	// Room for the longest allowed line plus "\r\n": a full buffer with no
	// "\n" in it is a line over the limit.
	return &lineTransport{conn: conn, buf: make([]byte, MaxRecvSize+2)}
}

type lineTransport struct {
	conn net.Conn

	writeMu sync.Mutex

	// Recv's state, used by one caller at a time. buf[r:w] is read but not
	// yet returned; it survives a cancelled Recv, so no data is lost.
	buf  []byte
	r, w int
	err  error // sticky: after a too-long line the stream is lost

	closeOnce sync.Once
	closeErr  error
}

func (t *lineTransport) Send(ctx context.Context, obj []byte) error {
	if bytes.IndexByte(obj, '\n') >= 0 {
		return fmt.Errorf("send: %w: object contains a line end", ErrMalformed)
	}
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	release := bindDeadline(ctx, t.conn.SetWriteDeadline)
	defer release()
	// One write per object: net.Buffers would issue writev, but a line is
	// small and copying it is cheaper than a second system call.
	line := make([]byte, 0, len(obj)+1)
	line = append(append(line, obj...), '\n')
	if _, err := t.conn.Write(line); err != nil {
		return fmt.Errorf("send: %w", ctxErr(ctx, err))
	}
	return nil
}

func (t *lineTransport) Recv(ctx context.Context) ([]byte, error) {
	if t.err != nil {
		return nil, t.err
	}
	release := bindDeadline(ctx, t.conn.SetReadDeadline)
	defer release()
	for {
		if i := bytes.IndexByte(t.buf[t.r:t.w], '\n'); i >= 0 {
			line := bytes.TrimSuffix(t.buf[t.r:t.r+i], []byte{'\r'})
			t.r += i + 1
			if len(line) > MaxRecvSize {
				t.err = fmt.Errorf("recv: %w: line of %d bytes, limit %d", ErrTooLarge, len(line), MaxRecvSize)
				return nil, t.err
			}
			return bytes.Clone(line), nil
		}
		if t.r > 0 { // make room: move the partial line to the front
			t.w = copy(t.buf, t.buf[t.r:t.w])
			t.r = 0
		}
		if t.w == len(t.buf) {
			t.err = fmt.Errorf("recv: %w: line longer than %d bytes", ErrTooLarge, MaxRecvSize)
			return nil, t.err
		}
		n, err := t.conn.Read(t.buf[t.w:])
		t.w += n
		if err != nil && n == 0 {
			return nil, fmt.Errorf("recv: %w", ctxErr(ctx, err))
		}
	}
}

func (t *lineTransport) Close() error {
	t.closeOnce.Do(func() { t.closeErr = t.conn.Close() })
	return t.closeErr
}
