package command_test

import (
	"testing"

	"darkchat/client/command"
	"darkchat/tstest/clienttest"
)

// /me sends an action to the current channel: a terminal shows it as
// "* alice@dev waves", a script the body as sent; typed text without a
// command goes to the current channel, or, after /query, privately to
// one user, until /query alone ends it; /part alone leaves the current
// channel.
func TestClientActionsAndQuery(t *testing.T) {
	addr := (&clienttest.Server{}).StartTCP(t)
	ctx := testCtx(t)
	aliceKey, bobKey := newKey(t), newKey(t)
	alice, aliceOut := newClient(t, addr, command.Config{Key: aliceKey, Name: "alice", Interactive: true, Echo: true})
	bob, bobOut := newClient(t, addr, command.Config{Key: bobKey, Name: "bob", Interactive: true})
	script, scriptOut := newClient(t, addr, command.Config{Key: newKey(t)})
	a, b := aliceKey.Public(), bobKey.Public()

	alice.Execute(ctx, "/join #dev")
	aliceOut.waitLine(t, "Joined dev as alice")
	bob.Execute(ctx, "/join #dev")
	bobOut.waitLine(t, "Joined dev as bob")
	script.Execute(ctx, "join dev carol")
	scriptOut.waitLine(t, "Joined dev as carol")

	alice.Execute(ctx, "/me waves")
	if l := aliceOut.waitLine(t, "* alice@dev"); l.Text != "* alice@dev waves" || !l.Own || !l.Action || l.Body != "waves" {
		t.Fatalf("alice's echo: %+v", l)
	}
	if l := bobOut.waitLine(t, "* alice"); l.Text != "* alice@dev waves" || !l.Action || l.Author != a || l.Kind != command.LineMessage {
		t.Fatalf("bob got %+v", l)
	}
	if l := scriptOut.waitLine(t, "alice@dev"); l.Text != "alice@dev - /me waves" || l.Action {
		t.Fatalf("the script got %+v", l)
	}

	// IRC's /msg to a channel.
	bob.Execute(ctx, "/msg #dev greetings by msg")
	if l := aliceOut.waitLine(t, "bob@dev"); l.Text != "bob@dev - greetings by msg" {
		t.Fatalf("alice got %+v", l)
	}

	// Text without a command goes to the current channel.
	alice.Execute(ctx, "hello everyone")
	if l := bobOut.waitLine(t, "alice@dev"); l.Text != "alice@dev - hello everyone" {
		t.Fatalf("bob got %+v", l)
	}
	// In a script it is still an error.
	script.Execute(ctx, "hello everyone")
	scriptOut.waitLine(t, "ERROR: ")

	bob.Execute(ctx, "dev hi")
	aliceOut.waitLine(t, "bob@dev - hi")
	alice.Execute(ctx, "/query bob")
	aliceOut.waitLine(t, "Private conversation with "+b.String())
	alice.Execute(ctx, "just between us")
	if l := bobOut.waitLine(t, "alice@private("); l.Text != "alice@private("+a.String()+") - just between us" {
		t.Fatalf("bob got %+v", l)
	}
	if l := aliceOut.waitLine(t, "DM to "); l.Text != "DM to "+b.String()+": delivered" || l.DM == "" {
		t.Fatalf("alice got %+v", l)
	}
	// A channel named first still goes to the channel.
	alice.Execute(ctx, "dev back in the channel")
	if l := bobOut.waitLine(t, "alice@"); l.Text != "alice@dev - back in the channel" {
		t.Fatalf("bob got %+v", l)
	}
	alice.Execute(ctx, "/query")
	aliceOut.waitLine(t, "Private conversation with "+b.String()+" ended")
	alice.Execute(ctx, "to all again")
	if l := bobOut.waitLine(t, "alice@"); l.Text != "alice@dev - to all again" {
		t.Fatalf("bob got %+v", l)
	}

	// /part alone leaves the current channel; typed text then needs a
	// channel again, and so does another /part.
	alice.Execute(ctx, "/part #dev see you")
	if l := aliceOut.waitLine(t, "(darkchat"); l.Text != `(darkchat sends no part or quit message: "see you" stays here)` {
		t.Fatalf("a part reason: %q", l.Text)
	}
	aliceOut.waitLine(t, "Left dev")
	alice.Execute(ctx, "/join #dev")
	aliceOut.waitLine(t, "Joined dev as alice")
	alice.Execute(ctx, "/part")
	aliceOut.waitLine(t, "Left dev")
	alice.Execute(ctx, "still there?")
	if l := aliceOut.waitLine(t, "ERROR: "); l.Text != "ERROR: not in channel still: join it first (join still <username>)" {
		t.Fatalf("text after /part: %q", l.Text)
	}
	alice.Execute(ctx, "/part")
	if l := aliceOut.waitLine(t, "ERROR: "); l.Text != "ERROR: leave: no current channel: type leave <channel>" {
		t.Fatalf("a second /part: %q", l.Text)
	}
}
