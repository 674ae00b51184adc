package client

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"darkchat/identity"
	"darkchat/proto"
)

// Owned channels (PROTOCOL.md §2.13). In a channel named
// <base>.<owner fingerprint> the node hands the session the channel's
// signed rules record on join and whenever it changes; the session
// verifies it and keeps the greatest (identity.CompareRules), per channel
// it is in, and reports each new one (EventRules). The owner and the
// operators publish new records (SetRules, ChangeRules) and kick
// (Kick); a kick, or a new record banning the user, takes the session out
// of the channel (EventKicked): the node no longer counts it there, and
// neither does the session, so a reconnecting client does not join it
// again by itself.
type (
	Rules  = proto.Rules
	Kick   = proto.Kick
	Kicked = proto.Kicked
)

// Errors of ChangeRules and Kick found before anything is sent.
var (
	// ErrNotOperator: the user is neither the owner nor an operator of
	// the channel, so no record or kick it signs would be accepted.
	ErrNotOperator = errors.New("neither the owner nor an operator")
	// ErrNotOwner: only the owner signs the operator list.
	ErrNotOwner = errors.New("not the owner")
	// ErrNoRules: the session holds no rules record of the channel (it
	// is not owned, or the node has not sent one yet).
	ErrNoRules = errors.New("no rules record known")
)

// EventRules: the node sent a rules record of an owned channel the
// session is in, verified and greater than the one the session held:
// Prev, nil for the first the session gets in the channel (on joining
// it). Both are the session's own copies. The topic is untrusted text:
// Sanitize it before printing.
type EventRules struct {
	Channel string
	Rules   identity.ChannelRules
	Prev    *identity.ChannelRules
}

// EventKicked: Key's sessions were taken out of Channel by By, with a
// kick (Reason, untrusted: Sanitize it) or, Banned, by a record that bans
// Key. When Key is the session's own the session is no longer in Channel
// (it may join again after a kick, not after a ban).
type EventKicked struct {
	Channel string
	Key     identity.PublicKey
	By      identity.PublicKey
	Reason  string
	Banned  bool
}

func (EventRules) event()  {}
func (EventKicked) event() {}

// maxRulesChannels bounds the records a session keeps: one per owned
// channel it is in, and a session is in at most the node's max_channels
// (32 by default). When full, the records of channels the session has
// left are dropped; a record that still finds no room is not kept (nor
// reported) and the channel counts as without one, as before the node
// sent it.
const maxRulesChannels = 64

// heldRules is a verified record and its wire form's hash, never modified
// once held (a new record replaces it).
type heldRules struct {
	rec  identity.ChannelRules
	hash identity.RulesHash
}

// rulesState is a session's owned-channel state, under Session.mu but
// for turn.
type rulesState struct {
	held map[string]*heldRules
	// turn lets one SetRules or Kick at a time wait for its answer (a
	// user types them one by one): the node's errors for them carry the
	// channel only, so one call waiting makes each error unambiguous.
	turn chan struct{}
	call *rulesCall
}

// rulesCall is the SetRules or Kick waiting for its answer.
type rulesCall struct {
	channel string
	hash    identity.RulesHash    // SetRules: the record sent
	kick    *identity.ChannelKick // Kick: the kick sent
	done    chan struct{}
	err     error
}

func newRulesState() rulesState {
	return rulesState{held: make(map[string]*heldRules), turn: make(chan struct{}, 1)}
}

// Rules returns the record the session holds for channel (a copy), and
// whether it holds one.
func (s *Session) Rules(channel string) (identity.ChannelRules, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.rules.held[channel]
	if h == nil {
		return identity.ChannelRules{}, false
	}
	return h.rec.Clone(), true
}

// Banned reports whether the record the session holds for channel bans
// key (a lookup, cheap enough for every message).
func (s *Session) Banned(channel string, key identity.PublicKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.rules.held[channel]
	return h != nil && h.rec.IsBanned(key)
}

// SetRules publishes rec, signed by the owner or an operator and greater
// than the channel's record, and waits for the node's answer: nil once the
// record comes back (EventRules reports it too), else the node's *Error
// (bad_rules, not_operator, not_joined, stale_rules: the node then sent
// its newer record first), or ctx's or the session's end. The session must
// be in the channel.
func (s *Session) SetRules(ctx context.Context, rec *identity.ChannelRules) error {
	obj, err := proto.NewRules(rec)
	if err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	wire, _ := rec.MarshalBinary() // NewRules succeeded: so does this
	call := &rulesCall{channel: rec.Channel, hash: identity.HashRules(wire), done: make(chan struct{})}
	if err := s.rulesCall(ctx, call, obj); err != nil {
		return fmt.Errorf("rules: %w", err)
	}
	return nil
}

