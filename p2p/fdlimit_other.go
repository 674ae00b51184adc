//go:build !unix

package p2p

// processFDLimit is 0 (unknown) where the open-file limit cannot be read.
func processFDLimit() int { return 0 }
