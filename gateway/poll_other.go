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

func rawConn(net.Conn) (syscall.RawConn, bool)        { return nil, false }
func (p *poller) add(*session, syscall.RawConn) error { return errors.New("no poller") }
func (p *poller) rearm(*session) error                { return errors.New("no poller") }
func (p *poller) remove(*session)                     {}
func (p *poller) close()                              {}

func readNow(syscall.RawConn, []byte) (int, error) { return 0, errors.New("no poller") }
