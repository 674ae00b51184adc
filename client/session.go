package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"darkchat/identity"
	"darkchat/proto"
)

// Defaults for what the node's hello may leave out (PROTOCOL.md §3).
const (
	defaultRate  = proto.DefaultRate
	defaultBurst = proto.DefaultBurst
)

const (
	// writeTimeout bounds the writer's wait to hand one object to the
	// transport. A node that accepts no bytes for this long has stopped
	// reading, and the session ends rather than keep its objects queued.
	writeTimeout = 10 * time.Second

	// sendQueue bounds the objects queued for the writer and not yet
	// handed to the transport. The node paces the client's messages and
	// answers at once, so a live node keeps it near empty; it fills only
	// when the node stops reading, and then the object that finds it full
	// ends the session with errSendQueueFull instead of waiting: the
	// reader, which queues pongs and receipts, must never block on the
	// node, and a user's call gets the session's end as its error at once.
	sendQueue = 256

	// closeFlushTimeout bounds how long the end of a session waits for
	// the writer to hand the transport what was queued before the end (a
	// message sent just before Close). A node that reads takes
	// microseconds; one that does not is given up on.
	closeFlushTimeout = time.Second

	// defaultKeepAlive: the node pings a session that is silent for 30 s,
	// so a live node is never quiet much longer than that. After this long
	// with nothing received the session pings, and after three times this
	// long it gives the connection up (a half-open TCP connection never
	// reports an error on its own).
	defaultKeepAlive = 30 * time.Second

	// rateMargin slows the client's pacing below the node's rate, so that
	// jitter between the two token buckets never turns into rate_limited.
	rateMargin = 0.9
)

// SessionConfig configures a Session. Key is required.
type SessionConfig struct {
	// Key is the user's identity: it signs the login and every message.
	Key identity.PrivateKey
	// Node, when set, is the peer ID of the node the caller meant to
	// reach. A challenge naming another node is refused before it is
	// signed: a node could otherwise relay another node's challenge and
	// log in there as the user.
	Node string
	// ManualAuth leaves the login to the caller (Challenge, then Login),
	// for the seed's connect / sign / verify flow. Otherwise the session
	// signs the challenge as soon as hello arrives.
	ManualAuth bool
	// OnEvent receives every event, one at a time, from the session's
	// goroutines (the reader, and the timer that reports DMs without a
	// receipt). It must return promptly and must not call Close (Close
	// waits for those goroutines). Nil discards events.
	OnEvent func(Event)
	// Now is the clock for message timestamps; nil means time.Now.
	Now func() time.Time
	// KeepAlive is the silence after which the session pings the node;
	// after three times as long it closes with ErrIdle. Zero means 30 s.
	KeepAlive time.Duration
	// ReceiptTimeout is how long after the node sent a DM the session
	// waits for the recipient's receipt; zero means DefaultReceiptTimeout.
	ReceiptTimeout time.Duration
	// Unlisted leaves the user out of the channels' member lists: joins
	// carry no presence records (PROTOCOL.md §2.12).
	Unlisted bool
	// Store keeps the channels' recent messages (to answer history
	// requests) and the IDs already shown. Nil means a new one for this
	// session; a caller that reconnects passes the previous session's, so
	// the history it asks for on joining again repeats nothing shown.
	Store *Store
	// Ignore, if set, is asked about the sender of each DM: an ignored
	// sender's DM is dropped unseen and gets no receipt, so its sender
	// sees it as not delivered. It runs on the reader and must be quick.
	Ignore func(identity.PublicKey) bool
}

// Event is something the session reports: one of the Event* types.
type Event interface{ event() }

// EventHello: the node's hello arrived. With ManualAuth the session now
// waits for Login.
type EventHello struct{ Hello Hello }

// EventLoggedIn: the node accepted the login.
type EventLoggedIn struct {
	Key  identity.PublicKey
	Node string
}

// EventJoined: the node confirmed a join (or a new username in a channel).
type EventJoined struct{ Channel, Username string }

// EventLeft: the node confirmed a leave.
type EventLeft struct{ Channel string }

// EventMessage: a channel message whose signature the client verified,
// never one whose ID was reported before. Late marks a message that
// answers the history request History (Session.History): sent earlier,
// at Message.Timestamp. Its strings are untrusted: Sanitize them before
// printing.
type EventMessage struct {
	Message identity.ChannelMessage
	Late    bool
	History string
}

// EventOK: the node accepted the message ID, sent to Channel.
type EventOK struct{ ID, Channel string }

// EventError: the node reported an error. Err.ID names the message it
// concerns, if any.
type EventError struct{ Err *Error }

// EventWarning: the node sent something the client refused (a malformed
// object, a message with a bad signature). The session carries on.
type EventWarning struct{ Err error }

