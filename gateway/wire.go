package gateway

import (
	"fmt"
	"sync"
	"sync/atomic"

	"darkchat/identity"
	"darkchat/proto"
)

// The client protocol's types, codes, limits and encoders are package
// proto's; this file holds what the gateway adds: its error value, and the
// names the gateway's code uses for proto's.

// ProtocolVersion is the client protocol version this gateway speaks.
const ProtocolVersion = proto.Version

// request is any object a client sends (proto.Request).
type request = proto.Request

var (
	pingFrame = proto.EncodedPing
	pongFrame = proto.EncodedPong
)

// Error codes: proto's, as the strings the gateway's errors carry.
const (
	codeBadJSON          = string(proto.CodeBadJSON)
	codeTooLarge         = string(proto.CodeTooLarge)
	codeBadFrame         = string(proto.CodeBadFrame)
	codeUnknownType      = string(proto.CodeUnknownType)
	codeNotLoggedIn      = string(proto.CodeNotLoggedIn)
	codeAlreadyLoggedIn  = string(proto.CodeAlreadyLoggedIn)
	codeBadKey           = string(proto.CodeBadKey)
	codeBadSignature     = string(proto.CodeBadSignature)
	codeChallengeExpired = string(proto.CodeChallengeExpired)
	codeLoginTimeout     = string(proto.CodeLoginTimeout)
	codeBadBundle        = string(proto.CodeBadBundle)
	codeUnknownUser      = string(proto.CodeUnknownUser)
	codeBadEnvelope      = string(proto.CodeBadEnvelope)
	codeNoRoute          = string(proto.CodeNoRoute)
	codeBadChannel       = string(proto.CodeBadChannel)
	codeBadUsername      = string(proto.CodeBadUsername)
	codeNotJoined        = string(proto.CodeNotJoined)
	codeTooManyChannels  = string(proto.CodeTooManyChannels)
	codeBodyTooLarge     = string(proto.CodeBodyTooLarge)
	codeBadTimestamp     = string(proto.CodeBadTimestamp)
	codeDuplicate        = string(proto.CodeDuplicate)
	codeRateLimited      = string(proto.CodeRateLimited)
	codeTooManyErrors    = string(proto.CodeTooManyErrors)
	codeTooManySessions  = string(proto.CodeTooManySessions)
	codeNodeFull         = string(proto.CodeNodeFull)
	codeSlowConsumer     = string(proto.CodeSlowConsumer)
	codeIdleTimeout      = string(proto.CodeIdleTimeout)
	codeShutdown         = string(proto.CodeShutdown)
	codeInternal         = string(proto.CodeInternal)
	codeBanned           = string(proto.CodeBanned)
)

// clientError is an error reported to the client as an error object.
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
	return mustJSON(&proto.Error{Code: proto.Code(e.code), Message: e.msg, ID: e.id, Channel: e.channel, Ref: e.ref, Key: e.key})
}

// about names in e what req concerns, as PROTOCOL.md §2.9 asks of every
// error about a request: a send's id, a join's, leave's or send's channel,
// a dm's ref, a whois's key.
func (e *clientError) about(req *request) *clientError {
	switch req.Type {
	case "send":
		e.id, e.channel = req.ID, req.Channel
	case "join", "leave":
		e.channel = req.Channel
	case "dm":
		e.ref = req.Ref
	case "whois":
		e.key = req.Key
	case "history":
		e.id, e.channel = req.ID, req.Channel
	case "history_answer":
		e.id = req.ID
	}
	return e
}

func errorf(code, format string, args ...any) *clientError {
	return &clientError{code: code, msg: fmt.Sprintf(format, args...)}
}

// decodeRequest parses one client object (proto.DecodeRequest).
func decodeRequest(data []byte) (request, *clientError) {
	r, err := proto.DecodeRequest(data)
	if err != nil {
		return r, &clientError{code: codeBadJSON, msg: err.Error(), protocol: true}
	}
	return r, nil
}

// mustJSON encodes one of the gateway's own objects, which cannot fail.
func mustJSON(obj proto.Object) []byte {
	b, err := proto.Encode(obj)
	if err != nil {
		panic("gateway: encode " + obj.Type() + ": " + err.Error())
	}
	return b
}

func decodeHex(field, s string, size int) ([]byte, *clientError) {
	b := make([]byte, size)
	if cerr := decodeHexInto(b, field, s); cerr != nil {
		return nil, cerr
	}
	return b, nil
}

// decodeHexInto decodes s, which must be exactly 2*len(dst) lowercase hex
// characters (proto's hex policy), into dst without allocating.
func decodeHexInto(dst []byte, field, s string) *clientError {
	if err := proto.DecodeHex(dst, field, s); err != nil {
		return &clientError{code: codeBadJSON, msg: err.Error(), protocol: true}
	}
	return nil
}

// meshMessage is the validator's payload for a channel message: the decoded
// message, and its client object encoded once for every session that
// receives it.
type meshMessage struct {
	msg identity.ChannelMessage
	// recorded: the node has noted its ID as delivered in the channel
	// (historyAgent.delivered), once for all member sessions.
	recorded atomic.Bool

	once  sync.Once
	frame []byte
}

// DedupKey implements p2p.Keyed.
func (m *meshMessage) DedupKey() string { return m.msg.DedupKey() }

func (m *meshMessage) clientFrame() []byte {
	m.once.Do(func() { m.frame = proto.AppendMessageFrame(nil, &m.msg) })
	return m.frame
}
