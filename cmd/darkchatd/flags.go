package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	ma "github.com/multiformats/go-multiaddr"

	"darkchat/gateway"
	"darkchat/internal/cliflag"
	"darkchat/p2p"
	"darkchat/web"
)

// envPrefix turns a flag name into its environment variable:
// --data-dir is DARKCHAT_DATA_DIR.
const envPrefix = "DARKCHAT_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// usageError is a command-line mistake: main prints it with a hint and
// exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// serverType is one of the three node roles (full, cli, websock; see the
// README).
type serverType struct {
	name string
	// positional names the arguments after <ip>, in order.
	positional []string
	cli, ws    bool
}

var serverTypes = []serverType{
	{name: "full", positional: []string{"cli-port", "ws-port", "peer-port"}, cli: true, ws: true},
	{name: "cli", positional: []string{"cli-port", "peer-port"}, cli: true},
	{name: "websock", positional: []string{"ws-port", "peer-port"}, ws: true},
}

func lookupServerType(name string) (serverType, bool) {
	for _, st := range serverTypes {
		if st.name == name {
			return st, true
		}
	}
	return serverType{}, false
}

func (st serverType) synopsis() string {
	s := "darkchatd " + st.name + " <ip>"
	for _, p := range st.positional {
		s += " <" + p + ">"
	}
	return s + " [flags]"
}

// consoleMode is --console / --no-console; auto means "when stdin is a
// terminal".
type consoleMode int

const (
	consoleAuto consoleMode = iota
	consoleOn
	consoleOff
)

// options is everything a server subcommand is configured with. New
// settings (gateway limits and the like) get a field here and one line in
// registerFlags; the environment variable, --help text and validation hooks
// follow from that. A repeatable flag is a cliflag.List with a parser of its
// own, so each value is checked as it is given, from either source. Every
// flag needs an entry in flagCases (flagtable_test.go).
type options struct {
	typ serverType

	// Positional arguments. A port of 0 picks a free one.
	ip       netip.Addr
	cliPort  int
	wsPort   int
	peerPort int

	peers          *cliflag.List[string] // checked peer addresses, as given
	dataDir        string
	admin          string
	console        consoleMode
	logMessages    bool
	logLevel       slog.Level
	tlsCert        string
	tlsKey         string
	relayService   bool
	reachability   p2p.ReachabilityMode
	publicCIDRs    *cliflag.List[netip.Prefix]
	announce       *cliflag.List[[]ma.Multiaddr] // each value: its TCP and QUIC addresses
	authors        gateway.AuthorLimit
	connLow        int
	connHigh       int
	maxMessageSize int
	gateway        gateway.Config        // client gateway limits
	wsOrigins      *cliflag.List[string] // canonical origins or "*"
	webFallbacks   *cliflag.List[string] // other nodes' WebSocket URLs for the page
	metrics        string                // host:port of the metrics listener, or ""
	pprof          bool
}

// maxMessageSizeLimit caps --max-message-size: GossipSub refuses RPC frames
// over 1 MiB by default, and a message must fit in one frame with room for
// the frame's own fields.
const maxMessageSizeLimit = 512 << 10

