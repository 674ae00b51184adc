package command

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"darkchat/client"
	"darkchat/identity"
	"darkchat/proto"
)

// Owned channels in the interpreter (PROTOCOL.md §2.13): create makes a
// channel named after the user's key, and its owner and operators change
// its rules (topic, op, deop, ban, unban, moderate) and kick. Every
// member is told of each change as a notice starting with "-- ", worked
// out by comparing the channel's previous record with the new one; the
// user's own kick or ban starts with "You".

// moderationTimeout bounds the wait for the node's answer to a rules
// record or a kick: it publishes it on the mesh at once (within its own
// publish timeout of a few seconds).
const moderationTimeout = 20 * time.Second

// ownedCommands are the commands of the "Owned channels" group of help.
var ownedCommands = []commandSpec{
	{name: "create", args: "<base> [username]", nargs: 2, optional: 1, help: "create the channel <base>.<your key's first 20 hex digits>, owned by you, and join it (default username: your nick, else your last join's)"},
	{name: "topic", args: "<channel> [text…]", nargs: 2, optional: 1, rest: true, help: "show the channel's topic; with text: set it (owner and operators)"},
	{name: "op", args: "<channel> <user>", nargs: 2, help: "make a user an operator (owner only)"},
	{name: "deop", args: "<channel> <user>", nargs: 2, help: "make an operator a plain member again (owner only)"},
	{name: "ban", args: "<channel> <user>", nargs: 2, help: "ban a user: every node drops their messages there, and they cannot join"},
	{name: "unban", args: "<channel> <user>", nargs: 2, help: "lift a ban"},
	{name: "kick", args: "<channel> <user> [reason…]", nargs: 3, optional: 1, rest: true, help: "put a user out of the channel once (they may join again)"},
	{name: "moderate", args: "<channel> on|off", nargs: 2, help: "on: only the owner and operators may post; off: everyone may"},
	{name: "rules", args: "<channel>", nargs: 1, help: "show the owner, operators, number of bans, whether it is moderated, and the topic"},
}

// ownedGroup heads the owned-channel commands in help.
const ownedGroup = "Owned channels (<base>.<20 hex digits of the owner's key>; a <user> is a public key or a name)"

// moderationState is the interpreter's owned-channel state.
type moderationState struct {
	mu sync.Mutex
	// creating holds the channels create is publishing the first record
	// of: there a stale_rules answer means that the channel exists
	// already. At most one at a time (create waits for its answer).
	creating string
}

// ownedCommand runs one of ownedCommands.
func (c *Interpreter) ownedCommand(ctx context.Context, name string, a []string) {
	if name == "create" {
		c.create(ctx, strings.TrimPrefix(a[0], "#"), a[1:])
		return
	}
	channel := strings.TrimPrefix(a[0], "#")
	if !c.checkOwned(channel) {
		return
	}
	switch name {
	case "rules":
		c.showRules(channel)
	case "topic":
		if len(a) < 2 {
			c.showTopic(channel)
			return
		}
		c.setTopic(ctx, channel, a[1])
	case "op", "deop":
		c.setOp(ctx, channel, a[1], name == "op")
	case "ban", "unban":
		c.setBan(ctx, channel, a[1], name == "ban")
	case "kick":
		reason := ""
		if len(a) > 2 {
			reason = a[2]
		}
		c.kick(ctx, channel, a[1], reason)
	case "moderate":
		c.setModerated(ctx, channel, a[1])
	}
}

// checkOwned checks that channel is a valid owned channel's name.
func (c *Interpreter) checkOwned(channel string) bool {
	if err := identity.ValidateChannelName(channel); err != nil {
		c.errorf("%v", err)
		return false
	}
	if !identity.IsOwnedChannel(channel) {
		c.errorf("%s has no owner: only channels made with create (named <base>.<20 hex digits of the owner's key>) have rules", channel)
		return false
	}
	return true
}

