package client

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
	"time"

	"darkchat/identity"
	"darkchat/internal/fifo"
	"darkchat/proto"
)

// Causal context (PROTOCOL.md §2.11). Every channel message the client
// sends is a version-2 one: it names the user's previous message in the
// channel (prev) and the newest messages of others the Store holds (refs).
// From the messages that arrive, the Store finds the gaps (a reference to
// a message it does not hold: the Session asks the channel's history for
// it) and the delivery status of the user's own messages (who has seen
// each: a message of B that names it, directly or through the messages it
// names, shows that B had it).

const (
	// ownKeep is how many of the user's own messages per channel the
	// Store follows the delivery status of.
	ownKeep = 256

	// maxSeenBy bounds the members recorded as having seen one message;
	// past it the count stops growing.
	maxSeenBy = 256

	// seenWalkSteps bounds the messages one arriving message makes the
	// Store walk back through to find the own messages it acknowledges.
	seenWalkSteps = 64

	// walkedSize bounds, per channel, the (author, message) pairs
	// remembered as already acknowledged by that author, where later
	// walks stop.
	walkedSize = 4096

	// seenBodyRunes is how much of an own message's body the Store keeps
	// to show with its status.
	seenBodyRunes = 40

	// A message missing from a causal context may still arrive: the
	// Session asks for it after gapWait plus up to gapJitter (at random,
	// so that the members of many nodes that miss the same message do
	// not all ask at once), later while late messages of the channel
	// keep coming (its node is repairing it: each pushes the request to
	// gapWait after it), but at most gapPatience after the gap was
	// found; and it asks one channel at most once every gapEvery
	// (PROTOCOL.md §2.11).
	gapWait     = 3 * time.Second
	gapJitter   = 2 * time.Second
	gapPatience = 15 * time.Second
	gapEvery    = 5 * time.Second

	// gapReasons bounds the missing references remembered per channel
	// until the next request.
	gapReasons = 64

	// gapHistoryTimeout bounds a gap's history request's wait for its
	// turn (the node allows one every 2 s, 4 at once).
	gapHistoryTimeout = 30 * time.Second
)

// ownMessage is one of the user's messages, with who has seen it.
type ownMessage struct {
	id     [identity.MessageIDSize]byte
	ts     int64
	body   string // its first seenBodyRunes characters
	seen   map[identity.PublicKey]struct{}
	byName []string // the usernames of those who have seen it, in order
}

// walkKey is an author (by the first bytes of its key) and a message the
// author is known to have seen.
type walkKey [2 * identity.ShortIDSize]byte

func newWalkKey(author identity.PublicKey, short identity.ShortID) walkKey {
	var k walkKey
	copy(k[:], author[:identity.ShortIDSize])
	copy(k[identity.ShortIDSize:], short[:])
	return k
}

// EventSeen: more members have seen one of the user's own messages of
// Channel (ID, in hex): Count other keys have, by the usernames By (in the
// order they were found; untrusted: Sanitize them before printing).
type EventSeen struct {
	Channel, ID string
	Count       int
	By          []string
}

func (EventSeen) event() {}

// SeenMessage is the delivery status of one of the user's own messages.
type SeenMessage struct {
	ID    string // hex
	Time  time.Time
	Body  string // the first 40 characters; untrusted
	Count int    // how many other keys have seen it
	By    []string
}

// addResult is what adding a message to the Store found.
type addResult struct {
	fresh   bool               // new to the application
	missing []identity.ShortID // named by its causal context, not held
	seen    []EventSeen        // own messages it acknowledges, newly
}

// add keeps m and reports whether it is new to the application (not kept
// before, and not shown before), which messages its causal context names
// that the Store does not hold, and which of self's messages it shows
// seen by its author. A message of self is followed for its delivery
// status. self may be zero (no own messages).
func (st *Store) add(m identity.ChannelMessage, self identity.PublicKey) (r addResult) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if l := st.logs[m.Channel]; l != nil {
		_, kept := l.ids[m.ID]
		r.fresh = !kept
	} else {
		r.fresh = true
	}
	if !st.shown.Add(m.ID) {
		r.fresh = false
	}
	if !st.keepLocked(m) {
		return r
	}
	l := st.logs[m.Channel]
	if l == nil {
		return r // forgotten at once: larger than the store
	}
	if c := &m.Causal; c.Present {
		if c.Prev != (identity.ShortID{}) && !l.holds(c.Prev) {
			r.missing = append(r.missing, c.Prev)
		}
		for _, ref := range c.RefList() {
			if !l.holds(ref) {
				r.missing = append(r.missing, ref)
			}
		}
	}
	switch {
	case self.IsZero():
	case m.Author == self:
		l.addOwn(&m)
	default:
		r.seen = l.seenWalkLocked(&m)
	}
	return r
}

func (l *channelLog) holds(short identity.ShortID) bool {
	_, ok := l.byShort[short]
	return ok
}

