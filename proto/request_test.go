package proto

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzDecodeRequest: any input is decoded or refused with a named error,
// never a panic; what is accepted has a type; and where no field name is
// spelled in another case, the result is encoding/json's (the reference
// decoder differs from it only in matching names exactly).
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{
		`{"type":"login","key":"00","sig":"11"}`,
		`{"type":"send","channel":"lobby","username":"a","body":"hi","ts":1,"id":"00","sig":"00"}`,
		`{"type":5}`, `[[[[[[[[[[]]]]]]]]]]`, `{"type":"x","ts":"1"}`, `"\u0000"`, `{"a":"\"{{{{{{{{{{"}`,
		`{"Type":"join","channel":"a"}`, `{"type":"join","CHANNEL":"b","channel":"a"}`, `{"type":"x","\u017fig":"s"}`,
		`{"type":"x","body":"\u00e9"}`, `{"type":"x","ts":null,"body":null}`, `null`, `{"type":"x","ts":1.5}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := DecodeRequest(data)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || re.msg == "" || !errors.Is(err, ErrMalformed) {
				t.Fatalf("unnamed error %#v", err)
			}
			return
		}
		if req.Type == "" {
			t.Fatal("accepted a request without a type")
		}
		if !plainFieldNames(data) {
			return
		}
		var want Request
		if err := json.Unmarshal(data, &want); err != nil {
			t.Fatalf("accepted %q, encoding/json refuses it: %v", data, err)
		}
		if !reflect.DeepEqual(req, want) {
			t.Fatalf("%q:\n got %+v\nwant %+v", data, req, want)
		}
	})
}

// plainFieldNames reports whether data is a JSON object none of whose
// names encoding/json would match to a Request field other than by exact
// spelling: every name is ASCII and is either a field's name or equal to
// none in any case.
func plainFieldNames(data []byte) bool {
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil {
		return false
	}
	for name := range fields {
		for i := 0; i < len(name); i++ {
			if name[i] >= 0x80 {
				return false
			}
		}
		if (&Request{}).stringField(name) == nil && name != "ts" {
			for _, f := range requestFieldNames() {
				if strings.EqualFold(name, f) {
					return false
				}
			}
		}
	}
	return true
}

func requestFieldNames() []string {
	var names []string
	rt := reflect.TypeFor[Request]()
	for i := range rt.NumField() {
		names = append(names, jsonName(rt.Field(i)))
	}
	return names
}

// FuzzDecodeFlatRequest: whatever the fast decoder accepts, the reference
// decodes to the same request.
func FuzzDecodeFlatRequest(f *testing.F) {
	for _, s := range []string{
		`{"type":"send","channel":"lobby","username":"a","body":"hi","ts":1700000000000,"id":"00","sig":"00"}`,
		` { "type" : "login" , "key" : "ab", "sig":"cd" } `, `{"type":"x","ts":-0}`, `{"type":"x","ts":01}`,
		`{"type":"x","ts":1.5}`, `{"type":"x","ts":1e3}`, `{"type":"x","ts":99999999999999999999}`,
		`{"Type":"x"}`, `{"type":"x","type":"y"}`, `{"type":"x","body":"\u00e9"}`, `{"type":"x","body":"é"}`,
		`{"type":"x","body":"\xff"}`, `{"type":"x"} x`, `{"type":"x",}`, `{"type":null}`, `{}`, `{"type":""}`,
		`{"type":"x","other":1}`, `{"type":"x","body":"a	b"}`, "{\"type\":\"x\"}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, ok := DecodeFlatRequest(data)
		if !ok {
			return
		}
		var want Request
		if err := unmarshalExact(data, &want); err != nil {
			t.Fatalf("fast decoder accepted %q, the reference refuses it: %v", data, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n got %+v\nwant %+v", data, got, want)
		}
		if got.Type == "" {
			t.Fatalf("accepted %q without a type", data)
		}
	})
}

// A field added to Request but not to the fast decoder would send every
// request carrying it down the slow path, or worse, be decoded differently
// by the two: the fast decoder must take each string and integer field,
// by its exact name. The nested fields of history requests (a list, an
// object) are the reference decoder's: those requests are rare.
func TestFlatRequestKnowsEveryField(t *testing.T) {
	rt := reflect.TypeFor[Request]()
	for i := range rt.NumField() {
		f := rt.Field(i)
		name := jsonName(f)
		var value string
		var want reflect.Value
		switch f.Type.Kind() {
		case reflect.String:
			value, want = `"v`+name+`"`, reflect.ValueOf("v"+name)
		case reflect.Int64:
			value, want = `-42`, reflect.ValueOf(int64(-42))
		case reflect.Slice, reflect.Struct:
			if name != "have" && name != "message" {
				t.Errorf("Request.%s is a %s: only history's have and history_answer's message may be", f.Name, f.Type)
			}
			continue
		default:
			t.Fatalf("Request.%s is a %s: DecodeFlatRequest knows strings and integers only", f.Name, f.Type)
		}
		data := `{"type":"t","` + name + `":` + value + `}`
		if name == "type" {
			data = `{"type":` + value + `}`
		}
		got, ok := DecodeFlatRequest([]byte(data))
		if !ok {
			t.Errorf("Request.%s (%q): the fast decoder does not take %s", f.Name, name, data)
			continue
		}
		if v := reflect.ValueOf(got).Field(i); !v.Equal(want) {
			t.Errorf("Request.%s: the fast decoder made %v of %s", f.Name, v, data)
		}
	}
}

// Request carries every field of every object a client sends, with the
// same name and type, so the node sees all a client may say.
func TestRequestCoversClientObjects(t *testing.T) {
	fields := map[string]reflect.Type{}
	rt := reflect.TypeFor[Request]()
	for i := range rt.NumField() {
		fields[jsonName(rt.Field(i))] = rt.Field(i).Type
	}
	// Fields only a node's objects of these types carry.
	nodeOnly := map[string]bool{"bundle.present": true}
	for _, obj := range []Object{&Login{}, &Join{}, &Leave{}, &Send{}, &Whois{}, &Bundle{}, &DM{}, &Ping{}, &Pong{}, &History{}, &HistoryAnswer{},
		&PresenceRefresh{}, &NamesRequest{}} {
		ot := reflect.TypeOf(obj).Elem()
		for i := range ot.NumField() {
			name := jsonName(ot.Field(i))
			if nodeOnly[obj.Type()+"."+name] {
				continue
			}
			if typ, ok := fields[name]; !ok || typ != ot.Field(i).Type {
				t.Errorf("%s's field %q (%s) is not in Request", obj.Type(), name, ot.Field(i).Type)
			}
		}
	}
}

// Requests as a client written from PROTOCOL.md sends them, and as one
// that does not spell fields as PROTOCOL.md does: a field in another case
// is unknown and ignored, on both paths.
func TestDecodeRequestFieldNames(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Request
		wantErr bool
	}{
		{in: `{"type":"join","channel":"lobby","username":"alice"}`, want: Request{Type: "join", Channel: "lobby", Username: "alice"}},
		{in: `{"Type":"join","channel":"lobby","username":"alice"}`, wantErr: true}, // no "type"
		{in: `{"type":"join","channel":"lobby","CHANNEL":"other","username":"alice"}`, want: Request{Type: "join", Channel: "lobby", Username: "alice"}},
		{in: `{"type":"join","CHANNEL":"other","channel":"lobby","username":"alice"}`, want: Request{Type: "join", Channel: "lobby", Username: "alice"}},
		{in: `{"type":"join","Channel":"lobby","username":"alice"}`, want: Request{Type: "join", Username: "alice"}},
		{in: `{"type":"send","TS":5,"ts":7}`, want: Request{Type: "send", TS: 7}},
		{in: `{"type":"login","\u017fig":"x","sig":"y"}`, want: Request{Type: "login", Sig: "y"}},
		{in: `{"type":"login","sig":"y","\u017fig":"x"}`, want: Request{Type: "login", Sig: "y"}},
		{in: `{"type":"login","Sig":1}`, want: Request{Type: "login"}}, // unknown, so its type does not matter
	} {
		got, err := DecodeRequest([]byte(tc.in))
		switch {
		case tc.wantErr && err == nil:
			t.Errorf("%s: accepted as %+v", tc.in, got)
		case !tc.wantErr && err != nil:
			t.Errorf("%s: %v", tc.in, err)
		case !tc.wantErr && !reflect.DeepEqual(got, tc.want):
			t.Errorf("%s:\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
	}
}

// The messages of refused requests name the problem.
func TestDecodeRequestErrors(t *testing.T) {
	for in, want := range map[string]string{
		`{"type":"send","ts":"1"}`:          `field "ts" must be a number`,
		`{"type":"send","body":5}`:          `field "body" must be a string`,
		`{"channel":"lobby"}`:               `missing field "type"`,
		`[1]`:                               `not a JSON object: a JSON array`,
		`{"type":"x"`:                       `not a JSON object: unexpected end of JSON input`,
		`{"type":"x","a":[[[[[[[[]]]]]]]]}`: `nest`,
	} {
		_, err := DecodeRequest([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want an ErrMalformed saying %q", in, err, want)
		}
	}
}

func BenchmarkDecodeRequest(b *testing.B) {
	data := []byte(`{"type":"send","channel":"bench","username":"s0","body":"m000123 hello there","ts":1700000000000,"id":"00112233445566778899aabbccddeeff","sig":"` + hex.EncodeToString(make([]byte, 64)) + `"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeRequest(data); err != nil {
			b.Fatal(err)
		}
	}
}
