package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"darkchat/gateway"
	"darkchat/p2p"
)

// maxCommandLen bounds one console or admin command line. The longest
// legitimate command, connect with a multiaddr, is a few hundred bytes.
const maxCommandLen = 4096

// defaultConnectTimeout bounds `connect`: learning the peer ID and dialling.
const defaultConnectTimeout = 15 * time.Second

var errLineTooLong = fmt.Errorf("command line too long (limit %d bytes)", maxCommandLen)

// nodeAPI is the part of *p2p.Node the console drives.
type nodeAPI interface {
	ID() peer.ID
	Addrs() []ma.Multiaddr
	Peers() []p2p.PeerInfo
	Channels() map[string]int
	NATReport() []string
	Connect(ctx context.Context, target string) (peer.ID, error)
	ConnectAddress(ctx context.Context, ip netip.Addr, port int) (peer.ID, error)
}

// console interprets console commands. The interactive prompt and the admin
// socket share one console, so a command behaves and prints identically on
// both. It is safe for concurrent use.
type console struct {
	node nodeAPI
	// shutdown starts the node's graceful shutdown without waiting for
	// it; `exit` calls it.
	shutdown func()
	// figures returns `stats`' lines: the node's figures over the last
	// minute, from its metrics sampler. nil: the command fails.
	figures        func() []string
	connectTimeout time.Duration
	// bans is the operator's ban list (bans.go); log receives a line per
	// ban and unban.
	bans *gateway.BanList
	log  *slog.Logger
}

type command struct {
	name, args, help string
	run              func(c *console, ctx context.Context, args []string) ([]string, error)
}

// commands is in the order `help` lists them.
var commands []command

func init() {
	commands = []command{
		{"connect", "<peer-ip> <peer-port>", "peer with a node known only by address (its peer ID is learned)", (*console).connect},
		{"connect", "<multiaddr>", "peer with a node by full multiaddr (…/p2p/<peer-id>)", (*console).connect},
		{"peers", "", "list connected peers: id, remote address, direct or relayed", (*console).peers},
		{"id", "", "print this node's peer ID and listen addresses", (*console).id},
		{"channels", "", "list channels with local members and member counts", (*console).channels},
		{"nat", "", "reachability report: AutoNAT verdict, observed addrs, relays, hole punching", (*console).nat},
		{"stats", "", "the node at a glance: peers, sessions, message rates, drops, latency, DMs", (*console).stats},
		{"ban", "<public-key> [reason]", "drop a user's channel messages here (not delivered, not forwarded) and refuse its logins", (*console).ban},
		{"unban", "<public-key>", "lift a ban", (*console).unban},
		{"bans", "", "list the banned keys: key, since when, reason", (*console).bansList},
		{"help", "", "list the commands", (*console).help},
		{"exit", "", "shut the node down gracefully", (*console).exit},
	}
}

