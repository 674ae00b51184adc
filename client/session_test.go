//go:build !js

package client_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"darkchat/client"
	"darkchat/identity"
	"darkchat/tstest/clienttest"
)

func TestSessionChannelConversation(t *testing.T) {
	addr := (&clienttest.Server{}).StartTCP(t)
	ctx := testCtx(t)
	aliceKey := newKey(t)
	aliceEv, bobEv := newEvents(), newEvents()
	alice := dialSession(t, addr, client.SessionConfig{Key: aliceKey, OnEvent: aliceEv.on, Node: clienttest.DefaultNodeID})
	bob := dialSession(t, addr, client.SessionConfig{OnEvent: bobEv.on})

	if !alice.LoggedIn() || alice.Node() != clienttest.DefaultNodeID {
		t.Fatalf("LoggedIn %v, Node %q", alice.LoggedIn(), alice.Node())
	}
	if err := alice.Join(ctx, "lobby", "alice"); err != nil {
		t.Fatal(err)
	}
	if err := bob.Join(ctx, "lobby", "bob"); err != nil {
		t.Fatal(err)
	}
	if j := waitEvent[client.EventJoined](t, aliceEv); j != (client.EventJoined{Channel: "lobby", Username: "alice"}) {
		t.Fatalf("alice: %+v", j)
	}
	waitEvent[client.EventJoined](t, bobEv)

	id, err := alice.Send(ctx, "lobby", "hello bob")
	if err != nil {
		t.Fatal(err)
	}
	if ok := waitEvent[client.EventOK](t, aliceEv); ok.ID != id || ok.Channel != "lobby" {
		t.Fatalf("ok = %+v, want id %s", ok, id)
	}
	m := waitEvent[client.EventMessage](t, bobEv).Message
	if m.Author != aliceKey.Public() || m.Username != "alice" || m.Channel != "lobby" || m.Body != "hello bob" || hex.EncodeToString(m.ID[:]) != id {
		t.Fatalf("bob got %+v", m)
	}
	if err := alice.WaitIdle(ctx); err != nil || alice.Pending() != 0 {
		t.Fatalf("WaitIdle = %v, Pending = %d", err, alice.Pending())
	}

	// A new username in the same channel is used for the next message.
	alice.Join(ctx, "lobby", "alice2")
	alice.Send(ctx, "lobby", "renamed")
	if m := waitEvent[client.EventMessage](t, bobEv).Message; m.Username != "alice2" {
		t.Fatalf("after rename bob got username %q", m.Username)
	}

	if err := bob.Leave(ctx, "lobby"); err != nil {
		t.Fatal(err)
	}
	if l := waitEvent[client.EventLeft](t, bobEv); l.Channel != "lobby" {
		t.Fatalf("left %+v", l)
	}
	if _, err := bob.Send(ctx, "lobby", "gone"); !errors.Is(err, client.ErrNotJoined) {
		t.Fatalf("send after leave: %v, want ErrNotJoined", err)
	}
	if err := bob.Leave(ctx, "lobby"); !errors.Is(err, client.ErrNotJoined) {
		t.Fatalf("second leave: %v, want ErrNotJoined", err)
	}
	if got := alice.Channels(); len(got) != 1 || got["lobby"] != "alice2" {
		t.Fatalf("Channels = %v", got)
	}

	alice.Close()
	if ev := waitEvent[client.EventClosed](t, aliceEv); ev.Err != nil {
		t.Fatalf("closed by Close: %v, want nil", ev.Err)
	}
	if err := alice.Err(); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Err after Close = %v", err)
	}
	alice.Close() // idempotent
}

// Join and send are pipelined: the node handles a session's objects in
// order, so a send right after a join needs no wait.
func TestSessionSendRightAfterJoin(t *testing.T) {
	addr := (&clienttest.Server{}).StartTCP(t)
	ctx := testCtx(t)
	s := dialSession(t, addr, client.SessionConfig{})
	s.Join(ctx, "lobby", "alice")
	if _, err := s.Send(ctx, "lobby", "first"); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
}

