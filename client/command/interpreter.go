package command

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"darkchat/client"
	"darkchat/identity"
	"darkchat/internal/fifo"
	"darkchat/proto"
)

// defaultTimeout bounds connecting (dial and hello) and logging in. The
// node's own login timeout is 20 s.
const defaultTimeout = 30 * time.Second

// settleMargin is added to the receipt timeout to bound SettleDMs.
const settleMargin = 2 * time.Second

// autoHistorySize bounds the channels whose join is to ask for history
// and the automatic requests remembered: more than a session's channels
// (32 by default). A failed join leaves its channel behind, forgotten
// oldest first.
const autoHistorySize = 128

// autoHistoryTimeout bounds the wait of an automatic history request for
// its turn (the node allows one every 2 s, 4 at once).
const autoHistoryTimeout = time.Minute

// Config configures an Interpreter. Key, Dial and Output are required.
type Config struct {
	Key identity.PrivateKey
	// Dial opens a transport to the node; connect calls it.
	Dial func(ctx context.Context) (client.Transport, error)
	// Output receives every output line. The Interpreter serialises the calls,
	// which come from the caller's goroutine and the session's reader.
	Output func(Line)
	// ManualAuth selects the seed's flow: connect shows the challenge and
	// the user logs in with verify <signature>. Otherwise Start connects
	// and logs in.
	ManualAuth bool
	// Node, when set, is the peer ID the user meant to reach; see
	// client.SessionConfig.Node.
	Node string
	// Name is the username DMs carry (nick changes it).
	Name string
	// Unlisted keeps the user out of the channels' member lists (names);
	// see client.SessionConfig.Unlisted.
	Unlisted bool
	// Timeout bounds connecting and logging in; zero means 30 s.
	Timeout time.Duration
	// KeepAlive and Now are passed to each Session.
	KeepAlive time.Duration
	Now       func() time.Time
	// DMTimeout is how long after the node sent a DM the client waits for
	// the recipient's receipt before printing "not delivered"; zero means
	// client.DefaultReceiptTimeout (10 s).
	DMTimeout time.Duration
	// Interactive is set when a person reads the output (a terminal, the
	// browser): late messages then carry a mark with their original time,
	// and joining a channel asks for its recent history. Scripted output
	// (unset) keeps exactly the lines scripts expect.
	Interactive bool
	// OnSent, when set, is told the ID (hex) of every channel message
	// the user sends, once it is queued for the node; it is called on
	// the goroutine that called Execute. OnSeen, when set, receives the
	// session's delivery status events (one of the user's messages has
	// been seen by more members). Neither prints anything.
	OnSent func(channel, id string)
	OnSeen func(client.EventSeen)
	// OnPresence, when set, receives the session's presence events (a
	// user came to, was renamed in or left one of its channels), after
	// their notice: the browser keeps its member lists with them.
	OnPresence func(client.EventPresence)
	// OnJoined and OnLeft, when set, are told each confirmed join and
	// leave of the session (after their notices).
	OnJoined func(s *client.Session, channel, username string)
	OnLeft   func(channel string)
	// Timestamps starts every message line with its author's time (Line's
	// Stamp): "[15:04] " in local time when Interactive (a late line's
	// mark has it already), else RFC 3339 in UTC with milliseconds and a
	// space, the rest of the line unchanged.
	Timestamps bool
	// Echo prints the user's own channel messages and DMs when the node
	// accepts them, as message lines ("<username>@<channel> - <message>";
	// for a DM, "<username>@private(<recipient key>) - <message>"), with
	// Own set. The browser shows its own echo instead.
	Echo bool
	// Ignore keeps the user's ignore list between runs (ignore.go); nil
	// keeps it for this run only.
	Ignore IgnoreStore
}

// LineKind says what an output line is, so a UI can style it.
type LineKind int

const (
	LineNotice   LineKind = iota // anything else; never of the form "x@y - "
	LineError                    // "ERROR: <reason>"
	LineMessage                  // "<username>@<channel> - <message>", a DM's channel being "private(<sender key>)"; interactive, a late one is "[late <time>] " and that
	LineDMStatus                 // "DM to <recipient key>: delivered" or "…: not delivered (<reason>)"
)

// Line is one line of output. Text is the whole line in the format the
// package documentation lists, sanitised and without a line end. For a
// LineMessage the parts are also given, sanitised, so a UI can colour the
// username by Author; a
// direct message is a LineMessage whose Channel is "private(<Author in
// hex>)" (no channel name has a parenthesis). For a LineDMStatus, Author is
// the DM's recipient. A late message (one that answers a history request)
// has Late set and Time its author's timestamp; in interactive mode its
// Text starts with Mark, "[late 14:03] " (local time; the date too when
// not today), before the parts.
type Line struct {
	Kind    LineKind
	Text    string
	Author  identity.PublicKey
	Channel string
	User    string
	Body    string
	Late    bool
	Time    time.Time
	Mark    string
	// Stamp, with Config.Timestamps, is the time that starts Text (not
	// on a late line in interactive mode: its Mark has the time).
	Stamp string
	// Own marks the echo of the user's own message (Config.Echo).
	Own bool
	// Action marks an action ("/me waves", irc.go): interactive, Text is
	// "* <username>@<channel> <action>" and Body the action alone.
	Action bool
	// DM is the ID of a direct message the user sent, on its echo and
	// on its status line, so that a UI can put the status on the echo.
	DM string
}

