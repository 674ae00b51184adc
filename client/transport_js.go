//go:build js && wasm

package client

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"syscall/js"
)

// browserRecvQueue bounds the objects received and not yet read. The
// browser's WebSocket pushes frames with no backpressure, so the queue is
// the only bound. The session's reader drains it as fast as events are
// handled; it fills only if the page stops reading, and then the transport
// fails (as the node disconnects a slow consumer) rather than growing.
const browserRecvQueue = 4096

// jsObject is the global Object constructor.
var jsObject = js.Global().Get("Object")

// errRecvOverflow ends a transport whose reader fell too far behind.
var errRecvOverflow = fmt.Errorf("%w: more than %d objects received and not read", ErrClosed, browserRecvQueue)

// DialWS connects to a node's WebSocket gateway with the browser's own
// WebSocket; rawURL is ws://host:port/ws or wss://…. The browser sends the
// page's Origin, which the node checks.
//
// The browser runs every callback below on its event loop, so none of them
// blocks: they hand frames and state to the Go side through channels.
func DialWS(ctx context.Context, rawURL string) (Transport, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("dial websocket gateway: %w", err)
	}
	if (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return nil, fmt.Errorf("dial websocket gateway: want a ws:// or wss:// URL with a host, got %q", rawURL)
	}
	t := &jsTransport{
		recv:   make(chan []byte, browserRecvQueue),
		opened: make(chan struct{}),
		closed: make(chan struct{}),
	}
	if err := t.open(u.String()); err != nil {
		return nil, fmt.Errorf("dial websocket gateway %s: %w", u.Redacted(), err)
	}
	select {
	case <-t.opened:
		return t, nil
	case <-t.closed:
		err := t.closeReason()
		t.Close()
		return nil, fmt.Errorf("dial websocket gateway %s: %w", u.Redacted(), err)
	case <-ctx.Done():
		t.Close()
		return nil, fmt.Errorf("dial websocket gateway %s: %w", u.Redacted(), context.Cause(ctx))
	}
}

type jsTransport struct {
	ws    js.Value
	funcs []js.Func

	recv   chan []byte
	opened chan struct{}
	closed chan struct{} // closed by markClosed

	mu       sync.Mutex
	isClosed bool
	reason   error // why the connection ended, set by markClosed

	closeOnce sync.Once
}

// open creates the WebSocket and installs its handlers. The constructor
// throws on a malformed URL or a forbidden port; that comes back as an
// error.
func (t *jsTransport) open(rawURL string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if jerr, ok := r.(js.Error); ok {
				err = errors.New(jerr.Error())
				return
			}
			panic(r)
		}
	}()
	t.ws = js.Global().Get("WebSocket").New(rawURL)
	// Binary frames arrive as ArrayBuffers, which are refused below: the
	// protocol sends objects in text frames only.
	t.ws.Set("binaryType", "arraybuffer")
	t.handle("onopen", func(js.Value) { close(t.opened) })
	t.handle("onmessage", t.onMessage)
	t.handle("onclose", func(ev js.Value) {
		reason := ev.Get("reason").String()
		msg := fmt.Sprintf("websocket closed (code %d", ev.Get("code").Int())
		if reason != "" {
			msg += ", " + Sanitize(reason)
		}
		t.markClosed(fmt.Errorf("%w: %s)", ErrClosed, msg))
	})
	// The browser tells a page nothing about why a WebSocket failed (the
	// close event that always follows carries code 1006); the console has
	// the details.
	t.handle("onerror", func(js.Value) {})
	return nil
}

func (t *jsTransport) handle(name string, fn func(ev js.Value)) {
	f := js.FuncOf(func(_ js.Value, args []js.Value) any {
		ev := js.Undefined()
		if len(args) > 0 {
			ev = args[0]
		}
		fn(ev)
		return nil
	})
	t.funcs = append(t.funcs, f)
	t.ws.Set(name, f)
}

func (t *jsTransport) onMessage(ev js.Value) {
	data := ev.Get("data")
	if data.Type() != js.TypeString {
		t.fail(fmt.Errorf("recv: %w: binary frame (objects travel in text frames)", ErrMalformed))
		return
	}
	// A JS string's length counts UTF-16 units, each at least one UTF-8
	// byte, so a string longer than the limit is refused before it is
	// copied into Go. (A primitive string has no properties for syscall/js:
	// Object wraps it.)
	if n := jsObject.Invoke(data).Get("length").Int(); n > MaxRecvSize {
		t.fail(fmt.Errorf("recv: %w: frame over %d bytes", ErrTooLarge, MaxRecvSize))
		return
	}
	b := []byte(data.String())
	if len(b) > MaxRecvSize {
		t.fail(fmt.Errorf("recv: %w: frame over %d bytes", ErrTooLarge, MaxRecvSize))
		return
	}
	select {
	case t.recv <- b:
	default:
		t.fail(errRecvOverflow)
	}
}

// fail ends the connection for reason, from an event handler: it must not
// block, and the handlers stay installed until Close.
func (t *jsTransport) fail(reason error) {
	t.markClosed(reason)
	t.ws.Call("close", 1000)
}

// markClosed records the first reason the connection ended.
func (t *jsTransport) markClosed(reason error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.isClosed {
		return
	}
	t.isClosed, t.reason = true, reason
	close(t.closed)
}

func (t *jsTransport) closeReason() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.reason
}

func (t *jsTransport) Send(ctx context.Context, obj []byte) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	select {
	case <-t.closed:
		return fmt.Errorf("send: %w", t.closeReason())
	default:
	}
	// send queues the frame in the browser and never blocks; it throws
	// only if the socket is not open, which t.closed covers.
	t.ws.Call("send", string(obj))
	return nil
}

func (t *jsTransport) Recv(ctx context.Context) ([]byte, error) {
	// Frames that arrived before the close are returned first.
	select {
	case b := <-t.recv:
		return b, nil
	default:
	}
	select {
	case b := <-t.recv:
		return b, nil
	case <-t.closed:
		select {
		case b := <-t.recv:
			return b, nil
		default:
		}
		return nil, fmt.Errorf("recv: %w", t.closeReason())
	case <-ctx.Done():
		return nil, fmt.Errorf("recv: %w", context.Cause(ctx))
	}
}

// Close closes the WebSocket and releases the handlers. The handlers are
// detached first, so the browser never calls a released function.
func (t *jsTransport) Close() error {
	t.closeOnce.Do(func() {
		t.markClosed(fmt.Errorf("%w by the client", ErrClosed))
		for _, name := range []string{"onopen", "onmessage", "onclose", "onerror"} {
			t.ws.Set(name, js.Null())
		}
		t.ws.Call("close", 1000)
		for _, f := range t.funcs {
			f.Release()
		}
	})
	return nil
}
