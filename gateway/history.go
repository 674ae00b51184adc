package gateway

import (
	"cmp"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"darkchat/identity"
	"darkchat/p2p"
	"darkchat/proto"
)

// Channel history from participants (PROTOCOL.md §2.8). Nodes keep no
// messages: a session's history request goes out on the channel's topic,
// one member session on each node with members is asked for what its
// client keeps, and the answers travel back on the topic, where every node
// verifies each message as it verifies any channel message. This node
// keeps only what is in flight: the requests it has seen (IDs and what was
// already answered, for historyTTL), and the answers its own sessions are
// waiting for (at most historyMaxWait).
//
// Requests and answers travel on the one history topic (p2p's
// JoinHistory), not on the channels' topics, which nodes of the previous
// version share and where they would reject them. Wire forms:
//
//	request (kind 2): 0x02 || id (16) || len (1) || channel || limit (2) ||
//	                  since (8, Unix ms) || before (8, Unix ms; 0: none) ||
//	                  count (2) || count × message ID (16)
//	                  (the IDs the requester has)
//	answer (kind 3):  0x03 || id (16) || len (1) || channel || count (2) ||
//	                  count × (length (4) || channel message wire form)
//
// Integers are big-endian; limit is 1..MaxHistoryLimit, count of IDs at
// most MaxHistoryHave, an answer at most historyAnswerBytes.
const (
	wireHistoryRequest byte = 2
	wireHistoryAnswer  byte = 3

	// historyTTL is how long a node remembers a request it has seen: an
	// answer to a request it does not know is ignored, and what was
	// already answered for it is not forwarded again.
	historyTTL = 30 * time.Second
	// maxTrackedHistory bounds the requests a node remembers; the oldest
	// goes first.
	maxTrackedHistory = 1024
	// Requests a forwarding peer may bring, all its requesters together,
	// and all peers together: a request costs every node with members in
	// the channel a session's answer, and every node the verification of
	// up to its limit of answered messages, so rotating peer IDs must not
	// multiply them.
	peerHistoryBurst = 16
	peerHistoryRate  = 4
	nodeHistoryBurst = 64
	nodeHistoryRate  = 16
	// A session's own requests (PROTOCOL.md: once every 2 s, 4 at once).
	sessionHistoryBurst = 4
	sessionHistoryRate  = 0.5
	// historyAskDelay bounds the random delay before a member session is
	// asked (backoff, exponentially more likely towards the end), so
	// that the members of many nodes do not all answer at once: what
	// earlier answers brought through a node is not sent again from it
	// (historyAssignment.elsewhere).
	historyAskDelay       = 600 * time.Millisecond
	historyAskDelayLambda = 6.0
	// historyAnswerWindow: a member's answers are collected this long
	// after its first one, then sent on the mesh; historyAssignTTL is how
	// long a member may take to answer at all.
	historyAnswerWindow = 200 * time.Millisecond
	historyAssignTTL    = 3 * time.Second
	// The requester's node collects answers for historyCollect after the
	// request, longer while they still come (historyQuiet), and never
	// beyond historyMaxWait (PROTOCOL.md: history_end within 5 s).
	historyCollect = 1500 * time.Millisecond
	historyQuiet   = 500 * time.Millisecond
	historyMaxWait = 4500 * time.Millisecond
	// historyAnswerBytes bounds one answer on the mesh (under the mesh's
	// default message limit, 64 KiB); a member's answers take as many as
	// they need.
	historyAnswerBytes = 48 << 10
	// maxElsewhere bounds historyAssignment.elsewhere.
	maxElsewhere = 2 * proto.MaxHistoryLimit
	// maxMemberPages bounds the pages a member session is asked for to
	// answer one request: its client keeps 1,000 messages a channel.
	maxMemberPages = 5
	// maxAssignedHistory bounds the requests this node's sessions are
	// answering at once.
	maxAssignedHistory = 256
)

type messageID = [identity.MessageIDSize]byte

// historyRequestWire is a request as it travels on the mesh.
type historyRequestWire struct {
	id      messageID
	channel string
	limit   int
	since   int64
	before  int64 // 0: none
	have    []messageID
	filter  *haveFilter // nil: none (a session's request)
}

// boundsValid reports whether before is none (0) or after since.
func (r *historyRequestWire) boundsValid() bool {
	return r.before == 0 || r.before > 0 && r.before > r.since
}

func (r *historyRequestWire) marshal() []byte {
	b := make([]byte, 0, 1+16+1+len(r.channel)+2+8+8+2+16*len(r.have))
	b = append(b, wireHistoryRequest)
	b = append(b, r.id[:]...)
	b = append(b, byte(len(r.channel)))
	b = append(b, r.channel...)
	b = binary.BigEndian.AppendUint16(b, uint16(r.limit))
	b = binary.BigEndian.AppendUint64(b, uint64(r.since))
	b = binary.BigEndian.AppendUint64(b, uint64(r.before))
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.have)))
	for _, id := range r.have {
		b = append(b, id[:]...)
	}
	return r.filter.appendWire(b)
}

var errHistoryWire = fmt.Errorf("%w: history", identity.ErrMalformed)

// historyChannel reads the channel name that follows a history message's
// kind and ID, and returns it with the rest.
func historyChannel(b []byte) (string, []byte, error) {
	if len(b) < 1+16+1 {
		return "", nil, fmt.Errorf("%w: %d bytes", errHistoryWire, len(b))
	}
	l := int(b[17])
	if len(b) < 18+l {
		return "", nil, fmt.Errorf("%w: channel of %d bytes in %d", errHistoryWire, l, len(b))
	}
	ch := string(b[18 : 18+l])
	if err := identity.ValidateChannelName(ch); err != nil {
		return "", nil, fmt.Errorf("%w: %w", errHistoryWire, err)
	}
	return ch, b[18+l:], nil
}

func unmarshalHistoryRequest(b []byte) (*historyRequestWire, error) {
	if len(b) == 0 || b[0] != wireHistoryRequest {
		return nil, fmt.Errorf("%w request: not one", errHistoryWire)
	}
	ch, rest, err := historyChannel(b)
	if err != nil {
		return nil, err
	}
	r := &historyRequestWire{channel: ch}
	copy(r.id[:], b[1:17])
	const fixed = 2 + 8 + 8 + 2
	if len(rest) < fixed {
		return nil, fmt.Errorf("%w request: %d bytes", errHistoryWire, len(b))
	}
	r.limit = int(binary.BigEndian.Uint16(rest[0:2]))
	r.since = int64(binary.BigEndian.Uint64(rest[2:10]))
	r.before = int64(binary.BigEndian.Uint64(rest[10:18]))
	n := int(binary.BigEndian.Uint16(rest[18:20]))
	if r.limit < 1 || r.limit > proto.MaxHistoryLimit || n > proto.MaxHistoryHave || len(rest) < fixed+16*n {
		return nil, fmt.Errorf("%w request: limit %d, %d IDs in %d bytes", errHistoryWire, r.limit, n, len(b))
	}
	if !r.boundsValid() {
		return nil, fmt.Errorf("%w request: before %d not after since %d", errHistoryWire, r.before, r.since)
	}
	r.have = make([]messageID, n)
	for i := range r.have {
		copy(r.have[i][:], rest[fixed+16*i:])
	}
	if r.filter, err = parseHaveFilter(rest[fixed+16*n:], r.id); err != nil {
		return nil, err
	}
	return r, nil
}

