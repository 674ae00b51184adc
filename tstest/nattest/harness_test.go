package nattest

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"darkchat/tstest"
	"darkchat/tstest/chatproc"
	"darkchat/tstest/netns"
)

// bins are the darkchatd and darkchat binaries TestMain builds once.
var bins chatproc.Binaries

// buildErr is why the binaries could not be built; every test fails with it.
var buildErr error

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nattest-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Only build when the tests can run: a skip must stay cheap.
	if netns.Check() == nil {
		bins, buildErr = chatproc.Build(dir)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Addresses of every testnet: the emulated internet is 198.18.0.0/24,
// declared public with --public-cidr; LAN N behind router N is
// 198.19.N.0/24. Both lie in 198.18.0.0/15, the range reserved for network
// testing (RFC 2544), so nothing here can reach a real host.
const (
	publicCIDR = "198.18.0.0/24"
	peerPort   = 4001
	cliPort    = 7001
	wsPort     = 7002
)

func publicAddr(i int) netip.Prefix {
	return netip.MustParsePrefix("198.18.0." + strconv.Itoa(i) + "/24")
}

func routerWAN(n int) netip.Prefix { return publicAddr(10 + n) }
func routerLAN(n int) netip.Prefix {
	return netip.MustParsePrefix("198.19." + strconv.Itoa(n) + ".1/24")
}
func lanAddr(n, host int) netip.Prefix {
	return netip.MustParsePrefix("198.19." + strconv.Itoa(n) + "." + strconv.Itoa(host) + "/24")
}

// requireNetns skips the test when this machine cannot build namespaced
// testnets, unless DARKCHAT_REQUIRE_ALL=1, where that is a failure.
func requireNetns(t *testing.T) {
	t.Helper()
	if err := netns.Check(); err != nil {
		if os.Getenv("DARKCHAT_REQUIRE_ALL") == "1" {
			t.Fatalf("NAT tests cannot run and DARKCHAT_REQUIRE_ALL=1: %v", err)
		}
		t.Skipf("skipping NAT test: %v (run as root with iproute2 and iptables; DARKCHAT_REQUIRE_ALL=1 makes this a failure)", err)
	}
	if buildErr != nil {
		t.Fatalf("building the binaries: %v", buildErr)
	}
}

// testnet is one cell's emulated internet and the nodes and clients it
// runs. Clean-up, registered with t.Cleanup, stops every process, then
// deletes the namespaces (and with them every veth and iptables rule),
// whether the test passed or not; a failed test first logs what each node
// said and what its `nat` and `peers` commands report.
type testnet struct {
	t     *testing.T
	net   *netns.Net
	dir   string // short: admin socket paths must stay under 108 bytes
	start time.Time

	mu      sync.Mutex
	nodes   []*node
	clients []*chatproc.Client
}

func newTestnet(t *testing.T) *testnet {
	t.Helper()
	requireNetns(t)
	n, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "nt")
	if err != nil {
		n.Close()
		t.Fatal(err)
	}
	tn := &testnet{t: t, net: n, dir: dir, start: time.Now()}
	t.Cleanup(func() {
		if t.Failed() {
			tn.dumpDiagnostics()
		}
		tn.stopAll()
		tn.keepLogs()
		if err := n.Close(); err != nil {
			t.Errorf("deleting namespaces: %v", err)
		}
		os.RemoveAll(dir)
	})
	return tn
}

func (tn *testnet) publicHost(name string, i int) *netns.Host {
	tn.t.Helper()
	h, err := tn.net.AddPublicHost(name, publicAddr(i))
	if err != nil {
		tn.t.Fatal(err)
	}
	return h
}

func (tn *testnet) router(name string, n int, kind netns.Kind) *netns.Router {
	tn.t.Helper()
	r, err := tn.net.AddRouter(name, routerWAN(n), routerLAN(n), kind)
	if err != nil {
		tn.t.Fatal(err)
	}
	return r
}

func (tn *testnet) lanHost(r *netns.Router, name string, n, host int) *netns.Host {
	tn.t.Helper()
	h, err := r.AddHost(name, lanAddr(n, host))
	if err != nil {
		tn.t.Fatal(err)
	}
	return h
}

