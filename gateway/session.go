package gateway

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"darkchat/identity"
	"darkchat/p2p"
	"darkchat/proto"
)

// challengeTTL is how long a login challenge stays valid.
const challengeTTL = time.Minute

// publishTimeout bounds one publication on the mesh.
const publishTimeout = 10 * time.Second

// maxEcho bounds the IDs of in-flight sends a session remembers so as not to
// echo its own messages back to it.
const maxEcho = 256

// session is one logged-in (or logging-in) client. Fields without a comment
// about locking belong to whoever is reading the client's frames: at most
// one goroutine at a time (see reading), so they need no lock.
type session struct {
	srv  *Server
	conn frameConn
	ip   netip.Addr

	challenge string
	key       identity.PublicKey
	tag       [identity.DMTagSize]byte // routing tag of DMs to key
	loggedIn  bool
	// transport is transportTCP or transportWS, for metrics.
	transport uint8
	// slot is the session's index in the server's registry (Server.start).
	slot int32
	// What the session registered on the client's behalf, so that cleanup
	// undoes exactly that, however far a login got before it failed.
	inInbox   bool              // a member of its key's DM inbox shard on the mesh
	hasBundle bool              // its key bundle is in the server's registry
	channels  map[string]string // channel → username; nil until a join
	bucket    tokenBucket
	// historyBucket paces the session's history requests.
	historyBucket tokenBucket
	errors        int

	// pollConn is set when the socket can be watched by the poller;
	// pollSlot and pollGen (0: not yet watched) when the poller first
	// watches it, and belong to the poller.
	pollSlot int32
	pollGen  uint32
	pollConn syscall.RawConn

	lastRead atomic.Int64 // unix nanos of the last bytes read; read by tick
	loginBy  atomic.Int64 // unix nanos of the login deadline; 0 once logged in
	stopping atomic.Bool  // mirrors closing for the reader's per-frame check
	// tickAt is when the session ticks next (login timeout, idle ping and
	// idle timeout) on the server's wheel, 0 if it does not; guarded by
	// the wheel's lock (timers.go).
	tickAt time.Duration

	mu      sync.Mutex // guards the fields below
	queue   []outFrame
	writing bool // a writer goroutine is running
	reading bool // a goroutine is reading and executing the client's frames
	closing bool // no more frames accepted; close after flushing
	cleaned bool // cleanup has run
	// borrowed is how many of the frames in queue, or in the batch being
	// written, were queued beyond SendQueue out of the node's
	// SharedSendQueue (enqueueFrame); write gives them back.
	borrowed int32
	echo     map[[identity.MessageIDSize]byte]struct{}
	// room is closed when the writer takes the queue or the session
	// closes; the reader waits on it while the queue is half full
	// (waitForRoom). nil: nobody waits.
	room chan struct{}
}

// source is what the per-IP limits count the session by: sourceOf(ip)
// (computed, not kept: idle sessions are the node's memory).
func (s *session) source() netip.Addr { return sourceOf(s.ip) }

func newSession(srv *Server, conn frameConn, ip netip.Addr) *session {
	transport := uint8(transportTCP)
	if _, ok := conn.(*wsConn); ok {
		transport = transportWS
	}
	return &session{
		transport: transport,
		srv:       srv,
		conn:      conn,
		ip:        ip,
		bucket:    newTokenBucket(srv.cfg.Rate, srv.cfg.Burst, srv.cfg.Now()),

		historyBucket: newTokenBucket(sessionHistoryRate, sessionHistoryBurst, srv.cfg.Now()),
	}
}

// start begins the session on its first reader goroutine, which greets
// the client and reads its requests. The socket is handed to the server's
// poller when the client goes quiet, if the socket allows it (see read).
func (s *session) start() {
	if rc, ok := rawConn(s.conn.netConn()); ok {
		s.srv.startPoller()
		if s.srv.poller != nil {
			s.pollConn = rc
		}
	}
	s.mu.Lock()
	s.reading = true
	s.mu.Unlock()
	s.srv.readers.Add(1)
	go s.greet()
}

