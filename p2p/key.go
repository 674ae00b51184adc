package p2p

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"

	"darkchat/internal/atomicfile"
	"darkchat/internal/secretfile"
)

// NodeKeyFile is the name of the node key inside a node's data directory.
// It is the only file a node writes.
const NodeKeyFile = "node.key"

// maxKeyFileSize bounds the read of a key file; an Ed25519 key in libp2p's
// protobuf encoding is 68 bytes.
const maxKeyFileSize = 4096

// LoadOrCreateNodeKey returns the node's Ed25519 key from dataDir, creating
// it (mode 0600, written atomically) on first run. The key fixes the node's
// peer ID, so a restarted node keeps its identity in the mesh.
func LoadOrCreateNodeKey(dataDir string) (crypto.PrivKey, bool, error) {
	path := filepath.Join(dataDir, NodeKeyFile)
	key, err := loadNodeKey(path)
	if err == nil {
		return key, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	key, _, err = crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("generate node key: %w", err)
	}
	raw, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, false, fmt.Errorf("encode node key: %w", err)
	}
	if err := atomicfile.Create(path, raw, 0o600); err != nil {
		if errors.Is(err, atomicfile.ErrExists) {
			// Another process created it between our read and write.
			key, err := loadNodeKey(path)
			return key, false, err
		}
		return nil, false, fmt.Errorf("write node key: %w", err)
	}
	return key, true, nil
}

func loadNodeKey(path string) (crypto.PrivKey, error) {
	raw, err := secretfile.Read(path, maxKeyFileSize)
	if err != nil {
		return nil, fmt.Errorf("node key: %w", err)
	}
	key, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("node key %s is corrupt: %w", path, err)
	}
	return key, nil
}
