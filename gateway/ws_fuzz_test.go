package gateway

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

// fuzzMaxLine is the message limit in FuzzWSFraming, small enough that
// the fuzzer's frames (up to 255 bytes) cross it.
const fuzzMaxLine = 200

// FuzzWSFraming builds a client byte stream from a script of frames —
// any first header byte (FIN, reserved bits, opcode), masked or not, each
// length encoding, fragments with control frames between them — cuts it
// into reads, and checks that the gateway's reader finds the same messages
// and pings, and reaches the same verdict, as gorilla/websocket's reader
// (plus a UTF-8 check of each text message, which gorilla leaves to the
// application) on the same bytes.
func FuzzWSFraming(f *testing.F) {
	text := func(fin bool, op byte, p string) []byte { return wsScriptFrame(fin, op, 0x80, []byte(p)) }
	join := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	long := strings.Repeat("x", 150)
	seeds := []struct {
		name   string
		script []byte
	}{
		{"messages", join(text(true, opText, `{"type":"ping"}`), text(true, opText, ""), text(true, opPong, ""))},
		{"fragments and pings", join(text(false, opText, "hel"), text(true, opPing, "p"), text(false, opContinuation, "l"), text(true, opPong, "q"), text(true, opContinuation, "o"))},
		{"length encodings", join(wsScriptFrame(true, opText, 0x81, []byte("16-bit")), wsScriptFrame(true, opText, 0x82, []byte("64-bit")))},
		{"unmasked", wsScriptFrame(true, opText, 0x00, []byte("x"))},
		{"reserved bits", join(text(true, opText, "ok"), wsScriptFrame(true, 0x40|opText, 0x80, []byte("x")))},
		{"binary", text(true, opBinary, "\x01\x02")},
		{"continuation first", text(true, opContinuation, "x")},
		{"text in fragments", join(text(false, opText, "a"), text(true, opText, "b"))},
		{"binary in fragments", join(text(false, opText, "a"), text(true, opBinary, "b"))},
		{"long ping", text(true, opPing, strings.Repeat("p", 126))},
		{"fragmented ping", text(false, opPing, "p")},
		{"unknown opcode", text(true, 0x3, "")},
		{"unknown control", text(true, 0xB, "")},
		{"too large", text(true, opText, long+long)},
		{"fragments too large", join(text(false, opText, long), text(true, opContinuation, long[:60]))},
		{"64-bit top bit set", wsScriptFrame(true, opText, 0x83, []byte("x"))},
		{"invalid UTF-8", text(true, opText, "caf\xe9")},
		{"split character", join(text(false, opText, "\xe2"), text(false, opContinuation, "\x82"), text(true, opContinuation, "\xac"))},
		{"invalid in fragments", join(text(false, opText, "ok \xe2\x82"), text(true, opContinuation, "x"))},
		{"close 1000", join(text(true, opText, "last"), text(true, opClose, "\x03\xe8"))},
		{"close without code", text(true, opClose, "")},
		{"close 4000 reason", text(true, opClose, "\x0f\xa0bye")},
		{"close 1-byte", text(true, opClose, "\x03")},
		{"close 1005", text(true, opClose, "\x03\xed")},
		{"close reason UTF-8", text(true, opClose, "\x03\xe8\xff")},
		{"stream ends inside a frame", text(true, opText, "cut short")[:6]},
		{"stream ends inside a message", join(text(false, opText, "part"), text(true, opPing, ""))},
		{"stream ends inside a header", []byte{0x81}},
	}
	for _, seed := range seeds {
		for _, cuts := range []string{"", "\x00", "\x02\x06\x0d"} {
			f.Add(seed.script, []byte(cuts))
		}
	}
	f.Fuzz(func(t *testing.T, script, cuts []byte) {
		stream := buildWSStream(script)
		chunks := cutStream(stream, cuts)

		w := newWSConn(nil, fuzzMaxLine)
		var got frameCollector
		var err error
		for _, c := range chunks {
			// deframe unmasks in place: hand it a copy, as a read into
			// a fresh buffer would.
			if err = w.deframe(bytes.Clone(c), &got); err != nil {
				break
			}
		}
		verdict := gatewayVerdict(err)
		wantEvents, want := gorillaRead(t, chunks)

		if !sameEvents(got.events, wantEvents) {
			t.Fatalf("stream %x: gateway found %s, gorilla %s", stream, describeEvents(got.events), describeEvents(wantEvents))
		}
		// RFC 6455 §5.5.1: a close payload is a 2-byte code and a reason,
		// so one byte is a protocol error; gorilla reads it as a close
		// without a code.
		if verdict != want && !(err == errShortClose && want == "close 1005") {
			t.Fatalf("stream %x: gateway verdict %q (%v), gorilla %q", stream, verdict, err, want)
		}
	})
}

// wsScriptFrame is one frame of a FuzzWSFraming script: the first header
// byte, a flags byte (0x80: masked; low two bits: the length as 7 bits
// when it fits, 16 bits, 64 bits, or 64 bits with the top bit set), the
// payload length, the payload (cut short if the script ends).
func wsScriptFrame(fin bool, op, flags byte, payload []byte) []byte {
	h := op
	if fin {
		h |= 0x80
	}
	return append([]byte{h, flags, byte(len(payload))}, payload...)
}

