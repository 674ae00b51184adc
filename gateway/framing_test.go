package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// clientFrame builds a masked client frame as browsers send them.
func clientFrame(fin bool, op byte, payload []byte) []byte {
	b := []byte{op}
	if fin {
		b[0] |= 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, key[:]...)
	for i, c := range payload {
		b = append(b, c^key[i%4])
	}
	return b
}

// The WebSocket framing yields the same messages however the stream is
// cut into reads, answers pings in between fragments, and holds no buffer
// once a read ends on a frame boundary.
func TestWSFramingAcrossReads(t *testing.T) {
	big := bytes.Repeat([]byte("z"), 70000) // 64-bit length form
	mid := bytes.Repeat([]byte("m"), 300)   // 16-bit length form
	var stream []byte
	stream = append(stream, clientFrame(true, opText, []byte(`{"type":"ping"}`))...)
	stream = append(stream, clientFrame(true, opText, mid)...)
	stream = append(stream, clientFrame(false, opText, []byte("hel"))...)
	stream = append(stream, clientFrame(true, opPing, []byte("p"))...)
	stream = append(stream, clientFrame(false, opContinuation, []byte("l"))...)
	stream = append(stream, clientFrame(true, opContinuation, []byte("o"))...)
	stream = append(stream, clientFrame(true, opPong, nil)...)
	stream = append(stream, clientFrame(true, opText, big)...)
	stream = append(stream, clientFrame(true, opText, nil)...)
	want := [][]byte{[]byte(`{"type":"ping"}`), mid, []byte("hello"), big, {}}

	for _, chunk := range []int{1, 2, 3, 7, 13, 100, 4096, len(stream)} {
		w := newWSConn(nil, 80000)
		var got frameCollector
		for rest := stream; len(rest) > 0; {
			n := min(chunk, len(rest))
			// deframe unmasks in place: hand it a copy, as a read
			// into a fresh buffer would.
			if err := w.deframe(bytes.Clone(rest[:n]), &got); err != nil {
				t.Fatalf("chunk %d: %v", chunk, err)
			}
			rest = rest[n:]
		}
		if len(got.frames) != len(want) {
			t.Fatalf("chunk %d: %d messages, want %d", chunk, len(got.frames), len(want))
		}
		for i := range want {
			if !bytes.Equal(got.frames[i], want[i]) {
				t.Fatalf("chunk %d: message %d is %d bytes %.20q, want %d bytes", chunk, i, len(got.frames[i]), got.frames[i], len(want[i]))
			}
		}
		if len(got.pongs) != 1 || string(got.pongs[0]) != "p" {
			t.Fatalf("chunk %d: pongs %q, want [p]", chunk, got.pongs)
		}
		if w.partial != nil || w.msg != nil {
			t.Fatalf("chunk %d: an idle connection still holds %d+%d bytes", chunk, cap(w.partial), cap(w.msg))
		}
	}
}

