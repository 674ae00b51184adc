package proto

import (
	"encoding/base64"
	"fmt"

	"darkchat/identity"
)

// Owned channels (PROTOCOL.md §2.13): the rules record of a channel named
// <base>.<owner fingerprint>, and kicks. Records travel in base64
// (standard, padded), as key bundles do.

// MaxRulesRecordB64 is the longest record field a rules object carries:
// the base64 of identity.MaxRulesRecordSize bytes (24,008 characters), so
// the largest record fits in a client line of the default 32 KiB.
var MaxRulesRecordB64 = base64.StdEncoding.EncodedLen(identity.MaxRulesRecordSize)

// MaxKickRecordB64 is the longest record field a kick object carries.
var MaxKickRecordB64 = base64.StdEncoding.EncodedLen(identity.MaxKickRecordSize)

// Rules carries an owned channel's rules record. From the node: the record
// it holds for Channel, sent on join (when it holds one) and whenever it
// changes; a client may get the same record more than once and compares
// records by content. From the client: a new record to publish, signed by
// the owner or an operator, newer than the node's (CompareRules); the node
// answers with the record as a rules object, or an error.
type Rules struct {
	Channel string `json:"channel"`
	Record  string `json:"record"`
}

// Kick asks the node to publish a signed kick (identity.ChannelKick) in
// Channel; the node answers with the kicked object every session in the
// channel gets, or an error.
type Kick struct {
	Channel string `json:"channel"`
	Record  string `json:"record"`
}

// Kicked tells the sessions in Channel that Key's sessions were removed
// from it by By (the key that signed the kick or the record), with Reason.
// Banned: by a ban in a new rules record (Reason is then empty), rather
// than by a kick. The session of Key that gets it is no longer in Channel.
type Kicked struct {
	Channel string `json:"channel"`
	Key     string `json:"key"`
	By      string `json:"by"`
	Reason  string `json:"reason,omitempty"`
	Banned  bool   `json:"banned,omitempty"`
}

func (*Rules) Type() string  { return "rules" }
func (*Kick) Type() string   { return "kick" }
func (*Kicked) Type() string { return "kicked" }

func (r *Rules) validate() error {
	_, _, err := r.ChannelRules()
	return err
}

func (k *Kick) validate() error {
	_, err := k.ChannelKick()
	return err
}

func (k *Kicked) validate() error {
	if err := identity.ValidateChannelName(k.Channel); err != nil {
		return err
	}
	if err := firstErr(CheckHex("key", k.Key, KeyHexLen), CheckHex("by", k.By, KeyHexLen)); err != nil {
		return err
	}
	if len(k.Reason) > identity.MaxKickReasonLen {
		return fmt.Errorf("reason is %d bytes, limit %d", len(k.Reason), identity.MaxKickReasonLen)
	}
	return nil
}

// ChannelRules decodes the record strictly and checks that it is
// Channel's; it does not verify the signatures (ChannelRules.Verify). It
// also returns the wire form.
func (r *Rules) ChannelRules() (identity.ChannelRules, []byte, error) {
	var rec identity.ChannelRules
	if err := identity.ValidateChannelName(r.Channel); err != nil {
		return rec, nil, err
	}
	if !identity.IsOwnedChannel(r.Channel) {
		return rec, nil, fmt.Errorf("channel %q has no owner: its name does not end in .<%d hex digits of the owner's key>", r.Channel, identity.OwnerFingerprintLen)
	}
	if len(r.Record) > MaxRulesRecordB64 {
		return rec, nil, fmt.Errorf("record is %d characters, limit %d", len(r.Record), MaxRulesRecordB64)
	}
	wire, err := base64.StdEncoding.Strict().DecodeString(r.Record)
	if err != nil {
		return rec, nil, fmt.Errorf("record is not base64: %w", err)
	}
	if err := rec.UnmarshalBinary(wire); err != nil {
		return rec, nil, err
	}
	if rec.Channel != r.Channel {
		return rec, nil, fmt.Errorf("record of channel %q sent for %q", rec.Channel, r.Channel)
	}
	return rec, wire, nil
}

// ChannelKick decodes the kick strictly and checks that it is Channel's;
// it does not verify it.
func (k *Kick) ChannelKick() (identity.ChannelKick, error) {
	var kick identity.ChannelKick
	if err := identity.ValidateChannelName(k.Channel); err != nil {
		return kick, err
	}
	if len(k.Record) > MaxKickRecordB64 {
		return kick, fmt.Errorf("record is %d characters, limit %d", len(k.Record), MaxKickRecordB64)
	}
	wire, err := base64.StdEncoding.Strict().DecodeString(k.Record)
	if err != nil {
		return kick, fmt.Errorf("record is not base64: %w", err)
	}
	if err := kick.UnmarshalBinary(wire); err != nil {
		return kick, err
	}
	if kick.Channel != k.Channel {
		return kick, fmt.Errorf("kick in channel %q sent for %q", kick.Channel, k.Channel)
	}
	return kick, nil
}

// NewRules returns the rules object carrying r.
func NewRules(r *identity.ChannelRules) (*Rules, error) {
	wire, err := r.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &Rules{Channel: r.Channel, Record: base64.StdEncoding.EncodeToString(wire)}, nil
}

// NewKick returns the kick object carrying k.
func NewKick(k *identity.ChannelKick) (*Kick, error) {
	wire, err := k.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &Kick{Channel: k.Channel, Record: base64.StdEncoding.EncodeToString(wire)}, nil
}
