package gateway

import (
	"cmp"
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"darkchat/identity"
	"darkchat/p2p"
	"darkchat/proto"
)

// Members and presence (PROTOCOL.md §2.12). A client that wants to be
// listed in a channel gives its node, with the join and every refresh, two
// records it signed: here, which the node publishes on the channel's topic
// at once, and gone, at the same timestamp, which the node keeps and
// publishes when the client leaves the channel or its session ends. Every
// node keeps, for each channel it carries, the newest record of each (key,
// login session): its member table, from which it answers names and
// whois, and whose changes it tells its sessions in the channel as
// presence events. Records that nobody renews expire (at most
// identity.MaxPresenceTTL after they were signed) and then count as gone.
// A node that starts carrying a channel learns the table from one or two
// of its peers in the channel (presence_sync.go) instead of waiting for
// the members' next refresh.
const (
	// maxPresencePerChannel bounds the entries of one channel (a key's
	// login sessions, here or gone; gone ones are kept until they expire,
	// so that a replay of the here they end does not bring the user
	// back). About 400 bytes each: 4 MB for a full channel. When a
	// channel is full its expired entries are swept and, if none were,
	// the new entry is refused and counted (presenceRefusals): its user
	// is not listed here until an entry frees up.
	maxPresencePerChannel = 10_000
	// maxPresencePerNode bounds the entries of all channels together
	// (about 20 MB), whatever the channels, refused the same way.
	maxPresencePerNode = 50_000
	// maxPresenceSessionsPerKey bounds one key's login sessions in one
	// channel: a person's devices, with room for reconnects whose gone
	// records wait for their expiry. A key cannot fill a channel's table
	// by making up sessions.
	maxPresenceSessionsPerKey = 8
	// presenceSweepEvery is how often expired entries are removed (and
	// their users told gone): well under a record's lifetime.
	presenceSweepEvery = 5 * time.Second
	// presenceSummaryEvery is how often refusals are logged, as counts.
	presenceSummaryEvery = time.Minute
	// presenceGoneTimeout bounds publishing a session's gone record when
	// it leaves; past it the record expires on its own.
	presenceGoneTimeout = 2 * time.Second
)

type presenceID = identity.PresenceSession

// presenceEntry is a record in the table, with its wire form for sync
// answers.
type presenceEntry struct {
	rec  identity.Presence
	wire []byte
}

// channelPresence is one carried channel: its members' records and the
// local sessions told of changes.
type channelPresence struct {
	members   map[identity.PublicKey]map[presenceID]*presenceEntry
	entries   int
	listeners map[*session]struct{}
}

// localPresence is what the node holds for one of its sessions in a
// channel: the here it last published and the gone to publish when the
// session leaves.
type localPresence struct {
	here     identity.Presence
	hereWire []byte
	goneWire []byte
}

// memberView is what a key's records in a channel add up to: listed while
// at least one of its sessions' records is here and unexpired, under the
// username of the newest of them.
type memberView struct {
	username string
	sessions int
}

func (v memberView) present() bool { return v.sessions > 0 }

// presenceTable is a node's member table, owned by its Server.
type presenceTable struct {
	srv *Server

	mu       sync.Mutex
	channels map[string]*channelPresence
	total    int
	local    map[*session]map[string]*localPresence

	// Refused entries by reason, logged as a summary every
	// presenceSummaryEvery.
	refusedChannelFull, refusedNodeFull, refusedKeyFull atomic.Int64
}

func newPresenceTable(srv *Server) *presenceTable {
	return &presenceTable{
		srv:      srv,
		channels: make(map[string]*channelPresence),
		local:    make(map[*session]map[string]*localPresence),
	}
}

// viewOf sums up one key's sessions. An entry counts until the sweep
// removes it (at most presenceSweepEvery after it expired), so that what
// the table says and what its events told the sessions agree.
func viewOf(sessions map[presenceID]*presenceEntry) memberView {
	var v memberView
	best := int64(math.MinInt64)
	for _, e := range sessions {
		if e.rec.State != identity.PresenceHere {
			continue
		}
		v.sessions++
		if e.rec.Timestamp > best {
			best, v.username = e.rec.Timestamp, e.rec.Username
		}
	}
	return v
}