// addOwn follows the delivery status of m, one of the user's messages.
func (l *channelLog) addOwn(m *identity.ChannelMessage) {
	short := identity.Short(m.ID)
	if _, ok := l.ownBy[short]; ok {
		return
	}
	body := m.Body
	if n := 0; len(body) > seenBodyRunes {
		for i := range body {
			if n == seenBodyRunes {
				body = body[:i]
				break
			}
			n++
		}
	}
	o := &ownMessage{id: m.ID, ts: m.Timestamp, body: body}
	if len(l.own) >= ownKeep {
		delete(l.ownBy, identity.Short(l.own[0].id))
		copy(l.own, l.own[1:])
		l.own = l.own[:len(l.own)-1]
	}
	l.own = append(l.own, o)
	l.ownBy[short] = o
}

// seenWalkLocked walks back from what m names, through the messages held,
// and records m's author as having seen every own message it reaches. It
// visits at most seenWalkSteps messages and stops at those the author is
// already known to have seen. It returns the own messages whose count
// grew.
func (l *channelLog) seenWalkLocked(m *identity.ChannelMessage) []EventSeen {
	if !m.Causal.Present || len(l.own) == 0 {
		return nil
	}
	if l.walked == nil {
		l.walked = fifo.NewMap[walkKey, struct{}](walkedSize)
	}
	author := m.Author
	l.walked.Add(newWalkKey(author, identity.Short(m.ID)))
	var queue []identity.ShortID
	push := func(c *identity.Causal) {
		if c.Prev != (identity.ShortID{}) {
			queue = append(queue, c.Prev)
		}
		queue = append(queue, c.RefList()...)
	}
	push(&m.Causal)
	var out []EventSeen
	for steps := 0; len(queue) > 0 && steps < seenWalkSteps; {
		short := queue[0]
		queue = queue[1:]
		if !l.walked.Add(newWalkKey(author, short)) {
			continue // known: so is what it names
		}
		steps++
		if o := l.ownBy[short]; o != nil {
			if _, ok := o.seen[author]; !ok && len(o.seen) < maxSeenBy {
				if o.seen == nil {
					o.seen = make(map[identity.PublicKey]struct{})
				}
				o.seen[author] = struct{}{}
				o.byName = append(o.byName, m.Username)
				out = append(out, EventSeen{Channel: m.Channel, ID: hex.EncodeToString(o.id[:]),
					Count: len(o.seen), By: append([]string(nil), o.byName...)})
			}
		}
		if i, ok := l.byShort[short]; ok {
			push(&l.msgs[i].Causal)
		}
	}
	return out
}

// causalFor returns the causal context of the user's next message in
// channel: prev, the user's last message signed for it (or, if none, the
// newest of self's messages held), and refs, the newest messages of
// others held, newest first, in the order they were kept.
func (st *Store) causalFor(channel string, self identity.PublicKey) identity.Causal {
	st.mu.Lock()
	defer st.mu.Unlock()
	c := identity.Causal{Present: true}
	prev, havePrev := st.lastOwn[channel]
	l := st.logs[channel]
	if l == nil {
		if havePrev {
			c.Prev = prev
		}
		return c
	}
	n := len(l.msgs)
	for k := 0; k < n && (!havePrev || c.NRefs < identity.MaxCausalRefs); k++ {
		// Newest kept first: the ring's slot before next, backwards.
		// (While the ring fills, next is 0 and the newest is last.)
		m := &l.msgs[((l.next-1-k)%n+n)%n]
		switch {
		case m.Author == self:
			if !havePrev {
				prev, havePrev = identity.Short(m.ID), true
			}
		case c.NRefs < identity.MaxCausalRefs:
			c.Refs[c.NRefs] = identity.Short(m.ID)
			c.NRefs++
		}
	}
	if havePrev {
		c.Prev = prev
	}
	return c
}

// signed records m as the user's last message of its channel, the next
// one's prev.
func (st *Store) signed(m *identity.ChannelMessage) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.lastOwn[m.Channel]; !ok && len(st.lastOwn) >= 2*storeChannels {
		clear(st.lastOwn) // channels sent to and never kept: start again
	}
	st.lastOwn[m.Channel] = identity.Short(m.ID)
}

// refused undoes signed for a message the node refused: the next message
// names the one before it instead.
func (st *Store) refused(m *identity.ChannelMessage) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.lastOwn[m.Channel] == identity.Short(m.ID) {
		if m.Causal.Prev == (identity.ShortID{}) {
			delete(st.lastOwn, m.Channel)
		} else {
			st.lastOwn[m.Channel] = m.Causal.Prev
		}
	}
}