// ChangeRules makes the next record of channel from the one the session
// holds and publishes it (SetRules): change edits a copy; then Version is
// the held one's plus one, Timestamp now, and the session's key signs it.
// If change altered the operators the session's key must be the owner's,
// and it signs them anew with OpsVersion plus one. Without a held record
// the owner starts from the first one (NewChannelRules), any other user
// gets ErrNoRules. It fails with ErrNotOperator or ErrNotOwner before
// calling change or sending anything, with change's error, or with the
// new record's (identity's rules: at most MaxChannelBans bans, no banned
// operator...). It returns the record sent.
func (s *Session) ChangeRules(ctx context.Context, channel string, change func(*identity.ChannelRules) error) (identity.ChannelRules, error) {
	if err := s.requireLogin(); err != nil {
		return identity.ChannelRules{}, fmt.Errorf("rules: %w", err)
	}
	cur, ok := s.Rules(channel)
	switch {
	case ok:
	case identity.OwnsChannel(channel, s.pub):
		first, err := identity.NewChannelRules(s.cfg.Key, channel, s.now())
		if err != nil {
			return identity.ChannelRules{}, fmt.Errorf("rules: %w", err)
		}
		cur = first
		cur.Version = 0 // the one made here is version 1
	default:
		return identity.ChannelRules{}, fmt.Errorf("rules: %w for %s", ErrNoRules, channel)
	}
	if !cur.IsOperator(s.pub) {
		return identity.ChannelRules{}, fmt.Errorf("rules: %w of %s", ErrNotOperator, channel)
	}
	next := cur.Clone()
	if err := change(&next); err != nil {
		return identity.ChannelRules{}, err
	}
	next.Channel, next.Owner, next.OpsVersion, next.OpsSig = cur.Channel, cur.Owner, cur.OpsVersion, cur.OpsSig
	if !slices.Equal(next.Ops, cur.Ops) {
		if s.pub != cur.Owner {
			return identity.ChannelRules{}, fmt.Errorf("rules: %w of %s: only the owner changes its operators", ErrNotOwner, channel)
		}
		next.OpsVersion = cur.OpsVersion + 1
		next.SignOps(s.cfg.Key)
	}
	next.Version = cur.Version + 1
	next.Timestamp = s.now().UnixMilli()
	if err := next.Validate(); err != nil {
		return identity.ChannelRules{}, err
	}
	next.Sign(s.cfg.Key)
	if err := s.SetRules(ctx, &next); err != nil {
		return identity.ChannelRules{}, err
	}
	return next, nil
}

// Kick signs a kick of target from channel with reason and publishes it,
// and waits for the node's answer: nil once the node reports the kick
// (EventKicked reports it too), else the node's *Error (not_operator,
// not_joined, bad_rules...), or ctx's or the session's end. The session
// must be in the channel; if it holds the channel's record, the user must
// be an operator in it (ErrNotOperator).
func (s *Session) Kick(ctx context.Context, channel string, target identity.PublicKey, reason string) error {
	if err := s.requireLogin(); err != nil {
		return fmt.Errorf("kick: %w", err)
	}
	if cur, ok := s.Rules(channel); ok && !cur.IsOperator(s.pub) {
		return fmt.Errorf("kick: %w of %s", ErrNotOperator, channel)
	}
	k, err := identity.NewChannelKick(s.cfg.Key, channel, target, reason, s.now())
	if err != nil {
		return fmt.Errorf("kick: %w", err)
	}
	obj, err := proto.NewKick(&k)
	if err != nil {
		return fmt.Errorf("kick: %w", err)
	}
	call := &rulesCall{channel: channel, kick: &k, done: make(chan struct{})}
	if err := s.rulesCall(ctx, call, obj); err != nil {
		return fmt.Errorf("kick: %w", err)
	}
	return nil
}

// rulesCall sends obj for call, in its turn, and waits for the answer.
func (s *Session) rulesCall(ctx context.Context, call *rulesCall, obj Object) error {
	if err := s.requireLogin(); err != nil {
		return err
	}
	if _, in := s.Username(call.channel); !in {
		return fmt.Errorf("%w %s", ErrNotJoined, call.channel)
	}
	select {
	case s.rules.turn <- struct{}{}:
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-s.done:
		return s.Err()
	}
	defer func() { <-s.rules.turn }()
	s.mu.Lock()
	s.rules.call = call
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.rules.call == call {
			s.rules.call = nil
		}
		s.mu.Unlock()
	}()
	if err := s.write(ctx, obj); err != nil {
		return err
	}
	select {
	case <-call.done:
		return call.err
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-s.done:
		return s.Err()
	}
}