// create makes <base>.<fingerprint>, joins it under the username given
// (else the user's nick, else the last join's name) and publishes its
// first record.
func (c *Interpreter) create(ctx context.Context, base string, name []string) {
	channel, err := identity.OwnedChannelName(base, c.cfg.Key.Public())
	if err != nil {
		c.errorf("create: %v", err)
		return
	}
	c.mu.Lock()
	username := c.nick
	if username == "" {
		username = c.lastJoin
	}
	c.mu.Unlock()
	if len(name) > 0 {
		username = name[0]
	}
	if username == "" {
		c.errorf("create %s: which username? type create %s <username>, or set one with nick <username> first", base, base)
		return
	}
	s := c.loggedIn()
	if s == nil {
		return
	}
	if _, ok := s.Rules(channel); ok {
		c.notice(channel + " exists already, with the rules you and your operators gave it; you own it and are in it")
		return
	}
	rec, err := identity.NewChannelRules(c.cfg.Key, channel, c.now())
	if err != nil {
		c.errorf("create: %v", err)
		return
	}
	c.join(ctx, channel, []string{username})
	if _, in := s.Username(channel); !in {
		return // join printed why
	}
	c.mod.mu.Lock()
	c.mod.creating = channel
	c.mod.mu.Unlock()
	defer func() {
		c.mod.mu.Lock()
		c.mod.creating = ""
		c.mod.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, moderationTimeout)
	defer cancel()
	err = s.SetRules(ctx, &rec)
	var nodeErr *client.Error
	switch {
	case err == nil:
		c.notice("Created " + channel + ": share this name; you own it")
	case errors.As(err, &nodeErr) && nodeErr.Code == proto.CodeStaleRules:
		// The node holds a record: the channel was made before. (Had it
		// only the first one, of another time, this one may have won:
		// the same rules.)
		c.notice(channel + " exists already, with the rules you and your operators gave it; you own it and are in it")
	default:
		c.fail(err)
	}
}

// rulesOf returns the record the session holds for channel, printing why
// there is none.
func (c *Interpreter) rulesOf(s *client.Session, channel string) (identity.ChannelRules, bool) {
	if r, ok := s.Rules(channel); ok {
		return r, true
	}
	if _, in := s.Username(channel); !in {
		c.notJoined(channel)
	} else {
		c.errorf("no rules of %s known yet: the node sends them once it has them; try again in a moment", channel)
	}
	return identity.ChannelRules{}, false
}

func (c *Interpreter) showRules(channel string) {
	s := c.loggedIn()
	if s == nil {
		return
	}
	r, ok := c.rulesOf(s, channel)
	if !ok {
		return
	}
	ops := "none"
	if len(r.Ops) > 0 {
		names := make([]string, len(r.Ops))
		for i, k := range r.Ops {
			names[i] = c.nameOf(s, channel, k)
		}
		ops = strings.Join(names, ", ")
	}
	mode := "open: everyone may post"
	if !r.Open {
		mode = "moderated: only the owner and operators may post"
	}
	topic := "no topic"
	if r.Topic != "" {
		topic = "topic: " + client.Sanitize(r.Topic)
	}
	c.notice(fmt.Sprintf("Rules of %s: owner %s; operators: %s; %d banned; %s; %s",
		channel, c.nameOf(s, channel, r.Owner), ops, len(r.Bans), mode, topic))
}

func (c *Interpreter) showTopic(channel string) {
	s := c.loggedIn()
	if s == nil {
		return
	}
	r, ok := c.rulesOf(s, channel)
	if !ok {
		return
	}
	if r.Topic == "" {
		c.notice("-- " + channel + " has no topic")
		return
	}
	c.notice("-- topic of " + channel + ": " + client.Sanitize(r.Topic))
}

func (c *Interpreter) setTopic(ctx context.Context, channel, topic string) {
	if err := identity.ValidateTopic(topic); err != nil {
		c.errorf("topic: %v", err)
		return
	}
	c.changeRules(ctx, channel, func(r *identity.ChannelRules) error {
		r.Topic = topic
		return nil
	})
}

