package gateway

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"time"

	"darkchat/identity"
	"darkchat/p2p"

	"github.com/libp2p/go-libp2p/core/peer"
)

// ChannelValidator returns the mesh validator for channel messages: strict
// decoding, the channel named inside must be the topic's, the timestamp
// within window of now, and the author's signature valid. It runs once per
// message on each node, before the message is forwarded or delivered, and
// its payload (*meshMessage) carries the decoded message to the sessions.
//
// A timestamp just outside the window is ignored rather than rejected: an
// honest peer may forward a message shortly before it goes stale, and must
// not be penalised for it. One more than twice the window off is rejected
// (a strike against the forwarding peer): no honest peer whose clock is
// within a window of ours can have accepted it, so it is a replay of an old
// message or a forgery dated far ahead, sent on purpose.
//
// If traffic is not nil, every accepted message's metadata is logged there
// (logChannelMessage). Options add checks (WithBans).
func ChannelValidator(now func() time.Time, window time.Duration, authors AuthorLimit, traffic *slog.Logger, opts ...ValidatorOption) p2p.Validator {
	if now == nil {
		now = time.Now
	}
	var o validatorOptions
	for _, opt := range opts {
		opt(&o)
	}
	limiter := newAuthorLimiter(authors)
	history := newHistoryTracker()
	history.bans = o.bans
	history.rules = o.rules
	presence := newPresenceValidator(window, limiter)
	presence.bans = o.bans
	return func(from peer.ID, channel string, data []byte) (any, error) {
		if channel == "" { // the history topic (p2p.Node.JoinHistory)
			switch {
			case len(data) > 0 && data[0] == wireHistoryRequest:
				return history.request(from, data, now())
			case len(data) > 0 && data[0] == wireHistoryAnswer:
				return history.answer(data, now(), window)
			}
			return nil, fmt.Errorf("%w: not a history request or answer", identity.ErrMalformed)
		}
		// A channel's topic carries several kinds, told apart by the
		// first byte: channel messages (identity.ChannelMessageVersion,
		// ChannelMessageVersion2) below, presence records
		// (identity.PresenceVersion).
		if len(data) > 0 {
			switch data[0] {
			case identity.PresenceVersion:
				p, err := presence.validate(from, channel, data, now())
				if pp, ok := p.(*presencePayload); ok && pp.rec.State == identity.PresenceHere {
					if err := o.rules.RefuseAuthor(channel, pp.rec.Key); err != nil {
						return nil, err // an owned channel's banned key is not listed
					}
				}
				return p, err
			case wireRules, wireKick: // owned channels (rules.go)
				return o.rules.validate(from, channel, data, now(), window)
			}
		}
		m := &meshMessage{}
		if err := m.msg.UnmarshalBinary(data); err != nil {
			return nil, err
		}
		if m.msg.Channel != channel {
			return nil, fmt.Errorf("message for channel %q published on %q", m.msg.Channel, channel)
		}
		if err := o.bans.refuseMessage(m.msg.Author); err != nil {
			return nil, err // before the signature: costs no verification
		}
		if err := o.rules.RefuseAuthor(channel, m.msg.Author); err != nil {
			return nil, err // likewise: an owned channel's ban or moderation
		}
		if ok, gap := checkTimestamp(m.msg.Timestamp, now(), window); !ok {
			if far, _ := checkTimestamp(m.msg.Timestamp, now(), 2*window); !far && from != "" {
				return nil, fmt.Errorf("timestamp %s the node's clock, outside ±%v: a replayed or forged message", gap, 2*window)
			}
			return nil, fmt.Errorf("timestamp %s the node's clock, outside ±%v: %w", gap, window, p2p.ErrIgnore)
		}
		// Before the signature: a key the node has not seen yet must be
		// introduced within the forwarding peer's budget, so a flood under
		// fresh keys costs a decode per message, not a verification.
		if err := limiter.admit(from, m.msg.Author, now()); err != nil {
			return nil, err
		}
		verifier := o.verifier
		if from == "" {
			// A local publication: the publishing session's goroutine
			// verifies it. Sessions publish one message at a time each,
			// too few at once to batch, and run beside each other anyway.
			verifier = nil
		}
		if err := verifier.VerifyChannelMessage(&m.msg); err != nil {
			return nil, err
		}
		// After the signature: only the author can spend its own tokens.
		if err := limiter.allow(from, m.msg.Author, now()); err != nil {
			return nil, err
		}
		if traffic != nil {
			logChannelMessage(traffic, from, &m.msg, len(data))
		}
		return m, nil
	}
}

