//go:build !linux

package synfilter

import (
	"errors"
	"net"
	"net/netip"
)

// MaxSources bounds the sources one filter takes.
const MaxSources = 800

var errUnsupported = errors.New("no SYN filter on this platform: marked sources are refused at accept like the others")

// Filter is Linux-only (a socket filter); elsewhere marked sources are
// refused at accept like the others.
type Filter struct{ Pass uint32 }

func (f *Filter) Watch(net.Listener) error { return errUnsupported }
func (f *Filter) Set([]netip.Addr)         {}

func SetOnListeners([]int, []netip.Addr, uint32) (int, error) { return 0, errUnsupported }