func (c *Interpreter) setModerated(ctx context.Context, channel, arg string) {
	var open bool
	switch arg {
	case "on":
	case "off":
		open = true
	default:
		c.errorf("usage: moderate <channel> on|off")
		return
	}
	c.changeRules(ctx, channel, func(r *identity.ChannelRules) error {
		if r.Open == open {
			if open {
				return fmt.Errorf("%s is not moderated", channel)
			}
			return fmt.Errorf("%s is moderated already", channel)
		}
		r.Open = open
		return nil
	})
}

func (c *Interpreter) setOp(ctx context.Context, channel, user string, op bool) {
	target, ok := c.userKey(user)
	if !ok {
		return
	}
	s := c.live()
	self := c.cfg.Key.Public()
	c.changeRules(ctx, channel, func(r *identity.ChannelRules) error {
		name := c.nameOf(s, channel, target)
		switch {
		case r.Owner != self:
			return errOwnerOnly(channel)
		case target == r.Owner:
			return fmt.Errorf("%s owns %s: the owner is more than an operator", name, channel)
		case op && r.IsOperator(target):
			return fmt.Errorf("%s is an operator of %s already", name, channel)
		case !op && !r.IsOperator(target):
			return fmt.Errorf("%s is not an operator of %s", name, channel)
		case op && r.IsBanned(target):
			return fmt.Errorf("%s is banned from %s: unban first", name, channel)
		case op && len(r.Ops) >= identity.MaxChannelOps:
			return fmt.Errorf("%s has %d operators, the most a channel can have: deop one first", channel, identity.MaxChannelOps)
		}
		if op {
			r.SetOps(append(r.Ops, target))
		} else {
			r.SetOps(withoutKey(r.Ops, target))
		}
		return nil
	})
}

func (c *Interpreter) setBan(ctx context.Context, channel, user string, ban bool) {
	target, ok := c.userKey(user)
	if !ok {
		return
	}
	s := c.live()
	self := c.cfg.Key.Public()
	c.changeRules(ctx, channel, func(r *identity.ChannelRules) error {
		name := c.nameOf(s, channel, target)
		switch {
		case !ban && !r.IsBanned(target):
			return fmt.Errorf("%s is not banned from %s", name, channel)
		case !ban:
			r.SetBans(withoutKey(r.Bans, target))
			return nil
		case target == r.Owner:
			return fmt.Errorf("%s owns %s and cannot be banned from it", name, channel)
		case r.IsBanned(target):
			return fmt.Errorf("%s is banned from %s already", name, channel)
		case len(r.Bans) >= identity.MaxChannelBans:
			return fmt.Errorf("%s has %d bans, the most a channel can hold: unban someone first", channel, identity.MaxChannelBans)
		case r.IsOperator(target) && r.Owner != self:
			return fmt.Errorf("%s is an operator of %s: only the owner can ban an operator", name, channel)
		}
		if r.IsOperator(target) { // the owner bans an operator: no longer one
			r.SetOps(withoutKey(r.Ops, target))
		}
		r.SetBans(append(r.Bans, target))
		return nil
	})
}

// changeRules publishes the channel's next record (Session.ChangeRules),
// printing why not. The change itself is told by the notices of the
// record coming back.
func (c *Interpreter) changeRules(ctx context.Context, channel string, change func(*identity.ChannelRules) error) {
	s := c.loggedIn()
	if s == nil {
		return
	}
	if _, in := s.Username(channel); !in {
		c.notJoined(channel)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, moderationTimeout)
	defer cancel()
	_, err := s.ChangeRules(ctx, channel, change)
	switch {
	case err == nil:
	case errors.Is(err, client.ErrNotOperator):
		c.errorf("%s", notOperator(channel))
	case errors.Is(err, client.ErrNotOwner):
		c.errorf("%v", errOwnerOnly(channel))
	case errors.Is(err, client.ErrNoRules):
		c.rulesOf(s, channel)
	default:
		c.fail(err)
	}
}

