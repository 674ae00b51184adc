package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"darkchat/identity"
	"darkchat/proto"
)

// Config holds the gateway's limits. Zero values take the defaults below.
type Config struct {
	// MaxLine bounds one TCP line or WebSocket frame, in bytes.
	MaxLine int
	// MaxChannels bounds the channels one session may join.
	MaxChannels int
	// MaxChannelsPerIP bounds the distinct channels the sessions from one
	// source are in together; MaxNodeChannels the distinct channels with
	// local members on the node (limits.go).
	MaxChannelsPerIP, MaxNodeChannels int
	// MaxSessionsPerIP bounds the open connections from one source, on
	// both ports together: sessions, and HTTP connections on the
	// WebSocket port that have not upgraded (yet). A source is an IPv4
	// address or an IPv6 /64. It is applied when a connection is
	// accepted (limits.go).
	MaxSessionsPerIP int
	// MaxConns bounds the open connections on both ports together. The
	// default is derived from the process's open-file limit: see
	// defaultMaxConns.
	MaxConns int
	// FloodRefusals is how many refused connections within a second mark
	// a source as flooding: the kernel then drops all but one in 64 of
	// its connection attempts, until it has not been refused for 10 s
	// (limits.go). Negative turns the flood filter off.
	FloodRefusals int
	// HandshakeTimeout bounds an HTTP connection on the WebSocket port
	// until it upgrades: its request headers (and TLS handshake) must
	// arrive within it, and a keep-alive connection idle for that long
	// is closed. It also bounds writing the upgrade response.
	HandshakeTimeout time.Duration
	// LoginTimeout is how long a connection may take to log in.
	LoginTimeout time.Duration
	// Rate and Burst form each session's token bucket for sends.
	Rate  float64
	Burst int
	// SendQueue bounds the frames waiting to be written to one session on
	// its own account. A session whose client has fallen behind for a
	// moment may queue more, up to 8 times SendQueue, out of
	// SharedSendQueue: the frames all sessions together may queue beyond
	// their own SendQueue. A frame is shared by the sessions it is queued
	// to, so a queued frame costs a session 32 bytes of its queue; the
	// shared allowance bounds what lagging sessions hold on the node.
	SendQueue, SharedSendQueue int
	// IdlePing is how long a silent session waits before the node pings it;
	// IdleTimeout closes a session silent for that long.
	IdlePing, IdleTimeout time.Duration
	// SocketSendBuffer, when positive, sets each TCP session socket's
	// kernel send buffer (SO_SNDBUF). Smaller buffers bound the kernel
	// memory a slow client can pin and let the gateway notice it sooner;
	// 0 leaves the operating system's auto-tuning.
	SocketSendBuffer int
	// WriteTimeout bounds one batched write.
	WriteTimeout time.Duration
	// TimestampWindow is how far a message's timestamp may be from the
	// node's clock.
	TimestampWindow time.Duration
	// AllowedOrigins lists extra Origin values accepted by the WebSocket
	// gateway besides the page's own origin; "*" accepts any.
	AllowedOrigins []string
	// TLS, when set, makes the WebSocket gateway serve https and wss.
	TLS *tls.Config
	// Registerer, if set, receives the gateway's metrics (metrics.go);
	// nil keeps none.
	Registerer prometheus.Registerer
	// Logger receives the gateway's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests override it.
	Now func() time.Time
	// Bans, if set, is the node operator's ban list (bans.go): the
	// gateway refuses its keys' logins and closes their sessions when
	// they are banned. The node's ChannelValidator takes the same list
	// (WithBans).
	Bans *BanList
	// Rules holds owned channels' rules records (rules.go); the node's
	// ChannelValidator takes the same table (WithRules), which fills and
	// enforces it. Nil: the gateway keeps its own, filled from the
	// records its sessions are handed.
	Rules *RulesTable
}

