package gateway

import (
	"fmt"
	"log/slog"
	"time"

	"darkchat/p2p"
)

// ChannelValidator returns the mesh validator for channel messages: strict
// decoding, the channel named inside must be the topic's, the timestamp
// within window of now, and the author's signature valid. It runs once per
// message on each node, before the message is forwarded or delivered, and
// its payload (*meshMessage) carries the decoded message to the sessions.
//
// A timestamp outside the window is ignored rather than rejected: an honest
// peer may forward a message shortly before it goes stale, and must not be
// penalised for it.
//
// If traffic is not nil, every accepted message is logged there.
func ChannelValidator(now func() time.Time, window time.Duration, traffic *slog.Logger) p2p.Validator {
	if now == nil {
		now = time.Now
	}
	return func(channel string, data []byte) (any, error) {
		m := &meshMessage{}
		if err := m.msg.UnmarshalBinary(data); err != nil {
			return nil, err
		}
		if m.msg.Channel != channel {
			return nil, fmt.Errorf("message for channel %q published on %q", m.msg.Channel, channel)
		}
		if skew := now().Sub(m.msg.Time()); skew > window || skew < -window {
			return nil, fmt.Errorf("timestamp %v from now, outside ±%v: %w", -skew.Round(time.Second), window, p2p.ErrIgnore)
		}
		if err := m.msg.Verify(); err != nil {
			return nil, err
		}
		if traffic != nil {
			traffic.Info("channel message", "channel", m.msg.Channel, "author", m.msg.Author.String(),
				"username", m.msg.Username, "body", m.msg.Body)
		}
		return m, nil
	}
}

// ensure the payload de-duplicates by author and message ID.
var _ p2p.Keyed = (*meshMessage)(nil)
