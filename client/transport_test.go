//go:build !js

package client

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// pipeTransport returns a line transport on one end of an in-memory pipe
// and the other end for the test to play the node.
func pipeTransport(t *testing.T) (Transport, net.Conn) {
	t.Helper()
	a, b := net.Pipe()
	tr := NewLineTransport(a)
	t.Cleanup(func() { tr.Close(); b.Close() })
	return tr, b
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestLineTransportFraming(t *testing.T) {
	tr, peer := pipeTransport(t)
	ctx := testCtx(t)
	// Lines split across writes and several lines in one write, as a
	// batching node sends them.
	go func() {
		for _, chunk := range []string{`{"a"`, ":1}\n{\"b\":2}\r\n{\"c\"", ":3}\n\n", strings.Repeat("x", MaxRecvSize) + "\r\n"} {
			if _, err := peer.Write([]byte(chunk)); err != nil {
				return
			}
		}
	}()
	for _, want := range []string{`{"a":1}`, `{"b":2}`, `{"c":3}`, ``, strings.Repeat("x", MaxRecvSize)} {
		got, err := tr.Recv(ctx)
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		if string(got) != want {
			t.Fatalf("Recv = %.40q, want %.40q", got, want)
		}
	}
}

func TestLineTransportTooLong(t *testing.T) {
	for _, line := range []string{
		strings.Repeat("x", MaxRecvSize+1) + "\n",   // over the limit, ends in time
		strings.Repeat("x", MaxRecvSize+1) + "\r\n", // the same with CRLF
		strings.Repeat("x", 3*MaxRecvSize),          // never ends
	} {
		tr, peer := pipeTransport(t)
		go peer.Write([]byte(line))
		_, err := tr.Recv(testCtx(t))
		if !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Recv of a %d-byte line: %v, want ErrTooLarge", len(line), err)
		}
		// The stream cannot be resynchronised: the error sticks.
		if _, err := tr.Recv(testCtx(t)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("second Recv: %v, want ErrTooLarge", err)
		}
	}
}

func TestLineTransportCancelKeepsPartialLine(t *testing.T) {
	tr, peer := pipeTransport(t)
	go peer.Write([]byte(`{"half":`))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := tr.Recv(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Recv: %v, want DeadlineExceeded", err)
	}
	go peer.Write([]byte("1}\n"))
	got, err := tr.Recv(testCtx(t))
	if err != nil || string(got) != `{"half":1}` {
		t.Fatalf("Recv after cancel = %q, %v", got, err)
	}
}

func TestLineTransportSend(t *testing.T) {
	tr, peer := pipeTransport(t)
	ctx := testCtx(t)
	go tr.Send(ctx, []byte(`{"type":"ping"}`))
	buf := make([]byte, 64)
	n, err := peer.Read(buf)
	if err != nil || string(buf[:n]) != "{\"type\":\"ping\"}\n" {
		t.Fatalf("peer read %q, %v", buf[:n], err)
	}
	if err := tr.Send(ctx, []byte("a\nb")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Send with a line end: %v, want ErrMalformed", err)
	}
	// Nobody reads: the deadline ends the write.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := tr.Send(short, []byte("{}")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send to a stuck peer: %v, want DeadlineExceeded", err)
	}
}

func TestLineTransportCloseUnblocksRecv(t *testing.T) {
	tr, _ := pipeTransport(t)
	errc := make(chan error, 1)
	go func() { _, err := tr.Recv(context.Background()); errc <- err }()
	tr.Close()
	tr.Close() // idempotent
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("Recv after Close returned no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Recv still blocked after Close")
	}
}

// wsPeer starts an HTTP server whose /ws handler hands each connection to
// serve, and returns its ws:// URL.
func wsPeer(t *testing.T, serve func(*websocket.Conn)) string {
	t.Helper()
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws" || r.Header.Get("Origin") != "" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		serve(c)
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
}

func TestWSTransport(t *testing.T) {
	ctx := testCtx(t)
	url := wsPeer(t, func(c *websocket.Conn) {
		for {
			typ, data, err := c.ReadMessage()
			if err != nil {
				return
			}
			switch string(data) {
			case "big":
				data = bytes.Repeat([]byte("x"), MaxRecvSize+1)
			case "binary":
				typ = websocket.BinaryMessage
			}
			if c.WriteMessage(typ, data) != nil {
				return
			}
		}
	})
	tr, err := DialWS(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if err := tr.Send(ctx, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if got, err := tr.Recv(ctx); err != nil || string(got) != `{"type":"ping"}` {
		t.Fatalf("Recv = %q, %v", got, err)
	}
	tr.Send(ctx, []byte("binary"))
	if _, err := tr.Recv(ctx); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Recv of a binary frame: %v, want ErrMalformed", err)
	}

	tr2, err := DialWS(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer tr2.Close()
	tr2.Send(ctx, []byte("big"))
	if _, err := tr2.Recv(ctx); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Recv of a frame over the limit: %v, want ErrTooLarge", err)
	}
}

func TestDialWSBadURL(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:1/ws", "ws://", "::"} {
		if _, err := DialWS(testCtx(t), u); err == nil {
			t.Errorf("DialWS(%q) succeeded", u)
		}
	}
}

// FuzzLineTransport feeds input in two writes split anywhere (as TCP may
// split it) and checks the lines against a plain split.
func FuzzLineTransport(f *testing.F) {
	f.Add([]byte("{\"a\":1}\n{\"b\":2}\r\n\n"), 3)
	f.Add([]byte("x\r\r\ny"), 2)
	f.Fuzz(func(t *testing.T, data []byte, cut int) {
		if cut < 0 || cut > len(data) {
			cut = len(data) / 2
		}
		a, b := net.Pipe()
		tr := NewLineTransport(a)
		defer tr.Close()
		go func() {
			b.Write(data[:cut])
			b.Write(data[cut:])
			b.Close()
		}()
		segments := bytes.Split(data, []byte("\n"))
		for _, want := range segments[:len(segments)-1] {
			want = bytes.TrimSuffix(want, []byte("\r"))
			got, err := tr.Recv(context.Background())
			if len(want) > MaxRecvSize {
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("line of %d bytes: %v, want ErrTooLarge", len(want), err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("Recv = %q, %v; want %q", got, err, want)
			}
		}
		if _, err := tr.Recv(context.Background()); err == nil {
			t.Fatal("Recv after the last line: no error")
		}
	})
}
