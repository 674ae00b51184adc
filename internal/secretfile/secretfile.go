// Package secretfile reads files that hold secrets (the node key, a user's
// identity key) the one way both need: the file opened once and checked
// through that descriptor, a regular file, not readable by group or
// others, and read up to a bound.
package secretfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
)

var (
	// ErrTooOpen: group or others may access the file. Like ssh, a key
	// that others could have read must be treated as compromised, and
	// silently accepting it would hide that.
	ErrTooOpen = errors.New("its permissions let group or others access it")
	// ErrTooLarge: the file is larger than the caller's bound.
	ErrTooLarge = errors.New("file too large")
)

// Read returns the contents of the secret file at path, at most max bytes.
// Errors name the path; one about permissions says how to fix them.
// Windows has no Unix permission bits, and its ACLs are out of scope, so
// the permission check is skipped there.
func Read(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Stat the open file, not the path, so the checked file is the read one.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("%s: %w: mode %04o; run: chmod 600 %s", path, ErrTooOpen, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: %w (more than %d bytes)", path, ErrTooLarge, max)
	}
	return data, nil
}