// buildWSStream turns a script into client frames. A frame whose script
// runs out is cut short there: the stream ends inside it.
func buildWSStream(script []byte) []byte {
	next := func() byte {
		if len(script) == 0 {
			return 0
		}
		b := script[0]
		script = script[1:]
		return b
	}
	var out []byte
	for frames := 0; len(script) > 0 && frames < 64; frames++ {
		h := next()
		out = append(out, h)
		if len(script) == 0 {
			break // the stream ends after one header byte
		}
		flags, n := next(), int(next())
		payload := bytes.Clone(script[:min(n, len(script))])
		script = script[len(payload):]
		mask := flags & 0x80
		switch flags & 3 {
		case 0:
			if n < 126 {
				out = append(out, mask|byte(n))
			} else {
				out = append(out, mask|126)
				out = binary.BigEndian.AppendUint16(out, uint16(n))
			}
		case 1:
			out = append(out, mask|126)
			out = binary.BigEndian.AppendUint16(out, uint16(n))
		case 2:
			out = append(out, mask|127)
			out = binary.BigEndian.AppendUint64(out, uint64(n))
		case 3:
			out = append(out, mask|127)
			out = binary.BigEndian.AppendUint64(out, 1<<63|uint64(n))
		}
		if mask != 0 {
			key := [4]byte{flags, h, byte(n), 0x5a}
			out = append(out, key[:]...)
			for i := range payload {
				payload[i] ^= key[i&3]
			}
		}
		out = append(out, payload...)
	}
	return out
}

// cutStream cuts stream into reads of cuts[i]+1 bytes in turn; no cuts
// means one read.
func cutStream(stream, cuts []byte) [][]byte {
	if len(cuts) == 0 {
		return [][]byte{stream}
	}
	var chunks [][]byte
	for i := 0; len(stream) > 0; i++ {
		n := min(int(cuts[i%len(cuts)])+1, len(stream))
		chunks = append(chunks, stream[:n])
		stream = stream[n:]
	}
	return chunks
}

func gatewayVerdict(err error) string {
	var bad wsError
	var closed peerClosed
	switch {
	case err == nil:
		return "end"
	case errors.Is(err, errFrameTooLarge):
		return "too_large"
	case errors.As(err, &closed):
		return fmt.Sprintf("close %d", closed.code)
	case errors.As(err, &bad):
		switch bad.code {
		case closeUnsupportedData:
			return "binary"
		case closeInvalidData:
			return "utf8"
		}
		return "protocol"
	}
	return "unexpected " + err.Error()
}

// gorillaRead runs gorilla/websocket's server-side reader over the reads
// and returns what it found: messages and pings in order, and the verdict
// that ended it.
func gorillaRead(t *testing.T, chunks [][]byte) ([]wsEvent, string) {
	conn := &scriptConn{chunks: chunks}
	r := httptest.NewRequest(http.MethodGet, "/ws", nil)
	r.Header.Set("Connection", "Upgrade")
	r.Header.Set("Upgrade", "websocket")
	r.Header.Set("Sec-WebSocket-Version", "13")
	r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	u := websocket.Upgrader{}
	ws, err := u.Upgrade(&hijackWriter{conn: conn, h: http.Header{}}, r, nil)
	if err != nil {
		t.Fatalf("gorilla upgrade: %v", err)
	}
	ws.SetReadLimit(fuzzMaxLine)
	var events []wsEvent
	ws.SetPingHandler(func(p string) error {
		events = append(events, wsEvent{ping: true, data: []byte(p)})
		return nil
	})
	total := 0
	for _, c := range chunks {
		total += len(c)
	}
	for range total + 1 { // each message takes at least 2 bytes
		typ, rd, err := ws.NextReader()
		if err != nil {
			return events, gorillaVerdict(err)
		}
		if typ == websocket.BinaryMessage {
			return events, "binary"
		}
		data, err := io.ReadAll(rd)
		if err != nil {
			return events, gorillaVerdict(err)
		}
		if !utf8.Valid(data) {
			return events, "utf8"
		}
		events = append(events, wsEvent{data: data})
	}
	t.Fatal("gorilla's reader did not stop")
	return nil, ""
}

func gorillaVerdict(err error) string {
	var ce *websocket.CloseError
	switch {
	case errors.Is(err, websocket.ErrReadLimit):
		return "too_large"
	case errors.As(err, &ce) && ce.Code == websocket.CloseAbnormalClosure:
		return "end" // the stream ended, perhaps inside a frame
	case errors.As(err, &ce):
		return fmt.Sprintf("close %d", ce.Code)
	case strings.Contains(err.Error(), "invalid utf8 payload in close frame"):
		return "utf8" // the gateway closes with 1007 for it, gorilla with 1002
	}
	return "protocol"
}

func sameEvents(a, b []wsEvent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ping != b[i].ping || !bytes.Equal(a[i].data, b[i].data) {
			return false
		}
	}
	return true
}

func describeEvents(ev []wsEvent) string {
	var parts []string
	for _, e := range ev {
		if e.ping {
			parts = append(parts, fmt.Sprintf("ping %q", e.data))
		} else {
			parts = append(parts, fmt.Sprintf("%q", e.data))
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// scriptConn is a net.Conn whose reads return the chunks in turn and whose
// writes (gorilla's handshake answer, pongs, close frames) are dropped.
type scriptConn struct {
	chunks [][]byte
}

func (c *scriptConn) Read(p []byte) (int, error) {
	if len(c.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, c.chunks[0])
	if c.chunks[0] = c.chunks[0][n:]; len(c.chunks[0]) == 0 {
		c.chunks = c.chunks[1:]
	}
	return n, nil
}

func (c *scriptConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// hijackWriter hands gorilla's upgrader the scripted connection.
type hijackWriter struct {
	conn net.Conn
	h    http.Header
}

func (w *hijackWriter) Header() http.Header         { return w.h }
func (w *hijackWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *hijackWriter) WriteHeader(int)             {}
func (w *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return w.conn, bufio.NewReadWriter(bufio.NewReader(w.conn), bufio.NewWriter(w.conn)), nil
}