func (c *Interpreter) kick(ctx context.Context, channel, user, reason string) {
	target, ok := c.userKey(user)
	if !ok {
		return
	}
	s := c.loggedIn()
	if s == nil {
		return
	}
	if _, in := s.Username(channel); !in {
		c.notJoined(channel)
		return
	}
	if r, ok := s.Rules(channel); ok && target == r.Owner {
		c.errorf("%s owns %s and cannot be kicked from it", c.nameOf(s, channel, target), channel)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, moderationTimeout)
	defer cancel()
	err := s.Kick(ctx, channel, target, reason)
	switch {
	case err == nil:
	case errors.Is(err, client.ErrNotOperator):
		c.errorf("%s", notOperator(channel))
	case errors.Is(err, identity.ErrMalformed):
		c.errorf("kick: %v", err) // a reason too long or with control characters
	default:
		c.fail(err)
	}
}

// notOperator is the reason a change by a user who is neither the owner
// nor an operator is refused, by the client or by the node.
func notOperator(channel string) string {
	return "you are neither the owner nor an operator of " + channel + ": only they may change its rules or kick"
}

func errOwnerOnly(channel string) error {
	return fmt.Errorf("only the owner of %s may change its operators", channel)
}

// ownedChannelError prints the node's owned-channel errors in the
// client's words, and reports whether e was one.
func (c *Interpreter) ownedChannelError(e *client.Error) bool {
	channel := client.Sanitize(e.Channel)
	switch e.Code {
	case proto.CodeNotOperator:
		c.errorf("%s", notOperator(channel))
	case proto.CodeStaleRules:
		c.mod.mu.Lock()
		creating := c.mod.creating == e.Channel
		c.mod.mu.Unlock()
		if creating {
			return true // create says it
		}
		c.errorf("someone changed the rules of %s meanwhile: try again", channel)
	case proto.CodeChannelBanned:
		if e.ID != "" {
			c.errorf("you are banned from %s: message not sent", channel)
		} else {
			c.errorf("you are banned from %s", channel)
		}
	case proto.CodeModerated:
		c.errorf("%s is moderated: only its owner and operators may post; message not sent", channel)
	case proto.CodeBadRules:
		c.errorf("the node refused the rules or kick for %s: %s", channel, client.Sanitize(e.Error()))
	default:
		return false
	}
	return true
}

// rulesNotice prints what changed in a channel's rules: on joining, its
// topic and whether it is moderated; then each change.
func (c *Interpreter) rulesNotice(e client.EventRules) {
	s := c.Session()
	ch, r := e.Channel, &e.Rules
	if e.Prev == nil {
		if r.Topic != "" {
			c.notice("-- topic of " + ch + ": " + client.Sanitize(r.Topic))
		}
		if !r.Open {
			c.notice("-- " + ch + " is moderated: only its owner and operators may post")
		}
		return
	}
	p := e.Prev
	by := c.nameOf(s, ch, r.Signer)
	if r.Topic != p.Topic {
		if r.Topic == "" {
			c.notice("-- topic of " + ch + " cleared by " + by)
		} else {
			c.notice("-- topic of " + ch + ": " + client.Sanitize(r.Topic))
		}
	}
	self := c.cfg.Key.Public()
	for _, k := range added(p.Ops, r.Ops) {
		c.notice("-- " + c.nameOf(s, ch, k) + " is now an operator of " + ch)
	}
	for _, k := range added(r.Ops, p.Ops) {
		c.notice("-- " + c.nameOf(s, ch, k) + " is no longer an operator of " + ch)
	}
	for _, k := range added(p.Bans, r.Bans) {
		if k != self { // the user's own ban comes as a kick (kickedNotice)
			c.notice("-- " + c.nameOf(s, ch, k) + " was banned from " + ch + " by " + by)
		}
	}
	for _, k := range added(r.Bans, p.Bans) {
		c.notice("-- " + c.nameOf(s, ch, k) + " was unbanned from " + ch + " by " + by)
	}
	if r.Open != p.Open {
		if r.Open {
			c.notice("-- " + ch + " is open again, by " + by + ": everyone may post")
		} else {
			c.notice("-- " + ch + " is now moderated by " + by + ": only its owner and operators may post")
		}
	}
}