// Command is one parsed input line. Name is a command name, "say" for
// "<channel> <message…>", or "" for an empty line. Args are the
// arguments in order; for say and private the last is the rest of the line.
type Command struct {
	Name string
	Args []string
	// Reason is what followed IRC's /part #channel or /quit: it is not
	// sent (nothing shows it to the others), and the user is told so.
	Reason string
}

// commandSpec describes one command for the parser and for help.
type commandSpec struct {
	name     string
	args     string // usage after the name
	nargs    int    // number of arguments
	optional int    // how many of the last arguments may be left out
	rest     bool   // the last argument is the rest of the line
	help     string
	manual   bool // a step of the manual login, listed by help only with ManualAuth
}

var commandSpecs = []commandSpec{
	{name: "connect", help: "connect to the node and show the login challenge to sign", manual: true},
	{name: "sign", args: "<challenge>", nargs: 1, help: "print your signature of a login challenge", manual: true},
	{name: "verify", args: "<signature>", nargs: 1, help: "log in with the signature printed by sign", manual: true},
	{name: "join", args: "<channel> [username]", nargs: 2, optional: 1, help: "join a channel (again: change your username there; default: your nick, else your last join's)"},
	{name: "leave", args: "[channel]", nargs: 1, optional: 1, help: "leave a channel (default: the current one)"},
	{name: "history", args: "<channel> [N]", nargs: 2, optional: 1, help: fmt.Sprintf("ask the channel's members for its last N messages you missed (default %d, at most %d)", proto.DefaultHistoryLimit, proto.MaxHistoryLimit)},
	{name: "seen", args: "[channel]", nargs: 1, optional: 1, help: "list your recent messages in a channel (default: the current one) and who has seen each"},
	{name: "private", args: "<public-key|name> <message…>", nargs: 2, rest: true, help: "send an end-to-end encrypted direct message (a name: one seen in your channels)"},
	{name: "whois", args: "<public-key|name>", nargs: 1, help: "look up a user's key bundle, and whether the user is online in your channels"},
	{name: "names", args: "[channel]", nargs: 1, optional: 1, help: "list the users in a channel (default: the current one), each with its key's first 8 hex digits"},
	{name: "nick", args: "<username>", nargs: 1, help: "set the username your direct messages carry"},
	{name: "me", args: "<action…>", nargs: 1, rest: true, help: "send an action to the current channel (shown as * you@channel <action>)"},
	{name: "query", args: "[public-key|name]", nargs: 1, optional: 1, help: "on a terminal: send what you type without a command to this user privately; alone: stop"},
	{name: "ignore", args: "[public-key|name]", nargs: 1, optional: 1, help: "hide a user's channel messages and direct messages (their DMs get no receipt); alone: list the users you ignore"},
	{name: "unignore", args: "<public-key|name>", nargs: 1, help: "show a user's messages again"},
	{name: "help", help: "list the commands"},
	{name: "exit", help: "wait for your messages to be accepted and your DMs' statuses, then quit"},
}

// ircCommands maps IRC's command names, typed with a leading slash, to
// this client's; every command also takes a leading slash.
var ircCommands = map[string]string{
	"part": "leave",
	"quit": "exit",
	"msg":  "private",
}

func lookupCommand(name string) (commandSpec, bool) {
	for _, specs := range [][]commandSpec{commandSpecs, ownedCommands} {
		for _, c := range specs {
			if c.name == name {
				return c, true
			}
		}
	}
	return commandSpec{}, false
}

// Parse splits one input line into a command and its arguments,
// checking only the shape; the values are checked when the command runs.
// A first word that is not a command is a channel: "<channel> <message…>".
func Parse(line string) (Command, error) {
	line = strings.TrimSpace(line)
	if line == "" {
		return Command{}, nil
	}
	name, rest := cutWord(line)
	slash := strings.HasPrefix(name, "/")
	withReason := false
	if slash {
		name = name[1:]
		// IRC's /part [#channel] [reason…] and /quit [reason…]: the
		// reason, which IRC shows to the others, has nowhere to go here.
		withReason = name == "part" || name == "quit"
		if alias, ok := ircCommands[name]; ok {
			name = alias
		}
	}
	spec, ok := lookupCommand(name)
	if !ok {
		if slash {
			return Command{}, fmt.Errorf("unknown command /%s: type help for the commands", name)
		}
		if rest == "" {
			return Command{}, fmt.Errorf("%q is not a command, and a message needs text: type <channel> <message>, or help", name)
		}
		return Command{Name: "say", Args: []string{name, rest}}, nil
	}
	var args []string
	for len(args) < spec.nargs && rest != "" {
		if spec.rest && len(args) == spec.nargs-1 {
			args = append(args, rest)
			rest = ""
			break
		}
		var arg string
		arg, rest = cutWord(rest)
		args = append(args, arg)
	}
	var reason string
	if withReason {
		reason, rest = rest, ""
	}
	if len(args) < spec.nargs-spec.optional || rest != "" {
		return Command{}, fmt.Errorf("usage: %s", strings.TrimSpace(spec.name+" "+spec.args))
	}
	return Command{Name: name, Args: args, Reason: reason}, nil
}

