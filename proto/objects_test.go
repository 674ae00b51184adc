package proto

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

const (
	testChallenge = "dcl1.12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN.9f86d081884c7d659a2feaa0c55ad015.1764086460"
	testKey       = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"
	testID        = "00112233445566778899aabbccddeeff"
)

var (
	testSig      = strings.Repeat("ab", 64)
	testBundle   = strings.Repeat("AQID", 444) + "BA==" // 1336 bytes
	testEnvelope = strings.Repeat("AQID", 555)          // 1665 bytes
	maxEnvelope  = strings.Repeat("AQID", 3115)         // 9345 bytes
	testRef      = "5f1c00112233445566778899aabbccdd"
)

// validObjects are PROTOCOL.md's examples, one per type.
var validObjects = map[string]Object{
	`{"type":"hello","protocol":1,"node":"12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN","challenge":"` + testChallenge + `","limits":{"max_line":32768,"max_body":4096,"max_channels":32,"rate":5,"burst":20}}`: &Hello{
		Protocol: 1, Node: "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN", Challenge: testChallenge,
		Limits: Limits{MaxLine: 32768, MaxBody: 4096, MaxChannels: 32, Rate: 5, Burst: 20}},
	`{"type":"login","key":"` + testKey + `","sig":"` + testSig + `"}`: &Login{Key: testKey, Sig: testSig},
	`{"type":"welcome","key":"` + testKey + `","node":"12D3KooW"}`:     &Welcome{Key: testKey, Node: "12D3KooW"},
	`{"type":"join","channel":"lobby","username":"alice"}`:             &Join{Channel: "lobby", Username: "alice"},
	`{"type":"joined","channel":"lobby","username":"alice"}`:           &Joined{Channel: "lobby", Username: "alice"},
	`{"type":"leave","channel":"lobby"}`:                               &Leave{Channel: "lobby"},
	`{"type":"left","channel":"lobby"}`:                                &Left{Channel: "lobby"},
	`{"type":"ok","id":"` + testID + `"}`:                              &OK{ID: testID},
	`{"type":"ping"}`:                                                  &Ping{},
	`{"type":"pong"}`:                                                  &Pong{},
	`{"type":"error","code":"not_joined","message":"join channel lobby first","id":"` + testID + `","channel":"lobby"}`: &Error{
		Code: "not_joined", Message: "join channel lobby first", ID: testID, Channel: "lobby"},
	`{"type":"send","channel":"lobby","username":"alice","body":"hello <b>","ts":1764086400123,"id":"` + testID + `","sig":"` + testSig + `"}`: &Send{
		Channel: "lobby", Username: "alice", Body: "hello <b>", TS: 1764086400123, ID: testID, Sig: testSig},
	`{"type":"message","channel":"lobby","username":"bob","key":"` + testKey + `","body":"hi alice","ts":1764086401000,"id":"` + testID + `","sig":"` + testSig + `"}`: &Message{
		Channel: "lobby", Username: "bob", Key: testKey, Body: "hi alice", TS: 1764086401000, ID: testID, Sig: testSig},
	`{"type":"login","key":"` + testKey + `","sig":"` + testSig + `","bundle":"` + testBundle + `"}`: &Login{Key: testKey, Sig: testSig, Bundle: testBundle},
	`{"type":"whois","key":"` + testKey + `"}`:                                                       &Whois{Key: testKey},
	`{"type":"bundle","key":"` + testKey + `","bundle":"` + testBundle + `"}`:                        &Bundle{Key: testKey, Bundle: testBundle},
	`{"type":"bundle","bundle":"` + testBundle + `"}`:                                                &Bundle{Bundle: testBundle},
	`{"type":"dm","ref":"` + testRef + `","envelope":"` + testEnvelope + `"}`:                        &DM{Ref: testRef, Envelope: testEnvelope},
	`{"type":"dm","envelope":"` + maxEnvelope + `"}`:                                                 &DM{Envelope: maxEnvelope},
	`{"type":"dm_sent","ref":"` + testRef + `"}`:                                                     &DMSent{Ref: testRef},
	`{"type":"error","code":"no_route","message":"recipient offline","ref":"` + testRef + `"}`:       &Error{Code: "no_route", Message: "recipient offline", Ref: testRef},
	`{"type":"error","code":"unknown_user","message":"no bundle","key":"` + testKey + `"}`:           &Error{Code: "unknown_user", Message: "no bundle", Key: testKey},
}