// greet sends hello with the login challenge and arms the session's timer,
// then reads. It runs on the session's goroutine rather than the accept
// loop, which would otherwise serialise every connection's setup.
func (s *session) greet() {
	challenge, err := identity.NewChallenge(s.srv.nodeID, s.srv.cfg.Now(), challengeTTL)
	if err != nil {
		s.shutdown(errorf(codeInternal, "cannot issue a login challenge"))
		s.stopReading()
		s.finish()
		return
	}
	s.challenge = challenge
	s.enqueue(mustJSON(&proto.Hello{
		Protocol: ProtocolVersion, MessageVersion: identity.ChannelMessageVersion2,
		Node: s.srv.nodeID, Challenge: challenge,
		Limits: proto.Limits{
			MaxLine: s.srv.cfg.MaxLine, MaxBody: identity.MaxBodyLen, MaxChannels: s.srv.cfg.MaxChannels,
			Rate: s.srv.cfg.Rate, Burst: s.srv.cfg.Burst,
		},
	}))
	now := time.Now()
	s.lastRead.Store(now.UnixNano())
	s.loginBy.Store(now.Add(s.srv.cfg.LoginTimeout).UnixNano())
	s.mu.Lock()
	if !s.closing {
		s.srv.timers.schedule(s, min(s.srv.cfg.LoginTimeout, s.srv.cfg.IdlePing))
	}
	s.mu.Unlock()
	s.read()
}

// readLinger is how long a reader goroutine waits for more bytes before it
// hands a quiet socket to the poller and exits. Active sessions (a burst of
// requests, a client sending steadily) keep a goroutine and read through the
// runtime's netpoller with no extra hop; sessions quiet for this long, which
// is most of them most of the time, cost no goroutine.
const readLinger = 2 * time.Second

// While more than lingerCrowd sessions have a reader goroutine (a mass
// login, clients reconnecting together after a restart), quiet sockets go
// to the poller after readLingerCrowded instead. The runtime keeps every
// goroutine descriptor it ever made for reuse, so the peak number of
// readers stays in the heap for the life of the process: lingering 2 s
// through 10,000 logins a second would leave ~0.7 descriptors (~300 B) per
// idle session.
const (
	lingerCrowd       = 64
	readLingerCrowded = 50 * time.Millisecond
)

// readLinger returns how long a reader goroutine waits for bytes before it
// hands its socket to the poller.
func (srv *Server) readLinger() time.Duration {
	if srv.readers.Load() > lingerCrowd {
		return readLingerCrowded
	}
	return readLinger
}

// readChunk is the size of the pooled buffers socket reads go into. A
// buffer is held only while a session has a reader goroutine.
const readChunk = 4 << 10

var readBufs = sync.Pool{New: func() any { b := make([]byte, readChunk); return &b }}

// onReadable runs on the poller's goroutine when a watched socket has bytes
// (or an end of stream): it starts a reader unless the session is ending.
func (s *session) onReadable() {
	s.mu.Lock()
	if s.closing || s.reading {
		s.mu.Unlock()
		return
	}
	s.reading = true
	s.mu.Unlock()
	s.srv.readers.Add(1)
	go s.read()
}

// read is the session's reader goroutine: it reads, decodes and executes
// requests in order. If the socket can be watched by the poller, it exits
// after readLinger without a byte and hands the socket over; otherwise
// (TLS, no epoll) it reads until the connection ends.
func (s *session) read() {
	c := s.conn.netConn()
	buf := readBufs.Get().(*[]byte)
	handOff := false
	var deadline time.Time
	for {
		if s.pollConn != nil {
			// Pushing the deadline forward on every read would reset a
			// timer per request; a quarter of the linger is enough. A
			// shorter linger (the readers crowded) takes effect at once.
			linger := s.srv.readLinger()
			if want := time.Now().Add(linger); want.Before(deadline) || want.Sub(deadline) > linger/4 {
				c.SetReadDeadline(want)
				deadline = want
			}
		}
		n, err := c.Read(*buf)
		if n > 0 && !s.consume((*buf)[:n]) {
			break
		}
		if err != nil {
			if s.pollConn != nil && errors.Is(err, os.ErrDeadlineExceeded) {
				handOff = true
			} else {
				s.readFailed(err)
			}
			break
		}
	}
	readBufs.Put(buf)
	if closing := s.stopReading(); closing || !handOff {
		s.finish()
		return
	}
	// Bytes that arrived since the deadline are still in the socket; the
	// poller is level-triggered, so it reports them at once.
	if err := s.srv.poller.watch(s); err != nil {
		s.shutdown(nil) // the socket was closed under us
		s.finish()
	}
}