// EventSessions: the node has Count sessions of the user's key logged in,
// this one included; it comes when another one logs in or ends while
// there are (or were) more than one: another client uses the identity.
type EventSessions struct{ Count int }

// EventClosed: the session ended. Err is nil when Close ended it, and
// otherwise says why (the node's closing error, the transport's error,
// ErrIdle, a failed login check...). It is always the last event.
type EventClosed struct{ Err error }

func (EventHello) event()    {}
func (EventSessions) event() {}
func (EventLoggedIn) event() {}
func (EventJoined) event()   {}
func (EventLeft) event()     {}
func (EventMessage) event()  {}
func (EventOK) event()       {}
func (EventError) event()    {}
func (EventWarning) event()  {}
func (EventClosed) event()   {}

type sessionState int

const (
	stateHello     sessionState = iota // waiting for hello
	stateChallenge                     // hello received, waiting for Login (manual)
	stateLoggingIn                     // login sent, waiting for welcome
	stateLoggedIn
)

// ErrClosedByUser is why a session ended that its owner closed: Err
// returns it after Close, and EventClosed reports it as a nil reason.
var ErrClosedByUser = fmt.Errorf("%w by the client", ErrClosed)

// errSendQueueFull ends a session whose node stopped reading (see
// sendQueue).
var errSendQueueFull = fmt.Errorf("%w: the node is not reading: %d objects wait to be written", ErrClosed, sendQueue)

// Session drives one connection to a node's gateway. It owns the
// transport: it waits for hello, logs in (publishing the user's key
// bundle), and then joins, leaves, sends and sends DMs on the caller's
// behalf while its reader goroutine handles what arrives.
//
// The session owns three goroutines, all ended and waited for by Close:
// the reader, the writer and housekeeping. Only the writer writes to the
// transport; everyone else queues objects for it (see sendQueue), so
// neither the reader nor a caller ever waits for the node to read. When
// the session ends (see ending) the reader and housekeeping stop at once,
// the writer within closeFlushTimeout, and then the reader closes the
// transport.
type Session struct {
	t     Transport
	cfg   SessionConfig
	pub   identity.PublicKey
	dmKey identity.DMPrivateKey
	now   func() time.Time
	ctx   context.Context // ends when the session starts ending
	stop  context.CancelFunc
	wg    sync.WaitGroup
	done  chan struct{}

	// writeCtx bounds the writer's transport writes. It outlives ctx by
	// up to closeFlushTimeout (flushTimer), so that the end of a session
	// never cuts an object in half nor drops what was queued before it,
	// and ends at once when writing is pointless (the node stopped
	// reading, a write failed).
	writeCtx   context.Context
	stopWrites context.CancelFunc
	endOnce    sync.Once
	flushTimer *time.Timer   // set once by ending
	writerDone chan struct{} // closed when the writer goroutine ends

	receiptTimeout time.Duration
	out            chan []byte   // encoded objects for the writer, at most sendQueue
	answers        chan []byte   // encoded history answers, sent after out's objects; at most answerQueue
	store          *Store        // the channels' recent messages and the IDs shown
	historyLimiter *rate.Limiter // paces History to the node's limit
	wake           chan struct{} // wakes the housekeeping goroutine
	hkDone         chan struct{} // closed when the housekeeping goroutine ends
	emitMu         sync.Mutex    // serialises OnEvent

	lastRecv atomic.Int64 // Unix nanoseconds

	mu        sync.Mutex
	changed   chan struct{} // closed and replaced whenever the state below changes
	state     sessionState
	hello     Hello
	limiter   *rate.Limiter
	loginErr  error                      // why the login failed
	fatal     error                      // the node's closing error, the reason for the end that follows
	reason    error                      // set by abort: why the client ended the session
	err       error                      // set when the session has ended
	joined    map[string]string          // channel → username, confirmed by the node
	joining   map[string]string          // channel → username, join sent and not yet answered
	requests  map[string]int             // channel → joins and leaves not yet answered
	pending   map[string]sentMessage     // by message ID: sent and not yet answered
	histories map[string]*historyRequest // by request ID: sent and not yet ended; at most historyPending
	dm        dmState
	pres      presenceState // presence.go
	rules     rulesState    // rules.go: owned channels' records, the SetRules or Kick waiting
	// gaps holds, per channel, the references missing from the causal
	// contexts that came, until they are asked for (causal.go); active
	// the channels where a message came or was sent in this session:
	// only there are references looked for (a new member does not ask
	// for everything said before it came).
	gaps   map[string]*gapState
	active map[string]bool

	// sendMu makes signing a message and recording it as the user's last
	// in its channel one step, so that the next message names it.
	sendMu sync.Mutex
}

