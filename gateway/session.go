package gateway

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"darkchat/identity"
	"darkchat/p2p"
)

// challengeTTL is how long a login challenge stays valid.
const challengeTTL = time.Minute

// publishTimeout bounds one publication on the mesh.
const publishTimeout = 10 * time.Second

// maxEcho bounds the IDs of in-flight sends a session remembers so as not to
// echo its own messages back to it.
const maxEcho = 256

// session is one logged-in (or logging-in) client. Fields without a comment
// about locking belong to the reader goroutine.
type session struct {
	srv  *Server
	conn frameConn
	ip   netip.Addr

	challenge string
	key       identity.PublicKey
	tag       [identity.DMTagSize]byte // routing tag of DMs to key
	loggedIn  bool
	channels  map[string]string // channel → username
	bucket    tokenBucket
	errors    int

	lastRead atomic.Int64 // unix nanos; read by the ping timer
	pinger   *time.Timer

	mu      sync.Mutex // guards the fields below
	queue   [][]byte
	writing bool // a writer goroutine is running
	closing bool // no more frames accepted; close after flushing
	echo    map[[identity.MessageIDSize]byte]struct{}
}

func newSession(srv *Server, conn frameConn, ip netip.Addr) *session {
	s := &session{
		srv:      srv,
		conn:     conn,
		ip:       ip,
		channels: make(map[string]string),
		bucket:   newTokenBucket(srv.cfg.Rate, srv.cfg.Burst, srv.cfg.Now()),
	}
	return s
}

// run is the session's reader goroutine: it greets the client, then reads,
// decodes and executes requests in order until the connection ends.
func (s *session) run() {
	defer s.cleanup()
	challenge, err := identity.NewChallenge(s.srv.nodeID, s.srv.cfg.Now(), challengeTTL)
	if err != nil {
		s.shutdown(errorf(codeInternal, "cannot issue a login challenge"))
		return
	}
	s.challenge = challenge
	s.enqueue(mustJSON(helloFrame{
		Type: "hello", Protocol: ProtocolVersion, Node: s.srv.nodeID, Challenge: challenge,
		Limits: helloLimits{
			MaxLine: s.srv.cfg.MaxLine, MaxBody: identity.MaxBodyLen, MaxChannels: s.srv.cfg.MaxChannels,
			Rate: s.srv.cfg.Rate, Burst: s.srv.cfg.Burst,
		},
	}))
	loginDeadline := time.Now().Add(s.srv.cfg.LoginTimeout)
	s.lastRead.Store(time.Now().UnixNano())
	// Created far in the future and then armed, so the callback never sees
	// s.pinger unset.
	s.pinger = time.AfterFunc(time.Hour, s.pingIfIdle)
	s.pinger.Reset(s.srv.cfg.IdlePing)

	for {
		deadline := time.Now().Add(s.srv.cfg.IdleTimeout)
		if !s.loggedIn {
			deadline = loginDeadline
		}
		s.conn.setReadDeadline(deadline)
		frame, err := s.conn.readFrame()
		if err != nil {
			s.readFailed(err)
			return
		}
		s.lastRead.Store(time.Now().UnixNano())
		if cerr := s.handle(frame); cerr != nil {
			if !s.report(cerr) {
				return
			}
		}
	}
}

// report sends an error to the client and reports whether the session
// goes on.
func (s *session) report(cerr *clientError) bool {
	if cerr.protocol {
		s.errors++
		if s.errors >= maxErrors && !cerr.closes {
			s.enqueue(cerr.frame())
			cerr = errorf(codeTooManyErrors, "%d malformed requests; closing", s.errors)
			cerr.closes = true
		}
	}
	if cerr.closes {
		s.shutdown(cerr)
		return false
	}
	s.enqueue(cerr.frame())
	return true
}