// node is a darkchatd process inside a namespace.
type node struct {
	*chatproc.Proc
	name string
	typ  string
	host *netns.Host
	sock string
	id   string

	killed bool // by the test, on purpose; guarded by testnet.mu

	// forwardedAt, if valid, is the public address of a router that
	// forwards the peer port to this node (a cloud provider's 1:1 NAT).
	forwardedAt netip.Addr
}

// dialAddr is where other nodes dial n.
func (n *node) dialAddr() netip.Addr {
	if n.forwardedAt.IsValid() {
		return n.forwardedAt
	}
	return n.host.Addr
}

// startNode runs `darkchatd <typ>` in h's namespace, peering with peers,
// and waits for its start-up printout. A node started again under the same
// name keeps its data directory (its key, so its peer ID) and admin socket.
func (tn *testnet) startNode(name, typ string, h *netns.Host, peers ...*node) *node {
	tn.t.Helper()
	return tn.startNodeWith(name, typ, h, nil, peers...)
}

// startNodeWith is startNode with extra flags.
func (tn *testnet) startNodeWith(name, typ string, h *netns.Host, extra []string, peers ...*node) *node {
	tn.t.Helper()
	args := []string{typ, "0.0.0.0"}
	switch typ {
	case "full":
		args = append(args, strconv.Itoa(cliPort), strconv.Itoa(wsPort))
	case "cli":
		args = append(args, strconv.Itoa(cliPort))
	case "websock":
		args = append(args, strconv.Itoa(wsPort))
	default:
		tn.t.Fatalf("unknown server type %q", typ)
	}
	sock := filepath.Join(tn.dir, name+".sock")
	args = append(args, strconv.Itoa(peerPort),
		"--public-cidr", publicCIDR,
		"--data-dir", filepath.Join(tn.dir, name),
		"--admin", sock,
		"--no-console",
		// Room for the relay-limit flood; still a limit.
		"--rate", "50", "--burst", "100",
	)
	for _, p := range peers {
		args = append(args, "--peer", p.dialAddr().String()+":"+strconv.Itoa(peerPort))
	}
	if lvl := os.Getenv("DARKCHAT_NATTEST_LOG_LEVEL"); lvl != "" {
		args = append(args, "--log-level", lvl) // a failing run's node logs in detail
	}
	args = append(args, extra...)
	cmd := h.Command(context.Background(), bins.Darkchatd, args...)
	cmd.Env = chatproc.CleanEnv("XDG_RUNTIME_DIR="+tn.dir, "XDG_DATA_HOME="+tn.dir)
	p, err := chatproc.Start(name, cmd, false)
	if err != nil {
		tn.t.Fatal(err)
	}
	n := &node{Proc: p, name: name, typ: typ, host: h, sock: sock}
	tn.mu.Lock()
	tn.nodes = append(tn.nodes, n)
	tn.mu.Unlock()
	idLine, _, err := p.WaitLine(0, 30*time.Second, func(l string) bool { return strings.HasPrefix(l, "Peer ID: ") })
	if err != nil {
		tn.t.Fatalf("node %s: %v\nstderr:\n%s", name, err, p.Stderr())
	}
	n.id = strings.TrimPrefix(idLine, "Peer ID: ")
	if _, _, err := p.WaitLine(0, 30*time.Second, func(l string) bool { return strings.HasPrefix(l, "Admin socket: ") }); err != nil {
		tn.t.Fatalf("node %s: %v\nstderr:\n%s", name, err, p.Stderr())
	}
	tn.t.Logf("%s: darkchatd %s at %s (%s), peer ID %s", name, typ, h.Addr, h.NS, n.id)
	return n
}