// NewSession starts a session on t, which it now owns (Close closes it).
func NewSession(t Transport, cfg SessionConfig) (*Session, error) {
	if t == nil {
		return nil, errors.New("new session: nil transport")
	}
	if cfg.Key.IsZero() {
		return nil, fmt.Errorf("new session: %w", identity.ErrInvalidKey)
	}
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = defaultKeepAlive
	}
	if cfg.ReceiptTimeout <= 0 {
		cfg.ReceiptTimeout = DefaultReceiptTimeout
	}
	// Derived once per session (it takes about as long as 2-3 signatures)
	// to open every DM that arrives.
	dmKey, err := cfg.Key.DMKey()
	if err != nil {
		return nil, fmt.Errorf("new session: %w", err)
	}
	s := &Session{
		t:              t,
		cfg:            cfg,
		pub:            cfg.Key.Public(),
		dmKey:          dmKey,
		now:            cfg.Now,
		receiptTimeout: cfg.ReceiptTimeout,
		out:            make(chan []byte, sendQueue),
		writerDone:     make(chan struct{}),
		wake:           make(chan struct{}, 1),
		hkDone:         make(chan struct{}),
		done:           make(chan struct{}),
		changed:        make(chan struct{}),
		joined:         make(map[string]string),
		joining:        make(map[string]string),
		requests:       make(map[string]int),
		pending:        make(map[string]sentMessage),
		histories:      make(map[string]*historyRequest),
		gaps:           make(map[string]*gapState),
		active:         make(map[string]bool),
		answers:        make(chan []byte, answerQueue),
		store:          cfg.Store,
		historyLimiter: newHistoryLimiter(),
		dm:             newDMState(),
		pres:           newPresenceState(),
		rules:          newRulesState(),
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.store == nil {
		s.store = NewStore()
	}
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.writeCtx, s.stopWrites = context.WithCancel(context.Background())
	s.lastRecv.Store(time.Now().UnixNano())
	s.wg.Add(3)
	go s.readLoop()
	go s.writeLoop()
	go s.housekeeping()
	return s, nil
}

// PublicKey returns the key the session logs in with.
func (s *Session) PublicKey() identity.PublicKey { return s.pub }

// Store returns the Store the session keeps messages in (its own, or
// SessionConfig.Store).
func (s *Session) Store() *Store { return s.store }

// Done is closed when the session has ended; Err then says why.
func (s *Session) Done() <-chan struct{} { return s.done }

// Err returns nil while the session runs, then why it ended (wrapping
// ErrClosed if Close ended it).
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the session and waits for its goroutines. It is idempotent.
// Objects queued before it (a Send just before) are still written, but a
// node that does not read them is waited for at most closeFlushTimeout.
func (s *Session) Close() error {
	s.abort(ErrClosedByUser)
	s.wg.Wait()
	return nil
}

// abort ends the session for reason (the first reason wins) without
// waiting: the reader's Recv returns with the ended ctx, and the reader
// finishes.
func (s *Session) abort(reason error) {
	s.mu.Lock()
	if s.reason == nil {
		s.reason = reason
	}
	s.mu.Unlock()
	s.ending()
}

// ending starts the end of the session: the reader and housekeeping stop,
// no object is queued any more, and the writer has closeFlushTimeout to
// write those already queued.
func (s *Session) ending() {
	s.endOnce.Do(func() {
		s.stop()
		s.flushTimer = time.AfterFunc(closeFlushTimeout, s.stopWrites)
	})
}

// Challenge waits for the node's hello and returns it.
func (s *Session) Challenge(ctx context.Context) (Hello, error) {
	err := s.waitFor(ctx, func() bool { return s.state != stateHello })
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == stateHello {
		return Hello{}, err
	}
	return s.hello, nil
}

// Login sends a login with a signature made elsewhere (the manual flow:
// "darkchat sign <challenge>") and waits for the node's answer. A signature
// that does not match this connection's challenge and key is refused
// locally, so a paste error does not cost the connection.
func (s *Session) Login(ctx context.Context, sig []byte) error {
	s.mu.Lock()
	switch s.state {
	case stateHello:
		s.mu.Unlock()
		return fmt.Errorf("%w: no challenge from the node yet", ErrNotConnected)
	case stateLoggingIn:
		s.mu.Unlock()
		return errors.New("a login is already in progress")
	case stateLoggedIn:
		s.mu.Unlock()
		return ErrAlreadyLoggedIn
	}
	challenge := s.hello.Challenge
	s.mu.Unlock()
	if !identity.LoginSignatureValid(s.pub, challenge, sig) {
		return fmt.Errorf("%w: not this key's signature of this connection's challenge", identity.ErrBadSignature)
	}
	if err := s.sendLogin(sig); err != nil {
		return err
	}
	return s.WaitLogin(ctx)
}

// WaitLogin waits until the node has accepted or refused the login.
func (s *Session) WaitLogin(ctx context.Context) error {
	err := s.waitFor(ctx, func() bool { return s.state == stateLoggedIn || s.loginErr != nil })
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.state == stateLoggedIn:
		return nil
	case s.loginErr != nil:
		return s.loginErr
	}
	return err
}

