//go:build unix

package gateway

import "syscall"

// openFileLimit returns the process's open-file limit, or 0 if it cannot
// be read. An unlimited limit counts as 1<<24.
func openFileLimit() int {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0
	}
	return int(min(l.Cur, 1<<24))
}
