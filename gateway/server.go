package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/libp2p/go-libp2p/core/peer"

	"darkchat/identity"
	"darkchat/internal/synfilter"
	"darkchat/p2p"
)

// Mesh is the part of the p2p node the gateway uses.
type Mesh interface {
	Join(channel string, m p2p.Member) error
	Leave(channel string, m p2p.Member)
	Publish(ctx context.Context, channel string, data []byte) error
	JoinInbox(shard int, m p2p.Member) error
	LeaveInbox(shard int, m p2p.Member)
	PublishDM(ctx context.Context, shard int, envelope []byte) error
	PutBundle(ctx context.Context, user string, bundle []byte) error
	GetBundle(ctx context.Context, user string) ([]byte, error)
}

// Server runs client sessions for one node. It is safe for concurrent use.
type Server struct {
	cfg    Config
	mesh   Mesh
	nodeID string
	log    *slog.Logger

	upgrader websocket.Upgrader
	page     http.Handler

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	httpSrvs  map[*http.Server]struct{}
	sessions  slotTable      // open sessions, at session.slot
	wg        sync.WaitGroup // open sessions
	// limiter counts connections on both ports from accept to close.
	limiter *connLimiter
	// filter thins out the SYNs of flooding sources on both ports.
	filter synfilter.Filter
	// channels counts the channels sessions are in.
	channels *channelLimiter
	// tcpRefusal and httpRefusal are written to a connection refused by
	// limiter, by reason: an error object on the TCP port, an HTTP
	// response on the WebSocket port.
	tcpRefusal, httpRefusal [3][]byte
	// poller watches idle sessions' sockets. It starts with the first
	// session on a socket it can watch (pollerOnce; Close runs the Once
	// too, so none starts after); nil before, where epoll is missing,
	// and on a server whose connections are not sockets (in-memory ones,
	// as in simulations), and then every session has a blocking reader.
	poller     *poller
	pollerOnce sync.Once
	// readers counts sessions with a reader goroutine; the others are
	// idle and watched by the poller.
	readers atomic.Int64
	// sharedQueued counts the frames sessions have queued beyond their
	// own SendQueue, out of cfg.SharedSendQueue (session.enqueueFrame).
	sharedQueued atomic.Int64

	bundles    bundles
	rulesSt    *rulesState // owned channels (rules.go)
	identities identities
	// history holds this node's sessions' history requests in flight,
	// and those they were asked to answer; historyMesh carries them (nil
	// for a mesh without history).
	history     *historyAgent
	historyMesh HistoryMesh
	// repairHints carries what other nodes' requests and this node's
	// unanswered repairs tell watchMeshPeers (repairHint); at most
	// meshPeerQueue wait. Nil without a ChannelPeerLister.
	repairHints chan repairHint
	// presence is the node's member table; presenceSync, nil for a mesh
	// without PresenceMesh, learns tables from peers (presence*.go).
	presence     *presenceTable
	presenceSync *presenceSync
	// metrics is nil without Config.Registerer.
	metrics *gatewayMetrics
	// timers ticks the sessions (timers.go).
	timers *sessionTimers
	// Background work (DHT puts, the republish loop), stopped by Close.
	bgCtx    context.Context
	bgCancel context.CancelFunc
	bgWG     sync.WaitGroup
}

// wsWriteBuffers is gorilla's write buffer pool (see the upgrader).
var wsWriteBuffers sync.Pool

// startPoller starts the poller, once; s.poller stays nil if it cannot.
func (s *Server) startPoller() {
	s.pollerOnce.Do(func() {
		if p, err := newPoller(); err == nil {
			s.poller = p
		} else {
			s.log.Debug("sessions use blocking readers", "err", err)
		}
	})
}

// ErrServerClosed is returned by Serve* after Close.
var ErrServerClosed = errors.New("gateway: server closed")

