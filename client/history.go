package client

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"darkchat/identity"
	"darkchat/internal/fifo"
	"darkchat/proto"
)

// Channel history (PROTOCOL.md §2.8). Nodes keep no messages: a client
// that missed some asks the channel's members, whose clients answer from
// what they keep. A Session keeps the last HistoryKeep messages of each
// channel it is in, in a Store, answers the node's history requests from
// them, and asks for history with Session.History.

const (
	// HistoryKeep is how many messages of each channel a Store keeps (the
	// last ones it saw: received, late, or sent by the user and accepted
	// by the node), to answer other members' history requests. PROTOCOL.md
	// §2.8 promises 1,000. A message is at most about 4.4 KB, so a busy
	// channel costs at most some 4.4 MB.
	HistoryKeep = 1000

	// storeChannels bounds the channels a Store keeps messages of. A
	// session is in at most the node's max_channels (32 by default); a
	// Store that outlives sessions may also hold channels a reconnect has
	// not joined again. Past it, the channel written to longest ago is
	// forgotten.
	storeChannels = 64

	// storeBytes bounds what a Store keeps in all (bodies, names and the
	// signed fields): a channel's 1,000 messages take at most about
	// 4.4 MB, so this lets a few channels of the largest messages, or
	// many ordinary ones, be kept; past it, the channels written to
	// longest ago are forgotten first.
	storeBytes = 16 << 20

	// shownSize is how many message IDs a Store remembers as handed to
	// the application, so that neither a replayed message nor a late
	// copy of one already shown is shown twice. The messages kept
	// (HistoryKeep per channel) count as shown too.
	shownSize = 4 * HistoryKeep

	// historyTimeout bounds the wait for a history request's end. The
	// node sends history_end within 5 s of the request; past this the
	// session reports the request as unanswered, so a script's end
	// never waits for a node that does not know history.
	historyTimeout = 10 * time.Second

	// historyPending bounds the history requests in flight, and
	// historyEvery paces them: the node allows one every 2 s, 4 at once
	// (PROTOCOL.md §2.8). History waits for both rather than earn a
	// rate_limited; the margin keeps the two clocks' jitter off the
	// node's limit.
	historyPending = 4
	historyEvery   = 2222 * time.Millisecond // 2 s / rateMargin

	// answerQueue bounds the history answers encoded and not yet handed
	// to the writer: two requests' worth. The writer sends them after
	// everything else the session queued, so answering never fills the
	// send queue (which would end the session); what does not fit is not
	// sent, as answering is optional.
	answerQueue = 2 * proto.MaxHistoryLimit
)

// Store keeps, per channel, the last HistoryKeep messages a session saw,
// and the IDs of the messages handed to the application. A Session makes
// its own unless SessionConfig.Store gives one: the interpreter hands the
// same Store to every session it opens, so that after a reconnect the
// history asked for on joining again shows nothing already shown. Every
// method is safe for concurrent use.
type Store struct {
	mu    sync.Mutex
	logs  map[string]*channelLog
	shown *fifo.Map[[identity.MessageIDSize]byte, struct{}]
	clock uint64 // counts writes, to find the log written to longest ago
	bytes int    // kept, in all logs (keptSize)
	// members are the channels' listed users (presence.go).
	members memberBook
	// lastOwn is, per channel, the user's last message signed (sent,
	// perhaps not yet accepted): the next one's prev (see causalFor).
	lastOwn map[string]identity.ShortID
}

// keptSize is what keeping m costs, about.
func keptSize(m *identity.ChannelMessage) int {
	return len(m.Channel) + len(m.Username) + len(m.Body) + 200
}

// channelLog is one channel's last messages, a ring of at most HistoryKeep
// in the order they were kept, with an index by ID.
type channelLog struct {
	msgs  []identity.ChannelMessage
	next  int // the slot the next message takes once the ring is full
	ids   map[[identity.MessageIDSize]byte]struct{}
	used  uint64
	bytes int   // keptSize of msgs
	maxTS int64 // the latest timestamp kept, Unix ms

	// byShort finds a kept message by the short ID causal contexts name
	// it with: its slot in msgs.
	byShort map[identity.ShortID]int
	// own holds the user's last ownKeep messages of the channel, oldest
	// first, with who has seen each (see causal.go); ownBy finds them.
	own   []*ownMessage
	ownBy map[identity.ShortID]*ownMessage
	// walked holds the (author, message) pairs the delivery status has
	// already walked back from: the message is known to be seen by the
	// author (see seenWalkLocked). Made on first use.
	walked *fifo.Map[walkKey, struct{}]
}

