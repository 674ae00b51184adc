package command

import (
	"context"
	"fmt"
	"strings"
	"time"

	"darkchat/client"
	"darkchat/identity"
)

// Members and presence in the interpreter: names lists a channel's users,
// presence events become join, rename and leave notices ("-- bob
// (3f2a9c1b) joined dev"), and whois says whether the user is online. A
// notice starts with "-- " and never has the form of a message line.

// namesTimeout bounds the wait for a names answer.
const namesTimeout = 20 * time.Second

// member is how a user is named in notices: the username and the first
// FingerprintLen hex digits of the key.
func member(username string, key identity.PublicKey) string {
	return client.Sanitize(username) + " (" + Fingerprint(key) + ")"
}

// namesCmd prints a channel's users in one notice line:
// "Users in dev (2): alice (8a88e3dd), bob (3f2a9c1b)", sorted by name.
// Without a channel it lists the current one.
func (c *Interpreter) namesCmd(ctx context.Context, args []string) {
	channel, ok := c.channelOrCurrent("names", args)
	if !ok {
		return
	}
	if err := identity.ValidateChannelName(channel); err != nil {
		c.errorf("%v", err)
		return
	}
	s := c.loggedIn()
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, namesTimeout)
	defer cancel()
	members, err := s.Names(ctx, channel)
	if err != nil {
		c.failIn(channel, err)
		return
	}
	shown := make([]string, 0, len(members))
	for _, m := range members {
		k, err := identity.ParsePublicKey(m.Key)
		if err != nil {
			continue
		}
		shown = append(shown, member(m.Username, k))
	}
	c.notice(fmt.Sprintf("Users in %s (%d): %s", channel, len(shown), strings.Join(shown, ", ")))
}

// presenceNotice prints a presence event: another user joined, changed
// its name or left; or the user's own identity is also in use elsewhere.
func (c *Interpreter) presenceNotice(e client.EventPresence) {
	if e.Key == c.cfg.Key.Public() {
		if e.State == "here" && e.Sessions > 1 {
			c.notice(fmt.Sprintf("-- Your identity is also in use elsewhere: %d sessions in %s (another client, perhaps on another node, uses your key; give each user its own with --key FILE)", e.Sessions, e.Channel))
		}
		return
	}
	switch {
	case e.State == "gone":
		c.notice("-- " + member(e.Username, e.Key) + " left " + e.Channel)
	case e.Was == "":
		c.sawName(e.Channel, e.Username, e.Key)
		c.notice("-- " + member(e.Username, e.Key) + " joined " + e.Channel)
	case e.Was != e.Username:
		c.sawName(e.Channel, e.Username, e.Key)
		c.notice("-- " + member(e.Was, e.Key) + " is now known as " + client.Sanitize(e.Username) + " in " + e.Channel)
	}
}

// whoisPresence prints, after a whois, whether the user is online and
// under which names in the user's channels.
func (c *Interpreter) whoisPresence(s *client.Session, k identity.PublicKey) {
	present, _ := s.Present(k)
	if len(present) == 0 {
		c.notice(k.String() + ": not seen online in your channels")
		return
	}
	names := make([]string, len(present))
	for i, p := range present {
		names[i] = client.Sanitize(p.Username) + " in " + client.Sanitize(p.Channel)
	}
	c.notice(k.String() + ": online, as " + strings.Join(names, ", "))
}