// WaitIdle covers joins and leaves too, and their answers in any order of
// requests leave the state the last request asked for.
func TestSessionWaitIdleCoversJoinAndLeave(t *testing.T) {
	addr := (&clienttest.Server{}).StartTCP(t)
	ctx := testCtx(t)
	ev := newEvents()
	s := dialSession(t, addr, client.SessionConfig{OnEvent: ev.on})
	s.Join(ctx, "a", "alice")
	s.Join(ctx, "b", "alice")
	s.Leave(ctx, "b")
	s.Join(ctx, "c", "alice")
	s.Leave(ctx, "c")
	s.Join(ctx, "c", "carol")
	start := time.Now()
	if err := s.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > waitTimeout/2 {
		t.Fatalf("WaitIdle took %v: not woken by the answers", d)
	}
	if got := s.Channels(); len(got) != 2 || got["a"] != "alice" || got["c"] != "carol" {
		t.Fatalf("Channels = %v, want a as alice and c as carol", got)
	}
}

func TestSessionSendChecks(t *testing.T) {
	// A node with a --max-line below what a 4096-byte body can take once
	// JSON escapes it (up to 6 bytes a byte).
	addr := (&clienttest.Server{Limits: client.Limits{MaxLine: 16 << 10, MaxBody: identity.MaxBodyLen}}).StartTCP(t)
	ctx := testCtx(t)
	ev := newEvents()
	s := dialSession(t, addr, client.SessionConfig{OnEvent: ev.on})
	if _, err := s.Send(ctx, "lobby", "x"); !errors.Is(err, client.ErrNotJoined) {
		t.Fatalf("send before join: %v", err)
	}
	if err := s.Join(ctx, "Lobby", "alice"); !errors.Is(err, identity.ErrInvalidChannelName) {
		t.Fatalf("join Lobby: %v", err)
	}
	if err := s.Join(ctx, "lobby", "al ice"); !errors.Is(err, identity.ErrInvalidUsername) {
		t.Fatalf("join as 'al ice': %v", err)
	}
	s.Join(ctx, "lobby", "alice")
	if _, err := s.Send(ctx, "lobby", strings.Repeat("x", identity.MaxBodyLen+1)); !errors.Is(err, client.ErrTooLarge) {
		t.Fatalf("oversized body: %v", err)
	}
	if _, err := s.Send(ctx, "lobby", "bad \xff utf8"); !errors.Is(err, identity.ErrMalformed) {
		t.Fatalf("invalid UTF-8: %v", err)
	}
	// 4096 control characters fit the body limit but not the node's line
	// once JSON escapes them; the node would close the session, so the
	// client refuses and stays connected.
	if _, err := s.Send(ctx, "lobby", strings.Repeat("\x01", identity.MaxBodyLen)); !errors.Is(err, client.ErrTooLarge) {
		t.Fatalf("body too large once encoded: %v", err)
	}
	if _, err := s.Send(ctx, "lobby", strings.Repeat("é", identity.MaxBodyLen/2)); err != nil {
		t.Fatalf("largest body: %v", err)
	}
	if err := s.WaitIdle(ctx); err != nil || s.Err() != nil {
		t.Fatalf("WaitIdle %v, Err %v", err, s.Err())
	}
}

func TestSessionNodeErrorAnswersSend(t *testing.T) {
	srv := &clienttest.Server{Reject: func(m identity.ChannelMessage) string {
		if m.Body == "spam" {
			return "rate_limited"
		}
		return ""
	}}
	addr := srv.StartTCP(t)
	ctx := testCtx(t)
	ev := newEvents()
	s := dialSession(t, addr, client.SessionConfig{OnEvent: ev.on})
	s.Join(ctx, "lobby", "alice")
	id, err := s.Send(ctx, "lobby", "spam")
	if err != nil {
		t.Fatal(err)
	}
	e := waitEvent[client.EventError](t, ev)
	if e.Err.Code != "rate_limited" || e.Err.ID != id {
		t.Fatalf("error %+v, want rate_limited for %s", e.Err, id)
	}
	if err := s.WaitIdle(ctx); err != nil {
		t.Fatalf("WaitIdle after an error answer: %v", err)
	}
	if s.Err() != nil {
		t.Fatalf("session ended: %v", s.Err())
	}
}