// eventFrame is the presence event for a change of key's view in channel,
// or nil when nothing a session shows changed (a refresh).
func eventFrame(channel string, key identity.PublicKey, before, after memberView) []byte {
	if before == after {
		return nil
	}
	ev := &proto.PresenceEvent{Channel: channel, Key: key.String(), Username: after.username, State: proto.StateHere, Sessions: int64(after.sessions)}
	if !after.present() {
		if !before.present() {
			return nil
		}
		ev.Username, ev.State, ev.Sessions = before.username, proto.StateGone, 0
	}
	return mustJSON(ev)
}

// has reports whether the table holds r's (key, session) at r's
// (timestamp, state) or newer: a record already known needs no
// verification.
func (t *presenceTable) has(r *identity.Presence) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	cp := t.channels[r.Channel]
	if cp == nil {
		return false
	}
	e := cp.members[r.Key][r.Session]
	return e != nil && !r.Newer(&e.rec)
}

// apply puts a verified record in the table, if its channel is carried
// and it is newer than the one held, and tells the channel's sessions
// what changed. It reports whether the record was taken.
func (t *presenceTable) apply(r *identity.Presence, wire []byte, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	cp := t.channels[r.Channel]
	if cp == nil {
		return false
	}
	ms := now.UnixMilli()
	if ms >= r.Expires {
		return false
	}
	sessions := cp.members[r.Key]
	old := sessions[r.Session]
	if old != nil && !r.Newer(&old.rec) {
		return false
	}
	if old == nil && !t.roomLocked(cp, sessions, ms) {
		return false
	}
	before := viewOf(sessions)
	if sessions == nil {
		sessions = make(map[presenceID]*presenceEntry, 1)
		cp.members[r.Key] = sessions
	}
	if old == nil {
		cp.entries++
		t.total++
	}
	sessions[r.Session] = &presenceEntry{rec: *r, wire: wire}
	t.tellLocked(cp, eventFrame(r.Channel, r.Key, before, viewOf(sessions)))
	return true
}

// roomLocked reports whether a new entry fits, sweeping the channel's
// expired entries first when it is full; it counts a refusal.
func (t *presenceTable) roomLocked(cp *channelPresence, sessions map[presenceID]*presenceEntry, now int64) bool {
	if len(sessions) >= maxPresenceSessionsPerKey {
		t.sweepKeyLocked(cp, sessions, now)
		if len(sessions) >= maxPresenceSessionsPerKey {
			t.refusedKeyFull.Add(1)
			return false
		}
	}
	if cp.entries >= maxPresencePerChannel || t.total >= maxPresencePerNode {
		t.sweepChannelLocked("", cp, now)
	}
	switch {
	case cp.entries >= maxPresencePerChannel:
		t.refusedChannelFull.Add(1)
		return false
	case t.total >= maxPresencePerNode:
		t.refusedNodeFull.Add(1)
		return false
	}
	return true
}

// sweepKeyLocked removes a key's expired entries (no event: used where the
// caller tells).
func (t *presenceTable) sweepKeyLocked(cp *channelPresence, sessions map[presenceID]*presenceEntry, now int64) {
	for id, e := range sessions {
		if now >= e.rec.Expires {
			delete(sessions, id)
			cp.entries--
			t.total--
		}
	}
}

// sweepChannelLocked removes the channel's expired entries and, when
// channel is not empty, tells its sessions of the users gone with them.
func (t *presenceTable) sweepChannelLocked(channel string, cp *channelPresence, now int64) {
	for key, sessions := range cp.members {
		before := viewOf(sessions)
		n := len(sessions)
		t.sweepKeyLocked(cp, sessions, now)
		if len(sessions) == n {
			continue
		}
		if len(sessions) == 0 {
			delete(cp.members, key)
		}
		if channel != "" {
			t.tellLocked(cp, eventFrame(channel, key, before, viewOf(sessions)))
		}
	}
}

// tellLocked hands frame to the channel's sessions. It runs under t.mu,
// so that the events of one channel reach every session in the order the
// table changed; queueing never blocks (a full queue ends that session).
func (t *presenceTable) tellLocked(cp *channelPresence, frame []byte) {
	if frame == nil {
		return
	}
	for s := range cp.listeners {
		s.enqueueDelivery(frame)
	}
}

