package gateway

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"darkchat/identity"
	"darkchat/p2p"
	"darkchat/proto"
)

// testNode is a real mesh node with both gateways on loopback.
type testNode struct {
	node    *p2p.Node
	gw      *Server
	tcpAddr string
	wsURL   string
}

func startNode(t testing.TB, edit func(*Config)) *testNode {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	node, err := p2p.New(p2p.Config{
		Key:      key,
		ListenIP: netip.MustParseAddr("127.0.0.1"),
		// Some tests send fast under one key; TestChannelValidatorLimitsEachAuthor
		// covers the author limit.
		Validator:       ChannelValidator(nil, DefaultTimestampWindow, AuthorLimit{}, nil),
		InboxValidator:  InboxValidator(),
		BundleValidator: BundleValidator{},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{}
	if edit != nil {
		edit(&cfg)
	}
	gw, err := New(cfg, node, node.ID().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	n := serveTCP(t, node, gw)
	wl, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gw.ServeWS(wl)
	n.wsURL = "ws://" + wl.Addr().String() + "/ws"
	return n
}

// serveTCP serves gw's TCP gateway on a loopback port; the test's cleanup
// closes gw, then node.
func serveTCP(t testing.TB, node *p2p.Node, gw *Server) *testNode {
	t.Helper()
	tl, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gw.ServeTCP(tl)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		gw.Close(ctx)
		node.Close()
	})
	return &testNode{node: node, gw: gw, tcpAddr: tl.Addr().String()}
}

func linkNodes(t testing.TB, a, b *testNode) {
	t.Helper()
	info := peer.AddrInfo{ID: b.node.ID(), Addrs: b.node.Host().Addrs()}
	if err := a.node.Host().Connect(t.Context(), info); err != nil {
		t.Fatal(err)
	}
}

// client speaks the protocol over TCP or WebSocket, as PROTOCOL.md says.
type client struct {
	t     testing.TB
	tcp   net.Conn
	r     *bufio.Reader
	ws    *websocket.Conn
	key   identity.PrivateKey
	hello proto.Hello
	stash []frame // frames read while waiting for another type
}

func dialTCP(t testing.TB, addr string) *client {
	t.Helper()
	return dialTCPFrom(t, addr, "")
}

// dialTCPFrom connects from the loopback address local ("" for any): the
// whole of 127.0.0.0/8 is local on Linux, so tests can be several source
// IPs.
func dialTCPFrom(t testing.TB, addr, local string) *client {
	t.Helper()
	c, err := localDialer(local).Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cl := &client{t: t, tcp: c, r: bufio.NewReaderSize(c, 64<<10)}
	t.Cleanup(func() { c.Close() })
	cl.readHello()
	return cl
}

func dialWS(t testing.TB, url string) *client {
	t.Helper()
	return dialWSFrom(t, url, "")
}

func dialWSFrom(t testing.TB, url, local string) *client {
	t.Helper()
	d := websocket.Dialer{NetDialContext: localDialer(local).DialContext, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	cl := &client{t: t, ws: ws}
	cl.readHello()
	return cl
}

func (c *client) readHello() {
	c.t.Helper()
	m := c.expect("hello")
	if err := json.Unmarshal(m.raw, &c.hello); err != nil {
		c.t.Fatal(err)
	}
	key, err := identity.GenerateKey()
	if err != nil {
		c.t.Fatal(err)
	}
	c.key = key
}

func (c *client) sendRaw(line string) {
	c.t.Helper()
	var err error
	if c.ws != nil {
		err = c.ws.WriteMessage(websocket.TextMessage, []byte(line))
	} else {
		_, err = c.tcp.Write([]byte(line + "\n"))
	}
	if err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) send(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendRaw(string(b))
}

type frame struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	ID      string `json:"id"`
	Channel string `json:"channel"`
	User    string `json:"username"`
	Key     string `json:"key"`
	Body    string `json:"body"`
	raw     []byte
}

// next reads the next frame, failing the test after timeout.
func (c *client) next(timeout time.Duration) (frame, error) {
	var data []byte
	var err error
	if c.ws != nil {
		c.ws.SetReadDeadline(time.Now().Add(timeout))
		_, data, err = c.ws.ReadMessage()
	} else {
		c.tcp.SetReadDeadline(time.Now().Add(timeout))
		var line string
		line, err = c.r.ReadString('\n')
		data = []byte(strings.TrimSuffix(line, "\n"))
	}
	if err != nil {
		return frame{}, err
	}
	var f frame
	if err := json.Unmarshal(data, &f); err != nil {
		return frame{}, fmt.Errorf("bad frame %q: %v", data, err)
	}
	f.raw = data
	return f, nil
}

// expect returns the first frame of type typ, from frames read earlier
// and set aside or from the connection; other frames are set aside (pings
// are dropped).
func (c *client) expect(typ string) frame {
	c.t.Helper()
	return c.expectOneOf(typ)
}

// expectOneOf is expect for the first frame of any of types, in the
// order they came; an error frame fails the test unless "error" is one of
// types.
func (c *client) expectOneOf(types ...string) frame {
	c.t.Helper()
	for i, f := range c.stash {
		if slices.Contains(types, f.Type) {
			c.stash = append(c.stash[:i], c.stash[i+1:]...)
			return f
		}
	}
	for {
		f, err := c.next(10 * time.Second)
		if err != nil {
			c.t.Fatalf("waiting for %v: %v (set aside: %d frames)", types, err, len(c.stash))
		}
		switch {
		case slices.Contains(types, f.Type):
			return f
		case f.Type == "ping":
		case f.Type == "error":
			c.t.Fatalf("waiting for %v, got error %s", types, f.raw)
		default:
			c.stash = append(c.stash, f)
		}
	}
}

// assertNoMore fails if any frame of type typ was set aside or arrives
// before a ping round trip completes.
func (c *client) assertNoMore(typ string) {
	c.t.Helper()
	c.assertNoMoreOf(typ, "")
}

// assertNoMoreOf is assertNoMore for the frames whose id is id ("": any):
// on two linked nodes, the nodes' own repair requests may come at any
// time.
func (c *client) assertNoMoreOf(typ, id string) {
	c.t.Helper()
	c.send(map[string]any{"type": "ping"})
	c.expect("pong")
	for _, f := range c.stash {
		if f.Type == typ && (id == "" || f.ID == id) {
			c.t.Fatalf("unexpected %s", f.raw)
		}
	}
}

func (c *client) expectError(code string) frame {
	c.t.Helper()
	f := c.expect("error")
	if f.Code != code {
		c.t.Fatalf("got error %s (%s), want %s", f.Code, f.Message, code)
	}
	return f
}

// expectClosed reads until the connection ends, failing on a timeout.
func (c *client) expectClosed() {
	c.t.Helper()
	for {
		_, err := c.next(10 * time.Second)
		if err == nil {
			continue
		}
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			c.t.Fatal("connection still open")
		}
		return
	}
}

