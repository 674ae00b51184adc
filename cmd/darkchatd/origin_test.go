package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// A node started with --ws-origin serves pages at that origin, and refuses
// other sites' pages. DARKCHAT_WS_ORIGIN is set too: the command line
// replaces it, so its origin is refused as well.
func TestWSOriginFlag(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "node", daemonSpec{
		args: nodeArgs(t, "websock", "--ws-origin", "https://chat.example"),
		env:  []string{"DARKCHAT_WS_ORIGIN=https://old.example"},
	})
	dialer := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	dial := func(origin string) (*websocket.Conn, *http.Response, error) {
		return dialer.Dial(d.wsURL+"ws", http.Header{"Origin": {origin}})
	}

	ws, _, err := dial("https://chat.example")
	if err != nil {
		t.Fatalf("handshake from https://chat.example: %v", err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, msg, err := ws.ReadMessage(); err != nil || !strings.Contains(string(msg), `"hello"`) {
		t.Fatalf("session from https://chat.example: got %q, %v; want the node's hello", msg, err)
	}

	for _, origin := range []string{"https://evil.example", "https://old.example", "http://chat.example"} {
		ws, resp, err := dial(origin)
		if err == nil {
			ws.Close()
			t.Errorf("handshake from %s accepted", origin)
			continue
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("handshake from %s: %v (response %v), want 403 Forbidden", origin, err, resp)
		}
	}
}
