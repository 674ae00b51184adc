package gateway

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

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
	// protocol marks malformed input, which counts towards maxErrors.
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
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("gateway: marshal frame: " + err.Error())
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func decodeHex(field, s string, size int) ([]byte, *clientError) {
	if len(s) != 2*size {
		return nil, &clientError{code: codeBadJSON, msg: fmt.Sprintf("field %q must be %d hex characters, got %d", field, 2*size, len(s)), protocol: true}
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, &clientError{code: codeBadJSON, msg: fmt.Sprintf("field %q is not hex", field), protocol: true}
	}
	return b, nil
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
	m.once.Do(func() {
		m.frame = mustJSON(messageFrame{
			Type:     "message",
			Channel:  m.msg.Channel,
			Username: m.msg.Username,
			Key:      m.msg.Author.String(),
			Body:     m.msg.Body,
			TS:       m.msg.Timestamp,
			ID:       hex.EncodeToString(m.msg.ID[:]),
			Sig:      hex.EncodeToString(m.msg.Sig[:]),
		})
	})
	return m.frame
}