// registerFlags declares every server flag on fs, writing into o. Its
// defaults are the daemon's defaults.
func registerFlags(fs *flag.FlagSet, o *options) {
	o.logLevel = slog.LevelInfo
	o.relayService = true
	o.peers = cliflag.NewList(parsePeerAddr)
	o.publicCIDRs = cliflag.NewList(parsePublicCIDR)
	o.announce = cliflag.NewList(p2p.ParseAnnounceAddr)
	o.wsOrigins = cliflag.NewList(parseOrigin)
	o.webFallbacks = cliflag.NewList(parseWebFallback)
	fs.Var(o.peers, "peer", "connect to this peer at start: `ADDR` is ip:port or a multiaddr ending in /p2p/<peer-id> (repeatable)")
	fs.StringVar(&o.dataDir, "data-dir", "", "`DIR` holding the node key and the operator's ban list, file bans (default $XDG_DATA_HOME/darkchat/node-<peer-port>,\n"+
		"or ~/.local/share/darkchat/node-<peer-port>; with peer port 0 and no --data-dir the identity is ephemeral)")
	fs.StringVar(&o.admin, "admin", "", "admin socket `PATH` (default $XDG_RUNTIME_DIR/darkchat/darkchatd-<peer-port>.sock,\n"+
		"or /tmp/darkchat-<uid>/darkchatd-<peer-port>.sock)")
	fs.Var(consoleFlag{&o.console, true}, "console", "read console commands from stdin (default: when stdin is a terminal)")
	fs.Var(consoleFlag{&o.console, false}, "no-console", "do not read console commands from stdin")
	fs.BoolVar(&o.logMessages, "log-messages", false, "log one line of metadata for each channel message this node accepts, from its clients or\n"+
		"forwarded: channel, author (first 16 hex digits of the key), id, bytes (size on the mesh) and from (the\n"+
		"forwarding peer, or local); never the username or text, and never direct messages")
	fs.Var(levelFlag{&o.logLevel}, "log-level", "log `LEVEL`: debug, info, warn or error (default info)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate `FILE` (PEM) for the WebSocket gateway; needs --tls-key")
	fs.StringVar(&o.tlsKey, "tls-key", "", "TLS private key `FILE` (PEM) for the WebSocket gateway; needs --tls-cert")
	fs.BoolVar(&o.relayService, "relay-service", true, "offer circuit relay v2 to NATed nodes while this node is publicly reachable")
	fs.Var(reachabilityFlag{&o.reachability}, "reachability", "whether others can dial this node, `MODE`: auto decides from evidence (AutoNAT v2,\n"+
		"inbound connections, the address peers see us at); public (a VPS, a forwarded port) relays for NATed nodes\n"+
		"at once; private never relays and always reserves relay slots (default auto)")
	fs.Var(o.announce, "announce", "also advertise `ADDR` (ip:port, meaning TCP and QUIC, or a multiaddr) as this node's address: a VPS\n"+
		"whose provider NATs a private interface address 1:1, or a forwarded port at home (repeatable)")
	fs.Var(o.publicCIDRs, "public-cidr", "treat addresses in `CIDR` as public internet addresses (testnets; repeatable)")
	fs.Float64Var(&o.authors.Rate, "author-rate", gateway.DefaultAuthorRate, "channel messages one author (key) may publish per second, sustained, checked by this node\n"+
		"for every message it verifies, from any gateway or peer (`N`; 0: no limit)")
	fs.IntVar(&o.authors.Burst, "author-burst", gateway.DefaultAuthorBurst, "channel messages one author may publish at once (`N`)")
	fs.IntVar(&o.connLow, "conn-low", p2p.DefaultConnLow, "connection manager low watermark (`N` peers)")
	fs.IntVar(&o.connHigh, "conn-high", p2p.DefaultConnHigh, "connection manager high watermark (`N` peers)")
	fs.IntVar(&o.maxMessageSize, "max-message-size", p2p.DefaultMaxMessageSize,
		fmt.Sprintf("largest channel message accepted from the mesh, in `BYTES` (at most %d)", maxMessageSizeLimit))

	g := &o.gateway
	fs.IntVar(&g.MaxLine, "max-line", gateway.DefaultMaxLine, "largest client line or WebSocket frame, in `BYTES`")
	fs.IntVar(&g.MaxChannels, "max-channels", gateway.DefaultMaxChannels, "channels one client session may join (`N`)")
	fs.IntVar(&g.MaxChannelsPerIP, "max-channels-per-ip", gateway.DefaultMaxChannelsPerIP, "distinct channels the client sessions from one IP address or IPv6 /64 may be in together (`N`)")
	fs.IntVar(&g.MaxNodeChannels, "max-node-channels", gateway.DefaultMaxNodeChannels,
		fmt.Sprintf("distinct channels with members on this node (`N`, at most %d: the node's topics must stay within\n"+
			"what each mesh peer accepts)", gateway.MaxNodeChannelsLimit))
	fs.IntVar(&g.MaxSessionsPerIP, "max-sessions-per-ip", gateway.DefaultMaxSessionsPerIP, "client connections from one IP address or IPv6 /64, both gateways together,\n"+
		"counted from accept (sessions and unfinished WebSocket handshakes) (`N`)")
	fs.IntVar(&g.MaxConns, "max-conns", 0, "client connections on both gateways together (`N`; default: half the open-file limit\n"+
		"less 256, the other half being the mesh's)")
	fs.DurationVar(&g.LoginTimeout, "login-timeout", gateway.DefaultLoginTimeout, "time a client has to log in (`DURATION`)")
	fs.Float64Var(&g.Rate, "rate", gateway.DefaultRate, "messages a client may send per second, sustained (`N`)")
	fs.IntVar(&g.Burst, "burst", gateway.DefaultBurst, "messages a client may send at once (`N`)")
	fs.IntVar(&g.SendQueue, "send-queue", gateway.DefaultSendQueue, "frames queued for a client; one that falls behind may queue up to 8 times this, out of room for 64 times this shared by all clients, before it is dropped as too slow (`N`)")
	fs.Var(hostPortFlag{&o.metrics}, "metrics", "serve Prometheus metrics (/metrics) and health checks (/healthz, /readyz) over plain HTTP on `ADDR`,\n"+
		"host:port such as 127.0.0.1:9464 (off by default). Keep it on loopback or a private network:\n"+
		"it shows the node's traffic, peers and limits to anyone who can reach it")
	fs.BoolVar(&o.pprof, "pprof", false, "also serve Go's profiler under /debug/pprof/ on the --metrics listener (needs --metrics)")
	fs.Var(o.wsOrigins, "ws-origin", "also accept WebSocket connections from pages at `ORIGIN`, scheme://host[:port] as browsers\n"+
		"send it (e.g. https://chat.example; * for any; repeatable). The gateway's own origin is always accepted")
	fs.Var(o.webFallbacks, "web-fallback", "another node's WebSocket gateway `URL` (ws://host:port/ws or wss://…) that the browser page served here moves\n"+
		"to when this node is gone, in order (repeatable, up to 16). That node must accept this one's page: --ws-origin")
}

