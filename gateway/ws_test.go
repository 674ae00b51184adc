package gateway

import (
	"crypto/tls"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestCheckOrigin follows RFC 6455 §10.2: browsers always send Origin, so
// only the page's own origin and configured ones may open sessions.
func TestCheckOrigin(t *testing.T) {
	for _, tc := range []struct {
		host, origin string
		allowed      []string
		want         bool
	}{
		{"chat.example:8546", "", nil, true}, // not a browser
		{"chat.example:8546", "http://chat.example:8546", nil, true},
		{"chat.example:8546", "https://CHAT.example:8546", nil, true},
		{"chat.example:8546", "http://evil.example", nil, false},
		{"chat.example:8546", "http://chat.example:9999", nil, false},
		{"chat.example:8546", "http://evil.example", []string{"http://evil.example"}, true},
		{"chat.example:8546", "http://other.example", []string{"*"}, true},
		{"chat.example:8546", "::not a url", nil, false},
	} {
		s := &Server{cfg: Config{AllowedOrigins: tc.allowed}}
		r := httptest.NewRequest("GET", "http://"+tc.host+"/ws", nil)
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if got := s.checkOrigin(r); got != tc.want {
			t.Errorf("host %s origin %q allowed %v: got %v", tc.host, tc.origin, tc.allowed, got)
		}
	}
}

func TestCrossOriginWebSocketRefused(t *testing.T) {
	a := startNode(t, nil)
	h := map[string][]string{"Origin": {"http://evil.example"}}
	if _, resp, err := websocket.DefaultDialer.Dial(a.wsURL, h); err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("cross-origin handshake: err=%v resp=%v", err, resp)
	}
	if a.gw.Sessions() != 0 {
		t.Fatal("a refused handshake left a session")
	}
}

// A silent session is pinged, and closed when it stays silent.
func TestIdleSessionPingedThenClosed(t *testing.T) {
	a := startNode(t, func(c *Config) { c.IdlePing = 200 * time.Millisecond; c.IdleTimeout = time.Second })
	c := dialTCP(t, a.tcpAddr)
	c.login()
	f, err := c.next(5 * time.Second)
	if err != nil || f.Type != "ping" {
		t.Fatalf("got %s, %v; want a ping", f.raw, err)
	}
	c.send(map[string]any{"type": "pong"})
	// Answering keeps it open past the timeout; then silence closes it.
	var sawIdle bool
	for {
		f, err := c.next(5 * time.Second)
		if err != nil {
			break
		}
		if f.Code == codeIdleTimeout {
			sawIdle = true
		}
	}
	if !sawIdle {
		t.Fatal("no idle_timeout notice before the close")
	}
}

// The WebSocket gateway serves wss when given a certificate.
func TestWebSocketOverTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS() // only to borrow a self-signed certificate
	cert := srv.TLS.Certificates
	srv.Close()
	a := startNode(t, func(c *Config) { c.TLS = &tls.Config{Certificates: cert} })
	d := websocket.Dialer{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	if _, _, err := websocket.DefaultDialer.Dial(a.wsURL, nil); err == nil {
		t.Fatal("plain ws accepted by a TLS gateway")
	}
	ws, _, err := d.Dial("wss"+strings.TrimPrefix(a.wsURL, "ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, msg, err := ws.ReadMessage(); err != nil || len(msg) == 0 || msg[0] != '{' {
		t.Fatalf("hello over wss: %q %v", msg, err)
	}
}

// A WebSocket session ends with the close code that fits why (RFC 6455
// §7.4.1), after the error object that names it; a client's close frame is
// answered with its own code.
func TestWebSocketCloseCodes(t *testing.T) {
	a := startNode(t, func(c *Config) { c.MaxLine = 2048; c.LoginTimeout = 300 * time.Millisecond })
	for _, tc := range []struct {
		name    string
		act     func(t *testing.T, c *client)
		errCode string // the error object before the close, if any
		close   int
	}{
		{"invalid UTF-8", func(t *testing.T, c *client) {
			c.ws.WriteMessage(websocket.TextMessage, []byte("{\"type\":\"ping\",\"x\":\"\xff\"}"))
		}, codeBadFrame, websocket.CloseInvalidFramePayloadData},
		{"binary", func(t *testing.T, c *client) {
			c.ws.WriteMessage(websocket.BinaryMessage, []byte{1})
		}, codeBadFrame, websocket.CloseUnsupportedData},
		{"unmasked frame", func(t *testing.T, c *client) {
			c.ws.NetConn().Write([]byte{0x81, 0x01, 'x'})
		}, codeBadFrame, websocket.CloseProtocolError},
		{"reserved bit", func(t *testing.T, c *client) {
			c.ws.NetConn().Write(append([]byte{0xc1}, clientFrame(true, opText, []byte("x"))[1:]...))
		}, codeBadFrame, websocket.CloseProtocolError},
		{"too large", func(t *testing.T, c *client) {
			c.ws.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 3000)))
		}, codeTooLarge, websocket.CloseMessageTooBig},
		{"login timeout", func(t *testing.T, c *client) {}, codeLoginTimeout, websocket.ClosePolicyViolation},
		{"too many errors", func(t *testing.T, c *client) {
			for range maxErrors {
				c.sendRaw("junk")
			}
		}, codeTooManyErrors, websocket.ClosePolicyViolation},
		{"client closes", func(t *testing.T, c *client) {
			c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4000, "bye"), time.Now().Add(time.Second))
		}, "", 4000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialWS(t, a.wsURL)
			tc.act(t, c)
			expectWSClose(t, c, tc.errCode, tc.close)
		})
	}
	t.Run("shutdown", func(t *testing.T) {
		c := dialWS(t, a.wsURL)
		c.login()
		ctx, cancel := contextWithTimeout(5 * time.Second)
		defer cancel()
		if err := a.gw.Close(ctx); err != nil {
			t.Fatal(err)
		}
		expectWSClose(t, c, codeShutdown, websocket.CloseGoingAway)
	})
}

// expectWSClose reads until the node closes the WebSocket, and checks the
// last error object's code (none if errCode is "") and the close code.
func expectWSClose(t *testing.T, c *client, errCode string, code int) {
	t.Helper()
	var last frame
	for range 1000 {
		f, err := c.next(10 * time.Second)
		if err == nil {
			if f.Type == "error" {
				last = f
			}
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("connection ended with %v, want close code %d", err, code)
		}
		if ce.Code != code {
			t.Errorf("close code %d (%q), want %d", ce.Code, ce.Text, code)
		}
		if last.Code != errCode {
			t.Errorf("last error %q (%s), want %q", last.Code, last.Message, errCode)
		}
		return
	}
	t.Fatal("no close frame after 1000 frames")
}
