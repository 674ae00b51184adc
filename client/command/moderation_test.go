//go:build !js

package command_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"darkchat/client"
	"darkchat/client/command"
	"darkchat/identity"
	"darkchat/tstest/nodetest"
)

// meshTimeout bounds the waits on real nodes: a record or a message
// crosses two hops in milliseconds, but the first subscriptions between
// nodes take up to a second or so.
const meshTimeout = 30 * time.Second

// user is an interpreter logged in to a real node, with its output.
type user struct {
	t    *testing.T
	name string
	key  identity.PrivateKey
	c    *command.Interpreter
	out  *lineLog
}

// lineLog keeps every line an interpreter printed, for waits that look
// back over what came (several users print at once).
type lineLog struct {
	mu    sync.Mutex
	lines []command.Line
	grew  chan struct{}
}

func (l *lineLog) print(line command.Line) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	close(l.grew)
	l.grew = make(chan struct{})
}

// mark returns the count of lines so far, for waits on what comes next.
func (u *user) mark() int {
	u.out.mu.Lock()
	defer u.out.mu.Unlock()
	return len(u.out.lines)
}

// wait returns the first line from index from on that is want (or, with
// a trailing "…", starts with it), failing on an ERROR line unless want
// is one.
func (u *user) wait(from int, want string) string {
	u.t.Helper()
	text, _ := u.waitAt(from, want)
	return text
}

// waitAt is wait that also returns the index after the line.
func (u *user) waitAt(from int, want string) (string, int) {
	u.t.Helper()
	prefix, isPrefix := strings.CutSuffix(want, "…")
	match := func(s string) bool {
		if isPrefix {
			return strings.HasPrefix(s, prefix)
		}
		return s == want
	}
	deadline := time.After(meshTimeout)
	for i := from; ; {
		u.out.mu.Lock()
		lines, grew := u.out.lines, u.out.grew
		u.out.mu.Unlock()
		for ; i < len(lines); i++ {
			text := lines[i].Text
			if match(text) {
				return text, i + 1
			}
			if lines[i].Kind == command.LineError && !strings.HasPrefix(want, "ERROR") {
				u.t.Fatalf("%s: waiting for %q, got %q", u.name, want, text)
			}
		}
		select {
		case <-grew:
		case <-deadline:
			u.t.Fatalf("%s: no line %q within %v; got %q", u.name, want, meshTimeout, u.texts(from))
		}
	}
}