// validate checks the flag values against each other; positional arguments
// are checked as they are parsed.
func (o *options) validate() error {
	if n := len(o.webFallbacks.Values()); n > web.MaxFallbacks {
		return usageErrorf("--web-fallback: at most %d fallback nodes, got %d", web.MaxFallbacks, n)
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return usageErrorf("--tls-cert and --tls-key go together: give both or neither")
	}
	if !(o.authors.Rate >= 0) || math.IsInf(o.authors.Rate, 0) || o.authors.Burst < 1 {
		return usageErrorf("--author-rate must be 0 (no limit) or positive and --author-burst at least 1, got %v and %d", o.authors.Rate, o.authors.Burst)
	}
	if o.connLow < 1 {
		return usageErrorf("--conn-low must be at least 1, got %d", o.connLow)
	}
	if o.connHigh <= o.connLow {
		return usageErrorf("--conn-high (%d) must be greater than --conn-low (%d)", o.connHigh, o.connLow)
	}
	g := o.gateway
	switch {
	case g.MaxLine < 1024 || g.MaxLine > 1<<20:
		return usageErrorf("--max-line must be between 1024 and %d bytes, got %d", 1<<20, g.MaxLine)
	case g.MaxChannels < 1:
		return usageErrorf("--max-channels must be at least 1, got %d", g.MaxChannels)
	case g.MaxChannelsPerIP < 1:
		return usageErrorf("--max-channels-per-ip must be at least 1, got %d", g.MaxChannelsPerIP)
	case g.MaxNodeChannels < 1 || g.MaxNodeChannels > gateway.MaxNodeChannelsLimit:
		return usageErrorf("--max-node-channels must be between 1 and %d, got %d", gateway.MaxNodeChannelsLimit, g.MaxNodeChannels)
	case g.MaxSessionsPerIP < 1:
		return usageErrorf("--max-sessions-per-ip must be at least 1, got %d", g.MaxSessionsPerIP)
	case g.MaxConns < 0:
		return usageErrorf("--max-conns must be at least 1 (or 0 for the default), got %d", g.MaxConns)
	case g.LoginTimeout <= 0:
		return usageErrorf("--login-timeout must be positive, got %v", g.LoginTimeout)
	case !(g.Rate > 0) || math.IsInf(g.Rate, 0):
		return usageErrorf("--rate must be positive, got %v", g.Rate)
	case g.Burst < 1:
		return usageErrorf("--burst must be at least 1, got %d", g.Burst)
	case g.SendQueue < 16:
		return usageErrorf("--send-queue must be at least 16, got %d", g.SendQueue)
	}
	if o.maxMessageSize < 1024 || o.maxMessageSize > maxMessageSizeLimit {
		return usageErrorf("--max-message-size must be between 1024 and %d bytes, got %d", maxMessageSizeLimit, o.maxMessageSize)
	}
	if o.pprof && o.metrics == "" {
		return usageErrorf("--pprof needs --metrics: the profiler is served only on the metrics listener")
	}
	if o.metrics != "" {
		_, p, _ := net.SplitHostPort(o.metrics)
		port, _ := strconv.Atoi(p)
		for _, other := range []struct {
			name string
			port int
			used bool
		}{{"<cli-port>", o.cliPort, o.typ.cli}, {"<ws-port>", o.wsPort, o.typ.ws}, {"<peer-port>", o.peerPort, true}} {
			if port != 0 && other.used && port == other.port {
				return usageErrorf("--metrics %s: port %d is the node's %s; the metrics listener needs a port of its own, never a gateway's", o.metrics, port, other.name)
			}
		}
	}
	return nil
}

