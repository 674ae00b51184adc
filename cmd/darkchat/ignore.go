package main

import (
	"errors"
	"io/fs"

	"darkchat/client/command"
	"darkchat/internal/atomicfile"
	"darkchat/internal/secretfile"
)

// ignoreFile keeps the user's ignore list (command.IgnoreStore) beside the
// identity file, as <key-file>.ignore: one public key a line, mode 0600
// (who a user ignores is theirs to know), replaced atomically at every
// change. It is read like a key file: a file others can read is refused.
type ignoreFile struct{ path string }

// maxIgnoreFile bounds reading the file: MaxIgnored keys, with room for
// comments a user may have added.
const maxIgnoreFile = 256 << 10

// ignoreStore is the ignore list's file for the identity at --key (or the
// default identity file); nil, keeping the list for this run only, when
// there is no identity path.
func ignoreStore(flagKey string) command.IgnoreStore {
	path, err := keyPath(flagKey)
	if err != nil {
		return nil
	}
	return ignoreFile{path: path + ".ignore"}
}

func (f ignoreFile) LoadIgnored() ([]byte, error) {
	data, err := secretfile.Read(f.path, maxIgnoreFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return data, err
}

func (f ignoreFile) SaveIgnored(data []byte) error {
	return atomicfile.Write(f.path, data, 0o600)
}
