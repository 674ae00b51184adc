package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"darkchat/client/command"
	"darkchat/internal/cliflag"
)

// usageError is a command-line mistake: main prints it with a hint and
// exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

const usageText = `usage:
  darkchat [flags] <server-ip> <server-port>        chat through a node's TCP gateway
  darkchat [flags] --ws <server-ip> <server-port>   chat through a node's WebSocket gateway (ws://ip:port/ws)
  darkchat [flags] <ws://host:port/path | wss://…>  chat through the WebSocket gateway at that URL
  darkchat keygen [--key FILE]                      create an identity (never overwrites one)
  darkchat id [--key FILE]                          print your public key (64 hex characters)
  darkchat sign [--key FILE] <challenge>            print your login signature for a challenge

Flags may come before or after the arguments. The identity file defaults to
$DARKCHAT_KEY, else $XDG_CONFIG_HOME/darkchat/identity.key, else
~/.config/darkchat/identity.key; it is created on first use, except by keygen,
which refuses to overwrite one.

Type help in the chat for its commands.
`

// chatOptions is the configuration of the chat command.
type chatOptions struct {
	key        string
	manual     bool
	wait       time.Duration
	name       string
	node       string
	ws         bool
	timestamps bool
	unlisted   bool
	// Derived from the positional arguments: exactly one is set.
	tcpAddr string
	wsURL   string
	// fallbacks are the other nodes to move to when the node in use is
	// gone, in order (--fallback): each a TCP address, or a WebSocket URL.
	fallbacks []nodeAddr
}

// nodeAddr is one node's gateway: a TCP address or a WebSocket URL.
type nodeAddr struct{ tcp, ws string }

func (a nodeAddr) String() string { return a.tcp + a.ws }

// fallbackFlag collects --fallback values.
type fallbackFlag struct{ values []string }

func (f *fallbackFlag) String() string { return strings.Join(f.values, ",") }
func (f *fallbackFlag) Set(v string) error {
	if len(f.values) >= command.MaxFallbacks {
		return fmt.Errorf("at most %d fallback nodes", command.MaxFallbacks)
	}
	f.values = append(f.values, v)
	return nil
}

// parseNodeAddr reads a --fallback value: a ws:// or wss:// URL, or
// host:port of the same kind of gateway as the first node's.
func parseNodeAddr(v string, ws bool) (nodeAddr, error) {
	if strings.HasPrefix(v, "ws://") || strings.HasPrefix(v, "wss://") {
		u, err := url.Parse(v)
		if err != nil || u.Host == "" {
			return nodeAddr{}, usageErrorf("--fallback %q is not a ws:// or wss:// URL", v)
		}
		return nodeAddr{ws: v}, nil
	}
	host, port, err := net.SplitHostPort(v)
	if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
		return nodeAddr{}, usageErrorf("--fallback %q must be <host>:<port> or a ws:// URL", v)
	}
	addr := net.JoinHostPort(host, port)
	if ws {
		return nodeAddr{ws: "ws://" + addr + "/ws"}, nil
	}
	return nodeAddr{tcp: addr}, nil
}

// newFlagSet returns a flag set that prints nothing itself: parse errors
// are reported by run on stderr, and parseInterspersed prints --help's
// usage on the writer it is given (stdout: help asked for is output).
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // flag calls it on errors too
	return fs
}

func keyFlag(fs *flag.FlagSet, p *string) {
	fs.StringVar(p, "key", "", "identity key `FILE` (default $DARKCHAT_KEY or $XDG_CONFIG_HOME/darkchat/identity.key)")
}

