package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"darkchat/identity"
	"darkchat/proto"
)

// protoClient speaks the client protocol (PROTOCOL.md) over TCP lines or
// WebSocket frames. It is lean on purpose: the clients share the machine
// with the nodes they measure, so they build their lines by hand and read
// frames without decoding more than they need. Reads belong to one
// goroutine; writes are serialised by wmu.
type protoClient struct {
	tcp net.Conn
	br  *bufio.Reader
	ws  *websocket.Conn

	wmu sync.Mutex
	bw  *bufio.Writer // TCP only

	challenge string
	node      string
	key       identity.PrivateKey
}

// dialTCP connects to a TCP gateway from local (nil: any) and reads hello.
func dialTCP(ctx context.Context, addr string, local net.IP, bufSize int) (*protoClient, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if local != nil {
		d.LocalAddr = &net.TCPAddr{IP: local}
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if bufSize <= 0 {
		bufSize = 64 << 10
	}
	pc := &protoClient{tcp: c, br: bufio.NewReaderSize(c, bufSize), bw: bufio.NewWriterSize(c, min(bufSize, 16<<10))}
	if err := pc.readHello(); err != nil {
		c.Close()
		return nil, err
	}
	return pc, nil
}

// dialWS connects to a WebSocket gateway and reads hello.
func dialWS(ctx context.Context, url string) (*protoClient, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}
	ws, _, err := d.DialContext(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	pc := &protoClient{ws: ws}
	if err := pc.readHello(); err != nil {
		ws.Close()
		return nil, err
	}
	return pc, nil
}

func (c *protoClient) readHello() error {
	c.setReadDeadline(time.Now().Add(10 * time.Second))
	defer c.setReadDeadline(time.Time{})
	f, err := c.next()
	if err != nil {
		return fmt.Errorf("read hello: %w", err)
	}
	obj, err := proto.Decode(f)
	h, ok := obj.(*proto.Hello)
	if err != nil || !ok {
		return fmt.Errorf("expected hello, got %.200q", f)
	}
	c.challenge, c.node = h.Challenge, h.Node
	return nil
}

func (c *protoClient) setReadDeadline(t time.Time) {
	if c.ws != nil {
		c.ws.SetReadDeadline(t)
	} else {
		c.tcp.SetReadDeadline(t)
	}
}

// next returns the next frame; it is valid until the next call.
func (c *protoClient) next() ([]byte, error) {
	if c.ws != nil {
		_, data, err := c.ws.ReadMessage()
		return data, err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("frame longer than %d bytes", c.br.Size())
		}
		return nil, err
	}
	return line[:len(line)-1], nil
}

// queue buffers one object for the next flush (TCP); on WebSocket it is
// written at once.
func (c *protoClient) queue(obj []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.ws != nil {
		return c.ws.WriteMessage(websocket.TextMessage, obj)
	}
	c.bw.Write(obj)
	return c.bw.WriteByte('\n')
}

