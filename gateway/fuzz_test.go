package gateway

import (
	"bytes"
	"errors"
	"testing"
)

// frameCollector is a frameHandler that records what deframe finds.
type frameCollector struct {
	frames [][]byte
	pongs  [][]byte
	events []wsEvent // frames and pongs in the order they came
}

// wsEvent is a message, or a ping to answer.
type wsEvent struct {
	ping bool
	data []byte
}

func (c *frameCollector) handleFrame(f []byte) bool {
	c.frames = append(c.frames, bytes.Clone(f))
	c.events = append(c.events, wsEvent{data: bytes.Clone(f)})
	return true
}

func (c *frameCollector) queuePong(p []byte) {
	c.pongs = append(c.pongs, p)
	c.events = append(c.events, wsEvent{ping: true, data: p})
}

// FuzzTCPFraming feeds input split in two reads and checks that the line
// framing yields exactly the complete lines within the limit, a line's
// final '\r' counting towards it.
func FuzzTCPFraming(f *testing.F) {
	f.Add([]byte("{\"type\":\"ping\"}\n{\"type\":\"pong\"}\r\n"), 5)
	f.Add(bytes.Repeat([]byte("x"), 3000), 100)
	f.Add([]byte("\n\n\r\n"), 1)
	f.Fuzz(func(t *testing.T, data []byte, split int) {
		const max = 1024
		if split < 0 || split > len(data) {
			split = len(data) / 2
		}
		c := newTCPConn(nil, max)
		var got frameCollector
		for _, part := range [][]byte{data[:split], data[split:]} {
			if err := c.deframe(bytes.Clone(part), &got); err != nil {
				if errors.Is(err, errFrameTooLarge) {
					return // the session would close: nothing more to check
				}
				t.Fatal(err)
			}
		}
		// Every complete line came through, in order, without its EOL.
		want := bytes.Split(data, []byte("\n"))
		want = want[:len(want)-1] // text after the last \n is not a line
		for _, line := range want {
			if len(line) > max {
				t.Fatalf("line of %d bytes, its '\\r' included, passed the %d limit", len(line), max)
			}
		}
		if len(got.frames) != len(want) {
			t.Fatalf("got %d lines, want %d", len(got.frames), len(want))
		}
		for i := range want {
			if w := bytes.TrimSuffix(want[i], []byte("\r")); !bytes.Equal(got.frames[i], w) {
				t.Fatalf("line %d: %q, want %q", i, got.frames[i], w)
			}
		}
	})
}
