//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"
)

// watchResize calls f whenever the terminal window changes size, for the
// life of the process.
func watchResize(f func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGWINCH)
	go func() {
		for range c {
			f()
		}
	}()
}