func (c *client) loginMsg() map[string]any {
	return map[string]any{"type": "login", "key": c.key.Public().String(),
		"sig": hex.EncodeToString(identity.SignLogin(c.key, c.hello.Challenge))}
}

func (c *client) login() {
	c.t.Helper()
	c.send(c.loginMsg())
	c.expect("welcome")
}

func (c *client) join(channel, user string) {
	c.t.Helper()
	c.send(map[string]any{"type": "join", "channel": channel, "username": user})
	c.expect("joined")
}

// sendMsg signs body with signer (the client's key if nil) and sends it.
func (c *client) sendMsg(channel, user, body string, signer *identity.PrivateKey) string {
	c.t.Helper()
	key := c.key
	if signer != nil {
		key = *signer
	}
	m, err := identity.NewChannelMessage(key, channel, user, body, time.Now())
	if err != nil {
		c.t.Fatal(err)
	}
	id := hex.EncodeToString(m.ID[:])
	c.send(map[string]any{"type": "send", "channel": channel, "username": user, "body": body,
		"ts": m.Timestamp, "id": id, "sig": hex.EncodeToString(m.Sig[:])})
	return id
}

// say sends a message and waits for its ok.
func (c *client) say(channel, user, body string) {
	c.t.Helper()
	id := c.sendMsg(channel, user, body, nil)
	if f := c.expect("ok"); f.ID != id {
		c.t.Fatalf("ok for %s, want %s", f.ID, id)
	}
}

// localDialer dials from local ("" for any address).
func localDialer(local string) *net.Dialer {
	d := &net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	return d
}

func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// dialRaw connects and returns the first line the server sends.
func dialRaw(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return line, err
}

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}
