//go:build !js

package client_test

import (
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"darkchat/client"
	"darkchat/identity"
	"darkchat/proto"
	"darkchat/tstest/clienttest"
)

// collectHistory returns the late messages of the history request id and
// its end, failing on any other message before the end.
func collectHistory(t *testing.T, e events, id string) ([]client.EventMessage, client.EventHistoryEnd) {
	t.Helper()
	var got []client.EventMessage
	for {
		switch ev := waitEvent[client.Event](t, e).(type) {
		case client.EventMessage:
			if !ev.Late || ev.History != id {
				t.Fatalf("during history %s: message %q late=%v history=%q", id, ev.Message.Body, ev.Late, ev.History)
			}
			got = append(got, ev)
		case client.EventHistoryEnd:
			if ev.ID != id {
				t.Fatalf("end of history %s, want %s", ev.ID, id)
			}
			return got, ev
		case client.EventError:
			t.Fatalf("during history %s: %v", id, ev.Err)
		}
	}
}

// steppingClock returns a clock that moves on a millisecond each time it
// is read, starting an hour ago.
func steppingClock() func() time.Time {
	var mu sync.Mutex
	clock := time.Now().Add(-time.Hour)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Millisecond)
		return clock
	}
}

func bodies(msgs []client.EventMessage) []string {
	var b []string
	for _, m := range msgs {
		b = append(b, m.Message.Body)
	}
	return b
}

