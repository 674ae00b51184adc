package client

import (
	"errors"

	"darkchat/proto"
)

// Sentinel errors. Errors returned by this package wrap one of them (or are
// an *Error from the node), so callers branch with errors.Is / errors.As.
var (
	// ErrMalformed, ErrTooLarge and ErrUnknownType are proto's: an object
	// that does not follow PROTOCOL.md, something over its size limit, an
	// object type this version does not know (a session ignores those from
	// the node, so later versions can add types).
	ErrMalformed   = proto.ErrMalformed
	ErrTooLarge    = proto.ErrTooLarge
	ErrUnknownType = proto.ErrUnknownType

	// ErrClosed: the session or transport was closed.
	ErrClosed = errors.New("connection closed")

	// ErrNotConnected: a command needs a connection and there is none.
	ErrNotConnected = errors.New("not connected")

	// ErrNotLoggedIn: a command needs a logged-in session.
	ErrNotLoggedIn = errors.New("not logged in")

	// ErrAlreadyLoggedIn: login was attempted twice.
	ErrAlreadyLoggedIn = errors.New("already logged in")

	// ErrNotJoined: sending to a channel the session has not joined.
	ErrNotJoined = errors.New("not in channel")

	// ErrWrongNode: the node's challenge does not name the node the caller
	// expected, so the client refuses to sign it.
	ErrWrongNode = errors.New("challenge names another node")

	// ErrProtocol: the node broke the protocol (wrong version, an object
	// out of order, a welcome for another key).
	ErrProtocol = errors.New("protocol violation by the node")

	// ErrIdle: nothing arrived from the node for too long.
	ErrIdle = errors.New("connection timed out: nothing received from the node")

	// ErrUnknownUser: the node has no key bundle for the key (whois
	// answered unknown_user), so no DM can be sealed to it.
	ErrUnknownUser = errors.New("unknown user")

	// ErrNoAnswer: the node did not answer a whois in time.
	ErrNoAnswer = errors.New("no answer from the node")

	// ErrRecipientOffline: the node could reach no node serving the DM's
	// recipient (no_route): the recipient is not connected.
	ErrRecipientOffline = errors.New("recipient offline")

	// ErrNoReceipt: the node sent the DM, but no receipt from the
	// recipient arrived within the receipt timeout.
	ErrNoReceipt = errors.New("timed out: no receipt")

	// ErrConnectionLost: the session ended while a DM awaited its receipt.
	ErrConnectionLost = errors.New("connection lost before a receipt")
)