// LoggedIn reports whether the node has accepted the login.
func (s *Session) LoggedIn() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state == stateLoggedIn && s.err == nil
}

// Node returns the node's peer ID from its hello, or "" before hello.
func (s *Session) Node() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hello.Node
}

// Join joins channel as username, or changes the username in a channel
// already joined. It returns once the request is queued for the node
// (it never waits for the node to read; see sendQueue): the node answers
// with EventJoined or EventError. Until then the channel already counts as
// joined for Send, because the node handles a session's objects in order.
func (s *Session) Join(ctx context.Context, channel, username string) error {
	if err := checkNames(channel, username); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	if err := s.requireLogin(); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	s.mu.Lock()
	s.joining[channel] = username
	s.requests[channel]++
	s.mu.Unlock()
	here, gone := s.presenceRecords(channel, username)
	if err := s.write(ctx, &Join{Channel: channel, Username: username, Presence: here, Gone: gone}); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	return nil
}

// Leave leaves channel. Sending to it fails at once; the node answers with
// EventLeft or EventError.
func (s *Session) Leave(ctx context.Context, channel string) error {
	if err := s.requireLogin(); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	s.mu.Lock()
	_, in := s.joined[channel]
	_, joining := s.joining[channel]
	delete(s.joined, channel)
	delete(s.joining, channel)
	s.forgetGapsLocked(channel)
	if in || joining {
		s.requests[channel]++
	}
	s.mu.Unlock()
	if !in && !joining {
		return fmt.Errorf("leave: %w %s", ErrNotJoined, channel)
	}
	if err := s.write(ctx, &Leave{Channel: channel}); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	return nil
}

// Username returns the username the session uses in channel, and whether
// it is in the channel (joined, or join sent).
func (s *Session) Username(channel string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usernameLocked(channel)
}

func (s *Session) usernameLocked(channel string) (string, bool) {
	if u, ok := s.joining[channel]; ok {
		return u, true
	}
	u, ok := s.joined[channel]
	return u, ok
}

// Channels returns the channels the session is in, with its username in
// each.
func (s *Session) Channels() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string]string, len(s.joined)+len(s.joining))
	for c, u := range s.joined {
		m[c] = u
	}
	for c, u := range s.joining {
		m[c] = u
	}
	return m
}

// Send signs body as a message to channel with the channel's username and
// sends it, pacing itself to the rate the node announced (so it may wait).
// It returns the message ID once the message is queued for the node; the
// node answers with EventOK or an EventError naming that ID. The message
// is not echoed back. ctx bounds the wait for the pace; the session never
// waits for the node to read (see sendQueue).
func (s *Session) Send(ctx context.Context, channel, body string) (id string, err error) {
	if err := s.requireLogin(); err != nil {
		return "", fmt.Errorf("send: %w", err)
	}
	s.mu.Lock()
	username, in := s.usernameLocked(channel)
	maxBody, limiter := s.hello.Limits.MaxBody, s.limiter
	s.mu.Unlock()
	if !in {
		return "", fmt.Errorf("send: %w %s", ErrNotJoined, channel)
	}
	if maxBody > 0 && len(body) > maxBody {
		return "", fmt.Errorf("send: %w: body of %d bytes, the node's limit is %d", ErrTooLarge, len(body), maxBody)
	}
	// Fail on bad input before waiting for the rate limiter.
	check := identity.ChannelMessage{Channel: channel, Username: username, Body: body}
	if err := check.Validate(); err != nil {
		return "", fmt.Errorf("send: %w", err)
	}
	ctx, cancel := s.bind(ctx)
	defer cancel()
	if err := limiter.Wait(ctx); err != nil {
		return "", fmt.Errorf("send: %w", s.closedOr(err))
	}
	// Sign after the wait, so the timestamp is the sending time; and
	// after every message of the channel seen so far (Store.sendTime), so
	// that ordering by timestamp, as history does, keeps a reply after
	// what it answers. The message names the user's previous one and the
	// newest of others held (PROTOCOL.md §2.11).
	s.sendMu.Lock()
	defer s.sendMu.Unlock()
	m := identity.ChannelMessage{
		Author:    s.pub,
		Channel:   channel,
		Username:  username,
		Body:      body,
		Timestamp: s.store.sendTime(channel, s.now()).UnixMilli(),
		ID:        identity.NewMessageID(),
	}
	// A node of the previous version takes version-1 messages only
	// (its hello has no message_version): it would find the causal
	// context's signature bad.
	if s.hello.MessageVersion >= identity.ChannelMessageVersion2 {
		m.Causal = s.store.causalFor(channel, s.pub)
	}
	if err := m.Validate(); err != nil {
		return "", fmt.Errorf("send: %w", err)
	}
	m.Sign(s.cfg.Key)
	id = hex.EncodeToString(m.ID[:])
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return "", fmt.Errorf("send: %w", err)
	}
	// Registered before sending: the answer can arrive before write returns.
	s.pending[id] = sentMessage{m}
	s.mu.Unlock()
	s.store.signed(&m)
	if err := s.write(ctx, NewSend(&m)); err != nil {
		s.mu.Lock()
		delete(s.pending, id)
		s.notifyLocked()
		s.mu.Unlock()
		s.store.refused(&m)
		return "", fmt.Errorf("send: %w", err)
	}
	return id, nil
}

