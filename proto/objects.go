package proto

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"unicode/utf8"

	"darkchat/identity"
	"darkchat/internal/jsonlimit"
)

// Sentinel errors of the decoders. The client's errors of the same names
// are these values, so callers of either package branch with errors.Is.
var (
	// ErrMalformed: an object does not follow PROTOCOL.md (not JSON, a
	// field of the wrong type or format, a missing type).
	ErrMalformed = errors.New("malformed object")

	// ErrTooLarge: a line, frame or object is over its size limit.
	ErrTooLarge = errors.New("too large")

	// ErrUnknownType: an object's type is not one this version knows.
	// Clients ignore such objects from the node, so later versions can
	// add types.
	ErrUnknownType = errors.New("unknown object type")
)

// Object is one protocol object. Type returns its "type" field.
type Object interface {
	Type() string
	validate() error
}

// Hello is the node's first object: its peer ID and this connection's
// login challenge.
type Hello struct {
	Protocol  int    `json:"protocol"`
	Node      string `json:"node"`
	Challenge string `json:"challenge"`
	Limits    Limits `json:"limits"`
	// MessageVersion is the highest channel message version the node
	// takes (PROTOCOL.md §4.3); nodes of the previous version leave it
	// out, which means 1.
	MessageVersion int `json:"message_version,omitempty"`
}

// Login answers the challenge: the user's key and its signature over the
// login statement, and the user's key bundle (base64), so that the node
// publishes it and others can send the user direct messages.
type Login struct {
	Key    string `json:"key"`
	Sig    string `json:"sig"`
	Bundle string `json:"bundle,omitempty"`
}

// Welcome accepts a login.
type Welcome struct {
	Key  string `json:"key"`
	Node string `json:"node"`
}

// Join asks to join (or rename oneself in) a channel; Joined confirms it.
// Presence and Gone, when given, list the user in the channel
// (PresenceRefresh, PROTOCOL.md §2.12).
type Join struct {
	Channel  string `json:"channel"`
	Username string `json:"username"`
	Presence string `json:"presence,omitempty"`
	Gone     string `json:"gone,omitempty"`
}

// Joined confirms a Join.
type Joined struct {
	Channel  string `json:"channel"`
	Username string `json:"username"`
}

// Leave asks to leave a channel; Left confirms it.
type Leave struct {
	Channel string `json:"channel"`
}

// Left confirms a Leave.
type Left struct {
	Channel string `json:"channel"`
}

// Send posts a signed channel message; the node answers OK or an Error
// naming ID.
type Send struct {
	Channel  string `json:"channel"`
	Username string `json:"username"`
	Body     string `json:"body"`
	TS       int64  `json:"ts"`
	ID       string `json:"id"`
	// Prev and Refs are the causal context of a version-2 message
	// (PROTOCOL.md §4.3): Prev, present on every version-2 message, is 16
	// hex digits; Refs is 0, 1 or 2 references of 16 hex digits each,
	// written one after the other.
	Prev string `json:"prev,omitempty"`
	Refs string `json:"refs,omitempty"`
	Sig  string `json:"sig"`
}

// OK confirms that the message ID was accepted and sent to the mesh.
type OK struct {
	ID string `json:"id"`
}

// Message is a channel message delivered by the node, with its author's
// key and signature so the client can verify it.
type Message struct {
	Channel  string `json:"channel"`
	Username string `json:"username"`
	Key      string `json:"key"`
	Body     string `json:"body"`
	TS       int64  `json:"ts"`
	ID       string `json:"id"`
	// Prev and Refs: the causal context of a version-2 message, as in
	// Send.
	Prev string `json:"prev,omitempty"`
	Refs string `json:"refs,omitempty"`
	Sig  string `json:"sig"`
	// Late marks a message answering a History request, which History
	// names (PROTOCOL.md §2.8).
	Late    bool   `json:"late,omitempty"`
	History string `json:"history,omitempty"`
}

// History asks the channel's members for up to Limit messages (1 to
// MaxHistoryLimit; 0 means DefaultHistoryLimit) with a timestamp of at
// least Since and, when Before is not 0, less than Before, except those in
// Have (at most MaxHistoryHave IDs). ID names the request.
type History struct {
	Channel string   `json:"channel"`
	ID      string   `json:"id"`
	Limit   int64    `json:"limit,omitempty"`
	Since   int64    `json:"since,omitempty"`
	Before  int64    `json:"before,omitempty"`
	Have    []string `json:"have,omitempty"`
}