// New returns a gateway for the node whose peer ID is nodeID. page, if not
// nil, serves every HTTP path except /ws (the browser client).
func New(cfg Config, mesh Mesh, nodeID string, page http.Handler) (*Server, error) {
	if mesh == nil || nodeID == "" {
		return nil, errors.New("gateway: mesh and node ID are required")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		filter:    synfilter.Filter{Pass: floodPass},
		mesh:      mesh,
		nodeID:    nodeID,
		log:       cfg.Logger,
		page:      page,
		listeners: make(map[net.Listener]struct{}),
		httpSrvs:  make(map[*http.Server]struct{}),
		limiter:   newConnLimiter(cfg.MaxSessionsPerIP, cfg.MaxConns, cfg.FloodRefusals),
		channels:  newChannelLimiter(cfg.MaxChannelsPerIP, cfg.MaxNodeChannels, cfg.Now()),
		history:   newHistoryAgent(),
	}
	perIP := fmt.Sprintf("at most %d connections per IP address (sessions and WebSocket handshakes)", cfg.MaxSessionsPerIP)
	full := fmt.Sprintf("the node has as many client connections as it allows (%d); try again later or another node", cfg.MaxConns)
	s.tcpRefusal[refusedPerSource] = append((&clientError{code: codeTooManySessions, msg: perIP}).frame(), '\n')
	s.tcpRefusal[refusedFull] = append((&clientError{code: codeNodeFull, msg: full}).frame(), '\n')
	s.httpRefusal[refusedPerSource] = httpRefusal("429 Too Many Requests", perIP)
	s.httpRefusal[refusedFull] = httpRefusal("503 Service Unavailable", full)
	s.upgrader = websocket.Upgrader{
		// Only the handshake uses gorilla; sessions read and write
		// frames on the socket themselves (conn.go), so its buffers
		// are small and pooled.
		ReadBufferSize:   256,
		WriteBufferPool:  &wsWriteBuffers,
		HandshakeTimeout: cfg.HandshakeTimeout,
		CheckOrigin:      s.checkOrigin,
	}
	if s.page == nil {
		s.page = http.NotFoundHandler()
	}
	if cfg.Registerer != nil {
		m, err := newGatewayMetrics(cfg.Registerer, s)
		if err != nil {
			return nil, fmt.Errorf("gateway: register metrics: %w", err)
		}
		s.metrics = m
		if err := registerBanMetrics(cfg.Registerer, cfg.Bans); err != nil {
			return nil, fmt.Errorf("gateway: register metrics: %w", err)
		}
		if err := registerRulesMetrics(cfg.Registerer, s); err != nil { // rules_metrics.go
			return nil, fmt.Errorf("gateway: register metrics: %w", err)
		}
	}
	cfg.Bans.watch(s)
	s.bundles.byKey = make(map[identity.PublicKey]map[*session]bundleEntry)
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	s.startPresence()
	s.startRules()
	s.log.Info("client connection limits", "max_conns", cfg.MaxConns, "max_sessions_per_ip", cfg.MaxSessionsPerIP,
		"open_file_limit", openFileLimit(), "handshake_timeout", cfg.HandshakeTimeout, "flood_refusals", cfg.FloodRefusals)
	s.timers = newSessionTimers(timerResolution(&cfg))
	s.bgWG.Add(4)
	go func() { defer s.bgWG.Done(); s.timers.run(s.bgCtx.Done()) }()
	go s.republishLoop()
	go s.logRefusals()
	go s.updateFloodFilter()
	if hm, ok := mesh.(HistoryMesh); ok {
		if err := hm.JoinHistory(s); err != nil {
			// Sessions still chat; their history requests fail.
			s.log.Warn("history unavailable: cannot join the history topic", "err", err)
		} else {
			s.historyMesh = hm
		}
	}
	if lister, ok := mesh.(ChannelPeerLister); ok {
		s.repairHints = make(chan repairHint, meshPeerQueue)
		peers := make(chan peer.ID, meshPeerQueue)
		lister.OnMeshPeer(func(p peer.ID) {
			select {
			case peers <- p:
			default: // a burst of new peers: the queued ones cover the channels
			}
			s.rulesMeshPeer(p) // owned channels' records for the new peer (rules.go)
		})
		s.bgWG.Add(1)
		go s.watchMeshPeers(lister, peers)
	}
	return s, nil
}

