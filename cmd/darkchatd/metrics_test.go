package main

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"darkchat/client"
	"darkchat/identity"
	"darkchat/p2p"
)

// httpGet fetches url and returns its status and body.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// base is d's metrics listener's base URL.
func (d *daemon) base() string {
	d.t.Helper()
	if d.metrics == "" {
		d.t.Fatalf("%s printed no Metrics: line", d.name)
	}
	return strings.TrimSuffix(d.metrics, "/metrics")
}

// scrape returns d's /metrics as series line → value text, comments left
// out.
func (d *daemon) scrape(t *testing.T) map[string]string {
	t.Helper()
	code, body := httpGet(t, d.metrics)
	if code != 200 {
		t.Fatalf("%s /metrics: %d", d.name, code)
	}
	out := map[string]string{}
	for _, l := range strings.Split(body, "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		out[l[:i]] = l[i+1:]
	}
	return out
}

// watchingSession is a logged-in session at addr that counts the channel
// messages it receives from others.
func watchingSession(t *testing.T, addr string, got *atomic.Int64) *client.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	key, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := client.DialTCP(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	s, err := client.NewSession(tr, client.SessionConfig{Key: key, OnEvent: func(e client.Event) {
		if _, ok := e.(client.EventMessage); ok {
			got.Add(1)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.WaitLogin(ctx); err != nil {
		t.Fatalf("login at %s: %v", addr, err)
	}
	return s
}

// chatThrough logs alice in at a's CLI gateway and bob at b's, joins both
// to channel, and has them chat until each has a message from the other.
func chatThrough(t *testing.T, a, b *daemon, channel, userA, userB string) (alice, bob *client.Session) {
	t.Helper()
	var atA, atB atomic.Int64
	alice = watchingSession(t, a.cliAddr, &atA)
	bob = watchingSession(t, b.cliAddr, &atB)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := alice.Join(ctx, channel, userA); err != nil {
		t.Fatal(err)
	}
	if err := bob.Join(ctx, channel, userB); err != nil {
		t.Fatal(err)
	}
	// Until the nodes' subscriptions have met, a message reaches only its
	// own node: each sends again every 2 s until the other has one.
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(60 * time.Second)
	for next := time.Now(); atA.Load() == 0 || atB.Load() == 0; <-tick.C {
		if now := time.Now(); now.After(next) {
			if now.After(deadline) {
				t.Fatalf("after 60 s, alice has %d messages from bob and bob %d from alice", atA.Load(), atB.Load())
			}
			if atB.Load() == 0 {
				if _, err := alice.Send(ctx, channel, "hello bob"); err != nil {
					t.Fatal(err)
				}
			}
			if atA.Load() == 0 {
				if _, err := bob.Send(ctx, channel, "hello alice"); err != nil {
					t.Fatal(err)
				}
			}
			next = now.Add(2 * time.Second)
		}
	}
	return alice, bob
}

// Two users chat through two real nodes with --metrics: each node's
// /metrics counts the sessions, logins, messages and their latency, and
// carries libp2p's and GossipSub's series; no series carries the channel,
// a username or a key. /healthz and /readyz answer 200, and /debug/pprof
// is there only on the node started with --pprof.
func TestMetricsAfterChat(t *testing.T) {
	t.Parallel()
	a := startDaemon(t, "A", daemonSpec{args: nodeArgs(t, "cli", "--metrics", "127.0.0.1:0", "--pprof")})
	b := startDaemon(t, "B", daemonSpec{args: nodeArgs(t, "cli", "--peer", a.tcpMultiaddr()),
		env: []string{"DARKCHAT_METRICS=127.0.0.1:0"}})

	const channel, userA, userB = "backroom-9", "alice7", "bob8"
	alice, bob := chatThrough(t, a, b, channel, userA, userB)

	secrets := []string{channel, userA, userB, alice.PublicKey().String(), bob.PublicKey().String()}
	for _, d := range []*daemon{a, b} {
		var s map[string]string
		eventually(t, 10*time.Second, d.name+"'s metrics to count a delivered message", func() bool {
			s = d.scrape(t)
			return s["darkchat_channel_messages_delivered_total"] != "" && s["darkchat_channel_messages_delivered_total"] != "0"
		})
		for _, want := range []string{
			`darkchat_gateway_sessions{transport="tcp"} 1`,
			`darkchat_gateway_logins_total{result="ok"} 1`,
			`darkchat_gateway_channels 1`,
		} {
			i := strings.LastIndexByte(want, ' ')
			if s[want[:i]] != want[i+1:] {
				t.Errorf("%s: %s is %q, want %s", d.name, want[:i], s[want[:i]], want[i+1:])
			}
		}
		for _, positive := range []string{
			`darkchat_gateway_requests_total{kind="send"}`,
			`darkchat_channel_delivery_latency_seconds_count{origin="mesh"}`,
			`darkchat_channel_delivery_latency_seconds_bucket{origin="mesh",le="+Inf"}`,
			`gossipsub_message_delivered_total{kind="channel"}`,
			`gossipsub_mesh_peers_total{kind="channel"}`,
			`darkchat_p2p_connected_peers{path="direct"}`,
			`process_open_fds`,
			`go_goroutines`,
		} {
			if v := s[positive]; v == "" || v == "0" {
				t.Errorf("%s: %s is %q, want a positive count", d.name, positive, v)
			}
		}
		var swarm, rcmgr, dht bool
		for series := range s {
			swarm = swarm || strings.HasPrefix(series, "libp2p_swarm_")
			rcmgr = rcmgr || strings.HasPrefix(series, "libp2p_rcmgr_")
			// The DHT's own, bridged from OpenTelemetry: the nodes have
			// announced the channel to each other by now.
			dht = dht || strings.HasPrefix(series, "libp2p_kad_dht_rpc_inbound_messages")
			for _, secret := range secrets {
				if strings.Contains(series, secret) {
					t.Errorf("%s: series %s carries %q", d.name, series, secret)
				}
			}
		}
		if !swarm || !rcmgr || !dht {
			t.Errorf("%s: libp2p_swarm_ series %v, libp2p_rcmgr_ series %v, libp2p_kad_dht_ series %v; want all", d.name, swarm, rcmgr, dht)
		}
		if code, body := httpGet(t, d.base()+"/healthz"); code != 200 {
			t.Errorf("%s /healthz: %d %q", d.name, code, body)
		}
		if code, body := httpGet(t, d.base()+"/readyz"); code != 200 {
			t.Errorf("%s /readyz: %d %q", d.name, code, body)
		}
	}
	if code, _ := httpGet(t, a.base()+"/debug/pprof/goroutine?debug=1"); code != 200 {
		t.Errorf("A (--pprof) /debug/pprof/goroutine: %d, want 200", code)
	}
	if code, _ := httpGet(t, b.base()+"/debug/pprof/"); code != 404 {
		t.Errorf("B (no --pprof) /debug/pprof/: %d, want 404", code)
	}
}

// A node whose --peer cannot be reached is up but not ready: /readyz
// answers 503 naming the missing peers, /healthz 200.
func TestReadyzWaitsForConfiguredPeers(t *testing.T) {
	t.Parallel()
	// A peer ID nobody has, on a port nothing listens on.
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "lonely", daemonSpec{args: nodeArgs(t, "cli", "--metrics", "127.0.0.1:0",
		"--peer", "/ip4/127.0.0.1/tcp/1/p2p/"+id.String())})
	code, body := httpGet(t, d.base()+"/readyz")
	if code != 503 || !strings.HasPrefix(body, "not ready: peers: ") || strings.Count(body, "\n") != 1 {
		t.Errorf("/readyz: %d %q; want 503 and one line naming the peers", code, body)
	}
	if code, _ := httpGet(t, d.base()+"/healthz"); code != 200 {
		t.Errorf("/healthz: %d, want 200", code)
	}
}

// /readyz follows the daemon's start and shutdown: 503 before the peer
// host is up, 503 before the gateways listen, 200 then, 503 again once the
// node shuts down. (In-process: a real daemon passes these stages faster
// than a test can ask.)
func TestReadyzFollowsStartAndShutdown(t *testing.T) {
	t.Parallel()
	o, err := parseServerArgs(serverTypes[1], []string{"127.0.0.1", "0", "0", "--metrics", "127.0.0.1:0"}, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := startObservability(o, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer obs.close()
	readyz := func() (int, string) { return httpGet(t, "http://"+obs.addr+"/readyz") }
	if code, body := readyz(); code != 503 || body != "not ready: peer host: not started yet\n" {
		t.Errorf("before the node: %d %q", code, body)
	}
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	node, err := p2p.New(p2p.Config{Key: key, ListenIP: netip.MustParseAddr("127.0.0.1"), Registerer: obs.registerer()})
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	obs.nodeStarted(node)
	if code, body := readyz(); code != 503 || body != "not ready: gateways: not listening yet\n" {
		t.Errorf("before the gateways: %d %q", code, body)
	}
	obs.gatewaysListening()
	if code, body := readyz(); code != 200 {
		t.Errorf("with the gateways listening: %d %q", code, body)
	}
	obs.shuttingDown()
	if code, body := readyz(); code != 503 || body != "not ready: gateways: the node is shutting down\n" {
		t.Errorf("shutting down: %d %q", code, body)
	}
}

// ctl stats works on nodes without --metrics: after two users chat
// through two nodes, each shows its session, messages in and out over the
// last minute, and the channel latency; no figure names the channel or a
// user.
func TestCtlStatsAfterChat(t *testing.T) {
	t.Parallel()
	a := startDaemon(t, "A", daemonSpec{args: nodeArgs(t, "cli")})
	b := startDaemon(t, "B", daemonSpec{args: nodeArgs(t, "cli", "--peer", a.tcpMultiaddr())})
	if a.metrics != "" || b.metrics != "" {
		t.Fatalf("nodes without --metrics printed a Metrics: line")
	}
	const channel, userA, userB = "statsroom-3", "carol5", "dave6"
	chatThrough(t, a, b, channel, userA, userB)

	rate := regexp.MustCompile(`^messages (in|out): ([0-9.]+)/s over the last [0-9]+s$`)
	for _, d := range []*daemon{a, b} {
		var lines []string
		eventually(t, 20*time.Second, d.name+"'s ctl stats to show the chat", func() bool {
			r := d.ctl("stats")
			if r.code != 0 {
				t.Fatalf("%s: ctl stats exited %d: %s%s", d.name, r.code, r.stdout, r.stderr)
			}
			lines = r.lines()
			positive := 0
			for _, l := range lines {
				if m := rate.FindStringSubmatch(l); m != nil && m[2] != "0.00" {
					positive++
				}
			}
			return positive == 2 && len(lines) == 9 && strings.HasPrefix(lines[7], "channel latency: p50 ")
		})
		t.Logf("%s: darkchatd ctl stats\n%s", d.name, strings.Join(lines, "\n"))
		want := []string{"peers: 1 (1 direct, 0 relayed)", "sessions: 1 (1 tcp, 0 ws)", "channels: 1"}
		if !slices.Equal(lines[:3], want) {
			t.Errorf("%s: %q, want %q", d.name, lines[:3], want)
		}
		for i, prefix := range []string{"drops: ", "rejects: ", "channel latency: p50 ", "DM delivery: no DMs over the last "} {
			if !strings.HasPrefix(lines[5+i], prefix) {
				t.Errorf("%s: line %d is %q, want it to start %q", d.name, 6+i, lines[5+i], prefix)
			}
		}
		for _, l := range lines {
			for _, secret := range []string{channel, userA, userB} {
				if strings.Contains(l, secret) {
					t.Errorf("%s: %q names %q", d.name, l, secret)
				}
			}
		}
	}
}
