package gateway

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// Placeholder stands in for the client gateways until they exist. It answers
// every client at once with a "not implemented" notice and hangs up, so a
// client pointed at a node today fails fast and clearly instead of waiting
// on a silent port.
//
// The caller owns the listeners: it opens them and hands them to ServeTCP
// and ServeWS, which close them when Close is called. A Placeholder's zero
// value is ready to use; it must not be copied after first use.
type Placeholder struct {
	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]struct{}
	servers   map[*http.Server]struct{}
	wg        sync.WaitGroup // per-connection goroutines of ServeTCP
}

// NotImplementedLine is what ServeTCP writes to every connection: one line
// of the client protocol's error shape.
const NotImplementedLine = `{"type":"error","code":"not_implemented","message":"this gateway is not implemented yet"}` + "\n"

// NotImplementedBody is the body of ServeWS's 501 answers.
const NotImplementedBody = "not implemented yet\n"

// Bounds on one placeholder connection. A client gets its answer at once;
// these only stop a client that never reads or never hangs up from holding
// a connection (and a goroutine) open.
const (
	placeholderWriteTimeout = 5 * time.Second
	// placeholderDrainTimeout and placeholderDrainMax bound how long and
	// how much ServeTCP reads from a client after answering. Closing a
	// TCP socket with unread input makes the kernel send RST, and a client
	// that had already sent a line would then lose the answer; reading
	// what the client sent (until it hangs up, within these bounds) lets
	// the answer and the FIN arrive intact.
	placeholderDrainTimeout = 2 * time.Second
	placeholderDrainMax     = 64 << 10
)

// ServeTCP answers each connection accepted on ln with NotImplementedLine and
// closes it. It returns nil after Close, or the listener's error if ln fails
// for another reason. If Close was already called, ln is closed at once.
func (p *Placeholder) ServeTCP(ln net.Listener) error {
	if !p.track(ln) {
		return nil
	}
	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			if p.isClosed() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and similar: back off rather
			// than spin, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !p.trackConn(conn) {
			conn.Close()
			return nil
		}
		go p.answerTCP(conn)
	}
}

func (p *Placeholder) answerTCP(conn net.Conn) {
	defer p.wg.Done()
	defer p.untrackConn(conn)
	defer conn.Close()
	conn.SetWriteDeadline(time.Now().Add(placeholderWriteTimeout))
	if _, err := io.WriteString(conn, NotImplementedLine); err != nil {
		return
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	conn.SetReadDeadline(time.Now().Add(placeholderDrainTimeout))
	io.Copy(io.Discard, io.LimitReader(conn, placeholderDrainMax))
}

// ServeWS answers every HTTP request on ln (WebSocket upgrades included)
// with 501 Not Implemented and NotImplementedBody. It returns nil after
// Close. If Close was already called, ln is closed at once.
func (p *Placeholder) ServeWS(ln net.Listener) error {
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusNotImplemented)
			io.WriteString(w, NotImplementedBody)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       10 * time.Second,
		MaxHeaderBytes:    8 << 10,
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		ln.Close()
		return nil
	}
	if p.servers == nil {
		p.servers = make(map[*http.Server]struct{})
	}
	p.servers[srv] = struct{}{}
	p.mu.Unlock()

	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) || p.isClosed() {
		return nil
	}
	return err
}

// Close closes every listener handed to the Placeholder and every open
// connection, and waits for the connection goroutines to finish. It is
// idempotent.
func (p *Placeholder) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	for ln := range p.listeners {
		ln.Close()
	}
	for c := range p.conns {
		c.Close()
	}
	servers := p.servers
	p.mu.Unlock()

	for srv := range servers {
		srv.Close() // closes its listener and connections
	}
	p.wg.Wait()
	return nil
}

func (p *Placeholder) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// track registers ln for Close; it reports false (and closes ln) after Close.
func (p *Placeholder) track(ln net.Listener) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		ln.Close()
		return false
	}
	if p.listeners == nil {
		p.listeners = make(map[net.Listener]struct{})
	}
	p.listeners[ln] = struct{}{}
	return true
}

// trackConn registers conn and its goroutine; it reports false after Close.
func (p *Placeholder) trackConn(conn net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	if p.conns == nil {
		p.conns = make(map[net.Conn]struct{})
	}
	p.conns[conn] = struct{}{}
	p.wg.Add(1)
	return true
}

func (p *Placeholder) untrackConn(conn net.Conn) {
	p.mu.Lock()
	delete(p.conns, conn)
	p.mu.Unlock()
}