func TestSessionManualLogin(t *testing.T) {
	addr := (&clienttest.Server{}).StartTCP(t)
	ctx := testCtx(t)
	key := newKey(t)
	s := dialSession(t, addr, client.SessionConfig{Key: key, ManualAuth: true})
	if err := s.Join(ctx, "lobby", "alice"); !errors.Is(err, client.ErrNotLoggedIn) {
		t.Fatalf("join before login: %v", err)
	}
	h, err := s.Challenge(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A signature by another key, or of another challenge, is refused
	// locally and the connection stays usable.
	other := newKey(t)
	if err := s.Login(ctx, identity.SignLogin(other, h.Challenge)); !errors.Is(err, identity.ErrBadSignature) {
		t.Fatalf("login with another key's signature: %v", err)
	}
	if err := s.Login(ctx, []byte{1, 2, 3}); !errors.Is(err, identity.ErrBadSignature) {
		t.Fatalf("login with a short signature: %v", err)
	}
	if err := s.Login(ctx, identity.SignLogin(key, h.Challenge)); err != nil {
		t.Fatalf("login: %v", err)
	}
	if !s.LoggedIn() {
		t.Fatal("not logged in")
	}
	if err := s.Login(ctx, identity.SignLogin(key, h.Challenge)); !errors.Is(err, client.ErrAlreadyLoggedIn) {
		t.Fatalf("second login: %v", err)
	}
}

func TestSessionOverWebSocket(t *testing.T) {
	srv := &clienttest.Server{}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); hs.Close() })
	ctx := testCtx(t)
	tr, err := client.DialWS(ctx, "ws"+strings.TrimPrefix(hs.URL, "http")+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	ev := newEvents()
	s, err := client.NewSession(tr, client.SessionConfig{Key: newKey(t), OnEvent: ev.on})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.WaitLogin(ctx); err != nil {
		t.Fatal(err)
	}
	s.Join(ctx, "lobby", "alice")
	waitEvent[client.EventJoined](t, ev)
}

