//go:build attack

package attacktest

// Attacks on a node's client gateways. The victim is a real `darkchatd
// full` (both gateways) in a network namespace of its own; each attacker is
// a process of its own (this test binary, see TestMain) in a namespace of
// its own, so it attacks from a source address of its own as it would on
// the internet, and the per-address limits are what they are in
// production; honest users speak from yet another address. The namespaces
// hang off one bridge (package netns) in 198.18.0.0/24, reserved for
// network testing.
//
// DARKCHAT_ATTACK_PROFILE=DIR writes each victim's CPU profile to
// DIR/<test>.pprof; DARKCHAT_ATTACK_LOG=1 logs what the victim of the
// channel flood wrote during the attack.

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sys/unix"

	"darkchat/cmd/darkbench/bench"
	"darkchat/identity"
	"darkchat/tstest"
	"darkchat/tstest/attack"
	"darkchat/tstest/chatproc"
	"darkchat/tstest/netns"
)

// The gateway attack tests' network: 198.18.0.0/24, declared public to
// the nodes.
const (
	gwPublicCIDR = "198.18.0.0/24"
	gwPeerPort   = 4001
	gwCLIPort    = 7001
	gwWSPort     = 7002
	// maxLogin is the judged bound on an honest login during a flood.
	maxLogin = time.Second
)

// gwAddr is the address of host i (1–254) of the network.
func gwAddr(i int) netip.Prefix {
	return netip.MustParsePrefix("198.18.0." + strconv.Itoa(i) + "/24")
}

// gwNet is a namespaced network and the nodes running in it. Clean-up,
// registered with t.Cleanup, stops the nodes (SIGTERM, so a victim asked
// for a CPU profile writes it) and deletes the namespaces.
type gwNet struct {
	t   *testing.T
	net *netns.Net
	dir string // short: admin socket paths must stay under 108 bytes

	mu    sync.Mutex
	nodes []*gwNode
}

// gwNode is a darkchatd process inside a namespace.
type gwNode struct {
	*chatproc.Proc
	name string
	host *netns.Host
	sock string
	id   string
}

func newGWNet(t *testing.T) *gwNet {
	t.Helper()
	if err := netns.Check(); err != nil {
		if os.Getenv("DARKCHAT_REQUIRE_ALL") == "1" {
			t.Fatalf("gateway attack tests cannot run and DARKCHAT_REQUIRE_ALL=1: %v", err)
		}
		t.Skipf("skipping: the gateway attack tests need network namespaces: %v (run as root with iproute2 and iptables; DARKCHAT_REQUIRE_ALL=1 makes this a failure)", err)
	}
	n, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "ga")
	if err != nil {
		n.Close()
		t.Fatal(err)
	}
	g := &gwNet{t: t, net: n, dir: dir}
	t.Cleanup(func() {
		g.mu.Lock()
		nodes := g.nodes
		g.mu.Unlock()
		for _, nd := range nodes {
			if err := nd.Stop(15 * time.Second); err != nil {
				t.Errorf("node %s did not shut down cleanly on SIGTERM: %v", nd.name, err)
			}
			if t.Failed() {
				t.Logf("--- %s stderr (tail):\n%s", nd.name, tailOf(nd.Stderr(), 4000))
			}
		}
		if err := n.Close(); err != nil {
			t.Errorf("deleting namespaces: %v", err)
		}
		os.RemoveAll(dir)
	})
	return g
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// host adds public host i.
func (g *gwNet) host(name string, i int) *netns.Host {
	g.t.Helper()
	h, err := g.net.AddPublicHost(name, gwAddr(i))
	if err != nil {
		g.t.Fatal(err)
	}
	return h
}

