package gateway

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"

	"darkchat/identity"
	"darkchat/internal/jsonlimit"
)

// ProtocolVersion is the client protocol version this gateway speaks.
const ProtocolVersion = 1

// request is any object a client sends; which fields matter depends on
// Type. Unknown fields are ignored so later protocol versions can add some.
type request struct {
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
}

type helloFrame struct {
	Type      string      `json:"type"`
	Protocol  int         `json:"protocol"`
	Node      string      `json:"node"`
	Challenge string      `json:"challenge"`
	Limits    helloLimits `json:"limits"`
}

type helloLimits struct {
	MaxLine     int     `json:"max_line"`
	MaxBody     int     `json:"max_body"`
	MaxChannels int     `json:"max_channels"`
	Rate        float64 `json:"rate"`
	Burst       int     `json:"burst"`
}

type welcomeFrame struct {
	Type string `json:"type"`
	Key  string `json:"key"`
	Node string `json:"node"`
}

type channelFrame struct {
	Type     string `json:"type"`
	Channel  string `json:"channel"`
	Username string `json:"username,omitempty"`
}

type okFrame struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

type messageFrame struct {
	Type     string `json:"type"`
	Channel  string `json:"channel"`
	Username string `json:"username"`
	Key      string `json:"key"`
	Body     string `json:"body"`
	TS       int64  `json:"ts"`
	ID       string `json:"id"`
	Sig      string `json:"sig"`
}

type errorFrame struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	ID      string `json:"id,omitempty"`
	Channel string `json:"channel,omitempty"`
	Ref     string `json:"ref,omitempty"`
	Key     string `json:"key,omitempty"`
}

var (
	pingFrame = []byte(`{"type":"ping"}`)
	pongFrame = []byte(`{"type":"pong"}`)
)

// Error codes (PROTOCOL.md §2.8).
const (
	codeBadJSON          = "bad_json"
	codeTooLarge         = "too_large"
	codeBadFrame         = "bad_frame"
	codeUnknownType      = "unknown_type"
	codeNotLoggedIn      = "not_logged_in"
	codeAlreadyLoggedIn  = "already_logged_in"
	codeBadKey           = "bad_key"
	codeBadSignature     = "bad_signature"
	codeChallengeExpired = "challenge_expired"
	codeLoginTimeout     = "login_timeout"
	codeBadBundle        = "bad_bundle"
	codeUnknownUser      = "unknown_user"
	codeBadEnvelope      = "bad_envelope"
	codeNoRoute          = "no_route"
	codeBadChannel       = "bad_channel"
	codeBadUsername      = "bad_username"
	codeNotJoined        = "not_joined"
	codeTooManyChannels  = "too_many_channels"
	codeBodyTooLarge     = "body_too_large"
	codeBadTimestamp     = "bad_timestamp"
	codeDuplicate        = "duplicate"
	codeRateLimited      = "rate_limited"
	codeTooManyErrors    = "too_many_errors"
	codeTooManySessions  = "too_many_sessions"
	codeNodeFull         = "node_full"
	codeSlowConsumer     = "slow_consumer"
	codeIdleTimeout      = "idle_timeout"
	codeShutdown         = "shutdown"
	codeInternal         = "internal"
)

// clientError is an error reported to the client as an error frame.
type clientError struct {
	code    string
	msg     string
	id      string // message ID the error concerns, if any
	channel string
	ref     string // the client's reference of a DM
	key     string // the key a whois asked for
	closes  bool   // the session ends after reporting it
	// wsClose, when set, is the WebSocket close code for the session's
	// end, if the error code alone does not say (wsCloseCode).
	wsClose uint16
	// protocol marks malformed input or a refused join, which count
	// towards maxErrors.
	protocol bool
}

func (e *clientError) Error() string { return e.code + ": " + e.msg }

func (e *clientError) frame() []byte {
	return mustJSON(errorFrame{Type: "error", Code: e.code, Message: e.msg, ID: e.id, Channel: e.channel, Ref: e.ref, Key: e.key})
}

func errorf(code, format string, args ...any) *clientError {
	return &clientError{code: code, msg: fmt.Sprintf(format, args...)}
}

// decodeRequest parses one client object, bounding its nesting depth first
// (encoding/json's own limit is 10000 levels).
func decodeRequest(data []byte) (request, *clientError) {
	if r, ok := decodeFlatRequest(data); ok {
		return r, nil
	}
	var r request
	if err := jsonlimit.CheckDepth(data, maxJSONDepth); err != nil {
		return r, &clientError{code: codeBadJSON, msg: err.Error(), protocol: true}
	}
	if err := json.Unmarshal(data, &r); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return r, &clientError{code: codeBadJSON, msg: fmt.Sprintf("field %q must be a %s", te.Field, jsonKind(te)), protocol: true}
		}
		return r, &clientError{code: codeBadJSON, msg: "not a JSON object: " + err.Error(), protocol: true}
	}
	if r.Type == "" {
		return r, &clientError{code: codeBadJSON, msg: `missing field "type"`, protocol: true}
	}
	return r, nil
}

