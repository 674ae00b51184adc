package client

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"darkchat/identity"
	"darkchat/internal/fifo"
	"darkchat/proto"
)

// Presence (PROTOCOL.md §2.12). Unless SessionConfig.Unlisted, a session
// lists its user in every channel it joins: each join carries a here and a
// gone record signed for the session's own presence session (random per
// Session, so that the same identity on another client is another entry),
// and every joined channel's records are renewed every
// proto.PresenceRefreshInterval, valid proto.PresenceTTL.
type (
	PresenceRefresh = proto.PresenceRefresh
	PresenceEvent   = proto.PresenceEvent
	NamesRequest    = proto.NamesRequest
	Names           = proto.Names
	Member          = proto.Member
	Present         = proto.Present
)

// EventPresence: a user came to one of the session's channels (State
// "here"; Was is "" then) or changed its username there (Was is the old
// one), or left it (State "gone"). Sessions is how many login sessions of
// Key the node knows in the channel: the user's own key with more than one
// means another client uses the identity. Username and Was are valid
// usernames (the node checked them, and so did Decode).
type EventPresence struct {
	Channel  string
	Key      identity.PublicKey
	Username string
	Was      string
	State    string
	Sessions int
}

func (EventPresence) event() {}

const (
	// presentKeys bounds the whois answers whose present lists are kept.
	presentKeys = 64
	// namesPending bounds the names requests waiting for their answer.
	namesPending = 16
	// maxMembersKept bounds the members a Store remembers per channel
	// (for names by key), and maxMemberChannels the channels: the
	// node's own limits (10,000 members a channel; 32 channels a
	// session, with room for reconnects).
	maxMembersKept    = 10_000
	maxMemberChannels = 64
)

// presenceState is a session's presence: its login session, the last
// timestamp it signed per channel, and the requests in flight.
type presenceState struct {
	session  identity.PresenceSession
	signedAt map[string]time.Time // channel → timestamp of the last records sent
	names    []*namesCall
	present  *fifo.Map[identity.PublicKey, []Present]
}

type namesCall struct {
	channel string
	members []Member
	done    chan struct{}
	err     error
}

func newPresenceState() presenceState {
	return presenceState{
		session:  identity.NewPresenceSession(),
		signedAt: make(map[string]time.Time),
		present:  fifo.NewMap[identity.PublicKey, []Present](presentKeys),
	}
}

// presenceRecords signs the records for channel as username, dated after
// the last ones this session signed for it; "" when unlisted.
func (s *Session) presenceRecords(channel, username string) (here, gone string) {
	if s.cfg.Unlisted {
		return "", ""
	}
	s.mu.Lock()
	at := s.now()
	if last := s.pres.signedAt[channel]; !at.After(last) {
		at = last.Add(time.Millisecond) // the node keeps the newest of one session
	}
	s.pres.signedAt[channel] = at
	s.mu.Unlock()
	h, g, err := identity.NewPresencePair(s.cfg.Key, channel, username, s.pres.session, at, proto.PresenceTTL)
	if err != nil {
		return "", ""
	}
	here, _ = proto.EncodePresence(&h)
	gone, _ = proto.EncodePresence(&g)
	return here, gone
}

// refreshPresence renews the records of the joined channels signed
// proto.PresenceRefreshInterval ago or more. Housekeeping calls it.
func (s *Session) refreshPresence() {
	if s.cfg.Unlisted {
		return
	}
	now := s.now()
	s.mu.Lock()
	var due []string
	for ch := range s.joined {
		if now.Sub(s.pres.signedAt[ch]) >= proto.PresenceRefreshInterval {
			due = append(due, ch)
		}
	}
	s.mu.Unlock()
	for _, ch := range due {
		s.mu.Lock()
		username, in := s.joined[ch]
		s.mu.Unlock()
		if !in {
			continue
		}
		here, gone := s.presenceRecords(ch, username)
		if here != "" {
			s.writeSelf(&PresenceRefresh{Channel: ch, Presence: here, Gone: gone})
		}
	}
}

// handlePresence reports a presence event and feeds the Store's names.
func (s *Session) handlePresence(o *PresenceEvent) {
	key, err := identity.ParsePublicKey(o.Key)
	if err != nil {
		return
	}
	s.mu.Lock()
	_, in := s.joined[o.Channel]
	s.mu.Unlock()
	if !in {
		return
	}
	was := s.store.members.set(o.Channel, key, o.Username, o.State == proto.StateHere)
	s.emit(EventPresence{Channel: o.Channel, Key: key, Username: o.Username, Was: was, State: o.State, Sessions: int(o.Sessions)})
}

