package gateway

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// poller watches idle sessions' sockets with one epoll instance so that a
// session needs no goroutine of its own while it waits for its client:
// idle sessions are what a gateway mostly holds, and a goroutine blocked in
// a read costs a 4–8 KB stack each (BENCHMARKS.md, session-memory). A
// session's reader goroutine hands its socket over after readLinger without
// a byte; when the socket becomes readable, the poller starts a reader for
// the session again. EPOLLONESHOT keeps at most one reader per session, so
// requests are still handled in order.
//
// The runtime's own netpoller keeps the socket too (it is edge-triggered
// and serves the writer and active readers); a socket may sit in several
// epoll sets.
type poller struct {
	epfd, wakefd int

	mu       sync.Mutex
	sessions slotTable // a session's poll ID is its slot+1 and generation; 0 is the wake-up eventfd
	closed   bool

	done chan struct{}
}

const pollEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll: %w", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &unix.EpollEvent{Events: unix.EPOLLIN}); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, fmt.Errorf("epoll add: %w", err)
	}
	p := &poller{epfd: epfd, wakefd: wakefd, done: make(chan struct{})}
	go p.run()
	return p, nil
}

// rawConn returns the socket behind c if the poller can watch it: a plain
// TCP socket. TLS connections buffer decrypted bytes the socket's readiness
// does not show, so they keep a blocking reader.
func rawConn(c net.Conn) (syscall.RawConn, bool) {
	tc := tcpOf(c)
	if tc == nil {
		return nil, false
	}
	rc, err := tc.SyscallConn()
	return rc, err == nil
}

// watch hands s's socket to the poller, which starts a reader for s when
// the socket becomes readable. The first call registers the socket.
func (p *poller) watch(s *session) error {
	if s.pollGen != 0 {
		return p.ctl(unix.EPOLL_CTL_MOD, s)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errors.New("poller closed")
	}
	s.pollSlot, s.pollGen = p.sessions.add(s)
	p.mu.Unlock()
	if err := p.ctl(unix.EPOLL_CTL_ADD, s); err != nil {
		p.remove(s)
		return err
	}
	return nil
}

// ctl runs inside RawConn.Control, which holds a reference on the file
// descriptor: a concurrent Close cannot release the number (and let another
// socket reuse it) while epoll is told about it.
func (p *poller) ctl(op int, s *session) error {
	ev := unix.EpollEvent{Events: pollEvents, Fd: s.pollSlot + 1, Pad: int32(s.pollGen)}
	var err error
	if cerr := s.pollConn.Control(func(fd uintptr) {
		err = unix.EpollCtl(p.epfd, op, int(fd), &ev)
	}); cerr != nil {
		return cerr
	}
	return err
}

// remove forgets s. Closing its socket takes it out of the epoll set; a
// readiness event already collected for it finds no session and is dropped.
func (p *poller) remove(s *session) {
	p.mu.Lock()
	if s.pollGen != 0 {
		p.sessions.remove(s.pollSlot, s)
	}
	p.mu.Unlock()
}

func (p *poller) run() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 256)
	for {
		n, err := unix.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return // only a programming error (bad epfd) gets here
		}
		for _, ev := range events[:n] {
			if ev.Fd == 0 {
				return // close woke us
			}
			p.mu.Lock()
			s := p.sessions.get(ev.Fd-1, uint32(ev.Pad))
			p.mu.Unlock()
			if s != nil {
				s.onReadable()
			}
		}
	}
}

// close stops the poller; sessions still registered keep their sockets,
// which their owners close.
func (p *poller) close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	var one [8]byte
	one[0] = 1
	unix.Write(p.wakefd, one[:])
	<-p.done
	unix.Close(p.epfd)
	unix.Close(p.wakefd)
}
