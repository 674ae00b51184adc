// Package clienttest is a scripted peer for unit tests of the client: a
// small in-process hub that plays the node's side of PROTOCOL.md (hello,
// login, join, leave, send, ok, message, ping, error, for direct
// messages whois, bundle, dm, dm_sent, and channel history: history,
// history_request, history_answer, history_end) over TCP lines or
// WebSocket frames.
// It is not a node and not a stand-in for one: no mesh, no DHT (it keeps
// the bundles its sessions gave it, for as long as it runs), no rate
// limits, no timeouts beyond what a test needs. Real-node tests use
// cmd/darkchatd.
package clienttest

import (
	"bufio"
	"cmp"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"darkchat/identity"
	"darkchat/proto"
)

// DefaultNodeID is the peer ID a Server announces unless told otherwise.
const DefaultNodeID = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"

// Server is the scripted peer. Set its fields before serving; the zero
// value serves with DefaultNodeID and the PROTOCOL.md default limits.
type Server struct {
	// NodeID is put in hello and in every challenge.
	NodeID string
	// Limits is announced in hello.
	Limits proto.Limits
	// Reject, when set, is asked about every correctly signed send: a
	// non-empty result is the error code to answer instead of ok (the
	// message is then not delivered).
	Reject func(identity.ChannelMessage) string
	// Drop, when set, is asked about every member a sent message is
	// handed to live: true loses it on the way to that member (the
	// member's client sees a gap; history still finds the message).
	Drop func(to identity.PublicKey, m identity.ChannelMessage) bool
	// Now is the clock key bundles are verified with; nil means time.Now.
	Now func() time.Time
	// HistoryWait is how long a history request collects the members'
	// answers before the requester gets them; zero means 300 ms.
	HistoryWait time.Duration
	// PreviousVersion makes the server a node of the previous version:
	// its hello has no message_version, and it refuses version-2
	// messages as such a node does (their signature, checked over the
	// version-1 fields it knows, is bad).
	PreviousVersion bool
	// Banned, when set, is asked about every correctly signed login: true
	// answers it with error banned and closes, as a node whose operator
	// banned the key does.
	Banned func(identity.PublicKey) bool

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	bundles   map[identity.PublicKey]string // base64, as given
	histories map[string]*historyAsk        // by request ID, every one ever made (no node forgets them sooner than a test ends)
	quit      chan struct{}                 // closed by Close
	wg        sync.WaitGroup
}

// conn is one client session on the server.
type conn struct {
	raw     net.Conn
	ws      *websocket.Conn // nil for TCP
	lines   *bufio.Scanner  // TCP only
	writeMu sync.Mutex

	// Used by the session goroutine, and read by broadcast under Server.mu.
	key      identity.PublicKey
	loggedIn bool
	channels map[string]string
}

func (s *Server) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

// SetBundle makes whois for key answer bundle (base64), whatever it
// holds: a test's way to serve a bundle a node should never have.
func (s *Server) SetBundle(key identity.PublicKey, bundle string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bundles == nil {
		s.bundles = make(map[identity.PublicKey]string)
	}
	s.bundles[key] = bundle
}

// Bundle returns the bundle (base64) whois answers for key, if any: the one
// its owner logged in with, or updated to, most recently.
func (s *Server) Bundle(key identity.PublicKey) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.bundles[key]
	return b, ok
}

// checkBundle verifies a bundle a session gives for its own key.
func (s *Server) checkBundle(key identity.PublicKey, bundle string) error {
	b, err := proto.DecodeKeyBundle(bundle)
	if err != nil {
		return err
	}
	return b.Verify(key, s.now())
}

func (s *Server) nodeID() string {
	if s.NodeID == "" {
		return DefaultNodeID
	}
	return s.NodeID
}

// StartTCP serves s on a loopback port until the test ends, and returns
// the address.
func (s *Server) StartTCP(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); s.ServeTCP(ln) }()
	t.Cleanup(func() { s.Close(); <-done })
	return ln.Addr().String()
}

// ServeTCP serves line-framed sessions on ln until Close.
func (s *Server) ServeTCP(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ln.Close()
	}
	if s.listeners == nil {
		s.listeners = make(map[net.Listener]struct{})
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return nil
			}
			return err
		}
		sc := bufio.NewScanner(nc)
		// A line of max_line bytes, its "\r" included, and its "\n".
		sc.Buffer(make([]byte, 4096), proto.DefaultMaxLine+1)
		s.start(&conn{raw: nc, lines: sc})
	}
}

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 1024,
	// Tests dial from Go, which sends no Origin; a real gateway checks it.
	CheckOrigin: func(*http.Request) bool { return true },
}

// ServeHTTP upgrades a request to a WebSocket session.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	ws.SetReadLimit(proto.DefaultMaxLine)
	s.start(&conn{raw: ws.NetConn(), ws: ws})
}

