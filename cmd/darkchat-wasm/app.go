//go:build js && wasm

package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"syscall/js"
	"time"

	"darkchat/client"
	"darkchat/client/command"
	"darkchat/identity"
)

const (
	// lineQueue bounds the output lines not yet handed to the page. The
	// client's goroutines block on a full queue (the page is then not
	// keeping up, and the node disconnects a session that stops reading).
	lineQueue = 256

	// execQueue bounds the input lines not yet run. A page that submits
	// faster than they run gets an error line for the excess.
	execQueue = 256
)

// Connection states reported to the page (body[data-state] mirrors them)
// are command's: StateConnecting, StateReady, StateReconnecting and
// StateOffline (closed by the user with exit; connect reopens).

// app is one running client: the interpreter, the page's callbacks, and
// the goroutines that run input, deliver output and reconnect. It lives as
// long as the page.
type app struct {
	key     identity.PrivateKey
	c       *command.Interpreter
	nodes   *command.Nodes // the page's node, then its fallbacks
	onLine  js.Value
	onState js.Value

	ctx   context.Context
	lines chan outLine  // output for the page, in order
	execQ chan input    // input lines, run in order
	dirty chan struct{} // the state may have changed (capacity 1)
	wake  chan struct{} // retry now (capacity 1)

	mu        sync.Mutex
	status    string
	retryAt   time.Time
	attempt   int
	closedBy  bool // the user typed exit: do not reconnect until connect
	quiet     bool // an automatic reconnect is running: its failures are status, not log
	lastState string

	members members // the member lists beside the log (members.go)
}

// outLine is a line on its way to the page.
type outLine struct {
	command.Line
	at     time.Time
	status bool   // shown as connection status rather than in the log
	own    bool   // echo of the user's own message
	peer   string // for the echo of a DM: the recipient's key

	// kind, when set, makes this no line but news about the user's own
	// messages: "sent" (the last echo of a channel message was sent as
	// id) or "seen" (id has been seen by count members, by).
	kind    string
	id      string
	count   int
	by      []string
	members []memberEntry // kind "members" (members.go)
}

// newApp makes the client for the page; urls are its node's WebSocket
// gateway and then the other nodes to move to when that one is gone;
// unlisted keeps the user out of the channels' member lists.
func newApp(key identity.PrivateKey, urls []string, unlisted bool, onLine, onState js.Value) (*app, error) {
	var nodes []command.Node
	for _, u := range urls {
		nodes = append(nodes, command.Node{Name: u, Dial: func(ctx context.Context) (client.Transport, error) { return client.DialWS(ctx, u) }})
	}
	dialer, err := command.NewNodes(nodes)
	if err != nil {
		return nil, err
	}
	a := &app{
		key:     key,
		onLine:  onLine,
		onState: onState,
		ctx:     context.Background(),
		lines:   make(chan outLine, lineQueue),
		execQ:   make(chan input, execQueue),
		dirty:   make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
		status:  command.StateConnecting,
	}
	c, err := command.New(command.Config{
		Key:      key,
		Dial:     dialer.Dial,
		Output:   a.output,
		Unlisted: unlisted,
		// A person reads the page: late messages carry their mark, and
		// joining a channel (the rejoins after a reconnect too) asks for
		// what was said meanwhile.
		Interactive: true,
		// The ignore list lasts in localStorage (ignore.go).
		Ignore: newLocalIgnore(key.Public()),
		// The page marks the user's messages with who has seen them.
		OnSent: func(channel, id string) {
			a.lines <- outLine{at: time.Now(), kind: "sent", id: id, Line: command.Line{Channel: channel}}
		},
		// The member list beside the log.
		OnJoined:   func(s *client.Session, channel, username string) { a.membersJoined(s, channel, username) },
		OnPresence: func(e client.EventPresence) { a.membersPresence(e) },
		OnLeft:     func(channel string) { a.membersLeft(channel) },
		OnSeen: func(e client.EventSeen) {
			by := make([]string, len(e.By))
			for i, u := range e.By {
				by[i] = client.Sanitize(u)
			}
			a.lines <- outLine{at: time.Now(), kind: "seen", id: e.ID, count: e.Count, by: by,
				Line: command.Line{Channel: client.Sanitize(e.Channel)}}
		},
	})
	if err != nil {
		return nil, err
	}
	a.c, a.nodes = c, dialer
	return a, nil
}

func (a *app) start() {
	go a.deliver()
	go a.runInput()
	go a.run()
}

// output receives the client's lines. While an automatic reconnect runs,
// its failures go to the connection status, not the log: the page shows
// one "disconnected" line and then a countdown, not a line per attempt.
func (a *app) output(l command.Line) {
	a.mu.Lock()
	quiet := a.quiet
	a.mu.Unlock()
	status := quiet && l.Kind == command.LineError && strings.HasPrefix(l.Text, "ERROR: login failed:")
	a.lines <- outLine{Line: l, at: time.Now(), status: status}
}

// setStatus changes the connection state and tells the page.
func (a *app) setStatus(status string, retryAt time.Time) {
	a.mu.Lock()
	a.status, a.retryAt = status, retryAt
	a.mu.Unlock()
	a.changed()
}

func (a *app) changed() {
	select {
	case a.dirty <- struct{}{}:
	default:
	}
}

func (a *app) wakeUp() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// deliver is the only goroutine that calls the page's callbacks, so lines
// and states reach it in order and never concurrently.
func (a *app) deliver() {
	for {
		select {
		case l := <-a.lines:
			a.onLine.Invoke(lineValue(l))
		case <-a.dirty:
		}
		a.publishState()
	}
}

// publishState sends the state to the page if it changed.
func (a *app) publishState() {
	st := a.snapshot()
	key := fmt.Sprint(st)
	if key == a.lastState {
		return
	}
	a.lastState = key
	a.onState.Invoke(stateValue(st))
}

