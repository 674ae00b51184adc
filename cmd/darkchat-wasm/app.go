//go:build js && wasm

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
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
	// Reconnection backoff: the first retry comes quickly (a node restart
	// takes about a second), then the wait doubles up to maxBackoff, with
	// ±20% jitter so that a node's clients do not all return at once.
	minBackoff = 500 * time.Millisecond
	maxBackoff = 15 * time.Second

	// lineQueue bounds the output lines not yet handed to the page. The
	// client's goroutines block on a full queue (the page is then not
	// keeping up, and the node disconnects a session that stops reading).
	lineQueue = 256

	// execQueue bounds the input lines not yet run. A page that submits
	// faster than they run gets an error line for the excess.
	execQueue = 256
)

// Connection states reported to the page; body[data-state] mirrors them.
const (
	stateConnecting   = "connecting"   // dialling and logging in
	stateReady        = "ready"        // logged in
	stateReconnecting = "reconnecting" // waiting to try again
	stateOffline      = "offline"      // closed by the user (exit); connect reopens
)

// app is one running client: the interpreter, the page's callbacks, and
// the goroutines that run input, deliver output and reconnect. It lives as
// long as the page.
type app struct {
	key     identity.PrivateKey
	c       *command.Interpreter
	onLine  js.Value
	onState js.Value

	ctx    context.Context
	lines  chan outLine      // output for the page, in order
	execQ  chan string       // input lines, run in order
	dirty  chan struct{}     // the state may have changed (capacity 1)
	wake   chan struct{}     // retry now (capacity 1)
	joined map[string]string // channels to join again after a reconnect; run's only

	mu        sync.Mutex
	status    string
	retryAt   time.Time
	attempt   int
	closedBy  bool // the user typed exit: do not reconnect until connect
	quiet     bool // an automatic reconnect is running: its failures are status, not log
	lastState string
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
	kind  string
	id    string
	count int
	by    []string
}

func newApp(key identity.PrivateKey, url string, onLine, onState js.Value) (*app, error) {
	a := &app{
		key:     key,
		onLine:  onLine,
		onState: onState,
		ctx:     context.Background(),
		lines:   make(chan outLine, lineQueue),
		execQ:   make(chan string, execQueue),
		dirty:   make(chan struct{}, 1),
		wake:    make(chan struct{}, 1),
		joined:  make(map[string]string),
		status:  stateConnecting,
	}
	c, err := command.New(command.Config{
		Key:    key,
		Dial:   func(ctx context.Context) (client.Transport, error) { return client.DialWS(ctx, url) },
		Output: a.output,
		// A person reads the page: late messages carry their mark, and
		// joining a channel (the rejoins after a reconnect too) asks for
		// what was said meanwhile.
		Interactive: true,
		// The page marks the user's messages with who has seen them.
		OnSent: func(channel, id string) {
			a.lines <- outLine{at: time.Now(), kind: "sent", id: id, Line: command.Line{Channel: channel}}
		},
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
	a.c = c
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
	if a.status == stateReconnecting {
		st.RetryIn = time.Until(a.retryAt).Round(100 * time.Millisecond)
	}
	a.mu.Unlock()
	st.PubKey = a.key.Public().String()
	st.Name = a.c.DMName()
	s := a.c.Session()
	if s == nil || !s.LoggedIn() {
		if st.Status == stateReady {
			// The session just ended; run has not noticed yet. The page
			// keeps its channel list while not ready.
			st.Status = stateConnecting
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

// exec queues one input line.
func (a *app) exec(line string) {
	select {
	case a.execQ <- line:
	default:
		// Not from this goroutine: exec may run inside a page callback
		// that deliver is waiting on.
		go a.output(command.Line{Kind: command.LineError, Text: "ERROR: too many commands waiting; this one was dropped"})
	}
}

// runInput runs input lines one at a time, as the CLI does.
func (a *app) runInput() {
	for line := range a.execQ {
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
	if err != nil || (cmd.Name != "say" && cmd.Name != "private") {
		return
	}
	s := a.c.Session()
	if s == nil || !s.LoggedIn() {
		return
	}
	l := command.Line{Kind: command.LineMessage, Author: a.key.Public(), Body: client.Sanitize(cmd.Args[1])}
	out := outLine{at: time.Now(), own: true}
	switch cmd.Name {
	case "say":
		user, ok := s.Username(cmd.Args[0])
		if !ok {
			return
		}
		l.Channel, l.User = client.Sanitize(cmd.Args[0]), client.Sanitize(user)
		l.Text = l.User + "@" + l.Channel + " - " + l.Body
	case "private":
		to, err := identity.ParsePublicKey(cmd.Args[0])
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
	backoff := minBackoff
	for {
		if s := a.c.Session(); s != nil && s.LoggedIn() {
			a.mu.Lock()
			a.attempt = 0
			a.mu.Unlock()
			// Ready once the channels are asked for again, so that the
			// page never sees them missing.
			rejoined := a.rejoin(s)
			a.setStatus(stateReady, time.Time{})
			backoff = minBackoff
			<-s.Done()
			if rejoined {
				// The channels the session was in (or asking to join)
				// when it ended, after the user's joins and leaves.
				a.joined = s.Channels()
			}
		}
		a.mu.Lock()
		closedBy := a.closedBy
		a.attempt++
		a.mu.Unlock()
		if closedBy {
			a.setStatus(stateOffline, time.Time{})
			<-a.wake
			continue
		}
		wait := time.Duration(float64(backoff) * (0.8 + 0.4*rand.Float64()))
		a.setStatus(stateReconnecting, time.Now().Add(wait))
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-a.wake:
			timer.Stop()
		}
		backoff = min(2*backoff, maxBackoff)
		if s := a.c.Session(); s != nil && s.LoggedIn() {
			continue // the user typed connect
		}
		a.setStatus(stateConnecting, time.Time{})
		a.mu.Lock()
		a.quiet = true
		a.mu.Unlock()
		a.c.Execute(a.ctx, "connect")
		a.mu.Lock()
		a.quiet = false
		a.mu.Unlock()
	}
}

// rejoin joins, on a new session, the channels the last one was in. It
// reports false if the session ended before it could ask for them all:
// they are then asked for again on the next one.
func (a *app) rejoin(s *client.Session) bool {
	now := s.Channels()
	var chans []string
	for ch := range a.joined {
		if _, in := now[ch]; !in {
			chans = append(chans, ch)
		}
	}
	sort.Strings(chans)
	for _, ch := range chans {
		if !s.LoggedIn() {
			return false
		}
		a.c.Execute(a.ctx, "join "+ch+" "+a.joined[ch])
	}
	return s.LoggedIn()
}