// parseServerArgs parses the arguments after the subcommand name. getenv
// supplies DARKCHAT_* variables (os.Getenv in main).
func parseServerArgs(st serverType, args []string, getenv func(string) string, out io.Writer) (*options, error) {
	o := &options{typ: st}
	fs := flag.NewFlagSet("darkchatd "+st.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	registerFlags(fs, o)
	fs.Usage = func() {} // printed below, once, and only for --help
	if err := applyEnv(fs, getenv); err != nil {
		return nil, err
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			serverUsage(out, st)
		}
		return nil, err
	}
	want := 1 + len(st.positional)
	if len(pos) != want {
		return nil, usageErrorf("%s takes %d arguments, got %d\n  %s", st.name, want, len(pos), st.synopsis())
	}
	if o.ip, err = netip.ParseAddr(pos[0]); err != nil {
		return nil, usageErrorf("<ip> %q is not an IP address", pos[0])
	}
	o.ip = o.ip.Unmap()
	if o.ip.Zone() != "" {
		return nil, usageErrorf("<ip> %q: zoned IPv6 addresses are not supported", pos[0])
	}
	for i, name := range st.positional {
		port, err := parsePort(name, pos[1+i])
		if err != nil {
			return nil, err
		}
		switch name {
		case "cli-port":
			o.cliPort = port
		case "ws-port":
			o.wsPort = port
		case "peer-port":
			o.peerPort = port
		}
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	return o, nil
}

func parsePort(name, s string) (int, error) {
	p, err := strconv.Atoi(s)
	if err != nil || p < 0 || p > 65535 {
		return 0, usageErrorf("<%s> %q must be a port number 0..65535 (0 picks a free port)", name, s)
	}
	return p, nil
}

// parseInterspersed parses flags anywhere among the positional arguments
// and turns parse errors into usage errors.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	pos, err := cliflag.ParseInterspersed(fs, args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		return nil, usageErrorf("%v", err)
	}
	return pos, err
}

// applyEnv sets each flag from DARKCHAT_<FLAG_NAME> when that is set.
// Repeatable flags take a comma-separated list. It runs before the command
// line is parsed, so flags given there win.
func applyEnv(fs *flag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if err != nil {
			return
		}
		name := envName(f.Name)
		v := getenv(name)
		if v == "" {
			return
		}
		if l, ok := f.Value.(envList); ok {
			if e := l.SetList(v); e != nil {
				err = usageErrorf("%s=%q: %v", name, v, e)
			}
			return
		}
		if e := f.Value.Set(v); e != nil {
			err = usageErrorf("%s=%q: %v", name, v, e)
		}
	})
	return err
}

// envList is a repeatable flag (cliflag.List): values from the environment
// are replaced, not extended, by the first value given on the command line.
type envList interface {
	SetList(commaSeparated string) error
}

// parsePeerAddr is --peer's parser. It accepts what p2p.Node.Connect
// accepts: ip:port, or a multiaddr ending in /p2p/<peer-id>.
func parsePeerAddr(s string) (string, error) {
	if strings.HasPrefix(s, "/") {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return "", fmt.Errorf("bad multiaddr %q: %w", s, err)
		}
		if _, err := a.ValueForProtocol(ma.P_P2P); err != nil {
			return "", fmt.Errorf("multiaddr %q must end in /p2p/<peer-id>", s)
		}
		return s, nil
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 {
		return "", fmt.Errorf("%q is neither ip:port nor a multiaddr", s)
	}
	return s, nil
}

