//go:build !js

package client

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"darkchat/identity"
)

// stalledNodeID is the node's peer ID in the hello of the stalled node
// below (PROTOCOL.md §2.1's example).
const stalledNodeID = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"

// smallSocketBuffer is the kernel buffer size both ends of a stalled
// connection ask for, so that a few objects fill what the kernel holds
// and the client's writer is soon blocked on a node that does not read.
const smallSocketBuffer = 4 << 10

// stalledNode plays a node written from PROTOCOL.md alone that completes
// the login exchange and then never reads again, while it can still send.
type stalledNode struct {
	t     *testing.T
	write func(line []byte) error
}

// send sends one object, given as JSON, to the client.
func (n *stalledNode) send(obj map[string]any) {
	n.t.Helper()
	data, err := json.Marshal(obj)
	if err != nil {
		n.t.Fatal(err)
	}
	if err := n.write(data); err != nil {
		n.t.Fatalf("node send: %v", err)
	}
}

// login answers the client's login to hello with welcome (§2.1–2.3); read
// returns the client's next object.
func (n *stalledNode) login(read func() ([]byte, error)) {
	n.t.Helper()
	challenge, err := identity.NewChallenge(stalledNodeID, time.Now(), time.Minute)
	if err != nil {
		n.t.Fatal(err)
	}
	// A pace the test never reaches: the queue, not the pace, is under test.
	n.send(map[string]any{"type": "hello", "protocol": 1, "node": stalledNodeID, "challenge": challenge,
		"limits": map[string]any{"max_line": 32768, "max_body": identity.MaxBodyLen, "max_channels": 32,
			"rate": 1e6, "burst": 1 << 20}})
	data, err := read()
	if err != nil {
		n.t.Fatalf("node waiting for login: %v", err)
	}
	var login struct{ Type, Key string }
	if err := json.Unmarshal(data, &login); err != nil || login.Type != "login" {
		n.t.Fatalf("node expected login, got %q (%v)", data, err)
	}
	n.send(map[string]any{"type": "welcome", "key": login.Key, "node": stalledNodeID})
}

// startStalledNode connects a session over transport ("tcp" or "ws") to a
// node that logs it in and then stops reading.
func startStalledNode(t *testing.T, transport string, onEvent func(Event)) (*Session, *stalledNode) {
	t.Helper()
	var (
		tr   Transport
		node = &stalledNode{t: t}
		read func() ([]byte, error)
	)
	switch transport {
	case "tcp":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn.(*net.TCPConn).SetWriteBuffer(smallSocketBuffer)
		peer, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { peer.Close() })
		peer.(*net.TCPConn).SetReadBuffer(smallSocketBuffer)
		tr = NewLineTransport(conn)
		r := bufio.NewReader(peer)
		read = func() ([]byte, error) {
			peer.SetReadDeadline(time.Now().Add(10 * time.Second))
			line, err := r.ReadBytes('\n')
			return []byte(strings.TrimSuffix(string(line), "\n")), err
		}
		node.write = func(line []byte) error {
			peer.SetWriteDeadline(time.Now().Add(10 * time.Second))
			_, err := peer.Write(append(line, '\n'))
			return err
		}
	case "ws":
		conns := make(chan *websocket.Conn, 1)
		release := make(chan struct{})
		up := websocket.Upgrader{}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			c.NetConn().(*net.TCPConn).SetReadBuffer(smallSocketBuffer)
			conns <- c
			<-release // the handler returns only when the test ends
		}))
		t.Cleanup(srv.Close) // runs last: after release
		t.Cleanup(func() { close(release) })
		d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				c.(*net.TCPConn).SetWriteBuffer(smallSocketBuffer)
			}
			return c, err
		}}
		conn, _, err := d.DialContext(testCtx(t), "ws"+strings.TrimPrefix(srv.URL, "http")+"/ws", nil)
		if err != nil {
			t.Fatal(err)
		}
		tr = newWSTransport(conn)
		peer := <-conns
		read = func() ([]byte, error) {
			peer.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, data, err := peer.ReadMessage()
			return data, err
		}
		node.write = func(line []byte) error {
			peer.SetWriteDeadline(time.Now().Add(10 * time.Second))
			return peer.WriteMessage(websocket.TextMessage, line)
		}
	default:
		t.Fatalf("unknown transport %q", transport)
	}
	key, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSession(tr, SessionConfig{Key: key, Node: stalledNodeID, OnEvent: onEvent})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	node.login(read)
	if err := s.WaitLogin(testCtx(t)); err != nil {
		t.Fatalf("login: %v", err)
	}
	return s, node
}

