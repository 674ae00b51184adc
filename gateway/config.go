package gateway

import (
	"crypto/tls"
	"errors"
	"log/slog"
	"time"
)

// Config holds the gateway's limits. Zero values take the defaults below.
type Config struct {
	// MaxLine bounds one TCP line or WebSocket frame, in bytes.
	MaxLine int
	// MaxChannels bounds the channels one session may join.
	MaxChannels int
	// MaxSessionsPerIP bounds concurrent sessions from one IP address.
	MaxSessionsPerIP int
	// LoginTimeout is how long a connection may take to log in.
	LoginTimeout time.Duration
	// Rate and Burst form each session's token bucket for sends.
	Rate  float64
	Burst int
	// SendQueue bounds the frames waiting to be written to one session.
	SendQueue int
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
	// LogMessages logs channel traffic (author, channel, size; never DM
	// content).
	LogMessages bool
	// Logger receives the gateway's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now. Tests override it.
	Now func() time.Time
}

// Defaults, chosen for people typing: a burst of 20 lets someone paste a few
// lines at once, 5 a second sustained is far above typing speed.
const (
	DefaultMaxLine          = 32 << 10
	DefaultMaxChannels      = 32
	DefaultMaxSessionsPerIP = 64
	DefaultLoginTimeout     = 20 * time.Second
	DefaultRate             = 5
	DefaultBurst            = 20
	DefaultSendQueue        = 1024
	DefaultIdlePing         = 30 * time.Second
	DefaultIdleTimeout      = 90 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
	DefaultTimestampWindow  = 2 * time.Minute
	// maxErrors is how many protocol errors a session may cause before it
	// is closed.
	maxErrors = 20
	// maxJSONDepth bounds object nesting in client input.
	maxJSONDepth = 8
)

func (c *Config) setDefaults() error {
	setDefault(&c.MaxLine, DefaultMaxLine)
	setDefault(&c.MaxChannels, DefaultMaxChannels)
	setDefault(&c.MaxSessionsPerIP, DefaultMaxSessionsPerIP)
	setDefault(&c.LoginTimeout, DefaultLoginTimeout)
	setDefault(&c.Rate, DefaultRate)
	setDefault(&c.Burst, DefaultBurst)
	setDefault(&c.SendQueue, DefaultSendQueue)
	setDefault(&c.IdlePing, DefaultIdlePing)
	setDefault(&c.IdleTimeout, DefaultIdleTimeout)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.TimestampWindow, DefaultTimestampWindow)
	if c.MaxLine < 1024 {
		return errors.New("gateway: max line must be at least 1024 bytes")
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

func setDefault[T int | float64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}
