//go:build !js

package command_test

import (
	"regexp"
	"sync"
	"testing"
	"time"

	"darkchat/client/command"
	"darkchat/tstest/clienttest"
)

var lateLine = regexp.MustCompile(`^\[late \d\d:\d\d\] alice@lobby - (.*)$`)

// history prints what the user missed: in scripted mode as plain channel
// lines (scripts keep working), interactive with the late mark and the
// author's time; an interactive join asks by itself.
func TestClientHistory(t *testing.T) {
	addr := (&clienttest.Server{}).StartTCP(t)
	ctx := testCtx(t)
	// Alice's clock steps, so her messages' timestamps differ and give
	// the order the history must have.
	var mu sync.Mutex
	clock := time.Now().Add(-time.Minute)
	alice, aliceOut := newClient(t, addr, command.Config{Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Millisecond)
		return clock
	}})
	alice.Execute(ctx, "join lobby alice")
	aliceOut.waitLine(t, "Joined lobby as alice")
	alice.Execute(ctx, "lobby hello")
	alice.Execute(ctx, "lobby how are you")
	if err := alice.Drain(ctx); err != nil {
		t.Fatal(err)
	}

	// Scripted.
	bob, bobOut := newClient(t, addr, command.Config{})
	bob.Execute(ctx, "join lobby bob")
	bobOut.waitLine(t, "Joined lobby as bob")
	bob.Execute(ctx, "history lobby")
	for _, want := range []string{"alice@lobby - hello", "alice@lobby - how are you"} {
		l := bobOut.next(t)
		if l.Text != want || l.Kind != command.LineMessage || !l.Late || l.Mark != "" || l.Time.IsZero() {
			t.Fatalf("bob got %+v, want the plain line %q", l, want)
		}
	}
	if l := bobOut.next(t); l.Text != "History of #lobby: 2 messages" || l.Kind != command.LineNotice {
		t.Fatalf("bob got %+v, want the history's end", l)
	}
	// Drain covers history requests: a script's end waits for them.
	bob.Execute(ctx, "history lobby 1")
	if err := bob.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if l := bobOut.next(t); l.Text != "History of #lobby: 0 messages" {
		t.Fatalf("bob got %q, want nothing new", l.Text)
	}
	bobOut.none(t)

	// Interactive: joining asks for the history.
	carol, carolOut := newClient(t, addr, command.Config{Interactive: true})
	carol.Execute(ctx, "join lobby carol")
	carolOut.waitLine(t, "Joined lobby as carol")
	for _, want := range []string{"hello", "how are you"} {
		l := carolOut.next(t)
		m := lateLine.FindStringSubmatch(l.Text)
		if m == nil || m[1] != want || !l.Late || l.Mark == "" || l.Text != l.Mark+"alice@lobby - "+want || l.Body != want {
			t.Fatalf("carol got %+v, want a late line for %q", l, want)
		}
	}
	carolOut.waitLine(t, "History of #lobby: 2 messages")
	// A new username in the channel asks for nothing.
	carol.Execute(ctx, "join lobby carol2")
	carolOut.waitLine(t, "Joined lobby as carol2")
	carol.Execute(ctx, "history lobby 5")
	carolOut.waitLine(t, "History of #lobby: 0 messages")
	carolOut.none(t)
}

func TestClientHistoryErrors(t *testing.T) {
	addr := (&clienttest.Server{}).StartTCP(t)
	ctx := testCtx(t)
	c, out := newClient(t, addr, command.Config{})
	c.Execute(ctx, "join lobby alice")
	out.waitLine(t, "Joined lobby as alice")
	tests := []struct{ in, want string }{
		{"history nowhere", "ERROR: not in channel nowhere: join it first (join nowhere <username>)"},
		{"history Lobby", "ERROR: invalid channel name"},
		{"history", "ERROR: usage: history <channel> [N]"},
		{"history lobby 5 6", "ERROR: usage: history <channel> [N]"},
		{"history lobby 0", `ERROR: history: N must be a number from 1 to 200, got "0"`},
		{"history lobby 201", `ERROR: history: N must be a number from 1 to 200, got "201"`},
		{"history lobby many", `ERROR: history: N must be a number from 1 to 200, got "many"`},
	}
	for _, tt := range tests {
		c.Execute(ctx, tt.in)
		if l := out.next(t); l.Kind != command.LineError || l.Text[:min(len(l.Text), len(tt.want))] != tt.want {
			t.Errorf("%q printed %q, want a line starting %q", tt.in, l.Text, tt.want)
		}
	}
	out.none(t)
}
