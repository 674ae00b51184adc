//go:build !js

package command_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"darkchat/client/command"
	"darkchat/identity"
	"darkchat/tstest/clienttest"
)

// memIgnore is an IgnoreStore in memory, shared by the interpreters of a
// test as a file is by runs of the CLI.
type memIgnore struct {
	mu   sync.Mutex
	data []byte
}

func (m *memIgnore) LoadIgnored() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.data, nil
}

func (m *memIgnore) SaveIgnored(b []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.data = append([]byte(nil), b...)
	return nil
}

func (m *memIgnore) text() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return string(m.data)
}

// Alice ignores bob by the name he used in her channel: his channel
// messages and DMs no longer show (his DM reports not delivered, as no
// receipt comes), carol's do; the list is saved, and a new run of alice's
// client has it; unignore shows bob again.
func TestIgnoreHidesMessagesAndDMs(t *testing.T) {
	srv := &clienttest.Server{}
	addr := srv.StartTCP(t)
	ctx := testCtx(t)
	store := &memIgnore{}
	aliceKey, bobKey, carolKey := newKey(t), newKey(t), newKey(t)
	alice, aliceOut := newClient(t, addr, command.Config{Key: aliceKey, Ignore: store})
	bob, bobOut := newClient(t, addr, command.Config{Key: bobKey, Name: "bob", DMTimeout: 300 * time.Millisecond})
	carol, _ := newClient(t, addr, command.Config{Key: carolKey, Name: "carol"})
	a, b := aliceKey.Public().String(), bobKey.Public().String()

	alice.Execute(ctx, "ignore")
	aliceOut.waitLine(t, "No Ignored Users")
	for _, c := range []struct {
		i    *command.Interpreter
		name string
	}{{alice, "alice"}, {bob, "bob"}, {carol, "carol"}} {
		c.i.Execute(ctx, "join lobby "+c.name)
	}
	aliceOut.waitLine(t, "Joined lobby as alice")
	bob.Execute(ctx, "lobby hi, I am bob")
	aliceOut.waitLine(t, "bob@lobby - hi, I am bob")

	alice.Execute(ctx, "/ignore bob")
	aliceOut.waitLine(t, "Ignoring "+b+": their channel messages and direct messages are hidden")
	if store.text() != b+"\n" {
		t.Fatalf("stored %q", store.text())
	}
	alice.Execute(ctx, "ignore "+strings.ToUpper(b))
	aliceOut.waitLine(t, b+" is already ignored")
	alice.Execute(ctx, "ignore "+a)
	aliceOut.waitLine(t, "ERROR: you cannot ignore yourself")
	alice.Execute(ctx, "unignore "+carolKey.Public().String())
	aliceOut.waitLine(t, "ERROR: "+carolKey.Public().String()+" is not ignored")
	alice.Execute(ctx, "ignore nobody")
	aliceOut.waitLine(t, "ERROR: nobody is not a public key")

	bob.Execute(ctx, "lobby you cannot see this")
	bob.Execute(ctx, "private "+a+" nor this")
	carol.Execute(ctx, "lobby but this")
	carol.Execute(ctx, "private "+a+" and this")
	// Carol wrote after bob; once her lines are shown, his would have been.
	if l := aliceOut.waitLine(t, "carol@"); l.Text != "carol@lobby - but this" {
		t.Fatalf("alice got %q", l.Text)
	}
	if l := aliceOut.waitLine(t, "carol@"); !strings.HasSuffix(l.Text, " - and this") {
		t.Fatalf("alice got %q", l.Text)
	}
	for {
		l := bobOut.waitLine(t, "DM to "+a)
		if strings.Contains(l.Text, "not delivered") {
			break
		}
		if strings.Contains(l.Text, "delivered") {
			t.Fatalf("bob was told %q", l.Text)
		}
	}
	aliceOut.none(t)

	// A new run reads the list back.
	alice.Close()
	again, againOut := newClient(t, addr, command.Config{Key: aliceKey, Ignore: store})
	again.Execute(ctx, "ignore")
	againOut.waitLine(t, "IGNORED USERS (1):")
	if l := againOut.next(t); l.Text != "1. "+b {
		t.Fatalf("listed %q", l.Text)
	}
	again.Execute(ctx, "join lobby alice")
	againOut.waitLine(t, "Joined lobby as alice")
	bob.Execute(ctx, "lobby still hidden")
	carol.Execute(ctx, "lobby still shown")
	if l := againOut.waitLine(t, "carol@"); l.Text != "carol@lobby - still shown" {
		t.Fatalf("alice got %q", l.Text)
	}
	again.Execute(ctx, "unignore "+b)
	againOut.waitLine(t, "No longer ignoring "+b)
	if store.text() != "" {
		t.Fatalf("stored %q after unignore", store.text())
	}
	bob.Execute(ctx, "lobby back again")
	againOut.waitLine(t, "bob@lobby - back again")
}

func TestParseIgnored(t *testing.T) {
	k1, k2 := newKey(t).Public(), newKey(t).Public()
	text := "# ignored\n\n" + strings.ToUpper(k1.String()) + "\n" + k2.String() + "\n" + k1.String() + "\n"
	keys, err := command.ParseIgnored([]byte(text))
	if err != nil || len(keys) != 2 || keys[0] != k1 || keys[1] != k2 {
		t.Fatalf("parsed %v, %v", keys, err)
	}
	if string(command.FormatIgnored(keys)) != k1.String()+"\n"+k2.String()+"\n" {
		t.Fatalf("formatted %q", command.FormatIgnored(keys))
	}
	if _, err := command.ParseIgnored([]byte("not a key\n")); err == nil {
		t.Fatal("a bad line parsed")
	}
	var many strings.Builder
	for range command.MaxIgnored + 1 {
		k, _ := identity.GenerateKey()
		many.WriteString(k.Public().String() + "\n")
	}
	if _, err := command.ParseIgnored([]byte(many.String())); err == nil {
		t.Fatalf("a list of %d keys parsed", command.MaxIgnored+1)
	}
}