func (c *protoClient) flush() error {
	if c.ws != nil {
		return nil
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.bw.Flush()
}

// write sends one object now.
func (c *protoClient) write(obj []byte) error {
	if err := c.queue(obj); err != nil {
		return err
	}
	return c.flush()
}

func (c *protoClient) close() {
	if c.ws != nil {
		c.ws.Close()
	} else {
		c.tcp.Close()
	}
}

// expect reads frames until one of type typ, within timeout; an error
// frame (while waiting for something else) fails, pings are answered.
func (c *protoClient) expect(typ string, timeout time.Duration) ([]byte, error) {
	c.setReadDeadline(time.Now().Add(timeout))
	defer c.setReadDeadline(time.Time{})
	for i := 0; i < 1000; i++ {
		f, err := c.next()
		if err != nil {
			return nil, fmt.Errorf("waiting for %s: %w", typ, err)
		}
		switch t := frameType(f); t {
		case typ:
			return f, nil
		case "error":
			return nil, fmt.Errorf("waiting for %s: %s", typ, f)
		case "ping":
			c.write(proto.EncodedPong)
		}
	}
	return nil, fmt.Errorf("waiting for %s: 1000 other frames", typ)
}

// login answers the challenge with key (and a key bundle, base64, if not
// empty) and waits for welcome.
func (c *protoClient) login(key identity.PrivateKey, bundle string) error {
	c.key = key
	if err := c.write(appendLogin(nil, key, c.challenge, bundle)); err != nil {
		return err
	}
	_, err := c.expect("welcome", 20*time.Second)
	return err
}

// appendLogin appends the login object answering challenge with key (and
// a key bundle, base64, if not empty). Signing costs far more than the
// encoding, so it goes through proto.Encode.
func appendLogin(b []byte, key identity.PrivateKey, challenge, bundle string) []byte {
	pub := key.Public()
	login := &proto.Login{Key: pub.String(), Sig: string(proto.AppendHex(nil, identity.SignLogin(key, challenge))), Bundle: bundle}
	obj, _ := proto.Encode(login) // a Login holds only strings: it always encodes
	return append(b, obj...)
}

func (c *protoClient) join(channel, username string) error {
	obj, err := proto.Encode(&proto.Join{Channel: channel, Username: username})
	if err != nil {
		return err
	}
	if err := c.write(obj); err != nil {
		return err
	}
	_, err = c.expect("joined", 20*time.Second)
	return err
}

// appendSend appends the send object for a signed message.
func appendSend(b []byte, m *identity.ChannelMessage) []byte { return proto.AppendSend(b, m) }

var typePrefix = []byte(`{"type":"`)

// frameType returns a node frame's type: proto.Encode, and so the gateway,
// always writes it first.
func frameType(f []byte) string {
	if !bytes.HasPrefix(f, typePrefix) {
		return ""
	}
	rest := f[len(typePrefix):]
	if i := bytes.IndexByte(rest, '"'); i >= 0 {
		return string(rest[:i])
	}
	return ""
}

// isType reports whether f is a frame of type typ without allocating.
func isType(f []byte, typ string) bool {
	if !bytes.HasPrefix(f, typePrefix) {
		return false
	}
	rest := f[len(typePrefix):]
	return len(rest) > len(typ) && string(rest[:len(typ)]) == typ && rest[len(typ)] == '"'
}

// stringField returns the value of a string field with no escapes in it
// (hex, base64, the benchmark's bodies), or nil. Field names are matched
// exactly, as PROTOCOL.md spells them.
func stringField(f []byte, name string) []byte {
	var key [32]byte
	k := append(append(append(key[:0], '"'), name...), `":"`...)
	i := bytes.Index(f, k)
	if i < 0 {
		return nil
	}
	rest := f[i+len(k):]
	if j := bytes.IndexByte(rest, '"'); j >= 0 {
		return rest[:j]
	}
	return nil
}

// Bodies carry a sequence number so that receivers can tell which message
// arrived: "<prefix><seq, 9 digits>" padded with 'x' to bodyLen bytes.
const bodyLen = 100

func makeBody(prefix byte, seq int) string {
	b := make([]byte, 0, bodyLen)
	b = append(b, prefix)
	b = fmt.Appendf(b, "%09d", seq)
	for len(b) < bodyLen {
		b = append(b, 'x')
	}
	return string(b)
}

// bodySeq parses makeBody's output; ok is false for another prefix.
func bodySeq(body []byte, prefix byte) (seq int, ok bool) {
	if len(body) < 10 || body[0] != prefix {
		return 0, false
	}
	for _, c := range body[1:10] {
		if c < '0' || c > '9' {
			return 0, false
		}
		seq = seq*10 + int(c-'0')
	}
	return seq, true
}

// seqSet records which sequence numbers arrived, once each.
type seqSet struct {
	seen   []bool
	unique int
}

func newSeqSet(n int) *seqSet { return &seqSet{seen: make([]bool, n)} }

// add marks seq and reports whether it was new (out-of-range is ignored).
func (s *seqSet) add(seq int) bool {
	if seq < 0 || seq >= len(s.seen) || s.seen[seq] {
		return false
	}
	s.seen[seq] = true
	s.unique++
	return true
}
