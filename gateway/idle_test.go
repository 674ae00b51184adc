package gateway

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// Idle sessions cost no goroutine: a gateway's memory is mostly idle
// sessions, and a goroutine blocked in a read would cost 4–8 KB of stack
// each. They still answer as soon as their client speaks.
func TestIdleSessionsHaveNoGoroutine(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("sessions are watched with epoll on Linux only; elsewhere each has a reader goroutine")
	}
	const perKind = 100
	a := startNode(t, func(c *Config) { c.MaxSessionsPerIP = 4 * perKind })
	var clients []*client
	for i := range 2 * perKind {
		var c *client
		if i%2 == 0 {
			c = dialTCP(t, a.tcpAddr)
		} else {
			c = dialWS(t, a.wsURL)
		}
		c.login()
		c.join("idle", "u")
		clients = append(clients, c)
	}
	// Writers exit once the welcome and joined frames are flushed.
	waitUntil(t, 10*time.Second, "idle sessions to shed their goroutines", func() bool {
		return sessionGoroutines() == 0
	})
	if n := a.gw.Sessions(); n != 2*perKind {
		t.Fatalf("%d sessions open, want %d", n, 2*perKind)
	}
	// Every idle session still reacts: each pings and gets its pong.
	for _, c := range clients {
		c.send(map[string]any{"type": "ping"})
	}
	for _, c := range clients {
		c.expect("pong")
	}
	tcp, ws := clients[0], clients[1]
	tcp.say("idle", "u", "from an idle tcp session")
	if m := ws.expect("message"); m.Body != "from an idle tcp session" {
		t.Fatalf("ws session got %q", m.Body)
	}
}

// A binary WebSocket frame is refused with bad_frame and the session ends;
// other sessions are unaffected.
func TestWebSocketBinaryFrameRefused(t *testing.T) {
	a := startNode(t, nil)
	bad, good := dialWS(t, a.wsURL), dialWS(t, a.wsURL)
	good.login()
	if err := bad.ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	bad.expectError(codeBadFrame)
	bad.expectClosed()
	good.send(map[string]any{"type": "ping"})
	good.expect("pong")
}

// sessionGoroutines counts goroutines running session code (the node's own
// goroutines, such as DM inbox readers, are not the sessions').
func sessionGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("gateway.(*session).")) {
			count++
		}
	}
	return count
}