// marshalHistoryAnswers packs wires (channel message wire forms) into
// answers to id of at most historyAnswerBytes each.
func marshalHistoryAnswers(id messageID, channel string, wires [][]byte) [][]byte {
	var out [][]byte
	var cur []byte
	count := 0
	countAt := 1 + 16 + 1 + len(channel)
	flush := func() {
		if count > 0 {
			binary.BigEndian.PutUint16(cur[countAt:countAt+2], uint16(count))
			out = append(out, cur)
		}
		cur, count = nil, 0
	}
	for _, w := range wires {
		if cur != nil && len(cur)+4+len(w) > historyAnswerBytes {
			flush()
		}
		if cur == nil {
			cur = append([]byte{wireHistoryAnswer}, id[:]...)
			cur = append(cur, byte(len(channel)))
			cur = append(cur, channel...)
			cur = append(cur, 0, 0)
		}
		cur = binary.BigEndian.AppendUint32(cur, uint32(len(w)))
		cur = append(cur, w...)
		count++
	}
	flush()
	return out
}

func unmarshalHistoryAnswer(b []byte) (messageID, string, [][]byte, error) {
	var id messageID
	if len(b) == 0 || b[0] != wireHistoryAnswer {
		return id, "", nil, fmt.Errorf("%w answer: not one", errHistoryWire)
	}
	ch, rest, err := historyChannel(b)
	if err != nil {
		return id, "", nil, err
	}
	copy(id[:], b[1:17])
	if len(rest) < 2 {
		return id, "", nil, fmt.Errorf("%w answer: %d bytes", errHistoryWire, len(b))
	}
	n := int(binary.BigEndian.Uint16(rest))
	if n < 1 || n > proto.MaxHistoryLimit {
		return id, "", nil, fmt.Errorf("%w answer: %d messages", errHistoryWire, n)
	}
	wires := make([][]byte, 0, n)
	rest = rest[2:]
	for range n {
		if len(rest) < 4 {
			return id, "", nil, fmt.Errorf("%w answer: truncated", errHistoryWire)
		}
		l := int(binary.BigEndian.Uint32(rest))
		if l > len(rest)-4 {
			return id, "", nil, fmt.Errorf("%w answer: message of %d bytes in %d", errHistoryWire, l, len(rest)-4)
		}
		wires = append(wires, rest[4:4+l])
		rest = rest[4+l:]
	}
	if len(rest) != 0 {
		return id, "", nil, fmt.Errorf("%w answer: %d trailing bytes", errHistoryWire, len(rest))
	}
	return id, ch, wires, nil
}

// historyTracker is the validator's memory of history requests: which it
// has seen on which channel, and which messages were answered for each, so
// that an answer repeating them is not forwarded (another member's answer
// suppresses it) and no request gets more than its limit.
type historyTracker struct {
	mu    sync.Mutex
	reqs  map[messageID]*trackedHistory
	order []messageID // oldest first, for eviction
	peers map[peer.ID]*tokenBucket
	node  tokenBucket // requests from all peers
	// bans, if set, drops answers that carry a banned author's message
	// (BanList.refuseAnswer).
	bans *BanList
	// rules, if set, ignores answers carrying a message of an author
	// banned in its owned channel (rules.go); members' nodes leave such
	// messages out of their answers (rulesHidden).
	rules *RulesTable
}

type trackedHistory struct {
	channel  string
	limit    int
	since    int64
	before   int64
	seen     time.Time
	have     map[messageID]struct{}
	filter   *haveFilter
	answered map[messageID]struct{}
}

func newHistoryTracker() *historyTracker {
	return &historyTracker{reqs: make(map[messageID]*trackedHistory), peers: make(map[peer.ID]*tokenBucket),
		node: newTokenBucket(nodeHistoryRate, nodeHistoryBurst, time.Now())}
}

// historyRequestPayload is a validated request, handed to the gateway
// (Server.DeliverMessage), which asks one member session of the channel.
type historyRequestPayload struct {
	wire    *historyRequestWire
	channel string
}

// historyAnswerPayload carries the messages of an answer that were new
// for the request.
type historyAnswerPayload struct {
	id      messageID
	channel string
	msgs    []identity.ChannelMessage
	size    int // of the answer on the mesh
}

// request validates a history request from the mesh (from empty: this
// node's own session).
func (t *historyTracker) request(from peer.ID, data []byte, now time.Time) (any, error) {
	r, err := unmarshalHistoryRequest(data)
	if err != nil {
		return nil, err
	}
	channel := r.channel
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expireLocked(now)
	if from != "" {
		b := t.peers[from]
		if b == nil {
			if len(t.peers) >= maxTrackedPeers {
				clear(t.peers) // buckets refill in seconds; forgetting them all is safe
			}
			nb := newTokenBucket(peerHistoryRate, peerHistoryBurst, now)
			b = &nb
			t.peers[from] = b
		}
		if !b.take(now) {
			return nil, fmt.Errorf("history requests from this peer faster than %d a second: %w", peerHistoryRate, p2p.ErrIgnore)
		}
		if !t.node.take(now) {
			return nil, fmt.Errorf("history requests from all peers faster than %d a second: %w", nodeHistoryRate, p2p.ErrIgnore)
		}
	}
	if _, ok := t.reqs[r.id]; ok {
		return nil, fmt.Errorf("history request already seen: %w", p2p.ErrIgnore)
	}
	if len(t.order) >= maxTrackedHistory {
		delete(t.reqs, t.order[0])
		t.order = t.order[1:]
	}
	tr := &trackedHistory{channel: channel, limit: r.limit, since: r.since, before: r.before, seen: now,
		have: make(map[messageID]struct{}, len(r.have)), filter: r.filter, answered: make(map[messageID]struct{})}
	for _, id := range r.have {
		tr.have[id] = struct{}{}
	}
	t.reqs[r.id] = tr
	t.order = append(t.order, r.id)
	return &historyRequestPayload{wire: r, channel: channel}, nil
}

func (t *historyTracker) expireLocked(now time.Time) {
	for len(t.order) > 0 {
		tr := t.reqs[t.order[0]]
		if tr != nil && now.Sub(tr.seen) < historyTTL {
			return
		}
		delete(t.reqs, t.order[0])
		t.order = t.order[1:]
	}
}

// answerCapFactor bounds the messages a node accepts in answers to one
// request, at this many times its limit. Each answering node sends at most
// limit, but answerers disagree at the edges of a page (one skips a
// message delivered to it after the request came, which another sends),
// so their answers together hold a few more than limit. A node that
// stopped at limit dropped, depending on which answer reached it first,
// the oldest messages of the page, which the requester got by another
// path: the requester's next page starts below them, so the nodes that
// relied on overhearing its repair never got them.
const answerCapFactor = 2

