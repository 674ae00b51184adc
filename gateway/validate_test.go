package gateway

import (
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"darkchat/identity"
	"darkchat/p2p"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Timestamps outside the window are reported with the right direction,
// including the extremes, where ts − now does not fit in a Duration.
func TestCheckTimestamp(t *testing.T) {
	now := time.UnixMilli(1764086400123)
	ms := now.UnixMilli()
	const window = 2 * time.Minute
	for _, tc := range []struct {
		name string
		ts   int64
		ok   bool
		gap  string
	}{
		{"now", ms, true, ""},
		{"window edge, past", ms - window.Milliseconds(), true, ""},
		{"window edge, future", ms + window.Milliseconds(), true, ""},
		{"just past the window", ms - window.Milliseconds() - 1, false, "2m0s behind"},
		{"just ahead of the window", ms + window.Milliseconds() + 1, false, "2m0s ahead of"},
		{"ten minutes old", ms - 10*60*1000, false, "10m0s behind"},
		{"an hour ahead", ms + 3600*1000, false, "1h0m0s ahead of"},
		{"zero", 0, false, "490024h0m0s behind"},
		{"max int64", math.MaxInt64, false, "over 292 years ahead of"},
		{"min int64", math.MinInt64, false, "over 292 years behind"},
		{"max int64 - 1", math.MaxInt64 - 1, false, "over 292 years ahead of"},
		{"min int64 + 1", math.MinInt64 + 1, false, "over 292 years behind"},
	} {
		ok, gap := checkTimestamp(tc.ts, now, window)
		if ok != tc.ok || gap != tc.gap {
			t.Errorf("%s (ts %d): got %v %q, want %v %q", tc.name, tc.ts, ok, gap, tc.ok, tc.gap)
		}
	}
}

// The mesh validator and a session report extreme timestamps with the
// right sign.
func TestExtremeTimestampErrors(t *testing.T) {
	key, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	validate := ChannelValidator(nil, DefaultTimestampWindow, DefaultAuthorLimit, nil)
	for _, tc := range []struct {
		ts   int64
		want string
	}{
		{math.MaxInt64, "ahead of"},
		{math.MinInt64, "behind"},
	} {
		m, err := identity.NewChannelMessage(key, "lobby", "u", "x", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		m.Timestamp = tc.ts
		m.Sign(key)
		wire, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		_, err = validate("", "lobby", wire)
		if !errors.Is(err, p2p.ErrIgnore) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("validator, ts %d: %v; want an ignore error saying %q", tc.ts, err, tc.want)
		}
	}

	a := startNode(t, nil)
	c := dialTCP(t, a.tcpAddr)
	c.login()
	c.join("lobby", "u")
	for _, tc := range []struct {
		ts   int64
		want string
	}{
		{math.MaxInt64, "over 292 years ahead of the node's clock"},
		{math.MinInt64, "over 292 years behind the node's clock"},
		{time.Now().Add(-10 * time.Minute).UnixMilli(), "10m0s behind the node's clock"},
	} {
		c.send(map[string]any{"type": "send", "channel": "lobby", "username": "u", "body": "x", "ts": tc.ts,
			"id": hex.EncodeToString(make([]byte, identity.MessageIDSize)), "sig": hex.EncodeToString(make([]byte, identity.SignatureSize))})
		if f := c.expectError(codeBadTimestamp); !strings.Contains(f.Message, tc.want) {
			t.Errorf("session, ts %d: %q, want %q", tc.ts, f.Message, tc.want)
		}
	}
}

// A message a little outside the window is ignored (an honest peer may have
// forwarded it just in time); one more than twice the window off, from a
// peer, is rejected as a replay; from a local session it is only refused.
func TestStaleMessagesFromPeers(t *testing.T) {
	now := time.Now()
	validate := ChannelValidator(func() time.Time { return now }, DefaultTimestampWindow, DefaultAuthorLimit, nil)
	key := mustKey(t)
	send := func(from peer.ID, age time.Duration) error {
		m, err := identity.NewChannelMessage(key, "lobby", "u", "hi", now.Add(-age))
		if err != nil {
			t.Fatal(err)
		}
		data, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		_, err = validate(from, "lobby", data)
		return err
	}
	if err := send("peer", DefaultTimestampWindow+time.Minute); !errors.Is(err, p2p.ErrIgnore) {
		t.Errorf("just stale, from a peer: %v, want ignored", err)
	}
	if err := send("peer", 2*DefaultTimestampWindow+time.Minute); err == nil || errors.Is(err, p2p.ErrIgnore) {
		t.Errorf("a replay from long ago, from a peer: %v, want rejected", err)
	}
	if err := send("", 2*DefaultTimestampWindow+time.Minute); !errors.Is(err, p2p.ErrIgnore) {
		t.Errorf("long stale, from a local session: %v, want ignored", err)
	}
}
