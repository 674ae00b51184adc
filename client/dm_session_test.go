//go:build !js

package client_test

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"darkchat/client"
	"darkchat/identity"
	"darkchat/tstest/clienttest"
)

// checkLoginBundle checks that a login carries key's bundle, issued at now
// and valid for 24 hours.
func checkLoginBundle(t *testing.T, login *client.Login, key identity.PrivateKey, now time.Time) {
	t.Helper()
	b, err := client.DecodeKeyBundle(login.Bundle)
	if err != nil {
		t.Fatalf("login bundle: %v", err)
	}
	if err := b.Verify(key.Public(), now); err != nil {
		t.Fatalf("login bundle: %v", err)
	}
	dk, _ := key.DMKey()
	if b.DM != dk.Public() {
		t.Fatal("login bundle: not the key's DM key")
	}
	if ttl := b.ExpiresTime().Sub(b.IssuedTime()); ttl != 24*time.Hour {
		t.Fatalf("login bundle valid for %v, want 24h", ttl)
	}
	if d := b.IssuedTime().Sub(now); d < -time.Minute || d > time.Minute {
		t.Fatalf("login bundle issued %v, now is %v", b.IssuedTime(), now)
	}
}

func TestSessionLoginPublishesBundle(t *testing.T) {
	key := newKey(t)
	ev := newEvents()
	_, peer := newRawSession(t, client.SessionConfig{Key: key, OnEvent: ev.on})
	checkLoginBundle(t, peer.login(key), key, time.Now())
	waitEvent[client.EventLoggedIn](t, ev)
}