// HistoryRequest asks this session's client for the messages of Channel
// it keeps, at most Limit, with a timestamp of at least Since.
type HistoryRequest struct {
	Channel string `json:"channel"`
	ID      string `json:"id"`
	Limit   int64  `json:"limit"`
	Since   int64  `json:"since"`
	// Before, when not 0, bounds the messages wanted to those with a
	// timestamp before it (Unix ms): a node repairing a channel pages
	// back through what members hold.
	Before int64 `json:"before,omitempty"`
}

// HistoryAnswer carries one message a client keeps, answering the
// HistoryRequest ID.
type HistoryAnswer struct {
	ID      string  `json:"id"`
	Message Message `json:"message"`
}

// HistoryEnd ends the answers to the History request ID: Count late
// messages came.
type HistoryEnd struct {
	Channel string `json:"channel"`
	ID      string `json:"id"`
	Count   int64  `json:"count"`
}

// Sessions tells every session of a key how many sessions of that key are
// logged in on the node, whenever another one logs in or ends while more
// than one is or was: a user whose identity another client uses is told.
type Sessions struct {
	Count int64 `json:"count"`
}

// Ping asks the other side for a Pong.
type Ping struct{}

// Pong answers a Ping.
type Pong struct{}

// Whois asks the node for a user's key bundle; the node answers with a
// Bundle for that key or an Error with code unknown_user naming it.
type Whois struct {
	Key string `json:"key"`
}

// Bundle carries a key bundle, base64 (standard, padded). From the node it
// answers a Whois (Key is the key asked about) or a bundle update (Key is
// the user's own); from the client, without Key, it replaces the bundle the
// session logged in with.
type Bundle struct {
	Key    string `json:"key,omitempty"`
	Bundle string `json:"bundle"`
	// Present, in a whois answer, lists the channels of the asking
	// session where the node lists the user (PROTOCOL.md §2.12).
	Present []Present `json:"present,omitempty"`
}

// DM carries a sealed DM envelope, base64 (standard, padded). From the
// client Ref, at most MaxRefLen characters, names it in the node's DMSent
// or Error; from the node it is an envelope for this session's user, and
// Ref is empty.
type DM struct {
	Ref      string `json:"ref,omitempty"`
	Envelope string `json:"envelope"`
}

// DMSent says that the DM Ref left the node (not that it arrived).
type DMSent struct {
	Ref string `json:"ref"`
}

// Error is the node's error object. It is also the Go error the client
// returns for a failure the node reported. ID names a message, Channel a
// channel, Ref a DM and Key the user of a whois, when the error concerns
// one.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	ID      string `json:"id,omitempty"`
	Channel string `json:"channel,omitempty"`
	Ref     string `json:"ref,omitempty"`
	Key     string `json:"key,omitempty"`
}

func (*Hello) Type() string   { return "hello" }
func (*Login) Type() string   { return "login" }
func (*Welcome) Type() string { return "welcome" }
func (*Join) Type() string    { return "join" }
func (*Joined) Type() string  { return "joined" }
func (*Leave) Type() string   { return "leave" }
func (*Left) Type() string    { return "left" }
func (*Send) Type() string    { return "send" }
func (*OK) Type() string      { return "ok" }
func (*Message) Type() string { return "message" }
func (*Ping) Type() string    { return "ping" }
func (*Pong) Type() string    { return "pong" }
func (*Error) Type() string   { return "error" }
func (*Whois) Type() string   { return "whois" }
func (*Bundle) Type() string  { return "bundle" }
func (*DM) Type() string      { return "dm" }
func (*DMSent) Type() string  { return "dm_sent" }

func (*History) Type() string        { return "history" }
func (*HistoryRequest) Type() string { return "history_request" }
func (*HistoryAnswer) Type() string  { return "history_answer" }
func (*HistoryEnd) Type() string     { return "history_end" }
func (*Sessions) Type() string       { return "sessions" }

// Error returns the node's message, or its code when the message is empty.
// Both come from the node: sanitise before printing.
func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return e.Message
}

// ClosesSession reports whether the node closes the session after e,
// given whether the session had logged in (Code.Closes).
func (e *Error) ClosesSession(loggedIn bool) bool { return e.Code.Closes(loggedIn) }

