package jsonlimit

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"
)

// depth returns how deep valid JSON nests, by encoding/json's tokens.
func depth(t *testing.T, data []byte) int {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // a valid number too large for a float64 is still valid JSON
	d, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return deepest
		}
		if err != nil {
			t.Fatalf("json.Valid accepted %q, the decoder refuses it: %v", data, err)
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			d++
			deepest = max(deepest, d)
		case json.Delim('}'), json.Delim(']'):
			d--
		}
	}
}

// FuzzCheckDepth: on valid JSON, CheckDepth refuses exactly what nests
// deeper than the limit, as encoding/json counts it (whatever brackets
// strings hold); on anything else it never panics.
func FuzzCheckDepth(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":2}]}`, `[[[[]]]]`, `{"s":"[[[[\"]]"}`, `{"s":"\\\\"}`,
		`"\u005b"`, `[{"a":"\\"},[]]`, `not json`, `{"type":"send","body":"}}}]]]"}`, "[\"\\\"\"]"} {
		f.Add([]byte(s), uint8(2))
	}
	f.Fuzz(func(t *testing.T, data []byte, limit uint8) {
		lim := int(limit % 16)
		err := CheckDepth(data, lim)
		if !json.Valid(data) {
			return
		}
		if d := depth(t, data); (err == nil) != (d <= lim) {
			t.Fatalf("CheckDepth(%q, %d) = %v; the JSON nests %d deep", data, lim, err, d)
		}
	})
}
