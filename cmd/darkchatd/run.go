package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/term"

	"darkchat/gateway"
	"darkchat/identity"
	"darkchat/p2p"
	"darkchat/web"
)

// nodeCloseTimeout bounds closing the libp2p host at shutdown.
const nodeCloseTimeout = 10 * time.Second

// gatewayCloseTimeout bounds flushing shutdown notices to client sessions.
const gatewayCloseTimeout = 5 * time.Second

// messageLog is where --log-messages sends channel traffic, or nil without
// the flag. The channel validator is its only writer: it sees every message
// this node accepts, from its own clients and those it only forwards, once,
// and logs its metadata (gateway's logChannelMessage lists the fields; the
// flag's help must match). Direct messages are never logged.
func messageLog(o *options, log *slog.Logger) *slog.Logger {
	if !o.logMessages {
		return nil
	}
	return log.With("component", "traffic")
}

// runServer starts a node of type o.typ with its gateways, admin socket and
// console, prints where they listen, and serves until ctx is done or a
// console asks to exit; then it shuts everything down.
func runServer(ctx context.Context, o *options, stdin *os.File, stdout, stderr io.Writer, getenv func(string) string) (err error) {
	// The log and the printout go through the console's terminal while
	// it runs on one (termconsole.go), so that they never overwrite the
	// prompt or the command being typed.
	logOut, printOut := &swapWriter{w: stderr}, &swapWriter{w: stdout}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: o.logLevel}))

	var tlsConfig *tls.Config
	if o.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return fmt.Errorf("load --tls-cert/--tls-key: %w", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if !o.typ.ws {
			log.Warn("--tls-cert and --tls-key have no effect: a cli node has no WebSocket gateway")
		}
	}

	dataDir, err := o.resolvedDataDir(getenv)
	if err != nil {
		return err
	}
	key, err := nodeKey(dataDir, log)
	if err != nil {
		return err
	}
	if id, err := peer.IDFromPrivateKey(key); err == nil {
		log = log.With("node", id.String())
	}
	if len(o.publicCIDRs.Values()) > 0 {
		// Process-wide tables: must happen before the host starts.
		if err := p2p.DeclarePublicCIDRs(o.publicCIDRs.Values()); err != nil {
			return err
		}
		log.Info("treating CIDRs as public", "cidrs", o.publicCIDRs.String())
	}

	obs, err := startObservability(o, log)
	if err != nil {
		return err
	}
	defer obs.close() // last: /healthz answers while the node shuts down

	rules := gateway.NewRulesTable() // owned channels' records, shared by the validator and the gateway
	bans, err := loadBans(dataDir)
	if err != nil {
		return err
	}
	if n := bans.Len(); n > 0 {
		log.Info("loaded the ban list", "path", bans.Path(), "bans", n)
	}

	out := &printer{w: printOut}
	// One signature verifier for the node's channels, batching what
	// arrives together on every core; closed after the node.
	verifier := identity.NewVerifier(runtime.GOMAXPROCS(0), identity.DefaultVerifyBatch, identity.DefaultVerifyQueued)
	defer verifier.Close()
	node, err := p2p.New(p2p.Config{
		Key:            key,
		ListenIP:       o.ip,
		PeerPort:       o.peerPort,
		Bootstrap:      o.peers.Values(),
		MaxMessageSize: o.maxMessageSize,
		Validator: gateway.ChannelValidator(nil, gateway.DefaultTimestampWindow, o.authors, messageLog(o, log),
			gateway.WithBans(bans), gateway.WithRules(rules), gateway.WithVerifier(verifier)),
		ParallelValidation: gateway.ParallelValidation,
		InboxValidator:     gateway.InboxValidator(),
		BundleValidator:    gateway.BundleValidator{},
		RulesValidator:     gateway.RulesValidator{},
		RelayService:       o.relayService,
		Reachability:       o.reachability,
		Announce:           slices.Concat(o.announce.Values()...),
		ConnLow:            o.connLow,
		ConnHigh:           o.connHigh,
		Registerer:         obs.registerer(),
		Logger:             log,
		OnAddrsChanged:     out.addrsChanged,
	})
	if err != nil {
		return fmt.Errorf("start node: %w", err)
	}
	defer func() {
		if cerr := closeNode(node, log); err == nil {
			err = cerr
		}
	}()
	obs.nodeStarted(node)
	peerPort, err := boundTCPPort(node, o.peerPort)
	if err != nil {
		return err
	}

	// The daemon owns the gateway listeners; the gateway only serves them.
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	gwCfg := o.gateway
	gwCfg.AllowedOrigins = o.wsOrigins.Values()
	// The gateway does TLS itself, so that its connection limits apply
	// before a handshake is spent on a connection it refuses.
	gwCfg.TLS = tlsConfig
	gwCfg.Logger = log.With("component", "gateway")
	gwCfg.Registerer = obs.registerer()
	gwCfg.Bans = bans
	gwCfg.Rules = rules // owned channels: the validator's table
	page, err := web.Handler(o.webFallbacks.Values())
	if err != nil {
		return err
	}
	gw, err := gateway.New(gwCfg, node, node.ID().String(), page)
	if err != nil {
		return err
	}
	var gwWG sync.WaitGroup
	defer func() {
		// Sessions get a shutdown notice and a moment to flush it.
		ctx, cancel := context.WithTimeout(context.Background(), gatewayCloseTimeout)
		defer cancel()
		if err := gw.Close(ctx); err != nil {
			log.Warn("closing client sessions", "err", err)
		}
		gwWG.Wait()
	}()
	serve := func(name string, ln net.Listener, serveFn func(net.Listener) error) {
		gwWG.Add(1)
		go func() {
			defer gwWG.Done()
			if err := serveFn(ln); err != nil && !errors.Is(err, gateway.ErrServerClosed) {
				stop(fmt.Errorf("%s gateway: %w", name, err))
			}
		}()
	}
	header := []string{fmt.Sprintf("darkchatd %s node started", o.typ.name), "Peer ID: " + node.ID().String()}
	var footer []string
	if o.typ.cli {
		ln, err := gateway.Listen(net.JoinHostPort(o.ip.String(), strconv.Itoa(o.cliPort)))
		if err != nil {
			return fmt.Errorf("CLI gateway: %w", err)
		}
		serve("CLI", ln, gw.ServeTCP)
		footer = append(footer, "CLI gateway: "+hostPort(o, ln))
		log.Info("CLI gateway listening", "addr", hostPort(o, ln))
	}
	if o.typ.ws {
		ln, err := gateway.Listen(net.JoinHostPort(o.ip.String(), strconv.Itoa(o.wsPort)))
		if err != nil {
			return fmt.Errorf("WebSocket gateway: %w", err)
		}
		scheme := "ws"
		if tlsConfig != nil {
			scheme = "wss"
		} else if !o.ip.IsLoopback() {
			log.Warn("WebSocket gateway is not configured with TLS: browsers on other machines talk to it in clear text; pass --tls-cert and --tls-key")
		}
		serve("WebSocket", ln, gw.ServeWS)
		url := scheme + "://" + hostPort(o, ln) + "/"
		footer = append(footer, "WebSocket gateway: "+url)
		log.Info("WebSocket gateway listening", "url", url)
	}

	obs.gatewaysListening()
	if obs.addr != "" {
		footer = append(footer, "Metrics: http://"+obs.addr+"/metrics")
	}

	con := &console{node: node, shutdown: func() { stop(nil) }, figures: obs.stats, bans: bans, log: log}
	adminPath, privateDir := o.admin, false
	if adminPath == "" {
		adminPath, privateDir = defaultAdminPath(defaultAdminDir(getenv), peerPort), true
	}
	adm, err := listenAdmin(adminPath, privateDir, log)
	if err != nil {
		return err
	}
	defer adm.Close()
	adm.start(con)
	footer = append(footer, "Admin socket: "+adminPath)

	out.start(header, addrStrings(node.Addrs()), footer)

	consoleOn := o.console == consoleOn
	terminal := term.IsTerminal(int(stdin.Fd()))
	if o.console == consoleAuto {
		consoleOn = terminal
	}
	if consoleOn {
		var ct *consoleTerm
		if terminal {
			if ct, err = newConsoleTerm(stdin, stdout); err != nil {
				log.Warn("console: no line editor on this terminal", "err", err)
			}
		}
		if ct != nil {
			printOut.set(ct)
			if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				logOut.set(ct)
			}
			defer func() {
				ct.close()
				logOut.set(stderr)
				printOut.set(stdout)
				io.WriteString(stdout, "\n") // leave the prompt's line to the shell
			}()
		}
		go con.runConsole(runCtx, stdin, terminal, ct, out, log)
	}

	<-runCtx.Done()
	obs.shuttingDown()
	if cause := context.Cause(runCtx); !errors.Is(cause, context.Canceled) {
		log.Error("shutting down", "err", cause)
		err = cause
	} else {
		log.Info("shutting down")
	}
	// Deferred, in order: admin socket, gateways, node, metrics listener.
	return err
}

