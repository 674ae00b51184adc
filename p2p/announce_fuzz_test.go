package p2p

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// FuzzParseAnnounceAddr: an --announce value is either refused or gives
// addresses that name no peer and that parse back to themselves; ip:port
// gives the TCP and QUIC address of exactly that IP and port.
func FuzzParseAnnounceAddr(f *testing.F) {
	for _, s := range []string{
		"203.0.113.7:4001", "[2001:db8::1]:4001", "[::ffff:203.0.113.7]:4001", "203.0.113.7:0",
		"/ip4/203.0.113.7/tcp/4001", "/ip6/2001:db8::1/udp/4001/quic-v1", "/dns4/node.example/tcp/4001",
		"/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN",
		"/ip4/1.2.3.4/tcp/99999", "node.example:4001", "", "/", "[fe80::1%eth0]:4001",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		addrs, err := ParseAnnounceAddr(s)
		if err != nil {
			if addrs != nil {
				t.Fatalf("ParseAnnounceAddr(%q) refused it (%v) but returned %v", s, err, addrs)
			}
			return
		}
		if len(addrs) == 0 {
			t.Fatalf("ParseAnnounceAddr(%q) accepted it without an address", s)
		}
		for _, a := range addrs {
			if _, err := a.ValueForProtocol(ma.P_P2P); err == nil {
				t.Fatalf("ParseAnnounceAddr(%q) = %v names a peer", s, a)
			}
			back, err := ma.NewMultiaddr(a.String())
			if err != nil || !back.Equal(a) {
				t.Fatalf("%v does not parse back to itself: %v, %v", a, back, err)
			}
		}
		if strings.HasPrefix(s, "/") {
			if len(addrs) != 1 {
				t.Fatalf("ParseAnnounceAddr(%q) = %v, want one address", s, addrs)
			}
			return
		}
		ap := netip.MustParseAddrPort(s)
		if len(addrs) != 2 {
			t.Fatalf("ParseAnnounceAddr(%q) = %v, want TCP and QUIC", s, addrs)
		}
		for i, proto := range []int{ma.P_TCP, ma.P_UDP} {
			port, err := addrs[i].ValueForProtocol(proto)
			if err != nil || port != strconv.Itoa(int(ap.Port())) {
				t.Fatalf("ParseAnnounceAddr(%q)[%d] = %v, want port %d", s, i, addrs[i], ap.Port())
			}
			ip, err := netip.ParseAddr(firstIP(addrs[i]))
			if err != nil || ip != ap.Addr().Unmap() {
				t.Fatalf("ParseAnnounceAddr(%q)[%d] = %v, want IP %v", s, i, addrs[i], ap.Addr())
			}
		}
	})
}

func firstIP(a ma.Multiaddr) string {
	if v, err := a.ValueForProtocol(ma.P_IP4); err == nil {
		return v
	}
	v, _ := a.ValueForProtocol(ma.P_IP6)
	return v
}