// answer validates an answer: for a request this node has seen on this
// channel, each message well formed, of the channel, not dated in the
// future beyond window, and signed by its author. Messages the requester
// has, or that were already answered, are skipped; if none is left the
// answer is ignored, so it goes no further.
func (t *historyTracker) answer(data []byte, now time.Time, window time.Duration) (any, error) {
	id, channel, wires, err := unmarshalHistoryAnswer(data)
	if err != nil {
		return nil, err
	}
	t.mu.Lock()
	tr := t.reqs[id]
	if tr == nil || tr.channel != channel || now.Sub(tr.seen) >= historyTTL {
		t.mu.Unlock()
		return nil, fmt.Errorf("answer to a history request this node has not seen: %w", p2p.ErrIgnore)
	}
	// Decode and pick under the lock (cheap); verify outside it.
	var fresh []identity.ChannelMessage
	for _, w := range wires {
		var m identity.ChannelMessage
		if err := m.UnmarshalBinary(w); err != nil {
			t.mu.Unlock()
			return nil, err
		}
		if m.Channel != channel {
			t.mu.Unlock()
			return nil, fmt.Errorf("history answer carries a message of channel %q on %q", m.Channel, channel)
		}
		if err := t.bans.refuseAnswer(m.Author); err != nil {
			t.mu.Unlock()
			return nil, err
		}
		if err := t.rules.refuseAnswer(channel, m.Author); err != nil {
			t.mu.Unlock()
			return nil, err
		}
		if m.Timestamp > now.Add(window).UnixMilli() {
			t.mu.Unlock()
			return nil, fmt.Errorf("history answer carries a message dated %v ahead", time.Duration(m.Timestamp-now.UnixMilli())*time.Millisecond)
		}
		_, had := tr.have[m.ID]
		had = had || tr.filter != nil && tr.filter.has(m.ID)
		_, done := tr.answered[m.ID]
		if had || done || m.Timestamp < tr.since || tr.before != 0 && m.Timestamp >= tr.before || slices.ContainsFunc(fresh, func(f identity.ChannelMessage) bool { return f.ID == m.ID }) {
			continue
		}
		fresh = append(fresh, m)
	}
	t.mu.Unlock()
	// A repair answer holds up to a page of 200: verified as one batch.
	if err := identity.VerifyChannelMessages(fresh); err != nil {
		return nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := fresh[:0]
	for _, m := range fresh {
		if _, done := tr.answered[m.ID]; done || len(tr.answered) >= answerCapFactor*tr.limit {
			continue
		}
		tr.answered[m.ID] = struct{}{}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("history answer holds nothing new: %w", p2p.ErrIgnore)
	}
	return &historyAnswerPayload{id: id, channel: channel, msgs: out, size: len(data)}, nil
}

// historyAgent is the gateway's side of history: the requests of its own
// sessions waiting for answers, and the requests its sessions were asked
// to answer.
type historyAgent struct {
	mu       sync.Mutex
	pending  map[messageID]*historyCollector
	assigned map[messageID]*historyAssignment
	recent   map[string]*recentDelivered   // by channel
	members  map[string]map[*session]int64 // channel → member sessions → when each joined, Unix ns
	// memberSince is when each channel got its first member of the
	// present ones (Unix ms): older messages were never this node's to
	// deliver, so answers overheard for other nodes' requests bring
	// none of them (onHistoryAnswer).
	memberSince map[string]int64
}

// historyCollector gathers the answers to one session's request, or to
// the node's own repair request (s nil: for every member session).
type historyCollector struct {
	s       *session
	channel string
	// before is the page a node's repair request asked for (0: the
	// newest), so that an unanswered page is asked for again as itself.
	before int64
	start  time.Time
	last   time.Time // of the last answer
	msgs   map[messageID]collected
	timer  *time.Timer
	// What the request cost this node, for the repair's log line: its
	// own size, and the answers and their bytes that reached it.
	requestBytes, answers, answerBytes int
}

// collected is an answered message and when it came: members answer
// newest first, so among messages of the same millisecond a later arrival
// is an older message.
type collected struct {
	msg identity.ChannelMessage
	seq int
}

// historyAssignment is a request this node's session s was asked to answer.
type historyAssignment struct {
	s       *session
	channel string
	req     *historyRequestWire
	have    map[messageID]struct{} // req.have
	limit   int
	wires   [][]byte // answers not yet sent on the mesh
	expires time.Time
	timer   *time.Timer
	// The member answers newest first, at most limit messages per page
	// it is asked for; those the requester has are not sent, and while
	// they crowd a full page out, the member is asked for the page
	// before it (sendAnswers), up to maxMemberPages.
	fresh     int // messages the requester lacks, all pages
	pageFresh int // of them, on the current page
	// received is when the request reached this node, Unix ns: what
	// the node delivered since then, the requester gets as this node
	// did (live, or in answers, which reach every node), and is not
	// sent.
	received int64
	// elsewhere holds what other members' answers to the request
	// brought through this node (onHistoryAnswer), at most
	// maxElsewhere: not sent again from here. wireIDs are wires' IDs.
	elsewhere      map[messageID]struct{}
	wireIDs        []messageID
	pages          int   // pages asked for
	count          int   // messages of the current page
	oldest, before int64 // the current page's oldest message; its bound
}

func newHistoryAgent() *historyAgent {
	return &historyAgent{pending: make(map[messageID]*historyCollector), assigned: make(map[messageID]*historyAssignment),
		recent: make(map[string]*recentDelivered), members: make(map[string]map[*session]int64),
		memberSince: make(map[string]int64)}
}

// history handles a session's history request.
func (s *session) history(req request) *clientError {
	ferr := func(code, msg string) *clientError {
		return &clientError{code: code, msg: msg, id: req.ID, channel: req.Channel}
	}
	if _, joined := s.channels[req.Channel]; !joined {
		return ferr(codeNotJoined, "join "+quote(req.Channel)+" first")
	}
	w := &historyRequestWire{channel: req.Channel, limit: int(req.Limit), since: req.Since, before: req.Before}
	if cerr := decodeHexInto(w.id[:], "id", req.ID); cerr != nil {
		cerr.id, cerr.channel = req.ID, req.Channel
		return cerr
	}
	if w.limit == 0 {
		w.limit = proto.DefaultHistoryLimit
	}
	if w.limit < 1 || w.limit > proto.MaxHistoryLimit {
		return ferr(codeBadJSON, fmt.Sprintf("limit must be 1 to %d, got %d", proto.MaxHistoryLimit, req.Limit))
	}
	if !w.boundsValid() {
		return ferr(codeBadJSON, fmt.Sprintf("before (%d) must be after since (%d)", req.Before, req.Since))
	}
	if len(req.Have) > proto.MaxHistoryHave {
		return ferr(codeBadJSON, fmt.Sprintf("have lists %d IDs, at most %d", len(req.Have), proto.MaxHistoryHave))
	}
	w.have = make([]messageID, len(req.Have))
	for i, h := range req.Have {
		if cerr := decodeHexInto(w.have[i][:], "have", h); cerr != nil {
			cerr.id, cerr.channel = req.ID, req.Channel
			return cerr
		}
	}
	now := s.srv.cfg.Now()
	if !s.historyBucket.take(now) {
		return ferr(codeRateLimited, fmt.Sprintf("history requests: one every %v, %d at once", time.Duration(float64(time.Second)/sessionHistoryRate), sessionHistoryBurst))
	}
	a := s.srv.history
	a.mu.Lock()
	if _, dup := a.pending[w.id]; dup {
		a.mu.Unlock()
		return ferr(codeDuplicate, "history request "+req.ID+" is already under way")
	}
	w.filter = a.deliveredToLocked(req.Channel, s, w.id)
	c := &historyCollector{s: s, channel: req.Channel, start: time.Now(), msgs: make(map[messageID]collected)}
	for _, id := range w.have {
		c.msgs[id] = collected{} // had: never sent back
	}
	a.pending[w.id] = c
	c.timer = time.AfterFunc(historyCollect, func() { s.srv.finishHistory(w.id, c) })
	a.mu.Unlock()

	s.srv.log.Debug("history request from a session", "channel", req.Channel, "request", fmt.Sprintf("%x", w.id[:4]), "limit", w.limit, "have", len(w.have))
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	err := s.srv.publishHistory(ctx, w.marshal())
	cancel()
	if err != nil {
		a.mu.Lock()
		if a.pending[w.id] == c {
			delete(a.pending, w.id)
			c.timer.Stop()
		}
		a.mu.Unlock()
		if errors.Is(err, p2p.ErrIgnore) || errors.Is(err, p2p.ErrDuplicate) {
			return ferr(codeDuplicate, "history request "+req.ID+" was already made")
		}
		s.srv.log.Warn("history request not sent", "channel", req.Channel, "err", err)
		return ferr(codeInternal, "could not send the history request: "+err.Error())
	}
	return nil
}

// finishHistory sends the collected answers to the requesting session,
// oldest first, and history_end; while answers still come it waits
// longer, up to historyMaxWait.
func (srv *Server) finishHistory(id messageID, c *historyCollector) {
	a := srv.history
	a.mu.Lock()
	if a.pending[id] != c {
		a.mu.Unlock()
		return
	}
	now := time.Now()
	if since := now.Sub(c.last); !c.last.IsZero() && since < historyQuiet && now.Sub(c.start) < historyMaxWait {
		c.timer.Reset(min(historyQuiet-since, historyMaxWait-now.Sub(c.start)))
		a.mu.Unlock()
		return
	}
	delete(a.pending, id)
	var found []collected
	var answered int
	var oldest int64 // of the messages answered
	recent := a.recentLocked(c.channel)
	for _, m := range c.msgs {
		if m.msg.Channel == "" { // one the requester had
			continue
		}
		answered++
		if oldest == 0 || m.msg.Timestamp < oldest {
			oldest = m.msg.Timestamp
		}
		if c.s == nil {
			// Repair: what this node delivered already is not news to
			// its members.
			if _, had := recent.set[m.msg.ID]; had {
				continue
			}
			recent.add(m.msg.ID)
		}
		found = append(found, m)
	}
	members := slices.Collect(maps.Keys(a.members[c.channel]))
	a.mu.Unlock()
	slices.SortFunc(found, func(x, y collected) int {
		return cmp.Or(cmp.Compare(x.msg.Timestamp, y.msg.Timestamp), cmp.Compare(y.seq, x.seq))
	})
	hexID := string(proto.AppendHex(nil, id[:]))
	if c.s == nil {
		// At most one line per channel every syncMinInterval.
		srv.log.Info("repaired channel from its members", "channel", c.channel, "delivered_late", len(found), "to_sessions", len(members),
			"request_bytes", c.requestBytes, "answers", c.answers, "answer_bytes", c.answerBytes, "answered_messages", answered)
		switch {
		case c.answers == 0:
			srv.hint(repairHint{channel: c.channel, kind: hintUnanswered, before: c.before})
		case answered >= repairPageFull:
			// A member answers with at most MaxHistoryLimit messages,
			// newest first, and those the request lists as had count
			// too: older ones may be missing. The next page asks for
			// those before the oldest that came (whether this node
			// had them: other nodes' answers may have brought them),
			// until a page comes back far from full.
			srv.hint(repairHint{channel: c.channel, kind: hintMore, before: oldest})
		}
		for i := range found {
			m := proto.NewMessage(&found[i].msg)
			m.Late = true
			frame := mustJSON(m)
			for _, s := range members {
				s.enqueueDelivery(frame)
			}
		}
		return
	}
	for i := range found {
		m := proto.NewMessage(&found[i].msg)
		m.Late, m.History = true, hexID
		if !c.s.enqueue(mustJSON(m)) {
			return
		}
	}
	c.s.enqueue(mustJSON(&proto.HistoryEnd{Channel: c.channel, ID: hexID, Count: int64(len(found))}))
}

// HistoryMesh is the part of the mesh that carries history; a Mesh that
// has it serves history requests and repairs channels.
type HistoryMesh interface {
	JoinHistory(p2p.Member) error
	LeaveHistory(p2p.Member)
	PublishHistory(ctx context.Context, data []byte) error
}

var errNoHistory = errors.New("this node's mesh carries no history")

// publishHistory sends a history request or answer on the mesh.
func (srv *Server) publishHistory(ctx context.Context, data []byte) error {
	if srv.historyMesh == nil {
		return errNoHistory
	}
	return srv.historyMesh.PublishHistory(ctx, data)
}

// DeliverMessage implements p2p.Member for the history topic: the server
// is its one member on this node.
func (srv *Server) DeliverMessage(m *p2p.Message) {
	switch p := m.Payload.(type) {
	case *historyRequestPayload:
		srv.onHistoryRequest(p)
	case *historyAnswerPayload:
		srv.onHistoryAnswer(p)
	}
}

// joined and left keep the history agent's list of a channel's member
// sessions.
func (a *historyAgent) joined(channel string, s *session) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.members[channel]
	if m == nil {
		m = make(map[*session]int64)
		a.members[channel] = m
		a.memberSince[channel] = time.Now().UnixMilli()
	}
	m[s] = time.Now().UnixNano()
}