// Names asks the node for the users listed in channel, sorted by
// username. The session must be in the channel.
func (s *Session) Names(ctx context.Context, channel string) ([]Member, error) {
	if err := s.requireLogin(); err != nil {
		return nil, fmt.Errorf("names: %w", err)
	}
	s.mu.Lock()
	if _, in := s.usernameLocked(channel); !in {
		s.mu.Unlock()
		return nil, fmt.Errorf("names: %w %s", ErrNotJoined, channel)
	}
	if len(s.pres.names) >= namesPending {
		s.mu.Unlock()
		return nil, fmt.Errorf("names: %d requests already wait for the node", namesPending)
	}
	c := &namesCall{channel: channel, done: make(chan struct{})}
	s.pres.names = append(s.pres.names, c)
	s.mu.Unlock()
	if err := s.write(ctx, &NamesRequest{Channel: channel}); err != nil {
		s.endNames(c, err)
	}
	select {
	case <-c.done:
		return c.members, c.err
	case <-ctx.Done():
		s.endNames(c, context.Cause(ctx))
		return nil, fmt.Errorf("names: %w", context.Cause(ctx))
	case <-s.done:
		return nil, fmt.Errorf("names: %w", s.Err())
	}
}

func (s *Session) endNames(c *namesCall, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.pres.names, c); i >= 0 {
		s.pres.names = slices.Delete(s.pres.names, i, i+1)
		c.err = err
		close(c.done)
	}
}

// handleNames adds an answer to the oldest names request for its channel,
// ending it with the last part; the members also feed the Store's names.
func (s *Session) handleNames(o *Names) {
	for _, m := range o.Members {
		if key, err := identity.ParsePublicKey(m.Key); err == nil {
			s.store.members.set(o.Channel, key, m.Username, true)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.pres.names, func(c *namesCall) bool { return c.channel == o.Channel })
	if i < 0 {
		return
	}
	c := s.pres.names[i]
	if len(c.members)+len(o.Members) <= maxMembersKept {
		c.members = append(c.members, o.Members...)
	}
	if !o.More {
		s.pres.names = slices.Delete(s.pres.names, i, i+1)
		close(c.done)
	}
}

// failNamesLocked ends the names requests for channel with e (the node
// refused one: not joined). s.mu must be held.
func (s *Session) failNamesLocked(e *Error) {
	if e.Channel == "" || e.ID != "" {
		return
	}
	for i := 0; i < len(s.pres.names); i++ {
		if c := s.pres.names[i]; c.channel == e.Channel && e.Code == proto.CodeNotJoined {
			s.pres.names = slices.Delete(s.pres.names, i, i+1)
			i--
			c.err = e
			close(c.done)
		}
	}
}

// notePresent keeps a whois answer's present list for Present.
func (s *Session) notePresent(o *Bundle) {
	key, err := identity.ParsePublicKey(o.Key)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.pres.present.Set(key, slices.Clone(o.Present))
	s.mu.Unlock()
}

// Present returns where the node listed key, among the session's
// channels, in its last whois answer for key (Whois), and whether there
// was one.
func (s *Session) Present(key identity.PublicKey) ([]Present, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pres.present.Get(key)
}

// memberBook remembers, per channel, the username each listed key uses:
// names for KeysNamed (a DM by name to a member who has not written yet).
type memberBook struct {
	mu       sync.Mutex
	channels map[string]map[identity.PublicKey]string
}

// set records key as username in channel (here) or forgets it (gone),
// and returns the username it had there ("" if none).
func (b *memberBook) set(channel string, key identity.PublicKey, username string, here bool) (was string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.channels == nil {
		b.channels = make(map[string]map[identity.PublicKey]string)
	}
	m := b.channels[channel]
	was = m[key]
	if !here {
		delete(m, key)
		return was
	}
	if m == nil {
		if len(b.channels) >= maxMemberChannels {
			return was // channels the user left are forgotten (forget)
		}
		m = make(map[identity.PublicKey]string)
		b.channels[channel] = m
	}
	if _, ok := m[key]; ok || len(m) < maxMembersKept {
		m[key] = username
	}
	return was
}

// forget drops a channel's members (the user left it).
func (b *memberBook) forget(channel string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.channels, channel)
}

// keysNamed adds to keys the members named name in any channel.
func (b *memberBook) keysNamed(name string, keys []identity.PublicKey) []identity.PublicKey {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.channels {
		for k, u := range m {
			if u == name && !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// Member returns the username key uses in channel as far as presence
// says, and whether it is listed there.
func (st *Store) Member(channel string, key identity.PublicKey) (string, bool) {
	st.members.mu.Lock()
	defer st.members.mu.Unlock()
	u, ok := st.members.channels[channel][key]
	return u, ok
}
