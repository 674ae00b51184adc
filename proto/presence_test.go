package proto

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"darkchat/identity"
)

// The presence objects of PROTOCOL.md §2.12 decode as written there and
// encode back to the same text.
func TestPresenceObjects(t *testing.T) {
	for _, line := range []string{
		`{"type":"presence","channel":"dev","key":"` + testKey + `","username":"bob","state":"here","sessions":1}`,
		`{"type":"presence","channel":"dev","key":"` + testKey + `","username":"bob","state":"gone"}`,
		`{"type":"names","channel":"dev","members":[{"key":"` + testKey + `","username":"alice"}],"more":true}`,
		`{"type":"names","channel":"dev","members":[]}`,
		`{"type":"bundle","key":"` + testKey + `","bundle":"` + testBundle + `","present":[{"channel":"dev","username":"bob"}]}`,
	} {
		obj, err := Decode([]byte(line))
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		again, err := Encode(obj)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != line {
			t.Errorf("re-encoded:\n got %s\nwant %s", again, line)
		}
	}
	for _, bad := range []string{
		`{"type":"presence","channel":"dev","key":"` + testKey + `","username":"bob","state":"away"}`,
		`{"type":"presence","channel":"Dev","key":"` + testKey + `","username":"bob","state":"here"}`,
		`{"type":"names","channel":"dev","members":[{"key":"zz","username":"alice"}]}`,
		`{"type":"names","channel":"dev","members":[` + strings.Repeat(`{"key":"`+testKey+`","username":"a"},`, MaxNamesPerObject) + `{"key":"` + testKey + `","username":"a"}]}`,
	} {
		if _, err := Decode([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%.80s…: %v, want malformed", bad, err)
		}
	}
}

// A join and a refresh carry the records as hex, which decode back to the
// records signed.
func TestPresenceRecordsInRequests(t *testing.T) {
	k, err := identity.NewKeyFromSeed(bytes.Repeat([]byte{1}, identity.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	here, gone, err := identity.NewPresencePair(k, "dev", "alice", identity.PresenceSession{7}, time.UnixMilli(1764086400000), PresenceTTL)
	if err != nil {
		t.Fatal(err)
	}
	hHex, _ := EncodePresence(&here)
	gHex, _ := EncodePresence(&gone)
	join := &Join{Channel: "dev", Username: "alice", Presence: hHex, Gone: gHex}
	data, err := Encode(join)
	if err != nil {
		t.Fatal(err)
	}
	req, err := DecodeRequest(data)
	if err != nil || req.Presence != hHex || req.Gone != gHex {
		t.Fatalf("join as a request: %+v, %v", req, err)
	}
	got, _, err := DecodePresence("presence", req.Presence)
	if err != nil || got != here {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	if _, _, err := DecodePresence("gone", gHex[:len(gHex)-2]); err == nil {
		t.Error("a truncated record decoded")
	}
	refresh, _ := Encode(&PresenceRefresh{Channel: "dev", Presence: hHex, Gone: gHex})
	if req, err := DecodeRequest(refresh); err != nil || req.Type != "presence" || req.Gone != gHex {
		t.Errorf("refresh as a request: %+v, %v", req, err)
	}
	names, _ := Encode(&NamesRequest{Channel: "dev"})
	if string(names) != `{"type":"names","channel":"dev"}` {
		t.Errorf("names request: %s", names)
	}
}
