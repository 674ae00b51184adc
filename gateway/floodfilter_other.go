//go:build !linux

package gateway

import (
	"errors"
	"net"
	"net/netip"
)

// floodFilter is Linux-only (a socket filter); elsewhere flooding sources
// are refused at accept like the others.
type floodFilter struct{}

func (f *floodFilter) watch(net.Listener) error {
	return errors.New("no flood filter on this platform")
}
func (f *floodFilter) set([]netip.Addr) {}
