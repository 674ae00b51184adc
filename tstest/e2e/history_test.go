package e2e

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"darkchat/tstest"
)

// A user whose client was closed while others chatted starts a new
// client, joins, runs history, and sees the messages sent while away, in
// order, exactly once, in the same line format as live messages
// (PROTOCOL.md §2.8): the other members' clients answer from what they
// keep; the nodes keep nothing.
func TestHistoryAfterBeingAway(t *testing.T) {
	a := bins.StartNode(t, "A", "cli")
	b := bins.StartNode(t, "B", "cli", "--peer", "127.0.0.1:"+strconv.Itoa(a.PeerPort))
	b.WaitPeer(a.ID)
	alice := bins.TCPClient(t, "alice", a)
	alice.Send("join lobby alice")
	alice.WaitPrefix("Joined lobby")
	bob := bins.TCPClient(t, "bob", b)
	bob.Send("join lobby bob")
	bob.WaitPrefix("Joined lobby")
	warmUp(t, "lobby", alice, "alice", bob, "bob")

	carol := bins.TCPClient(t, "carol", a)
	carol.Send("join lobby carol")
	carol.WaitPrefix("Joined lobby")
	carol.Terminate()

	// While carol is away: each line reaches the other side before the
	// next is said, so their order is the channel's. The short run says
	// ten lines at once; the full one (DARKCHAT_E2E_FULL=1) keeps carol
	// away five minutes while a line is said every 2 s (150 lines: within
	// the 200 one history request returns).
	away, every := time.Duration(0), time.Duration(0)
	if os.Getenv("DARKCHAT_E2E_FULL") == "1" {
		away, every = 5*time.Minute, 2*time.Second
	}
	left := time.Now()
	var said []string
	for i := 0; i < 5 || time.Since(left) < away; i++ {
		for _, turn := range []struct {
			from, to *client
			name     string
		}{{alice, bob, "alice"}, {bob, alice, "bob"}} {
			body := fmt.Sprintf("away %s %d", turn.name, i)
			turn.from.Send("lobby " + body)
			line := turn.name + "@lobby - " + body
			turn.to.WaitFor(0, 30*time.Second, strconv.Quote(line), func(l string) bool { return l == line })
			said = append(said, line)
			if every > 0 {
				time.Sleep(every) // people take turns; the pace is the test's subject, not a wait
			}
		}
	}
	t.Logf("carol was away %v while %d lines were said", time.Since(left).Round(time.Second), len(said))

	back := bins.TCPClient(t, "carol-again", a, "--key", carol.Key)
	back.Send("join lobby carol")
	back.WaitPrefix("Joined lobby")
	back.Send("history lobby 200")
	asked := time.Now()
	tstest.WaitFor(t, 10*time.Second, "carol to see what was said while she was away", func() (bool, string) {
		got := chatLines(back.Lines(), "lobby")
		return len(got) >= len(said), fmt.Sprintf("%d of %d lines: %q", len(got), len(said), got)
	})
	got := chatLines(back.Lines(), "lobby")
	if !slices.Equal(got, said) {
		t.Fatalf("carol's history:\n got %q\nwant %q", got, said)
	}
	t.Logf("carol has all %d lines, in order, once, %v after asking", len(said), time.Since(asked).Round(100*time.Millisecond))
}