// Defaults. Those a client sees (the session limits of hello, timeouts,
// the send queue) are the client protocol's, proto's; the node's capacity
// limits are its own.
const (
	DefaultMaxLine     = proto.DefaultMaxLine
	DefaultMaxChannels = proto.DefaultMaxChannels
	// DefaultMaxChannelsPerIP leaves an office behind one address (64
	// sessions) room for its shared channels, where the per-session
	// limit alone allowed 64 × 32 = 2048.
	DefaultMaxChannelsPerIP = 128
	// DefaultMaxNodeChannels bounds channel state to about 45–100 MB
	// (limits.go) and takes 7 addresses at the per-IP limit to reach;
	// with the 64 DM inbox shards it stays within the 1024 topics a mesh
	// peer accepts from the node (meshTopicBudget).
	DefaultMaxNodeChannels  = 896
	DefaultMaxSessionsPerIP = 64
	// DefaultFloodRefusals is far above what a client that retries after
	// a refusal, or the users of one address, cause, and far below what
	// keeps an accept queue full (thousands a second).
	DefaultFloodRefusals = 32
	// DefaultMaxConns is MaxConns where the open-file limit cannot be
	// read.
	DefaultMaxConns = 4096
	// DefaultHandshakeTimeout is a few round trips on a slow mobile
	// link; a connection that is not an upgrading WebSocket or a page
	// load costs a descriptor for no longer than this.
	DefaultHandshakeTimeout = 5 * time.Second
	DefaultLoginTimeout     = proto.DefaultLoginTimeout
	DefaultRate             = proto.DefaultRate
	DefaultBurst            = proto.DefaultBurst
	DefaultSendQueue        = proto.DefaultSendQueue
	// defaultSharedQueueFactor sets SharedSendQueue: this many times
	// SendQueue, room for 9 sessions lagging at once to their full 8
	// times, or many more lagging a little.
	defaultSharedQueueFactor = 64
	DefaultIdlePing          = proto.DefaultIdlePing
	DefaultIdleTimeout       = proto.DefaultIdleTimeout
	DefaultWriteTimeout      = 10 * time.Second
	DefaultTimestampWindow   = proto.TimestampWindow
	// maxErrors is how many protocol errors a session may cause before it
	// is closed.
	maxErrors = proto.MaxErrors
)

func (c *Config) setDefaults() error {
	setDefault(&c.MaxLine, DefaultMaxLine)
	setDefault(&c.MaxChannels, DefaultMaxChannels)
	setDefault(&c.MaxChannelsPerIP, DefaultMaxChannelsPerIP)
	setDefault(&c.MaxNodeChannels, DefaultMaxNodeChannels)
	setDefault(&c.MaxSessionsPerIP, DefaultMaxSessionsPerIP)
	setDefault(&c.MaxConns, defaultMaxConns(openFileLimit()))
	if c.FloodRefusals == 0 {
		c.FloodRefusals = DefaultFloodRefusals
	}
	setDefault(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&c.LoginTimeout, DefaultLoginTimeout)
	setDefault(&c.Rate, DefaultRate)
	setDefault(&c.Burst, DefaultBurst)
	setDefault(&c.SendQueue, DefaultSendQueue)
	setDefault(&c.SharedSendQueue, defaultSharedQueueFactor*c.SendQueue)
	setDefault(&c.IdlePing, DefaultIdlePing)
	setDefault(&c.IdleTimeout, DefaultIdleTimeout)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.TimestampWindow, DefaultTimestampWindow)
	if c.MaxLine < 1024 {
		return errors.New("gateway: max line must be at least 1024 bytes")
	}
	if math.IsNaN(c.Rate) || math.IsInf(c.Rate, 0) {
		return fmt.Errorf("gateway: rate must be a finite number, got %v", c.Rate)
	}
	if c.MaxNodeChannels > MaxNodeChannelsLimit {
		return fmt.Errorf("gateway: max node channels must be at most %d: with the %d DM inbox shards, the node's topics must stay within the %d its mesh peers accept",
			MaxNodeChannelsLimit, identity.DMShards, meshTopicBudget)
	}
	if c.IdleTimeout <= c.IdlePing {
		return errors.New("gateway: idle timeout must exceed the idle ping interval")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Descriptor budget. A node's descriptors serve mesh peers, client
// connections, and its own listeners and files. libp2p's resource manager
// (p2p/host.go, rcmgr AutoScale) lets the mesh use up to half of the
// process's open-file limit; the gateways get the other half less
// fdReserve, so that neither side can exhaust the other's share. Go raises
// the soft limit to the hard one at start, so that is the limit in force.
const (
	// fdReserve covers listeners, the poller, the DHT, logs, the admin
	// socket and the TLS key files, with room to spare.
	fdReserve = 256
	// minMaxConns keeps a node with a tiny open-file limit usable.
	minMaxConns = 64
)

// defaultMaxConns is MaxConns for an open-file limit of fdLimit (0:
// unknown). With the common limits: 1024 → 256, 20000 → 9744, 1048576 →
// 524032.
func defaultMaxConns(fdLimit int) int {
	if fdLimit <= 0 {
		return DefaultMaxConns
	}
	return max(fdLimit/2-fdReserve, minMaxConns)
}

// MaxNodeChannelsLimit is the largest MaxNodeChannels: with the DM inbox
// shards, the node's topics must stay within what each mesh peer accepts
// (meshTopicBudget, limits.go).
const MaxNodeChannelsLimit = meshTopicBudget - identity.DMShards

func setDefault[T int | float64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