// parsePublicCIDR is --public-cidr's parser: the network of a CIDR (host
// bits cleared).
func parsePublicCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad CIDR %q", s)
	}
	return p.Masked(), nil
}

// parseWebFallback is --web-fallback's parser.
func parseWebFallback(s string) (string, error) {
	if _, err := web.ParseFallback(s); err != nil {
		return "", err
	}
	return s, nil
}

// parseOrigin is --ws-origin's parser. The gateway compares a handshake's
// Origin header with the configured origins byte for byte (checkOrigin in
// gateway/server.go), and browsers send an origin serialised (RFC 6454
// §6.2): scheme://host[:port] in lower case, without the scheme's default
// port, path, query or fragment. So a value is checked and put in that form
// here: any other spelling could never match, and the refusals it caused
// would be the operator's only clue. "*" accepts any origin. "null" (the
// origin of local files and sandboxed pages) is refused: every such page
// shares it.
func parseOrigin(s string) (string, error) {
	if s == "*" {
		return s, nil
	}
	const form = "an origin is scheme://host[:port], as in https://chat.example"
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Opaque != "" || u.Host == "" {
		return "", fmt.Errorf("origin %q is not scheme://host[:port]: %s", s, form)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return "", fmt.Errorf("origin %q has more than scheme://host[:port] (no user, path, query or fragment): %s", s, form)
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return "", fmt.Errorf("origin %q: an IPv6 zone is never part of an origin", s)
		}
	} else if strings.IndexFunc(host, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_')
	}) >= 0 {
		return "", fmt.Errorf("origin %q: host %q is not a host name (give an internationalised name in its ASCII xn-- form, as browsers send it)", s, host)
	}
	if port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("origin %q: bad port %q", s, port)
		}
	}
	if scheme == "http" && port == "80" || scheme == "https" && port == "443" {
		port = "" // browsers leave the default port out
	}
	if port != "" {
		return scheme + "://" + net.JoinHostPort(host, port), nil
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host, nil
}

// hostPortFlag is --metrics: host:port, the host optional (all
// interfaces), the port a number (0 picks a free one).
type hostPortFlag struct{ s *string }

func (f hostPortFlag) String() string {
	if f.s == nil {
		return ""
	}
	return *f.s
}

func (f hostPortFlag) Set(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("want host:port, such as 127.0.0.1:9464")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("want host:port, such as 127.0.0.1:9464; bad port %q", port)
	}
	*f.s = v
	return nil
}

// consoleFlag is --console (on=true) or --no-console (on=false); both write
// one tri-state, and the last one given wins.
type consoleFlag struct {
	mode *consoleMode
	on   bool
}

func (c consoleFlag) IsBoolFlag() bool { return true }

func (c consoleFlag) String() string {
	if c.mode == nil {
		return "false"
	}
	want := consoleOff
	if c.on {
		want = consoleOn
	}
	return strconv.FormatBool(*c.mode == want)
}

func (c consoleFlag) Set(v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return fmt.Errorf("want true or false")
	}
	if b == c.on {
		*c.mode = consoleOn
	} else {
		*c.mode = consoleOff
	}
	return nil
}

// reachabilityFlag is --reachability.
type reachabilityFlag struct{ m *p2p.ReachabilityMode }

func (f reachabilityFlag) String() string {
	if f.m == nil {
		return "auto"
	}
	return f.m.String()
}

func (f reachabilityFlag) Set(v string) error {
	m, err := p2p.ParseReachabilityMode(strings.ToLower(v))
	if err != nil {
		return errors.New("want auto, public or private")
	}
	*f.m = m
	return nil
}

type levelFlag struct{ l *slog.Level }

func (f levelFlag) String() string {
	if f.l == nil {
		return "info"
	}
	return strings.ToLower(f.l.String())
}

func (f levelFlag) Set(v string) error {
	switch strings.ToLower(v) {
	case "debug":
		*f.l = slog.LevelDebug
	case "info":
		*f.l = slog.LevelInfo
	case "warn", "warning":
		*f.l = slog.LevelWarn
	case "error":
		*f.l = slog.LevelError
	default:
		return fmt.Errorf("want debug, info, warn or error")
	}
	return nil
}