// has reports whether a line from index from on contains s.
func (u *user) has(from int, s string) bool {
	for _, l := range u.texts(from) {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

func (u *user) texts(from int) []string {
	u.out.mu.Lock()
	defer u.out.mu.Unlock()
	var out []string
	for _, l := range u.out.lines[from:] {
		out = append(out, l.Text)
	}
	return out
}

// do runs a command and returns the mark before it.
func (u *user) do(line string) int {
	u.t.Helper()
	m := u.mark()
	ctx, cancel := context.WithTimeout(context.Background(), meshTimeout)
	defer cancel()
	u.c.Execute(ctx, line)
	return m
}

func (u *user) fp() string { return command.Fingerprint(u.c.PublicKey()) }

// as is how others name u in notices.
func (u *user) as() string { return u.name + " (" + u.fp() + ")" }

// startUser logs a new user in to node n with dial (nil: n's TCP address).
func startUser(t *testing.T, n *nodetest.Node, name string, dial func(ctx context.Context) (client.Transport, error)) *user {
	t.Helper()
	out := &lineLog{grew: make(chan struct{})}
	if dial == nil {
		dial = func(ctx context.Context) (client.Transport, error) { return client.DialTCP(ctx, n.TCPAddr) }
	}
	key := newKey(t)
	c, err := command.New(command.Config{Key: key, Name: name, Output: out.print, Dial: dial})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	u := &user{t: t, name: name, key: key, c: c, out: out}
	if err := c.Start(testCtx(t)); err != nil {
		t.Fatalf("%s: start: %v", name, err)
	}
	u.wait(0, "Connected to Network as …")
	return u
}

// hears makes sure to hears from's messages in channel: from repeats a
// probe until one arrives (the first messages between new subscribers
// may reach no one).
func hears(t *testing.T, channel string, from, to *user) {
	t.Helper()
	m := to.mark()
	deadline := time.Now().Add(meshTimeout)
	for n := 0; ; n++ {
		from.do(fmt.Sprintf("%s probe %d", channel, n))
		wait := time.Now().Add(time.Second)
		for time.Now().Before(wait) {
			if to.has(m, from.name+"@"+channel+" - probe ") {
				return
			}
			time.Sleep(20 * time.Millisecond) // polling the output; the wait ends on the line
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never heard %s in %s", to.name, from.name, channel)
		}
	}
}

// alice creates an owned channel on node A; bob (on C) and carol (on B)
// join it. The owner's and the operator's changes reach every member as
// notices; a ban takes bob out, keeps him out and silences him until
// alice lifts it; a kick is once; a non-operator is refused; moderation
// silences everyone but the owner and operators.
func TestOwnedChannelCommands(t *testing.T) {
	a, b, c := nodetest.Start(t), nodetest.Start(t), nodetest.Start(t)
	nodetest.Link(t, a, b)
	nodetest.Link(t, b, c)
	alice := startUser(t, a, "alice", nil)
	carol := startUser(t, b, "carol", nil)
	bob := startUser(t, c, "bob", nil)
	// dave, on bob's own node, must not hear bob after the ban either;
	// his notices also tell when that node has a new record.
	dave := startUser(t, c, "dave", nil)

	m := alice.do("/create #dev")
	dev := "dev." + identity.Fingerprint(alice.c.PublicKey())
	alice.wait(m, "Joined "+dev+" as alice")
	alice.wait(m, "Created "+dev+": share this name; you own it")
	// Created again: it exists, alice is told so.
	m = alice.do("create dev")
	alice.wait(m, dev+" exists already…")
	// A user with no nick yet names itself in create.
	erin := startUser(t, b, "", nil)
	m = erin.do("create ops")
	erin.wait(m, "ERROR: create ops: which username? type create ops <username>, or set one with nick <username> first")
	m = erin.do("create ops erin")
	erin.wait(m, "Joined ops."+identity.Fingerprint(erin.c.PublicKey())+" as erin")

	m = carol.do("join #" + dev)
	carol.wait(m, "Joined "+dev+" as carol")
	m = bob.do("join " + dev + " bob")
	bob.wait(m, "Joined "+dev+" as bob")
	m = dave.do("join " + dev)
	dave.wait(m, "Joined "+dev+" as dave")
	nodetest.WaitChannel(t, dev, a, b, c)
	hears(t, dev, alice, bob)
	hears(t, dev, bob, alice)
	hears(t, dev, carol, alice)
	hears(t, dev, alice, carol)
	hears(t, dev, bob, carol)

	// The topic: everyone sees it, and a newcomer on joining.
	ms := []int{alice.mark(), bob.mark(), carol.mark()}
	alice.do("topic " + dev + " welcome to dev")
	for i, u := range []*user{alice, bob, carol} {
		u.wait(ms[i], "-- topic of "+dev+": welcome to dev")
	}
	m = bob.do("topic #" + dev)
	bob.wait(m, "-- topic of "+dev+": welcome to dev")
	m = bob.do("leave " + dev)
	bob.wait(m, "Left "+dev)
	m = bob.do("join " + dev + " bob")
	bob.wait(m, "-- topic of "+dev+": welcome to dev")
	hears(t, dev, bob, carol)

	// carol becomes an operator (named by her key) and bans bob (by his
	// name).
	ms = []int{alice.mark(), bob.mark(), carol.mark()}
	alice.do("/op " + dev + " " + carol.c.PublicKey().String())
	for i, u := range []*user{alice, bob, carol} {
		u.wait(ms[i], "-- "+carol.as()+" is now an operator of "+dev)
	}
	ms = []int{alice.mark(), bob.mark(), carol.mark(), dave.mark()}
	carol.do("ban " + dev + " bob")
	alice.wait(ms[0], "-- "+bob.as()+" was banned from "+dev+" by "+carol.as())
	carol.wait(ms[2], "-- "+bob.as()+" was banned from "+dev+" by "+carol.as())
	dave.wait(ms[3], "-- "+bob.as()+" was banned from "+dev+" by "+carol.as())
	bob.wait(ms[1], "You are banned from "+dev+" by "+carol.as())
	m = bob.do(dev + " am I heard?")
	bob.wait(m, "ERROR: not in channel "+dev+"…")
	m = bob.do("join " + dev + " bob")
	bob.wait(m, "ERROR: you are banned from "+dev)
	m = alice.mark()
	carol.do(dev + " bob is gone")
	alice.wait(m, "carol@"+dev+" - bob is gone")
	if alice.has(m, "bob@"+dev) || carol.has(ms[2], "bob@"+dev) || dave.has(ms[3], "bob@"+dev) {
		t.Fatal("a member heard bob after his ban")
	}
	m = alice.do("rules " + dev)
	alice.wait(m, "Rules of "+dev+": owner "+alice.as()+"; operators: "+carol.as()+"; 1 banned; open: everyone may post; topic: welcome to dev")

	// alice lifts the ban: bob joins and is heard again.
	ms = []int{alice.mark(), carol.mark(), dave.mark()}
	alice.do("unban " + dev + " " + bob.c.PublicKey().String())
	alice.wait(ms[0], "-- "+bob.as()+" was unbanned from "+dev+" by "+alice.as())
	carol.wait(ms[1], "-- "+bob.as()+" was unbanned from "+dev+" by "+alice.as())
	// Once bob's node has the record (dave, there, is told), bob may join.
	dave.wait(ms[2], "-- "+bob.as()+" was unbanned from "+dev+" by "+alice.as())
	m = bob.do("join " + dev + " bob")
	bob.wait(m, "Joined "+dev+" as bob")
	bob.wait(m, "-- topic of "+dev+": welcome to dev")
	hears(t, dev, bob, alice)

	// A kick with a reason: once; bob may come back.
	ms = []int{alice.mark(), bob.mark(), carol.mark()}
	carol.do("/kick #" + dev + " bob calm down please")
	alice.wait(ms[0], "-- "+bob.as()+" was kicked from "+dev+" by carol: calm down please")
	bob.wait(ms[1], "You were kicked from "+dev+" by "+carol.as()+": calm down please…")
	m = bob.do(dev + " still here?")
	bob.wait(m, "ERROR: not in channel "+dev+"…")
	m = bob.do("join " + dev + " bob")
	bob.wait(m, "Joined "+dev+" as bob")
	hears(t, dev, bob, carol)

	// bob is no operator: refused by his client, in the node's words.
	for _, cmd := range []string{"ban " + dev + " carol", "topic " + dev + " mine now", "moderate " + dev + " on", "kick " + dev + " carol"} {
		m = bob.do(cmd)
		bob.wait(m, "ERROR: you are neither the owner nor an operator of "+dev+": only they may change its rules or kick")
	}
	m = carol.do("op " + dev + " bob")
	carol.wait(m, "ERROR: only the owner of "+dev+" may change its operators")

	// Moderated: only alice and carol are heard.
	ms = []int{alice.mark(), bob.mark(), carol.mark()}
	alice.do("moderate " + dev + " on")
	for i, u := range []*user{alice, bob, carol} {
		u.wait(ms[i], "-- "+dev+" is now moderated by "+alice.as()+": only its owner and operators may post")
	}
	m = bob.do(dev + " may I?")
	bob.wait(m, "ERROR: "+dev+" is moderated: only its owner and operators may post; message not sent")
	m = bob.mark()
	carol.do(dev + " operators speak")
	bob.wait(m, "carol@"+dev+" - operators speak")
	ms = []int{alice.mark(), bob.mark()}
	alice.do("moderate " + dev + " off")
	bob.wait(ms[1], "-- "+dev+" is open again, by "+alice.as()+": everyone may post")
	alice.wait(ms[0], "-- "+dev+" is open again, by "+alice.as()+": everyone may post")
	m = alice.mark()
	bob.do(dev + " thank you")
	alice.wait(m, "bob@"+dev+" - thank you")

	// carol is an operator no more.
	ms = []int{alice.mark(), carol.mark()}
	alice.do("deop " + dev + " carol")
	carol.wait(ms[1], "-- "+carol.as()+" is no longer an operator of "+dev)
	m = carol.do("topic " + dev + " carol's now")
	carol.wait(m, "ERROR: you are neither the owner nor an operator of "+dev+"…")

	// A change made on an older record than the node's (another
	// operator's change came first) is refused with stale_rules, after
	// the node's newer record.
	s := alice.c.Session()
	cur, ok := s.Rules(dev)
	if !ok {
		t.Fatal("alice's session holds no record")
	}
	old := cur.Clone()
	old.Version--
	old.Topic = "too late"
	old.Timestamp = time.Now().UnixMilli()
	old.Sign(alice.key)
	m = alice.mark()
	var nodeErr *client.Error
	if err := s.SetRules(testCtx(t), &old); !errors.As(err, &nodeErr) || nodeErr.Code != "stale_rules" {
		t.Fatalf("SetRules of an older record: %v", err)
	}
	alice.wait(m, "ERROR: someone changed the rules of "+dev+" meanwhile: try again")
}

// A user kicked or banned from a channel is not put back in it when the
// client connects again; the other channels are, and after a kick the
// user may join again by hand, to be put back after the next break.
func TestReconnectSkipsKickedChannels(t *testing.T) {
	n := nodetest.Start(t)
	var mu sync.Mutex
	var conns []net.Conn
	dial := func(ctx context.Context) (client.Transport, error) {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", n.TCPAddr)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		conns = append(conns, conn)
		mu.Unlock()
		return client.NewLineTransport(conn), nil
	}
	alice := startUser(t, n, "alice", nil)
	bob := startUser(t, n, "bob", dial)
	// cut breaks bob's connection and returns the mark after the
	// disconnection's line.
	cut := func() int {
		t.Helper()
		m := bob.mark()
		mu.Lock()
		conns[len(conns)-1].Close()
		mu.Unlock()
		_, next := bob.waitAt(m, "ERROR: disconnected…")
		return next
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() { bob.c.KeepConnected(ctx, command.KeepConfig{}) })

	m := alice.do("create dev")
	dev := "dev." + identity.Fingerprint(alice.c.PublicKey())
	alice.wait(m, "Created "+dev+"…")
	m = bob.do("join " + dev + " bob")
	bob.wait(m, "Joined "+dev+" as bob")
	m = bob.do("join lobby bob")
	bob.wait(m, "Joined lobby as bob")

	// kicked: not rejoined, lobby is; the kicker is named as the
	// channel's member list had her
	m = bob.do("names " + dev)
	bob.wait(m, "Users in "+dev+" (2): "+alice.as()+", "+bob.as())
	m = bob.mark()
	alice.do("kick " + dev + " " + bob.c.PublicKey().String())
	bob.wait(m, "You were kicked from "+dev+" by "+alice.as()+" (you may join again)")
	m = cut()
	bob.wait(m, "Joined lobby as bob")
	if bob.has(m, "Joined "+dev) {
		t.Fatalf("bob's client joined %s again after he was kicked: %q", dev, bob.texts(m))
	}
	// By hand: and then it is rejoined after the next break.
	m = bob.do("join " + dev + " bob")
	bob.wait(m, "Joined "+dev+" as bob")
	m = cut()
	bob.wait(m, "Joined "+dev+" as bob")
	bob.wait(m, "Joined lobby as bob")

	// banned: not rejoined
	m = bob.mark()
	alice.do("ban " + dev + " " + bob.c.PublicKey().String())
	bob.wait(m, "You are banned from "+dev+"…")
	m = cut()
	bob.wait(m, "Joined lobby as bob")
	// The joins are asked for in order, dev's before lobby's: its answer
	// (joined, or refused) would have come first.
	if bob.has(m, dev) || bob.has(m, "ERROR") {
		t.Fatalf("bob's client joined %s again after his ban: %q", dev, bob.texts(m))
	}
}
