//go:build unix

package p2p

import "syscall"

// processFDLimit is the open-file limit, or 0 if it cannot be read.
func processFDLimit() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	return int(min(l.Cur, 1<<24))
}
