package main

// In-process tests of gateway.Placeholder, the stand-in the daemon serves
// until the real gateways exist. They live here, beside their only user,
// so the gateway package stays free for the gateway itself.

import (
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"darkchat/gateway"
)

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// serveAsync runs serve(ln) and returns a channel with its result.
func serveAsync(serve func(net.Listener) error, ln net.Listener) <-chan error {
	done := make(chan error, 1)
	go func() { done <- serve(ln) }()
	return done
}

func waitServe(t *testing.T, done <-chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v after Close, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
}

func TestPlaceholderTCP(t *testing.T) {
	var p gateway.Placeholder
	ln := listenLoopback(t)
	done := serveAsync(p.ServeTCP, ln)

	// A client that never reads keeps its connection open; Close must
	// still return promptly.
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()

	for _, send := range []string{"", "hello\n", string(make([]byte, 200<<10))} {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		go io.WriteString(conn, send)
		got := make([]byte, len(gateway.NotImplementedLine))
		if _, err := io.ReadFull(conn, got); err != nil || string(got) != gateway.NotImplementedLine {
			t.Fatalf("after sending %d bytes: %q, %v", len(send), got, err)
		}
		conn.Close()
	}

	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung on an open connection")
	}
	waitServe(t, done)
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Fatal("listener still open after Close")
	}
	// Serving after Close returns at once and closes the listener.
	ln2 := listenLoopback(t)
	if err := p.ServeTCP(ln2); err != nil {
		t.Fatal(err)
	}
	if _, err := ln2.Accept(); err == nil {
		t.Fatal("ServeTCP after Close left the listener open")
	}
}

func TestPlaceholderWS(t *testing.T) {
	var p gateway.Placeholder
	ln := listenLoopback(t)
	done := serveAsync(p.ServeWS, ln)

	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get("http://" + ln.Addr().String() + "/chat")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented || string(body) != gateway.NotImplementedBody {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}

	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	p.Close()
	waitServe(t, done)
	if err := p.ServeWS(listenLoopback(t)); err != nil {
		t.Fatalf("ServeWS after Close: %v", err)
	}
}