// stopReading records that the reader goroutine is done and reports
// whether the session is closing.
func (s *session) stopReading() (closing bool) {
	s.mu.Lock()
	s.reading = false
	closing = s.closing
	s.mu.Unlock()
	s.srv.readers.Add(-1)
	return closing
}

// consume hands bytes read from the client to the framing and executes the
// frames. It reports whether reading goes on.
func (s *session) consume(data []byte) bool {
	s.lastRead.Store(time.Now().UnixNano())
	if err := s.conn.deframe(data, s); err != nil {
		if !errors.Is(err, errStop) {
			s.readFailed(err)
		}
		return false
	}
	return !s.stopping.Load()
}

// handleFrame implements frameHandler: it executes one request.
func (s *session) handleFrame(frame []byte) bool {
	if s.stopping.Load() || !s.waitForRoom() {
		return false
	}
	if cerr := s.handle(frame); cerr != nil {
		return s.report(cerr)
	}
	return true
}

// waitForRoom holds up the next request while the session's queue is half
// full, until the writer has taken it or the session closes; it reports
// whether the session goes on. Every request is answered, so a client that
// writes faster than it reads its answers (a sender that never waits for
// its oks) is slowed down to what it reads, through TCP's own flow
// control, instead of being cut off as a slow consumer; only what the
// mesh delivers to a client that does not read fills the queue to the
// slow-consumer limit.
func (s *session) waitForRoom() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.queue) >= s.srv.cfg.SendQueue/2 && !s.closing {
		if s.room == nil {
			s.room = make(chan struct{})
		}
		room := s.room
		s.mu.Unlock()
		<-room
		s.mu.Lock()
	}
	return !s.closing
}

// openRoomLocked wakes the reader waiting in waitForRoom.
func (s *session) openRoomLocked() {
	if s.room != nil {
		close(s.room)
		s.room = nil
	}
}

// queuePong implements frameHandler.
func (s *session) queuePong(payload []byte) {
	s.enqueueFrame(outFrame{kind: outPong, data: payload}, false)
}

// tick runs on the server's timer wheel (timers.go). It enforces the
// login deadline, pings a client silent for IdlePing (a live one answers,
// which counts as traffic) and closes one silent for IdleTimeout.
func (s *session) tick() {
	now := time.Now()
	cfg := &s.srv.cfg
	loginBy := s.loginBy.Load()
	if loginBy != 0 && now.UnixNano() >= loginBy {
		cerr := errorf(codeLoginTimeout, "no login within %v", cfg.LoginTimeout)
		s.srv.metrics.login(cerr)
		s.shutdown(cerr)
		return
	}
	idle := now.Sub(time.Unix(0, s.lastRead.Load()))
	if idle >= cfg.IdleTimeout {
		s.shutdown(errorf(codeIdleTimeout, "no traffic for %v", cfg.IdleTimeout))
		return
	}
	next := cfg.IdlePing - idle
	if idle >= cfg.IdlePing {
		if !s.enqueue(pingFrame) {
			return
		}
		next = min(cfg.IdlePing, cfg.IdleTimeout-idle)
	}
	if loginBy != 0 {
		next = min(next, time.Duration(loginBy-now.UnixNano()))
	}
	s.mu.Lock()
	if !s.closing {
		s.srv.timers.schedule(s, next)
	}
	s.mu.Unlock()
}

// report sends an error to the client and reports whether the session
// goes on.
func (s *session) report(cerr *clientError) bool {
	if proto.Code(cerr.code).Closes(s.loggedIn) {
		cerr.closes = true // PROTOCOL.md's table (proto.Codes) decides
	}
	if cerr.protocol {
		s.errors++
		if s.errors >= maxErrors && !cerr.closes {
			s.srv.metrics.clientError(cerr.code)
			s.enqueue(cerr.frame())
			cerr = errorf(codeTooManyErrors, "%d malformed requests or refused joins; closing", s.errors)
			cerr.closes = true
			// A source whose sessions keep ending this way opens the next
			// one at once; it counts as refused, so that a source doing it
			// FloodRefusals times a second has its SYNs thinned out.
			s.srv.limiter.abused(s.source())
		}
	}
	if cerr.closes {
		s.shutdown(cerr)
		return false
	}
	s.srv.metrics.clientError(cerr.code)
	s.enqueue(cerr.frame())
	return true
}