// sentMessage is a message sent and not yet answered: once the node
// accepts it, the session keeps it for history requests.
type sentMessage struct{ msg identity.ChannelMessage }

// answeredLocked counts one join or leave on channel as answered; s.mu
// must be held.
func (s *Session) answeredLocked(channel string) {
	if s.requests[channel] <= 1 {
		delete(s.requests, channel)
	} else {
		s.requests[channel]--
	}
	s.notifyLocked()
}

// Pending returns how many sent messages the node has not yet answered.
func (s *Session) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// WaitIdle waits until the node has answered every sent message, DM, join
// and leave, and ended every history request (so that a script's last
// lines show their results). It returns
// the session's end reason if the session ends first, or ctx's error. DM
// receipts may still be on their way: see WaitDMs.
func (s *Session) WaitIdle(ctx context.Context) error {
	return s.WaitIdleQuiet(ctx, 0)
}

// WaitIdleQuiet is WaitIdle that also gives up once quiet passes without
// progress (an answer from the node, or any other change of the session's
// state); zero means no such bound. A script's end waits like this: the
// node answers most requests at once, but a dm to an unreachable inbox
// only after its DM timeout, and several such dms one after the other.
func (s *Session) WaitIdleQuiet(ctx context.Context, quiet time.Duration) error {
	idle := func() bool {
		return len(s.pending) == 0 && len(s.requests) == 0 && len(s.histories) == 0 && s.unansweredDMsLocked() == 0
	}
	if quiet > 0 {
		var cancel context.CancelCauseFunc
		ctx, cancel = context.WithCancelCause(ctx)
		defer cancel(nil)
		timer := time.AfterFunc(quiet, func() {
			cancel(fmt.Errorf("%w: nothing answered for %v", ErrNoAnswer, quiet))
		})
		defer timer.Stop()
		ready := idle
		idle = func() bool { // called with s.mu held at every change
			timer.Reset(quiet)
			return ready()
		}
	}
	err := s.waitFor(ctx, idle)
	s.mu.Lock()
	defer s.mu.Unlock()
	if idle() {
		return nil
	}
	if err == nil {
		err = s.err
	}
	return fmt.Errorf("%d messages, %d history requests, and joins or leaves in %d channels, unanswered: %w",
		len(s.pending)+s.unansweredDMsLocked(), len(s.histories), len(s.requests), err)
}

// waitFor waits until cond (called with s.mu held) holds, the session
// ends, or ctx ends. It returns nil if cond holds, else why not.
func (s *Session) waitFor(ctx context.Context, cond func() bool) error {
	for {
		s.mu.Lock()
		ok, ended, changed := cond(), s.err, s.changed
		s.mu.Unlock()
		switch {
		case ok:
			return nil
		case ended != nil:
			return ended
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// notifyLocked wakes every waitFor; s.mu must be held.
func (s *Session) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Session) requireLogin() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.err != nil:
		return s.err
	case s.state != stateLoggedIn:
		return ErrNotLoggedIn
	}
	return nil
}

// bind returns ctx, cancelled also when the session ends.
func (s *Session) bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// closedOr returns the session's end reason if it has ended, else err.
func (s *Session) closedOr(err error) error {
	if e := s.Err(); e != nil {
		return e
	}
	return err
}

// write encodes obj and queues it for the writer. It never waits, so the
// context goes unused: a full queue ends the session (see sendQueue), and
// so does a write that fails later, in the writer. An error means nothing
// was queued.
func (s *Session) write(_ context.Context, obj Object) error {
	data, err := Encode(obj)
	if err != nil {
		return err
	}
	s.mu.Lock()
	maxLine := s.hello.Limits.MaxLine
	s.mu.Unlock()
	if maxLine <= 0 {
		maxLine = MaxObjectSize
	}
	if len(data) > maxLine {
		// The node would answer too_large and close the session.
		return fmt.Errorf("%w: %s object of %d bytes once encoded, the node's limit is %d", ErrTooLarge, obj.Type(), len(data), maxLine)
	}
	if s.ctx.Err() != nil {
		return s.endReason()
	}
	select {
	case s.out <- data:
		return nil
	default:
	}
	s.abort(errSendQueueFull)
	s.stopWrites() // nothing queued will be read
	return s.endReason()
}

