package p2p

import (
	"context"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/routing"
)

// RulesNamespace is the DHT record namespace of owned channels' rules
// records: a channel's record lives under /darkchat-rules/<channel>. The
// validator (Config.RulesValidator) checks each record alone and keeps the
// greatest, as for key bundles.
const RulesNamespace = "darkchat-rules"

func rulesKey(channel string) string { return "/" + RulesNamespace + "/" + channel }

// PutRules stores a channel's rules record (already verified by the
// caller) in the DHT.
func (n *Node) PutRules(ctx context.Context, channel string, record []byte) error {
	if n.dht == nil {
		return fmt.Errorf("publish channel rules: %w", ErrNoDHT)
	}
	if err := n.dht.PutValue(ctx, rulesKey(channel), record); err != nil {
		return fmt.Errorf("publish channel rules: %w", err)
	}
	return nil
}

// GetRules fetches a channel's greatest rules record from the DHT;
// ErrNotFound when there is none.
func (n *Node) GetRules(ctx context.Context, channel string) ([]byte, error) {
	if n.dht == nil {
		return nil, fmt.Errorf("look up channel rules: %w", ErrNoDHT)
	}
	v, err := n.dht.GetValue(ctx, rulesKey(channel))
	if errors.Is(err, routing.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("look up channel rules: %w", err)
	}
	return v, nil
}