// resolvedDataDir is --data-dir, or the default for the peer port; ""
// when the node has none (peer port 0 and no --data-dir, an ephemeral
// node).
func (o *options) resolvedDataDir(getenv func(string) string) (string, error) {
	if o.dataDir != "" {
		return o.dataDir, nil
	}
	return defaultDataDir(o.peerPort, getenv)
}

// nodeKey loads or creates the node key in data dir dir, or makes an
// ephemeral one when there is none ("").
func nodeKey(dir string, log *slog.Logger) (crypto.PrivKey, error) {
	if dir == "" {
		key, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate node key: %w", err)
		}
		log.Warn("identity is ephemeral: peer port 0 and no --data-dir, so the peer ID changes at every start, nothing is written to disk, and bans last until the node stops")
		return key, nil
	}
	key, created, err := p2p.LoadOrCreateNodeKey(dir)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("created a new node key", "data_dir", dir)
	} else {
		log.Debug("loaded node key", "data_dir", dir)
	}
	return key, nil
}

func closeNode(node *p2p.Node, log *slog.Logger) error {
	done := make(chan error, 1)
	go func() { done <- node.Close() }()
	select {
	case err := <-done:
		if err != nil {
			log.Warn("closing the node", "err", err)
		}
		return nil
	case <-time.After(nodeCloseTimeout):
		return fmt.Errorf("the node did not close within %v", nodeCloseTimeout)
	}
}