// delivered applies a record the mesh delivered, once per node whichever
// session it reached first.
func (t *presenceTable) delivered(p *presencePayload) {
	if p.applied.CompareAndSwap(false, true) {
		t.apply(&p.rec, p.wire, t.srv.cfg.Now())
	}
}

// listen adds s to channel's sessions and reports whether it is the first
// (the node starts carrying the channel).
func (t *presenceTable) listen(s *session, channel string) (first bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cp := t.channels[channel]
	if cp == nil {
		cp = &channelPresence{members: make(map[identity.PublicKey]map[presenceID]*presenceEntry), listeners: make(map[*session]struct{})}
		t.channels[channel] = cp
		first = true
	}
	cp.listeners[s] = struct{}{}
	return first
}

// unlisten removes s from channel's sessions; with the last one the node
// stops carrying the channel and forgets its table.
func (t *presenceTable) unlisten(s *session, channel string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cp := t.channels[channel]
	if cp == nil {
		return
	}
	delete(cp.listeners, s)
	if len(cp.listeners) == 0 {
		t.total -= cp.entries
		delete(t.channels, channel)
	}
}

// hold records what s published in channel, returning what it replaces.
func (t *presenceTable) hold(s *session, channel string, lp *localPresence) *localPresence {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.local[s]
	if m == nil {
		m = make(map[string]*localPresence, 1)
		t.local[s] = m
	}
	old := m[channel]
	m[channel] = lp
	return old
}

// release forgets and returns what s holds in channel.
func (t *presenceTable) release(s *session, channel string) *localPresence {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.local[s]
	lp := m[channel]
	delete(m, channel)
	if len(m) == 0 {
		delete(t.local, s)
	}
	return lp
}

// localHere returns the here records this node's sessions hold in
// channel, at most limit: what a sync request offers its peer.
func (t *presenceTable) localHere(channel string, limit int) [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out [][]byte
	for _, m := range t.local {
		if lp := m[channel]; lp != nil && len(out) < limit {
			out = append(out, lp.hereWire)
		}
	}
	return out
}

// members returns channel's listed users, sorted by username, then key.
func (t *presenceTable) members(channel string) []proto.Member {
	t.mu.Lock()
	defer t.mu.Unlock()
	cp := t.channels[channel]
	if cp == nil {
		return nil
	}
	out := make([]proto.Member, 0, len(cp.members))
	for key, sessions := range cp.members {
		if v := viewOf(sessions); v.present() {
			out = append(out, proto.Member{Key: key.String(), Username: v.username})
		}
	}
	slices.SortFunc(out, func(a, b proto.Member) int {
		return cmp.Or(cmp.Compare(a.Username, b.Username), cmp.Compare(a.Key, b.Key))
	})
	return out
}

// presentFor lists the channels of s where key is listed, for a whois.
func (t *presenceTable) presentFor(s *session, key identity.PublicKey) []proto.Present {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []proto.Present
	for ch, cp := range t.channels {
		if _, in := cp.listeners[s]; !in {
			continue
		}
		if v := viewOf(cp.members[key]); v.present() && len(out) < proto.MaxPresentPerWhois {
			out = append(out, proto.Present{Channel: ch, Username: v.username})
		}
	}
	slices.SortFunc(out, func(a, b proto.Present) int { return cmp.Compare(a.Channel, b.Channel) })
	return out
}

// sweep removes expired entries from every channel, telling sessions.
func (t *presenceTable) sweep(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for ch, cp := range t.channels {
		t.sweepChannelLocked(ch, cp, now.UnixMilli())
	}
}

// run sweeps the table and logs refusals until the server closes.
func (t *presenceTable) run() {
	defer t.srv.bgWG.Done()
	sweep := time.NewTicker(presenceSweepEvery)
	defer sweep.Stop()
	lastSummary := time.Now()
	for {
		select {
		case <-t.srv.bgCtx.Done():
			return
		case now := <-sweep.C:
			t.sweep(t.srv.cfg.Now())
			if now.Sub(lastSummary) >= presenceSummaryEvery {
				lastSummary = now
				t.logRefusals()
			}
		}
	}
}