// rawPeer plays the node by hand on a loopback connection, for what the
// scripted server does not do on its own.
type rawPeer struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// newRawSession returns a session connected to a raw peer.
func newRawSession(t *testing.T, cfg client.SessionConfig) (*client.Session, *rawPeer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tr, err := client.DialTCP(testCtx(t), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if cfg.Key.IsZero() {
		cfg.Key = newKey(t)
	}
	s, err := client.NewSession(tr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, &rawPeer{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (p *rawPeer) send(line string) {
	p.t.Helper()
	if _, err := p.conn.Write([]byte(line + "\n")); err != nil {
		p.t.Fatal(err)
	}
}

func (p *rawPeer) sendObj(obj client.Object) {
	p.t.Helper()
	data, err := client.Encode(obj)
	if err != nil {
		p.t.Fatal(err)
	}
	p.send(string(data))
}

// recv returns the next object from the client, or nil at EOF.
func (p *rawPeer) recv() client.Object {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(waitTimeout))
	line, err := p.r.ReadBytes('\n')
	if err != nil {
		return nil
	}
	obj, err := client.Decode(line[:len(line)-1])
	if err != nil {
		p.t.Fatalf("client sent %q: %v", line, err)
	}
	return obj
}

// hello sends a hello for node and returns its challenge.
func (p *rawPeer) hello(node string) string {
	p.t.Helper()
	ch, err := identity.NewChallenge(node, time.Now(), time.Minute)
	if err != nil {
		p.t.Fatal(err)
	}
	p.sendObj(&client.Hello{Protocol: 1, Node: node, Challenge: ch})
	return ch
}

// login plays hello, login and welcome, and returns the login.
func (p *rawPeer) login(key identity.PrivateKey) *client.Login {
	p.t.Helper()
	ch := p.hello(clienttest.DefaultNodeID)
	login, ok := p.recv().(*client.Login)
	if !ok {
		p.t.Fatal("no login")
	}
	sig, _ := hex.DecodeString(login.Sig)
	if err := identity.VerifyLogin(key.Public(), ch, sig, clienttest.DefaultNodeID, time.Now()); err != nil {
		p.t.Fatalf("login does not verify: %v", err)
	}
	p.sendObj(&client.Welcome{Key: login.Key, Node: clienttest.DefaultNodeID})
	return login
}

func TestSessionRefusesChallengeForAnotherNode(t *testing.T) {
	ev := newEvents()
	s, peer := newRawSession(t, client.SessionConfig{Node: "12D3KooWexpected", OnEvent: ev.on})
	peer.hello("12D3KooWsomeoneelse")
	if err := s.WaitLogin(testCtx(t)); !errors.Is(err, client.ErrWrongNode) {
		t.Fatalf("WaitLogin = %v, want ErrWrongNode", err)
	}
	if obj := peer.recv(); obj != nil {
		t.Fatalf("the client sent %#v; it must not sign another node's challenge", obj)
	}
	if e := waitEvent[client.EventClosed](t, ev); !errors.Is(e.Err, client.ErrWrongNode) {
		t.Fatalf("closed with %v", e.Err)
	}
}

func TestSessionRefusesMismatchedHello(t *testing.T) {
	s, peer := newRawSession(t, client.SessionConfig{})
	ch, _ := identity.NewChallenge("12D3KooWa", time.Now(), time.Minute)
	peer.sendObj(&client.Hello{Protocol: 1, Node: "12D3KooWb", Challenge: ch})
	if err := s.WaitLogin(testCtx(t)); !errors.Is(err, client.ErrWrongNode) {
		t.Fatalf("WaitLogin = %v, want ErrWrongNode", err)
	}
}

func TestSessionRefusesOtherProtocolVersion(t *testing.T) {
	s, peer := newRawSession(t, client.SessionConfig{})
	ch, _ := identity.NewChallenge(clienttest.DefaultNodeID, time.Now(), time.Minute)
	peer.sendObj(&client.Hello{Protocol: 2, Node: clienttest.DefaultNodeID, Challenge: ch})
	if err := s.WaitLogin(testCtx(t)); !errors.Is(err, client.ErrProtocol) {
		t.Fatalf("WaitLogin = %v, want ErrProtocol", err)
	}
}

func TestSessionLoginRefused(t *testing.T) {
	ev := newEvents()
	s, peer := newRawSession(t, client.SessionConfig{OnEvent: ev.on})
	peer.hello(clienttest.DefaultNodeID)
	peer.recv()
	peer.send(`{"type":"error","code":"bad_signature","message":"login signature does not verify"}`)
	peer.conn.Close()
	var nodeErr *client.Error
	if err := s.WaitLogin(testCtx(t)); !errors.As(err, &nodeErr) || nodeErr.Code != "bad_signature" {
		t.Fatalf("WaitLogin = %v, want the node's bad_signature", err)
	}
	if e := waitEvent[client.EventClosed](t, ev); !errors.As(e.Err, &nodeErr) {
		t.Fatalf("closed with %v, want the node's error", e.Err)
	}
}

func TestSessionHandlesNodeObjects(t *testing.T) {
	key := newKey(t)
	ev := newEvents()
	s, peer := newRawSession(t, client.SessionConfig{Key: key, OnEvent: ev.on})
	peer.login(key)
	waitEvent[client.EventLoggedIn](t, ev)
	ctx := testCtx(t)

	peer.send(`{"type":"ping"}`)
	if _, ok := peer.recv().(*client.Pong); !ok {
		t.Fatal("no pong")
	}
	peer.send(`{"type":"dm_later","x":1}`) // a later version's object: ignored
	peer.send(`not json`)
	if w := waitEvent[client.EventWarning](t, ev); !errors.Is(w.Err, client.ErrMalformed) {
		t.Fatalf("warning %v", w.Err)
	}

	author := newKey(t)
	msg := func(channel, body string) *client.Message {
		m, err := identity.NewChannelMessage(author, channel, "bob", body, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return &client.Message{Channel: m.Channel, Username: m.Username, Key: m.Author.String(), Body: m.Body,
			TS: m.Timestamp, ID: hex.EncodeToString(m.ID[:]), Sig: hex.EncodeToString(m.Sig[:])}
	}
	peer.sendObj(msg("lobby", "not joined yet")) // dropped

	s.Join(ctx, "lobby", "alice")
	if j, ok := peer.recv().(*client.Join); !ok || j.Channel != "lobby" {
		t.Fatalf("want join, got %#v", j)
	}
	peer.sendObj(&client.Joined{Channel: "lobby", Username: "alice"})

	forged := msg("lobby", "original")
	forged.Body = "forged"
	peer.sendObj(forged)
	if w := waitEvent[client.EventWarning](t, ev); !errors.Is(w.Err, identity.ErrBadSignature) {
		t.Fatalf("warning %v, want a bad signature", w.Err)
	}

	good := msg("lobby", "hi alice")
	peer.sendObj(good)
	peer.sendObj(good) // replayed: dropped
	peer.sendObj(msg("lobby", "second"))
	if m := waitEvent[client.EventMessage](t, ev).Message; m.Body != "hi alice" {
		t.Fatalf("first message %q", m.Body)
	}
	if m := waitEvent[client.EventMessage](t, ev).Message; m.Body != "second" {
		t.Fatalf("second message %q (a replay shown twice?)", m.Body)
	}

	// A send the node never answers stays pending until the node closes
	// the session, and then WaitIdle reports it.
	if _, err := s.Send(ctx, "lobby", "lost"); err != nil {
		t.Fatal(err)
	}
	if _, ok := peer.recv().(*client.Send); !ok {
		t.Fatal("no send")
	}
	if s.Pending() != 1 {
		t.Fatalf("Pending = %d", s.Pending())
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := s.WaitIdle(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitIdle with an unanswered send: %v", err)
	}
	peer.send(`{"type":"error","code":"shutdown","message":"the node is shutting down"}`)
	peer.conn.Close()
	closed := waitEvent[client.EventClosed](t, ev)
	var nodeErr *client.Error
	if !errors.As(closed.Err, &nodeErr) || nodeErr.Code != "shutdown" {
		t.Fatalf("closed with %v, want the node's shutdown error", closed.Err)
	}
	if err := s.WaitIdle(ctx); err == nil {
		t.Fatal("WaitIdle after the end with a send unanswered: nil")
	}
}

// A node's message can be longer than the node's own line limit: Go's
// default JSON encoder writes each of 4096 "<" as \u003c, which is over a
// --max-line of 16 KiB, and a later node may add fields. The client must
// take it, or one user could cut everyone in a channel off.
func TestSessionLongestMessageFromNode(t *testing.T) {
	key := newKey(t)
	ev := newEvents()
	s, peer := newRawSession(t, client.SessionConfig{Key: key, OnEvent: ev.on})
	peer.login(key)
	waitEvent[client.EventLoggedIn](t, ev)
	channel, username := strings.Repeat("c", identity.MaxChannelLen), strings.Repeat("u", identity.MaxUsernameLen)
	s.Join(testCtx(t), channel, username)
	peer.recv()
	peer.sendObj(&client.Joined{Channel: channel, Username: username})

	m, err := identity.NewChannelMessage(newKey(t), channel, username, strings.Repeat("<", identity.MaxBodyLen), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	frame, err := json.Marshal(client.Message{Channel: m.Channel, Username: m.Username, Key: m.Author.String(), Body: m.Body,
		TS: m.Timestamp, ID: hex.EncodeToString(m.ID[:]), Sig: hex.EncodeToString(m.Sig[:])})
	if err != nil {
		t.Fatal(err)
	}
	frame = append([]byte(`{"type":"message","later":"`+strings.Repeat("x", 10<<10)+`",`), frame[1:]...)
	if len(frame) <= client.MaxObjectSize || len(frame) > client.MaxRecvSize {
		t.Fatalf("frame of %d bytes does not test the case", len(frame))
	}
	peer.send(string(frame))
	if got := waitEvent[client.EventMessage](t, ev).Message; got.Body != m.Body {
		t.Fatal("body changed")
	}
}

func TestSessionKeepAlive(t *testing.T) {
	key := newKey(t)
	ev := newEvents()
	s, peer := newRawSession(t, client.SessionConfig{Key: key, OnEvent: ev.on, KeepAlive: 50 * time.Millisecond})
	peer.login(key)
	if _, ok := peer.recv().(*client.Ping); !ok {
		t.Fatal("a quiet node was not pinged")
	}
	// The peer never answers: the session gives up.
	if e := waitEvent[client.EventClosed](t, ev); !errors.Is(e.Err, client.ErrIdle) {
		t.Fatalf("closed with %v, want ErrIdle", e.Err)
	}
	<-s.Done()
}

func TestSessionTooLargeFromNode(t *testing.T) {
	ev := newEvents()
	_, peer := newRawSession(t, client.SessionConfig{OnEvent: ev.on})
	peer.conn.Write([]byte(strings.Repeat("x", client.MaxRecvSize+10) + "\n"))
	if e := waitEvent[client.EventClosed](t, ev); !errors.Is(e.Err, client.ErrTooLarge) {
		t.Fatalf("closed with %v, want ErrTooLarge", e.Err)
	}
}

func TestSessionCloseDoesNotHang(t *testing.T) {
	// The peer never reads or writes.
	s, _ := newRawSession(t, client.SessionConfig{})
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Close hangs")
	}
}
