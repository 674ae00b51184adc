//go:build unix

package bench

import "syscall"

// RaiseFileLimit lifts this process's open-file limit to its hard limit:
// session-memory holds two descriptors per session in-process for its
// warm-up and fanout one per client and one per server session.
func RaiseFileLimit() error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	if l.Cur >= l.Max {
		return nil
	}
	l.Cur = l.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}

// fileLimit returns the open-file limit in force, or 0 if unknown.
func fileLimit() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	return int(l.Cur)
}
