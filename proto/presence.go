package proto

import (
	"encoding/hex"
	"fmt"
	"time"

	"darkchat/identity"
)

// Presence and members (PROTOCOL.md §2.12). A client that wants to be
// listed hands its node two signed presence records with each join and
// every PresenceRefresh: "here", which the node publishes on the channel,
// and "gone", at the same timestamp, which the node publishes when the
// client leaves or goes away. Every node keeps the records of the
// channels it carries and answers Names from them.
const (
	// PresenceRefreshInterval is how often a client renews its records,
	// and PresenceTTL how long each is valid: a client gone without a
	// word (and its node with it) stays listed at most PresenceTTL.
	PresenceRefreshInterval = 2 * time.Minute
	PresenceTTL             = 5 * time.Minute

	// MaxNamesPerObject bounds the members of one names answer; a longer
	// list takes several, all but the last with More.
	MaxNamesPerObject = 256

	// PresenceHexLen bounds a presence field: a record's wire form in hex.
	PresenceHexLen = 2 * identity.MaxPresenceWireLen

	// States of a PresenceEvent.
	StateHere = "here"
	StateGone = "gone"
)

// PresenceRefresh from a client renews its presence records in Channel
// (hex of the wire forms). It has the type "presence", as the node's
// PresenceEvent does; Decode, which reads what nodes send, gives the
// latter.
type PresenceRefresh struct {
	Channel  string `json:"channel"`
	Presence string `json:"presence"`
	Gone     string `json:"gone"`
}

// PresenceEvent tells a session that a user came to (State "here", also
// when it changed its username) or left (State "gone") one of its
// channels. Sessions is how many login sessions of Key the node knows in
// the channel (a user's own key with more than one: the identity is in use
// elsewhere too).
type PresenceEvent struct {
	Channel  string `json:"channel"`
	Key      string `json:"key"`
	Username string `json:"username"`
	State    string `json:"state"`
	Sessions int64  `json:"sessions,omitempty"`
}

// NamesRequest asks for the users listed in Channel.
type NamesRequest struct {
	Channel string `json:"channel"`
}

// Names answers a NamesRequest: part of the list; More says another Names
// follows.
type Names struct {
	Channel string   `json:"channel"`
	Members []Member `json:"members"`
	More    bool     `json:"more,omitempty"`
}

// Member is one listed user.
type Member struct {
	Key      string `json:"key"`
	Username string `json:"username"`
}

// Present is a channel where a whois's user is listed, as the node knows
// it (Bundle.Present).
type Present struct {
	Channel  string `json:"channel"`
	Username string `json:"username"`
}

func (*PresenceRefresh) Type() string { return "presence" }
func (*PresenceEvent) Type() string   { return "presence" }
func (*NamesRequest) Type() string    { return "names" }
func (*Names) Type() string           { return "names" }

func (p *PresenceRefresh) validate() error {
	return firstErr(identity.ValidateChannelName(p.Channel), checkPresenceHex("presence", p.Presence), checkPresenceHex("gone", p.Gone))
}

func (p *PresenceEvent) validate() error {
	if p.State != StateHere && p.State != StateGone {
		return fmt.Errorf("state must be %q or %q, got %q", StateHere, StateGone, clip(p.State))
	}
	if p.Sessions < 0 {
		return fmt.Errorf("sessions must not be negative, got %d", p.Sessions)
	}
	return firstErr(checkNames(p.Channel, p.Username), CheckHex("key", p.Key, KeyHexLen))
}

func (n *NamesRequest) validate() error { return identity.ValidateChannelName(n.Channel) }

func (n *Names) validate() error {
	if err := identity.ValidateChannelName(n.Channel); err != nil {
		return err
	}
	if len(n.Members) > MaxNamesPerObject {
		return fmt.Errorf("members: at most %d, got %d", MaxNamesPerObject, len(n.Members))
	}
	for _, m := range n.Members {
		if err := firstErr(CheckHex("key", m.Key, KeyHexLen), identity.ValidateUsername(m.Username)); err != nil {
			return fmt.Errorf("members: %w", err)
		}
	}
	return nil
}

// checkPresenceHex checks a presence record's hex: lowercase, of a length
// a record can have.
func checkPresenceHex(field, s string) error {
	if len(s) < 2*identity.MinPresenceWireLen || len(s) > PresenceHexLen || len(s)%2 != 0 {
		return fmt.Errorf("%s: want %d to %d hex characters (a presence record), got %d", field, 2*identity.MinPresenceWireLen, PresenceHexLen, len(s))
	}
	return CheckHex(field, s, len(s))
}

// checkPresent checks a whois answer's present list.
func checkPresent(list []Present) error {
	if len(list) > MaxPresentPerWhois {
		return fmt.Errorf("present: at most %d channels, got %d", MaxPresentPerWhois, len(list))
	}
	for _, p := range list {
		if err := checkNames(p.Channel, p.Username); err != nil {
			return fmt.Errorf("present: %w", err)
		}
	}
	return nil
}

// MaxPresentPerWhois bounds Bundle.Present: the channels a session may be
// in, with room for a node configured for more.
const MaxPresentPerWhois = 256

// EncodePresence returns a presence record's wire form in hex, as join and
// presence carry it.
func EncodePresence(p *identity.Presence) (string, error) {
	wire, err := p.MarshalBinary()
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(wire), nil
}

// DecodePresence decodes a presence field strictly, without verifying the
// signature.
func DecodePresence(field, s string) (identity.Presence, []byte, error) {
	var p identity.Presence
	if err := checkPresenceHex(field, s); err != nil {
		return p, nil, err
	}
	wire, err := hex.DecodeString(s)
	if err != nil {
		return p, nil, fmt.Errorf("%s: %w", field, err)
	}
	if err := p.UnmarshalBinary(wire); err != nil {
		return p, nil, fmt.Errorf("%s: %w", field, err)
	}
	return p, wire, nil
}
