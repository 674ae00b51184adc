package proto

// Code is an error object's code (PROTOCOL.md §2.9). Codes are lowercase
// ASCII letters, digits and "_"; a client meets codes a later version adds
// and treats them as not closing.
type Code string

// The codes of PROTOCOL.md §2.9, in its order.
const (
	CodeBadJSON          Code = "bad_json"
	CodeTooLarge         Code = "too_large"
	CodeBadFrame         Code = "bad_frame"
	CodeUnknownType      Code = "unknown_type"
	CodeNotLoggedIn      Code = "not_logged_in"
	CodeAlreadyLoggedIn  Code = "already_logged_in"
	CodeBadKey           Code = "bad_key"
	CodeBadSignature     Code = "bad_signature"
	CodeChallengeExpired Code = "challenge_expired"
	CodeLoginTimeout     Code = "login_timeout"
	CodeBadBundle        Code = "bad_bundle"
	CodeUnknownUser      Code = "unknown_user"
	CodeBadEnvelope      Code = "bad_envelope"
	CodeNoRoute          Code = "no_route"
	CodeBadChannel       Code = "bad_channel"
	CodeBadUsername      Code = "bad_username"
	CodeNotJoined        Code = "not_joined"
	CodeTooManyChannels  Code = "too_many_channels"
	CodeBodyTooLarge     Code = "body_too_large"
	CodeBadTimestamp     Code = "bad_timestamp"
	CodeDuplicate        Code = "duplicate"
	CodeRateLimited      Code = "rate_limited"
	CodeTooManyErrors    Code = "too_many_errors"
	CodeTooManySessions  Code = "too_many_sessions"
	CodeNodeFull         Code = "node_full"
	CodeSlowConsumer     Code = "slow_consumer"
	CodeIdleTimeout      Code = "idle_timeout"
	CodeShutdown         Code = "shutdown"
	CodeInternal         Code = "internal"
	CodeBanned           Code = "banned"
	// Owned channels (PROTOCOL.md §2.13).
	CodeChannelBanned Code = "channel_banned"
	CodeModerated     Code = "moderated"
	CodeNotOperator   Code = "not_operator"
	CodeBadRules      Code = "bad_rules"
	CodeStaleRules    Code = "stale_rules"
)

// Closing says when the node closes a session after an error.
type Closing uint8

const (
	// KeepsSession: the session goes on.
	KeepsSession Closing = iota
	// ClosesSession: the session always ends after the error.
	ClosesSession
	// ClosesBeforeWelcome: the session ends if it has not logged in, that
	// is when the error answers a login or is sent instead of hello; after
	// welcome the same code (a whois's bad_key, a send's bad_signature, a
	// bundle update's bad_bundle, a join's node_full, a failed request's
	// internal) leaves the session open.
	ClosesBeforeWelcome
)

// Codes is the one table of error codes and when each closes the session:
// PROTOCOL.md §2.9's table, row for row. Codes not in it are unknown (a
// later version's) and do not close.
var Codes = map[Code]Closing{
	CodeBadJSON:          KeepsSession,
	CodeTooLarge:         ClosesSession,
	CodeBadFrame:         ClosesSession,
	CodeUnknownType:      KeepsSession,
	CodeNotLoggedIn:      KeepsSession,
	CodeAlreadyLoggedIn:  KeepsSession,
	CodeBadKey:           ClosesBeforeWelcome,
	CodeBadSignature:     ClosesBeforeWelcome,
	CodeChallengeExpired: ClosesSession,
	CodeLoginTimeout:     ClosesSession,
	CodeBadBundle:        ClosesBeforeWelcome,
	CodeUnknownUser:      KeepsSession,
	CodeBadEnvelope:      KeepsSession,
	CodeNoRoute:          KeepsSession,
	CodeBadChannel:       KeepsSession,
	CodeBadUsername:      KeepsSession,
	CodeNotJoined:        KeepsSession,
	CodeTooManyChannels:  KeepsSession,
	CodeBodyTooLarge:     KeepsSession,
	CodeBadTimestamp:     KeepsSession,
	CodeDuplicate:        KeepsSession,
	CodeRateLimited:      KeepsSession,
	CodeTooManyErrors:    ClosesSession,
	CodeTooManySessions:  ClosesSession,
	CodeNodeFull:         ClosesBeforeWelcome,
	CodeSlowConsumer:     ClosesSession,
	CodeIdleTimeout:      ClosesSession,
	CodeShutdown:         ClosesSession,
	CodeInternal:         ClosesBeforeWelcome,
	CodeBanned:           ClosesSession,
	CodeChannelBanned:    KeepsSession,
	CodeModerated:        KeepsSession,
	CodeNotOperator:      KeepsSession,
	CodeBadRules:         KeepsSession,
	CodeStaleRules:       KeepsSession,
}

// Closes reports whether the node closes a session after an error with
// code c, given whether the session had logged in (received welcome).
func (c Code) Closes(loggedIn bool) bool {
	switch Codes[c] {
	case ClosesSession:
		return true
	case ClosesBeforeWelcome:
		return !loggedIn
	}
	return false
}

// Known reports whether c is a code of this protocol version.
func (c Code) Known() bool {
	_, ok := Codes[c]
	return ok
}
