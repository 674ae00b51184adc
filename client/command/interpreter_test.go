//go:build !js

package command_test

import (
	"context"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"darkchat/client"
	"darkchat/client/command"
	"darkchat/identity"
	"darkchat/tstest/clienttest"
)

func TestClientConversation(t *testing.T) {
	addr := (&clienttest.Server{}).StartTCP(t)
	ctx := testCtx(t)
	aliceKey := newKey(t)
	alice, aliceOut := newClient(t, addr, command.Config{Key: aliceKey})
	bob, bobOut := newClient(t, addr, command.Config{})

	alice.Execute(ctx, "join lobby alice")
	aliceOut.waitLine(t, "Joined lobby as alice")
	bob.Execute(ctx, "join lobby bob")
	bobOut.waitLine(t, "Joined lobby as bob")

	alice.Execute(ctx, "lobby hello   bob")
	l := bobOut.waitLine(t, "alice@lobby - ")
	want := command.Line{Kind: command.LineMessage, Text: "alice@lobby - hello   bob", Author: aliceKey.Public(), Channel: "lobby", User: "alice", Body: "hello   bob", Time: l.Time}
	if l != want || time.Since(l.Time).Abs() > time.Minute {
		t.Fatalf("bob got %+v, want %+v", l, want)
	}

	// A body cannot forge a line or reach the terminal raw.
	alice.Execute(ctx, "lobby x\x1b[2J\u202e")
	if l := bobOut.waitLine(t, "alice@lobby - "); l.Text != `alice@lobby - x\x1b[2J\u202e` {
		t.Fatalf("bob got %q", l.Text)
	}
	if err := alice.Drain(ctx); err != nil {
		t.Fatal(err)
	}

	bob.Execute(ctx, "leave lobby")
	bobOut.waitLine(t, "Left lobby")
	bob.Execute(ctx, "lobby still there?")
	bobOut.waitLine(t, "ERROR: not in channel lobby: join it first")

	alice.Execute(ctx, "connect")
	aliceOut.waitLine(t, "Already connected to node "+clienttest.DefaultNodeID)
	if alice.Execute(ctx, "exit") != true {
		t.Fatal("exit did not quit")
	}
	select {
	case <-alice.Broken():
		t.Fatal("a healthy run is marked broken")
	default:
	}
}

func TestClientCommandErrors(t *testing.T) {
	addr := (&clienttest.Server{}).StartTCP(t)
	ctx := testCtx(t)
	c, out := newClient(t, addr, command.Config{})
	key := newKey(t).Public().String()
	tests := []struct{ in, want string }{
		{"nochannel hello", "ERROR: not in channel nochannel: join it first"},
		{"Bogus words here", `ERROR: unknown command "Bogus"`},
		{"lobby", `ERROR: "lobby" is not a command, and a message needs text`},
		{"join lobby", "ERROR: join lobby: which username?"},
		{"/join", "ERROR: usage: join <channel> [username]"},
		{"/frob bob", "ERROR: unknown command /frob: type help for the commands"},
		{"/kick bob", "ERROR: usage: kick <channel> <user> [reason…]"},
		{"topic dev", "ERROR: dev has no owner"},
		{"/msg alice hi", "ERROR: alice is not a public key"},
		{"join Lobby alice", "ERROR: join: invalid channel name"},
		{"join lobby -alice", "ERROR: join: invalid username"},
		{"leave lobby", "ERROR: leave: not in channel lobby"},
		{"private " + key + " " + strings.Repeat("x", identity.MaxDMBodyLen+1), "ERROR: message of 4097 bytes is over the limit of 4096 bytes for a direct message"},
		{"private " + key + " \xff", "ERROR: message is not valid UTF-8"},
		{"private nokey hi", "ERROR: nokey is not a public key"},
		{"private " + strings.Repeat("g", 64) + " hi", "ERROR: malformed public key"},
		{"whois " + key, "ERROR: unknown user " + key},
		{"whois " + key[:63], "ERROR: malformed public key"},
		{"nick bad name", "ERROR: usage: nick <username>"},
		{"nick -x", "ERROR: invalid username"},
		{"verify " + strings.Repeat("ab", 64), "ERROR: login failed"},
		{"sign nonsense", "ERROR: malformed"},
	}
	for _, tt := range tests {
		c.Execute(ctx, tt.in)
		l := out.waitLine(t, "ERROR: ")
		if l.Kind != command.LineError || !strings.HasPrefix(l.Text, tt.want) {
			t.Errorf("%q printed %q, want a line starting %q", tt.in, l.Text, tt.want)
		}
	}
	out.none(t)
}

