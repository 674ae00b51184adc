//go:build !js

package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// scriptedWSConn is a node's side of a WebSocket connection: it answers
// the client's handshake, then sends stream and ends. What the client
// sends after the handshake (pongs, its close frame) is discarded.
type scriptedWSConn struct {
	req    bytes.Buffer
	in     *bytes.Reader
	stream []byte
}

func (c *scriptedWSConn) Read(p []byte) (int, error) {
	if c.in == nil {
		req, err := http.ReadRequest(bufio.NewReader(&c.req))
		if err != nil {
			return 0, err
		}
		h := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(h[:]) + "\r\n\r\n"
		c.in = bytes.NewReader(append([]byte(resp), c.stream...))
	}
	return c.in.Read(p)
}

func (c *scriptedWSConn) Write(p []byte) (int, error) {
	if c.in == nil {
		c.req.Write(p)
	}
	return len(p), nil
}

func (c *scriptedWSConn) Close() error                     { return nil }
func (c *scriptedWSConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptedWSConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptedWSConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptedWSConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptedWSConn) SetWriteDeadline(time.Time) error { return nil }

// serverFrame encodes one frame as a node sends it: unmasked, the length in
// its shortest form unless size7 forces 126 or 127.
func serverFrame(fin bool, op byte, size7 byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	n := len(payload)
	switch {
	case size7 == 127 || size7 == 0 && n > 0xffff:
		return append(binary.BigEndian.AppendUint64([]byte{b0, 127}, uint64(n)), payload...)
	case size7 == 126 || size7 == 0 && n > 125:
		return append(binary.BigEndian.AppendUint16([]byte{b0, 126}, uint16(n)), payload...)
	}
	return append([]byte{b0, byte(n)}, payload...)
}

// wsVerdict is how a stream must end for the client.
type wsVerdict int

const (
	wsOther    wsVerdict = iota // a protocol error, a close frame, the end of the stream
	wsTooLarge                  // a message over MaxRecvSize: ErrTooLarge
)

// wsBinary stands for a binary message among the expected messages: Recv
// refuses it with ErrMalformed, and the next message may follow.
var wsBinary = []byte(nil)

// referenceWS reads a node's byte stream as RFC 6455 (and gorilla's reader
// with the client's read limit) says the client must: it returns the
// messages before the first failure (wsBinary for a binary one), and the
// failure.
func referenceWS(s []byte) ([][]byte, wsVerdict) {
	var (
		msgs     [][]byte
		msg      []byte
		isBinary bool
		inMsg    bool
		length   int64 // of the message so far, as announced by frame headers
	)
	for {
		if len(s) < 2 {
			return msgs, wsOther
		}
		fin, rsv, op := s[0]&0x80 != 0, s[0]&0x70, s[0]&0x0f
		masked, size := s[1]&0x80 != 0, int64(s[1]&0x7f)
		control := op&0x8 != 0
		switch {
		case rsv != 0, masked:
			return msgs, wsOther
		case op != 0 && op != 1 && op != 2 && op != 8 && op != 9 && op != 10:
			return msgs, wsOther
		case control && (size > 125 || !fin):
			return msgs, wsOther
		case (op == 1 || op == 2) && inMsg, op == 0 && !inMsg:
			return msgs, wsOther
		}
		s = s[2:]
		switch size {
		case 126:
			if len(s) < 2 {
				return msgs, wsOther
			}
			size, s = int64(binary.BigEndian.Uint16(s)), s[2:]
		case 127:
			if len(s) < 8 {
				return msgs, wsOther
			}
			u := binary.BigEndian.Uint64(s)
			if u > 1<<63-1 {
				return msgs, wsTooLarge
			}
			size, s = int64(u), s[8:]
		}
		if !control {
			if op != 0 {
				inMsg, isBinary, msg, length = true, op == 2, nil, 0
			}
			length += size
			if length < 0 || length > MaxRecvSize {
				return msgs, wsTooLarge
			}
		}
		if int64(len(s)) < size {
			return msgs, wsOther
		}
		payload := s[:size]
		s = s[size:]
		switch {
		case op == 8:
			return msgs, wsOther
		case control:
			// ping or pong: answered or ignored
		default:
			msg = append(msg, payload...)
			if fin {
				if isBinary {
					msgs = append(msgs, wsBinary)
				} else {
					msgs = append(msgs, append([]byte{}, msg...))
				}
				inMsg = false
			}
		}
	}
}

