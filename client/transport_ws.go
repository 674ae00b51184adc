//go:build !js

package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// wsCloseTimeout bounds the close handshake: Close sends a close frame so
// the node sees a clean end, but never waits long on a dead peer.
const wsCloseTimeout = time.Second

// DialWS connects to a node's WebSocket gateway; rawURL is ws://host:port/ws
// or wss://…. No Origin header is sent: the node's origin check is for
// browsers, and a non-browser client has no origin to claim.
func DialWS(ctx context.Context, rawURL string) (Transport, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("dial websocket gateway: %w", err)
	}
	if (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return nil, fmt.Errorf("dial websocket gateway: want a ws:// or wss:// URL with a host, got %q", rawURL)
	}
	d := websocket.Dialer{
		Proxy: http.ProxyFromEnvironment,
		// Objects are small; gorilla's default 4 KB buffers would be wasted.
		ReadBufferSize:  1024,
		WriteBufferSize: 1024,
	}
	conn, resp, err := d.DialContext(ctx, u.String(), nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial websocket gateway %s: %w (HTTP %s)", u.Redacted(), err, resp.Status)
		}
		return nil, fmt.Errorf("dial websocket gateway %s: %w", u.Redacted(), err)
	}
	return newWSTransport(conn), nil
}

// newWSTransport returns the transport on a connection whose handshake is
// done.
func newWSTransport(conn *websocket.Conn) *wsTransport {
	// A frame over the limit fails the read and closes the connection with
	// "message too big", as PROTOCOL.md's too_large does on the node side.
	conn.SetReadLimit(MaxRecvSize)
	return &wsTransport{conn: conn}
}

type wsTransport struct {
	conn *websocket.Conn

	writeMu sync.Mutex

	closeOnce sync.Once
	closeErr  error
}

func (t *wsTransport) Send(ctx context.Context, obj []byte) error {
	t.writeMu.Lock()
	defer t.writeMu.Unlock()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("send: %w", context.Cause(ctx))
	}
	// gorilla applies a write deadline to the socket only when a frame's
	// write begins, so moving it into the past cannot stop a write that
	// is blocked on a node that does not read. Cancellation closes the
	// socket instead: the transport is unusable after a cancelled Send
	// anyway (see Transport).
	deadline, _ := ctx.Deadline() // zero: no deadline
	t.conn.SetWriteDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { t.conn.NetConn().Close() })
	defer stop()
	if err := t.conn.WriteMessage(websocket.TextMessage, obj); err != nil {
		return fmt.Errorf("send: %w", ctxErr(ctx, err))
	}
	return nil
}

func (t *wsTransport) Recv(ctx context.Context) ([]byte, error) {
	release := bindDeadline(ctx, t.conn.SetReadDeadline)
	defer release()
	typ, data, err := t.conn.ReadMessage()
	if err != nil {
		if err == websocket.ErrReadLimit {
			return nil, fmt.Errorf("recv: %w: frame over %d bytes", ErrTooLarge, MaxRecvSize)
		}
		return nil, fmt.Errorf("recv: %w", ctxErr(ctx, err))
	}
	if typ != websocket.TextMessage {
		return nil, fmt.Errorf("recv: %w: binary frame (objects travel in text frames)", ErrMalformed)
	}
	return data, nil
}

func (t *wsTransport) Close() error {
	t.closeOnce.Do(func() {
		// WriteControl may run concurrently with a blocked Send (gorilla
		// allows it), so Close never waits for the write lock.
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		t.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(wsCloseTimeout))
		t.closeErr = t.conn.Close()
	})
	return t.closeErr
}
