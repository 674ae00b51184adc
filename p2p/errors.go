package p2p

import (
	"errors"
	"fmt"
)

var (
	// ErrClosed is returned by operations on a closed Node.
	ErrClosed = errors.New("node is closed")
	// ErrNotJoined is returned when publishing to a channel that has no
	// local member.
	ErrNotJoined = errors.New("channel has no local member")
	// ErrMessageTooLarge is returned by Publish for oversized messages.
	ErrMessageTooLarge = errors.New("message too large")
	// ErrIgnore, wrapped by a Validator's error, drops a message without
	// penalising the peer that forwarded it (for example a duplicate, or a
	// message outside the timestamp window that an honest peer with a
	// skewed clock might still forward).
	ErrIgnore = errors.New("ignored")
	// ErrDuplicate is returned by Publish for a message already seen.
	ErrDuplicate = fmt.Errorf("duplicate message: %w", ErrIgnore)
	// ErrNoRoute is returned by PublishDM when no node subscribed to the
	// recipient's inbox shard could be reached.
	ErrNoRoute = errors.New("no route to the recipient's inbox")
	// ErrNoDHT is returned by PutBundle and GetBundle on a node started
	// with Config.NoDHT.
	ErrNoDHT = errors.New("node runs without a DHT")
	// ErrBadAddress is returned for addresses that cannot be dialled.
	ErrBadAddress = errors.New("bad peer address")
)