// cutWord returns the first space-separated word of s and the rest, with
// the spaces between them removed (the rest keeps its inner spacing).
func cutWord(s string) (word, rest string) {
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimLeft(s[i:], " \t")
}

// Interpreter is shared by the command-line and browser clients: it turns
// input lines into session actions and session events into output lines.
// One Interpreter has at most one client.Session at a time; connect opens a
// new one after the previous connection ended.
type Interpreter struct {
	cfg Config

	outMu sync.Mutex // serialises Output

	connMu sync.Mutex // held while connecting, so connects do not overlap

	// store outlives the sessions: what a reconnect asks for on joining
	// again shows nothing already shown.
	store *client.Store
	// names tells users sharing a name apart (names.go).
	names *nameBook
	// autoWG counts the goroutines asking for history after a join; Close
	// waits for them (they end with the session).
	autoWG sync.WaitGroup

	mu       sync.Mutex
	sess     *client.Session
	nick     string
	lastJoin string
	// current is the channel the user last joined or wrote to: seen's
	// default in interactive mode, and where me and, interactive, typed
	// text go.
	current string
	// queryTo is the user that typed text goes to, when set (query).
	queryTo identity.PublicKey
	// joinHistory holds the channels whose confirmed join asks for their
	// history (interactive: a channel joined, not a new username in one);
	// auto the requests so made, whose end is printed only if they
	// brought something.
	joinHistory *fifo.Map[string, struct{}]
	auto        *fifo.Map[string, struct{}]

	brokenOnce sync.Once
	broken     chan struct{}
	// refused is set when the node refused the user's key (keep.go).
	refused atomic.Bool
	// reconnecting is set while KeepConnected is getting a session back:
	// commands that need one say so rather than ask for connect.
	reconnecting atomic.Bool

	// ignored is the user's ignore list; ignoreErr why the stored one
	// could not be read (Start shows it).
	ignored   *ignoreList
	ignoreErr error

	mod moderationState // moderation.go
}

// New returns an Interpreter; nothing happens until Start.
func New(cfg Config) (*Interpreter, error) {
	switch {
	case cfg.Key.IsZero():
		return nil, fmt.Errorf("new client: %w", identity.ErrInvalidKey)
	case cfg.Dial == nil || cfg.Output == nil:
		return nil, errors.New("new client: Dial and Output are required")
	}
	if cfg.Name != "" {
		if err := identity.ValidateUsername(cfg.Name); err != nil {
			return nil, fmt.Errorf("new client: name: %w", err)
		}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTimeout
	}
	if cfg.DMTimeout <= 0 {
		cfg.DMTimeout = client.DefaultReceiptTimeout
	}
	ignored, ignoreErr := newIgnoreList(cfg.Ignore)
	return &Interpreter{
		ignored:     ignored,
		ignoreErr:   ignoreErr,
		cfg:         cfg,
		nick:        cfg.Name,
		broken:      make(chan struct{}),
		store:       client.NewStore(),
		names:       newNameBook(),
		joinHistory: fifo.NewMap[string, struct{}](autoHistorySize),
		auto:        fifo.NewMap[string, struct{}](autoHistorySize),
	}, nil
}

// PublicKey returns the user's address.
func (c *Interpreter) PublicKey() identity.PublicKey { return c.cfg.Key.Public() }

// Start prints the user's public key and, unless ManualAuth is set,
// connects and logs in. A failed login is printed and returned.
func (c *Interpreter) Start(ctx context.Context) error {
	c.notice("Your PUBLIC KEY : " + c.PublicKey().String())
	if c.ignoreErr != nil {
		c.errorf("%v; starting with an empty ignore list", c.ignoreErr)
	}
	if c.cfg.ManualAuth {
		c.notice("Type connect to get a login challenge, sign <challenge> to sign it, then verify <signature>.")
		return nil
	}
	return c.connect(ctx)
}

// Broken is closed once a login has failed or a connection ended other
// than by Close: a script's run has then failed.
func (c *Interpreter) Broken() <-chan struct{} { return c.broken }

// Session returns the current session, or nil before the first connect.
func (c *Interpreter) Session() *client.Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// Drain waits until the node has answered every message, DM, join and
// leave sent on the current session (bounded by ctx).
func (c *Interpreter) Drain(ctx context.Context) error {
	return c.DrainQuiet(ctx, 0)
}

// DrainQuiet is Drain that also gives up once quiet passes with nothing
// answered (see Session.WaitIdleQuiet).
func (c *Interpreter) DrainQuiet(ctx context.Context, quiet time.Duration) error {
	if s := c.Session(); s != nil {
		return s.WaitIdleQuiet(ctx, quiet)
	}
	return nil
}

// SettleDMs waits until every DM sent on the current session has had its
// status printed, and every receipt waiting for its sender's key bundle has
// been sent or given up. Call it after Drain: each DM then settles within
// the receipt timeout, which (plus a margin) also bounds the wait.
func (c *Interpreter) SettleDMs(ctx context.Context) error {
	s := c.Session()
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, max(c.cfg.DMTimeout, client.WhoisTimeout)+settleMargin)
	defer cancel()
	return s.WaitDMs(ctx)
}

