package command_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"darkchat/client"
	"darkchat/client/command"
	"darkchat/tstest/clienttest"
)

// The node goes away and another takes its address: the client connects
// again by itself, logs in, and is back in its channels under the same
// names, where it hears what is said.
func TestKeepConnectedRejoins(t *testing.T) {
	first := &clienttest.Server{}
	var addr atomic.Value
	addr.Store(first.StartTCP(t))
	out := newOutput()
	c, err := command.New(command.Config{Key: newKey(t), Output: out.print,
		Dial: func(ctx context.Context) (client.Transport, error) { return client.DialTCP(ctx, addr.Load().(string)) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(testCtx(t))
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait(); c.Close() })
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	states := make(chan string, 100)
	wg.Go(func() {
		c.KeepConnected(ctx, command.KeepConfig{OnState: func(s string, _ int, _ time.Time) { states <- s }})
	})
	c.Execute(ctx, "join lobby alice")
	out.waitLine(t, "Joined lobby as alice")
	c.Execute(ctx, "join dev al")
	out.waitLine(t, "Joined dev as al")
	waitState(t, states, command.StateReady)

	// The node is gone, and no node answers for a while: what the user
	// types meanwhile is not done, and the user is told so.
	addr.Store("127.0.0.1:1")
	first.Close()
	out.waitLine(t, "ERROR: disconnected")
	waitState(t, states, command.StateReconnecting)
	c.Execute(ctx, "lobby anyone there?")
	out.waitLine(t, "ERROR: not connected: reconnecting by itself, so this was not done; try again once Connected")

	second := &clienttest.Server{}
	secondAddr := second.StartTCP(t)
	addr.Store(secondAddr)
	out.waitLine(t, "Connected to Network as ")
	out.waitLine(t, "Joined dev as al")
	out.waitLine(t, "Joined lobby as alice")
	waitState(t, states, command.StateReady)

	bob, bobOut := newClient(t, secondAddr, command.Config{})
	bob.Execute(ctx, "join lobby bob")
	bobOut.waitLine(t, "Joined lobby as bob")
	bob.Execute(ctx, "lobby welcome back")
	out.waitLine(t, "bob@lobby - welcome back")
}

func waitState(t *testing.T, states <-chan string, want string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case s := <-states:
			if s == want {
				return
			}
		case <-timeout:
			t.Fatalf("no state %s within 10 s", want)
		}
	}
}

// The node's count of the sessions of the user's key shows as a notice:
// another client uses the identity, then it has gone.
func TestSessionsNotice(t *testing.T) {
	srv := &clienttest.Server{}
	_, out := newClient(t, srv.StartTCP(t), command.Config{})
	srv.Inject([]byte(`{"type":"sessions","count":2}`))
	out.waitLine(t, "Your identity is logged in 2 times on this node: another client uses it too")
	srv.Inject([]byte(`{"type":"sessions","count":1}`))
	out.waitLine(t, "Your identity's other clients on this node have gone")
}