// added returns the keys of to that are not in from (both sorted).
func added(from, to []identity.PublicKey) []identity.PublicKey {
	var out []identity.PublicKey
	for _, k := range to {
		if !slices.Contains(from, k) {
			out = append(out, k)
		}
	}
	return out
}

// kickedNotice prints a kick, or the user's own ban.
func (c *Interpreter) kickedNotice(e client.EventKicked) {
	s := c.Session()
	ch := e.Channel
	reason := ""
	if e.Reason != "" {
		reason = ": " + client.Sanitize(e.Reason)
	}
	if e.Key == c.cfg.Key.Public() {
		c.noLongerIn(ch)
	}
	switch {
	case e.Key == c.cfg.Key.Public() && e.Banned:
		c.notice("You are banned from " + ch + " by " + c.nameOf(s, ch, e.By))
	case e.Key == c.cfg.Key.Public():
		c.notice("You were kicked from " + ch + " by " + c.nameOf(s, ch, e.By) + reason + " (you may join again)")
	case e.Banned:
		// Only the banned key's sessions get this; the others see the ban
		// in the new record.
	default:
		c.notice("-- " + c.nameOf(s, ch, e.Key) + " was kicked from " + ch + " by " + c.shortName(s, ch, e.By) + reason)
	}
}

// hiddenByRules reports whether a message's author is banned in the
// record the session holds: the nodes drop such messages, and the client
// too, should one come through.
func (c *Interpreter) hiddenByRules(m *identity.ChannelMessage) bool {
	if !identity.IsOwnedChannel(m.Channel) {
		return false
	}
	s := c.Session()
	return s != nil && s.Banned(m.Channel, m.Author)
}

// nameOf names key in notices: "<username> (<fingerprint>)" with the name
// it uses in channel as far as the client knows (its own, the members
// listed, the messages seen), else in any channel, else the fingerprint
// alone.
func (c *Interpreter) nameOf(s *client.Session, channel string, key identity.PublicKey) string {
	if u := c.usernameOf(s, channel, key); u != "" {
		return member(u, key)
	}
	return Fingerprint(key)
}

// shortName is the username alone when known, else the fingerprint.
func (c *Interpreter) shortName(s *client.Session, channel string, key identity.PublicKey) string {
	if u := c.usernameOf(s, channel, key); u != "" {
		return client.Sanitize(u)
	}
	return Fingerprint(key)
}

func (c *Interpreter) usernameOf(s *client.Session, channel string, key identity.PublicKey) string {
	if key == c.cfg.Key.Public() {
		if s != nil {
			if u, ok := s.Username(channel); ok {
				return u
			}
		}
		return c.DMName()
	}
	if u, ok := c.store.Member(channel, key); ok {
		return u
	}
	return c.names.nameOf(channel, key)
}

// nameOf returns the name key was last seen using in channel, else in
// any channel, else "".
func (b *nameBook) nameOf(channel string, key identity.PublicKey) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var here, elsewhere string
	// Walked once per notice, which a moderator's action causes, never
	// per message.
	b.names.Range(func(k nameKey, keys []identity.PublicKey) {
		if !slices.Contains(keys, key) {
			return
		}
		if k.channel == channel {
			here = k.user
		} else {
			elsewhere = k.user
		}
	})
	if here != "" {
		return here
	}
	return elsewhere
}

// withoutKey returns a copy of keys without key.
func withoutKey(keys []identity.PublicKey, key identity.PublicKey) []identity.PublicKey {
	return slices.DeleteFunc(slices.Clone(keys), func(k identity.PublicKey) bool { return k == key })
}
