package client

import (
	"darkchat/identity"
	"darkchat/proto"
)

// The client speaks the protocol of package proto, which holds every wire
// type, code and limit once. The names below are proto's, under the names
// the client's API and events have always used; they are the same types,
// not copies.

// ProtocolVersion is the client protocol version this package speaks; the
// node announces its own in hello.
const ProtocolVersion = proto.Version

// Bounds from PROTOCOL.md §1.
const (
	// MaxObjectSize is the largest line or frame a node accepts by default.
	// The client sends nothing longer than the max_line its node announced,
	// or this when it did not.
	MaxObjectSize = proto.DefaultMaxLine
	// MaxRecvSize is the largest line or frame the client accepts: the
	// most a node sends (proto.MaxNodeLine). Decode and the transports
	// refuse anything larger.
	MaxRecvSize = proto.MaxNodeLine
)

// Protocol objects (package proto).
type (
	Object  = proto.Object
	Limits  = proto.Limits
	Hello   = proto.Hello
	Login   = proto.Login
	Welcome = proto.Welcome
	Join    = proto.Join
	Joined  = proto.Joined
	Leave   = proto.Leave
	Left    = proto.Left
	Send    = proto.Send
	OK      = proto.OK
	Message = proto.Message
	Ping    = proto.Ping
	Pong    = proto.Pong
	Whois   = proto.Whois
	Bundle  = proto.Bundle
	DM      = proto.DM
	DMSent  = proto.DMSent
	// History, HistoryRequest, HistoryAnswer and HistoryEnd are the
	// channel history objects (PROTOCOL.md §2.8).
	History        = proto.History
	HistoryRequest = proto.HistoryRequest
	HistoryAnswer  = proto.HistoryAnswer
	HistoryEnd     = proto.HistoryEnd
	// Sessions says how many sessions of the user's key the node has
	// logged in (PROTOCOL.md §2.3).
	Sessions = proto.Sessions
	// Error is the node's error object, and the Go error a Session returns
	// for a failure the node reported.
	Error = proto.Error
)

// Encode returns obj as one JSON object (proto.Encode).
func Encode(obj Object) ([]byte, error) { return proto.Encode(obj) }

// Decode parses one object from the node strictly (proto.Decode).
func Decode(data []byte) (Object, error) { return proto.Decode(data) }

// NewSend returns the send object for a signed channel message.
func NewSend(m *identity.ChannelMessage) *Send { return proto.NewSend(m) }

// NewDM returns the dm object that hands envelope to the node as ref.
func NewDM(ref string, envelope []byte) *DM { return proto.NewDM(ref, envelope) }

// EncodeKeyBundle returns b's wire form in base64, as login and bundle
// carry it.
func EncodeKeyBundle(b identity.KeyBundle) (string, error) { return proto.EncodeKeyBundle(b) }

// DecodeKeyBundle decodes a base64 key bundle strictly, without verifying
// it (proto.DecodeKeyBundle).
func DecodeKeyBundle(s string) (identity.KeyBundle, error) { return proto.DecodeKeyBundle(s) }

// checkNames checks a channel name and a username before they are sent.
func checkNames(channel, username string) error {
	if err := identity.ValidateChannelName(channel); err != nil {
		return err
	}
	return identity.ValidateUsername(username)
}
