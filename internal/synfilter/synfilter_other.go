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

// Kind is the kind of socket a filter is for.
type Kind int

const (
	TCP Kind = iota
	QUIC
)

func SetOnSockets(Kind, []int, []netip.Addr, uint32) (int, error) { return 0, errUnsupported }