func (s *session) readFailed(err error) {
	var closed peerClosed
	if errors.As(err, &closed) {
		// Answer the client's close frame with its own code (RFC 6455
		// §5.5.1); a close frame without a code gets one without.
		var payload []byte
		if closed.code != closeNoStatus {
			payload = closePayload(closed.code, "")
		}
		s.end(nil, payload)
		return
	}
	s.shutdown(readFailure(err, s.srv.cfg.MaxLine))
}

// readFailure is the final error of a session whose reading failed with
// err, or nil if the client went away.
func readFailure(err error, maxLine int) *clientError {
	var bad wsError
	switch {
	case errors.Is(err, errFrameTooLarge):
		return &clientError{code: codeTooLarge, msg: "line or frame over " + itoa(maxLine) + " bytes"}
	case errors.As(err, &bad):
		return &clientError{code: codeBadFrame, msg: "WebSocket: " + bad.msg, wsClose: bad.code}
	}
	return nil
}

// handle executes one request.
func (s *session) handle(frame []byte) *clientError {
	req, cerr := decodeRequest(frame)
	if cerr != nil {
		return cerr
	}
	s.srv.metrics.request(req.Type)
	s.applyRemovals() // channels a kick or a ban took the session out of
	switch req.Type {
	case "ping":
		s.enqueue(pongFrame)
		return nil
	case "pong":
		return nil
	case "login":
		cerr := s.login(req)
		s.srv.metrics.login(cerr)
		return cerr
	}
	if !s.loggedIn {
		return (&clientError{code: codeNotLoggedIn, msg: "log in first: only login and ping are allowed before welcome", protocol: true}).about(&req)
	}
	switch req.Type {
	case "join":
		cerr := s.join(req)
		if cerr != nil {
			// A refused join counts towards the session's error limit:
			// a client that keeps asking for channels the node will not
			// start (pacing, node or address full) is closed after
			// maxErrors instead of costing the node an answer each time,
			// and has to log in again.
			cerr.protocol = true
		}
		return cerr
	case "leave":
		return s.leave(req)
	case "send":
		return s.send(req)
	case "whois":
		return s.whois(req)
	case "dm":
		cerr := s.dm(req)
		s.srv.metrics.dmResult(cerr)
		return cerr
	case "history":
		return s.history(req)
	case "history_answer":
		return s.historyAnswer(req)
	case "presence":
		return s.refreshPresence(req)
	case "names":
		return s.names(req)
	case "rules":
		return s.setRules(req)
	case "kick":
		return s.kick(req)
	case "bundle":
		if cerr := s.setBundle(req.Bundle); cerr != nil {
			return cerr
		}
		s.enqueue(mustJSON(&proto.Bundle{Key: s.key.String(), Bundle: req.Bundle}))
		return nil
	}
	return &clientError{code: codeUnknownType, msg: "unknown request type " + quote(req.Type), protocol: true}
}