// node runs `darkchatd <typ>` (full or cli) on h with extra flags and
// waits until its gateways and admin socket are up. A node named victim
// writes a CPU profile to DARKCHAT_ATTACK_PROFILE/<test>.pprof, if that is
// set, when it stops.
func (g *gwNet) node(name, typ string, h *netns.Host, extra ...string) *gwNode {
	g.t.Helper()
	args := []string{typ, "0.0.0.0", strconv.Itoa(gwCLIPort)}
	if typ == "full" {
		args = append(args, strconv.Itoa(gwWSPort))
	}
	sock := filepath.Join(g.dir, name+".sock")
	args = append(args, strconv.Itoa(gwPeerPort),
		"--public-cidr", gwPublicCIDR,
		"--data-dir", filepath.Join(g.dir, name),
		"--admin", sock,
		"--no-console")
	args = append(args, extra...)
	cmd := h.Command(context.Background(), bins.Darkchatd, args...)
	env := []string{"XDG_RUNTIME_DIR=" + g.dir, "XDG_DATA_HOME=" + g.dir}
	if dir := os.Getenv("DARKCHAT_ATTACK_PROFILE"); dir != "" && name == "victim" {
		env = append(env, "DARKCHAT_CPUPROFILE="+filepath.Join(dir, g.t.Name()+".pprof"))
	}
	if dir := os.Getenv("DARKCHAT_ATTACK_TRACE"); dir != "" && name == "victim" {
		env = append(env, "DARKCHAT_TRACE="+filepath.Join(dir, g.t.Name()+".trace"))
	}
	cmd.Env = chatproc.CleanEnv(env...)
	p, err := chatproc.Start(name, cmd, false)
	if err != nil {
		g.t.Fatal(err)
	}
	nd := &gwNode{Proc: p, name: name, host: h, sock: sock}
	g.mu.Lock()
	g.nodes = append(g.nodes, nd)
	g.mu.Unlock()
	idLine, _, err := p.WaitLine(0, 30*time.Second, func(l string) bool { return strings.HasPrefix(l, "Peer ID: ") })
	if err != nil {
		g.t.Fatalf("node %s: %v\nstderr:\n%s", name, err, p.Stderr())
	}
	nd.id = strings.TrimPrefix(idLine, "Peer ID: ")
	if _, _, err := p.WaitLine(0, 30*time.Second, func(l string) bool { return strings.HasPrefix(l, "Admin socket: ") }); err != nil {
		g.t.Fatalf("node %s: %v\nstderr:\n%s", name, err, p.Stderr())
	}
	return nd
}

func (n *gwNode) tcpAddr() string { return n.host.Addr.String() + ":" + strconv.Itoa(gwCLIPort) }
func (n *gwNode) wsAddr() string  { return n.host.Addr.String() + ":" + strconv.Itoa(gwWSPort) }

// startAttackerOn runs spec in an attacker process inside h's namespace,
// attacking from h's address. The caller waits for attack.Begun.
func (g *gwNet) startAttackerOn(h *netns.Host, spec attack.Spec) *chatproc.Proc {
	g.t.Helper()
	spec.Listen = "/ip4/" + h.Addr.String() + "/tcp/0"
	b, err := json.Marshal(spec)
	if err != nil {
		g.t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		g.t.Fatal(err)
	}
	cmd := h.Command(context.Background(), exe, "-test.run=^$")
	cmd.Env = chatproc.CleanEnv(attackerEnv + "=" + string(b))
	p, err := chatproc.Start("attacker "+h.Name, cmd, false)
	if err != nil {
		g.t.Fatal(err)
	}
	g.t.Cleanup(p.Kill)
	return p
}

// waitBegun waits until every attacker has begun.
func waitBegun(t *testing.T, ps []*chatproc.Proc) {
	t.Helper()
	for _, p := range ps {
		if _, _, err := p.WaitLine(0, 15*time.Second, func(l string) bool { return l == attack.Begun }); err != nil {
			t.Fatalf("%s did not begin: %v\n%s\n%s", p.Name, err, strings.Join(p.Lines(), "\n"), p.Stderr())
		}
	}
}

