package p2p

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/routing"
)

// ErrNotFound is returned by GetBundle when no record exists.
var ErrNotFound = errors.New("not found")

// bundleKey is the DHT key of a user's key bundle.
func bundleKey(user string) string { return "/" + BundleNamespace + "/" + user }

// PutBundle stores a user's key bundle (already verified by the caller) in
// the DHT under the user's identity key (hex). The DHT's validator checks
// it again on every node that stores it, and keeps the newest.
func (n *Node) PutBundle(ctx context.Context, user string, bundle []byte) error {
	if n.dht == nil {
		return fmt.Errorf("publish key bundle: %w", ErrNoDHT)
	}
	if err := n.dht.PutValue(ctx, bundleKey(user), bundle); err != nil {
		return fmt.Errorf("publish key bundle: %w", err)
	}
	return nil
}

// GetBundle fetches a user's newest key bundle from the DHT.
func (n *Node) GetBundle(ctx context.Context, user string) ([]byte, error) {
	if n.dht == nil {
		return nil, fmt.Errorf("look up key bundle: %w", ErrNoDHT)
	}
	v, err := n.dht.GetValue(ctx, bundleKey(user))
	if errors.Is(err, routing.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("look up key bundle: %w", err)
	}
	return v, nil
}