func (s *session) login(req request) *clientError {
	if s.loggedIn {
		return errorf(codeAlreadyLoggedIn, "already logged in as %s", s.key)
	}
	challenge := s.challenge
	s.challenge = "" // single use, whatever the outcome
	fail := func(code, format string, args ...any) *clientError {
		e := errorf(code, format, args...)
		e.closes = true
		return e
	}
	if challenge == "" {
		return fail(codeBadSignature, "login challenge already used")
	}
	key, err := proto.ParseKey(req.Key)
	if err != nil {
		return fail(codeBadKey, "%v", err)
	}
	sig, cerr := decodeHex("sig", req.Sig, identity.SignatureSize)
	if cerr != nil {
		return fail(codeBadSignature, "%s", cerr.msg)
	}
	if err := identity.VerifyLogin(key, challenge, sig, s.srv.nodeID, s.srv.cfg.Now()); err != nil {
		if errors.Is(err, identity.ErrExpired) {
			return fail(codeChallengeExpired, "login challenge expired; reconnect for a new one")
		}
		return fail(codeBadSignature, "login signature does not verify for key %s and this connection's challenge", key)
	}
	s.key, s.tag = key, identity.DMTag(key)
	if cerr := s.refuseLogin(); cerr != nil {
		return cerr
	}
	// Every step that can fail comes before the bundle is registered and
	// published, so a failed login never advertises its bundle; whatever
	// was registered when a step fails, cleanup undoes (see inInbox,
	// hasBundle).
	var bundle []byte
	var parsed identity.KeyBundle
	if req.Bundle != "" {
		var cerr *clientError
		if bundle, parsed, cerr = s.checkBundle(req.Bundle); cerr != nil {
			cerr.closes = true
			return cerr
		}
	}
	if err := s.srv.mesh.JoinInbox(shardOf(key), s); err != nil {
		s.srv.log.Warn("join DM inbox", "err", err)
		return fail(codeInternal, "cannot subscribe to your DM inbox: %v", err)
	}
	s.inInbox = true
	if bundle != nil {
		s.registerBundle(bundle, parsed)
	}
	s.loggedIn = true
	s.loginBy.Store(0)
	s.enqueue(mustJSON(&proto.Welcome{Key: key.String(), Node: s.srv.nodeID}))
	s.srv.identities.add(s)
	s.srv.log.Debug("client logged in", "key", key, "ip", s.ip)
	return s.refuseLogin() // banned while it logged in: closes it
}

func (s *session) join(req request) *clientError {
	if err := identity.ValidateChannelName(req.Channel); err != nil {
		return &clientError{code: codeBadChannel, msg: err.Error(), channel: req.Channel}
	}
	if err := identity.ValidateUsername(req.Username); err != nil {
		return &clientError{code: codeBadUsername, msg: err.Error(), channel: req.Channel}
	}
	if cerr := s.rulesRefuseJoin(req.Channel); cerr != nil {
		return cerr
	}
	presence, cerr := s.checkPresence(req.Channel, req.Username, req.Presence, req.Gone)
	if cerr != nil {
		return cerr
	}
	_, rejoin := s.channels[req.Channel]
	if !rejoin {
		if len(s.channels) >= s.srv.cfg.MaxChannels {
			return &clientError{code: codeTooManyChannels, msg: "at most " + itoa(s.srv.cfg.MaxChannels) + " channels per session", channel: req.Channel}
		}
		if cerr := s.srv.channels.join(s.source(), req.Channel, s.srv.cfg.Now()); cerr != nil {
			return cerr
		}
		if err := s.srv.mesh.Join(req.Channel, s); err != nil {
			s.srv.channels.leave(s.source(), req.Channel)
			s.srv.log.Warn("join channel", "channel", req.Channel, "err", err)
			return &clientError{code: codeInternal, msg: "cannot join channel: " + err.Error(), channel: req.Channel}
		}
		s.srv.history.joined(req.Channel, s)
	}
	if cerr := s.announcePresence(req.Channel, presence, !rejoin); cerr != nil {
		return cerr
	}
	if s.channels == nil {
		s.channels = make(map[string]string, 1)
	}
	s.channels[req.Channel] = req.Username
	s.enqueue(mustJSON(&proto.Joined{Channel: req.Channel, Username: req.Username}))
	if !rejoin {
		s.rulesJoined(req.Channel)
	}
	return nil
}

func (s *session) leave(req request) *clientError {
	if _, ok := s.channels[req.Channel]; !ok {
		return &clientError{code: codeNotJoined, msg: "not in channel " + quote(req.Channel), channel: req.Channel}
	}
	delete(s.channels, req.Channel)
	s.leavePresence(req.Channel)
	s.srv.history.left(req.Channel, s)
	s.srv.mesh.Leave(req.Channel, s)
	s.srv.channels.leave(s.source(), req.Channel)
	s.enqueue(mustJSON(&proto.Left{Channel: req.Channel}))
	return nil
}