func TestDecodeValid(t *testing.T) {
	for in, want := range validObjects {
		got, err := Decode([]byte(in))
		if err != nil {
			t.Errorf("Decode(%s): %v", in, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Decode(%s) = %#v, want %#v", in, got, want)
		}
		enc, err := Encode(got)
		if err != nil {
			t.Fatalf("Encode(%#v): %v", got, err)
		}
		if string(enc) != in {
			t.Errorf("Encode round trip:\n got %s\nwant %s", enc, in)
		}
	}
}

func TestDecodeLenient(t *testing.T) {
	for _, in := range []string{
		`{"type":"ping","later":{"field":[1,2,3]}}`,                     // unknown fields are ignored
		` {"type":"pong"} `,                                             // white space around
		`{"type":"error","code":"bad_channel","channel":"Not A Name!"}`, // echoes the bad name
		`{"type":"ok","id":"` + testID + `","a":[[[[[[[1]]]]]]]}`,       // 8 levels deep
	} {
		if _, err := Decode([]byte(in)); err != nil {
			t.Errorf("Decode(%s): %v", in, err)
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	tests := []struct {
		name, in string
		want     error
	}{
		{"empty", ``, ErrMalformed},
		{"not json", `hello`, ErrMalformed},
		{"array", `[{"type":"ping"}]`, ErrMalformed},
		{"null", `null`, ErrMalformed},
		{"string", `"ping"`, ErrMalformed},
		{"trailing garbage", `{"type":"ping"} x`, ErrMalformed},
		{"two objects", `{"type":"ping"}{"type":"ping"}`, ErrMalformed},
		{"missing type", `{"code":"x"}`, ErrMalformed},
		{"type not a string", `{"type":1}`, ErrMalformed},
		{"unknown type", `{"type":"dm_later"}`, ErrUnknownType},
		{"invalid utf-8", "{\"type\":\"ping\",\"x\":\"\xff\"}", ErrMalformed},
		{"too deep", `{"type":"ping","a":[[[[[[[[1]]]]]]]]}`, ErrMalformed},
		{"too large", `{"type":"ping","pad":"` + strings.Repeat("x", MaxNodeLine) + `"}`, ErrTooLarge},
		{"hello protocol string", `{"type":"hello","protocol":"1","node":"abc","challenge":"` + testChallenge + `"}`, ErrMalformed},
		{"hello protocol float", `{"type":"hello","protocol":1.5,"node":"abc","challenge":"` + testChallenge + `"}`, ErrMalformed},
		{"hello protocol zero", `{"type":"hello","protocol":0,"node":"abc","challenge":"` + testChallenge + `"}`, ErrMalformed},
		{"hello bad node", `{"type":"hello","protocol":1,"node":"ab-c","challenge":"` + testChallenge + `"}`, ErrMalformed},
		{"hello bad challenge", `{"type":"hello","protocol":1,"node":"abc","challenge":"dcl1.abc.00.1"}`, ErrMalformed},
		{"hello negative limit", `{"type":"hello","protocol":1,"node":"abc","challenge":"` + testChallenge + `","limits":{"burst":-1}}`, ErrMalformed},
		{"hello limits not object", `{"type":"hello","protocol":1,"node":"abc","challenge":"` + testChallenge + `","limits":5}`, ErrMalformed},
		{"login short key", `{"type":"login","key":"` + testKey[1:] + `","sig":"` + testSig + `"}`, ErrMalformed},
		{"login uppercase key", `{"type":"login","key":"` + strings.ToUpper(testKey) + `","sig":"` + testSig + `"}`, ErrMalformed},
		{"login short sig", `{"type":"login","key":"` + testKey + `","sig":"` + testSig[2:] + `"}`, ErrMalformed},
		{"welcome no node", `{"type":"welcome","key":"` + testKey + `"}`, ErrMalformed},
		{"join uppercase channel", `{"type":"join","channel":"Lobby","username":"alice"}`, ErrMalformed},
		{"join long username", `{"type":"join","channel":"lobby","username":"` + strings.Repeat("a", 33) + `"}`, ErrMalformed},
		{"joined bad username", `{"type":"joined","channel":"lobby","username":"-alice"}`, ErrMalformed},
		{"joined username escape", `{"type":"joined","channel":"lobby","username":"a\u001b[2J"}`, ErrMalformed},
		{"left no channel", `{"type":"left"}`, ErrMalformed},
		{"ok uppercase id", `{"type":"ok","id":"` + strings.ToUpper(testID) + `"}`, ErrMalformed},
		{"ok id number", `{"type":"ok","id":1}`, ErrMalformed},
		{"send body too large", `{"type":"send","channel":"lobby","username":"alice","body":"` + strings.Repeat("x", 4097) + `","ts":1,"id":"` + testID + `","sig":"` + testSig + `"}`, ErrMalformed},
		{"message ts string", `{"type":"message","channel":"lobby","username":"bob","key":"` + testKey + `","body":"hi","ts":"1","id":"` + testID + `","sig":"` + testSig + `"}`, ErrMalformed},
		{"message ts float", `{"type":"message","channel":"lobby","username":"bob","key":"` + testKey + `","body":"hi","ts":1.5,"id":"` + testID + `","sig":"` + testSig + `"}`, ErrMalformed},
		{"message ts overflow", `{"type":"message","channel":"lobby","username":"bob","key":"` + testKey + `","body":"hi","ts":99999999999999999999,"id":"` + testID + `","sig":"` + testSig + `"}`, ErrMalformed},
		{"message no key", `{"type":"message","channel":"lobby","username":"bob","body":"hi","ts":1,"id":"` + testID + `","sig":"` + testSig + `"}`, ErrMalformed},
		{"message body number", `{"type":"message","channel":"lobby","username":"bob","key":"` + testKey + `","body":5,"ts":1,"id":"` + testID + `","sig":"` + testSig + `"}`, ErrMalformed},
		{"login bundle not base64", `{"type":"login","key":"` + testKey + `","sig":"` + testSig + `","bundle":"not base64!"}`, ErrMalformed},
		{"login bundle too large", `{"type":"login","key":"` + testKey + `","sig":"` + testSig + `","bundle":"` + strings.Repeat("AAAA", 513) + `"}`, ErrMalformed},
		{"whois no key", `{"type":"whois"}`, ErrMalformed},
		{"whois short key", `{"type":"whois","key":"abc"}`, ErrMalformed},
		{"bundle empty", `{"type":"bundle","key":"` + testKey + `","bundle":""}`, ErrMalformed},
		{"bundle bad key", `{"type":"bundle","key":"xyz","bundle":"` + testBundle + `"}`, ErrMalformed},
		{"bundle unpadded", `{"type":"bundle","bundle":"AQI"}`, ErrMalformed},
		{"bundle padding inside", `{"type":"bundle","bundle":"AQ==AQID"}`, ErrMalformed},
		{"bundle three pads", `{"type":"bundle","bundle":"A===AQID"}`, ErrMalformed},
		{"bundle url alphabet", `{"type":"bundle","bundle":"AQ-_"}`, ErrMalformed},
		{"dm no envelope", `{"type":"dm","ref":"x"}`, ErrMalformed},
		{"dm envelope too large", `{"type":"dm","envelope":"` + maxEnvelope + `AQID"}`, ErrMalformed},
		{"dm envelope number", `{"type":"dm","envelope":5}`, ErrMalformed},
		{"dm ref too long", `{"type":"dm","ref":"` + strings.Repeat("r", 65) + `","envelope":"` + testEnvelope + `"}`, ErrMalformed},
		{"dm_sent ref too long", `{"type":"dm_sent","ref":"` + strings.Repeat("r", 65) + `"}`, ErrMalformed},
		{"error no code", `{"type":"error","message":"x"}`, ErrMalformed},
		{"error code charset", `{"type":"error","code":"Bad Code"}`, ErrMalformed},
		{"error bad id", `{"type":"error","code":"duplicate","id":"xyz"}`, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj, err := Decode([]byte(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode = %#v, %v; want an error wrapping %v", obj, err, tt.want)
			}
		})
	}
}

// FuzzDecode: Decode never panics, and what it accepts encodes to
// something it accepts again, unchanged.
func FuzzDecode(f *testing.F) {
	for in := range validObjects {
		f.Add([]byte(in))
	}
	f.Add([]byte(`{"type":"ping","a":[[[[[[[1]]]]]]]}`))
	f.Add([]byte(`{"type":"error","code":"x","message":"\u0000\"\\"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, err := Decode(data)
		if err != nil {
			return
		}
		enc, err := Encode(obj)
		if err != nil {
			t.Fatalf("Encode(%#v): %v", obj, err)
		}
		again, err := Decode(enc)
		if err != nil {
			// Re-encoding may grow an object past the limit (escapes).
			if errors.Is(err, ErrTooLarge) {
				return
			}
			t.Fatalf("Decode(Encode(%#v)) = %v\n%s", obj, err, enc)
		}
		if !reflect.DeepEqual(obj, again) {
			t.Fatalf("round trip changed the object:\n%#v\n%#v", obj, again)
		}
	})
}

// Field names match only as PROTOCOL.md spells them: a field in another
// case (or folding to one, as encoding/json would match) is unknown and
// ignored, so it neither fills nor overrides the real one.
func TestDecodeFieldNamesExact(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Object
	}{
		{`{"type":"join","CHANNEL":"other","channel":"lobby","username":"alice"}`, &Join{Channel: "lobby", Username: "alice"}},
		{`{"type":"join","channel":"lobby","CHANNEL":"other","username":"alice"}`, &Join{Channel: "lobby", Username: "alice"}},
		{`{"type":"ok","ID":"` + strings.ToUpper(testID) + `","id":"` + testID + `"}`, &OK{ID: testID}},
		{`{"type":"login","key":"` + testKey + `","sig":"` + testSig + `","\u017fig":"x"}`, &Login{Key: testKey, Sig: testSig}},
		{`{"type":"hello","protocol":1,"node":"abc","challenge":"` + testChallenge + `","limits":{"MAX_LINE":5,"max_line":1024}}`,
			&Hello{Protocol: 1, Node: "abc", Challenge: testChallenge, Limits: Limits{MaxLine: 1024}}},
	} {
		got, err := Decode([]byte(tc.in))
		if err != nil {
			t.Errorf("Decode(%s): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Decode(%s) = %#v, want %#v", tc.in, got, tc.want)
		}
	}
	for _, in := range []string{
		`{"Type":"ping"}`, // no "type" field at all
		`{"TYPE":"join","channel":"lobby","username":"a"}`,     // likewise
		`{"type":"join","Channel":"lobby","username":"alice"}`, // channel missing
	} {
		if obj, err := Decode([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%s) = %#v, %v; want ErrMalformed", in, obj, err)
		}
	}
}

// The history objects of PROTOCOL.md §2.8 decode as written there, as
// objects and as a node's requests, and their limits hold.
func TestHistoryObjects(t *testing.T) {
	id, key, sig := strings.Repeat("ab", 16), strings.Repeat("cd", 32), strings.Repeat("ef", 64)
	msg := `{"channel":"lobby","username":"bob","key":"` + key + `","body":"hi","ts":1764086401000,"id":"` + id + `","sig":"` + sig + `"}`
	for _, line := range []string{
		`{"type":"history","channel":"lobby","id":"` + id + `","limit":100,"since":1764086000000,"have":["` + id + `"]}`,
		`{"type":"history_request","channel":"lobby","id":"` + id + `","limit":100,"since":1764086000000}`,
		`{"type":"history_answer","id":"` + id + `","message":` + msg + `}`,
		`{"type":"history_end","channel":"lobby","id":"` + id + `","count":12}`,
		`{"type":"message","channel":"lobby","username":"bob","key":"` + key + `","body":"hi","ts":1764086401000,"id":"` + id + `","sig":"` + sig + `","late":true,"history":"` + id + `"}`,
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
	req, err := DecodeRequest([]byte(`{"type":"history_answer","id":"` + id + `","message":` + msg + `}`))
	if err != nil {
		t.Fatal(err)
	}
	if req.ID != id || req.Message.Username != "bob" || req.Message.TS != 1764086401000 || req.Message.Sig != sig {
		t.Errorf("history_answer as a request: %+v", req)
	}
	req, err = DecodeRequest([]byte(`{"type":"history","channel":"lobby","id":"` + id + `","limit":5,"since":7,"have":["` + id + `"]}`))
	if err != nil || req.Limit != 5 || req.Since != 7 || len(req.Have) != 1 || req.Have[0] != id {
		t.Errorf("history as a request: %+v, %v", req, err)
	}
	for _, bad := range []string{
		`{"type":"history","channel":"lobby","id":"` + id + `","limit":201}`,
		`{"type":"history","channel":"lobby","id":"` + id + `","limit":-1}`,
		`{"type":"history","channel":"lobby","id":"` + id + `","have":["zz"]}`,
		`{"type":"history_request","channel":"lobby","id":"` + id + `","limit":0,"since":0}`,
		`{"type":"history_answer","id":"` + id + `","message":{"channel":"lobby"}}`,
		`{"type":"message","channel":"lobby","username":"bob","key":"` + key + `","body":"hi","ts":1,"id":"` + id + `","sig":"` + sig + `","history":"x"}`,
	} {
		if _, err := Decode([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}
