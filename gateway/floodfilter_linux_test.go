package gateway

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// A source that keeps connecting while at its limit has most of its
// connection attempts dropped by the kernel once it has been refused
// FloodRefusals times in a second, on both gateway ports, while another
// address still gets in at once.
func TestFloodFilter(t *testing.T) {
	a := startNode(t, func(c *Config) { c.MaxSessionsPerIP, c.HandshakeTimeout = 4, time.Minute })
	wsAddr := strings.TrimSuffix(strings.TrimPrefix(a.wsURL, "ws://"), "/ws")
	const flooder = "127.0.0.3"
	for range 4 {
		dialIdle(t, wsAddr, flooder, "ws")
	}
	waitUntil(t, 5*time.Second, "the flooder's connections to be accepted", func() bool {
		_, n := a.gw.limiter.counts(netip.MustParseAddr(flooder))
		return n == 4
	})
	// dial reports whether a connection from flooder was set up; a dropped
	// SYN leaves it waiting for the kernel's retry, a second later.
	dial := func(addr string) bool {
		d := localDialer(flooder)
		d.Timeout = 200 * time.Millisecond
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}
	// The node sees the refusals at once but installs the kernel filter
	// from a background loop: a flooder dialling in a tight loop gets
	// more than DefaultFloodRefusals refusals in before it lands, as many
	// as the loop's scheduling allows, so the bound is on time.
	refused, start := 0, time.Now()
	for dial(wsAddr) {
		refused++
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("%d connections from the flooder were set up (and refused) in %v, want its SYNs dropped once it was refused %d times in a second", refused, d, DefaultFloodRefusals)
		}
	}
	if refused < DefaultFloodRefusals {
		t.Fatalf("the flooder's SYNs were dropped after %d refused connections, want none dropped before %d", refused, DefaultFloodRefusals)
	}
	t.Logf("the flooder's SYNs were dropped after %d refused connections, %v", refused, time.Since(start).Round(time.Millisecond))
	// Of 8 more attempts on each port, one in floodPass gets through.
	through := 0
	for _, addr := range []string{wsAddr, a.tcpAddr} {
		for range 8 {
			if dial(addr) {
				through++
			}
		}
	}
	if through > 4 {
		t.Errorf("%d of 16 connection attempts from the flooder got through, want about 1 in %d", through, floodPass)
	}
	for _, gw := range []struct {
		name string
		dial func() *client
	}{
		{"TCP", func() *client { return dialTCPFrom(t, a.tcpAddr, "127.0.0.2") }},
		{"WebSocket", func() *client { return dialWSFrom(t, a.wsURL, "127.0.0.2") }},
	} {
		start := time.Now()
		c := gw.dial()
		c.login()
		if d := time.Since(start); d > time.Second {
			t.Errorf("login on the %s gateway took %v beside the flooder, want at most 1s", gw.name, d)
		}
	}
}