// client starts a darkchat client in n's namespace, on n's TCP gateway or,
// for a websock node, its WebSocket gateway.
func (tn *testnet) client(n *node, name string) *chatproc.Client {
	tn.t.Helper()
	key := filepath.Join(tn.dir, name+".key")
	args := []string{"--key", key, "127.0.0.1", strconv.Itoa(cliPort)}
	if n.typ == "websock" {
		args = []string{"--key", key, "--ws", "127.0.0.1", strconv.Itoa(wsPort)}
	}
	cmd := n.host.Command(context.Background(), bins.Darkchat, args...)
	cmd.Env = chatproc.CleanEnv("XDG_CONFIG_HOME=" + tn.dir)
	c, err := chatproc.StartClient(name, cmd)
	if err != nil {
		tn.t.Fatalf("client %s on %s: %v", name, n.name, err)
	}
	tn.mu.Lock()
	tn.clients = append(tn.clients, c)
	tn.mu.Unlock()
	return c
}

func (tn *testnet) stopAll() {
	tn.mu.Lock()
	clients, nodes := tn.clients, tn.nodes
	tn.mu.Unlock()
	for _, c := range clients {
		c.CloseStdin()
		c.Kill()
	}
	var wg sync.WaitGroup
	for _, n := range nodes {
		if n.killed {
			continue
		}
		wg.Go(func() {
			// SIGTERM is a graceful shutdown that exits 0.
			if err := n.Stop(15 * time.Second); err != nil {
				tn.t.Errorf("node %s did not shut down cleanly on SIGTERM: %v", n.name, err)
			}
		})
	}
	wg.Wait()
}

// kill makes a node go away at once, as a crashed or unplugged machine.
func (tn *testnet) kill(n *node) {
	tn.mu.Lock()
	n.killed = true
	tn.mu.Unlock()
	n.Kill()
	tn.t.Logf("%s: killed at %v", n.name, tn.since())
}

func (tn *testnet) since() time.Duration { return time.Since(tn.start).Round(100 * time.Millisecond) }

// ctl runs a console command on n through its admin socket.
func (tn *testnet) ctl(n *node, args ...string) ([]string, error) {
	return chatproc.Ctl(context.Background(), bins.Darkchatd, n.sock, args...)
}

func (tn *testnet) peers(n *node) ([]chatproc.Peer, error) {
	lines, err := tn.ctl(n, "peers")
	if err != nil {
		return nil, err
	}
	return chatproc.ParsePeers(lines)
}

// link is how one node is connected to another: not at all, only through
// relays, or directly.
type link int

const (
	linkNone link = iota
	linkRelayed
	linkDirect
)

func (l link) String() string { return [...]string{"none", "relayed", "direct"}[l] }

// linkTo reports how a is connected to b, and the remote address of the
// connection `peers` shows.
func (tn *testnet) linkTo(a, b *node) (link, string, error) {
	ps, err := tn.peers(a)
	if err != nil {
		return linkNone, "", err
	}
	for _, p := range ps {
		if p.ID == b.id {
			if p.Relayed {
				return linkRelayed, p.Addr, nil
			}
			return linkDirect, p.Addr, nil
		}
	}
	return linkNone, "", nil
}

// waitLink polls until a's link to b is want, and returns the remote
// address.
func (tn *testnet) waitLink(a, b *node, want link, timeout time.Duration) string {
	tn.t.Helper()
	var addr string
	tstest.WaitFor(tn.t, timeout, fmt.Sprintf("a %s connection %s -> %s", want, a.name, b.name), func() (bool, string) {
		l, ad, err := tn.linkTo(a, b)
		addr = ad
		if err != nil {
			return false, err.Error()
		}
		return l == want, fmt.Sprintf("a %s connection (%s)", l, ad)
	})
	return addr
}

// nat runs the `nat` command on n.
func (tn *testnet) nat(n *node) []string {
	tn.t.Helper()
	lines, err := tn.ctl(n, "nat")
	if err != nil {
		tn.t.Fatal(err)
	}
	return lines
}

func reachability(natLines []string) string {
	for _, l := range natLines {
		if rest, ok := strings.CutPrefix(l, "reachability: "); ok {
			word, _, _ := strings.Cut(rest, " ")
			return word
		}
	}
	return ""
}