func jsonKind(te *json.UnmarshalTypeError) string {
	switch te.Type.Kind().String() {
	case "int64":
		return "number"
	default:
		return te.Type.Kind().String()
	}
}

// mustJSON encodes one of the gateway's own frame types, which cannot
// fail. HTML escaping is off: it would turn each <, > and & of a message
// body into six bytes for no benefit to a chat client.
func mustJSON(v any) []byte {
	switch f := v.(type) {
	case okFrame: // one per message sent: written by hand
		b := make([]byte, 0, len(`{"type":"","id":""}`)+len(f.Type)+len(f.ID))
		b = append(b, `{"type":`...)
		b = appendJSONString(b, f.Type)
		b = append(b, `,"id":`...)
		b = appendJSONString(b, f.ID)
		return append(b, '}')
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("gateway: marshal frame: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func decodeHex(field, s string, size int) ([]byte, *clientError) {
	b := make([]byte, size)
	if cerr := decodeHexInto(b, field, s); cerr != nil {
		return nil, cerr
	}
	return b, nil
}

// decodeHexInto decodes s, which must be exactly 2*len(dst) hex characters,
// into dst without allocating.
func decodeHexInto(dst []byte, field, s string) *clientError {
	if len(s) != 2*len(dst) {
		return &clientError{code: codeBadJSON, msg: fmt.Sprintf("field %q must be %d hex characters, got %d", field, 2*len(dst), len(s)), protocol: true}
	}
	for i := range dst {
		hi, ok1 := unhex(s[2*i])
		lo, ok2 := unhex(s[2*i+1])
		if !ok1 || !ok2 {
			return &clientError{code: codeBadJSON, msg: fmt.Sprintf("field %q is not hex", field), protocol: true}
		}
		dst[i] = hi<<4 | lo
	}
	return nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// meshMessage is the validator's payload for a channel message: the decoded
// message, and its client frame encoded once for every session that
// receives it.
type meshMessage struct {
	msg identity.ChannelMessage

	once  sync.Once
	frame []byte
}

// DedupKey implements p2p.Keyed.
func (m *meshMessage) DedupKey() string { return m.msg.DedupKey() }

func (m *meshMessage) clientFrame() []byte {
	m.once.Do(func() { m.frame = appendMessageFrame(nil, &m.msg) })
	return m.frame
}

// appendMessageFrame appends msg's client frame: what mustJSON makes of a
// messageFrame (same fields, order and escaping), written by hand because
// every channel message needs one.
func appendMessageFrame(b []byte, msg *identity.ChannelMessage) []byte {
	size := len(`{"type":"message","channel":"","username":"","key":"","body":"","ts":-9223372036854775808,"id":"","sig":""}`) +
		len(msg.Channel) + len(msg.Username) + 2*len(msg.Author) + len(msg.Body) + 2*len(msg.ID) + 2*len(msg.Sig)
	b = slices.Grow(b, size+8)
	b = append(b, `{"type":"message","channel":`...)
	b = appendJSONString(b, msg.Channel)
	b = append(b, `,"username":`...)
	b = appendJSONString(b, msg.Username)
	b = append(b, `,"key":"`...)
	b = hex.AppendEncode(b, msg.Author[:])
	b = append(b, `","body":`...)
	b = appendJSONString(b, msg.Body)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, msg.Timestamp, 10)
	b = append(b, `,"id":"`...)
	b = hex.AppendEncode(b, msg.ID[:])
	b = append(b, `","sig":"`...)
	b = hex.AppendEncode(b, msg.Sig[:])
	return append(b, `"}`...)
}

// appendJSONString appends s as a JSON string exactly as encoding/json
// does with HTML escaping off: \, \" and the short escapes of \b \f \n
// \r \t, other control bytes as \u00xx, invalid UTF-8 as \ufffd, and
// U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// decodeFlatRequest decodes the common shape of a request without
// encoding/json: one flat object whose keys are the request's own field
// names spelled exactly, with string values free of escapes and control
// bytes (valid UTF-8) and "ts" a plain integer. It reports false for
// anything else (escapes, other keys or key spellings, null, nesting,
// numbers in string fields, invalid JSON), which encoding/json then
// decodes or refuses as before; for what it accepts, the result is what
// encoding/json would give. The strings share one copy of data.
func decodeFlatRequest(data []byte) (request, bool) {
	var r request
	i := skipJSONSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return r, false
	}
	i = skipJSONSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return r, false // {}: no type; encoding/json reports it
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
		if string(key) == "ts" {
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
			r.TS = ts
			i = j
		} else {
			var field *string
			switch string(key) {
			case "type":
				field = &r.Type
			case "key":
				field = &r.Key
			case "sig":
				field = &r.Sig
			case "channel":
				field = &r.Channel
			case "username":
				field = &r.Username
			case "body":
				field = &r.Body
			case "id":
				field = &r.ID
			case "bundle":
				field = &r.Bundle
			case "envelope":
				field = &r.Envelope
			case "ref":
				field = &r.Ref
			default:
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