// newObject returns an empty object of the given type, or nil.
func newObject(typ string) Object {
	switch typ {
	case "hello":
		return new(Hello)
	case "login":
		return new(Login)
	case "welcome":
		return new(Welcome)
	case "join":
		return new(Join)
	case "joined":
		return new(Joined)
	case "leave":
		return new(Leave)
	case "left":
		return new(Left)
	case "send":
		return new(Send)
	case "ok":
		return new(OK)
	case "message":
		return new(Message)
	case "ping":
		return new(Ping)
	case "pong":
		return new(Pong)
	case "error":
		return new(Error)
	case "whois":
		return new(Whois)
	case "bundle":
		return new(Bundle)
	case "dm":
		return new(DM)
	case "dm_sent":
		return new(DMSent)
	case "history":
		return new(History)
	case "history_request":
		return new(HistoryRequest)
	case "history_answer":
		return new(HistoryAnswer)
	case "history_end":
		return new(HistoryEnd)
	case "sessions":
		return new(Sessions)
	case "rules":
		return new(Rules)
	case "kick":
		return new(Kick)
	case "kicked":
		return new(Kicked)
	case "presence":
		return new(PresenceEvent)
	case "names":
		return new(Names)
	}
	return nil
}

// Encode returns obj as one JSON object with its "type" first, without a
// line end. HTML characters are not escaped: the output is never embedded
// in HTML, and escaping "<" as \u003c would make a message six times longer
// against the line limit.
func Encode(obj Object) ([]byte, error) {
	if ok, isOK := obj.(*OK); isOK { // one per message sent: written by hand
		return AppendOK(nil, ok.ID), nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		return nil, fmt.Errorf("encode %s: %w", obj.Type(), err)
	}
	fields := bytes.TrimSpace(buf.Bytes()) // "{...}" without the encoder's "\n"
	out := make([]byte, 0, len(fields)+len(obj.Type())+12)
	out = append(out, `{"type":"`...)
	out = append(out, obj.Type()...)
	out = append(out, '"')
	if len(fields) > 2 {
		out = append(out, ',')
	}
	return append(out, fields[1:]...), nil
}

// Decode parses one object strictly: at most MaxNodeLine bytes of UTF-8,
// nesting at most MaxDepth, a JSON object with a string "type" naming a
// known object, every known field of the right JSON type, and binary
// fields, names and sizes in the formats of PROTOCOL.md. Field names match
// only as spelled there (lowercase); unknown fields, and fields spelled
// otherwise, are ignored. An unknown type gives an error wrapping
// ErrUnknownType; every other failure wraps ErrMalformed (and ErrTooLarge
// for size).
func Decode(data []byte) (Object, error) {
	if len(data) > MaxNodeLine {
		return nil, fmt.Errorf("%w: %w: %d bytes, limit %d", ErrMalformed, ErrTooLarge, len(data), MaxNodeLine)
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: not valid UTF-8", ErrMalformed)
	}
	if err := jsonlimit.CheckDepth(data, MaxDepth); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, objectError(err, ""))
	}
	var typ *string
	if raw, ok := fields["type"]; ok {
		if err := json.Unmarshal(raw, &typ); err != nil {
			return nil, fmt.Errorf("%w: field \"type\": %w", ErrMalformed, err)
		}
	}
	if typ == nil {
		return nil, fmt.Errorf("%w: not an object with a \"type\" field", ErrMalformed)
	}
	obj := newObject(*typ)
	if obj == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownType, clip(*typ))
	}
	if err := fillExact(fields, reflect.ValueOf(obj).Elem(), ""); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, obj.Type(), err)
	}
	if err := obj.validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, obj.Type(), err)
	}
	return obj, nil
}

func (h *Hello) validate() error {
	if h.Protocol < 1 {
		return fmt.Errorf("protocol version %d", h.Protocol)
	}
	if err := checkNodeID("node", h.Node); err != nil {
		return err
	}
	if _, err := identity.ParseChallenge(h.Challenge); err != nil {
		return fmt.Errorf("challenge: %w", err)
	}
	l := h.Limits
	if l.MaxLine < 0 || l.MaxBody < 0 || l.MaxChannels < 0 || l.Rate < 0 || l.Burst < 0 {
		return fmt.Errorf("negative limit in %+v", l)
	}
	return nil
}