// maxTimestampLead bounds how far ahead of the clock sendTime may date a
// message to keep it after those seen (nodes refuse more than 2 minutes).
const maxTimestampLead = time.Second

// sendTime is the time to sign a new message of channel with: now, or,
// if a message of the channel already kept is dated as late or later
// (another member's clock, or several messages in one millisecond), one
// millisecond after it, but never more than maxTimestampLead ahead of now.
// Messages are then ordered by timestamp as their authors saw them, like
// a Lamport clock on the authors' own clocks.
func (st *Store) sendTime(channel string, now time.Time) time.Time {
	st.mu.Lock()
	defer st.mu.Unlock()
	l := st.logs[channel]
	if l == nil || l.maxTS < now.UnixMilli() {
		return now
	}
	return time.UnixMilli(min(l.maxTS+1, now.Add(maxTimestampLead).UnixMilli()))
}

// NewStore returns an empty Store.
func NewStore() *Store {
	return &Store{
		logs:    make(map[string]*channelLog),
		shown:   fifo.NewMap[[identity.MessageIDSize]byte, struct{}](shownSize),
		lastOwn: make(map[string]identity.ShortID),
	}
}

// KeysNamed returns the distinct keys that wrote, under username name, a
// message kept in any channel, or that the channels' member lists give
// that name (presence).
func (st *Store) KeysNamed(name string) []identity.PublicKey {
	st.mu.Lock()
	defer st.mu.Unlock()
	var keys []identity.PublicKey
	for _, l := range st.logs {
		for i := range l.msgs {
			if m := &l.msgs[i]; m.Username == name && !slices.Contains(keys, m.Author) {
				keys = append(keys, m.Author)
			}
		}
	}
	return st.members.keysNamed(name, keys)
}

// Len returns how many messages of channel the store keeps.
func (st *Store) Len(channel string) int {
	st.mu.Lock()
	defer st.mu.Unlock()
	if l := st.logs[channel]; l != nil {
		return len(l.msgs)
	}
	return 0
}

// Forget drops what the store keeps of channel (the user left it).
func (st *Store) Forget(channel string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.dropLocked(channel)
	st.members.forget(channel)
}

func (st *Store) dropLocked(channel string) {
	if l := st.logs[channel]; l != nil {
		st.bytes -= l.bytes
		delete(st.logs, channel)
	}
	delete(st.lastOwn, channel)
}

// keep adds m to its channel's log, unless it is there already.
func (st *Store) keep(m identity.ChannelMessage) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.keepLocked(m)
}

// keepLocked keeps m and reports whether it was new to the log.
func (st *Store) keepLocked(m identity.ChannelMessage) (added bool) {
	l := st.logs[m.Channel]
	if l == nil {
		if len(st.logs) >= storeChannels {
			st.forgetOldestLocked()
		}
		l = &channelLog{
			ids:     make(map[[identity.MessageIDSize]byte]struct{}),
			byShort: make(map[identity.ShortID]int),
			ownBy:   make(map[identity.ShortID]*ownMessage),
		}
		st.logs[m.Channel] = l
	}
	st.clock++
	l.used = st.clock
	if _, ok := l.ids[m.ID]; ok {
		return false
	}
	l.ids[m.ID] = struct{}{}
	l.maxTS = max(l.maxTS, m.Timestamp)
	size := keptSize(&m)
	l.bytes += size
	st.bytes += size
	if len(l.msgs) < HistoryKeep {
		l.byShort[identity.Short(m.ID)] = len(l.msgs)
		l.msgs = append(l.msgs, m)
	} else {
		old := &l.msgs[l.next]
		delete(l.ids, old.ID)
		if short := identity.Short(old.ID); l.byShort[short] == l.next {
			delete(l.byShort, short)
		}
		l.bytes -= keptSize(old)
		st.bytes -= keptSize(old)
		l.msgs[l.next] = m
		l.byShort[identity.Short(m.ID)] = l.next
		l.next = (l.next + 1) % HistoryKeep
	}
	for st.bytes > storeBytes && len(st.logs) > 1 {
		st.forgetOldestLocked()
	}
	return true
}

