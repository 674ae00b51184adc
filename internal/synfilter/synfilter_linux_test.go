package synfilter

import (
	"net/netip"
	"testing"
)

// The program for MaxSources sources, all IPv6 (the longest), fits the
// kernel's limit. (The gateway's and p2p's tests run filters on real
// sockets.)
func TestProgramSize(t *testing.T) {
	var srcs []netip.Addr
	for i := range MaxSources {
		srcs = append(srcs, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, byte(i >> 8), byte(i)}))
	}
	for _, kind := range []Kind{TCP, QUIC} {
		if n := len(Program(kind, srcs, 64)); n > 4096 {
			t.Fatalf("%d instructions for %d IPv6 sources, the kernel takes 4096", n, len(srcs))
		}
	}
}