// fillPastKernel joins a channel and sends half a queue of the longest
// messages: many times what the kernel holds on the stalled connection, so
// the writer is left blocked with objects still queued. Each Send must
// return at once.
func fillPastKernel(t *testing.T, s *Session) {
	t.Helper()
	ctx := testCtx(t)
	if err := s.Join(ctx, "lobby", "alice"); err != nil {
		t.Fatalf("join: %v", err)
	}
	body := strings.Repeat("x", identity.MaxBodyLen)
	for i := range sendQueue / 2 {
		if _, err := s.Send(ctx, "lobby", body); err != nil {
			t.Fatalf("send %d to a node that stopped reading: %v", i, err)
		}
	}
}

// sendMessageFrom has the node deliver a channel message signed by a key
// of its own (§2.6).
func (n *stalledNode) sendMessageFrom(key identity.PrivateKey, channel, body string) {
	n.t.Helper()
	m, err := identity.NewChannelMessage(key, channel, "bob", body, time.Now())
	if err != nil {
		n.t.Fatal(err)
	}
	n.send(map[string]any{"type": "message", "channel": m.Channel, "username": m.Username,
		"key": m.Author.String(), "body": m.Body, "ts": m.Timestamp,
		"id": hex.EncodeToString(m.ID[:]), "sig": hex.EncodeToString(m.Sig[:])})
}

// eventsOf collects a session's events.
type eventsOf chan Event

func (e eventsOf) on(ev Event) { e <- ev }

// waitFor returns the next event that match accepts, failing the test at
// ctx's end.
func (e eventsOf) waitFor(t *testing.T, ctx context.Context, what string, match func(Event) bool) Event {
	t.Helper()
	for {
		select {
		case ev := <-e:
			if match(ev) {
				return ev
			}
		case <-ctx.Done():
			t.Fatalf("no %s: %v", what, context.Cause(ctx))
			return nil
		}
	}
}

// returnsWithin runs f and fails the test unless it returns within ctx.
func returnsWithin(t *testing.T, ctx context.Context, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatalf("%s hangs on a node that stopped reading", what)
	}
}

// A node that stops reading never freezes the client: while the writer is
// blocked, the reader answers pings without waiting and keeps delivering
// messages, Send keeps returning, and once the queue is full Send fails
// with the session's end, at once; Close returns promptly either way.
func TestSessionOnNodeThatStopsReading(t *testing.T) {
	for _, transport := range []string{"tcp", "ws"} {
		t.Run(transport+"/send fails when the queue is full", func(t *testing.T) {
			ev := make(eventsOf, 4*sendQueue)
			s, node := startStalledNode(t, transport, ev.on)
			fillPastKernel(t, s)

			other, err := identity.GenerateKey()
			if err != nil {
				t.Fatal(err)
			}
			node.send(map[string]any{"type": "ping"})
			node.sendMessageFrom(other, "lobby", "still there?")
			ctx := testCtx(t)
			ev.waitFor(t, ctx, "message delivered while the writer is blocked", func(e Event) bool {
				m, ok := e.(EventMessage)
				return ok && m.Message.Body == "still there?"
			})

			var sendErr error
			returnsWithin(t, ctx, "Send", func() {
				body := strings.Repeat("y", identity.MaxBodyLen)
				for range 2 * sendQueue {
					if _, sendErr = s.Send(ctx, "lobby", body); sendErr != nil {
						return
					}
				}
			})
			if !errors.Is(sendErr, errSendQueueFull) {
				t.Fatalf("Send on a full queue returned %v, want %v", sendErr, errSendQueueFull)
			}
			closed := ev.waitFor(t, ctx, "EventClosed", func(e Event) bool { _, ok := e.(EventClosed); return ok })
			if err := closed.(EventClosed).Err; !errors.Is(err, errSendQueueFull) {
				t.Fatalf("session ended with %v, want %v", err, errSendQueueFull)
			}
			returnsWithin(t, ctx, "Close", func() { s.Close() })
		})
		t.Run(transport+"/close while the writer is blocked", func(t *testing.T) {
			ev := make(eventsOf, 4*sendQueue)
			s, _ := startStalledNode(t, transport, ev.on)
			fillPastKernel(t, s)
			ctx := testCtx(t)
			returnsWithin(t, ctx, "Close", func() { s.Close() })
			closed := ev.waitFor(t, ctx, "EventClosed", func(e Event) bool { _, ok := e.(EventClosed); return ok })
			if err := closed.(EventClosed).Err; err != nil {
				t.Fatalf("a session ended by Close reports %v, want nil", err)
			}
			if _, err := s.Send(ctx, "lobby", "after close"); !errors.Is(err, ErrClosed) {
				t.Fatalf("Send after Close returned %v, want ErrClosed", err)
			}
		})
	}
}
