package proto

import (
	"time"

	"darkchat/identity"
)

// Version is the client protocol version of PROTOCOL.md, announced in
// hello. A client that does not speak it disconnects.
const Version = 1

// Bounds every implementation of the protocol shares (PROTOCOL.md §1, §2.7).
const (
	// DefaultMaxLine is the largest line or frame a node accepts from a
	// client unless configured otherwise (its --max-line), announced as
	// Limits.MaxLine. A line's "\n" does not count; a "\r" before it does.
	DefaultMaxLine = 32 << 10

	// MaxNodeLine is the largest line or frame a node sends, so the most a
	// client must accept. It is not DefaultMaxLine because a node's own
	// objects can be longer: a message whose 4096-byte body is made of
	// characters JSON escapes as \u00XX takes about 25 KB. Refusing it
	// would let any user cut every client in a channel off the network
	// with one valid message; refusing anything larger keeps a hostile
	// node from making a client allocate without bound.
	MaxNodeLine = 64 << 10

	// MaxDepth is how deeply objects and arrays may nest.
	MaxDepth = 8

	// MaxBody is the largest channel message body, in bytes: fixed by the
	// signed encoding.
	MaxBody = identity.MaxBodyLen

	// MaxRefLen is the longest DM ref a client may attach.
	MaxRefLen = 64

	// MaxErrors is how many malformed requests and refused joins a session
	// may cause before the node closes it with too_many_errors.
	MaxErrors = 20
)

// Session limits a node applies unless configured otherwise (PROTOCOL.md
// §3). The node's capacity limits (connections and channels per address and
// per node) are its own policy, not part of what a client speaks, and live
// with the gateway's configuration.
const (
	DefaultMaxChannels = 32
	// DefaultRate and DefaultBurst are made for people typing: a burst of
	// 20 lets someone paste a few lines at once, 5 a second sustained is
	// far above typing speed.
	DefaultRate  = 5
	DefaultBurst = 20
	// DefaultLoginTimeout is how long a connection may take to log in.
	DefaultLoginTimeout = 20 * time.Second
	// DefaultIdlePing is how long a silent session waits before the node
	// pings it; DefaultIdleTimeout closes a session silent for that long.
	DefaultIdlePing    = 30 * time.Second
	DefaultIdleTimeout = 90 * time.Second
	// DefaultSendQueue bounds the objects waiting to be written to one
	// session; a client that lets it overflow gets slow_consumer.
	DefaultSendQueue = 1024
	// TimestampWindow is how far a message's timestamp may be from the
	// node's clock.
	TimestampWindow = 2 * time.Minute
	// AnswerTimeout is how long a client should allow for an answer: a
	// whois that goes to the DHT may take 15 s, a DM whose recipient's
	// inbox must first be found 10 s.
	AnswerTimeout = 20 * time.Second
)

// Limits are the session limits a node announces in hello. A zero field
// means the node did not say; the default then applies (WithDefaults).
type Limits struct {
	MaxLine     int     `json:"max_line"`
	MaxBody     int     `json:"max_body"`
	MaxChannels int     `json:"max_channels"`
	Rate        float64 `json:"rate"`  // messages per second, sustained; may be fractional
	Burst       int     `json:"burst"` // messages allowed at once
}

// DefaultLimits are what a node with default settings announces.
var DefaultLimits = Limits{
	MaxLine:     DefaultMaxLine,
	MaxBody:     MaxBody,
	MaxChannels: DefaultMaxChannels,
	Rate:        DefaultRate,
	Burst:       DefaultBurst,
}

// WithDefaults returns l with every field that is not positive replaced by
// its default.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits
	if l.MaxLine <= 0 {
		l.MaxLine = d.MaxLine
	}
	if l.MaxBody <= 0 {
		l.MaxBody = d.MaxBody
	}
	if l.MaxChannels <= 0 {
		l.MaxChannels = d.MaxChannels
	}
	if !(l.Rate > 0) { // NaN too
		l.Rate = d.Rate
	}
	if l.Burst <= 0 {
		l.Burst = d.Burst
	}
	return l
}

// History requests (PROTOCOL.md §2.8).
const (
	// DefaultHistoryLimit is a History request's Limit when it gives none.
	DefaultHistoryLimit = 100
	// MaxHistoryLimit bounds a History request's Limit.
	MaxHistoryLimit = 200
	// MaxHistoryHave bounds the IDs a History request lists as had.
	MaxHistoryHave = 256
)