func (s *session) send(req request) *clientError {
	ferr := func(code, msg string) *clientError {
		return &clientError{code: code, msg: msg, id: req.ID, channel: req.Channel}
	}
	username, joined := s.channels[req.Channel]
	if !joined {
		return ferr(codeNotJoined, "not in channel "+quote(req.Channel)+": join it first")
	}
	if req.Username != username {
		return ferr(codeBadUsername, "username "+quote(req.Username)+" differs from "+quote(username)+", the one you joined "+req.Channel+" with")
	}
	if cerr := s.rulesRefuseSend(req.Channel); cerr != nil {
		cerr.id = req.ID
		return cerr
	}
	if len(req.Body) > identity.MaxBodyLen {
		return ferr(codeBodyTooLarge, "body is "+itoa(len(req.Body))+" bytes, limit "+itoa(identity.MaxBodyLen))
	}
	var msg identity.ChannelMessage
	if cerr := decodeHexInto(msg.ID[:], "id", req.ID); cerr != nil {
		cerr.id, cerr.channel = req.ID, req.Channel
		return cerr
	}
	if cerr := decodeHexInto(msg.Sig[:], "sig", req.Sig); cerr != nil {
		cerr.id, cerr.channel = req.ID, req.Channel
		return cerr
	}
	// prev and refs: the causal context of a version-2 message (PROTOCOL.md
	// §2.5); without prev the message is version 1, as older clients send.
	if err := proto.DecodeCausal(&msg.Causal, req.Prev, req.Refs); err != nil {
		return &clientError{code: codeBadJSON, msg: "causal context (prev, refs): " + err.Error(), id: req.ID, channel: req.Channel, protocol: true}
	}
	now := s.srv.cfg.Now()
	if ok, gap := checkTimestamp(req.TS, now, s.srv.cfg.TimestampWindow); !ok {
		return ferr(codeBadTimestamp, "timestamp is "+gap+" the node's clock (window ±"+s.srv.cfg.TimestampWindow.String()+"); check your clock")
	}
	if !s.bucket.take(now) {
		return ferr(codeRateLimited, "rate limit: "+ftoa(s.srv.cfg.Rate)+" messages/s, burst "+itoa(s.srv.cfg.Burst)+"; message not sent")
	}
	msg.Author, msg.Channel, msg.Username, msg.Body, msg.Timestamp = s.key, req.Channel, req.Username, req.Body, req.TS
	wire, err := msg.MarshalBinary()
	if err != nil {
		return ferr(codeBadJSON, err.Error())
	}
	s.expectEcho(msg.ID)
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	err = s.srv.mesh.Publish(ctx, req.Channel, wire)
	cancel()
	if err != nil {
		s.dropEcho(msg.ID)
		switch {
		case errors.Is(err, p2p.ErrDuplicate):
			return ferr(codeDuplicate, "message "+req.ID+" was already sent")
		case errors.Is(err, identity.ErrBadSignature):
			return ferr(codeBadSignature, "message signature does not verify with your key "+s.key.String()+" over these fields")
		case errors.Is(err, errAuthorLimited):
			return ferr(codeRateLimited, err.Error()+"; message not sent")
		case errors.Is(err, p2p.ErrIgnore):
			return ferr(codeBadTimestamp, err.Error())
		case errors.Is(err, identity.ErrMalformed):
			return ferr(codeBadJSON, err.Error())
		}
		s.srv.log.Warn("publish failed", "channel", req.Channel, "err", err)
		return ferr(codeInternal, "could not send: "+err.Error())
	}
	s.enqueue(mustJSON(&proto.OK{ID: req.ID}))
	return nil
}

// DeliverMessage implements p2p.Member. It runs on the topic's reader
// goroutine and never blocks.
func (s *session) DeliverMessage(m *p2p.Message) {
	if e, ok := m.Payload.(*dmEnvelope); ok {
		s.deliverDM(e)
		return
	}
	var mm *meshMessage
	switch p := m.Payload.(type) {
	case *meshMessage:
		mm = p
	case *presencePayload:
		s.srv.presence.delivered(p)
		return
	case *rulesPayload:
		s.deliverRules(p)
		return
	case *kickPayload:
		s.deliverKick(p)
		return
	default:
		return
	}
	if mm.recorded.CompareAndSwap(false, true) {
		s.srv.history.delivered(mm.msg.Channel, mm.msg.ID)
		s.srv.metrics.handedOver(mm.msg.Timestamp, m.Local)
	}
	if m.Local && s.isOwnEcho(mm.msg.ID) {
		return
	}
	if s.removedFrom(mm.msg.Channel) {
		return // kicked or banned; its reader has yet to leave
	}
	if s.enqueueDelivery(mm.clientFrame()) {
		s.srv.metrics.deliveredToSession()
	}
}