func TestClientHelpAndNick(t *testing.T) {
	addr := (&clienttest.Server{}).StartTCP(t)
	ctx := testCtx(t)
	c, out := newClient(t, addr, command.Config{Name: "zed"})
	if c.DMName() != "zed" {
		t.Fatalf("DMName = %q, want the --name", c.DMName())
	}
	c.Execute(ctx, "nick alice")
	out.waitLine(t, "Your direct messages will carry the name alice")
	if c.DMName() != "alice" {
		t.Fatalf("DMName = %q after nick", c.DMName())
	}
	// help lists the manual login's steps only with --manual-auth.
	helpLines := func(c *command.Interpreter, out output) map[string]bool {
		c.Execute(ctx, "help")
		out.waitLine(t, "Commands:")
		listed := make(map[string]bool)
		for {
			l := out.waitLine(t, "")
			if strings.HasPrefix(l.Text, "Every command may start with /") {
				return listed
			}
			listed[strings.Fields(l.Text)[0]] = true
		}
	}
	listed := helpLines(c, out)
	for _, cmd := range []string{"join", "leave", "history", "seen", "private", "whois", "nick", "help", "exit", "<channel>"} {
		if !listed[cmd] {
			t.Errorf("help does not list %s", cmd)
		}
	}
	for _, cmd := range []string{"connect", "sign", "verify"} {
		if listed[cmd] {
			t.Errorf("help lists %s without --manual-auth", cmd)
		}
	}
	manual, manualOut := newClient(t, addr, command.Config{ManualAuth: true})
	if listed := helpLines(manual, manualOut); !listed["connect"] || !listed["sign"] || !listed["verify"] {
		t.Errorf("with --manual-auth help lists %v, want connect, sign and verify among them", listed)
	}

	// Without a name, DMs carry the most recent join's username.
	c2, _ := newClient(t, addr, command.Config{})
	if c2.DMName() != "anonymous" {
		t.Fatalf("DMName = %q, want anonymous", c2.DMName())
	}
	c2.Execute(ctx, "join lobby bob")
	if c2.DMName() != "bob" {
		t.Fatalf("DMName = %q after join", c2.DMName())
	}
}

var verifyLine = regexp.MustCompile(`^VERIFY : "(dcl1\.[^"]+)"$`)

func TestClientManualFlow(t *testing.T) {
	addr := (&clienttest.Server{}).StartTCP(t)
	ctx := testCtx(t)
	key := newKey(t)
	c, out := newClient(t, addr, command.Config{Key: key, ManualAuth: true})
	out.waitLine(t, "Type connect")

	c.Execute(ctx, "join lobby alice")
	out.waitLine(t, "ERROR: not connected: type connect, then verify <signature>")
	c.Execute(ctx, "verify "+strings.Repeat("ab", 64))
	out.waitLine(t, "ERROR: not connected: type connect first")

	c.Execute(ctx, "connect")
	m := verifyLine.FindStringSubmatch(out.waitLine(t, "VERIFY : ").Text)
	if m == nil {
		t.Fatal("VERIFY line malformed")
	}
	challenge := m[1]
	c.Execute(ctx, "join lobby alice")
	out.waitLine(t, "ERROR: not logged in: verify <signature> first")

	// sign accepts the challenge with or without the quotes around it.
	c.Execute(ctx, `sign "`+challenge+`"`)
	sig := out.waitLine(t, "").Text
	if want := hex.EncodeToString(identity.SignLogin(key, challenge)); sig != want {
		t.Fatalf("sign printed %q, want %q", sig, want)
	}
	c.Execute(ctx, "connect") // shows the same challenge again
	if again := out.waitLine(t, "VERIFY : ").Text; again != `VERIFY : "`+challenge+`"` {
		t.Fatalf("second connect printed %q", again)
	}
	c.Execute(ctx, "verify "+sig)
	out.waitLine(t, "Connected to Network as "+key.Public().String()+" via node "+clienttest.DefaultNodeID)
	c.Execute(ctx, "join lobby alice")
	out.waitLine(t, "Joined lobby as alice")
}