// inNetns runs f on a thread switched into network namespace ns. Every
// socket f creates on its own goroutine belongs to ns for good (a socket
// keeps the namespace it was made in), so the test process can be an
// honest user at the address of a namespaced host. Goroutines f starts run
// on other threads, in the test's namespace: f must create its sockets
// itself.
//
// The thread goes back to the test's namespace afterwards rather than
// end: the nodes and attackers get SIGKILL when the thread that started
// them ends (Pdeathsig), and that may be this one.
func inNetns(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(home)
		fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		err = f()
		// Unlocked only once home again; otherwise the thread ends with
		// this goroutine.
		if unix.Setns(home, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// dialFrom dials addr over TCP from namespace ns.
func dialFrom(ctx context.Context, ns, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(ns, func() (err error) {
		c, err = (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}

// gwFrame is what the honest logins read of the node's objects.
type gwFrame struct {
	Type      string `json:"type"`
	Code      string `json:"code"`
	Message   string `json:"message"`
	Channel   string `json:"channel"`
	Challenge string `json:"challenge"`
}

func loginLine(key identity.PrivateKey, challenge string) []byte {
	pub := key.Public()
	return []byte(`{"type":"login","key":"` + hex.EncodeToString(pub[:]) + `","sig":"` + hex.EncodeToString(identity.SignLogin(key, challenge)) + `"}`)
}

// tcpSession is an honest session on a TCP gateway.
type tcpSession struct {
	c  net.Conn
	br *bufio.Reader
}

// loginTCP connects to the TCP gateway at addr from namespace ns and logs
// in with key (PROTOCOL.md §2), returning the session and the time from
// the dial to welcome.
func loginTCP(ns, addr string, key identity.PrivateKey) (*tcpSession, time.Duration, error) {
	start := time.Now()
	c, err := dialFrom(context.Background(), ns, addr)
	if err != nil {
		return nil, 0, err
	}
	s := &tcpSession{c: c, br: bufio.NewReader(c)}
	c.SetDeadline(start.Add(20 * time.Second))
	hello, err := s.next()
	if err != nil || hello.Type != "hello" {
		c.Close()
		return nil, 0, fmt.Errorf("hello: %+v, %v", hello, err)
	}
	if _, err := c.Write(append(loginLine(key, hello.Challenge), '\n')); err != nil {
		c.Close()
		return nil, 0, err
	}
	w, err := s.next()
	if err != nil || w.Type != "welcome" {
		c.Close()
		return nil, 0, fmt.Errorf("welcome: %+v, %v", w, err)
	}
	took := time.Since(start)
	c.SetDeadline(time.Time{})
	return s, took, nil
}

func (s *tcpSession) next() (gwFrame, error) {
	var f gwFrame
	line, err := s.br.ReadBytes('\n')
	if err != nil {
		return f, err
	}
	return f, json.Unmarshal(line, &f)
}

// join joins channel and waits for joined.
func (s *tcpSession) join(channel, user string) error {
	s.c.SetDeadline(time.Now().Add(20 * time.Second))
	defer s.c.SetDeadline(time.Time{})
	if _, err := fmt.Fprintf(s.c, `{"type":"join","channel":%q,"username":%q}`+"\n", channel, user); err != nil {
		return err
	}
	for {
		f, err := s.next()
		if err != nil {
			return err
		}
		switch {
		case f.Type == "joined" && f.Channel == channel:
			return nil
		case f.Type == "error":
			return fmt.Errorf("join %s: %s: %s", channel, f.Code, f.Message)
		}
	}
}

// loginWS connects to the WebSocket gateway at addr from namespace ns and
// logs in with key, returning the time from the dial to welcome.
func loginWS(ns, addr string, key identity.PrivateKey) (time.Duration, error) {
	start := time.Now()
	d := websocket.Dialer{
		HandshakeTimeout: 20 * time.Second,
		NetDialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return dialFrom(ctx, ns, addr)
		},
	}
	ws, _, err := d.Dial("ws://"+addr+"/ws", nil)
	if err != nil {
		return 0, err
	}
	defer ws.Close()
	ws.SetReadDeadline(start.Add(20 * time.Second))
	var hello, w gwFrame
	if err := ws.ReadJSON(&hello); err != nil || hello.Type != "hello" {
		return 0, fmt.Errorf("hello: %+v, %v", hello, err)
	}
	if err := ws.WriteMessage(websocket.TextMessage, loginLine(key, hello.Challenge)); err != nil {
		return 0, err
	}
	if err := ws.ReadJSON(&w); err != nil || w.Type != "welcome" {
		return 0, fmt.Errorf("welcome: %+v, %v", w, err)
	}
	return time.Since(start), nil
}

// gwConns is what a victim's kernel holds on one gateway port for one
// remote address.
type gwConns struct {
	accepted int // established and owned by the victim process
	queued   int // established, waiting in the accept queue
}

// victimConns reads the TCP sockets of the victim's namespace on port from
// /proc/<pid>/net/tcp and tcp6 (they show the namespace of the process they
// belong to), by remote address. A gateway listening on 0.0.0.0 is a
// dual-stack socket: its IPv4 connections are in tcp6, v4-mapped.
func victimConns(pid, port int) (map[netip.Addr]gwConns, error) {
	out := map[netip.Addr]gwConns{}
	for _, file := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/net/" + file)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			// sl local rem st tx:rx tr:when retrnsmt uid timeout inode …
			fl := strings.Fields(line)
			if len(fl) < 10 || fl[3] != "01" {
				continue
			}
			_, lport, ok := strings.Cut(fl[1], ":")
			if !ok {
				continue
			}
			if p, err := strconv.ParseUint(lport, 16, 16); err != nil || int(p) != port {
				continue
			}
			rip, _, _ := strings.Cut(fl[2], ":")
			a, ok := procAddr(rip)
			if !ok {
				continue
			}
			c := out[a]
			if fl[9] == "0" {
				c.queued++
			} else {
				c.accepted++
			}
			out[a] = c
		}
	}
	return out, nil
}

// procAddr parses an address of /proc/net/tcp{,6}: 32-bit words in hex,
// each printed in host order (little-endian here).
func procAddr(h string) (netip.Addr, bool) {
	raw, err := hex.DecodeString(h)
	if err != nil || len(raw) != 4 && len(raw) != 16 {
		return netip.Addr{}, false
	}
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(raw[i:], binary.LittleEndian.Uint32(raw[i:]))
	}
	a, _ := netip.AddrFromSlice(raw)
	return a.Unmap(), true
}

// vmHWM is process pid's peak resident set size so far.
func vmHWM(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("cannot read the victim's memory use: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/<pid>/status")
	return 0
}

// openFiles counts the descriptors process pid has open.
func openFiles(pid int) int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// durations summarises login times: fastest, median, slowest.
func durations(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	return fmt.Sprintf("%d logins: min %v, median %v, max %v", len(s), r(s[0]), r(s[len(s)/2]), r(s[len(s)-1]))
}

// TestWebSocketConnectionFlood: two source addresses try to hold 20,000
// connections to the victim's WebSocket port (10,000 each), sending
// nothing or a request whose headers never end, and open a new one at once
// whenever the victim closes one. An honest user from a third address logs
// in within 1 s on both gateways, again and again while the flood lasts.
//
// With the default limits the victim keeps the 64 connections per address
// its --max-sessions-per-ip allows, refuses the rest at accept, and once
// an address has been refused 32 times in a second lets only a trickle of
// its connection attempts through the kernel (gateway/limits.go). With
// that limit raised to 10,000, the attackers fill the node up to its
// newcomer reserve (the last eighth of --max-conns, here 4,000: the
// victim takes new connections a few thousand a second on this machine,
// and closes the ones that have not upgraded within 5 s), which the honest
// user gets into.
func TestWebSocketConnectionFlood(t *testing.T) {
	t.Run("default limits", func(t *testing.T) {
		connectionFlood(t, nil, 2*64, 2*time.Second)
	})
	t.Run("node full", func(t *testing.T) {
		const maxConns = 4000
		connectionFlood(t, []string{"--max-sessions-per-ip", "10000", "--max-conns", strconv.Itoa(maxConns)}, maxConns-maxConns/8, 10*time.Second)
	})
}

// connectionFlood runs TestWebSocketConnectionFlood against a victim
// started with extra flags, whose limits let the two attackers hold held
// connections together; they must get there within ramp.
func connectionFlood(t *testing.T, extra []string, held int, ramp time.Duration) {
	g := newGWNet(t)
	victim := g.node("victim", "full", g.host("victim", 1), extra...)
	honest := g.host("honest", 2)
	attackers := []*netns.Host{g.host("attacker1", 11), g.host("attacker2", 12)}
	key, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	login := func() (tcp, ws time.Duration, err error) {
		s, tcp, err := loginTCP(honest.NS, victim.tcpAddr(), key)
		if err != nil {
			return 0, 0, fmt.Errorf("TCP gateway: %w", err)
		}
		s.c.Close()
		if ws, err = loginWS(honest.NS, victim.wsAddr(), key); err != nil {
			return 0, 0, fmt.Errorf("WebSocket gateway: %w", err)
		}
		return tcp, ws, nil
	}
	tcp, ws, err := login()
	if err != nil {
		t.Fatalf("quiet login: %v", err)
	}
	t.Logf("quiet: honest login %v on TCP, %v on WebSocket", tcp.Round(10*time.Microsecond), ws.Round(10*time.Microsecond))
	files0, logBefore := openFiles(victim.PID()), len(victim.Stderr())

	d := attackDuration()
	const perAttacker = 10 // thousand connections
	victimCPU0, wall0 := cpuTime(t, victim.PID()), time.Now()
	var procs []*chatproc.Proc
	for _, h := range attackers {
		procs = append(procs, g.startAttackerOn(h, attack.Spec{Kind: attack.KindHoldConnections, Gateway: victim.wsAddr(), Duration: ramp + d, Peers: perAttacker}))
	}
	waitBegun(t, procs)

	// The flood is up once the victim holds all its limits let the
	// attackers hold (the kernel's view: established connections the
	// victim has accepted, and those still in its accept queue).
	var maxHeld, maxQueued int
	sample := func() (int, error) {
		conns, err := victimConns(victim.PID(), gwWSPort)
		if err != nil {
			return 0, err
		}
		held, queued := 0, 0
		for _, h := range attackers {
			held += conns[h.Addr].accepted
			queued += conns[h.Addr].queued
		}
		maxHeld, maxQueued = max(maxHeld, held), max(maxQueued, queued)
		return held, nil
	}
	last := 0
	if err := tstest.Poll(ramp, 100*time.Millisecond, func() (bool, string) {
		n, err := sample()
		last = n
		if err != nil {
			return false, err.Error()
		}
		return n >= held, fmt.Sprintf("%d held", n)
	}); err != nil {
		t.Fatalf("the attackers never held %d connections: %v", held, err)
	}
	up := time.Now()
	t.Logf("flood up %v after the attackers started: the victim holds %d of their connections (%d at most in its accept queue meanwhile)",
		up.Sub(wall0).Round(time.Millisecond), last, maxQueued)
	maxQueued = 0

	// Honest logins, one on each gateway a round, spread over d while the
	// flood lasts.
	var tcps, wss []time.Duration
	end := up.Add(d - time.Second)
	if stop := wall0.Add(ramp + d - time.Second); stop.Before(end) {
		end = stop
	}
	rounds := time.NewTicker(max(200*time.Millisecond, d/40))
	defer rounds.Stop()
	for round := 0; round < 50 && (round < 3 || time.Now().Before(end)); round++ {
		tcp, ws, err := login()
		if err != nil {
			t.Fatalf("honest login during the flood (round %d): %v", round, err)
		}
		tcps, wss = append(tcps, tcp), append(wss, ws)
		if _, err := sample(); err != nil {
			t.Fatal(err)
		}
		<-rounds.C
	}
	filesPeak := openFiles(victim.PID())
	wall := time.Since(wall0)
	victimCPU := cpuTime(t, victim.PID()) - victimCPU0

	var total attack.Result
	for _, p := range procs {
		r := attackResult(t, p, ramp+d+30*time.Second)
		t.Logf("%s: %+v", p.Name, r)
		total.Sent += r.Sent
		total.Conns += r.Conns
		total.Refused += r.Refused
		total.Closed += r.Closed
		total.DialFailed += r.DialFailed
		total.CPU += r.CPU
	}
	t.Logf("attackers (trying to hold %d): held at most %d at once by their count, opened %d connections, %d refused at accept, %d closed later by the victim, %d connection attempts failed; CPU %.0f%% of one core each",
		2*perAttacker*1000, total.Sent, total.Conns, total.Refused, total.Closed, total.DialFailed, 100*total.CPU.Seconds()/(ramp+d).Seconds()/2)
	t.Logf("victim: held at most %d attacking connections at once (sampled), %d at most in its accept queue during the logins; %d descriptors open (%d before the flood); CPU %.0f%% of one core; peak RSS %d MiB; logged %d bytes",
		maxHeld, maxQueued, filesPeak, files0, 100*victimCPU.Seconds()/wall.Seconds(), vmHWM(t, victim.PID())>>20, len(victim.Stderr())-logBefore)
	t.Logf("honest logins during the flood: TCP %s; WebSocket %s", durations(tcps), durations(wss))

	for gw, ds := range map[string][]time.Duration{"TCP": tcps, "WebSocket": wss} {
		if slowest := slices.Max(ds); slowest > maxLogin {
			t.Errorf("an honest login on the %s gateway took %v during the flood, want ≤ %v", gw, slowest, maxLogin)
		}
	}
	if total.Refused == 0 {
		t.Error("no connection was refused: the flood did not reach the victim's limits")
	}
}

// TestChannelFlood: 8 source addresses each log in as many sessions as
// the victim allows and join fresh channels as fast as it answers (each
// session at a channel limit leaves its oldest channel and goes on). An
// honest user of a second node chats through the victim to a user on it,
// in a channel the victim carried before the attack, throughout.
func TestChannelFlood(t *testing.T) {
	g := newGWNet(t)
	limits := []string{"--rate", "100000", "--burst", "100000", "--author-rate", "0"}
	victim := g.node("victim", "full", g.host("victim", 1), limits...)
	honestHost := g.host("honest", 2)
	a := g.node("A", "cli", honestHost, append(limits, "--peer", victim.host.Addr.String()+":"+strconv.Itoa(gwPeerPort))...)
	tstest.WaitFor(t, 30*time.Second, "the victim to connect to A", func() (bool, string) {
		ps, err := chatproc.Ctl(context.Background(), bins.Darkchatd, victim.sock, "peers")
		if err != nil {
			return false, err.Error()
		}
		return slices.ContainsFunc(ps, func(l string) bool { return strings.Contains(l, a.id) }), fmt.Sprintf("peers %q", ps)
	})
	var attackers []*netns.Host
	for i := range 8 {
		attackers = append(attackers, g.host("attacker"+strconv.Itoa(i+1), 11+i))
	}

	// A member keeps the honest channel on the victim from before the
	// attack: the attackers spend the node's allowance of new channels,
	// and a channel the node carries needs none.
	key, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	keeper, _, err := loginTCP(honestHost.NS, victim.tcpAddr(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer keeper.c.Close()
	if err := keeper.join(honestChannel, "keeper"); err != nil {
		t.Fatal(err)
	}
	go keeper.br.WriteTo(io.Discard) // the channel's traffic
	honestTraffic := func(d time.Duration) (h bench.HonestTraffic, err error) {
		n := int(d.Seconds() * honestRate)
		err = inNetns(honestHost.NS, func() (err error) {
			h, err = bench.MeasureHonest(t.Context(), a.tcpAddr(), victim.tcpAddr(), honestChannel, n, honestRate)
			return err
		})
		return h, err
	}
	controlNodes := startControlPath(t, limits...)
	quiet, err := honestTraffic(3 * time.Second)
	if err != nil {
		t.Fatalf("quiet baseline: %v", err)
	}
	t.Logf("quiet: %.2f%% delivered, p50 %v, p99 %v", quiet.DeliveredPct, quiet.P50, quiet.P99)

	d := attackDuration()
	logBefore := len(victim.Stderr())
	victimCPU0, wall0 := cpuTime(t, victim.PID()), time.Now()
	var procs []*chatproc.Proc
	for _, h := range attackers {
		// Peers: more sessions than the victim lets one address open.
		procs = append(procs, g.startAttackerOn(h, attack.Spec{Kind: attack.KindCreateChannels, Gateway: victim.tcpAddr(), Duration: d, Peers: 100}))
	}
	waitBegun(t, procs)
	controlDone := make(chan struct{})
	var control bench.HonestTraffic
	var cerr error
	go func() {
		defer close(controlDone)
		control, cerr = controlNodes.measure(t.Context(), int((d-time.Second).Seconds()*honestRate), honestRate)
	}()
	loud, herr := honestTraffic(d - time.Second)
	<-controlDone
	wall := time.Since(wall0)
	victimCPU := cpuTime(t, victim.PID()) - victimCPU0

	var total attack.Result
	for _, p := range procs {
		r := attackResult(t, p, d+30*time.Second)
		t.Logf("%s: %+v", p.Name, r)
		total.Sent += r.Sent
		total.PeerIDs += r.PeerIDs
		total.Refused += r.Refused
		total.Closed += r.Closed
		total.CPU += r.CPU
	}
	attackWall := time.Since(wall0)
	t.Logf("attackers: %d sessions logged in, %d logins failed; %d channel joins accepted, %d refused; CPU %.0f%% of one core in all",
		total.PeerIDs, total.Closed, total.Sent, total.Refused, 100*total.CPU.Seconds()/d.Seconds())
	// New channels are paced node-wide (PROTOCOL.md §2.4): 32 at once,
	// then 4 a second, whatever the number of sessions and addresses.
	if most := 32 + int64(4*attackWall.Seconds()); total.Sent > most {
		t.Errorf("the victim started %d channels in %v, want at most %d (32, then 4 a second)", total.Sent, attackWall.Round(time.Millisecond), most)
	}
	if herr != nil {
		t.Errorf("honest traffic under attack: %v", herr)
	}
	t.Logf("under attack: %.2f%% delivered, p50 %v, p99 %v", loud.DeliveredPct, loud.P50, loud.P99)
	if loud.DeliveredPct < minHonestDelivered {
		t.Errorf("honest delivery %.2f%% under attack, want ≥ %.0f%%", loud.DeliveredPct, minHonestDelivered)
	}
	if cerr != nil {
		t.Errorf("honest traffic on the control path: %v", cerr)
	}
	checkLatency(t, quiet, loud, control)
	t.Logf("victim CPU %.0f%% of one core during the attack", 100*victimCPU.Seconds()/wall.Seconds())
	if rss := vmHWM(t, victim.PID()); rss > maxRSS {
		t.Errorf("victim peak RSS %d MiB, want ≤ %d MiB", rss>>20, maxRSS>>20)
	} else {
		t.Logf("victim peak RSS %d MiB", rss>>20)
	}
	logged := len(victim.Stderr()) - logBefore
	perMin := float64(logged) / d.Minutes()
	t.Logf("victim logged %d bytes during the attack (%.0f bytes/min)", logged, perMin)
	if os.Getenv("DARKCHAT_ATTACK_LOG") == "1" {
		t.Logf("victim log during the attack:\n%s", victim.Stderr()[logBefore:])
	}
	if perMin > maxLogPerMin {
		t.Errorf("victim logged %.0f bytes a minute under attack, want ≤ %d", perMin, maxLogPerMin)
	}
	if total.Sent == 0 || total.Refused == 0 {
		t.Errorf("the attack had %d joins accepted and %d refused; want both", total.Sent, total.Refused)
	}
}
