//go:build !linux

package gateway

import (
	"errors"
	"net"
	"syscall"
)

// poller is Linux-only (epoll); elsewhere every session has a blocking
// reader goroutine.
type poller struct{}

func newPoller() (*poller, error) { return nil, errors.New("no poller on this platform") }

func rawConn(net.Conn) (syscall.RawConn, bool) { return nil, false }
func (p *poller) watch(*session) error         { return errors.New("no poller") }
func (p *poller) remove(*session)              {}
func (p *poller) close()                       {}