func (a *historyAgent) left(channel string, s *session) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if m := a.members[channel]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(a.members, channel)
			delete(a.memberSince, channel)
		}
	}
}

// onHistoryRequest schedules asking one of the channel's member sessions
// (never the requester, and none for this node's own repair request),
// after a random back-off, and tells the repair watcher what the request
// shows of this node.
func (srv *Server) onHistoryRequest(p *historyRequestPayload) {
	a := srv.history
	a.mu.Lock()
	c := a.pending[p.wire.id]
	own := c != nil && c.s == nil
	a.mu.Unlock()
	if own {
		return // what this node's members hold, it delivered
	}
	// Another node's request: if its requester has a message this node
	// lacks, this node repairs too; if not and it is a repair, what it
	// lacks is what this node lacks, and the answers, which every node
	// hears, repair this node's members as well: a repair of its own
	// would only repeat it (watchMeshPeers).
	switch {
	case srv.behind(p):
		srv.hint(repairHint{channel: p.channel, kind: hintBehind})
	case isRepairRequest(p.wire, time.Now()):
		if pending, covers := srv.knowsAllWeDo(p); covers {
			srv.hint(repairHint{channel: p.channel, kind: hintCovered, pending: pending})
		}
	}
	if srv.history.prepareAnswer(p) {
		time.AfterFunc(backoff(historyAskDelay, historyAskDelayLambda), func() { srv.askMember(p) })
	}
}

