package proto

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"

	"darkchat/internal/jsonlimit"
)

// Request is any object a client sends, flattened: which fields matter
// depends on Type. A node decodes every request into it (DecodeRequest)
// rather than into the object of its type, so the common shapes need one
// pass and no allocation beyond one copy of the text. Its fields are the
// union of the fields of Login, Join, Leave, Send, Whois, Bundle, DM,
// History and HistoryAnswer
// (TestRequestCoversClientObjects); DecodeFlatRequest must know every one
// of them (TestFlatRequestKnowsEveryField).
type Request struct {
	Type     string `json:"type"`
	Key      string `json:"key"`
	Sig      string `json:"sig"`
	Channel  string `json:"channel"`
	Username string `json:"username"`
	Body     string `json:"body"`
	TS       int64  `json:"ts"`
	ID       string `json:"id"`
	Bundle   string `json:"bundle"`
	Envelope string `json:"envelope"`
	Ref      string `json:"ref"`
	// send: the causal context of a version-2 message
	Prev string `json:"prev"`
	Refs string `json:"refs"`
	// join and presence: presence records (PROTOCOL.md §2.12)
	Presence string `json:"presence"`
	Gone     string `json:"gone"`
	// rules and kick: a signed record, base64 (PROTOCOL.md §2.13)
	Record string `json:"record"`
	// history and history_answer
	Limit   int64    `json:"limit"`
	Since   int64    `json:"since"`
	Before  int64    `json:"before"`
	Have    []string `json:"have"`
	Message Message  `json:"message"`
}

// RequestError is why DecodeRequest refused a request. Its text is meant
// for the client: a node answers bad_json with it.
type RequestError struct{ msg string }

func (e *RequestError) Error() string { return e.msg }

// Unwrap makes a RequestError an ErrMalformed.
func (e *RequestError) Unwrap() error { return ErrMalformed }

func requestErrorf(format string, args ...any) *RequestError {
	return &RequestError{msg: fmt.Sprintf(format, args...)}
}

// DecodeRequest parses one client request: a JSON object nesting at most
// MaxDepth levels, with a string "type" and every known field of its JSON
// type. Field names match exactly; others are ignored. Values are not
// checked beyond their JSON type: what a field must hold depends on the
// request, and the node answers each problem with its own code. The common
// shape goes through DecodeFlatRequest; the rest through a reference
// decoder, which also bounds nesting first (encoding/json's own limit is
// 10000 levels).
func DecodeRequest(data []byte) (Request, error) {
	if r, ok := DecodeFlatRequest(data); ok {
		return r, nil
	}
	var r Request
	if err := jsonlimit.CheckDepth(data, MaxDepth); err != nil {
		return r, &RequestError{msg: err.Error()}
	}
	if err := unmarshalExact(data, &r); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			if te.Field == "" {
				return r, requestErrorf("not a JSON object: a JSON %s", te.Value)
			}
			return r, requestErrorf("field %q must be a %s", te.Field, jsonKind(te))
		}
		return r, requestErrorf("not a JSON object: %v", err)
	}
	if r.Type == "" {
		return r, requestErrorf(`missing field "type"`)
	}
	return r, nil
}

// jsonKind names the JSON type a Request field holds.
func jsonKind(te *json.UnmarshalTypeError) string {
	switch te.Type.Kind().String() {
	case "int64":
		return "number"
	default:
		return te.Type.Kind().String()
	}
}

// DecodeFlatRequest decodes the common shape of a request without
// encoding/json: one flat object whose keys are Request's field names
// spelled exactly, with string values free of escapes and control bytes
// (valid UTF-8) and "ts" a plain integer. It reports false for anything
// else (escapes, other keys, null, nesting, numbers in string fields,
// invalid JSON), which DecodeRequest then decodes or refuses by the
// reference; for what it accepts, the result is the reference's. The
// strings share one copy of data.
func DecodeFlatRequest(data []byte) (Request, bool) {
	var r Request
	i := skipJSONSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return r, false
	}
	i = skipJSONSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return r, false // {}: no type; the reference reports it
	}
	var text string // one copy of data, sliced for every string field
	for {
		// key
		if i >= len(data) || data[i] != '"' {
			return r, false
		}
		ks := i + 1
		ke := ks
		for ke < len(data) && data[ke] != '"' && data[ke] != '\\' {
			ke++
		}
		if ke >= len(data) || data[ke] != '"' {
			return r, false
		}
		key := data[ks:ke]
		i = skipJSONSpace(data, ke+1)
		if i >= len(data) || data[i] != ':' {
			return r, false
		}
		i = skipJSONSpace(data, i+1)
		if i >= len(data) {
			return r, false
		}
		if k := string(key); k == "ts" || k == "limit" || k == "since" || k == "before" {
			j := i
			if j < len(data) && data[j] == '-' {
				j++
			}
			ds := j
			for j < len(data) && data[j] >= '0' && data[j] <= '9' {
				j++
			}
			if j == ds || (data[ds] == '0' && j-ds > 1) {
				return r, false
			}
			if j < len(data) && (data[j] == '.' || data[j] == 'e' || data[j] == 'E') {
				return r, false
			}
			ts, err := strconv.ParseInt(string(data[i:j]), 10, 64)
			if err != nil {
				return r, false
			}
			switch string(key) {
			case "ts":
				r.TS = ts
			case "limit":
				r.Limit = ts
			case "before":
				r.Before = ts
			default:
				r.Since = ts
			}
			i = j
		} else {
			field := r.stringField(string(key))
			if field == nil {
				return r, false
			}
			if data[i] != '"' {
				return r, false
			}
			vs := i + 1
			ve, ascii := vs, true
			for ; ve < len(data); ve++ {
				c := data[ve]
				if c == '"' || c == '\\' || c < 0x20 {
					break
				}
				if c >= utf8.RuneSelf {
					ascii = false
				}
			}
			if ve >= len(data) || data[ve] != '"' {
				return r, false
			}
			if !ascii && !utf8.Valid(data[vs:ve]) {
				return r, false
			}
			if text == "" {
				text = string(data)
			}
			*field = text[vs:ve]
			i = ve + 1
		}
		i = skipJSONSpace(data, i)
		if i >= len(data) {
			return r, false
		}
		if data[i] == ',' {
			i = skipJSONSpace(data, i+1)
			continue
		}
		if data[i] != '}' {
			return r, false
		}
		if skipJSONSpace(data, i+1) != len(data) || r.Type == "" {
			return r, false
		}
		return r, true
	}
}

// stringField is the string field named key on the wire, or nil.
func (r *Request) stringField(key string) *string {
	switch key {
	case "type":
		return &r.Type
	case "key":
		return &r.Key
	case "sig":
		return &r.Sig
	case "channel":
		return &r.Channel
	case "username":
		return &r.Username
	case "body":
		return &r.Body
	case "id":
		return &r.ID
	case "bundle":
		return &r.Bundle
	case "envelope":
		return &r.Envelope
	case "ref":
		return &r.Ref
	case "prev":
		return &r.Prev
	case "refs":
		return &r.Refs
	case "record":
		return &r.Record
	case "presence":
		return &r.Presence
	case "gone":
		return &r.Gone
	}
	return nil
}

func skipJSONSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}