// writeSelf queues an object the session decided to send itself (login,
// ping, pong, receipts, bundle refreshes).
func (s *Session) writeSelf(obj Object) error {
	return s.write(s.ctx, obj)
}

// endReason returns why the session ended or is ending: its final error,
// else the reason abort recorded.
func (s *Session) endReason() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.err != nil:
		return s.err
	case s.reason != nil:
		return s.reason
	}
	return ErrClosed
}

// writeLoop is the session's writer: it hands queued objects to the
// transport in order, each within writeTimeout, and history answers when
// nothing else waits. Once the session is ending it writes what is still
// queued (answers excepted) and exits, or exits when writeCtx ends (see
// ending).
func (s *Session) writeLoop() {
	defer s.wg.Done()
	defer close(s.writerDone)
	for {
		select {
		case data := <-s.out:
			if !s.writeOne(data) {
				return
			}
			continue
		default:
		}
		select {
		case data := <-s.out:
			if !s.writeOne(data) {
				return
			}
		case data := <-s.answers:
			if s.ctx.Err() == nil && !s.writeOne(data) {
				return
			}
		case <-s.ctx.Done():
			for {
				select {
				case data := <-s.out:
					if !s.writeOne(data) {
						return
					}
				default:
					return
				}
			}
		}
	}
}

// writeOne hands one object to the transport and reports whether the
// writer goes on. A failed write may have sent part of an object, so it
// ends the session.
func (s *Session) writeOne(data []byte) bool {
	ctx, cancel := context.WithTimeout(s.writeCtx, writeTimeout)
	err := s.t.Send(ctx, data)
	cancel()
	if err == nil {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w: the node read nothing for %v", err, writeTimeout)
	}
	s.abort(s.closedOr(err))
	return false
}

// sendLogin moves from stateChallenge to stateLoggingIn, so that of two
// racing logins only one is sent, and sends the login.
func (s *Session) sendLogin(sig []byte) error {
	s.mu.Lock()
	if s.state != stateChallenge {
		s.mu.Unlock()
		return errors.New("a login is already in progress")
	}
	s.state = stateLoggingIn
	s.notifyLocked()
	s.mu.Unlock()
	bundle, issued, err := s.newBundle()
	if err != nil {
		return fmt.Errorf("send login: %w", err)
	}
	s.mu.Lock()
	s.dm.bundleIssued = issued
	s.mu.Unlock()
	login := &Login{Key: s.pub.String(), Sig: hex.EncodeToString(sig), Bundle: bundle}
	if err := s.writeSelf(login); err != nil {
		return fmt.Errorf("send login: %w", err)
	}
	return nil
}

func (s *Session) emit(ev Event) {
	if s.cfg.OnEvent != nil {
		s.emitMu.Lock()
		defer s.emitMu.Unlock()
		s.cfg.OnEvent(ev)
	}
}

// housekeeping pings a quiet node and gives up on a silent one, refreshes
// the key bundle before it expires, and reports DMs whose receipt did not
// come in time.
func (s *Session) housekeeping() {
	defer s.wg.Done()
	defer close(s.hkDone)
	k := s.cfg.KeepAlive
	tick := time.NewTicker(k / 2)
	defer tick.Stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
			quiet := time.Since(time.Unix(0, s.lastRecv.Load()))
			switch {
			case quiet >= 3*k:
				s.abort(fmt.Errorf("%w for %v", ErrIdle, quiet.Round(time.Second)))
				s.stopWrites() // a silent node reads nothing either
				return
			case quiet >= k:
				s.writeSelf(&Ping{}) // a failure ends the session itself
			}
			s.refreshBundle()
			s.refreshPresence()
		case <-s.wake:
		case <-timer.C:
		}
		now := time.Now()
		next := s.expireDMs(now)
		if h := s.expireHistories(now); !h.IsZero() && (next.IsZero() || h.Before(next)) {
			next = h
		}
		if g := s.askGaps(now); !g.IsZero() && (next.IsZero() || g.Before(next)) {
			next = g
		}
		if !next.IsZero() {
			timer.Reset(time.Until(next))
		} else {
			timer.Stop()
		}
	}
}

func (s *Session) readLoop() {
	defer s.wg.Done()
	err := s.read()
	s.finish(err)
}

// read handles objects until the transport fails or an object ends the
// session; it returns why.
func (s *Session) read() error {
	for {
		data, err := s.t.Recv(s.ctx)
		if err != nil {
			return err
		}
		s.lastRecv.Store(time.Now().UnixNano())
		obj, err := Decode(data)
		switch {
		case errors.Is(err, ErrUnknownType):
			continue // a later protocol version's object
		case err != nil:
			s.emit(EventWarning{Err: fmt.Errorf("ignored an object from the node: %w", err)})
			continue
		}
		if err := s.handle(obj); err != nil {
			return err
		}
	}
}