// repairHint is what another node's request tells watchMeshPeers: this
// node is behind in channel, or (not behind) a repair of channel is under
// way that covers this node's own.
type repairHint struct {
	channel string
	kind    hintKind
	before  int64 // hintMore: the page's bound (historyRequestWire.before); hintUnanswered: the unanswered page's (0: the newest)
	// pending (hintCovered): the newest IDs the other node listed that
	// this node had not delivered (still on their way here, or lost on
	// the way): the cover holds only if they come within coverInFlight.
	pending []messageID
}

type hintKind uint8

const (
	// hintBehind: another node's request shows this node behind.
	hintBehind hintKind = iota
	// hintCovered: another node's repair request covers this node's.
	hintCovered
	// hintUnanswered: this node's repair request got no answer at all
	// (it may have left on a connection about to be found dead).
	hintUnanswered
	// hintMore: this node's repair request came back full
	// (repairPageFull); there may be older ones (a page before).
	hintMore
)

// hint sends h to watchMeshPeers. What other nodes' requests show
// (hintBehind, hintCovered) is sent without waiting: in a burst, the
// hints queued cover it. What this node's own repair needs next
// (hintMore, hintUnanswered: one per repair request) waits for room:
// dropped, the repair would stop a page short, with nothing to ask again.
func (srv *Server) hint(h repairHint) {
	if srv.repairHints == nil {
		return
	}
	if h.kind == hintMore || h.kind == hintUnanswered {
		select {
		case srv.repairHints <- h:
		case <-srv.bgCtx.Done():
		}
		return
	}
	select {
	case srv.repairHints <- h:
	default:
	}
}

// knowsAllWeDo reports whether another node's repair request's filter
// holds every message this node delivered in the channel up to
// coverInFlight ago (later ones may still be on their way there): then what its requester lacks includes what this node lacks,
// and its answers repair this node too. A node on the other side of a
// healed split fails it (its requester lacks this side's messages), as
// does one that has repaired part of the way: this node then repairs for
// itself.
//
// It also returns the IDs among the requester's newest (have) that this
// node has not delivered: behind ignores the newest few as possibly still
// on their way here, but if they never come (lost while the two nodes had
// no path), the requester, which has them, asks for nothing that brings
// them, and this node must repair for itself (watchMeshPeers).
func (srv *Server) knowsAllWeDo(p *historyRequestPayload) (pending []messageID, covers bool) {
	f := p.wire.filter
	if f == nil {
		return nil, false
	}
	a := srv.history
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.recent[p.channel]
	if r == nil {
		return nil, true
	}
	// The requester having more than this node means it is ahead, not
	// level: its repair does not ask for what this node lacks and it has
	// (a node paused for a while lacks what its peers' repairs never ask
	// for, and their newest IDs, which behind compares, it may have got
	// again already).
	if f.estimatedCount() > float64(r.n)*(1+coverCountSlack)+coverCountMargin {
		return nil, false
	}
	covered := true
	r.deliveredBefore(time.Now().Add(-coverInFlight), func(id messageID) bool {
		covered = f.has(id)
		return covered
	})
	if !covered {
		return nil, false
	}
	for _, id := range p.wire.have {
		if _, ok := r.set[id]; !ok {
			pending = append(pending, id)
		}
	}
	return pending, true
}

// deliveredAll reports whether every one of ids has been delivered to
// channel's members here.
func (srv *Server) deliveredAll(channel string, ids []messageID) bool {
	if len(ids) == 0 {
		return true
	}
	a := srv.history
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.recent[channel]
	if r == nil {
		return false
	}
	for _, id := range ids {
		if _, ok := r.set[id]; !ok {
			return false
		}
	}
	return true
}

// isRepairRequest reports whether w asks for as much as a node's repair
// request does (syncChannel): the largest limit, from syncSince ago or
// earlier.
func isRepairRequest(w *historyRequestWire, now time.Time) bool {
	return w.limit >= proto.MaxHistoryLimit && w.before == 0 && w.since <= now.Add(-syncSince+syncCover).UnixMilli()
}

// behind reports whether a request from elsewhere lists, among the
// messages its requester has, one this node has not delivered to the
// channel's members here: the two sides were apart (a partition heals and
// only the other side noticed), and this node's members may lack what
// was said over there.
func (srv *Server) behind(p *historyRequestPayload) bool {
	// A repair request lists its node's newest IDs oldest first; the
	// newest few may still be on their way here.
	have := p.wire.have[:max(0, len(p.wire.have)-behindInFlight)]
	if len(have) == 0 || !isRepairRequest(p.wire, time.Now()) {
		return false
	}
	a := srv.history
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.members[p.channel]) == 0 {
		return false
	}
	r := a.recent[p.channel]
	if r == nil {
		return true
	}
	for _, id := range have {
		if _, ok := r.set[id]; !ok {
			return true
		}
	}
	return false
}

// askMember sends the request to one of the channel's member sessions,
// picked at random.
func (srv *Server) askMember(p *historyRequestPayload) {
	a := srv.history
	a.mu.Lock()
	as := a.assigned[p.wire.id]
	if as == nil || as.s != nil || len(as.elsewhere) >= as.limit {
		a.mu.Unlock()
		return // not prepared, already asked, or already answered in full by others
	}
	var requester *session
	if c := a.pending[p.wire.id]; c != nil {
		requester = c.s
	}
	var candidates []*session
	for s := range a.members[p.channel] {
		if s != requester {
			candidates = append(candidates, s)
		}
	}
	if len(candidates) == 0 {
		delete(a.assigned, p.wire.id)
		a.mu.Unlock()
		return
	}
	s := candidates[rand.N(len(candidates))]
	as.s = s
	as.expires = time.Now().Add(historyAssignTTL)
	a.mu.Unlock()
	s.enqueue(mustJSON(&proto.HistoryRequest{Channel: p.channel, ID: string(proto.AppendHex(nil, p.wire.id[:])),
		Limit: int64(p.wire.limit), Since: p.wire.since, Before: p.wire.before}))
}

// prepareAnswer makes ready for one of channel's member sessions to answer
// p once askMember picks it; meanwhile other members' answers that pass
// through this node are noted, so that they are not sent again from here.
// It reports whether there is a member to ask.
func (a *historyAgent) prepareAnswer(p *historyRequestPayload) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.members[p.channel]) == 0 {
		return false
	}
	now := time.Now()
	for id, as := range a.assigned {
		if now.After(as.expires) {
			delete(a.assigned, id)
		}
	}
	if _, already := a.assigned[p.wire.id]; already || len(a.assigned) >= maxAssignedHistory {
		return false
	}
	have := make(map[messageID]struct{}, len(p.wire.have))
	for _, id := range p.wire.have {
		have[id] = struct{}{}
	}
	a.assigned[p.wire.id] = &historyAssignment{channel: p.channel, req: p.wire, have: have, limit: p.wire.limit,
		elsewhere: make(map[messageID]struct{}), pages: 1, before: p.wire.before,
		expires: now.Add(historyAskDelay + historyAssignTTL), received: now.UnixNano()}
	return true
}