// parseChat parses the chat command's arguments.
func parseChat(args []string, out io.Writer) (*chatOptions, error) {
	o := &chatOptions{}
	fs := newFlagSet("darkchat")
	keyFlag(fs, &o.key)
	fs.BoolVar(&o.manual, "manual-auth", false, "log in by hand: connect shows the challenge, sign <challenge> signs it, verify <signature> logs in")
	fs.DurationVar(&o.wait, "wait", 0, "scripted use: after the input ends and every message is answered, stay connected this `DURATION` to keep printing what arrives")
	fs.StringVar(&o.name, "name", "", "the username `NAME` your direct messages carry (the nick command changes it)")
	fs.StringVar(&o.node, "node", "", "log in only if the node's challenge names `PEER_ID`, the node you mean to reach")
	fs.BoolVar(&o.ws, "ws", false, "use the node's WebSocket gateway at ws://<server-ip>:<server-port>/ws")
	fs.BoolVar(&o.timestamps, "timestamps", false, "scripted use: start each message line with its author's time (RFC 3339, UTC, milliseconds) and a space")
	fs.BoolVar(&o.unlisted, "unlisted", false, "do not list yourself in the channels you join (names, join and leave notices); you still see who is there")
	fallbacks := &fallbackFlag{}
	fs.Var(fallbacks, "fallback", "another node's gateway `ADDR` (host:port, of the same kind, or a ws:// URL) to move to when the node in use is gone; repeatable")
	pos, err := parseInterspersed(fs, args, out)
	if err != nil {
		return nil, err
	}
	for _, v := range fallbacks.values {
		a, err := parseNodeAddr(v, o.ws)
		if err != nil {
			return nil, err
		}
		o.fallbacks = append(o.fallbacks, a)
	}
	if o.node != "" && len(o.fallbacks) > 0 {
		return nil, usageErrorf("--node names the one node to log in to; it cannot be combined with --fallback")
	}
	if o.wait < 0 {
		return nil, usageErrorf("--wait %v must not be negative", o.wait)
	}
	switch len(pos) {
	case 1:
		u, err := url.Parse(pos[0])
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			return nil, usageErrorf("%q is not a ws:// or wss:// URL; give <server-ip> <server-port> for a TCP gateway", pos[0])
		}
		if o.ws {
			return nil, usageErrorf("--ws takes <server-ip> <server-port>, not a URL")
		}
		o.wsURL = pos[0]
	case 2:
		if pos[0] == "" {
			return nil, usageErrorf("<server-ip> is empty")
		}
		port, err := strconv.Atoi(pos[1])
		if err != nil || port < 1 || port > 65535 {
			return nil, usageErrorf("<server-port> %q must be a port number 1..65535", pos[1])
		}
		addr := net.JoinHostPort(pos[0], strconv.Itoa(port))
		if o.ws {
			o.wsURL = "ws://" + addr + "/ws"
		} else {
			o.tcpAddr = addr
		}
	case 0:
		return nil, usageErrorf("missing <server-ip> <server-port>")
	default:
		return nil, usageErrorf("too many arguments: %q", pos)
	}
	return o, nil
}

// parseKeyCommand parses keygen, id and sign: --key and nargs positionals.
func parseKeyCommand(name string, nargs int, args []string, out io.Writer) (key string, pos []string, err error) {
	fs := newFlagSet("darkchat " + name)
	keyFlag(fs, &key)
	pos, err = parseInterspersed(fs, args, out)
	if err != nil {
		return "", nil, err
	}
	if len(pos) != nargs {
		if nargs == 0 {
			return "", nil, usageErrorf("%s takes no arguments, got %q", name, pos)
		}
		return "", nil, usageErrorf("usage: darkchat %s [--key FILE] <challenge>", name)
	}
	return key, pos, nil
}

// parseInterspersed parses flags anywhere among the positional arguments,
// prints the usage and the flags to help on --help, and turns parse errors
// into usage errors.
func parseInterspersed(fs *flag.FlagSet, args []string, help io.Writer) ([]string, error) {
	pos, err := cliflag.ParseInterspersed(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(help, usageText)
		fmt.Fprintln(help, "\nflags:")
		cliflag.PrintDefaults(help, fs, nil)
	} else if err != nil {
		return nil, usageErrorf("%v", err)
	}
	return pos, err
}

// keyPath resolves the identity file: --key, else $DARKCHAT_KEY, else
// $XDG_CONFIG_HOME/darkchat/identity.key, else ~/.config/darkchat/identity.key.
func keyPath(flagValue string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if p := os.Getenv("DARKCHAT_KEY"); p != "" {
		return p, nil
	}
	// The XDG spec says a relative $XDG_CONFIG_HOME is invalid and must
	// be ignored.
	if dir := os.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(dir) {
		return filepath.Join(dir, "darkchat", "identity.key"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the identity file: %w (use --key FILE)", err)
	}
	return filepath.Join(home, ".config", "darkchat", "identity.key"), nil
}