// state is what the page shows about the connection.
type state struct {
	Status   string
	PubKey   string
	Node     string
	Name     string   // the username DMs carry
	Channels []string // "channel username", sorted
	RetryIn  time.Duration
	Attempt  int
}

func (a *app) snapshot() state {
	a.mu.Lock()
	st := state{Status: a.status, Attempt: a.attempt}
	if a.status == command.StateReconnecting {
		st.RetryIn = time.Until(a.retryAt).Round(100 * time.Millisecond)
	}
	a.mu.Unlock()
	st.PubKey = a.key.Public().String()
	st.Name = a.c.DMName()
	s := a.c.Session()
	if s == nil || !s.LoggedIn() {
		if st.Status == command.StateReady {
			// The session just ended; run has not noticed yet. The page
			// keeps its channel list while not ready.
			st.Status = command.StateConnecting
		}
		return st
	}
	st.Node = s.Node()
	for ch, user := range s.Channels() {
		st.Channels = append(st.Channels, ch+" "+user)
	}
	sort.Strings(st.Channels)
	return st
}

// input is one line typed in the page, with the channel open there.
type input struct {
	line string
	// open is the channel the page shows ("" for a DM or none): the
	// line runs with it as the current channel, so that /part, /names,
	// /me and plain text act on what the user sees, not on the channel
	// last joined or written to.
	open    string
	hasOpen bool
}

// exec queues one input line.
func (a *app) exec(in input) {
	select {
	case a.execQ <- in:
	default:
		// Not from this goroutine: exec may run inside a page callback
		// that deliver is waiting on.
		go a.output(command.Line{Kind: command.LineError, Text: "ERROR: too many commands waiting; this one was dropped"})
	}
}

// runInput runs input lines one at a time, as the CLI does.
func (a *app) runInput() {
	for in := range a.execQ {
		line := in.line
		if in.hasOpen {
			a.c.SetCurrent(in.open)
		}
		a.echo(line)
		cmd, _ := command.Parse(line)
		switch cmd.Name {
		case "connect":
			a.mu.Lock()
			a.closedBy = false
			a.mu.Unlock()
		case "exit":
			// The browser cannot quit; it does what the CLI does before
			// quitting: settle, then close the connection.
			a.mu.Lock()
			a.closedBy = true
			a.mu.Unlock()
			ctx, cancel := context.WithTimeout(a.ctx, 10*time.Second)
			a.c.Drain(ctx)
			cancel()
			a.c.Close()
			a.output(command.Line{Kind: command.LineNotice, Text: "Disconnected. Type connect to connect again."})
			a.changed()
			continue
		}
		a.c.Execute(a.ctx, line)
		if cmd.Name == "connect" {
			a.wakeUp()
		}
		a.changed()
	}
}

// echo shows the user's own messages in the log, as a chat window does
// (the node does not echo them, and the CLI shows them as typed). A
// channel message appears as others see it, "<username>@<channel> -
// <message>"; a DM as "<name> → <recipient>: <message>", which no line
// from the network looks like (a received DM is "<name>@private(<sender>)
// - <message>"). A line the client refuses gets its error line after.
func (a *app) echo(line string) {
	cmd, err := command.Parse(line)
	if err != nil || (cmd.Name != "say" && cmd.Name != "private" && cmd.Name != "me") {
		return
	}
	s := a.c.Session()
	if s == nil || !s.LoggedIn() {
		return
	}
	l := command.Line{Kind: command.LineMessage, Author: a.key.Public(), Body: client.Sanitize(cmd.Args[len(cmd.Args)-1])}
	out := outLine{at: time.Now(), own: true}
	switch cmd.Name {
	case "say":
		channel := strings.TrimPrefix(cmd.Args[0], "#")
		user, ok := s.Username(channel)
		if !ok {
			return
		}
		l.Channel, l.User = client.Sanitize(channel), client.Sanitize(user)
		l.Text = l.User + "@" + l.Channel + " - " + l.Body
	case "me":
		// An action, to the current channel: "* <username>@<channel> <action>".
		channel := a.c.Current()
		user, ok := s.Username(channel)
		if !ok {
			return
		}
		l.Channel, l.User, l.Action = client.Sanitize(channel), client.Sanitize(user), true
		l.Body = client.Sanitize(cmd.Args[0])
		l.Text = "* " + l.User + "@" + l.Channel + " " + l.Body
	case "private":
		to, err := a.c.ResolveUser(cmd.Args[0])
		if err != nil {
			return
		}
		out.peer = to.String()
		l.User = a.c.DMName()
		l.Text = l.User + " → " + shortKey(out.peer) + ": " + l.Body
	}
	out.Line = l
	a.lines <- out
}

// shortKey abbreviates a public key for display.
func shortKey(hex string) string {
	return hex[:8] + "…" + hex[len(hex)-6:]
}

// run connects, and reconnects with backoff whenever the session ends
// other than by exit, joining again the channels it was in.
func (a *app) run() {
	a.c.Start(a.ctx) // prints the key, and the error if the node is not there
	a.c.KeepConnected(a.ctx, command.KeepConfig{
		OnState: func(state string, attempt int, retryAt time.Time) {
			a.mu.Lock()
			a.attempt = attempt
			a.mu.Unlock()
			a.setStatus(state, retryAt)
		},
		Wake: a.wake,
		// A node that refuses the user (its operator's ban): the next.
		NextNode: a.nodes.Next,
		Stopped: func() bool {
			a.mu.Lock()
			defer a.mu.Unlock()
			return a.closedBy
		},
		Quiet: func(q bool) {
			a.mu.Lock()
			a.quiet = q
			a.mu.Unlock()
		},
	})
}