// DMName is the username a direct message carries: the one set with Name
// or nick, else the most recent join's, else "anonymous".
func (c *Interpreter) DMName() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.nick != "":
		return c.nick
	case c.lastJoin != "":
		return c.lastJoin
	}
	return identity.AnonymousUsername
}

// Close closes the current session. It is idempotent.
func (c *Interpreter) Close() error {
	if s := c.Session(); s != nil {
		s.Close()
	}
	c.autoWG.Wait()
	return nil
}

// Execute runs one input line, printing its result, and reports whether
// the line was exit.
func (c *Interpreter) Execute(ctx context.Context, line string) (quit bool) {
	if c.toTarget(ctx, line) {
		return false
	}
	cmd, err := Parse(line)
	if err != nil {
		c.errorf("%v", err)
		return false
	}
	a := cmd.Args
	if cmd.Reason != "" {
		c.notice("(darkchat sends no part or quit message: \"" + client.Sanitize(cmd.Reason) + "\" stays here)")
	}
	switch cmd.Name {
	case "join", "leave", "history", "seen", "say", "names":
		if len(a) > 0 {
			a[0] = strings.TrimPrefix(a[0], "#") // IRC's channel prefix
		}
	}
	switch cmd.Name {
	case "":
	case "connect":
		c.connect(ctx)
	case "sign":
		c.sign(a[0])
	case "verify":
		c.verify(ctx, a[0])
	case "join":
		c.join(ctx, a[0], a[1:])
	case "leave":
		c.leave(ctx, a)
	case "history":
		c.history(ctx, a[0], a[1:])
	case "seen":
		c.seen(a)
	case "names":
		c.namesCmd(ctx, a)
	case "say":
		c.say(ctx, a[0], a[1])
	case "private":
		if ch, isChannel := strings.CutPrefix(a[0], "#"); isChannel {
			// IRC's /msg #channel text; no key or username starts with #.
			c.say(ctx, ch, a[1])
			break
		}
		c.private(ctx, a[0], a[1])
	case "whois":
		c.whois(ctx, a[0])
	case "nick":
		c.setNick(a[0])
	case "me":
		c.me(ctx, a[0])
	case "query":
		c.query(a)
	case "ignore":
		c.ignore(a)
	case "unignore":
		c.unignore(a[0])
	case "create", "topic", "op", "deop", "ban", "unban", "kick", "moderate", "rules":
		c.ownedCommand(ctx, cmd.Name, a) // moderation.go
	case "help":
		c.help()
	case "exit":
		return true
	}
	return false
}

// live returns the current session if it has not ended.
func (c *Interpreter) live() *client.Session {
	s := c.Session()
	if s == nil || s.Err() != nil {
		return nil
	}
	return s
}