// Every violation gets its own verdict, and with it the close code the
// session ends with (RFC 6455 §7.4.1).
func TestWSFramingRefusesViolations(t *testing.T) {
	unmasked := clientFrame(true, opText, []byte("x"))
	unmasked[1] &^= 0x80
	rsv := clientFrame(true, opText, []byte("x"))
	rsv[0] |= 0x40
	// A 64-bit length with its top bit set: refused before the mask key.
	huge := append([]byte{0x81, 0x80 | 127}, 0x80, 0, 0, 0, 0, 0, 0, 0)
	euro := []byte("€") // three bytes, split between fragments below
	for _, tc := range []struct {
		name  string
		input []byte
		want  error
		code  uint16
	}{
		{"unmasked", unmasked, errUnmasked, closeProtocolError},
		{"reserved bits", rsv, errReservedBits, closeProtocolError},
		{"binary", clientFrame(true, opBinary, []byte{1, 2}), errBinary, closeUnsupportedData},
		{"binary header only", clientFrame(true, opBinary, []byte{1, 2})[:6], errBinary, closeUnsupportedData},
		{"continuation first", clientFrame(true, opContinuation, []byte("x")), errContinuation, closeProtocolError},
		{"text inside fragments", append(clientFrame(false, opText, []byte("a")), clientFrame(true, opText, []byte("b"))...), errNewMessage, closeProtocolError},
		{"binary inside fragments", append(clientFrame(false, opText, []byte("a")), clientFrame(true, opBinary, []byte("b"))...), errNewMessage, closeProtocolError},
		{"long ping", clientFrame(true, opPing, bytes.Repeat([]byte("p"), 126)), errBadControl, closeProtocolError},
		{"fragmented ping", clientFrame(false, opPing, []byte("p")), errBadControl, closeProtocolError},
		{"unknown opcode", clientFrame(true, 0x3, nil), errBadOpcode, closeProtocolError},
		{"unknown control opcode", clientFrame(true, 0xB, nil), errBadOpcode, closeProtocolError},
		{"invalid UTF-8", clientFrame(true, opText, []byte("caf\xe9")), errTextUTF8, closeInvalidData},
		{"invalid UTF-8 across fragments", append(clientFrame(false, opText, []byte("ok \xe2\x82")), clientFrame(true, opContinuation, []byte("x"))...), errTextUTF8, closeInvalidData},
		{"surrogate half", clientFrame(true, opText, []byte("\xed\xa0\x80")), errTextUTF8, closeInvalidData},
		// Only the header of an oversized frame: refused before its
		// payload is buffered.
		{"too large", clientFrame(true, opText, bytes.Repeat([]byte("x"), 2000))[:8], errFrameTooLarge, closeTooBig},
		{"fragments too large", append(clientFrame(false, opText, bytes.Repeat([]byte("x"), 1000)), clientFrame(true, opContinuation, bytes.Repeat([]byte("x"), 100))...), errFrameTooLarge, closeTooBig},
		{"64-bit length, top bit set", huge, errFrameTooLarge, closeTooBig},
		{"close", clientFrame(true, opClose, []byte{0x03, 0xe8}), peerClosed{1000}, 0},
		{"close without code", clientFrame(true, opClose, nil), peerClosed{closeNoStatus}, 0},
		{"close 4000 with reason", clientFrame(true, opClose, []byte("\x0f\xa0bye")), peerClosed{4000}, 0},
		{"close with 1-byte payload", clientFrame(true, opClose, []byte{0x03}), errShortClose, closeProtocolError},
		{"close 1005", clientFrame(true, opClose, []byte{0x03, 0xed}), errCloseCode, closeProtocolError},
		{"close 999", clientFrame(true, opClose, []byte{0x03, 0xe7}), errCloseCode, closeProtocolError},
		{"close 5000", clientFrame(true, opClose, []byte{0x13, 0x88}), errCloseCode, closeProtocolError},
		{"close reason not UTF-8", clientFrame(true, opClose, []byte("\x03\xe8\xff")), errReasonUTF8, closeInvalidData},
	} {
		w := newWSConn(nil, 1024)
		var got frameCollector
		err := w.deframe(tc.input, &got)
		if err != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
			continue
		}
		if len(got.frames) != 0 {
			t.Errorf("%s: delivered %q", tc.name, got.frames)
		}
		if tc.code != 0 {
			if code := wsCloseCode(readFailure(err, 1024)); code != tc.code {
				t.Errorf("%s: close code %d, want %d", tc.name, code, tc.code)
			}
		}
	}
	// A character split between fragments is fine once reassembled.
	w := newWSConn(nil, 1024)
	var got frameCollector
	in := append(clientFrame(false, opText, euro[:1]), clientFrame(false, opContinuation, euro[1:2])...)
	in = append(in, clientFrame(true, opContinuation, euro[2:])...)
	if err := w.deframe(in, &got); err != nil || len(got.frames) != 1 || !bytes.Equal(got.frames[0], euro) {
		t.Fatalf("split character: %v, %q", err, got.frames)
	}
}

// A client that sends a request in many small writes is answered the same
// as one that sends it at once; the bytes are kept only until the line ends.
func TestTCPFramingHoldsOnlyIncompleteLines(t *testing.T) {
	c := newTCPConn(nil, 1024)
	var got frameCollector
	for _, part := range []string{`{"type":`, `"ping"}`, "\r\n{\"type\":\"pong\"}\n"} {
		if err := c.deframe([]byte(part), &got); err != nil {
			t.Fatal(err)
		}
	}
	if len(got.frames) != 2 || string(got.frames[0]) != `{"type":"ping"}` || string(got.frames[1]) != `{"type":"pong"}` {
		t.Fatalf("frames %q", got.frames)
	}
	if c.partial != nil {
		t.Fatalf("idle connection holds %d bytes", cap(*c.partial))
	}
	if err := c.deframe(bytes.Repeat([]byte("x"), 1026), &got); !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("unterminated 1026-byte line: %v, want too large", err)
	}
}

// A line's final '\r' counts towards max_line (PROTOCOL.md §1): a line of
// max_line bytes is served however it ends, one byte more is too large,
// whether it arrives at once or in pieces.
func TestTCPFramingCountsCR(t *testing.T) {
	const max = 1024
	for _, tc := range []struct {
		name  string
		parts []string
		ok    bool
	}{
		{"max with LF", []string{strings.Repeat("x", max) + "\n"}, true},
		{"max with CRLF", []string{strings.Repeat("x", max-1) + "\r\n"}, true},
		{"max+1 with CRLF", []string{strings.Repeat("x", max) + "\r\n"}, false},
		{"max+1 with CRLF, CR apart", []string{strings.Repeat("x", max), "\r", "\n"}, false},
		{"max+1 with LF", []string{strings.Repeat("x", max+1) + "\n"}, false},
		{"max+1 unterminated", []string{strings.Repeat("x", max), "\r"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTCPConn(nil, max)
			var got frameCollector
			var err error
			for _, part := range tc.parts {
				if err = c.deframe([]byte(part), &got); err != nil {
					break
				}
			}
			switch {
			case tc.ok && (err != nil || len(got.frames) != 1):
				t.Fatalf("refused: %v (%d lines)", err, len(got.frames))
			case !tc.ok && !errors.Is(err, errFrameTooLarge):
				t.Fatalf("got %v and %d lines, want too large", err, len(got.frames))
			}
		})
	}
}
