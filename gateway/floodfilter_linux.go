package gateway

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// floodFilter thins out, in the kernel, the SYNs that the sources marked
// as flooding (limits.go) send to the gateway ports: it lets one in
// floodPass through, at random. It is a classic BPF socket filter on each
// listening socket, replaced whenever the set of sources changes. A
// listening socket's filter sees every segment the socket receives, SYNs
// included, before a connection enters its queues; only segments with SYN
// set and ACK clear are dropped, so the connections it has accepted (they
// inherit the filter) are never affected.
//
// It needs a plain TCP socket: the kernel refuses socket filters on
// Multipath TCP ones, which Go's net.Listen makes where the kernel has
// them. Listen makes the right kind.
type floodFilter struct {
	mu      sync.Mutex
	lns     []syscall.RawConn
	applied []netip.Addr
}

// watch attaches the filter to ln's socket and keeps it up to date there.
func (f *floodFilter) watch(ln net.Listener) error {
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
	if err := attachFilter(rc, f.applied); err != nil {
		return err
	}
	f.lns = append(f.lns, rc)
	return nil
}

// set makes the filter thin out the SYNs of srcs (sorted) from now on.
func (f *floodFilter) set(srcs []netip.Addr) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if slices.Equal(srcs, f.applied) {
		return
	}
	f.applied = srcs
	// A listener that fails is closed: forget it.
	f.lns = slices.DeleteFunc(f.lns, func(rc syscall.RawConn) bool { return attachFilter(rc, srcs) != nil })
}

func attachFilter(rc syscall.RawConn, srcs []netip.Addr) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		if len(srcs) == 0 {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DETACH_FILTER, 0)
			if errors.Is(serr, unix.ENOENT) {
				serr = nil // there was none
			}
			return
		}
		prog := floodProgram(srcs)
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
			&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
	})
	if err != nil {
		return err
	}
	return serr
}

// Classic BPF, as socket filters run it on a TCP segment: absolute loads
// are relative to the TCP header, skfNetOff (SKF_NET_OFF) plus an offset
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
)

func negOff(base, off int32) uint32 { return uint32(base + off) }

func ins(code uint16, jt, jf uint8, k uint32) unix.SockFilter {
	return unix.SockFilter{Code: code, Jt: jt, Jf: jf, K: k}
}

// floodProgram is the filter that lets one in floodPass SYNs from srcs
// through: IPv4 addresses, and IPv6 /64s (their first 64 bits).
func floodProgram(srcs []netip.Addr) []unix.SockFilter {
	prog := []unix.SockFilter{
		ins(bpfLdB, 0, 0, tcpFlagsOff),
		ins(bpfAnd, 0, 0, tcpSYN|tcpACK),
		ins(bpfJeq, 1, 0, tcpSYN), // a new connection: look at its source
		ins(bpfRet, 0, 0, bpfKeep),
		ins(bpfLdB, 0, 0, negOff(skfNetOff, 0)), // IP version
		ins(bpfAnd, 0, 0, 0xf0),
		ins(bpfJeq, 0, 1, 0x40),
		ins(bpfJa, 0, 0, 0), // to the IPv4 part, set below
		ins(bpfJeq, 0, 1, 0x60),
		ins(bpfJa, 0, 0, 0), // to the IPv6 part, set below
		ins(bpfRet, 0, 0, bpfKeep),
	}
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
	// Sampling: keep one in floodPass.
	return append(prog,
		ins(bpfLdW, 0, 0, negOff(skfAdRandom, 0)),
		ins(bpfAnd, 0, 0, floodPass-1),
		ins(bpfJeq, 0, 1, 0),
		ins(bpfRet, 0, 0, bpfKeep),
		ins(bpfRet, 0, 0, bpfDrop))
}
