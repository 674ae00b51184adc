package p2p

import (
	"fmt"
	"net"
	"net/netip"
	"sync"

	manet "github.com/multiformats/go-multiaddr/net"
)

// publicCIDRMu serialises edits of go-multiaddr's process-wide range tables.
var publicCIDRMu sync.Mutex

// DeclarePublicCIDRs makes addresses inside each prefix count as public
// internet addresses for libp2p's NAT machinery (AutoNAT, hole punching,
// relay and observed-address selection), which otherwise ignores private
// and reserved ranges such as 198.18.0.0/15. Only the declared prefixes are
// carved out of manet's private and unroutable tables; every other address
// keeps its classification, so a LAN behind a testnet router stays private.
//
// The tables are process-wide, so this must be called before any host
// starts; it is meant for testnets and private meshes whose "internet" uses
// such a range.
func DeclarePublicCIDRs(prefixes []netip.Prefix) error {
	publicCIDRMu.Lock()
	defer publicCIDRMu.Unlock()
	for _, p := range prefixes {
		if !p.IsValid() {
			return fmt.Errorf("invalid public CIDR %v", p)
		}
		p = p.Masked()
		if p.Addr().Is4() {
			manet.Private4 = carve(manet.Private4, p)
			manet.Unroutable4 = carve(manet.Unroutable4, p)
		} else {
			manet.Private6 = carve(manet.Private6, p)
			manet.Unroutable6 = carve(manet.Unroutable6, p)
		}
	}
	return nil
}

// carve returns ranges with hole removed: each range that contains hole is
// split into the (at most bits) prefixes covering range \ hole, and each
// range inside hole is dropped.
func carve(ranges []*net.IPNet, hole netip.Prefix) []*net.IPNet {
	out := make([]*net.IPNet, 0, len(ranges))
	for _, r := range ranges {
		rp, ok := prefixOf(r)
		if !ok || !rp.Overlaps(hole) {
			out = append(out, r)
			continue
		}
		if hole.Bits() <= rp.Bits() {
			continue // the whole range becomes public
		}
		for _, piece := range subtract(rp, hole) {
			out = append(out, ipNetOf(piece))
		}
	}
	return out
}

// subtract returns prefixes covering outer \ inner, where inner lies within
// outer: walking down from outer towards inner, each step keeps the sibling
// half that does not contain inner.
func subtract(outer, inner netip.Prefix) []netip.Prefix {
	var out []netip.Prefix
	cur := outer
	for cur.Bits() < inner.Bits() {
		lower := netip.PrefixFrom(cur.Addr(), cur.Bits()+1)
		upper := netip.PrefixFrom(upperHalf(cur), cur.Bits()+1)
		if lower.Overlaps(inner) {
			out = append(out, upper)
			cur = lower
		} else {
			out = append(out, lower)
			cur = upper
		}
	}
	return out
}

// upperHalf returns the first address of the upper half of p.
func upperHalf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	bit := p.Bits() // index of the bit that selects the half
	b[bit/8] |= 0x80 >> (bit % 8)
	a, _ := netip.AddrFromSlice(b)
	return a
}

func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	ip := n.IP
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, _ := n.Mask.Size()
	return netip.PrefixFrom(a, ones).Masked(), true
}

func ipNetOf(p netip.Prefix) *net.IPNet {
	a := p.Addr()
	bits := 32
	if a.Is6() {
		bits = 128
	}
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(p.Bits(), bits)}
}