func (s *session) readFailed(err error) {
	switch {
	case errors.Is(err, errFrameTooLarge):
		s.shutdown(&clientError{code: codeTooLarge, msg: "line or frame over " + itoa(s.srv.cfg.MaxLine) + " bytes"})
	case errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err):
		if !s.loggedIn {
			s.shutdown(errorf(codeLoginTimeout, "no login within %v", s.srv.cfg.LoginTimeout))
		} else {
			s.shutdown(errorf(codeIdleTimeout, "no traffic for %v", s.srv.cfg.IdleTimeout))
		}
	default:
		s.shutdown(nil) // the client went away
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// handle executes one request.
func (s *session) handle(frame []byte) *clientError {
	req, cerr := decodeRequest(frame)
	if cerr != nil {
		return cerr
	}
	switch req.Type {
	case "ping":
		s.enqueue(pongFrame)
		return nil
	case "pong":
		return nil
	case "login":
		return s.login(req)
	}
	if !s.loggedIn {
		return &clientError{code: codeNotLoggedIn, msg: "log in first: only login and ping are allowed before welcome", protocol: true}
	}
	switch req.Type {
	case "join":
		return s.join(req)
	case "leave":
		return s.leave(req)
	case "send":
		return s.send(req)
	case "whois":
		return s.whois(req)
	case "dm":
		return s.dm(req)
	case "bundle":
		if cerr := s.setBundle(req.Bundle); cerr != nil {
			return cerr
		}
		s.enqueue(mustJSON(bundleFrame{Type: "bundle", Key: s.key.String(), Bundle: req.Bundle}))
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
	key, err := identity.ParsePublicKey(req.Key)
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
	s.key, s.tag, s.loggedIn = key, identity.DMTag(key), true
	if req.Bundle != "" {
		if cerr := s.setBundle(req.Bundle); cerr != nil {
			cerr.closes = true
			s.loggedIn = false
			return cerr
		}
	}
	if err := s.srv.mesh.JoinInbox(shardOf(key), s); err != nil {
		s.srv.log.Warn("join DM inbox", "err", err)
		s.loggedIn = false
		return fail(codeInternal, "cannot subscribe to your DM inbox: %v", err)
	}
	s.enqueue(mustJSON(welcomeFrame{Type: "welcome", Key: key.String(), Node: s.srv.nodeID}))
	s.srv.log.Debug("client logged in", "key", key, "ip", s.ip)
	return nil
}

func (s *session) join(req request) *clientError {
	if err := identity.ValidateChannelName(req.Channel); err != nil {
		return &clientError{code: codeBadChannel, msg: err.Error(), channel: req.Channel}
	}
	if err := identity.ValidateUsername(req.Username); err != nil {
		return &clientError{code: codeBadUsername, msg: err.Error(), channel: req.Channel}
	}
	if _, ok := s.channels[req.Channel]; !ok {
		if len(s.channels) >= s.srv.cfg.MaxChannels {
			return &clientError{code: codeTooManyChannels, msg: "at most " + itoa(s.srv.cfg.MaxChannels) + " channels per session", channel: req.Channel}
		}
		if err := s.srv.mesh.Join(req.Channel, s); err != nil {
			s.srv.log.Warn("join channel", "channel", req.Channel, "err", err)
			return &clientError{code: codeInternal, msg: "cannot join channel: " + err.Error(), channel: req.Channel}
		}
	}
	s.channels[req.Channel] = req.Username
	s.enqueue(mustJSON(channelFrame{Type: "joined", Channel: req.Channel, Username: req.Username}))
	return nil
}

func (s *session) leave(req request) *clientError {
	if _, ok := s.channels[req.Channel]; !ok {
		return &clientError{code: codeNotJoined, msg: "not in channel " + quote(req.Channel), channel: req.Channel}
	}
	delete(s.channels, req.Channel)
	s.srv.mesh.Leave(req.Channel, s)
	s.enqueue(mustJSON(channelFrame{Type: "left", Channel: req.Channel}))
	return nil
}

func (s *session) send(req request) *clientError {
	ferr := func(code, msg string) *clientError {
		return &clientError{code: code, msg: msg, id: req.ID, channel: req.Channel}
	}
	username, joined := s.channels[req.Channel]
	if !joined {
		return ferr(codeNotJoined, "JOIN CHANNEL FIRST: not in channel "+quote(req.Channel))
	}
	if req.Username != username {
		return ferr(codeBadUsername, "username "+quote(req.Username)+" differs from "+quote(username)+", the one you joined "+req.Channel+" with")
	}
	if len(req.Body) > identity.MaxBodyLen {
		return ferr(codeBodyTooLarge, "body is "+itoa(len(req.Body))+" bytes, limit "+itoa(identity.MaxBodyLen))
	}
	id, cerr := decodeHex("id", req.ID, identity.MessageIDSize)
	if cerr != nil {
		cerr.id, cerr.channel = req.ID, req.Channel
		return cerr
	}
	sig, cerr := decodeHex("sig", req.Sig, identity.SignatureSize)
	if cerr != nil {
		cerr.id, cerr.channel = req.ID, req.Channel
		return cerr
	}
	now := s.srv.cfg.Now()
	if skew := now.Sub(time.UnixMilli(req.TS)); skew > s.srv.cfg.TimestampWindow || skew < -s.srv.cfg.TimestampWindow {
		return ferr(codeBadTimestamp, "timestamp is "+(-skew).Round(time.Second).String()+" from the node's clock (window ±"+s.srv.cfg.TimestampWindow.String()+"); check your clock")
	}
	if !s.bucket.take(now) {
		return ferr(codeRateLimited, "rate limit: "+ftoa(s.srv.cfg.Rate)+" messages/s, burst "+itoa(s.srv.cfg.Burst)+"; message not sent")
	}
	msg := identity.ChannelMessage{Author: s.key, Channel: req.Channel, Username: req.Username, Body: req.Body, Timestamp: req.TS}
	copy(msg.ID[:], id)
	copy(msg.Sig[:], sig)
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
		case errors.Is(err, p2p.ErrIgnore):
			return ferr(codeBadTimestamp, err.Error())
		case errors.Is(err, identity.ErrMalformed):
			return ferr(codeBadJSON, err.Error())
		}
		s.srv.log.Warn("publish failed", "channel", req.Channel, "err", err)
		return ferr(codeInternal, "could not send: "+err.Error())
	}
	s.enqueue(mustJSON(okFrame{Type: "ok", ID: req.ID}))
	return nil
}