func (l *Login) validate() error {
	err := firstErr(CheckHex("key", l.Key, KeyHexLen), CheckHex("sig", l.Sig, SigHexLen))
	if err == nil && l.Bundle != "" {
		err = checkBase64("bundle", l.Bundle, identity.MaxKeyBundleSize)
	}
	return err
}

func (w *Whois) validate() error { return CheckHex("key", w.Key, KeyHexLen) }

func (b *Bundle) validate() error {
	if b.Key != "" {
		if err := CheckHex("key", b.Key, KeyHexLen); err != nil {
			return err
		}
	}
	if err := checkPresent(b.Present); err != nil {
		return err
	}
	return checkBase64("bundle", b.Bundle, identity.MaxKeyBundleSize)
}

func (d *DM) validate() error {
	if len(d.Ref) > MaxRefLen {
		return fmt.Errorf("ref: at most %d characters, got %d", MaxRefLen, len(d.Ref))
	}
	return checkBase64("envelope", d.Envelope, identity.MaxEnvelopeSize)
}

func (d *DMSent) validate() error {
	if len(d.Ref) > MaxRefLen {
		return fmt.Errorf("ref: at most %d characters, got %d", MaxRefLen, len(d.Ref))
	}
	return nil
}

func (w *Welcome) validate() error {
	return firstErr(CheckHex("key", w.Key, KeyHexLen), checkNodeID("node", w.Node))
}

func (j *Join) validate() error {
	if err := checkNames(j.Channel, j.Username); err != nil {
		return err
	}
	if j.Presence == "" && j.Gone == "" {
		return nil
	}
	return firstErr(checkPresenceHex("presence", j.Presence), checkPresenceHex("gone", j.Gone))
}
func (j *Joined) validate() error { return checkNames(j.Channel, j.Username) }
func (l *Leave) validate() error  { return identity.ValidateChannelName(l.Channel) }
func (l *Left) validate() error   { return identity.ValidateChannelName(l.Channel) }
func (o *OK) validate() error     { return CheckHex("id", o.ID, IDHexLen) }
func (*Ping) validate() error     { return nil }
func (*Pong) validate() error     { return nil }

func (s *Send) validate() error {
	return firstErr(
		checkNames(s.Channel, s.Username),
		checkBody(s.Body),
		CheckHex("id", s.ID, IDHexLen),
		checkCausal(s.Prev, s.Refs),
		CheckHex("sig", s.Sig, SigHexLen))
}

func (m *Message) validate() error {
	var history error
	if m.History != "" {
		history = CheckHex("history", m.History, IDHexLen)
	}
	return firstErr(
		checkNames(m.Channel, m.Username),
		CheckHex("key", m.Key, KeyHexLen),
		checkBody(m.Body),
		CheckHex("id", m.ID, IDHexLen),
		checkCausal(m.Prev, m.Refs),
		CheckHex("sig", m.Sig, SigHexLen),
		history)
}

// ShortIDHexLen is the length of a causal reference in hex.
const ShortIDHexLen = 2 * identity.ShortIDSize

// checkCausal checks a causal context's fields: none (version 1), or prev
// and up to identity.MaxCausalRefs references.
func checkCausal(prev, refs string) error {
	if prev == "" {
		if refs != "" {
			return fmt.Errorf("%w: refs without prev (a version-2 message has both)", ErrMalformed)
		}
		return nil
	}
	if err := CheckHex("prev", prev, ShortIDHexLen); err != nil {
		return err
	}
	if len(refs)%ShortIDHexLen != 0 || len(refs) > identity.MaxCausalRefs*ShortIDHexLen {
		return fmt.Errorf("%w: refs must be 0 to %d references of %d hex digits, written together", ErrMalformed, identity.MaxCausalRefs, ShortIDHexLen)
	}
	if refs == "" {
		return nil
	}
	return CheckHex("refs", refs, len(refs))
}

// DecodeCausal decodes a causal context's fields (checked by checkCausal)
// into c; with prev empty c is left as version 1.
func DecodeCausal(c *identity.Causal, prev, refs string) error {
	*c = identity.Causal{}
	if prev == "" {
		return checkCausal(prev, refs)
	}
	if err := checkCausal(prev, refs); err != nil {
		return err
	}
	c.Present = true
	if err := DecodeHex(c.Prev[:], "prev", prev); err != nil {
		return err
	}
	for i := 0; i < len(refs); i += ShortIDHexLen {
		if err := DecodeHex(c.Refs[c.NRefs][:], "refs", refs[i:i+ShortIDHexLen]); err != nil {
			return err
		}
		c.NRefs++
	}
	return nil
}