// historyAnswer takes one message a member session's client answers with.
func (s *session) historyAnswer(req request) *clientError {
	ferr := func(code, msg string) *clientError {
		return &clientError{code: code, msg: msg, id: req.ID, channel: req.Message.Channel}
	}
	var id messageID
	if cerr := decodeHexInto(id[:], "id", req.ID); cerr != nil {
		return cerr
	}
	m, err := req.Message.ChannelMessage()
	if err != nil {
		return ferr(codeBadJSON, err.Error())
	}
	if s.rulesHidden(m.Channel, m.Author) {
		return nil // banned in the channel since: not passed on
	}
	wire, err := m.MarshalBinary()
	if err != nil {
		return ferr(codeBadJSON, "message: "+err.Error())
	}
	a := s.srv.history
	a.mu.Lock()
	defer a.mu.Unlock()
	as := a.assigned[id]
	if as == nil || as.s != s || time.Now().After(as.expires) {
		return ferr(codeBadJSON, "no history request "+req.ID+" is waiting for this session's answer")
	}
	if m.Channel != as.channel {
		return ferr(codeBadJSON, "the request is for channel "+quote(as.channel))
	}
	if as.count >= as.limit || as.fresh >= as.limit {
		return nil // more than asked: the rest is not sent
	}
	as.count++
	if as.oldest == 0 || m.Timestamp < as.oldest {
		as.oldest = m.Timestamp
	}
	if as.timer == nil {
		as.timer = time.AfterFunc(historyAnswerWindow, func() { s.srv.sendAnswers(id, as) })
	}
	if _, had := as.have[m.ID]; had || as.req.filter != nil && as.req.filter.has(m.ID) {
		return nil // the requester has it
	}
	if r := a.recent[as.channel]; r != nil && r.set[m.ID] >= as.received {
		return nil // delivered here after the request came: on its way to the requester too
	}
	as.fresh++
	as.pageFresh++
	if _, sent := as.elsewhere[m.ID]; sent {
		return nil // another member's answer brought it
	}
	as.wires = append(as.wires, wire)
	as.wireIDs = append(as.wireIDs, m.ID)
	return nil
}

// sendAnswers publishes what a member session answered with. The
// validator drops what the requester has or others already sent, and an
// answer left with nothing new is not sent at all.
func (srv *Server) sendAnswers(id messageID, as *historyAssignment) {
	a := srv.history
	a.mu.Lock()
	var wires [][]byte
	for i, w := range as.wires {
		if _, sent := as.elsewhere[as.wireIDs[i]]; !sent {
			wires = append(wires, w)
		}
	}
	as.wires, as.wireIDs = nil, nil
	as.timer = nil
	var next *proto.HistoryRequest
	if as.count >= as.limit && as.fresh < as.limit && (as.pageFresh > 0 || as.req.filter == nil) && as.pages < maxMemberPages &&
		as.oldest > as.req.since && a.assigned[id] == as && time.Now().Before(as.expires) {
		// A full page, crowded by what the requester has: the page
		// before it may hold what it lacks. A node's repair request
		// (with a filter) pages only past pages with something it
		// lacks: every member on every node answers it, and a gap
		// further back is the requesting node's to page to, by time
		// (hintMore).
		as.pages++
		as.count, as.pageFresh, as.before, as.oldest = 0, 0, as.oldest, 0
		as.expires = time.Now().Add(historyAssignTTL)
		next = &proto.HistoryRequest{Channel: as.channel, ID: string(proto.AppendHex(nil, id[:])),
			Limit: int64(as.limit), Since: as.req.since, Before: as.before}
	}
	a.mu.Unlock()
	if next != nil {
		as.s.enqueue(mustJSON(next))
	}
	if len(wires) > 0 {
		srv.log.Debug("history answer", "channel", as.channel, "request", fmt.Sprintf("%x", id[:4]), "messages", len(wires), "page", as.pages, "more", next != nil)
	}
	for _, ans := range marshalHistoryAnswers(id, as.channel, wires) {
		ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
		err := srv.publishHistory(ctx, ans)
		cancel()
		if err != nil && !errors.Is(err, p2p.ErrIgnore) {
			srv.log.Debug("history answer not sent", "channel", as.channel, "err", err)
		}
	}
}

// onHistoryAnswer hands an answer's messages to the collector of the
// request, if this node made it.
func (srv *Server) onHistoryAnswer(p *historyAnswerPayload) {
	a := srv.history
	a.mu.Lock()
	if as := a.assigned[p.id]; as != nil {
		for _, m := range p.msgs {
			if len(as.elsewhere) >= maxElsewhere {
				break
			}
			as.elsewhere[m.ID] = struct{}{}
		}
	}
	c := a.pending[p.id]
	if c == nil {
		frames := a.overheardLocked(p)
		members := a.memberList(p.channel)
		a.mu.Unlock()
		for _, f := range frames {
			for _, s := range members {
				s.enqueueDelivery(f)
			}
		}
		return
	}
	defer a.mu.Unlock()
	for _, m := range p.msgs {
		if _, ok := c.msgs[m.ID]; !ok && len(c.msgs) < proto.MaxHistoryLimit+proto.MaxHistoryHave {
			c.msgs[m.ID] = collected{msg: m, seq: len(c.msgs)}
		}
	}
	c.last = time.Now()
	c.answers++
	c.answerBytes += p.size
}

// overheardLocked picks, from an answer to another node's request, the
// messages this node's members of the channel lack: not delivered here,
// and not older than the channel's members here. Answers travel to every
// node that saw the request, so one request repairs every node that
// lacked the same messages. It records them as delivered and returns
// their frames, oldest first, marked late.
func (a *historyAgent) overheardLocked(p *historyAnswerPayload) [][]byte {
	since, ok := a.memberSince[p.channel]
	if !ok {
		return nil
	}
	recent := a.recentLocked(p.channel)
	var found []identity.ChannelMessage
	for _, m := range p.msgs {
		if _, had := recent.set[m.ID]; had || m.Timestamp < since {
			continue
		}
		recent.add(m.ID)
		found = append(found, m)
	}
	slices.SortStableFunc(found, func(x, y identity.ChannelMessage) int { return cmp.Compare(x.Timestamp, y.Timestamp) })
	frames := make([][]byte, len(found))
	for i := range found {
		m := proto.NewMessage(&found[i])
		m.Late = true
		frames[i] = mustJSON(m)
	}
	return frames
}

// deliveredToLocked returns a filter of the messages this node delivered
// in channel since session s joined it (nil if none), keyed by request
// ID id: s was handed every one of them (a session that cannot keep up is
// closed, never skipped), so its client has shown them, and members need
// not send them again (PROTOCOL.md §2.8: history without repeating what is
// shown). a.mu must be held.
func (a *historyAgent) deliveredToLocked(channel string, s *session, id messageID) *haveFilter {
	joined, ok := a.members[channel][s]
	r := a.recent[channel]
	if !ok || r == nil {
		return nil
	}
	n := 0
	r.deliveredSince(joined, func(messageID) { n++ })
	if n == 0 {
		return nil
	}
	f := newHaveFilter(n, id)
	r.deliveredSince(joined, f.add)
	return f
}

// memberList returns channel's member sessions. a.mu must be held.
func (a *historyAgent) memberList(channel string) []*session {
	return slices.Collect(maps.Keys(a.members[channel]))
}

