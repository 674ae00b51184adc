package client

import (
	"fmt"
	"strings"
	"testing"

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