func (t *presenceTable) logRefusals() {
	ch, node, key := t.refusedChannelFull.Swap(0), t.refusedNodeFull.Swap(0), t.refusedKeyFull.Swap(0)
	if ch+node+key == 0 {
		return
	}
	t.srv.log.Info("presence records refused: member tables full", "channel_full", ch, "node_full", node,
		"key_sessions_full", key, "per_channel", maxPresencePerChannel, "per_node", maxPresencePerNode, "per_key", maxPresenceSessionsPerKey)
}

// Sessions' side.

// checkPresence decodes and checks the records of a join or refresh:
// both of this session's key, for channel and username, one here and one
// gone with the same session, timestamp and expiry, dated within the
// timestamp window and not expired. The gone's signature is verified
// here, as the node publishes it only later; the here's is verified when
// it is published. Without records it returns nil, nil.
func (s *session) checkPresence(channel, username, here, gone string) (*localPresence, *clientError) {
	if here == "" && gone == "" {
		return nil, nil
	}
	bad := func(code, msg string) *clientError {
		return &clientError{code: code, msg: "presence: " + msg, channel: channel, protocol: code == codeBadJSON}
	}
	h, hw, err := proto.DecodePresence("presence", here)
	if err != nil {
		return nil, bad(codeBadJSON, err.Error())
	}
	g, gw, err := proto.DecodePresence("gone", gone)
	if err != nil {
		return nil, bad(codeBadJSON, err.Error())
	}
	switch {
	case h.Key != s.key || g.Key != s.key:
		return nil, bad(codeBadKey, "the records must be signed by your key "+s.key.String())
	case h.Channel != channel || g.Channel != channel:
		return nil, bad(codeBadChannel, "the records are for channel "+quote(h.Channel)+", not "+quote(channel))
	case h.Username != username || g.Username != username:
		return nil, bad(codeBadUsername, "the records name "+quote(h.Username)+", not "+quote(username)+", your username in "+channel)
	case h.State != identity.PresenceHere || g.State != identity.PresenceGone:
		return nil, bad(codeBadJSON, "presence must be a here record (state 1) and gone a gone record (state 2)")
	case h.Session != g.Session || h.Timestamp != g.Timestamp || h.Expires != g.Expires:
		return nil, bad(codeBadJSON, "the here and gone records must share session, timestamp and expiry")
	}
	now := s.srv.cfg.Now()
	if ok, gap := checkTimestamp(h.Timestamp, now, s.srv.cfg.TimestampWindow); !ok {
		return nil, bad(codeBadTimestamp, "timestamp is "+gap+" the node's clock (window ±"+s.srv.cfg.TimestampWindow.String()+"); check your clock")
	}
	if now.UnixMilli() >= h.Expires {
		return nil, bad(codeBadTimestamp, "the records have expired")
	}
	if err := g.Verify(); err != nil {
		return nil, bad(codeBadSignature, "the gone record's signature does not verify with your key")
	}
	return &localPresence{here: h, hereWire: hw, goneWire: gw}, nil
}

// announcePresence runs after a join's mesh part: the session now hears
// the channel's presence events and, with records (lp), its here is
// published and its gone held. A join whose here the mesh refuses fails
// (undone when it was new); a join without records withdraws the ones a
// previous join in the channel gave, if any (the user no longer wants to
// be listed).
func (s *session) announcePresence(channel string, lp *localPresence, isNew bool) *clientError {
	t := s.srv.presence
	if t.listen(s, channel) {
		s.srv.syncPresence(channel)
	}
	if lp == nil {
		if old := t.release(s, channel); old != nil {
			s.publishGone(channel, old)
		}
		return nil
	}
	if cerr := s.publishHere(channel, lp); cerr != nil {
		if isNew {
			t.unlisten(s, channel)
			s.srv.history.left(channel, s)
			s.srv.mesh.Leave(channel, s)
			s.srv.channels.leave(s.source(), channel)
		}
		return cerr
	}
	return nil
}

