// The test binary's listeners are plain TCP, as darkchatd's are: the
// kernel takes no socket filter on a Multipath TCP one.
//
//go:debug multipathtcp=0
package p2p

import (
	"net"
	"strconv"
	"testing"
	"time"
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
	// from the node past that); the filter follows the first refusal.
	setUp := 0
	for dial(suspect) {
		if setUp++; setUp > 20*suspectAcceptBurst {
			t.Fatalf("%d connections from the suspect address were set up, want its SYNs thinned out after %d", setUp, suspectAcceptBurst)
		}
	}
	t.Logf("the suspect address's SYNs were dropped after %d connections", setUp)
	through := 0
	for range 16 {
		if dial(suspect) {
			through++
		}
	}
	if through > 8 {
		t.Errorf("%d of 16 connection attempts from the suspect address got through, want about 1 in %d", through, thinnedSYNPass)
	}
	start := time.Now()
	if !dial("127.0.0.6") {
		t.Fatal("another address could not connect to the peer port")
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("another address took %v to connect, want at once", d)
	}
}
