// Package synfilter thins out, in the kernel, the connection attempts of
// sources a listener has marked as abusive: it lets one in Pass of their
// TCP SYNs (or QUIC Initial packets) through, at random. It is a classic
// BPF socket filter on each listening socket, replaced whenever the set of
// sources changes. A socket's filter sees every packet the socket
// receives before a connection enters its queues; only those that open a
// connection are dropped, so connections already set up (on TCP they
// inherit the filter) are never affected. A dropped SYN or Initial costs
// the source's stack a retransmission timeout (a second and more for TCP,
// a few hundred milliseconds and more for QUIC) and the node nothing: a
// source that reconnects in a loop the moment it is refused waits instead.
//
// Who owns what: the gateway marks sources that flood its ports while at
// their connection limits and filters its own listeners (Filter); the p2p
// node marks addresses whose peers it banned and filters the sockets
// libp2p's TCP and QUIC transports opened (SetOnSockets).
package synfilter

import (
	"cmp"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// MaxSources bounds the sources one filter takes, and so its program: 5
// instructions per IPv6 source, 2 per IPv4 one, within the kernel's 4096
// (BPF_MAXINSNS). Callers keep their marked sets within it.
const MaxSources = 800

// Filter keeps one filter on a set of listeners. It needs plain TCP
// sockets: the kernel refuses socket filters on Multipath TCP ones, which
// Go's net.Listen makes where the kernel has them.
type Filter struct {
	// Pass: one in Pass SYNs of a marked source gets through (a power of
	// two).
	Pass uint32

	mu      sync.Mutex
	lns     []syscall.RawConn
	applied []netip.Addr
}

// Watch attaches the filter to ln's socket and keeps it up to date there.
func (f *Filter) Watch(ln net.Listener) error {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return errors.New("not a socket listener")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := attachRaw(rc, f.applied, f.Pass); err != nil {
		return err
	}
	f.lns = append(f.lns, rc)
	return nil
}

// Set makes the filter thin out the SYNs of srcs (sorted, at most
// MaxSources) from now on.
func (f *Filter) Set(srcs []netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if slices.Equal(srcs, f.applied) {
		return
	}
	f.applied = srcs
	// A listener that fails is closed: forget it.
	f.lns = slices.DeleteFunc(f.lns, func(rc syscall.RawConn) bool { return attachRaw(rc, srcs, f.Pass) != nil })
}

func attachRaw(rc syscall.RawConn, srcs []netip.Addr, pass uint32) error {
	var serr error
	err := rc.Control(func(fd uintptr) { serr = attach(int(fd), TCP, srcs, pass) })
	if err != nil {
		return err
	}
	return serr
}

// attach replaces fd's filter with the one for srcs, or removes it.
func attach(fd int, kind Kind, srcs []netip.Addr, pass uint32) error {
	if len(srcs) == 0 {
		err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
		if errors.Is(err, unix.ENOENT) {
			err = nil // there was none
		}
		return err
	}
	prog := Program(kind, srcs, pass)
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
}

// SetOnSockets makes every socket of this process of kind (listening
// TCP, or UDP) bound to one of ports thin out the connection attempts of
// srcs (sorted, at most MaxSources), and returns how many sockets it set.
// It is for sockets the caller cannot reach (libp2p's transports keep
// theirs): it finds them among the process's descriptors, and works on a
// duplicate of each, checked after duplicating, so a descriptor closed and
// reused meanwhile is never touched.
func SetOnSockets(kind Kind, ports []int, srcs []netip.Addr, pass uint32) (int, error) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0, err
	}
	set := 0
	var firstErr error
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if link, err := os.Readlink("/proc/self/fd/" + e.Name()); err != nil || !strings.HasPrefix(link, "socket:") {
			continue
		}
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			continue // closed meanwhile
		}
		switch err := matches(dup, kind, ports); {
		case errors.Is(err, errNoMatch):
		case err != nil:
			firstErr = cmp.Or(firstErr, err)
		default:
			if err := attach(dup, kind, srcs, pass); err != nil {
				firstErr = cmp.Or(firstErr, err)
			} else {
				set++
			}
		}
		unix.Close(dup)
	}
	return set, firstErr
}

// errMultipath: Go makes Multipath TCP listeners by default where the
// kernel has it; a program that wants its listeners filtered says
// //go:debug multipathtcp=0 (darkchatd does).
var errMultipath = errors.New("the listener is Multipath TCP, which takes no socket filter (run with GODEBUG=multipathtcp=0)")

var errNoMatch = errors.New("not a socket of that kind on those ports")

// matches returns nil if fd is a socket of kind bound to one of ports,
// errMultipath if it would be but is Multipath TCP, and errNoMatch
// otherwise.
func matches(fd int, kind Kind, ports []int) error {
	proto, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil {
		return errNoMatch
	}
	switch kind {
	case TCP:
		if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
			return errNoMatch
		}
		if proto != unix.IPPROTO_TCP && proto != unix.IPPROTO_MPTCP {
			return errNoMatch
		}
	case QUIC:
		if proto != unix.IPPROTO_UDP {
			return errNoMatch
		}
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return errNoMatch
	}
	var port int
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		port = sa.Port
	case *unix.SockaddrInet6:
		port = sa.Port
	default:
		return errNoMatch
	}
	switch {
	case !slices.Contains(ports, port):
		return errNoMatch
	case proto == unix.IPPROTO_MPTCP:
		return errMultipath
	}
	return nil
}