// Listen opens a listener for a gateway port on addr (host:port): plain
// TCP, so that the flood filter (limits.go) can be attached to it. Go's
// net.Listen makes Multipath TCP sockets where the kernel has them, which
// take no socket filter.
func Listen(addr string) (net.Listener, error) {
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	return lc.Listen(context.Background(), "tcp", addr)
}

// watchListener puts ln under the flood filter, or logs why it cannot.
func (s *Server) watchListener(ln net.Listener, port string) {
	if s.cfg.FloodRefusals < 0 {
		return
	}
	if err := s.filter.Watch(ln); err != nil {
		s.log.Warn("no flood filter on this gateway port: a source that floods it while at its limits can fill its accept queue (listen with gateway.Listen)",
			"port", port, "addr", ln.Addr().String(), "err", err)
	}
}

// updateFloodFilter keeps the flood filter's sources up to date until the
// server closes.
func (s *Server) updateFloodFilter() {
	defer s.bgWG.Done()
	expiry := time.NewTimer(time.Hour)
	defer expiry.Stop()
	for {
		select {
		case <-s.bgCtx.Done():
			return
		case <-s.limiter.changed:
		case <-expiry.C:
		}
		srcs, next := s.limiter.floodingAt(time.Now())
		s.filter.Set(srcs)
		if !next.IsZero() {
			expiry.Reset(time.Until(next))
		}
	}
}

// httpRefusal is the response written to a refused connection on the
// WebSocket port, before the request is read.
func httpRefusal(status, msg string) []byte {
	return fmt.Appendf(nil, "HTTP/1.1 %s\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s\n",
		status, len(msg)+1, msg)
}

// ServeTCP accepts line-framed sessions on ln until ln fails or the server
// closes; it then returns ErrServerClosed. Close closes ln. Connections
// over the limits (limits.go) get a too_many_sessions or node_full error
// instead of hello.
func (s *Server) ServeTCP(ln net.Listener) error {
	if !s.track(ln) {
		return ErrServerClosed
	}
	defer s.untrack(ln)
	s.watchListener(ln, "TCP")
	lln := &limitedListener{Listener: ln, lim: s.limiter, refusals: &s.tcpRefusal}
	var backoff time.Duration
	for {
		c, err := lln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// Out of file descriptors or similar: back off
				// instead of spinning.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; backing off", "err", err, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		if tc := tcpOf(c); tc != nil {
			tc.SetKeepAlive(true)
			if s.cfg.SocketSendBuffer > 0 {
				tc.SetWriteBuffer(s.cfg.SocketSendBuffer)
			}
		}
		s.start(newTCPConn(c, s.cfg.MaxLine), addrIP(c.RemoteAddr()))
	}
}

// ServeWS serves the WebSocket gateway (path /ws) and the browser page on
// ln, with TLS when configured, until the server closes. Connections over
// the limits (limits.go) are answered 429 or 503 before their request is
// read (on plain HTTP; with TLS, closed), and an HTTP connection that does
// not finish its request headers, or stays idle between requests, for
// HandshakeTimeout is closed. Give TLS as Config.TLS and a plain
// listener: a TLS listener as ln is limited too (its handshakes happen on
// first read, after the limits), but its refusals can only be silent
// closes, and requests do not see the TLS state.
func (s *Server) ServeWS(ln net.Listener) error {
	s.watchListener(ln, "WebSocket")
	lln := &limitedListener{Listener: ln, lim: s.limiter}
	if s.cfg.TLS == nil {
		lln.refusals = &s.httpRefusal
	}
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: s.cfg.HandshakeTimeout,
		IdleTimeout:       s.cfg.HandshakeTimeout,
		MaxHeaderBytes:    16 << 10,
		TLSConfig:         s.cfg.TLS,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.httpSrvs[hs] = struct{}{}
	s.mu.Unlock()
	var err error
	if s.cfg.TLS != nil {
		err = hs.ServeTLS(lln, "", "")
	} else {
		err = hs.Serve(lln)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return ErrServerClosed
	}
	return err
}

