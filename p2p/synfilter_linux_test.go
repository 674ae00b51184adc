// The test binary's listeners are plain TCP, as darkchatd's are: the
// kernel takes no socket filter on a Multipath TCP one.
//
//go:debug multipathtcp=0
package p2p

import (
	"crypto/rand"
	"net"
	"strconv"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

// An address whose peers were banned and that keeps connecting past its
// accept budget has its SYNs thinned out in the kernel on the peer port:
// most of its connection attempts wait for a retransmission, while
// another address still connects at once.
func TestSuspectAddressSYNsThinned(t *testing.T) {
	victim := newTestNode(t, nil)
	port := tcpAddr(t, victim).Port()
	addr := "127.0.0.1:" + strconv.Itoa(int(port))
	const suspect = "127.0.0.5"
	victim.guard.mu.Lock()
	victim.guard.ipBans[suspect] = &ipBanCount{n: suspectIPBans, last: time.Now()}
	victim.guard.mu.Unlock()

	// dial reports whether a TCP connection from src was set up; a
	// dropped SYN leaves it waiting for its kernel's retry, a second later.
	dial := func(src string) bool {
		d := net.Dialer{Timeout: 300 * time.Millisecond, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	// The first suspectAcceptBurst get their handshake (and a refusal
	// from the node past that); the filter follows the first refusal, as
	// soon as the node's filter loop has found its listening sockets (a
	// scan of the process's descriptors, slower under the race detector).
	setUp, start := 0, time.Now()
	for dial(suspect) {
		setUp++
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("%d connections from the suspect address were set up in %v, want its SYNs thinned out after %d", setUp, d, suspectAcceptBurst)
		}
	}
	t.Logf("the suspect address's SYNs were dropped after %d connections (%v)", setUp, time.Since(start))
	through := 0
	for range 16 {
		if dial(suspect) {
			through++
		}
	}
	if through > 8 {
		t.Errorf("%d of 16 connection attempts from the suspect address got through, want about 1 in %d", through, thinnedSYNPass)
	}
	start = time.Now()
	if !dial("127.0.0.6") {
		t.Fatal("another address could not connect to the peer port")
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("another address took %v to connect, want at once", d)
	}
}

// The same on the QUIC port: the suspect address's Initial packets are
// thinned out. A 1,200-byte long-header Initial of a version the node
// does not speak gets a Version Negotiation packet back (RFC 9000 §6),
// which shows what reaches QUIC without a handshake.
func TestSuspectAddressQUICInitialsThinned(t *testing.T) {
	victim := newTestNode(t, nil)
	var port int
	for _, a := range victim.Host().Network().ListenAddresses() {
		if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil {
			v, _ := a.ValueForProtocol(ma.P_UDP)
			port, _ = strconv.Atoi(v)
		}
	}
	if port == 0 {
		t.Fatal("the node listens on no QUIC port")
	}
	dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	// answered reports whether an Initial from src got an answer.
	answered := func(src string) bool {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(src)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		pkt := make([]byte, 1200)
		pkt[0] = 0xc0                                  // long header, Initial
		copy(pkt[1:5], []byte{0x1a, 0x2a, 0x3a, 0x4a}) // a version reserved for negotiation
		pkt[5] = 8                                     // destination connection ID length
		rand.Read(pkt[6:14])
		if _, err := c.WriteToUDP(pkt, dst); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 1500)
		n, _, err := c.ReadFromUDP(buf)
		return err == nil && n > 0
	}
	if !answered("127.0.0.6") {
		t.Fatal("the node does not answer an Initial of an unknown version; the test cannot see what is filtered")
	}
	const suspect = "127.0.0.5"
	victim.guard.mu.Lock()
	victim.guard.ipBans[suspect] = &ipBanCount{n: suspectIPBans, last: time.Now(), thinned: true}
	victim.guard.mu.Unlock()
	select {
	case victim.guard.thinnedChanged <- struct{}{}:
	default:
	}
	waitFor(t, 5*time.Second, "the suspect address's Initials to go unanswered", func() bool { return !answered(suspect) })
	through := 0
	for range 16 {
		if answered(suspect) {
			through++
		}
	}
	if through > 8 {
		t.Errorf("%d of 16 Initials from the suspect address were answered, want about 1 in %d", through, thinnedSYNPass)
	}
	if !answered("127.0.0.6") {
		t.Error("another address's Initial went unanswered")
	}
}