// Classic BPF, as socket filters run it on a TCP segment: absolute loads
// are relative to the TCP header (on a UDP datagram, to the UDP header), skfNetOff (SKF_NET_OFF) plus an offset
// reaches into the IP header, and skfAdRandom (SKF_AD_OFF +
// SKF_AD_RANDOM) loads a random number. A filter returns how many bytes
// to keep: 0 drops the segment.
const (
	skfNetOff   = -0x100000
	skfAdRandom = -0x1000 + 56
	bpfLdB      = unix.BPF_LD | unix.BPF_B | unix.BPF_ABS
	bpfLdW      = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS
	bpfAnd      = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
	bpfJeq      = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfJa       = unix.BPF_JMP | unix.BPF_JA
	bpfRet      = unix.BPF_RET | unix.BPF_K
	bpfKeep     = 0xffffffff
	bpfDrop     = 0
	tcpFlagsOff = 13
	tcpSYN      = 0x02
	tcpACK      = 0x10
	// A UDP socket's filter runs before the UDP header is pulled, so
	// absolute loads are relative to it. A QUIC v1 packet that opens a
	// connection is a long-header Initial (RFC 9000 §17.2: form bit set,
	// type 0 in bits 4–5).
	udpHeaderLen   = 8
	quicLongHeader = 0x80
	quicTypeMask   = 0x30
	quicInitial    = 0x00
)

// Kind is the kind of socket a filter is for.
type Kind int

const (
	// TCP: a listening TCP socket; the filter thins out SYNs.
	TCP Kind = iota
	// QUIC: a UDP socket QUIC listens on; the filter thins out Initial
	// packets, those that open a connection. The socket is also the one
	// the node dials QUIC from, so a dial to a filtered source is thinned
	// out too: its server's Initial is.
	QUIC
)

func negOff(base, off int32) uint32 { return uint32(base + off) }

func ins(code uint16, jt, jf uint8, k uint32) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}

// Program is the filter for a socket of kind that lets one in pass
// connection attempts (TCP SYNs, QUIC Initial packets) from srcs through:
// IPv4 addresses, and IPv6 /64s (their first 64 bits).
func Program(kind Kind, srcs []netip.Addr, pass uint32) []unix.SockFilter {
	var prog []unix.SockFilter
	switch kind {
	case TCP:
		prog = []unix.SockFilter{
			ins(bpfLdB, 0, 0, tcpFlagsOff),
			ins(bpfAnd, 0, 0, tcpSYN|tcpACK),
			ins(bpfJeq, 1, 0, tcpSYN), // a new connection: look at its source
			ins(bpfRet, 0, 0, bpfKeep),
		}
	case QUIC:
		prog = []unix.SockFilter{
			ins(bpfLdB, 0, 0, udpHeaderLen), // the QUIC packet's first byte
			ins(bpfAnd, 0, 0, quicLongHeader|quicTypeMask),
			ins(bpfJeq, 1, 0, quicLongHeader|quicInitial), // a new connection: look at its source
			ins(bpfRet, 0, 0, bpfKeep),
		}
	}
	prog = append(prog,
		ins(bpfLdB, 0, 0, negOff(skfNetOff, 0)), // IP version
		ins(bpfAnd, 0, 0, 0xf0),
		ins(bpfJeq, 0, 1, 0x40),
		ins(bpfJa, 0, 0, 0), // to the IPv4 part, set below
		ins(bpfJeq, 0, 1, 0x60),
		ins(bpfJa, 0, 0, 0), // to the IPv6 part, set below
		ins(bpfRet, 0, 0, bpfKeep))
	// Each source's entry jumps to the sampling part if it matches.
	var sample []int // indexes of those jumps
	prog[7].K = uint32(len(prog) - 8)
	prog = append(prog, ins(bpfLdW, 0, 0, negOff(skfNetOff, 12))) // IPv4 source address
	for _, a := range srcs {
		if a.Is4() || a.Is4In6() {
			b := a.Unmap().As4()
			prog = append(prog, ins(bpfJeq, 0, 1, binary.BigEndian.Uint32(b[:])))
			sample = append(sample, len(prog))
			prog = append(prog, ins(bpfJa, 0, 0, 0))
		}
	}
	prog = append(prog, ins(bpfRet, 0, 0, bpfKeep))
	prog[9].K = uint32(len(prog) - 10)
	for _, a := range srcs {
		if a.Is4() || a.Is4In6() {
			continue
		}
		b := a.As16()
		prog = append(prog,
			ins(bpfLdW, 0, 0, negOff(skfNetOff, 8)), // source address, bits 0–31
			ins(bpfJeq, 0, 3, binary.BigEndian.Uint32(b[0:4])),
			ins(bpfLdW, 0, 0, negOff(skfNetOff, 12)), // bits 32–63
			ins(bpfJeq, 0, 1, binary.BigEndian.Uint32(b[4:8])))
		sample = append(sample, len(prog))
		prog = append(prog, ins(bpfJa, 0, 0, 0))
	}
	prog = append(prog, ins(bpfRet, 0, 0, bpfKeep))
	for _, i := range sample {
		prog[i].K = uint32(len(prog) - i - 1)
	}
	// Sampling: keep one in pass.
	return append(prog,
		ins(bpfLdW, 0, 0, negOff(skfAdRandom, 0)),
		ins(bpfAnd, 0, 0, pass-1),
		ins(bpfJeq, 0, 1, 0),
		ins(bpfRet, 0, 0, bpfKeep),
		ins(bpfRet, 0, 0, bpfDrop))
}