// Repair after a partition or a restart. A node that gains a mesh peer in a
// channel (a partition heals, a node comes back) asks the channel for what
// its members may have missed, on their behalf: a request like a
// session's, listing the IDs this node delivered last, and the messages it
// had not delivered reach every member session as late messages (no
// history_end: no session asked).
const (
	// syncSettle is how long after a new mesh peer the node waits for
	// its subscriptions (its first RPC after the stream opens) before
	// looking at which channels it shares, settleTries times at most.
	// Short: members' clients wait for the node's repair before asking
	// for their gaps themselves (client's gapWait).
	syncSettle = 500 * time.Millisecond
	// syncMinInterval bounds a channel's repair requests. A peer's
	// stream may come back twice in a few seconds after a partition (the
	// side that saw the cut first dials again; the other side's stale
	// connection is closed when it stops answering, and its stream
	// opens anew), and each time messages may have been lost on the way.
	syncMinInterval = 3 * time.Second
	// repairBackoffMax and repairBackoffLambda shape a repair request's
	// random delay (repairBackoff): with lambda 8, of 1,000 nodes that
	// want the same repair the first fires after about 0.2 s and about
	// two more within the next 0.1 s.
	repairBackoffMax = 2 * time.Second
	// behindInFlight is how many of the newest IDs of another node's
	// repair request behind ignores, and coverInFlight how recent a
	// delivery here knowsAllWeDo ignores: messages still on their way.
	behindInFlight = 2
	coverInFlight  = time.Second
	// coverCountSlack and coverCountMargin bound how many more messages
	// than this node another node's repair filter may hold (by its
	// estimated count: messages still on their way here, and the
	// estimate's error) for this node to count as level with it.
	coverCountSlack  = 0.05
	coverCountMargin = 16
	// repairHave is how many of the newest delivered IDs a repair
	// request lists (the rest are in its filter).
	repairHave = 32
	// repairPageFull is how many messages a repair's answers must
	// bring for the next, older page to be asked for.
	repairPageFull      = proto.MaxHistoryLimit / 4
	repairBackoffLambda = 8.0
	// syncCover is how long another node's repair request stands for
	// this node's (hintCovered), and how much later than syncSince ago
	// its since may be.
	syncCover = 5 * time.Second
	// unansweredRetries is how many times a repair request that got no
	// answer at all is made again (each syncMinInterval after the last)
	// until a new mesh peer shares the channel: enough to outlast a dead
	// connection's liveness timeout (two real nodes' first request and
	// one retry have both been lost that way).
	unansweredRetries = 3
	// settleTries is how many times a new mesh peer is looked at before
	// the node decides it shares no channel.
	settleTries = 6
	// syncHintInterval bounds the repairs another node's requests can
	// start in one channel: a forged have list costs the mesh one request
	// per node with members, at most this often.
	syncHintInterval = 30 * time.Second
	// syncSince is how far back a repair request reaches.
	syncSince = 10 * time.Minute
	// recentIDs is how many delivered message IDs the node remembers per
	// channel (IDs only, never bodies, about 50 KB a channel at most), so
	// that a repair delivers nothing twice; the newest MaxHistoryHave of
	// them make a repair request's have list. maxRecentChannels bounds
	// the channels.
	recentIDs         = 1024
	maxRecentChannels = 1024
	// meshPeerQueue bounds the new mesh peers waiting to be looked at.
	meshPeerQueue = 64
)

// ChannelPeerLister is the part of the mesh that names a channel's peers;
// a Mesh that has it gets repair after partitions.
type ChannelPeerLister interface {
	ChannelPeers(channel string) []peer.ID
	OnMeshPeer(func(peer.ID))
}

// recentDelivered remembers the last recentIDs message IDs delivered in
// one channel.
type recentDelivered struct {
	ring [recentIDs]messageID
	at   [recentIDs]int64 // when each was delivered, Unix ns
	next int
	n    int
	set  map[messageID]int64 // when each was delivered, Unix ns
}

func (r *recentDelivered) add(id messageID) {
	if _, ok := r.set[id]; ok {
		return
	}
	if r.n == recentIDs {
		delete(r.set, r.ring[r.next])
	} else {
		r.n++
	}
	now := time.Now().UnixNano()
	r.ring[r.next] = id
	r.at[r.next] = now
	r.next = (r.next + 1) % recentIDs
	r.set[id] = now
}

// deliveredBefore calls f with each ID delivered before t.
func (r *recentDelivered) deliveredBefore(t time.Time, f func(messageID) bool) {
	cutoff := t.UnixNano()
	for i := range r.n {
		j := (r.next - r.n + i + recentIDs) % recentIDs
		if r.at[j] >= cutoff || !f(r.ring[j]) {
			return
		}
	}
}

// deliveredSince calls f with each ID delivered at or after t (Unix ns).
func (r *recentDelivered) deliveredSince(t int64, f func(messageID)) {
	for i := range r.n {
		if j := (r.next - r.n + i + recentIDs) % recentIDs; r.at[j] >= t {
			f(r.ring[j])
		}
	}
}

// newest returns the k most recently delivered IDs, oldest first.
func (r *recentDelivered) newest(k int) []messageID {
	k = min(k, r.n)
	out := make([]messageID, 0, k)
	for i := range k {
		out = append(out, r.ring[(r.next-k+i+recentIDs)%recentIDs])
	}
	return out
}

// delivered records that the node delivered id in channel.
func (a *historyAgent) delivered(channel string, id messageID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recentLocked(channel).add(id)
}

func (a *historyAgent) recentLocked(channel string) *recentDelivered {
	r := a.recent[channel]
	if r == nil {
		if len(a.recent) >= maxRecentChannels {
			for ch := range a.recent { // any one: a channel gone quiet loses little
				delete(a.recent, ch)
				break
			}
		}
		r = &recentDelivered{set: make(map[messageID]int64)}
		a.recent[channel] = r
	}
	return r
}

