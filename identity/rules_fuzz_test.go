package identity

import (
	"bytes"
	"testing"
)

// FuzzChannelRules: the decoder never panics, and what it accepts encodes
// back to the same bytes (one encoding per record).
func FuzzChannelRules(f *testing.F) {
	owner, _ := NewKeyFromSeed(bytes.Repeat([]byte{7}, SeedSize))
	name, _ := OwnedChannelName("dev", owner.Public())
	r, _ := NewChannelRules(owner, name, rulesNow)
	r.Topic = "topic"
	r.SetBans([]PublicKey{{1}, {2}})
	r.Sign(owner)
	w, _ := r.MarshalBinary()
	f.Add(w)
	k, _ := NewChannelKick(owner, name, PublicKey{3}, "reason", rulesNow)
	kw, _ := k.MarshalBinary()
	f.Add(kw)
	f.Fuzz(func(t *testing.T, data []byte) {
		var r ChannelRules
		if r.UnmarshalBinary(data) == nil {
			again, err := r.MarshalBinary()
			if err != nil || !bytes.Equal(again, data) {
				t.Fatalf("accepted record does not encode back: %v", err)
			}
			r.Verify(rulesNow)
		}
		var k ChannelKick
		if k.UnmarshalBinary(data) == nil {
			again, err := k.MarshalBinary()
			if err != nil || !bytes.Equal(again, data) {
				t.Fatalf("accepted kick does not encode back: %v", err)
			}
		}
	})
}
