package p2p

import (
	"net"
	"net/netip"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

func TestDeclarePublicCIDRs(t *testing.T) {
	saved := [4]any{manet.Private4, manet.Unroutable4, manet.Private6, manet.Unroutable6}
	t.Cleanup(func() {
		manet.Private4, manet.Unroutable4 = saved[0].([]*net.IPNet), saved[1].([]*net.IPNet)
		manet.Private6, manet.Unroutable6 = saved[2].([]*net.IPNet), saved[3].([]*net.IPNet)
	})

	public := func(s string) bool { return manet.IsPublicAddr(ma.StringCast(s)) }
	if public("/ip4/198.18.0.5/tcp/1") {
		t.Fatal("198.18.0.5 public before declaring it")
	}
	if err := DeclarePublicCIDRs([]netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")}); err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"/ip4/198.18.0.5/tcp/1":     true,  // declared internet
		"/ip4/198.18.0.255/tcp/1":   true,  // its last address
		"/ip4/198.18.1.1/tcp/1":     false, // rest of 198.18.0.0/15 stays reserved
		"/ip4/198.19.3.2/tcp/1":     false, // a LAN behind a testnet router
		"/ip4/192.168.1.1/tcp/1":    false,
		"/ip4/127.0.0.1/tcp/1":      false,
		"/ip4/8.8.8.8/udp/1":        true,
		"/ip6/2001:db8::1/tcp/1":    false,
		"/ip4/198.17.255.255/tcp/1": true,
	} {
		if got := public(addr); got != want {
			t.Errorf("IsPublicAddr(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestSubtractCoversExactlyTheRest(t *testing.T) {
	outer := netip.MustParsePrefix("198.18.0.0/15")
	inner := netip.MustParsePrefix("198.18.7.0/24")
	pieces := subtract(outer, inner)
	if len(pieces) != inner.Bits()-outer.Bits() {
		t.Fatalf("got %d pieces, want %d", len(pieces), inner.Bits()-outer.Bits())
	}
	for _, probe := range []string{"198.18.0.0", "198.18.6.255", "198.18.8.0", "198.19.255.255", "198.18.7.0", "198.18.7.255"} {
		a := netip.MustParseAddr(probe)
		covered := 0
		for _, p := range pieces {
			if p.Contains(a) {
				covered++
			}
		}
		want := 1
		if inner.Contains(a) {
			want = 0
		}
		if covered != want {
			t.Errorf("%s covered %d times, want %d", probe, covered, want)
		}
	}
}
