package command

import (
	"context"
	"strings"

	"darkchat/client"
	"darkchat/identity"
)

// ActionPrefix starts the body of an action message, IRC's "/me waves":
// the body travels as typed ("/me waves"), so clients that know nothing of
// actions still show something sensible, and interactive clients show
// "* alice@dev waves".
const ActionPrefix = "/me "

// isAction reports whether body is an action and returns its text.
func isAction(body string) (string, bool) {
	rest, ok := strings.CutPrefix(body, ActionPrefix)
	return rest, ok && strings.TrimSpace(rest) != ""
}

// Current is the current channel: the one the user last joined or wrote
// to ("" if none).
func (c *Interpreter) Current() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.current
}

// SetCurrent makes channel the current one ("" for none): the browser
// page sets the channel it shows before each line it runs.
func (c *Interpreter) SetCurrent(channel string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.current = channel
}

// me sends an action to the current channel.
func (c *Interpreter) me(ctx context.Context, text string) {
	c.mu.Lock()
	channel := c.current
	c.mu.Unlock()
	if channel == "" {
		c.errorf("me: no current channel: join one or write to one first (<channel> <message>)")
		return
	}
	c.say(ctx, channel, ActionPrefix+text)
}

// query makes the lines the user types without a command or a channel go
// to one user as direct messages, as IRC's /query opens a private window;
// without an argument it ends that.
func (c *Interpreter) query(args []string) {
	if len(args) == 0 {
		c.mu.Lock()
		had := c.queryTo
		c.queryTo = identity.PublicKey{}
		c.mu.Unlock()
		if had.IsZero() {
			c.notice("No private conversation to end (query <public-key|name> starts one)")
			return
		}
		c.notice("Private conversation with " + had.String() + " ended")
		return
	}
	to, ok := c.userKey(args[0])
	if !ok {
		return
	}
	c.mu.Lock()
	c.queryTo = to
	c.mu.Unlock()
	c.notice("Private conversation with " + to.String() + ": lines you type without a command or a channel go to them; query alone ends it")
}

// toTarget handles, in interactive mode, a line that is not a command and
// does not start with a channel the user is in: it goes to the private
// conversation (query) when there is one, else to the current channel,
// as text typed into an IRC window goes to that window. It reports
// whether it took the line.
func (c *Interpreter) toTarget(ctx context.Context, line string) bool {
	if !c.cfg.Interactive {
		return false
	}
	line = strings.TrimSpace(line)
	first, _ := cutWord(line)
	if line == "" || strings.HasPrefix(first, "/") {
		return false
	}
	if _, isCommand := lookupCommand(first); isCommand {
		return false
	}
	s := c.live()
	if s == nil || !s.LoggedIn() {
		return false
	}
	if _, joined := s.Username(strings.TrimPrefix(first, "#")); joined {
		return false
	}
	c.mu.Lock()
	to, channel := c.queryTo, c.current
	c.mu.Unlock()
	switch {
	case !to.IsZero():
		c.private(ctx, to.String(), line)
	case channel != "":
		if _, joined := s.Username(channel); !joined {
			return false
		}
		c.say(ctx, channel, line)
	default:
		return false
	}
	return true
}

// actionLine turns a message line whose body is an action into
// "* alice@dev waves" in interactive mode; scripts get the body as sent.
func (c *Interpreter) actionLine(l *Line) {
	text, ok := isAction(l.Body)
	if !ok || !c.cfg.Interactive {
		return
	}
	l.Action = true
	l.Body = client.Sanitize(text)
	l.Text = l.Mark + "* " + l.User + "@" + l.Channel + " " + l.Body
}
