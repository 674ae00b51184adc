package gateway

import (
	"bytes"
	"encoding/binary"
	"errors"
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

func TestWSFramingRefusesViolations(t *testing.T) {
	unmasked := clientFrame(true, opText, []byte("x"))
	unmasked[1] &^= 0x80
	rsv := clientFrame(true, opText, []byte("x"))
	rsv[0] |= 0x40
	for _, tc := range []struct {
		name  string
		input []byte
		want  error
	}{
		{"unmasked", unmasked, badFrameError("")},
		{"reserved bits", rsv, badFrameError("")},
		{"binary", clientFrame(true, opBinary, []byte{1, 2}), badFrameError("")},
		{"continuation first", clientFrame(true, opContinuation, []byte("x")), badFrameError("")},
		{"text inside fragments", append(clientFrame(false, opText, []byte("a")), clientFrame(true, opText, []byte("b"))...), badFrameError("")},
		{"long ping", clientFrame(true, opPing, bytes.Repeat([]byte("p"), 126)), badFrameError("")},
		{"fragmented ping", clientFrame(false, opPing, []byte("p")), badFrameError("")},
		{"unknown opcode", clientFrame(true, 0x3, nil), badFrameError("")},
		// Only the header of an oversized frame: refused before its
		// payload is buffered.
		{"too large", clientFrame(true, opText, bytes.Repeat([]byte("x"), 2000))[:8], errFrameTooLarge},
		{"fragments too large", append(clientFrame(false, opText, bytes.Repeat([]byte("x"), 1000)), clientFrame(true, opContinuation, bytes.Repeat([]byte("x"), 100))...), errFrameTooLarge},
		{"close", clientFrame(true, opClose, []byte{0x03, 0xe8}), errPeerClosed},
	} {
		w := newWSConn(nil, 1024)
		err := w.deframe(tc.input, &frameCollector{})
		var bad badFrameError
		switch {
		case errors.As(tc.want, &bad):
			if !errors.As(err, &bad) {
				t.Errorf("%s: got %v, want a bad_frame error", tc.name, err)
			}
		case !errors.Is(err, tc.want):
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
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
		t.Fatalf("idle connection holds %d bytes", cap(c.partial))
	}
	if err := c.deframe(bytes.Repeat([]byte("x"), 1026), &got); !errors.Is(err, errFrameTooLarge) {
		t.Fatalf("unterminated 1026-byte line: %v, want too large", err)
	}
}