func (s *Server) start(c *conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		c.raw.Close()
		return
	}
	if s.conns == nil {
		s.conns = make(map[*conn]struct{})
	}
	c.channels = make(map[string]string)
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	go s.serve(c)
}

// quitLocked returns the channel Close closes; s.mu must be held.
func (s *Server) quitLocked() chan struct{} {
	if s.quit == nil {
		s.quit = make(chan struct{})
		if s.closed {
			close(s.quit)
		}
	}
	return s.quit
}

// Close closes the listeners and every session, and waits for them.
func (s *Server) Close() error {
	s.mu.Lock()
	if !s.closed {
		close(s.quitLocked())
	}
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.raw.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// Sessions returns how many sessions are open.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Inject sends data, as one line or frame, to every logged-in session: a
// test's way to send what a node would not (pings, errors, garbage).
func (s *Server) Inject(data []byte) {
	s.mu.Lock()
	var to []*conn
	for c := range s.conns {
		if c.loggedIn {
			to = append(to, c)
		}
	}
	s.mu.Unlock()
	for _, c := range to {
		c.writeRaw(data)
	}
}

func (c *conn) read() ([]byte, error) {
	if c.ws != nil {
		_, data, err := c.ws.ReadMessage()
		return data, err
	}
	if !c.lines.Scan() {
		if err := c.lines.Err(); err != nil {
			return nil, err
		}
		return nil, net.ErrClosed
	}
	return c.lines.Bytes(), nil
}

func (c *conn) writeRaw(data []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	c.raw.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if c.ws != nil {
		return c.ws.WriteMessage(websocket.TextMessage, data)
	}
	_, err := c.raw.Write(append(data[:len(data):len(data)], '\n'))
	return err
}

func (c *conn) write(obj proto.Object) error {
	data, err := proto.Encode(obj)
	if err != nil {
		return err
	}
	return c.writeRaw(data)
}

func (c *conn) fail(code proto.Code, format string, args ...any) error {
	return c.write(&proto.Error{Code: code, Message: fmt.Sprintf(format, args...)})
}

func (s *Server) serve(c *conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.raw.Close()
	}()
	challenge, err := identity.NewChallenge(s.nodeID(), time.Now(), identity.DefaultChallengeTTL)
	if err != nil {
		return
	}
	limits := s.Limits
	if limits == (proto.Limits{}) {
		limits = proto.DefaultLimits
	}
	hello := &proto.Hello{Protocol: proto.Version, MessageVersion: identity.ChannelMessageVersion2, Node: s.nodeID(), Challenge: challenge, Limits: limits}
	if s.PreviousVersion {
		hello.MessageVersion = 0
	}
	if c.write(hello) != nil {
		return
	}
	for {
		data, err := c.read()
		if err != nil {
			return
		}
		obj, err := proto.Decode(data)
		if err != nil {
			if c.fail("bad_json", "%v", err) != nil {
				return
			}
			continue
		}
		if !s.handle(c, obj, challenge) {
			return
		}
	}
}