// appendCausal appends c's prev and refs fields to a JSON object being
// written, as encoding/json writes Send's and Message's.
func appendCausal(b []byte, c *identity.Causal) []byte {
	if !c.Present {
		return b
	}
	b = append(b, `,"prev":"`...)
	b = AppendHex(b, c.Prev[:])
	b = append(b, '"')
	if c.NRefs > 0 {
		b = append(b, `,"refs":"`...)
		for _, r := range c.RefList() {
			b = AppendHex(b, r[:])
		}
		b = append(b, '"')
	}
	return b
}

// causalFields returns c's prev and refs fields as Send and Message hold
// them.
func causalFields(c *identity.Causal) (prev, refs string) {
	if !c.Present {
		return "", ""
	}
	prev = string(AppendHex(nil, c.Prev[:]))
	var r []byte
	for _, ref := range c.RefList() {
		r = AppendHex(r, ref[:])
	}
	return prev, string(r)
}

func (h *History) validate() error {
	if err := firstErr(identity.ValidateChannelName(h.Channel), CheckHex("id", h.ID, IDHexLen)); err != nil {
		return err
	}
	if h.Limit < 0 || h.Limit > MaxHistoryLimit {
		return fmt.Errorf("limit must be 1 to %d, got %d", MaxHistoryLimit, h.Limit)
	}
	if len(h.Have) > MaxHistoryHave {
		return fmt.Errorf("have lists at most %d IDs, got %d", MaxHistoryHave, len(h.Have))
	}
	for _, id := range h.Have {
		if err := CheckHex("have", id, IDHexLen); err != nil {
			return err
		}
	}
	return nil
}

func (h *HistoryRequest) validate() error {
	if err := firstErr(identity.ValidateChannelName(h.Channel), CheckHex("id", h.ID, IDHexLen)); err != nil {
		return err
	}
	if h.Limit < 1 || h.Limit > MaxHistoryLimit {
		return fmt.Errorf("limit must be 1 to %d, got %d", MaxHistoryLimit, h.Limit)
	}
	return nil
}

func (h *HistoryAnswer) validate() error {
	return firstErr(CheckHex("id", h.ID, IDHexLen), h.Message.validate())
}

func (h *HistoryEnd) validate() error {
	if err := firstErr(identity.ValidateChannelName(h.Channel), CheckHex("id", h.ID, IDHexLen)); err != nil {
		return err
	}
	if h.Count < 0 || h.Count > MaxHistoryLimit {
		return fmt.Errorf("count must be 0 to %d, got %d", MaxHistoryLimit, h.Count)
	}
	return nil
}

func (s *Sessions) validate() error {
	if s.Count < 1 {
		return fmt.Errorf("count must be at least 1, got %d", s.Count)
	}
	return nil
}

func (e *Error) validate() error {
	if e.Code == "" || len(e.Code) > 64 {
		return fmt.Errorf("code must be 1 to 64 characters, got %d", len(e.Code))
	}
	for i := 0; i < len(e.Code); i++ {
		if c := e.Code[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return fmt.Errorf("code must be [a-z0-9_], got %q", clip(string(e.Code)))
		}
	}
	// The channel is not checked against the name rules: a bad_channel
	// error echoes the bad name back. Ref and Key echo what the client
	// sent and are only compared with it.
	if e.ID != "" {
		return CheckHex("id", e.ID, IDHexLen)
	}
	return nil
}

// NewSend returns the send object for a signed channel message.
func NewSend(m *identity.ChannelMessage) *Send {
	prev, refs := causalFields(&m.Causal)
	return &Send{
		Channel:  m.Channel,
		Username: m.Username,
		Body:     m.Body,
		TS:       m.Timestamp,
		ID:       string(AppendHex(nil, m.ID[:])),
		Prev:     prev,
		Refs:     refs,
		Sig:      string(AppendHex(nil, m.Sig[:])),
	}
}