func (c *Interpreter) connect(ctx context.Context) error {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if s := c.live(); s != nil {
		if c.cfg.ManualAuth && !s.LoggedIn() {
			return c.showChallenge(ctx, s)
		}
		c.notice("Already connected to node " + s.Node())
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	t, err := c.cfg.Dial(ctx)
	if err != nil {
		c.loginFailed(nil, err)
		return err
	}
	s, err := client.NewSession(t, client.SessionConfig{
		Key:            c.cfg.Key,
		Node:           c.cfg.Node,
		ManualAuth:     c.cfg.ManualAuth,
		OnEvent:        c.onEvent,
		Now:            c.cfg.Now,
		KeepAlive:      c.cfg.KeepAlive,
		ReceiptTimeout: c.cfg.DMTimeout,
		Unlisted:       c.cfg.Unlisted,
		Store:          c.store,
		Ignore:         c.ignored.has,
	})
	if err != nil {
		t.Close()
		c.loginFailed(nil, err)
		return err
	}
	c.mu.Lock()
	c.sess = s
	c.mu.Unlock()
	if c.cfg.ManualAuth {
		return c.showChallenge(ctx, s)
	}
	if err := s.WaitLogin(ctx); err != nil {
		s.Close()
		c.loginFailed(s, err)
		return err
	}
	c.connected(s)
	return nil
}

func (c *Interpreter) showChallenge(ctx context.Context, s *client.Session) error {
	h, err := s.Challenge(ctx)
	if err != nil {
		s.Close()
		c.loginFailed(s, err)
		return err
	}
	c.notice(`VERIFY : "` + h.Challenge + `"`)
	return nil
}

func (c *Interpreter) connected(s *client.Session) {
	c.notice("Connected to Network as " + s.PublicKey().String() + " via node " + s.Node())
}

func (c *Interpreter) sign(challenge string) {
	challenge = strings.Trim(challenge, `"`) // as copied from VERIFY : "…"
	ch, err := identity.ParseChallenge(challenge)
	if err != nil {
		c.errorf("%v", err)
		return
	}
	if c.cfg.Node != "" && ch.NodeID != c.cfg.Node {
		c.errorf("%v: expected node %s, the challenge is for %s", client.ErrWrongNode, c.cfg.Node, ch.NodeID)
		return
	}
	c.notice(hex.EncodeToString(identity.SignLogin(c.cfg.Key, challenge)))
}

func (c *Interpreter) verify(ctx context.Context, sigHex string) {
	s := c.live()
	if s == nil {
		c.errorf("%v: type connect first", client.ErrNotConnected)
		return
	}
	sig := make([]byte, identity.SignatureSize)
	if err := proto.DecodeHex(sig, "signature", strings.ToLower(sigHex)); err != nil {
		c.errorf("%v", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	if err := s.Login(ctx, sig); err != nil {
		if !errors.Is(err, identity.ErrBadSignature) {
			// Refused by the node, or no answer: this connection is done.
			s.Close()
		}
		c.loginFailed(s, err)
		return
	}
	c.connected(s)
}

func (c *Interpreter) join(ctx context.Context, channel string, args []string) {
	var username string
	if len(args) > 0 {
		username = args[0]
	} else {
		c.mu.Lock()
		username = cmp.Or(c.nick, c.lastJoin)
		c.mu.Unlock()
		if username == "" {
			c.errorf("join %s: which username? type join %s <username>, or set one with nick", channel, channel)
			return
		}
	}
	s := c.loggedIn()
	if s == nil {
		return
	}
	_, already := s.Username(channel)
	if c.cfg.Interactive && !already {
		c.mu.Lock()
		c.joinHistory.Set(channel, struct{}{})
		c.mu.Unlock()
	}
	if err := s.Join(ctx, channel, username); err != nil {
		c.fail(err)
		return
	}
	c.mu.Lock()
	c.lastJoin = username
	c.current = channel
	c.mu.Unlock()
}

// history asks a channel's members for the messages the user missed. The
// late messages are printed as they come, then the request's end.
func (c *Interpreter) history(ctx context.Context, channel string, args []string) {
	if err := identity.ValidateChannelName(channel); err != nil {
		c.errorf("%v", err)
		return
	}
	limit := proto.DefaultHistoryLimit
	if len(args) > 0 {
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 1 || n > proto.MaxHistoryLimit {
			c.errorf("history: N must be a number from 1 to %d, got %q", proto.MaxHistoryLimit, args[0])
			return
		}
		limit = n
	}
	s := c.loggedIn()
	if s == nil {
		return
	}
	if _, err := s.History(ctx, channel, limit); err != nil {
		c.failIn(channel, err)
	}
}

// joinedHistory asks, after a join the user typed, for the channel's
// recent history: a user returning to a channel sees what was said
// meanwhile. History may wait for its turn, so it runs on its own
// goroutine (the event's, the reader, must not wait), which ends with
// the session at the latest.
func (c *Interpreter) joinedHistory(s *client.Session, channel string) {
	c.mu.Lock()
	ask := c.joinHistory.Has(channel)
	c.joinHistory.Delete(channel)
	c.mu.Unlock()
	if !ask {
		return
	}
	c.autoWG.Add(1)
	go func() {
		defer c.autoWG.Done()
		ctx, cancel := context.WithTimeout(context.Background(), autoHistoryTimeout)
		defer cancel()
		id, err := s.History(ctx, channel, proto.DefaultHistoryLimit)
		switch {
		case err == nil:
			c.mu.Lock()
			c.auto.Set(id, struct{}{})
			c.mu.Unlock()
		case s.Err() != nil || errors.Is(err, client.ErrNotJoined):
			// The session ended, or the user left the channel
			// meanwhile: nothing to say.
		default:
			c.fail(err)
		}
	}()
}

func (c *Interpreter) leave(ctx context.Context, args []string) {
	channel, ok := c.channelOrCurrent("leave", args)
	if !ok {
		return
	}
	s := c.loggedIn()
	if s == nil {
		return
	}
	if err := s.Leave(ctx, channel); err != nil {
		c.fail(err)
		return
	}
	c.noLongerIn(channel)
}

// channelOrCurrent returns the channel args name, or the current one (the
// last joined or written to) when they name none; it reports the error
// when there is neither.
func (c *Interpreter) channelOrCurrent(cmd string, args []string) (string, bool) {
	if len(args) > 0 {
		return args[0], true
	}
	c.mu.Lock()
	channel := c.current
	c.mu.Unlock()
	if channel == "" {
		c.errorf("%s: no current channel: type %s <channel>", cmd, cmd)
		return "", false
	}
	return channel, true
}

// noLongerIn forgets channel as the current one once the user is out of it
// (a leave, a kick, a ban): typed text then needs a channel again.
func (c *Interpreter) noLongerIn(channel string) {
	c.mu.Lock()
	if c.current == channel {
		c.current = ""
	}
	c.mu.Unlock()
}

func (c *Interpreter) say(ctx context.Context, channel, body string) {
	if identity.ValidateChannelName(channel) != nil {
		c.errorf("unknown command %q: type help for the commands", channel)
		return
	}
	s := c.loggedIn()
	if s == nil {
		return
	}
	id, err := s.Send(ctx, channel, body)
	if err != nil {
		c.failIn(channel, err)
		return
	}
	c.mu.Lock()
	c.current = channel
	c.mu.Unlock()
	if user, ok := s.Username(channel); ok {
		c.echo(c.names.displayName(channel, user, s.PublicKey()), channel, body, c.now(), "")
	}
	if c.cfg.OnSent != nil {
		c.cfg.OnSent(channel, id)
	}
}

// seen lists the user's recent messages in a channel, oldest first, each
// with the members who have seen it (PROTOCOL.md §2.11):
// "<HH:MM> <first 40 characters> — seen by 2: bob, carol", or
// "… — not seen yet".
func (c *Interpreter) seen(args []string) {
	if len(args) == 0 && !c.cfg.Interactive {
		c.errorf("usage: seen <channel>")
		return
	}
	channel, ok := c.channelOrCurrent("seen", args)
	if !ok {
		return
	}
	if err := identity.ValidateChannelName(channel); err != nil {
		c.errorf("%v", err)
		return
	}
	msgs := c.store.Seen(channel)
	if len(msgs) == 0 {
		c.notice("No messages of yours in #" + channel + " to show")
		return
	}
	for _, m := range msgs {
		status := "not seen yet"
		if m.Count > 0 {
			names := make([]string, len(m.By))
			for i, u := range m.By {
				names[i] = client.Sanitize(u)
			}
			status = fmt.Sprintf("seen by %d: %s", m.Count, strings.Join(names, ", "))
		}
		// The Store keeps the first 40 characters of each body (SeenMessage).
		c.notice(m.Time.Local().Format("15:04") + " " + client.Sanitize(m.Body) + " — " + status)
	}
}

// private sends an end-to-end encrypted DM. It returns once the DM is
// sent (after a whois for the recipient's bundle unless one is cached);
// its status line follows when the receipt arrives or does not.
func (c *Interpreter) private(ctx context.Context, key, body string) {
	to, ok := c.userKey(key)
	if !ok {
		return
	}
	switch {
	case len(body) > identity.MaxDMBodyLen:
		c.errorf("message of %d bytes is over the limit of %d bytes for a direct message", len(body), identity.MaxDMBodyLen)
		return
	case !utf8.ValidString(body):
		c.errorf("message is not valid UTF-8")
		return
	}
	s := c.loggedIn()
	if s == nil {
		return
	}
	name := c.DMName()
	id, err := s.SendDM(ctx, to, name, body)
	if err != nil {
		if errors.Is(err, client.ErrUnknownUser) {
			c.dmStatus(to, false, err)
			return
		}
		c.fail(err)
		return
	}
	c.echo(name, "private("+to.String()+")", body, c.now(), id)
}

// ResolveUser reads a user's public key, or a username that the messages
// kept from the user's channels give to exactly one other key.
func (c *Interpreter) ResolveUser(arg string) (identity.PublicKey, error) {
	k, err := identity.ParsePublicKey(arg)
	if err == nil {
		return k, nil
	}
	if identity.ValidateUsername(arg) != nil {
		return identity.PublicKey{}, err
	}
	self := c.cfg.Key.Public()
	keys := c.names.keysNamed(arg, c.store.KeysNamed(arg))
	keys = slices.DeleteFunc(keys, func(k identity.PublicKey) bool { return k == self })
	switch len(keys) {
	case 1:
		return keys[0], nil
	case 0:
		return identity.PublicKey{}, fmt.Errorf("%s is not a public key, and no one of that name wrote in your channels' recent messages", arg)
	}
	var fps []string
	for _, k := range keys {
		fps = append(fps, arg+"("+Fingerprint(k)+") "+k.String())
	}
	return identity.PublicKey{}, fmt.Errorf("%d users are named %s: which one? give their public key: %s", len(keys), arg, strings.Join(fps, ", "))
}

// userKey is ResolveUser, printing why not when it fails.
func (c *Interpreter) userKey(arg string) (identity.PublicKey, bool) {
	k, err := c.ResolveUser(arg)
	if err != nil {
		c.errorf("%v", err)
		return identity.PublicKey{}, false
	}
	return k, true
}

// whois looks up and verifies a user's key bundle.
func (c *Interpreter) whois(ctx context.Context, key string) {
	k, ok := c.userKey(key)
	if !ok {
		return
	}
	s := c.loggedIn()
	if s == nil {
		return
	}
	b, err := s.Whois(ctx, k)
	switch {
	case errors.Is(err, client.ErrUnknownUser):
		c.errorf("unknown user %s", k)
	case err != nil:
		c.fail(err)
	default:
		sum := sha256.Sum256(b.DM[:])
		c.notice(fmt.Sprintf("%s: key bundle valid until %s, DM key %s",
			k, b.ExpiresTime().UTC().Format(time.RFC3339), hex.EncodeToString(sum[:8])))
		c.whoisPresence(s, k)
	}
}

// dmStatus prints a DM's status line.
func (c *Interpreter) dmStatus(to identity.PublicKey, delivered bool, err error) {
	c.dmStatusOf(to, "", delivered, err)
}

// dmStatusOf prints the status line of the DM id.
func (c *Interpreter) dmStatusOf(to identity.PublicKey, id string, delivered bool, err error) {
	text := "DM to " + to.String() + ": delivered"
	if !delivered {
		text = "DM to " + to.String() + ": not delivered (" + dmReason(err) + ")"
	}
	c.print(Line{Kind: LineDMStatus, Text: text, Author: to, DM: id})
}

// dmReason says why a DM was not delivered.
func dmReason(err error) string {
	var nodeErr *client.Error
	switch {
	case errors.Is(err, client.ErrUnknownUser):
		return "unknown recipient: no key bundle"
	case errors.Is(err, client.ErrRecipientOffline):
		return "recipient offline"
	case errors.Is(err, client.ErrNoReceipt):
		// The DM reached a node serving the recipient's inbox shard, and
		// no client of the recipient answered: offline, most likely.
		return "recipient offline: " + client.Sanitize(err.Error())
	case errors.As(err, &nodeErr):
		return "refused by the node: " + client.Sanitize(nodeErr.Error())
	}
	return client.Sanitize(err.Error())
}

func (c *Interpreter) setNick(name string) {
	if err := identity.ValidateUsername(name); err != nil {
		c.errorf("%v", err)
		return
	}
	c.mu.Lock()
	c.nick = name
	c.mu.Unlock()
	c.notice("Your direct messages will carry the name " + name)
}

func (c *Interpreter) help() {
	c.notice("Commands:")
	for _, spec := range commandSpecs {
		if spec.manual && !c.cfg.ManualAuth {
			continue
		}
		c.notice(fmt.Sprintf("  %-34s %s", strings.TrimSpace(spec.name+" "+spec.args), spec.help))
	}
	c.notice(fmt.Sprintf("  %-34s %s", "<channel> <message…>", "send a message to a channel you joined"))
	c.notice(ownedGroup + ":")
	for _, spec := range ownedCommands {
		c.notice(fmt.Sprintf("  %-34s %s", strings.TrimSpace(spec.name+" "+spec.args), spec.help))
	}
	c.notice("Every command may start with /, as in IRC, where /part is leave, /msg is private and /quit is exit; a channel may start with #.")
}

// loggedIn returns the live, logged-in session, or prints why there is
// none and returns nil.
func (c *Interpreter) loggedIn() *client.Session {
	s := c.live()
	switch {
	case s == nil && c.cfg.ManualAuth:
		c.errorf("%v: type connect, then verify <signature>", client.ErrNotConnected)
	case s == nil && c.reconnecting.Load():
		c.errorf("%v: reconnecting by itself, so this was not done; try again once Connected", client.ErrNotConnected)
	case s == nil:
		c.errorf("%v: type connect", client.ErrNotConnected)
	case !s.LoggedIn():
		c.errorf("%v: verify <signature> first", client.ErrNotLoggedIn)
	default:
		return s
	}
	return nil
}

// onEvent turns session events into output lines. It runs on the
// session's reader goroutine.
func (c *Interpreter) onEvent(ev client.Event) {
	switch e := ev.(type) {
	case client.EventMessage:
		m := e.Message
		c.sawName(m.Channel, m.Username, m.Author)
		if c.ignored.has(m.Author) || c.hiddenByRules(&m) {
			return // ignore.go, moderation.go
		}
		line := Line{
			Kind:    LineMessage,
			Author:  m.Author,
			Channel: client.Sanitize(m.Channel),
			User:    client.Sanitize(c.names.displayName(m.Channel, m.Username, m.Author)),
			Body:    client.Sanitize(m.Body),
		}
		line.Text = line.User + "@" + line.Channel + " - " + line.Body
		line.Time = time.UnixMilli(m.Timestamp)
		if e.Late {
			line.Late = true
			if c.cfg.Interactive {
				line.Mark = lateMark(line.Time, c.now())
				line.Text = line.Mark + line.Text
			}
		}
		c.actionLine(&line)
		c.stamp(&line)
		c.print(line)
	case client.EventHistoryEnd:
		c.historyEnd(e)
	case client.EventSeen:
		if c.cfg.OnSeen != nil {
			c.cfg.OnSeen(e)
		}
	case client.EventDM:
		m := e.DM
		if c.ignored.has(m.Sender) {
			return // the session drops them; a DM in flight when ignored
		}
		line := Line{
			Kind:    LineMessage,
			Author:  m.Sender,
			Channel: "private(" + m.Sender.String() + ")",
			User:    client.Sanitize(m.Username),
			Body:    client.Sanitize(m.Body),
			Time:    time.UnixMilli(m.Timestamp),
		}
		line.Text = line.User + "@" + line.Channel + " - " + line.Body
		c.stamp(&line)
		c.print(line)
	case client.EventDMStatus:
		c.dmStatusOf(e.To, e.ID, e.Delivered, e.Err)
	case client.EventJoined:
		c.notice("Joined " + e.Channel + " as " + e.Username)
		c.sawName(e.Channel, e.Username, c.cfg.Key.Public())
		if s := c.Session(); s != nil {
			c.joinedHistory(s, e.Channel)
			if c.cfg.OnJoined != nil {
				c.cfg.OnJoined(s, e.Channel, e.Username)
			}
		}
	case client.EventLeft:
		c.notice("Left " + e.Channel)
		if c.cfg.OnLeft != nil {
			c.cfg.OnLeft(e.Channel)
		}
	case client.EventError:
		if c.ownedChannelError(e.Err) {
			return // moderation.go
		}
		c.noteRefused(e.Err) // keep.go
		c.errorf("%s", client.Sanitize(e.Err.Error()))
	case client.EventWarning:
		c.errorf("%s", client.Sanitize(e.Err.Error()))
	case client.EventPresence:
		c.presenceNotice(e)
		if c.cfg.OnPresence != nil {
			c.cfg.OnPresence(e)
		}
	case client.EventRules:
		c.rulesNotice(e) // moderation.go
	case client.EventKicked:
		c.kickedNotice(e)
		if e.Key == c.cfg.Key.Public() && c.cfg.OnLeft != nil {
			c.cfg.OnLeft(e.Channel) // out of the channel, as a leave
		}
	case client.EventSessions:
		if e.Count > 1 {
			c.notice(fmt.Sprintf("Your identity is logged in %d times on this node: another client uses it too (give each user its own with --key FILE)", e.Count))
		} else {
			c.notice("Your identity's other clients on this node have gone")
		}
	case client.EventClosed:
		if e.Err == nil {
			return
		}
		c.markBroken()
		var nodeErr *client.Error
		if errors.As(e.Err, &nodeErr) {
			c.notice("Disconnected by the node") // its error was printed
			return
		}
		c.errorf("disconnected: %s", client.Sanitize(e.Err.Error()))
	}
}

// historyEnd prints the end of a history request: how many messages came
// (those already shown are not printed again). An automatic request that
// brought nothing new ends without a word.
func (c *Interpreter) historyEnd(e client.EventHistoryEnd) {
	if e.Auto {
		// The session asked by itself, for messages it missed: they
		// were shown as they came (late), and that is all.
		return
	}
	c.mu.Lock()
	auto := c.auto.Has(e.ID)
	c.auto.Delete(e.ID)
	c.mu.Unlock()
	if e.Err != nil {
		if !auto {
			c.errorf("%s", client.Sanitize(e.Err.Error()))
		}
		return
	}
	if auto && e.Fresh == 0 {
		return
	}
	text := fmt.Sprintf("History of #%s: %d %s", e.Channel, e.Fresh, plural(e.Fresh, "message", "messages"))
	if shown := e.Count - e.Fresh; shown > 0 {
		text += fmt.Sprintf(" (%d more already shown)", shown)
	}
	c.notice(text)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// stamp puts the time before a message line, with Config.Timestamps.
func (c *Interpreter) stamp(l *Line) {
	switch {
	case !c.cfg.Timestamps || l.Mark != "":
		return
	case c.cfg.Interactive:
		l.Stamp = "[" + l.Time.Local().Format("15:04") + "] "
	default:
		l.Stamp = l.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00") + " "
	}
	l.Text = l.Stamp + l.Text
}

// echo prints the user's own message, with Config.Echo.
func (c *Interpreter) echo(user, channel, body string, at time.Time, dmID string) {
	if !c.cfg.Echo {
		return
	}
	l := Line{Kind: LineMessage, Author: c.cfg.Key.Public(), Channel: channel, User: client.Sanitize(user),
		Body: client.Sanitize(body), Time: at, Own: true, DM: dmID}
	l.Text = l.User + "@" + l.Channel + " - " + l.Body
	if dmID == "" {
		c.actionLine(&l)
	}
	c.stamp(&l)
	c.print(l)
}

// lateMark is the mark before a late message in interactive mode: its
// author's time, local, with the date when it is not today's.
func lateMark(at, now time.Time) string {
	at, now = at.Local(), now.Local()
	layout := "15:04"
	if y, m, d := at.Date(); y != now.Year() || m != now.Month() || d != now.Day() {
		layout = "Jan 2 15:04"
	}
	return "[late " + at.Format(layout) + "] "
}

func (c *Interpreter) now() time.Time {
	if c.cfg.Now != nil {
		return c.cfg.Now()
	}
	return time.Now()
}

// loginFailed prints why a connect or verify failed and marks the run as
// failed. A session that ended on its own has already printed why (its
// EventClosed was handled before Close returned).
func (c *Interpreter) loginFailed(s *client.Session, err error) {
	c.markBroken()
	if s != nil {
		if end := s.Err(); end != nil && !errors.Is(end, client.ErrClosedByUser) {
			return
		}
	}
	c.fail(fmt.Errorf("login failed: %w", err))
}

// notJoined tells the user that channel must be joined first.
func (c *Interpreter) notJoined(channel string) {
	c.errorf("not in channel %s: join it first (join %s <username>)", channel, channel)
}

// failIn reports err from a request about channel: a channel not joined
// as notJoined, anything else as fail.
func (c *Interpreter) failIn(channel string, err error) {
	if errors.Is(err, client.ErrNotJoined) {
		c.notJoined(channel)
		return
	}
	c.fail(err)
}

// fail prints err, unless it is the node's error, which onEvent printed
// when it arrived.
func (c *Interpreter) fail(err error) {
	var nodeErr *client.Error
	if errors.As(err, &nodeErr) {
		return
	}
	c.errorf("%s", client.Sanitize(err.Error()))
}

func (c *Interpreter) markBroken() {
	c.brokenOnce.Do(func() { close(c.broken) })
}

func (c *Interpreter) notice(text string) { c.print(Line{Kind: LineNotice, Text: text}) }

func (c *Interpreter) errorf(format string, args ...any) {
	c.print(Line{Kind: LineError, Text: "ERROR: " + fmt.Sprintf(format, args...)})
}

func (c *Interpreter) print(l Line) {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	c.cfg.Output(l)
}