// handle answers one object; false closes the session.
func (s *Server) handle(c *conn, obj proto.Object, challenge string) bool {
	s.mu.Lock()
	loggedIn := c.loggedIn
	s.mu.Unlock()
	switch o := obj.(type) {
	case *proto.Ping:
		return c.write(&proto.Pong{}) == nil
	case *proto.Pong:
		return true
	case *proto.Login:
		if loggedIn {
			return c.fail("already_logged_in", "already logged in") == nil
		}
		key, err := identity.ParsePublicKey(o.Key)
		if err != nil {
			c.fail("bad_key", "%v", err)
			return false
		}
		sig, _ := hex.DecodeString(o.Sig)
		if err := identity.VerifyLogin(key, challenge, sig, s.nodeID(), time.Now()); err != nil {
			c.fail("bad_signature", "login: %v", err)
			return false
		}
		if s.Banned != nil && s.Banned(key) {
			c.fail(proto.CodeBanned, "this node's operator has banned your key")
			return false
		}
		if o.Bundle != "" {
			if err := s.checkBundle(key, o.Bundle); err != nil {
				c.fail("bad_bundle", "login: %v", err)
				return false
			}
			s.SetBundle(key, o.Bundle)
		}
		s.mu.Lock()
		c.key, c.loggedIn = key, true
		s.mu.Unlock()
		return c.write(&proto.Welcome{Key: key.String(), Node: s.nodeID()}) == nil
	}
	if !loggedIn {
		return c.fail("not_logged_in", "log in first") == nil
	}
	switch o := obj.(type) {
	case *proto.Join:
		s.mu.Lock()
		c.channels[o.Channel] = o.Username
		s.mu.Unlock()
		return c.write(&proto.Joined{Channel: o.Channel, Username: o.Username}) == nil
	case *proto.Leave:
		s.mu.Lock()
		_, in := c.channels[o.Channel]
		delete(c.channels, o.Channel)
		s.mu.Unlock()
		if !in {
			return c.write(&proto.Error{Code: "not_joined", Message: "not in channel " + o.Channel, Channel: o.Channel}) == nil
		}
		return c.write(&proto.Left{Channel: o.Channel}) == nil
	case *proto.Send:
		return s.send(c, o)
	case *proto.Whois:
		key, _ := identity.ParsePublicKey(o.Key) // Decode checked it
		if b, ok := s.Bundle(key); ok {
			return c.write(&proto.Bundle{Key: o.Key, Bundle: b}) == nil
		}
		return c.write(&proto.Error{Code: "unknown_user", Message: "no key bundle for " + o.Key, Key: o.Key}) == nil
	case *proto.Bundle:
		if o.Key != "" && o.Key != c.key.String() {
			return c.write(&proto.Error{Code: "bad_bundle", Message: "a bundle update is for the session's own key"}) == nil
		}
		if err := s.checkBundle(c.key, o.Bundle); err != nil {
			return c.write(&proto.Error{Code: "bad_bundle", Message: err.Error()}) == nil
		}
		s.SetBundle(c.key, o.Bundle)
		return c.write(&proto.Bundle{Key: c.key.String(), Bundle: o.Bundle}) == nil
	case *proto.DM:
		return s.dm(c, o)
	case *proto.History:
		return s.history(c, o)
	case *proto.HistoryAnswer:
		s.historyAnswer(c, o)
		return true
	}
	return c.fail("unknown_type", "%s is not for the node", obj.Type()) == nil
}

func (s *Server) send(c *conn, o *proto.Send) bool {
	m := identity.ChannelMessage{Author: c.key, Channel: o.Channel, Username: o.Username, Body: o.Body, Timestamp: o.TS}
	hex.Decode(m.ID[:], []byte(o.ID))
	hex.Decode(m.Sig[:], []byte(o.Sig))
	// Decode checked prev and refs: a version-2 message's causal context,
	// signed with it and carried unchanged.
	if !s.PreviousVersion { // it knows no prev or refs, and ignores them
		proto.DecodeCausal(&m.Causal, o.Prev, o.Refs)
	}
	answer := func(code proto.Code, msg string) bool {
		return c.write(&proto.Error{Code: code, Message: msg, ID: o.ID, Channel: o.Channel}) == nil
	}
	s.mu.Lock()
	username, in := c.channels[o.Channel]
	s.mu.Unlock()
	switch {
	case !in:
		return answer("not_joined", "join channel "+o.Channel+" first")
	case username != o.Username:
		return answer("bad_username", "you joined "+o.Channel+" as "+username)
	case m.Verify() != nil:
		return answer("bad_signature", "message signature does not verify")
	}
	if s.Reject != nil {
		if code := s.Reject(m); code != "" {
			return answer(proto.Code(code), "rejected by the test: "+code)
		}
	}
	msg := &proto.Message{Channel: o.Channel, Username: o.Username, Key: c.key.String(), Body: o.Body, TS: o.TS, ID: o.ID,
		Prev: o.Prev, Refs: o.Refs, Sig: o.Sig}
	data, err := proto.Encode(msg)
	if err != nil {
		return false
	}
	s.mu.Lock()
	var to []*conn
	for other := range s.conns {
		if _, in := other.channels[o.Channel]; in && other != c && (s.Drop == nil || !s.Drop(other.key, m)) {
			to = append(to, other)
		}
	}
	s.mu.Unlock()
	for _, other := range to {
		if err := other.writeRaw(data); err != nil && !errors.Is(err, net.ErrClosed) {
			other.raw.Close()
		}
	}
	// The ok goes after the fan-out: a sender that has its ok knows the
	// members of the moment have the message, and one joining later
	// does not get it live.
	return c.write(&proto.OK{ID: o.ID}) == nil
}

// dm routes an envelope to the sessions whose user's tag it carries.
func (s *Server) dm(c *conn, o *proto.DM) bool {
	answer := func(code proto.Code, msg string) bool {
		return c.write(&proto.Error{Code: code, Message: msg, Ref: o.Ref}) == nil
	}
	env, err := o.EnvelopeBytes()
	if err != nil {
		return answer("bad_envelope", err.Error())
	}
	tag, err := identity.EnvelopeTag(env)
	if err != nil {
		return answer("bad_envelope", err.Error())
	}
	s.mu.Lock()
	var to []*conn
	for other := range s.conns {
		if other.loggedIn && identity.DMTag(other.key) == tag {
			to = append(to, other)
		}
	}
	s.mu.Unlock()
	if len(to) == 0 {
		return answer("no_route", "no session serves the recipient")
	}
	if c.write(&proto.DMSent{Ref: o.Ref}) != nil {
		return false
	}
	data, err := proto.Encode(&proto.DM{Envelope: o.Envelope})
	if err != nil {
		return false
	}
	for _, other := range to {
		if err := other.writeRaw(data); err != nil && !errors.Is(err, net.ErrClosed) {
			other.raw.Close()
		}
	}
	return true
}