// authorFingerprintLen is how many hex digits of the author's key a traffic
// line shows: enough to tell authors apart and to find a key flooding the
// mesh, without making the log a directory of users' addresses.
const authorFingerprintLen = 16

// logChannelMessage writes darkchatd's --log-messages line for one accepted
// channel message. It is the only place channel traffic is logged, and it
// logs metadata only (the flag's help and README.md list these fields):
//
//	channel  the channel
//	author   the first 16 hex digits of the author's key
//	id       the message ID (32 hex digits, as in PROTOCOL.md)
//	bytes    the message's size on the mesh
//	from     the peer that forwarded it, or "local" when this node's own
//	         gateway published it
//
// Never the username or the body: they are the users' words, and the
// operator of a relaying node has no business keeping them. Direct
// messages are never logged (InboxValidator takes no logger).
func logChannelMessage(traffic *slog.Logger, from peer.ID, m *identity.ChannelMessage, size int) {
	sender := "local"
	if from != "" {
		sender = from.String()
	}
	traffic.LogAttrs(context.Background(), slog.LevelInfo, "channel message",
		slog.String("channel", m.Channel),
		slog.String("author", m.Author.String()[:authorFingerprintLen]),
		slog.String("id", hex.EncodeToString(m.ID[:])),
		slog.Int("bytes", size),
		slog.String("from", sender))
}

// checkTimestamp reports whether ts (Unix milliseconds) is within window of
// now and, if not, how far off it is, for an error message: "10m0s behind"
// or "1h0m0s ahead of". The gap is computed as ts − now, which time.Sub
// saturates in the right direction; negating now − ts instead turns the
// most negative Duration (a timestamp of max int64) into itself, reporting
// a future timestamp as a past one.
func checkTimestamp(ts int64, now time.Time, window time.Duration) (ok bool, gap string) {
	ahead := time.UnixMilli(ts).Sub(now)
	if -window <= ahead && ahead <= window {
		return true, ""
	}
	dir, mag := "ahead of", ahead
	if ahead < 0 {
		dir, mag = "behind", -ahead
		if mag < 0 { // -minDuration overflows
			mag = math.MaxInt64
		}
	}
	if mag == math.MaxInt64 {
		// time.Sub saturated: the real gap is larger than a Duration.
		return false, "over 292 years " + dir
	}
	return false, mag.Round(time.Second).String() + " " + dir
}

// ensure the payload de-duplicates by author and message ID.
var _ p2p.Keyed = (*meshMessage)(nil)

// ValidatorOption adds a check to ChannelValidator.
type ValidatorOption func(*validatorOptions)

type validatorOptions struct {
	bans     *BanList
	rules    *RulesTable        // owned channels' records (rules.go, WithRules)
	verifier *identity.Verifier // nil: each message verified alone
}

// WithVerifier verifies channel messages' signatures with v, in batches
// with the other messages in validation at the same moment. The node
// must also validate messages in parallel (p2p.Config.ParallelValidation)
// for batches to form.
func WithVerifier(v *identity.Verifier) ValidatorOption {
	return func(o *validatorOptions) { o.verifier = v }
}

// ParallelValidation is p2p.Config.ParallelValidation for ChannelValidator:
// channel messages may be checked beside each other (what their check
// changes, the author limits and the de-duplication set, does not depend
// on order); presence records, rules records, kicks and history repair
// are checked one at a time in arrival order, as each may depend on the
// one before.
func ParallelValidation(channel string, data []byte) bool {
	if channel == "" { // the history topic
		return false
	}
	return len(data) > 0 && (data[0] == identity.ChannelMessageVersion || data[0] == identity.ChannelMessageVersion2)
}

// WithBans drops the channel messages of the keys on the node operator's
// ban list, and the history answers that carry one (bans.go).
func WithBans(b *BanList) ValidatorOption {
	return func(o *validatorOptions) { o.bans = b }
}