// watchMeshPeers runs repair for the channels each new mesh peer shares
// with this node, until the server closes. It looks at a new peer's
// channels syncSettle after the peer appears (its subscriptions arrive
// meanwhile; a peer not yet in any channel is looked at again, settleTries
// times in all). A channel to repair waits a random back-off first
// (repairBackoff): after a heal every node on one side lacks the same
// messages, and a node that hears another's repair request for the
// channel in the last syncCover (hintCovered) leaves the repair to it, since the
// answers reach every node, unless that request lists messages this node
// lacks that have not come coverInFlight after it (repairHint.pending). A channel is repaired at most once every
// syncMinInterval, the reasons that come meanwhile merged into the next.
// A request that got no answer at all is made again, unansweredRetries
// times (hintUnanswered): right after a heal it can leave on the peer's
// old connection, which carries GossipSub's stream until the liveness
// ping finds it dead (3 s of silence). Channels another node's request shows this node to be
// behind in (hintBehind) are repaired too, at most once every
// syncHintInterval each: a heal that only the other side noticed.
func (srv *Server) watchMeshPeers(lister ChannelPeerLister, peers <-chan peer.ID) {
	defer srv.bgWG.Done()
	type settle struct {
		at    time.Time
		tries int
	}
	type want struct {
		due    time.Time
		reason string // for the debug log
	}
	settling := make(map[peer.ID]settle)   // when to look at a new peer's channels; at most meshPeerQueue
	wanted := make(map[string]want)        // channels to repair, and when
	lastSync := make(map[string]time.Time) // channels repaired less than syncMinInterval ago
	type cover struct {
		at      time.Time   // when another node's repair request for the channel came
		pending []messageID // what it listed that had not come here yet (repairHint.pending)
	}
	covered := make(map[string]cover)      // channels another node's repair request covers
	lastHint := make(map[string]time.Time) // channels repaired on hintBehind less than syncHintInterval ago
	retried := make(map[string]int)        // channels whose unanswered request was made again, how often, until a new mesh peer shares them; at most the node's channels
	pages := make(map[string]int64)        // channels whose repair goes on with an older page, before when
	wantChannel := func(ch string, now time.Time, reason string) {
		if _, ok := wanted[ch]; !ok {
			wanted[ch] = want{due: now.Add(repairBackoff()), reason: reason}
		}
	}
	// timer wakes the watcher at the next settle or due repair, to the
	// moment: the back-off's spread is what keeps many nodes from asking
	// at once, and a coarse tick would gather them again.
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		now := time.Now()
		select {
		case <-srv.bgCtx.Done():
			return
		case p := <-peers:
			if _, ok := settling[p]; !ok && len(settling) < meshPeerQueue {
				settling[p] = settle{at: now.Add(syncSettle)}
			}
		case h := <-srv.repairHints:
			switch h.kind {
			case hintCovered:
				covered[h.channel] = cover{at: now, pending: h.pending}
			case hintMore:
				pages[h.channel] = h.before
			case hintUnanswered:
				if retried[h.channel] < unansweredRetries {
					retried[h.channel]++
					if h.before != 0 {
						// A page of this node's own repair went
						// unanswered: ask for that page again. Another
						// node's newer request does not cover it (its
						// members answer with their newest), and a new
						// request for the newest page would not reach
						// back this far.
						pages[h.channel] = h.before
					} else {
						wantChannel(h.channel, now, "unanswered")
					}
				}
			case hintBehind:
				if at, ok := lastHint[h.channel]; !ok || now.Sub(at) >= syncHintInterval {
					lastHint[h.channel] = now
					wantChannel(h.channel, now, "behind")
				}
			}
		case <-timer.C:
		}
		now = time.Now()
		for p, st := range settling {
			if now.Before(st.at) {
				continue
			}
			delete(settling, p)
			shared := false
			for _, ch := range srv.channels.names() {
				if slices.Contains(lister.ChannelPeers(ch), p) {
					wantChannel(ch, now, "mesh peer")
					delete(retried, ch)
					shared = true
				}
			}
			if !shared && st.tries+1 < settleTries {
				settling[p] = settle{at: now.Add(syncSettle), tries: st.tries + 1}
			}
		}
		for ch, w := range wanted {
			if now.Before(w.due) {
				continue
			}
			if c, ok := covered[ch]; ok && now.Sub(c.at) < syncCover {
				switch {
				case srv.deliveredAll(ch, c.pending):
					delete(wanted, ch) // another node's request repairs this one's members too
					srv.log.Debug("repair covered by another node's", "channel", ch, "reason", w.reason)
					continue
				case now.Sub(c.at) < coverInFlight:
					// What the other node has and this one lacks may
					// still be on its way: look again once it would
					// have come.
					w.due = c.at.Add(coverInFlight)
					wanted[ch] = w
					continue
				}
				// It never came: the other node's repair does not ask
				// for it (it has it), so this node repairs for itself.
				delete(covered, ch)
				srv.log.Debug("repair not covered: another node's request lists messages this node lacks", "channel", ch, "reason", w.reason, "lacking", len(c.pending))
			}
			if last, ok := lastSync[ch]; ok && now.Sub(last) < syncMinInterval {
				continue
			}
			delete(wanted, ch)
			lastSync[ch] = now
			srv.syncChannel(ch, 0, w.reason)
		}
		// A page follows its predecessor's collection, whatever else
		// goes on: it is this node's own repair continuing.
		for ch, before := range pages {
			delete(pages, ch)
			srv.syncChannel(ch, before, "page")
		}
		// Forget what no longer matters, so that the maps stay as small
		// as the channels.
		for ch, last := range lastSync {
			if now.Sub(last) >= syncMinInterval {
				delete(lastSync, ch)
			}
		}
		for ch, c := range covered {
			if now.Sub(c.at) >= syncCover {
				delete(covered, ch)
			}
		}
		for ch, at := range lastHint {
			if now.Sub(at) >= syncHintInterval {
				delete(lastHint, ch)
			}
		}
		var next time.Time
		soonest := func(t time.Time) {
			if next.IsZero() || t.Before(next) {
				next = t
			}
		}
		for _, st := range settling {
			soonest(st.at)
		}
		for ch, w := range wanted {
			due := w.due
			if last, ok := lastSync[ch]; ok {
				due = maxTime(due, last.Add(syncMinInterval))
			}
			soonest(due)
		}
		timer.Stop()
		if next.IsZero() {
			continue
		}
		timer.Reset(max(0, time.Until(next)))
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// repairBackoff is a repair request's random delay: in [0,
// repairBackoffMax), with a density that grows exponentially towards the
// end (the feedback timers of reliable multicast), so that of the many
// nodes that want the same repair at once, few fire before hearing the
// first one's request.
func repairBackoff() time.Duration { return backoff(repairBackoffMax, repairBackoffLambda) }

// backoff draws a delay in [0, most) whose density grows as e^(lambda·t/
// most): of n nodes drawing at once, the first fires after about
// most·ln(1+(e^lambda−1)/n)/lambda, and few more within a propagation
// delay of it (the feedback timers of reliable multicast).
func backoff(most time.Duration, lambda float64) time.Duration {
	return time.Duration(float64(most) / lambda * math.Log1p(math.Expm1(lambda)*rand.Float64()))
}

// syncChannel asks channel for what this node's members may have missed.
// reason is for the debug log.
func (srv *Server) syncChannel(channel string, before int64, reason string) {
	w := &historyRequestWire{channel: channel, limit: proto.MaxHistoryLimit, since: time.Now().Add(-syncSince).UnixMilli(), before: before}
	if before != 0 && before <= w.since {
		return // the page would be older than a repair reaches
	}
	crand.Read(w.id[:])
	a := srv.history
	a.mu.Lock()
	if r := a.recent[channel]; r != nil {
		// The newest IDs, for other nodes to see whether they are
		// behind (behind), and all of them in the filter, so that
		// members send only what this node lacks.
		w.have = r.newest(repairHave)
		w.filter = newHaveFilter(r.n, w.id)
		for id := range r.set {
			w.filter.add(id)
		}
	}
	wire := w.marshal()
	srv.log.Debug("repair request", "channel", channel, "request", fmt.Sprintf("%x", w.id[:4]), "reason", reason, "before", before, "bytes", len(wire))
	c := &historyCollector{channel: channel, before: before, start: time.Now(), msgs: make(map[messageID]collected), requestBytes: len(wire)}
	for _, id := range w.have {
		c.msgs[id] = collected{}
	}
	a.pending[w.id] = c
	c.timer = time.AfterFunc(historyCollect, func() { srv.finishHistory(w.id, c) })
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(srv.bgCtx, publishTimeout)
	err := srv.publishHistory(ctx, wire)
	cancel()
	if err != nil {
		a.mu.Lock()
		if a.pending[w.id] == c {
			delete(a.pending, w.id)
			c.timer.Stop()
		}
		a.mu.Unlock()
		srv.log.Debug("repair request not sent", "channel", channel, "err", err)
	}
}