func helpText() string {
	var b strings.Builder
	for _, l := range helpLines() {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}

func helpLines() []string {
	lines := make([]string, 0, len(commands))
	for _, cmd := range commands {
		lines = append(lines, fmt.Sprintf("  %-32s %s", strings.TrimSpace(cmd.name+" "+cmd.args), cmd.help))
	}
	return lines
}

// Exec runs one command line and returns its output lines. A blank line
// does nothing. On failure it returns an error and no output; render turns
// it into the single ERROR: line the user sees.
func (c *console) Exec(ctx context.Context, line string) ([]string, error) {
	if len(line) > maxCommandLen {
		return nil, errLineTooLong
	}
	words := strings.Fields(line)
	if len(words) == 0 {
		return nil, nil
	}
	name, args := words[0], words[1:]
	for _, cmd := range commands {
		if cmd.name == name {
			return cmd.run(c, ctx, args)
		}
	}
	return nil, fmt.Errorf("unknown command %q (type help for the list)", name)
}

// render is what a user sees for Exec's result: the output lines, or
// exactly one line "ERROR: <reason>".
func render(lines []string, err error) []string {
	if err != nil {
		return []string{"ERROR: " + oneLine(err.Error())}
	}
	return lines
}

// maxErrorLen bounds an ERROR line; libp2p dial errors list every address
// tried and can run long.
const maxErrorLen = 1024

// oneLine folds a multi-line error message onto one line.
func oneLine(s string) string {
	var parts []string
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	s = strings.Join(parts, "; ")
	if len(s) > maxErrorLen {
		s = s[:maxErrorLen] + "…"
	}
	return s
}

func noArgs(name string, args []string) error {
	if len(args) != 0 {
		return fmt.Errorf("%s takes no arguments", name)
	}
	return nil
}

const connectUsage = "usage: connect <peer-ip> <peer-port> | connect <multiaddr>"

func (c *console) connect(ctx context.Context, args []string) ([]string, error) {
	timeout := c.connectTimeout
	if timeout <= 0 {
		timeout = defaultConnectTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var (
		id      peer.ID
		err     error
		learned string // the address the ID was learned from, if it was
		target  string
	)
	switch {
	case len(args) == 2:
		ip, perr := netip.ParseAddr(args[0])
		if perr != nil {
			return nil, fmt.Errorf("connect: %q is not an IP address; %s", args[0], connectUsage)
		}
		port, perr := strconv.Atoi(args[1])
		if perr != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("connect: %q is not a port number 1..65535; %s", args[1], connectUsage)
		}
		ip = ip.Unmap()
		target = netip.AddrPortFrom(ip, uint16(port)).String()
		learned = target
		id, err = c.node.ConnectAddress(ctx, ip, port)
	case len(args) == 1 && strings.HasPrefix(args[0], "/"):
		target = args[0]
		addr, perr := ma.NewMultiaddr(target)
		if perr != nil {
			return nil, fmt.Errorf("connect: bad multiaddr %q: %v", target, perr)
		}
		if _, perr := addr.ValueForProtocol(ma.P_P2P); perr != nil {
			learned = target // p2p learns the ID of a multiaddr without /p2p/
		}
		id, err = c.node.Connect(ctx, target)
	case len(args) == 1:
		target = args[0]
		if _, perr := netip.ParseAddrPort(target); perr != nil {
			if _, perr := netip.ParseAddr(target); perr == nil {
				return nil, fmt.Errorf("connect: missing <peer-port> after %s; %s", target, connectUsage)
			}
			return nil, fmt.Errorf("connect: %q is neither an IP address nor a multiaddr; %s", target, connectUsage)
		}
		learned = target
		id, err = c.node.Connect(ctx, target)
	default:
		return nil, errors.New("connect: wrong number of arguments; " + connectUsage)
	}
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return nil, fmt.Errorf("connect %s: no answer within %v", target, timeout)
		}
		return nil, fmt.Errorf("connect %s: %v", target, err)
	}
	if learned != "" {
		return []string{fmt.Sprintf("Connected to %s (learned its ID from %s)", id, learned)}, nil
	}
	return []string{fmt.Sprintf("Connected to %s", id)}, nil
}

func (c *console) peers(_ context.Context, args []string) ([]string, error) {
	if err := noArgs("peers", args); err != nil {
		return nil, err
	}
	ps := c.node.Peers()
	if len(ps) == 0 {
		return []string{"No Peers Connected !"}, nil
	}
	out := []string{fmt.Sprintf("CONNECTED PEERS (%d):", len(ps))}
	for i, p := range ps {
		kind := "direct"
		if p.Relayed {
			kind = "relayed"
		}
		out = append(out, fmt.Sprintf("%d. %s %s %s", i+1, p.ID, p.Addr, kind))
	}
	return out, nil
}

func (c *console) id(_ context.Context, args []string) ([]string, error) {
	if err := noArgs("id", args); err != nil {
		return nil, err
	}
	out := []string{c.node.ID().String()}
	for _, a := range c.node.Addrs() {
		out = append(out, a.String())
	}
	return out, nil
}