// reservations returns the peer IDs of the relays n holds reservations
// with, from the relay addresses `nat` lists.
func (tn *testnet) reservations(n *node) ([]string, error) {
	lines, err := tn.ctl(n, "nat")
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "/") || !strings.HasSuffix(l, "/p2p-circuit") {
			continue
		}
		parts := strings.Split(strings.TrimSuffix(l, "/p2p-circuit"), "/p2p/")
		id := parts[len(parts)-1]
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// waitReservations polls until cond holds for n's relay reservations.
func (tn *testnet) waitReservations(n *node, what string, timeout time.Duration, cond func([]string) bool) []string {
	tn.t.Helper()
	var last []string
	tstest.WaitFor(tn.t, timeout, n.name+"'s relay reservations to become "+what, func() (bool, string) {
		ids, err := tn.reservations(n)
		if err != nil {
			return false, err.Error()
		}
		last = ids
		return cond(ids), fmt.Sprintf("reservations %v", tn.names(ids))
	})
	return last
}

// names maps peer IDs to node names, for logs.
func (tn *testnet) names(ids []string) []string {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id
		for _, n := range tn.nodes {
			if n.id == id {
				out[i] = n.name
			}
		}
	}
	return out
}

func (tn *testnet) byID(id string) *node {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	for _, n := range tn.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

// relayOf is the relay's peer ID in a .../p2p/<relay>/p2p-circuit address.
func relayOf(addr string) string {
	parts := strings.Split(strings.TrimSuffix(addr, "/p2p-circuit"), "/p2p/")
	return parts[len(parts)-1]
}

// converse makes two clients talk both ways through channel.
func (tn *testnet) converse(a, b *chatproc.Client, channel, tag string, timeout time.Duration) {
	tn.t.Helper()
	took, err := chatproc.Converse(a, b, channel, tag, timeout)
	if err != nil {
		tn.t.Fatalf("chat %s <-> %s (%s): %v", a.Name, b.Name, tag, err)
	}
	tn.t.Logf("chat %s <-> %s (%s): both ways, first message after %v (at %v)", a.Name, b.Name, tag, took.Round(time.Millisecond), tn.since())
}

func (tn *testnet) join(c *chatproc.Client, channel, user string) {
	tn.t.Helper()
	if err := c.Join(channel, user); err != nil {
		tn.t.Fatal(err)
	}
}

// keepLogs writes each node's whole stderr to
// $DARKCHAT_NATTEST_LOG_DIR/<test>-<node>.log when that is set (with
// DARKCHAT_NATTEST_LOG_LEVEL=debug: what a rare failure needs).
func (tn *testnet) keepLogs() {
	dir := os.Getenv("DARKCHAT_NATTEST_LOG_DIR")
	if dir == "" {
		return
	}
	tn.mu.Lock()
	nodes := tn.nodes
	tn.mu.Unlock()
	name := strings.NewReplacer("/", "_", " ", "_").Replace(tn.t.Name())
	for _, n := range nodes {
		path := filepath.Join(dir, fmt.Sprintf("%s-%d-%s.log", name, tn.start.UnixMilli(), n.name))
		if err := os.WriteFile(path, []byte(n.Stderr()), 0o644); err != nil {
			tn.t.Errorf("keeping %s's log: %v", n.name, err)
		}
	}
}

func (tn *testnet) dumpDiagnostics() {
	tn.mu.Lock()
	nodes := tn.nodes
	tn.mu.Unlock()
	for _, n := range nodes {
		var b strings.Builder
		fmt.Fprintf(&b, "=== %s (%s, %s, %s)\n", n.name, n.typ, n.host.Addr, n.id)
		for _, cmd := range []string{"peers", "nat"} {
			lines, err := tn.ctl(n, cmd)
			fmt.Fprintf(&b, "--- %s (err %v)\n%s\n", cmd, err, strings.Join(lines, "\n"))
		}
		stderr := n.Stderr()
		if len(stderr) > 6000 {
			stderr = "…" + stderr[len(stderr)-6000:]
		}
		fmt.Fprintf(&b, "--- stderr\n%s", stderr)
		tn.t.Log(b.String())
	}
}