// boundTCPPort is the TCP port libp2p actually listens on (the peer port,
// or the one the kernel picked for 0). It names the default admin socket.
// libp2p starts as long as one listener works, so this is also where a
// peer port taken by another process is caught: the node must listen on
// both TCP and QUIC.
func boundTCPPort(node *p2p.Node, want int) (int, error) {
	tcpPort, quic := 0, false
	for _, a := range node.Host().Network().ListenAddresses() {
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
			continue
		}
		if p, err := a.ValueForProtocol(ma.P_TCP); err == nil && tcpPort == 0 {
			tcpPort, _ = strconv.Atoi(p)
		}
		if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil {
			quic = true
		}
	}
	if tcpPort == 0 {
		return 0, fmt.Errorf("libp2p could not listen on TCP port %d (is another process using it?)", want)
	}
	if !quic {
		return 0, fmt.Errorf("libp2p could not listen on QUIC (UDP) port %d (is another process using it?)", want)
	}
	return tcpPort, nil
}

// hostPort is <ip>:<bound port>, the address clients use.
func hostPort(o *options, ln net.Listener) string {
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return net.JoinHostPort(o.ip.String(), port)
}

func addrStrings(addrs []ma.Multiaddr) []string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return s
}

// printer serialises everything the daemon prints on stdout: the start-up
// block, address changes reported from the node's event goroutine, and
// console output. Each block goes out in one write (stdout is unbuffered),
// so lines are never interleaved or held back.
type printer struct {
	mu          sync.Mutex
	w           io.Writer
	started     bool
	addrs       []string // the list last printed
	pending     []string // addresses reported before the start-up block
	promptShown bool
}

func (p *printer) write(lines []string) {
	if len(lines) == 0 {
		return
	}
	io.WriteString(p.w, strings.Join(lines, "\n")+"\n")
}

// start prints the start-up block, then any address change reported while
// the node was starting.
func (p *printer) start(header, addrs, footer []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	block := append(slices.Clip(header), "Listening on:")
	block = append(block, indent(addrs)...)
	p.write(append(block, footer...))
	p.started, p.addrs = true, addrs
	if p.pending != nil && !slices.Equal(p.pending, addrs) {
		p.printAddrsLocked(p.pending)
	}
	p.pending = nil
}

// addrsChanged is p2p.Config.OnAddrsChanged.
func (p *printer) addrsChanged(addrs []ma.Multiaddr) {
	s := addrStrings(addrs)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.started {
		p.pending = s
		return
	}
	if slices.Equal(s, p.addrs) {
		return
	}
	p.printAddrsLocked(s)
}

func (p *printer) printAddrsLocked(addrs []string) {
	block := append([]string{"Addresses changed:"}, indent(addrs)...)
	if p.promptShown { // keep the prompt intact on a terminal
		block = append(append([]string{""}, block...), "")
		io.WriteString(p.w, strings.Join(block, "\n")+"> ")
	} else {
		p.write(block)
	}
	p.addrs = addrs
}

// lines prints a command's output.
func (p *printer) lines(lines ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.promptShown = false
	p.write(lines)
}

// prompt shows the console prompt (terminals only).
func (p *printer) prompt() {
	p.mu.Lock()
	defer p.mu.Unlock()
	io.WriteString(p.w, "> ")
	p.promptShown = true
}

func indent(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = "  " + l
	}
	return out
}