// historyAsk is one history request (PROTOCOL.md §2.8) while it collects
// answers. One Server plays every node, so every other member session
// of the channel is asked, as if each were on a node of its own.
type historyAsk struct {
	from    *conn
	channel string
	limit   int
	since   int64
	have    map[string]bool
	asked   map[*conn]int // answers each may still send
	got     map[string]proto.Message
	done    bool
}

func (s *Server) historyWait() time.Duration {
	if s.HistoryWait <= 0 {
		return 300 * time.Millisecond
	}
	return s.HistoryWait
}

// history asks the channel's other members for their messages, and
// after HistoryWait sends the requester what came.
func (s *Server) history(c *conn, o *proto.History) bool {
	answer := func(code proto.Code, msg string) bool {
		return c.write(&proto.Error{Code: code, Message: msg, ID: o.ID, Channel: o.Channel}) == nil
	}
	limit := int(o.Limit)
	if limit == 0 {
		limit = proto.DefaultHistoryLimit
	}
	req := &proto.HistoryRequest{Channel: o.Channel, ID: o.ID, Limit: int64(limit), Since: o.Since, Before: o.Before}
	s.mu.Lock()
	_, in := c.channels[o.Channel]
	_, dup := s.histories[o.ID]
	if s.closed {
		s.mu.Unlock()
		return false
	}
	if !in || dup {
		s.mu.Unlock()
		if !in {
			return answer("not_joined", "join channel "+o.Channel+" first")
		}
		return answer("duplicate", "history request "+o.ID+" was already made")
	}
	ask := &historyAsk{from: c, channel: o.Channel, limit: limit, since: o.Since,
		have: make(map[string]bool), asked: make(map[*conn]int), got: make(map[string]proto.Message)}
	for _, id := range o.Have {
		ask.have[id] = true
	}
	for other := range s.conns {
		if _, in := other.channels[o.Channel]; in && other != c {
			ask.asked[other] = limit
		}
	}
	if s.histories == nil {
		s.histories = make(map[string]*historyAsk)
	}
	s.histories[o.ID] = ask
	s.wg.Add(1)
	quit := s.quitLocked()
	members := make([]*conn, 0, len(ask.asked))
	for other := range ask.asked {
		members = append(members, other)
	}
	s.mu.Unlock()
	for _, other := range members {
		other.write(req)
	}
	go func() {
		defer s.wg.Done()
		// The answers' time to come, as a node waits for them.
		t := time.NewTimer(s.historyWait())
		defer t.Stop()
		select {
		case <-t.C:
			s.endHistory(o.ID)
		case <-quit:
		}
	}()
	return true
}

// historyAnswer takes one member's answer, checked as a node checks it.
func (s *Server) historyAnswer(c *conn, o *proto.HistoryAnswer) {
	m, err := o.Message.ChannelMessage()
	if err != nil || m.Verify() != nil {
		c.write(&proto.Error{Code: "bad_signature", Message: "history answer: message signature does not verify", ID: o.ID})
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ask := s.histories[o.ID]
	if ask == nil || ask.done || ask.asked[c] <= 0 || m.Channel != ask.channel || m.Timestamp < ask.since {
		return // not asked of this session, or not what was asked
	}
	ask.asked[c]--
	if ask.have[o.Message.ID] {
		return
	}
	msg := o.Message
	msg.Late, msg.History = true, o.ID
	ask.got[msg.ID] = msg
}

// endHistory sends the requester the newest limit messages that came,
// oldest first, then history_end.
func (s *Server) endHistory(id string) {
	s.mu.Lock()
	ask := s.histories[id]
	ask.done = true
	msgs := make([]proto.Message, 0, len(ask.got))
	for _, m := range ask.got {
		msgs = append(msgs, m)
	}
	s.mu.Unlock()
	slices.SortFunc(msgs, func(a, b proto.Message) int {
		if c := cmp.Compare(a.TS, b.TS); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	if len(msgs) > ask.limit {
		msgs = msgs[len(msgs)-ask.limit:]
	}
	for i := range msgs {
		if ask.from.write(&msgs[i]) != nil {
			return
		}
	}
	ask.from.write(&proto.HistoryEnd{Channel: ask.channel, ID: id, Count: int64(len(msgs))})
}