// handle acts on one object from the node. An error ends the session.
func (s *Session) handle(obj Object) error {
	switch o := obj.(type) {
	case *Hello:
		return s.handleHello(o)
	case *Welcome:
		return s.handleWelcome(o)
	case *Joined:
		s.mu.Lock()
		s.joined[o.Channel] = o.Username
		if s.joining[o.Channel] == o.Username {
			delete(s.joining, o.Channel)
		}
		s.answeredLocked(o.Channel)
		s.mu.Unlock()
		s.emit(EventJoined{Channel: o.Channel, Username: o.Username})
	case *Left:
		s.mu.Lock()
		delete(s.joined, o.Channel) // a join answered after the leave was sent
		_, rejoining := s.joining[o.Channel]
		s.answeredLocked(o.Channel)
		if !rejoining {
			s.forgetGapsLocked(o.Channel)
			delete(s.rules.held, o.Channel) // rules.go: told again on the next join
		}
		s.mu.Unlock()
		if !rejoining {
			s.store.Forget(o.Channel) // no longer answered for
		}
		s.emit(EventLeft{Channel: o.Channel})
	case *OK:
		s.mu.Lock()
		sent, ok := s.pending[o.ID]
		delete(s.pending, o.ID)
		if ok {
			s.active[sent.msg.Channel] = true
		}
		s.notifyLocked()
		s.mu.Unlock()
		if ok {
			// Accepted, so on its way to the others: kept to answer
			// history requests, never shown as a late message, and
			// followed for its delivery status.
			s.store.add(sent.msg, s.pub)
			s.emit(EventOK{ID: o.ID, Channel: sent.msg.Channel})
		}
	case *Error:
		s.handleError(o)
	case *Message:
		s.handleMessage(o)
	case *HistoryRequest:
		s.answerHistory(o)
	case *HistoryEnd:
		s.handleHistoryEnd(o)
	case *Sessions:
		s.emit(EventSessions{Count: int(o.Count)})
	case *DM:
		s.handleDM(o)
	case *DMSent:
		s.handleDMSent(o)
	case *Bundle:
		s.notePresent(o)
		s.handleBundle(o)
	case *PresenceEvent:
		s.handlePresence(o)
	case *Names:
		s.handleNames(o)
	case *Rules:
		s.handleRules(o)
	case *Kicked:
		s.handleKicked(o)
	case *Ping:
		return s.writeSelf(&Pong{})
	case *Pong:
		// lastRecv is already updated
	default:
		s.emit(EventWarning{Err: fmt.Errorf("%w: unexpected %s object", ErrProtocol, obj.Type())})
	}
	return nil
}

func (s *Session) handleHello(h *Hello) error {
	s.mu.Lock()
	if s.state != stateHello {
		s.mu.Unlock()
		return fmt.Errorf("%w: a second hello", ErrProtocol)
	}
	s.mu.Unlock()
	if h.Protocol != ProtocolVersion {
		return fmt.Errorf("%w: the node speaks protocol version %d, this client %d", ErrProtocol, h.Protocol, ProtocolVersion)
	}
	c, err := identity.ParseChallenge(h.Challenge)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if c.NodeID != h.Node {
		return fmt.Errorf("%w: hello from node %s carries a challenge for node %s", ErrWrongNode, h.Node, c.NodeID)
	}
	if s.cfg.Node != "" && c.NodeID != s.cfg.Node {
		return fmt.Errorf("%w: expected node %s, the challenge is for %s", ErrWrongNode, s.cfg.Node, c.NodeID)
	}
	r, burst := h.Limits.Rate, h.Limits.Burst
	if r <= 0 {
		r = defaultRate
	}
	if burst <= 0 {
		burst = defaultBurst
	}
	s.mu.Lock()
	s.hello = *h
	s.limiter = rate.NewLimiter(rate.Limit(r*rateMargin), burst)
	s.state = stateChallenge
	s.notifyLocked()
	s.mu.Unlock()
	s.emit(EventHello{Hello: *h})
	if s.cfg.ManualAuth {
		return nil
	}
	return s.sendLogin(identity.SignLogin(s.cfg.Key, h.Challenge))
}

func (s *Session) handleWelcome(w *Welcome) error {
	s.mu.Lock()
	if s.state != stateLoggingIn {
		s.mu.Unlock()
		return fmt.Errorf("%w: welcome without a login", ErrProtocol)
	}
	node := s.hello.Node
	s.mu.Unlock()
	if w.Key != s.pub.String() || w.Node != node {
		return fmt.Errorf("%w: welcome for key %s at node %s, logged in as %s at %s", ErrProtocol, w.Key, w.Node, s.pub, node)
	}
	s.mu.Lock()
	s.state = stateLoggedIn
	s.notifyLocked()
	s.mu.Unlock()
	s.emit(EventLoggedIn{Key: s.pub, Node: node})
	return nil
}

