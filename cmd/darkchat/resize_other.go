//go:build !unix

package main

// watchResize is a no-op where there is no SIGWINCH; the size read at
// start stays.
func watchResize(func()) {}