func (s *session) expectEcho(id [identity.MessageIDSize]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.echo == nil || len(s.echo) >= maxEcho {
		s.echo = make(map[[identity.MessageIDSize]byte]struct{})
	}
	s.echo[id] = struct{}{}
}

func (s *session) dropEcho(id [identity.MessageIDSize]byte) {
	s.mu.Lock()
	delete(s.echo, id)
	s.mu.Unlock()
}

func (s *session) isOwnEcho(id [identity.MessageIDSize]byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.echo[id]; ok {
		delete(s.echo, id)
		if len(s.echo) == 0 {
			s.echo = nil
		}
		return true
	}
	return false
}

// enqueue queues frame for the client. It never blocks: a full queue ends
// the session as a slow consumer. It reports whether the frame was queued.
func (s *session) enqueue(frame []byte) bool { return s.enqueueFrame(outFrame{data: frame}, false) }

// enqueueDelivery queues a frame from the mesh. It is called on a
// channel's reader, which hands each message to every member session in
// turn: the writer it starts first lets that reader go on (see write), so
// that a busy channel's messages leave in batches rather than one syscall
// each. Replies to the client's own requests (enqueue) are written at once.
func (s *session) enqueueDelivery(frame []byte) bool {
	return s.enqueueFrame(outFrame{data: frame}, true)
}

func (s *session) enqueueFrame(frame outFrame, yield bool) bool {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return false
	}
	if len(s.queue) >= s.srv.cfg.SendQueue {
		// A client that reads but has fallen behind for a moment (a
		// burst, a pause of its process) borrows room from the node's
		// shared allowance, up to maxLagFactor times its own queue.
		if len(s.queue) >= maxLagFactor*s.srv.cfg.SendQueue || !s.srv.borrowQueueSlot() {
			queued := len(s.queue)
			// The queued frames would reach the client too late to
			// matter; the notice is what it needs.
			clear(s.queue)
			s.queue = s.queue[:0]
			s.srv.returnQueueSlots(s.borrowed)
			s.borrowed = 0
			s.mu.Unlock()
			s.srv.log.Info("disconnecting slow client", "key", s.key, "ip", s.ip, "queued", queued)
			s.shutdown(errorf(codeSlowConsumer, "you are not reading fast enough: %d messages queued", queued))
			return false
		}
		s.borrowed++
	}
	s.queue = append(s.queue, frame)
	s.startWriterLocked(yield)
	s.mu.Unlock()
	return true
}

// maxLagFactor bounds one session's queue, its own SendQueue and what it
// borrowed from the node's SharedSendQueue together, at this many times
// SendQueue.
const maxLagFactor = 8

// borrowQueueSlot takes one frame's room from the node's SharedSendQueue,
// reporting false when all of it is taken.
func (srv *Server) borrowQueueSlot() bool {
	if srv.sharedQueued.Add(1) > int64(srv.cfg.SharedSendQueue) {
		srv.sharedQueued.Add(-1)
		return false
	}
	return true
}

// returnQueueSlots gives back n frames' room taken by borrowQueueSlot.
func (srv *Server) returnQueueSlots(n int32) {
	if n != 0 {
		srv.sharedQueued.Add(-int64(n))
	}
}

// shutdown stops accepting frames, queues a final error if any and, on
// WebSocket, a close frame whose code fits it, and lets the writer flush
// and close the connection.
func (s *session) shutdown(final *clientError) {
	reason := ""
	if final != nil {
		reason = final.code
	}
	s.end(final, closePayload(wsCloseCode(final), reason))
}