// forgetOldestLocked forgets the log written to longest ago.
func (st *Store) forgetOldestLocked() {
	var oldest string
	var used uint64
	for c, l := range st.logs {
		if oldest == "" || l.used < used {
			oldest, used = c, l.used
		}
	}
	st.dropLocked(oldest)
}

// newestFirst returns the messages of channel kept with a timestamp of
// at least since and, unless before is 0, less than before, newest first
// (by timestamp, then ID), at most limit.
func (st *Store) newestFirst(channel string, since, before int64, limit int) []identity.ChannelMessage {
	st.mu.Lock()
	var out []identity.ChannelMessage
	if l := st.logs[channel]; l != nil {
		for _, m := range l.msgs {
			if m.Timestamp >= since && (before == 0 || m.Timestamp < before) {
				out = append(out, m)
			}
		}
	}
	st.mu.Unlock()
	slices.SortFunc(out, func(a, b identity.ChannelMessage) int {
		if c := cmp.Compare(b.Timestamp, a.Timestamp); c != 0 {
			return c
		}
		return slices.Compare(b.ID[:], a.ID[:])
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// have returns the IDs, in hex, of the newest proto.MaxHistoryHave
// messages of channel kept: what a history request says nobody needs to
// send again.
func (st *Store) have(channel string) []string {
	msgs := st.newestFirst(channel, 0, 0, proto.MaxHistoryHave)
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = hex.EncodeToString(m.ID[:])
	}
	return ids
}

// messageOf returns the message object that carries m, with its causal
// context when it has one (the signature covers it).
func messageOf(m *identity.ChannelMessage) Message {
	return *proto.NewMessage(m)
}

// historyRequest is a history request the session sent and the node has
// not ended yet.
type historyRequest struct {
	channel  string
	auto     bool      // asked by the session itself, for a gap
	deadline time.Time // real clock
	count    int       // late messages that came for it
	fresh    int       // of those, the ones handed to the application
}

// EventHistoryEnd: a history request (Session.History) ended. Count late
// messages came for it, of which Fresh were new and reported as
// EventMessage (Late set); the others had been shown already. Err is nil
// when the node ended the request, else why it did not (no answer in
// time). A request the node refused is an EventError naming its ID
// instead. Auto marks a request the session made by itself, for messages
// a causal context named that it did not have (PROTOCOL.md §2.11).
type EventHistoryEnd struct {
	Channel, ID  string
	Count, Fresh int
	Err          error
	Auto         bool
}

func (EventHistoryEnd) event() {}

func newHistoryLimiter() *rate.Limiter {
	return rate.NewLimiter(rate.Every(historyEvery), historyPending)
}

// History asks the members of channel, through the node, for up to limit
// of its recent messages (1 to proto.MaxHistoryLimit; 0 means
// proto.DefaultHistoryLimit), naming the newest messages the session
// keeps so that nobody sends them again. It returns the request's ID
// once the request is queued: the messages come as EventMessage with Late
// set and History the ID, oldest first, those already shown left out,
// then an EventHistoryEnd (or an EventError naming the ID). It paces
// itself to the node's limits, so it may wait; ctx bounds the wait.
func (s *Session) History(ctx context.Context, channel string, limit int) (id string, err error) {
	return s.history(ctx, channel, limit, 0, false)
}

// history asks for the newest limit messages of channel dated before
// before (Unix ms; 0: the newest); auto marks the client's own gap
// requests.
func (s *Session) history(ctx context.Context, channel string, limit int, before int64, auto bool) (id string, err error) {
	if limit == 0 {
		limit = proto.DefaultHistoryLimit
	}
	if limit < 1 || limit > proto.MaxHistoryLimit {
		return "", fmt.Errorf("history: limit must be 1 to %d, got %d", proto.MaxHistoryLimit, limit)
	}
	if err := identity.ValidateChannelName(channel); err != nil {
		return "", fmt.Errorf("history: %w", err)
	}
	if err := s.requireLogin(); err != nil {
		return "", fmt.Errorf("history: %w", err)
	}
	if _, in := s.Username(channel); !in {
		return "", fmt.Errorf("history: %w %s", ErrNotJoined, channel)
	}
	ctx, cancel := s.bind(ctx)
	defer cancel()
	if err := s.historyLimiter.Wait(ctx); err != nil {
		return "", fmt.Errorf("history: %w", s.closedOr(err))
	}
	if err := s.waitFor(ctx, func() bool { return len(s.histories) < historyPending }); err != nil {
		return "", fmt.Errorf("history: %w", s.closedOr(err))
	}
	var raw [16]byte
	rand.Read(raw[:]) // never fails (see crypto/rand.Read)
	id = hex.EncodeToString(raw[:])
	req := &History{Channel: channel, ID: id, Limit: int64(limit), Before: before, Have: s.store.have(channel)}
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return "", fmt.Errorf("history: %w", err)
	}
	// Registered before sending: the answer can arrive before write returns.
	s.histories[id] = &historyRequest{channel: channel, auto: auto, deadline: time.Now().Add(historyTimeout)}
	s.notifyLocked()
	s.mu.Unlock()
	if err := s.write(ctx, req); err != nil {
		s.mu.Lock()
		delete(s.histories, id)
		s.notifyLocked()
		s.mu.Unlock()
		return "", fmt.Errorf("history: %w", err)
	}
	s.wakeTimers()
	return id, nil
}

// answerHistory answers the node's history request with the messages of
// the channel the session keeps, newest first, one history_answer each.
// It runs on the reader and never waits: the answers go to the writer's
// answer queue, and what does not fit is left out.
func (s *Session) answerHistory(r *HistoryRequest) {
	s.mu.Lock()
	_, in := s.joined[r.Channel]
	maxLine := s.hello.Limits.MaxLine
	s.mu.Unlock()
	if !in {
		return // left meanwhile: the node will not take answers for it
	}
	if maxLine <= 0 {
		maxLine = MaxObjectSize
	}
	for _, m := range s.store.newestFirst(r.Channel, r.Since, r.Before, int(r.Limit)) {
		data, err := Encode(&HistoryAnswer{ID: r.ID, Message: messageOf(&m)})
		if err != nil || len(data) > maxLine {
			continue // the node would refuse it
		}
		select {
		case s.answers <- data:
		default:
			return
		}
	}
}

// handleHistoryEnd reports the end of a history request.
func (s *Session) handleHistoryEnd(e *HistoryEnd) {
	s.mu.Lock()
	h, ok := s.histories[e.ID]
	delete(s.histories, e.ID)
	s.notifyLocked()
	s.mu.Unlock()
	if !ok {
		return // not ours, or already given up on
	}
	s.emit(EventHistoryEnd{Channel: h.channel, ID: e.ID, Count: int(e.Count), Fresh: h.fresh, Auto: h.auto})
}

// expireHistories reports the history requests the node did not end in
// time, and returns the next deadline, or the zero time if there is none.
func (s *Session) expireHistories(now time.Time) (next time.Time) {
	var expired []EventHistoryEnd
	s.mu.Lock()
	for id, h := range s.histories {
		if now.Before(h.deadline) {
			if next.IsZero() || h.deadline.Before(next) {
				next = h.deadline
			}
			continue
		}
		delete(s.histories, id)
		expired = append(expired, EventHistoryEnd{Channel: h.channel, ID: id, Count: h.count, Fresh: h.fresh, Auto: h.auto,
			Err: fmt.Errorf("%w: history of %s not ended within %v", ErrNoAnswer, h.channel, historyTimeout)})
	}
	if len(expired) > 0 {
		s.notifyLocked()
	}
	s.mu.Unlock()
	slices.SortFunc(expired, func(a, b EventHistoryEnd) int { return cmp.Compare(a.ID, b.ID) })
	for _, ev := range expired {
		s.emit(ev)
	}
	return next
}