// endCallLocked ends the waiting call with err; s.mu must be held.
func (s *Session) endCallLocked(err error) {
	c := s.rules.call
	s.rules.call = nil
	c.err = err
	close(c.done)
}

// handleRules verifies a record from the node and keeps it if it is the
// greatest the session has seen in the channel.
func (s *Session) handleRules(o *Rules) {
	rec, wire, err := o.ChannelRules()
	if err == nil {
		err = rec.Verify(s.now())
	}
	if err != nil {
		s.emit(EventWarning{Err: fmt.Errorf("ignored the rules of %s from the node: %w", o.Channel, err)})
		return
	}
	h := &heldRules{rec: rec, hash: identity.HashRules(wire)}
	s.mu.Lock()
	if c := s.rules.call; c != nil && c.kick == nil && c.channel == rec.Channel && c.hash == h.hash {
		s.endCallLocked(nil)
	}
	if _, in := s.usernameLocked(rec.Channel); !in {
		s.mu.Unlock()
		return // in flight when the channel was left
	}
	prev := s.rules.held[rec.Channel]
	if prev != nil && identity.CompareRules(&h.rec, h.hash, &prev.rec, prev.hash) <= 0 {
		s.mu.Unlock()
		return // the same record again, or an older one
	}
	if prev == nil && len(s.rules.held) >= maxRulesChannels {
		for ch := range s.rules.held {
			if _, in := s.usernameLocked(ch); !in {
				delete(s.rules.held, ch)
			}
		}
		if len(s.rules.held) >= maxRulesChannels {
			s.mu.Unlock()
			return
		}
	}
	s.rules.held[rec.Channel] = h
	s.mu.Unlock()
	ev := EventRules{Channel: rec.Channel, Rules: rec.Clone()}
	if prev != nil {
		p := prev.rec.Clone()
		ev.Prev = &p
	}
	s.emit(ev)
}

// handleKicked reports a kick or a ban; the session's own takes it out of
// the channel, as the node has done.
func (s *Session) handleKicked(o *Kicked) {
	key, err1 := identity.ParsePublicKey(o.Key)
	by, err2 := identity.ParsePublicKey(o.By)
	if err := errors.Join(err1, err2); err != nil {
		s.emit(EventWarning{Err: fmt.Errorf("ignored a kick in %s from the node: %w", o.Channel, err)})
		return
	}
	s.mu.Lock()
	if c := s.rules.call; c != nil && c.kick != nil && c.channel == o.Channel && c.kick.Target == key && by == s.pub {
		s.endCallLocked(nil)
	}
	_, in := s.usernameLocked(o.Channel)
	own := key == s.pub && in
	if own {
		delete(s.joined, o.Channel)
		delete(s.joining, o.Channel)
		delete(s.rules.held, o.Channel)
		s.forgetGapsLocked(o.Channel)
		s.notifyLocked()
	}
	s.mu.Unlock()
	if !in {
		return
	}
	// Told first, so that the kicker's name is still known from the
	// channel's members; then the channel is no longer answered for.
	s.emit(EventKicked{Channel: o.Channel, Key: key, By: by, Reason: o.Reason, Banned: o.Banned})
	if own {
		s.store.Forget(o.Channel)
	}
}

// rulesAnswerLocked ends the waiting SetRules or Kick that e answers, and
// reports whether it did; s.mu must be held. The codes only rules and
// kick requests get always answer it; the others it may get only when no
// join or leave of the channel waits for its answer.
func (s *Session) rulesAnswerLocked(e *Error) bool {
	c := s.rules.call
	if c == nil || e.ID != "" || e.Channel != c.channel {
		return false
	}
	switch e.Code {
	case proto.CodeBadRules, proto.CodeNotOperator, proto.CodeStaleRules:
	case proto.CodeNotJoined, proto.CodeBadTimestamp, proto.CodeRateLimited, proto.CodeDuplicate,
		proto.CodeBadSignature, proto.CodeInternal, proto.CodeTooLarge:
		if s.requests[c.channel] > 0 {
			return false
		}
	default:
		return false
	}
	s.endCallLocked(e)
	return true
}