// end is shutdown with the close frame's payload given.
func (s *session) end(final *clientError, closeFrame []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	s.closing = true
	s.stopping.Store(true)
	s.openRoomLocked()
	if final != nil {
		s.srv.metrics.clientError(final.code)
		s.queue = append(s.queue, outFrame{data: final.frame()})
	}
	s.queue = append(s.queue, outFrame{kind: outClose, data: closeFrame})
	s.startWriterLocked(false)
}

// wsCloseCode is the WebSocket close code for a session ending with final
// (nil: the client went away).
func wsCloseCode(final *clientError) uint16 {
	switch {
	case final == nil:
		return closeNormal
	case final.wsClose != 0:
		return final.wsClose
	}
	switch final.code {
	case codeShutdown:
		return closeGoingAway
	case codeTooLarge:
		return closeTooBig
	case codeBadFrame:
		return closeProtocolError
	case codeInternal:
		return closeInternal
	}
	// Every other closing error is the node's policy: a failed or late
	// login, too many errors, sessions or connections, a slow or silent
	// client.
	return closePolicy
}

// startWriterLocked starts the writer unless it is running; see write for
// yield.
func (s *session) startWriterLocked(yield bool) {
	if !s.writing {
		s.writing = true
		go s.write(yield)
	}
}

// write is the on-demand writer: it drains the queue in batches and exits
// when it is empty, closing the connection if the session is closing.
// With yield it first lets the goroutine that queued the frame go on:
// a channel's reader handing messages to many sessions queues more frames
// meanwhile, and they leave in the same write. Writing each delivery as
// soon as it is queued costs a syscall per frame per session, which under
// fanout was most of the CPU (1,000 sessions: 0.4M instead of 1.4–1.9M
// deliveries/s, BENCHMARKS.md).
func (s *session) write(yield bool) {
	if yield {
		runtime.Gosched()
	}
	var batch []outFrame
	var borrowed int32 // the batch's frames queued out of SharedSendQueue
	for {
		s.mu.Lock()
		batch, s.queue = s.queue, batch[:0]
		borrowed, s.borrowed = s.borrowed, 0
		s.openRoomLocked()
		if len(batch) == 0 {
			s.writing = false
			closing := s.closing
			s.queue = nil // an idle session keeps no queue
			s.mu.Unlock()
			if closing {
				s.conn.close()
				s.finish()
			}
			return
		}
		s.mu.Unlock()
		err := s.conn.writeFrames(batch, time.Now().Add(s.srv.cfg.WriteTimeout))
		clear(batch)
		s.srv.returnQueueSlots(borrowed)
		if err != nil {
			s.mu.Lock()
			s.srv.returnQueueSlots(s.borrowed)
			s.closing, s.queue, s.writing, s.borrowed = true, nil, false, 0
			s.openRoomLocked()
			s.mu.Unlock()
			s.stopping.Store(true)
			s.conn.close()
			s.finish()
			return
		}
	}
}

// finish runs cleanup once the session is closing and neither a reader nor
// the writer is running any more; whichever of them stops last calls it.
// Until then the reader may still use the fields cleanup clears, and the
// writer may still be flushing the final notice.
func (s *session) finish() {
	s.mu.Lock()
	if !s.closing || s.reading || s.writing || s.cleaned {
		s.mu.Unlock()
		return
	}
	s.cleaned = true
	s.mu.Unlock()
	s.cleanup()
}

// cleanup leaves the session's channels and unregisters it.
func (s *session) cleanup() {
	s.srv.timers.stop(s)
	if s.pollConn != nil {
		s.srv.poller.remove(s)
	}
	for ch := range s.channels {
		s.leavePresence(ch)
		s.srv.history.left(ch, s)
		s.srv.mesh.Leave(ch, s)
		s.srv.channels.leave(s.source(), ch)
	}
	s.channels = nil
	s.forgetRemovals()
	if s.inInbox {
		s.srv.mesh.LeaveInbox(shardOf(s.key), s)
		s.inInbox = false
	}
	if s.hasBundle {
		s.srv.dropBundle(s)
		s.hasBundle = false
	}
	if s.loggedIn {
		s.srv.identities.remove(s)
	}
	s.srv.unregister(s)
}

// quote quotes untrusted text for an error message, truncated.
func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}

func itoa(n int) string { return strconv.Itoa(n) }

func ftoa(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