// FuzzWSTransport feeds the client's WebSocket transport any byte stream
// from a node after a good handshake and checks that it yields the text
// messages RFC 6455 finds in it (refusing a binary one with ErrMalformed),
// then fails as it must: ErrTooLarge for a message over MaxRecvSize (even
// one only announced), another error for anything else, and again on the
// next Recv.
func FuzzWSTransport(f *testing.F) {
	text := func(p string) []byte { return serverFrame(true, 1, 0, []byte(p)) }
	join := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	for _, seed := range [][]byte{
		join(text(`{"type":"ping"}`), text(""), serverFrame(true, 10, 0, nil)),
		join(serverFrame(false, 1, 0, []byte("hel")), serverFrame(true, 9, 0, []byte("p")), serverFrame(true, 0, 0, []byte("lo"))),
		join(serverFrame(true, 1, 126, []byte("16-bit")), serverFrame(true, 1, 127, []byte("64-bit"))),
		join(text("a"), serverFrame(true, 2, 0, []byte{1, 2})),
		join(text("a"), serverFrame(true, 8, 0, []byte{3, 232})),
		join(text("a"), []byte{0x81, 127, 0, 0, 0, 0, 0, 1, 0, 1}),                                                      // announces MaxRecvSize+1
		join(serverFrame(false, 1, 0, bytes.Repeat([]byte("x"), 100)), []byte{0x80, 127, 0, 0, 0, 0, 0, 0, 0xff, 0xa0}), // the sum crosses it
		[]byte{0x81, 127, 0x80, 0, 0, 0, 0, 0, 0, 1},
		[]byte{0x81, 0x81, 1, 2, 3, 4, 'x'}, // masked
		[]byte{0xc1, 1, 'x'},                // reserved bit
		text("caf\xe9"),
		serverFrame(true, 0, 0, []byte("x")),
		serverFrame(true, 3, 0, nil),
		text("cut short")[:5],
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		conn := &scriptedWSConn{stream: stream}
		d := websocket.Dialer{
			NetDialContext:  func(context.Context, string, string) (net.Conn, error) { return conn, nil },
			ReadBufferSize:  1024,
			WriteBufferSize: 1024,
		}
		ctx := context.Background()
		ws, _, err := d.DialContext(ctx, "ws://node.example/ws", nil)
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		tr := newWSTransport(ws)
		defer tr.Close()

		want, verdict := referenceWS(stream)
		for i, w := range want {
			got, err := tr.Recv(ctx)
			switch {
			case w == nil && (!errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge)):
				t.Fatalf("message %d is binary: got %q, %v; want ErrMalformed", i, got, err)
			case w != nil && (err != nil || !bytes.Equal(got, w)):
				t.Fatalf("message %d: got %q, %v; want %q", i, got, err, w)
			}
		}
		got, err := tr.Recv(ctx)
		if err == nil {
			t.Fatalf("message %d %q; the stream holds %d", len(want), got, len(want))
		}
		if tooLarge := errors.Is(err, ErrTooLarge); tooLarge != (verdict == wsTooLarge) || errors.Is(err, ErrMalformed) {
			t.Fatalf("after %d messages: %v; want verdict %d", len(want), err, verdict)
		}
		if _, err := tr.Recv(ctx); err == nil {
			t.Fatal("Recv after a failure succeeded")
		}
	})
}