// Handler returns the HTTP handler: /ws upgrades to a session, anything
// else goes to the page handler. The connection limits and timeouts are
// ServeWS's: a caller serving Handler on its own http.Server must bound
// connections itself.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", s.serveWS)
	mux.Handle("/", s.page)
	return mux
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if s.isClosed() {
		http.Error(w, "node is shutting down", http.StatusServiceUnavailable)
		return
	}
	ip := addrIP(addrFromString(r.RemoteAddr))
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered with the HTTP error
	}
	// gorilla did the handshake; the session reads and writes frames on
	// the socket itself (conn.go), so gorilla's Conn and buffers are not
	// kept. The client cannot have sent frames yet: gorilla refuses a
	// handshake with bytes after it.
	s.start(newWSConn(ws.NetConn(), s.cfg.MaxLine), ip)
}

// checkOrigin accepts requests without an Origin header (non-browser
// clients), same-origin requests, and configured origins. Browsers always
// send Origin on WebSocket handshakes, so this stops other sites' pages
// from opening sessions in a visitor's name (RFC 6455 §10.2).
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if slices.Contains(s.cfg.AllowedOrigins, "*") || slices.Contains(s.cfg.AllowedOrigins, origin) {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// start runs a session on conn, unless the server has closed: then the
// client gets the shutdown notice and conn is closed.
func (s *Server) start(conn frameConn, ip netip.Addr) {
	sess := newSession(s, conn, ip)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		f := outFrame{data: (&clientError{code: codeShutdown, msg: "node is shutting down"}).frame()}
		conn.writeFrames([]outFrame{f, {kind: outClose, data: closePayload(closeGoingAway, codeShutdown)}}, time.Now().Add(time.Second))
		conn.close()
		return
	}
	sess.slot, _ = s.sessions.add(sess)
	s.wg.Add(1)
	s.mu.Unlock()
	s.metrics.sessionOpened(sess.transport, 1)
	sess.start()
}

func (s *Server) unregister(sess *session) {
	s.mu.Lock()
	s.sessions.remove(sess.slot, sess)
	s.mu.Unlock()
	s.metrics.sessionOpened(sess.transport, -1)
	s.wg.Done()
}

// ActiveReaders returns how many sessions have a goroutine reading their
// socket. The other sessions are idle: the poller watches them.
func (s *Server) ActiveReaders() int { return int(s.readers.Load()) }

// Sessions returns the number of open sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions.len()
}

// Close stops accepting, tells every session the node is shutting down,
// and waits until they have flushed and closed or ctx ends.
func (s *Server) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for ln := range s.listeners {
		ln.Close()
	}
	srvs := make([]*http.Server, 0, len(s.httpSrvs))
	for hs := range s.httpSrvs {
		srvs = append(srvs, hs)
	}
	sessions := s.sessions.appendTo(make([]*session, 0, s.sessions.len()))
	s.mu.Unlock()

	for _, hs := range srvs {
		hs.Close() // hijacked WebSocket connections are ours, closed below
	}
	for _, sess := range sessions {
		sess.shutdown(errorf(codeShutdown, "node is shutting down"))
	}
	if s.historyMesh != nil {
		s.historyMesh.LeaveHistory(s)
	}
	s.bgCancel()
	s.cfg.Bans.unwatch(s)
	s.pollerOnce.Do(func() {}) // no poller starts from now on
	done := make(chan struct{})
	go func() { s.wg.Wait(); s.bgWG.Wait(); close(done) }()
	select {
	case <-done:
		s.poller.close()
		return nil
	case <-ctx.Done():
		for _, sess := range sessions {
			sess.conn.close()
		}
		s.poller.close()
		return ctx.Err()
	}
}

func (s *Server) track(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.listeners[ln] = struct{}{}
	return true
}

func (s *Server) untrack(ln net.Listener) {
	s.mu.Lock()
	delete(s.listeners, ln)
	s.mu.Unlock()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func addrIP(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	return netip.Addr{}
}

func addrFromString(s string) net.Addr {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil
	}
	return net.TCPAddrFromAddrPort(ap)
}