// A member who was not there when messages were sent gets them from the
// others, in order, once each, marked late; a second request and a
// request after leaving and joining again show nothing twice.
func TestSessionHistory(t *testing.T) {
	addr := (&clienttest.Server{}).StartTCP(t)
	ctx := testCtx(t)
	aliceEv, bobEv, carolEv := newEvents(), newEvents(), newEvents()
	// Alice's clock steps, so her messages' timestamps differ and give
	// the order the history must have.
	alice := dialSession(t, addr, client.SessionConfig{OnEvent: aliceEv.on, Now: steppingClock()})
	bob := dialSession(t, addr, client.SessionConfig{OnEvent: bobEv.on})
	alice.Join(ctx, "lobby", "alice")
	bob.Join(ctx, "lobby", "bob")
	waitEvent[client.EventJoined](t, aliceEv)
	waitEvent[client.EventJoined](t, bobEv)
	var sent []string
	for i := range 3 {
		body := fmt.Sprintf("message %d", i)
		if _, err := alice.Send(ctx, "lobby", body); err != nil {
			t.Fatal(err)
		}
		if m := waitEvent[client.EventMessage](t, bobEv); m.Message.Body != body || m.Late {
			t.Fatalf("bob got %q late=%v, want %q", m.Message.Body, m.Late, body)
		}
		sent = append(sent, body)
	}
	if err := alice.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}

	carol := dialSession(t, addr, client.SessionConfig{OnEvent: carolEv.on})
	if _, err := carol.History(ctx, "lobby", 0); !errors.Is(err, client.ErrNotJoined) {
		t.Fatalf("history before joining: %v, want ErrNotJoined", err)
	}
	carol.Join(ctx, "lobby", "carol")
	waitEvent[client.EventJoined](t, carolEv)
	id, err := carol.History(ctx, "lobby", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(id) != 32 {
		t.Fatalf("request ID %q", id)
	}
	// Both alice (who sent them) and bob (who received them) answer; the
	// node drops the copies.
	got, end := collectHistory(t, carolEv, id)
	if fmt.Sprint(bodies(got)) != fmt.Sprint(sent) {
		t.Fatalf("history: %q, want %q", bodies(got), sent)
	}
	if end.Channel != "lobby" || end.Count != 3 || end.Fresh != 3 || end.Err != nil {
		t.Fatalf("end = %+v", end)
	}
	for i, m := range got {
		if m.Message.Author != alice.PublicKey() || m.Message.Username != "alice" || m.Message.Verify() != nil {
			t.Fatalf("late message %d: %+v", i, m.Message)
		}
		if i > 0 && m.Message.Timestamp < got[i-1].Message.Timestamp {
			t.Fatalf("late messages out of order: %d before %d", got[i-1].Message.Timestamp, m.Message.Timestamp)
		}
	}
	if err := carol.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}

	// The second time, carol names what she has: nobody sends it again.
	id, err = carol.History(ctx, "lobby", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, end := collectHistory(t, carolEv, id); len(got) != 0 || end.Count != 0 {
		t.Fatalf("second history: %q, end %+v", bodies(got), end)
	}

	// After leaving, carol keeps nothing of the channel, so her request
	// names nothing: the messages come again, and are not shown again.
	carol.Leave(ctx, "lobby")
	waitEvent[client.EventLeft](t, carolEv)
	carol.Join(ctx, "lobby", "carol")
	waitEvent[client.EventJoined](t, carolEv)
	id, err = carol.History(ctx, "lobby", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, end := collectHistory(t, carolEv, id); len(got) != 0 || end.Count != 3 || end.Fresh != 0 {
		t.Fatalf("history after rejoining: %q, end %+v", bodies(got), end)
	}
}

// A late copy of a message already shown, or a replay of one, is not
// reported again.
func TestSessionLateMessageShownOnce(t *testing.T) {
	srv := &clienttest.Server{}
	addr := srv.StartTCP(t)
	ctx := testCtx(t)
	ev := newEvents()
	s := dialSession(t, addr, client.SessionConfig{OnEvent: ev.on})
	s.Join(ctx, "lobby", "carol")
	waitEvent[client.EventJoined](t, ev)

	author := newKey(t)
	msg := func(body string, late bool) []byte {
		t.Helper()
		m, err := identity.NewChannelMessage(author, "lobby", "dave", body, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		o := &client.Message{Channel: m.Channel, Username: m.Username, Key: m.Author.String(), Body: m.Body,
			TS: m.Timestamp, ID: hex.EncodeToString(m.ID[:]), Sig: hex.EncodeToString(m.Sig[:])}
		if late {
			o.Late, o.History = true, "00112233445566778899aabbccddeeff"
		}
		data, err := client.Encode(o)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	first, second := msg("first", false), msg("second", true)
	srv.Inject(first)
	srv.Inject(second)
	srv.Inject(first)  // replayed
	srv.Inject(second) // again
	var lateCopy []byte
	{
		// first again, as a late message.
		o, _ := client.Decode(first)
		m := o.(*client.Message)
		m.Late, m.History = true, "00112233445566778899aabbccddeeff"
		lateCopy, _ = client.Encode(m)
	}
	srv.Inject(lateCopy)
	srv.Inject(msg("third", false))
	var got []string
	for len(got) < 3 {
		m := waitEvent[client.EventMessage](t, ev)
		got = append(got, fmt.Sprintf("%s late=%v", m.Message.Body, m.Late))
	}
	if want := "[first late=false second late=true third late=false]"; fmt.Sprint(got) != want {
		t.Fatalf("got %v, want %v", got, want)
	}
	select {
	case e := <-ev:
		if m, ok := e.(client.EventMessage); ok {
			t.Fatalf("extra message %q", m.Message.Body)
		}
	default:
	}
}

// A session keeps the last client.HistoryKeep messages of a channel, and
// answers a request with the newest, as many as asked.
func TestSessionHistoryKeepsBoundedLog(t *testing.T) {
	srv := &clienttest.Server{Limits: proto.Limits{Rate: 1e6, Burst: 1e6}}
	addr := srv.StartTCP(t)
	ctx := testCtx(t)
	bobEv := newEvents()
	store := client.NewStore()
	// Alice's events (an ok per message) are not read.
	alice := dialSession(t, addr, client.SessionConfig{Store: store, Now: steppingClock()})
	alice.Join(ctx, "lobby", "alice")
	n := client.HistoryKeep + 10
	for i := range n {
		if _, err := alice.Send(ctx, "lobby", fmt.Sprintf("m%d", i)); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			// Unpaced by the node's rate, sends must not outrun the
			// writer (a full send queue ends the session).
			if err := alice.WaitIdle(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := alice.WaitIdle(ctx); err != nil {
		t.Fatal(err)
	}
	if got := store.Len("lobby"); got != client.HistoryKeep {
		t.Fatalf("alice keeps %d messages of %d sent, want %d", got, n, client.HistoryKeep)
	}

	bob := dialSession(t, addr, client.SessionConfig{OnEvent: bobEv.on})
	bob.Join(ctx, "lobby", "bob")
	waitEvent[client.EventJoined](t, bobEv)
	id, err := bob.History(ctx, "lobby", proto.MaxHistoryLimit)
	if err != nil {
		t.Fatal(err)
	}
	got, end := collectHistory(t, bobEv, id)
	if len(got) != proto.MaxHistoryLimit || end.Count != proto.MaxHistoryLimit {
		t.Fatalf("got %d late messages, end %+v; want %d", len(got), end, proto.MaxHistoryLimit)
	}
	want := make(map[string]bool)
	for i := n - proto.MaxHistoryLimit; i < n; i++ {
		want[fmt.Sprintf("m%d", i)] = true
	}
	for i, m := range got {
		if i > 0 && m.Message.Timestamp <= got[i-1].Message.Timestamp {
			t.Fatalf("late message %d (%q) not after the one before", i, m.Message.Body)
		}
		if !want[m.Message.Body] {
			t.Fatalf("late message %d is %q: not one of the newest %d, or twice", i, m.Message.Body, proto.MaxHistoryLimit)
		}
		delete(want, m.Message.Body)
	}
	if alice.Err() != nil {
		t.Fatalf("answering ended alice's session: %v", alice.Err())
	}
}

// The session answers the node's history request with the messages it
// keeps of that channel since the time asked, newest first, as many as
// asked, and ignores one for a channel it is not in.
func TestSessionAnswersHistoryRequest(t *testing.T) {
	key := newKey(t)
	ev := newEvents()
	s, node := newRawSession(t, client.SessionConfig{Key: key, OnEvent: ev.on})
	node.login(key)
	waitEvent[client.EventLoggedIn](t, ev)
	ctx := testCtx(t)
	s.Join(ctx, "lobby", "carol")
	if _, ok := node.recv().(*client.Join); !ok {
		t.Fatal("no join")
	}
	node.sendObj(&client.Joined{Channel: "lobby", Username: "carol"})
	waitEvent[client.EventJoined](t, ev)

	author := newKey(t)
	base := time.Now().Add(-time.Hour)
	for i := range 5 {
		m, err := identity.NewChannelMessage(author, "lobby", "dave", fmt.Sprint(i), base.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		node.sendObj(&client.Message{Channel: m.Channel, Username: m.Username, Key: m.Author.String(), Body: m.Body,
			TS: m.Timestamp, ID: hex.EncodeToString(m.ID[:]), Sig: hex.EncodeToString(m.Sig[:])})
		waitEvent[client.EventMessage](t, ev)
	}
	const other, id = "ffeeddccbbaa99887766554433221100", "00112233445566778899aabbccddeeff"
	node.sendObj(&client.HistoryRequest{Channel: "elsewhere", ID: other, Limit: 10})
	node.sendObj(&client.HistoryRequest{Channel: "lobby", ID: id, Limit: 2, Since: base.Add(time.Second).UnixMilli()})
	var got []string
	for range 2 {
		a, ok := node.recv().(*client.HistoryAnswer)
		if !ok || a.ID != id {
			t.Fatalf("got %+v, want an answer to %s", a, id)
		}
		m, err := a.Message.ChannelMessage()
		if err != nil || m.Verify() != nil || a.Message.Late || a.Message.History != "" {
			t.Fatalf("answer %+v: %v", a.Message, err)
		}
		got = append(got, m.Body)
	}
	if fmt.Sprint(got) != "[4 3]" {
		t.Fatalf("answers %v, want the newest two, newest first", got)
	}
	node.sendObj(&client.HistoryRequest{Channel: "lobby", ID: other, Limit: 10, Since: base.Add(3500 * time.Millisecond).UnixMilli()})
	if a, ok := node.recv().(*client.HistoryAnswer); !ok || a.ID != other || a.Message.Body != "4" {
		t.Fatalf("got %+v, want the one message since", a)
	}
	node.sendObj(&client.Ping{})
	if _, ok := node.recv().(*client.Pong); !ok {
		t.Fatal("more answers than asked for")
	}
}
