package client

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"darkchat/identity"
)

// A Store keeps at most storeBytes in all: past it, the channels written
// to longest ago are forgotten, and the one being written keeps its
// messages.
func TestStoreBoundedInBytes(t *testing.T) {
	st := NewStore()
	body := strings.Repeat("x", 4000)
	perChannel := HistoryKeep
	channels := storeBytes/(perChannel*(4000+200)) + 2
	for c := range channels {
		for i := range perChannel {
			var m identity.ChannelMessage
			m.Channel, m.Username, m.Body = fmt.Sprint("c", c), "u", body
			m.ID[0], m.ID[1], m.ID[2] = byte(c), byte(i>>8), byte(i)
			st.keep(m)
		}
	}
	st.mu.Lock()
	bytes, logs := st.bytes, len(st.logs)
	st.mu.Unlock()
	if bytes > storeBytes {
		t.Errorf("store holds %d bytes, want at most %d", bytes, storeBytes)
	}
	if n := st.Len(fmt.Sprint("c", channels-1)); n != perChannel {
		t.Errorf("the channel written last keeps %d messages, want %d", n, perChannel)
	}
	if st.Len("c0") != 0 {
		t.Error("the channel written to longest ago was not forgotten")
	}
	t.Logf("%d channels of %d messages of 4 KB: %d kept, %d bytes", channels, perChannel, logs, bytes)
}

// A message sent after others of its channel is dated after them, even
// when they came within the same millisecond or from a clock ahead, but
// never more than maxTimestampLead ahead of the sender's clock.
func TestSendTimeAfterWhatWasSeen(t *testing.T) {
	st := NewStore()
	now := time.UnixMilli(1_764_086_400_000)
	if got := st.sendTime("lobby", now); !got.Equal(now) {
		t.Fatalf("empty channel: %v, want now", got)
	}
	seen := identity.ChannelMessage{Channel: "lobby", Username: "bob", Timestamp: now.UnixMilli()}
	st.keep(seen)
	if got := st.sendTime("lobby", now); got.UnixMilli() != now.UnixMilli()+1 {
		t.Errorf("after a message of the same millisecond: %d, want %d", got.UnixMilli(), now.UnixMilli()+1)
	}
	seen.ID[0], seen.Timestamp = 1, now.Add(time.Minute).UnixMilli() // a clock a minute ahead
	st.keep(seen)
	if got := st.sendTime("lobby", now); !got.Equal(now.Add(maxTimestampLead)) {
		t.Errorf("after a message dated a minute ahead: %v, want now + %v", got.Sub(now), maxTimestampLead)
	}
	if got := st.sendTime("other", now); !got.Equal(now) {
		t.Errorf("another channel: %v, want now", got)
	}
}