// DeliverMessage implements p2p.Member. It runs on the topic's reader
// goroutine and never blocks.
func (s *session) DeliverMessage(m *p2p.Message) {
	if e, ok := m.Payload.(*dmEnvelope); ok {
		s.deliverDM(e)
		return
	}
	mm, ok := m.Payload.(*meshMessage)
	if !ok {
		return
	}
	if m.Local && s.isOwnEcho(mm.msg.ID) {
		return
	}
	s.enqueue(mm.clientFrame())
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

// pingIfIdle runs on the session's timer: a session silent for IdlePing
// gets a ping, which a live client answers, resetting the read deadline.
func (s *session) pingIfIdle() {
	idle := time.Since(time.Unix(0, s.lastRead.Load()))
	if idle >= s.srv.cfg.IdlePing {
		if !s.enqueue(pingFrame) {
			return
		}
		idle = 0
	}
	s.mu.Lock()
	if !s.closing {
		s.pinger.Reset(s.srv.cfg.IdlePing - idle)
	}
	s.mu.Unlock()
}

// enqueue queues frame for the client. It never blocks: a full queue ends
// the session as a slow consumer. It reports whether the frame was queued.
func (s *session) enqueue(frame []byte) bool {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return false
	}
	if len(s.queue) >= s.srv.cfg.SendQueue {
		s.mu.Unlock()
		s.srv.log.Info("disconnecting slow client", "key", s.key, "ip", s.ip, "queued", s.srv.cfg.SendQueue)
		// The queued frames would reach the client too late to matter;
		// the notice is what it needs.
		s.mu.Lock()
		clear(s.queue)
		s.queue = s.queue[:0]
		s.mu.Unlock()
		s.shutdown(errorf(codeSlowConsumer, "you are not reading fast enough: %d messages queued", s.srv.cfg.SendQueue))
		return false
	}
	s.queue = append(s.queue, frame)
	s.startWriterLocked()
	s.mu.Unlock()
	return true
}

// shutdown stops accepting frames, queues a final error if any, and lets
// the writer flush and close the connection.
func (s *session) shutdown(final *clientError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return
	}
	s.closing = true
	if final != nil {
		s.queue = append(s.queue, final.frame())
	}
	s.startWriterLocked()
}

func (s *session) startWriterLocked() {
	if !s.writing {
		s.writing = true
		go s.write()
	}
}

// write is the on-demand writer: it drains the queue in batches and exits
// when it is empty, closing the connection if the session is closing.
func (s *session) write() {
	var batch [][]byte
	for {
		s.mu.Lock()
		batch, s.queue = s.queue, batch[:0]
		if len(batch) == 0 {
			s.writing = false
			closing := s.closing
			s.queue = nil // an idle session keeps no queue
			s.mu.Unlock()
			if closing {
				s.conn.close()
			}
			return
		}
		s.mu.Unlock()
		err := s.conn.writeFrames(batch, time.Now().Add(s.srv.cfg.WriteTimeout))
		clear(batch)
		if err != nil {
			s.mu.Lock()
			s.closing, s.queue, s.writing = true, nil, false
			s.mu.Unlock()
			s.conn.close()
			return
		}
	}
}

// cleanup runs when the reader exits: it leaves the session's channels and
// unregisters it. The writer closes the connection after its last flush.
func (s *session) cleanup() {
	s.shutdown(nil)
	if s.pinger != nil {
		s.pinger.Stop()
	}
	for ch := range s.channels {
		s.srv.mesh.Leave(ch, s)
	}
	s.channels = nil
	if s.loggedIn {
		s.srv.mesh.LeaveInbox(shardOf(s.key), s)
		s.srv.dropBundle(s)
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