// stillMissing returns those of shorts that channel's log does not hold.
func (st *Store) stillMissing(channel string, shorts []identity.ShortID) []identity.ShortID {
	st.mu.Lock()
	defer st.mu.Unlock()
	l := st.logs[channel]
	var out []identity.ShortID
	for _, s := range shorts {
		if l == nil || !l.holds(s) {
			out = append(out, s)
		}
	}
	return out
}

// Seen returns the delivery status of the user's recent messages in
// channel (the last 256 sent from sessions using this Store), oldest
// first.
func (st *Store) Seen(channel string) []SeenMessage {
	st.mu.Lock()
	defer st.mu.Unlock()
	l := st.logs[channel]
	if l == nil {
		return nil
	}
	out := make([]SeenMessage, len(l.own))
	for i, o := range l.own {
		out[i] = SeenMessage{
			ID:    hex.EncodeToString(o.id[:]),
			Time:  time.UnixMilli(o.ts),
			Body:  o.body,
			Count: len(o.seen),
			By:    append([]string(nil), o.byName...),
		}
	}
	return out
}

// gapState is what a Session knows of a channel's gaps: the references it
// misses, when it asks for them next, and when it last asked.
type gapState struct {
	missing map[identity.ShortID]struct{}
	// before bounds the planned request: one millisecond after the newest
	// message that named a missing one. What a message names is dated no
	// later than it (Store.sendTime), so asking for the newest page
	// before that finds a gap however far back it is, which the channel's
	// newest page would not once more than a page was said since.
	before int64
	due    time.Time // zero: nothing to ask
	found  time.Time // when the planned request's first gap was found
	last   time.Time
}

// noteGap records references of channel the Store does not hold, named by
// a message dated namedAt (Unix ms), and plans a history request gapWait
// (and up to gapJitter) from now, or gapEvery after the last one,
// whichever is later; at most one is planned per channel.
func (s *Session) noteGap(channel string, missing []identity.ShortID, namedAt int64) {
	now := time.Now()
	s.mu.Lock()
	g := s.gaps[channel]
	if g == nil {
		g = &gapState{}
		s.gaps[channel] = g
	}
	if g.missing == nil {
		g.missing = make(map[identity.ShortID]struct{})
	}
	for _, m := range missing {
		if len(g.missing) < gapReasons {
			g.missing[m] = struct{}{}
		}
	}
	g.before = max(g.before, namedAt+1)
	planned := false
	if g.due.IsZero() {
		g.found = now
		g.due = now.Add(gapWait + rand.N(gapJitter))
		if next := g.last.Add(gapEvery); next.After(g.due) {
			g.due = next
		}
		planned = true
	}
	s.mu.Unlock()
	if planned {
		s.wakeTimers()
	}
}

// lateArrived notes that a late message of channel came: the channel is
// being repaired, and its planned gap request waits gapWait from now, up
// to gapPatience after its gap was found.
func (s *Session) lateArrived(channel string) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.gaps[channel]
	if g == nil || g.due.IsZero() {
		return
	}
	if due := now.Add(gapWait); due.After(g.due) {
		g.due = minTime(due, g.found.Add(gapPatience))
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// forgetGapsLocked drops what the session knows of channel's gaps (it left).
func (s *Session) forgetGapsLocked(channel string) {
	delete(s.gaps, channel)
	delete(s.active, channel)
}

// askGaps asks the history of every channel whose gap request is due and
// whose references are still missing, and returns when the next one is
// due, or the zero time. It runs on the housekeeping goroutine; the
// requests, which may wait for their turn, run on their own (counted in
// s.wg, which housekeeping holds).
func (s *Session) askGaps(now time.Time) (next time.Time) {
	type due struct {
		channel string
		missing []identity.ShortID
		before  int64
	}
	var dues []due
	s.mu.Lock()
	for ch, g := range s.gaps {
		if g.due.IsZero() {
			continue
		}
		if now.Before(g.due) {
			if next.IsZero() || g.due.Before(next) {
				next = g.due
			}
			continue
		}
		d := due{channel: ch, before: g.before}
		for m := range g.missing {
			d.missing = append(d.missing, m)
		}
		dues = append(dues, d)
		g.missing, g.due, g.before = nil, time.Time{}, 0
	}
	s.mu.Unlock()
	for _, d := range dues {
		if len(s.store.stillMissing(d.channel, d.missing)) == 0 {
			continue // arrived meanwhile
		}
		s.mu.Lock()
		_, in := s.usernameLocked(d.channel)
		if g := s.gaps[d.channel]; g != nil && in {
			g.last = now
		}
		s.mu.Unlock()
		if !in {
			continue
		}
		s.wg.Add(1)
		go func(channel string, before int64) {
			defer s.wg.Done()
			ctx, cancel := context.WithTimeout(s.ctx, gapHistoryTimeout)
			defer cancel()
			s.history(ctx, channel, proto.MaxHistoryLimit, before, true) // a failure leaves the gap for the next message to find
		}(d.channel, d.before)
	}
	return next
}
