//go:build !unix

package gateway

// openFileLimit is unknown where there is no RLIMIT_NOFILE.
func openFileLimit() int { return 0 }
