//go:build !js

package command_test

import (
	"regexp"
	"testing"

	"darkchat/client"
	"darkchat/client/command"
	"darkchat/identity"
	"darkchat/tstest/clienttest"
)

// A message the client missed, found from the next one's causal context,
// is printed once, as the usual line in a script, with no history end.
func TestClientGapScripted(t *testing.T) {
	srv := &clienttest.Server{}
	bobKey := newKey(t)
	srv.Drop = func(to identity.PublicKey, m identity.ChannelMessage) bool {
		return to == bobKey.Public() && m.Body == "lost"
	}
	addr := srv.StartTCP(t)
	ctx := testCtx(t)
	alice, aliceOut := newClient(t, addr, command.Config{})
	bob, bobOut := newClient(t, addr, command.Config{Key: bobKey})
	alice.Execute(ctx, "join lobby alice")
	aliceOut.waitLine(t, "Joined lobby as alice")
	bob.Execute(ctx, "join lobby bob")
	bobOut.waitLine(t, "Joined lobby as bob")
	for _, body := range []string{"first", "lost", "after"} {
		alice.Execute(ctx, "lobby "+body)
	}
	if err := alice.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"alice@lobby - first", "alice@lobby - after", "alice@lobby - lost"} {
		if l := bobOut.next(t); l.Text != want || l.Kind != command.LineMessage || l.Late != (want == "alice@lobby - lost") {
			t.Fatalf("bob got %+v, want %q", l, want)
		}
	}
	// The request has ended (Drain waits for it) without a line.
	if err := bob.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	alice.Execute(ctx, "lobby done")
	if l := bobOut.next(t); l.Text != "alice@lobby - done" {
		t.Fatalf("bob got %q, want the next message only", l.Text)
	}
	bobOut.none(t)
}

var seenLine = regexp.MustCompile(`^\d\d:\d\d (.*) — (seen by \d+: .*|not seen yet)$`)

// seen lists the user's messages of a channel with who has seen them; in
// interactive mode the channel defaults to the current one.
func TestClientSeen(t *testing.T) {
	addr := (&clienttest.Server{}).StartTCP(t)
	ctx := testCtx(t)
	var seen = make(chan client.EventSeen, 10)
	alice, aliceOut := newClient(t, addr, command.Config{Interactive: true, OnSeen: func(e client.EventSeen) { seen <- e }})
	bob, bobOut := newClient(t, addr, command.Config{})
	alice.Execute(ctx, "join lobby alice")
	aliceOut.waitLine(t, "Joined lobby as alice")
	bob.Execute(ctx, "join lobby bob")
	bobOut.waitLine(t, "Joined lobby as bob")
	alice.Execute(ctx, "seen")
	aliceOut.waitLine(t, "No messages of yours in #lobby to show")
	alice.Execute(ctx, "lobby hello bob, this line is longer than forty characters")
	alice.Execute(ctx, "lobby second")
	if err := alice.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	bobOut.waitLine(t, "alice@lobby - second")
	bob.Execute(ctx, "lobby hi alice")
	if err := bob.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	aliceOut.waitLine(t, "bob@lobby - hi alice")
	// bob names "second", which names the first: both are seen.
	for range 2 {
		select {
		case e := <-seen:
			if e.Count != 1 || len(e.By) != 1 || e.By[0] != "bob" {
				t.Fatalf("seen event %+v, want seen by bob", e)
			}
		case <-ctx.Done():
			t.Fatal("no seen event")
		}
	}
	alice.Execute(ctx, "seen")
	for _, want := range []string{"hello bob, this line is longer than fort", "second"} {
		l := aliceOut.next(t)
		m := seenLine.FindStringSubmatch(l.Text)
		if m == nil || m[1] != want || m[2] != "seen by 1: bob" {
			t.Fatalf("seen printed %q, want %q seen by bob", l.Text, want)
		}
	}
	// In a script the channel is named; nobody has seen bob's.
	bob.Execute(ctx, "seen lobby")
	if l := bobOut.next(t); !seenLine.MatchString(l.Text) || l.Text[6:] != "hi alice — not seen yet" {
		t.Fatalf("bob's seen printed %q", l.Text)
	}
	bob.Execute(ctx, "seen")
	bobOut.waitLine(t, "ERROR: usage: seen <channel>")
	aliceOut.none(t)
	bobOut.none(t)
}