func (s *Session) handleError(e *Error) {
	s.mu.Lock()
	if s.state != stateLoggedIn {
		// Before welcome every error is a failed login, and the node
		// closes the session after it.
		s.loginErr = e
		s.fatal = e
	} else if e.ClosesSession(true) {
		s.fatal = e
	} else if status, consumed := s.dmErrorLocked(e); consumed {
		// An answer about a DM, a receipt or a whois: reported as the
		// DM's status or the whois's result.
		s.mu.Unlock()
		if status != nil {
			s.emit(*status)
		}
		return
	}
	s.failNamesLocked(e)
	ruled := s.rulesAnswerLocked(e) // rules.go: the answer to SetRules or Kick
	channel := e.Channel
	if e.ID != "" {
		if sent, ok := s.pending[e.ID]; ok {
			channel = sent.msg.Channel
			delete(s.pending, e.ID)
			s.store.refused(&sent.msg)
		}
		if h, ok := s.histories[e.ID]; ok {
			// The node refused a history request: that is its end.
			channel = h.channel
			delete(s.histories, e.ID)
			if _, in := s.usernameLocked(channel); !in && e.Code == proto.CodeNotJoined {
				// Asked for just before the user left the channel
				// (a join's automatic request, then a quick leave):
				// nothing the user needs to hear.
				s.notifyLocked()
				s.mu.Unlock()
				return
			}
		}
	}
	if e.ID == "" && e.Channel != "" && !ruled {
		// The answer to a join or leave: a failed join leaves the
		// channel (or the previous username in it) as it was.
		delete(s.joining, channel)
		s.answeredLocked(channel)
	}
	if e.Code == "not_joined" {
		delete(s.joined, channel)
	}
	s.notifyLocked()
	s.mu.Unlock()
	s.emit(EventError{Err: e})
}

func (s *Session) handleMessage(o *Message) {
	s.mu.Lock()
	_, in := s.usernameLocked(o.Channel)
	s.mu.Unlock()
	if !in {
		return // in flight when the channel was left
	}
	m, err := o.ChannelMessage()
	if err == nil {
		err = m.Verify()
	}
	if err != nil {
		s.emit(EventWarning{Err: fmt.Errorf("dropped a message in %s from %s: %w", o.Channel, o.Key, err)})
		return
	}
	// A late message counts for its request even when it was shown
	// before (the node's count includes it).
	var h *historyRequest
	if o.Late {
		s.mu.Lock()
		h = s.histories[o.History]
		if h != nil {
			h.count++
		}
		s.mu.Unlock()
	}
	r := s.store.add(m, s.pub)
	s.mu.Lock()
	wasActive := s.active[m.Channel]
	s.active[m.Channel] = true
	if r.fresh && h != nil {
		h.fresh++
	}
	s.mu.Unlock()
	if o.Late {
		s.lateArrived(m.Channel)
	}
	if o.History == "" && wasActive && len(r.missing) > 0 {
		// It names messages not held: they may still come, else the
		// channel is asked for them (PROTOCOL.md §2.11). A late message
		// from the node's repair counts too (whatever the repair missed,
		// the messages it brought name); one answering a history
		// request does not: history reaches back past what the client
		// ever held.
		s.noteGap(m.Channel, r.missing, m.Timestamp)
	}
	if r.fresh {
		s.emit(EventMessage{Message: m, Late: o.Late, History: o.History})
	}
	for _, ev := range r.seen {
		s.emit(ev)
	}
}

// finish records why the session ended and reports it.
func (s *Session) finish(readErr error) {
	s.mu.Lock()
	reason := s.reason
	switch {
	case reason != nil:
	case s.fatal != nil:
		// The node said why it closes; how the close then looks on the
		// transport (EOF, reset) adds nothing.
		reason = s.fatal
	case errors.Is(readErr, io.EOF):
		reason = fmt.Errorf("%w by the node", ErrClosed)
	default:
		reason = readErr
	}
	if s.state != stateLoggedIn && s.loginErr == nil {
		s.loginErr = reason
	}
	s.reason = reason
	s.err = reason
	lost := s.endDMsLocked(reason)
	clear(s.histories) // the session's end is their answer
	s.notifyLocked()
	s.mu.Unlock()

	s.ending()
	<-s.writerDone // the transport is closed after the last write
	s.flushTimer.Stop()
	s.stopWrites()
	s.t.Close()
	<-s.hkDone // its events come before EventClosed
	if reason == ErrClosedByUser {
		reason = nil
	} else {
		for _, ev := range lost {
			s.emit(ev)
		}
	}
	s.emit(EventClosed{Err: reason})
	close(s.done)
}