func TestSessionManualLoginPublishesBundle(t *testing.T) {
	key := newKey(t)
	s, peer := newRawSession(t, client.SessionConfig{Key: key, ManualAuth: true})
	challenge := peer.hello(clienttest.DefaultNodeID)
	if _, err := s.Challenge(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Login(testCtx(t), identity.SignLogin(key, challenge)) }()
	login, ok := peer.recv().(*client.Login)
	if !ok {
		t.Fatal("no login")
	}
	checkLoginBundle(t, login, key, time.Now())
	peer.sendObj(&client.Welcome{Key: login.Key, Node: clienttest.DefaultNodeID})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A session that lasts longer than its bundle sends a fresh one before it
// expires.
func TestSessionBundleRefresh(t *testing.T) {
	key := newKey(t)
	start := time.Now()
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	_, peer := newRawSession(t, client.SessionConfig{Key: key, Now: now, KeepAlive: 100 * time.Millisecond})
	checkLoginBundle(t, peer.login(key), key, start)
	skew.Store(int64(23 * time.Hour))
	for {
		switch o := peer.recv().(type) {
		case *client.Ping:
			peer.sendObj(&client.Pong{})
			continue
		case *client.Bundle:
			if o.Key != "" {
				t.Fatalf("bundle update names key %q", o.Key)
			}
			checkLoginBundle(t, &client.Login{Bundle: o.Bundle}, key, now())
			// The node's answer names the user's own key: nothing to do.
			peer.sendObj(&client.Bundle{Key: key.Public().String(), Bundle: o.Bundle})
			peer.sendObj(&client.Ping{})
			if _, ok := peer.recv().(*client.Pong); !ok {
				t.Fatal("no pong after the bundle answer")
			}
			return
		default:
			t.Fatalf("want a bundle update, got %#v", o)
		}
	}
}

// The node's answers to a DM: an error names it and settles it, dm_sent
// starts the receipt timer, and a session that ends reports the DMs still
// waiting.
func TestSessionDMAnswers(t *testing.T) {
	key := newKey(t)
	ev := newEvents()
	s, peer := newRawSession(t, client.SessionConfig{Key: key, OnEvent: ev.on})
	peer.login(key)
	waitEvent[client.EventLoggedIn](t, ev)
	ctx := testCtx(t)
	toKey := newKey(t)
	to := toKey.Public()
	toBundle, _ := identity.NewKeyBundle(toKey, time.Now(), time.Hour)
	enc, _ := client.EncodeKeyBundle(toBundle)

	type result struct {
		id  string
		err error
	}
	sendDM := func(body string) chan result {
		r := make(chan result, 1)
		go func() {
			id, err := s.SendDM(ctx, to, "me", body)
			r <- result{id, err}
		}()
		return r
	}

	// The first DM looks the recipient up.
	r := sendDM("one")
	if w, ok := peer.recv().(*client.Whois); !ok || w.Key != to.String() {
		t.Fatalf("want a whois for %s, got %#v", to, w)
	}
	peer.sendObj(&client.Bundle{Key: to.String(), Bundle: enc})
	dm, ok := peer.recv().(*client.DM)
	if !ok {
		t.Fatal("no dm")
	}
	if res := <-r; res.err != nil || res.id != dm.Ref {
		t.Fatalf("SendDM = %q, %v; the dm's ref is %q", res.id, res.err, dm.Ref)
	}
	if s.PendingDMs() != 1 {
		t.Fatalf("PendingDMs = %d", s.PendingDMs())
	}
	if err := s.WaitIdleQuiet(ctx, 20*time.Millisecond); !errors.Is(err, client.ErrNoAnswer) {
		t.Fatalf("WaitIdleQuiet with a dm unanswered: %v", err)
	}
	peer.sendObj(&client.Error{Code: "rate_limited", Message: "slow down", Ref: dm.Ref})
	st := waitEvent[client.EventDMStatus](t, ev)
	var nodeErr *client.Error
	if st.To != to || st.ID != dm.Ref || st.Delivered || !errors.As(st.Err, &nodeErr) || nodeErr.Code != "rate_limited" {
		t.Fatalf("status %+v", st)
	}

	// The second uses the cached bundle: no whois.
	r = sendDM("two")
	dm, ok = peer.recv().(*client.DM)
	if !ok {
		t.Fatal("no dm for the second DM")
	}
	if res := <-r; res.err != nil {
		t.Fatal(res.err)
	}
	peer.sendObj(&client.DMSent{Ref: dm.Ref})
	if err := s.WaitIdle(ctx); err != nil {
		t.Fatalf("WaitIdle after dm_sent: %v", err)
	}
	if s.PendingDMs() != 1 {
		t.Fatalf("PendingDMs = %d, want the DM awaiting its receipt", s.PendingDMs())
	}
	peer.conn.Close()
	st = waitEvent[client.EventDMStatus](t, ev)
	if st.ID != dm.Ref || !errors.Is(st.Err, client.ErrConnectionLost) {
		t.Fatalf("status %+v, want connection lost", st)
	}
	waitEvent[client.EventClosed](t, ev)
	if err := s.WaitDMs(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSessionWhoisAnswers(t *testing.T) {
	key := newKey(t)
	ev := newEvents()
	s, peer := newRawSession(t, client.SessionConfig{Key: key, OnEvent: ev.on})
	peer.login(key)
	waitEvent[client.EventLoggedIn](t, ev)
	ctx := testCtx(t)
	k := newKey(t).Public()

	whois := func() chan error {
		r := make(chan error, 1)
		go func() { _, err := s.Whois(ctx, k); r <- err }()
		return r
	}
	r := whois()
	if w, ok := peer.recv().(*client.Whois); !ok || w.Key != k.String() {
		t.Fatalf("want a whois, got %#v", w)
	}
	peer.sendObj(&client.Error{Code: "unknown_user", Message: "no such user", Key: k.String()})
	if err := <-r; !errors.Is(err, client.ErrUnknownUser) {
		t.Fatalf("Whois = %v, want ErrUnknownUser", err)
	}
	r = whois()
	peer.recv()
	peer.sendObj(&client.Error{Code: "internal", Message: "the DHT failed", Key: k.String()})
	if err := <-r; err == nil || errors.Is(err, client.ErrUnknownUser) || err.Error() != "whois "+k.String()+": the DHT failed (internal)" {
		t.Fatalf("Whois = %v", err)
	}
	// Neither answer was reported as an event: the next event is the
	// error that concerns no request.
	peer.sendObj(&client.Error{Code: "internal", Message: "something else"})
	if e := waitEvent[client.EventError](t, ev); e.Err.Message != "something else" {
		t.Fatalf("event %v", e.Err)
	}
}