func TestClientManualWrongSignatureMarksRunFailed(t *testing.T) {
	addr := (&clienttest.Server{}).StartTCP(t)
	ctx := testCtx(t)
	c, out := newClient(t, addr, command.Config{ManualAuth: true})
	c.Execute(ctx, "connect")
	challenge := verifyLine.FindStringSubmatch(out.waitLine(t, "VERIFY : ").Text)[1]
	other := newKey(t)
	c.Execute(ctx, "verify "+hex.EncodeToString(identity.SignLogin(other, challenge)))
	out.waitLine(t, "ERROR: login failed: bad signature")
	select {
	case <-c.Broken():
	default:
		t.Fatal("a failed login does not mark the run failed")
	}
}

func TestClientWrongNode(t *testing.T) {
	addr := (&clienttest.Server{}).StartTCP(t)
	out := newOutput()
	c, err := command.New(command.Config{
		Key:    newKey(t),
		Node:   "12D3KooWsomeotherpeer",
		Output: out.print,
		Dial:   func(ctx context.Context) (client.Transport, error) { return client.DialTCP(ctx, addr) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Start(testCtx(t)); !errors.Is(err, client.ErrWrongNode) {
		t.Fatalf("Start = %v, want ErrWrongNode", err)
	}
	out.waitLine(t, "ERROR: disconnected: challenge names another node")
	out.none(t) // reported once
	<-c.Broken()
}

func TestClientConnectionLost(t *testing.T) {
	srv := &clienttest.Server{}
	addr := srv.StartTCP(t)
	c, out := newClient(t, addr, command.Config{})
	srv.Inject([]byte(`{"type":"error","code":"idle_timeout","message":"no traffic for 90s"}`))
	out.waitLine(t, "ERROR: no traffic for 90s")
	srv.Close()
	out.waitLine(t, "Disconnected by the node")
	<-c.Broken()
	c.Execute(testCtx(t), "lobby hi")
	out.waitLine(t, "ERROR: not connected: type connect")
}

func TestClientDialFails(t *testing.T) {
	out := newOutput()
	c, err := command.New(command.Config{
		Key:    newKey(t),
		Output: out.print,
		Dial:   func(ctx context.Context) (client.Transport, error) { return client.DialTCP(ctx, "127.0.0.1:1") },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(testCtx(t)); err == nil {
		t.Fatal("Start succeeded without a node")
	}
	out.waitLine(t, "Your PUBLIC KEY")
	out.waitLine(t, "ERROR: login failed: dial tcp gateway")
	<-c.Broken()
}

func TestNewClientValidates(t *testing.T) {
	dial := func(ctx context.Context) (client.Transport, error) { return nil, errors.New("unused") }
	for _, cfg := range []command.Config{
		{Dial: dial, Output: func(command.Line) {}},
		{Key: newKey(t), Output: func(command.Line) {}},
		{Key: newKey(t), Dial: dial},
		{Key: newKey(t), Dial: dial, Output: func(command.Line) {}, Name: "bad name"},
	} {
		if _, err := command.New(cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

// On a terminal every message line starts with its author's local time,
// and the user's own messages and DMs are echoed (Own) as message lines.
func TestClientTimestampsAndEcho(t *testing.T) {
	addr := (&clienttest.Server{}).StartTCP(t)
	ctx := testCtx(t)
	aliceKey := newKey(t)
	alice, aliceOut := newClient(t, addr, command.Config{Key: aliceKey, Interactive: true, Timestamps: true, Echo: true})
	bob, bobOut := newClient(t, addr, command.Config{Interactive: true, Timestamps: true})
	alice.Execute(ctx, "join lobby alice")
	aliceOut.waitLine(t, "Joined lobby as alice")
	bob.Execute(ctx, "join lobby bob")
	bobOut.waitLine(t, "Joined lobby as bob")

	alice.Execute(ctx, "lobby hi")
	stamp := regexp.MustCompile(`^\[\d\d:\d\d\] $`)
	own := aliceOut.waitLine(t, "[")
	if !own.Own || own.Author != aliceKey.Public() || !stamp.MatchString(own.Stamp) || own.Text != own.Stamp+"alice@lobby - hi" {
		t.Fatalf("alice's echo %+v", own)
	}
	got := bobOut.waitLine(t, "[")
	if got.Own || !stamp.MatchString(got.Stamp) || got.Text != got.Stamp+"alice@lobby - hi" || got.Stamp != "["+got.Time.Local().Format("15:04")+"] " {
		t.Fatalf("bob got %+v", got)
	}
	alice.Execute(ctx, "private "+bob.Session().PublicKey().String()+" psst")
	if l := aliceOut.waitLine(t, "["); !l.Own || l.Text != l.Stamp+"alice@private("+bob.Session().PublicKey().String()+") - psst" {
		t.Fatalf("alice's DM echo %+v", l)
	}
}