func (c *console) channels(_ context.Context, args []string) ([]string, error) {
	if err := noArgs("channels", args); err != nil {
		return nil, err
	}
	chs := c.node.Channels()
	if len(chs) == 0 {
		return []string{"No Channels"}, nil
	}
	names := make([]string, 0, len(chs))
	for name := range chs {
		names = append(names, name)
	}
	sort.Strings(names)
	out := []string{fmt.Sprintf("CHANNELS (%d):", len(chs))}
	for i, name := range names {
		unit := "members"
		if chs[name] == 1 {
			unit = "member"
		}
		out = append(out, fmt.Sprintf("%d. %s %d %s", i+1, name, chs[name], unit))
	}
	return out, nil
}

func (c *console) nat(_ context.Context, args []string) ([]string, error) {
	if err := noArgs("nat", args); err != nil {
		return nil, err
	}
	return c.node.NATReport(), nil
}

func (c *console) stats(_ context.Context, args []string) ([]string, error) {
	if err := noArgs("stats", args); err != nil {
		return nil, err
	}
	if c.figures == nil {
		return nil, errors.New("stats: this node keeps no figures")
	}
	return c.figures(), nil
}

func (c *console) help(_ context.Context, args []string) ([]string, error) {
	if err := noArgs("help", args); err != nil {
		return nil, err
	}
	return append([]string{"Commands:"}, helpLines()...), nil
}

func (c *console) exit(_ context.Context, args []string) ([]string, error) {
	if err := noArgs("exit", args); err != nil {
		return nil, err
	}
	if c.shutdown != nil {
		c.shutdown()
	}
	return []string{"Shutting down"}, nil
}

// readLine reads one line of at most limit bytes from r, without its line
// ending. A longer line is consumed to its end and reported with
// errLineTooLong, so the reader stays in step with the input. At end of
// input it returns io.EOF along with any unterminated last line.
func readLine(r *bufio.Reader, limit int) (string, error) {
	var buf []byte
	tooLong := false
	for {
		chunk, err := r.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > limit+2 { // +2 for "\r\n"
				tooLong, buf = true, nil
			} else {
				buf = append(buf, chunk...)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		line := strings.TrimRight(string(buf), "\r\n")
		if tooLong || len(line) > limit {
			if err == nil {
				return "", errLineTooLong
			}
			return "", errors.Join(errLineTooLong, err)
		}
		return line, err
	}
}

// runConsole reads commands from in until it ends or ctx is done, printing
// each command's output. On a terminal it shows a prompt, and the end of
// input (Ctrl-D) shuts the node down; otherwise (a pipe, /dev/null) the end
// of input only ends the console and the node keeps running.
//
// With ct (a terminal on both sides) the line editor shows the prompt and
// keeps it below whatever else is printed.
func (c *console) runConsole(ctx context.Context, in io.Reader, terminal bool, ct *consoleTerm, out *printer, log *slog.Logger) {
	r := bufio.NewReaderSize(in, 2*maxCommandLen)
	read := func() (string, error) { return readLine(r, maxCommandLen) }
	if ct != nil {
		read = ct.readLine
	}
	for ctx.Err() == nil {
		if terminal && ct == nil {
			out.prompt()
		}
		line, err := read()
		if ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(err, errLineTooLong):
			out.lines(render(nil, errLineTooLong)...)
		case strings.TrimSpace(line) != "":
			out.lines(render(c.Exec(ctx, line))...)
		}
		if err != nil && (errors.Is(err, io.EOF) || !errors.Is(err, errLineTooLong)) {
			if terminal {
				if ct == nil {
					out.lines("") // end the prompt's line
				}
				log.Info("console input closed; shutting down")
				c.shutdown()
			} else if errors.Is(err, io.EOF) {
				log.Info("console input ended; the node keeps running (stop it with a signal or `darkchatd ctl exit`)")
			} else {
				log.Warn("console input failed; the node keeps running", "err", err)
			}
			return
		}
	}
}