// NewMessage returns the message object that delivers m.
func NewMessage(m *identity.ChannelMessage) *Message {
	prev, refs := causalFields(&m.Causal)
	return &Message{
		Channel:  m.Channel,
		Username: m.Username,
		Key:      string(AppendHex(nil, m.Author[:])),
		Body:     m.Body,
		TS:       m.Timestamp,
		ID:       string(AppendHex(nil, m.ID[:])),
		Prev:     prev,
		Refs:     refs,
		Sig:      string(AppendHex(nil, m.Sig[:])),
	}
}

// ChannelMessage returns the signed message m carries, for verification.
// m must have passed Decode (its hex fields are well formed).
func (m *Message) ChannelMessage() (identity.ChannelMessage, error) {
	cm := identity.ChannelMessage{
		Channel:   m.Channel,
		Username:  m.Username,
		Body:      m.Body,
		Timestamp: m.TS,
	}
	if err := firstErr(
		DecodeHex(cm.Author[:], "key", m.Key),
		DecodeHex(cm.ID[:], "id", m.ID),
		DecodeCausal(&cm.Causal, m.Prev, m.Refs),
		DecodeHex(cm.Sig[:], "sig", m.Sig)); err != nil {
		return identity.ChannelMessage{}, fmt.Errorf("%w: message: %w", ErrMalformed, err)
	}
	return cm, nil
}

// NewDM returns the dm object that hands envelope to the node as ref.
func NewDM(ref string, envelope []byte) *DM {
	return &DM{Ref: ref, Envelope: base64.StdEncoding.EncodeToString(envelope)}
}

// EnvelopeBytes decodes the envelope. d must have passed Decode (or been
// made by NewDM).
func (d *DM) EnvelopeBytes() ([]byte, error) {
	env, err := base64.StdEncoding.Strict().DecodeString(d.Envelope)
	if err != nil {
		return nil, fmt.Errorf("%w: dm envelope: %w", ErrMalformed, err)
	}
	return env, nil
}

// EncodeKeyBundle returns b's wire form in base64, as login and bundle
// carry it.
func EncodeKeyBundle(b identity.KeyBundle) (string, error) {
	data, err := b.Marshal()
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(data), nil
}

// KeyBundle decodes the bundle strictly, without verifying it.
func (b *Bundle) KeyBundle() (identity.KeyBundle, error) { return DecodeKeyBundle(b.Bundle) }

// DecodeKeyBundle decodes a base64 key bundle strictly
// (identity.KeyBundle.Unmarshal). It does not verify it: the caller checks
// it against the key it expects (KeyBundle.Verify).
func DecodeKeyBundle(s string) (identity.KeyBundle, error) {
	var kb identity.KeyBundle
	data, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return kb, fmt.Errorf("%w: key bundle: %w", ErrMalformed, err)
	}
	if err := kb.Unmarshal(data); err != nil {
		return kb, err
	}
	return kb, nil
}

func checkNames(channel, username string) error {
	return firstErr(identity.ValidateChannelName(channel), identity.ValidateUsername(username))
}

func checkBody(body string) error {
	if len(body) > MaxBody {
		return fmt.Errorf("body of %d bytes is over the limit of %d", len(body), MaxBody)
	}
	return nil
}

// checkBase64 requires standard, padded base64 of 1 to max bytes. It
// checks the alphabet and the length only; decoding checks the rest.
func checkBase64(field, s string, max int) error {
	if n := base64.StdEncoding.EncodedLen(max); len(s) == 0 || len(s) > n || len(s)%4 != 0 {
		return fmt.Errorf("%s: want padded base64 of 1 to %d bytes, got %d characters", field, max, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '+', c == '/':
		case c == '=' && i >= len(s)-2 && (i == len(s)-1 || s[len(s)-1] == '='):
		default:
			return fmt.Errorf("%s: want base64, character %d is %q", field, i+1, c)
		}
	}
	return nil
}

// checkNodeID accepts a libp2p peer ID as the identity package does in
// challenges: 1 to MaxNodeIDLen ASCII letters and digits.
func checkNodeID(field, s string) error {
	if s == "" || len(s) > identity.MaxNodeIDLen {
		return fmt.Errorf("%s: want 1 to %d characters, got %d", field, identity.MaxNodeIDLen, len(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return fmt.Errorf("%s: want letters and digits, character %d is %q", field, i+1, c)
		}
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// clip shortens untrusted text quoted in an error.
func clip(s string) string {
	const n = 40
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