// publishHere publishes lp's here on the mesh (the validator verifies
// it), applies it to the table and holds lp. A previous login session's
// records held for the channel are withdrawn.
func (s *session) publishHere(channel string, lp *localPresence) *clientError {
	ctx, cancel := context.WithTimeout(s.srv.bgCtx, publishTimeout)
	err := s.srv.mesh.Publish(ctx, channel, lp.hereWire)
	cancel()
	if err != nil {
		ferr := func(code, msg string) *clientError {
			return &clientError{code: code, msg: "presence: " + msg, channel: channel}
		}
		switch {
		case errors.Is(err, p2p.ErrDuplicate):
			return ferr(codeDuplicate, "this record was already published")
		case errors.Is(err, identity.ErrBadSignature):
			return ferr(codeBadSignature, "the here record's signature does not verify with your key "+s.key.String())
		case errors.Is(err, errPresenceLimited), errors.Is(err, errAuthorLimited):
			return ferr(codeRateLimited, err.Error())
		case errors.Is(err, p2p.ErrIgnore):
			return ferr(codeBadTimestamp, err.Error())
		case errors.Is(err, identity.ErrMalformed):
			return ferr(codeBadJSON, err.Error())
		}
		s.srv.log.Warn("presence publish failed", "channel", channel, "err", err)
		return ferr(codeInternal, "could not publish: "+err.Error())
	}
	t := s.srv.presence
	t.apply(&lp.here, lp.hereWire, s.srv.cfg.Now())
	if old := t.hold(s, channel, lp); old != nil && old.here.Session != lp.here.Session {
		s.publishGone(channel, old)
	}
	return nil
}

// publishGone publishes a held gone record and applies it. A failure is
// logged at debug level: the here it ends expires on its own.
func (s *session) publishGone(channel string, lp *localPresence) {
	ctx, cancel := context.WithTimeout(s.srv.bgCtx, presenceGoneTimeout)
	err := s.srv.mesh.Publish(ctx, channel, lp.goneWire)
	cancel()
	if err != nil {
		s.srv.log.Debug("presence gone not published", "channel", channel, "err", err)
	}
	var g identity.Presence
	if g.UnmarshalBinary(lp.goneWire) == nil {
		s.srv.presence.apply(&g, lp.goneWire, s.srv.cfg.Now())
	}
}

// leavePresence runs before the session leaves channel on the mesh (a
// leave, or the session's end): its gone is published while the node
// still carries the channel, and it no longer hears the channel's events.
func (s *session) leavePresence(channel string) {
	t := s.srv.presence
	if lp := t.release(s, channel); lp != nil {
		s.publishGone(channel, lp)
	}
	t.unlisten(s, channel)
}

// refreshPresence handles a presence request: new records for a channel
// the session is in.
func (s *session) refreshPresence(req request) *clientError {
	username, joined := s.channels[req.Channel]
	if !joined {
		return &clientError{code: codeNotJoined, msg: "presence: not in channel " + quote(req.Channel), channel: req.Channel}
	}
	if req.Presence == "" || req.Gone == "" {
		return &clientError{code: codeBadJSON, msg: "presence: both presence and gone are required", channel: req.Channel, protocol: true}
	}
	lp, cerr := s.checkPresence(req.Channel, username, req.Presence, req.Gone)
	if cerr != nil {
		return cerr
	}
	return s.publishHere(req.Channel, lp)
}

// names answers a names request: the channel's listed users, in objects of
// at most proto.MaxNamesPerObject, all but the last marked more.
func (s *session) names(req request) *clientError {
	if err := identity.ValidateChannelName(req.Channel); err != nil {
		return &clientError{code: codeBadChannel, msg: err.Error(), channel: req.Channel}
	}
	if _, joined := s.channels[req.Channel]; !joined {
		return &clientError{code: codeNotJoined, msg: "names: not in channel " + quote(req.Channel), channel: req.Channel}
	}
	all := s.srv.presence.members(req.Channel)
	if all == nil {
		all = []proto.Member{} // "members":[], never null
	}
	for {
		n := min(len(all), proto.MaxNamesPerObject)
		more := n < len(all)
		if !s.enqueue(mustJSON(&proto.Names{Channel: req.Channel, Members: all[:n:n], More: more})) || !more {
			return nil
		}
		all = all[n:]
	}
}