// defaultDataDir is the node key's directory when --data-dir is not given:
// one per peer port, so nodes on one machine never share an identity. It
// returns "" for an ephemeral identity (peer port 0: the port, and so the
// directory, would differ at every start).
func defaultDataDir(peerPort int, getenv func(string) string) (string, error) {
	if peerPort == 0 {
		return "", nil
	}
	base := getenv("XDG_DATA_HOME")
	if !filepath.IsAbs(base) { // the XDG spec says to ignore relative paths
		home := getenv("HOME")
		if home == "" {
			h, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("cannot find a home directory for the node key; pass --data-dir: %w", err)
			}
			home = h
		}
		base = filepath.Join(home, ".local", "share")
	}
	return filepath.Join(base, "darkchat", fmt.Sprintf("node-%d", peerPort)), nil
}

// defaultAdminDir holds the admin sockets of every node of this user. It is
// not the data dir: that holds only the node key and the ban list.
func defaultAdminDir(getenv func(string) string) string {
	if d := getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return filepath.Join(d, "darkchat")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("darkchat-%d", os.Getuid()))
}

func defaultAdminPath(dir string, peerPort int) string {
	return filepath.Join(dir, fmt.Sprintf("darkchatd-%d.sock", peerPort))
}

const usageEnvRule = `Every flag can also be set in the environment as DARKCHAT_<FLAG_NAME>: upper case,
'-' becomes '_' (DARKCHAT_DATA_DIR, DARKCHAT_PUBLIC_CIDR, DARKCHAT_NO_CONSOLE=true).
Repeatable flags take a comma-separated list there. Flags on the command line
override the environment. Flags may come before or after the arguments.`

// mainUsage is `darkchatd --help`.
func mainUsage(w io.Writer) {
	fmt.Fprintf(w, `darkchatd runs a darkchat mesh node.

Usage:
  darkchatd full    <ip> <cli-port> <ws-port> <peer-port> [flags]
  darkchatd cli     <ip> <cli-port> <peer-port>           [flags]
  darkchatd websock <ip> <ws-port> <peer-port>            [flags]
  darkchatd ctl [--admin PATH] <console command ...>
  darkchatd health [ADDR|URL]

  full     serves both the TCP (CLI) and the WebSocket client gateways
  cli      serves the TCP gateway for the command-line client
  websock  serves the WebSocket gateway for browser and WebSocket clients
  ctl      runs one console command on a running node via its admin socket
  health   asks a node's metrics listener (default $DARKCHAT_METRICS) whether
           it is ready (/readyz): exit 0 if so, 1 otherwise

<ip> is the address the gateways and the peer port listen on (0.0.0.0 for
all). libp2p listens on TCP and QUIC at <peer-port>. A port of 0 picks a
free one; the real ports are printed at start.

Flags of full, cli and websock:
`)
	fs := flag.NewFlagSet("darkchatd", flag.ContinueOnError)
	registerFlags(fs, &options{})
	printFlags(w, fs)
	fmt.Fprintf(w, "\n%s\n\nConsole commands (interactive console and ctl):\n%s", usageEnvRule, helpText())
}

func serverUsage(w io.Writer, st serverType) {
	fmt.Fprintf(w, "Usage:\n  %s\n\nFlags:\n", st.synopsis())
	fs := flag.NewFlagSet("darkchatd", flag.ContinueOnError)
	registerFlags(fs, &options{})
	printFlags(w, fs)
	fmt.Fprintf(w, "\n%s\n\nConsole commands:\n%s", usageEnvRule, helpText())
}

// printFlags is cliflag.PrintDefaults with each flag's environment
// variable.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	cliflag.PrintDefaults(w, fs, func(f *flag.Flag) string { return "env " + envName(f.Name) })
}

func ctlUsage(w io.Writer) {
	fmt.Fprintf(w, `Usage:
  darkchatd ctl [--admin PATH] <console command ...>

Runs one console command on a running node and prints its output. Exits 1
when the command fails (a line starting with ERROR:).

  --admin PATH
      the node's admin socket (env DARKCHAT_ADMIN). Without it, ctl uses the
      only node answering in %s.

Console commands:
%s`, defaultAdminDir(os.Getenv), helpText())
}
