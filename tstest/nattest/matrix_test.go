// Package nattest is darkchat's NAT test matrix: real darkchatd processes
// and real darkchat clients in Linux network namespaces, behind routers that
// NAT with iptables (package netns), on an emulated internet in
// 198.18.0.0/24 that the nodes declare public with --public-cidr.
//
// Every cell but relay failover has ONE public node, P, and every other node
// is started with `--peer P` only: the deployment of a community that runs
// one VPS while everyone else is at home.
//
//	TestMatrix/public-private   a user on P, a user behind a cone router           chat at once, direct
//	TestMatrix/cone-cone-quic   two nodes behind their own cone routers            hole punched (direct) within 90 s, chat
//	TestMatrix/cone-cone-tcp    same, the routers drop UDP                         hole punched over TCP within 90 s, chat
//	TestMatrix/cone-symmetric   one cone router, one symmetric                     chat at once (relayed unless a punch lands)
//	TestMatrix/sym-sym          two symmetric routers                              chat at once over P's relay, never direct
//	TestMatrix/same-router      two nodes on one LAN behind one cone router        direct over the LAN, not through the relay
//	TestMatrix/forwarded-P      P on a private address behind a router that        P relays for two nodes behind symmetric
//	                            forwards its port (a cloud VPS's 1:1 NAT),         routers; they chat at once through it
//	                            started with --announce <router>:<port>
//	TestSymmetricRelayed        two symmetric routers                              > 128 KiB through the relay, chat again after 3 minutes
//	TestRelayRestart            two symmetric routers, P restarts                  both re-reserve; users chat again within 60 s
//	TestRelayFailover           three public nodes, two symmetric routers          the relay carrying the chat is killed; chat resumes
//
// TestMatrix runs each cell once by default and checks every run. With
// DARKCHAT_NAT_RUNS=20 it runs each cell 20 times on fresh namespaces and
// prints the table BENCHMARKS.md publishes (hole-punch success rate, time to
// first chat, time to a direct connection, share of messages relayed):
//
//	DARKCHAT_NAT_RUNS=20 go test ./tstest/nattest -run TestMatrix -v -timeout 3h
//
// The cells need root, iproute2 and iptables; they skip without them, and
// fail instead when DARKCHAT_REQUIRE_ALL=1 (as in CI).
package nattest

import (
	"fmt"
	"os"
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

// Deadlines and targets.
const (
	directTimeout = 90 * time.Second // from the start of the NATed nodes: the bound
	chatTimeout   = 60 * time.Second
	// repairTimeout bounds how long a message sent while two nodes had
	// no path takes to reach the other side by repair once they have one.
	repairTimeout   = 20 * time.Second
	firstChatTarget = 10 * time.Second // from the start of the NATed nodes
	failoverTimeout = 2 * time.Minute
	restartTimeout  = 60 * time.Second
	relaySurvival   = 3 * time.Minute
	// maxHolePunchRounds is p2p's bound on hole-punch rounds per relayed
	// peer (libp2p's first round and the node's retries).
	maxHolePunchRounds = 5
	// conversationWindow is how long a matrix run keeps its users talking
	// (one message each way every probeInterval) to measure the share of
	// messages that crossed a relay; a cell that expects a direct
	// connection talks until it has one.
	conversationWindow = 30 * time.Second
	probeInterval      = 500 * time.Millisecond
)

// cell is one topology of the matrix.
type cell struct {
	name string
	// build creates the namespaces and starts P and the two nodes whose
	// users talk (a may be P itself). It returns them and the moment the
	// NATed nodes were started.
	build func(tn *testnet) (pub, a, b *node, started time.Time)
	// want is the a -> b link the cell must end with.
	want link
	// punch: a and b must hole-punch (not just dial) to get a direct link.
	punch bool
	// lanDirect: the direct link must go over the shared LAN.
	lanDirect bool
}

var cells = []cell{
	{name: "public-private", want: linkDirect, build: func(tn *testnet) (*node, *node, *node, time.Time) {
		pub := tn.startNode("P", "full", tn.publicHost("P", 1))
		hb := tn.lanHost(tn.router("nat1", 1, netns.Cone), "b", 1, 2)
		started := time.Now()
		return pub, pub, tn.startNode("b", "cli", hb, pub), started
	}},
	{name: "cone-cone-quic", want: linkDirect, punch: true, build: twoNATs(netns.Cone, netns.Cone, false)},
	{name: "cone-cone-tcp", want: linkDirect, punch: true, build: twoNATs(netns.Cone, netns.Cone, true)},
	{name: "cone-symmetric", build: twoNATs(netns.Cone, netns.Symmetric, false)},
	{name: "sym-sym", want: linkRelayed, build: twoNATs(netns.Symmetric, netns.Symmetric, false)},
	{name: "same-router", want: linkDirect, lanDirect: true, build: func(tn *testnet) (*node, *node, *node, time.Time) {
		pub := tn.startNode("P", "full", tn.publicHost("P", 1))
		r := tn.router("nat1", 1, netns.Cone)
		ha, hb := tn.lanHost(r, "a", 1, 2), tn.lanHost(r, "b", 1, 3)
		started := time.Now()
		a, b := tn.startPair(ha, hb, pub)
		return pub, a, b, started
	}},
	{name: "forwarded-P", want: linkRelayed, build: func(tn *testnet) (*node, *node, *node, time.Time) {
		// P's "cloud" router forwards the peer port (TCP and UDP) to P's
		// private address, as a VPS provider's 1:1 NAT does.
		cloud := tn.router("cloud", 3, netns.Cone)
		hp := tn.lanHost(cloud, "P", 3, 2)
		for _, proto := range []string{"tcp", "udp"} {
			if err := cloud.Iptables("-t", "nat", "-A", "PREROUTING", "-i", "wan", "-p", proto, "--dport", strconv.Itoa(peerPort),
				"-j", "DNAT", "--to-destination", hp.Addr.String()+":"+strconv.Itoa(peerPort)); err != nil {
				tn.t.Fatal(err)
			}
		}
		pub := tn.startNodeWith("P", "full", hp, []string{"--announce", cloud.Addr.String() + ":" + strconv.Itoa(peerPort)})
		pub.forwardedAt = cloud.Addr
		r1, r2 := tn.router("nat1", 1, netns.Symmetric), tn.router("nat2", 2, netns.Symmetric)
		ha, hb := tn.lanHost(r1, "a", 1, 2), tn.lanHost(r2, "b", 2, 2)
		started := time.Now()
		a, b := tn.startPair(ha, hb, pub)
		return pub, a, b, started
	}},
}

// twoNATs builds P and two nodes, each behind its own router of the given
// kinds; dropUDP makes both routers drop UDP, so only TCP can punch.
func twoNATs(ka, kb netns.Kind, dropUDP bool) func(tn *testnet) (*node, *node, *node, time.Time) {
	return func(tn *testnet) (*node, *node, *node, time.Time) {
		pub := tn.startNode("P", "full", tn.publicHost("P", 1))
		r1, r2 := tn.router("nat1", 1, ka), tn.router("nat2", 2, kb)
		if dropUDP {
			for _, r := range []*netns.Router{r1, r2} {
				if err := r.Iptables("-A", "FORWARD", "-p", "udp", "-j", "DROP"); err != nil {
					tn.t.Fatal(err)
				}
			}
		}
		ha, hb := tn.lanHost(r1, "a", 1, 2), tn.lanHost(r2, "b", 2, 2)
		started := time.Now()
		a, b := tn.startPair(ha, hb, pub)
		return pub, a, b, started
	}
}

// startPair starts nodes a and b at the same time, each peered with pub
// only.
func (tn *testnet) startPair(ha, hb *netns.Host, pub *node) (a, b *node) {
	var wg sync.WaitGroup
	wg.Go(func() { a = tn.startNode("a", "cli", ha, pub) })
	wg.Go(func() { b = tn.startNode("b", "full", hb, pub) })
	wg.Wait()
	if a == nil || b == nil {
		tn.t.FailNow() // startNode has reported why
	}
	return a, b
}

// runResult is what one run of a cell measured.
type runResult struct {
	firstChat    time.Duration // NATed nodes started -> first message a's user sent printed by b's user
	direct       bool          // a -> b became direct
	toDirect     time.Duration // NATed nodes started -> direct link
	punched      bool          // the direct link was hole punched
	delivered    int           // messages a -> b delivered in the window
	relayedShare float64       // of those, the share sent while a -> b was relayed
}

func TestMatrix(t *testing.T) {
	requireNetns(t)
	runs := 1
	if s := os.Getenv("DARKCHAT_NAT_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("DARKCHAT_NAT_RUNS=%q: want a positive number of runs", s)
		}
		runs = n
	}
	var mu sync.Mutex
	results := make(map[string][]runResult)
	t.Run("cells", func(t *testing.T) {
		for _, c := range cells {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				for i := range runs {
					ok := t.Run("run"+strconv.Itoa(i+1), func(t *testing.T) {
						r := runCell(t, c)
						mu.Lock()
						results[c.name] = append(results[c.name], r)
						mu.Unlock()
					})
					if !ok && runs == 1 {
						return
					}
				}
			})
		}
	})
	t.Log("\n" + matrixTable(results, runs))
}

// runCell runs one cell on a fresh testnet: the users on a and b join a
// channel as soon as their nodes are up and keep talking, one message each
// way every probeInterval, while `peers` is polled for the a -> b link.
func runCell(t *testing.T, c cell) runResult {
	tn := newTestnet(t)
	pub, a, b, started := c.build(tn)
	alice, bob := tn.client(a, "alice"), tn.client(b, "bob")
	tn.join(alice, "matrix", "alice")
	tn.join(bob, "matrix", "bob")

	var res runResult
	type sent struct {
		at   time.Time
		link link
	}
	var sentAB []sent // index = message number
	current := linkNone
	window := time.Now().Add(conversationWindow)
	if c.want == linkDirect {
		window = started.Add(directTimeout)
	}
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	for i := 0; time.Now().Before(window); i++ {
		if l, _, err := tn.linkTo(a, b); err == nil {
			current = l
		}
		if current == linkDirect && !res.direct {
			res.direct, res.toDirect = true, time.Since(started)
			if c.want == linkDirect && time.Now().Add(5*time.Second).Before(window) {
				window = time.Now().Add(5 * time.Second) // a few direct messages, then stop
				if w := started.Add(conversationWindow); w.After(window) {
					window = w
				}
			}
		}
		sentAB = append(sentAB, sent{time.Now(), current})
		if err := alice.Say("matrix", "m"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		if err := bob.Say("matrix", "r"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		if res.firstChat == 0 && slices.ContainsFunc(bob.Lines(), func(l string) bool { return strings.HasPrefix(l, "alice@matrix - m") }) {
			res.firstChat = time.Since(started)
		}
		<-tick.C
	}
	// Let the last messages land.
	last := "alice@matrix - m" + strconv.Itoa(len(sentAB)-1)
	bob.WaitLine(0, 5*time.Second, func(l string) bool { return l == last })
	var relayed int
	for _, l := range bob.Lines() {
		if n, ok := strings.CutPrefix(l, "alice@matrix - m"); ok {
			i, err := strconv.Atoi(n)
			if err != nil || i >= len(sentAB) {
				continue
			}
			res.delivered++
			if sentAB[i].link == linkRelayed {
				relayed++
			}
			if res.firstChat == 0 {
				res.firstChat = time.Since(started) // landed after the last probe
			}
		}
	}
	if res.delivered > 0 {
		res.relayedShare = float64(relayed) / float64(res.delivered)
	}
	gotBack := slices.ContainsFunc(alice.Lines(), func(l string) bool { return strings.HasPrefix(l, "bob@matrix - r") })
	t.Logf("%s: first chat %v, direct %v after %v, %d messages a->b delivered of %d sent, %.0f%% of them relayed",
		c.name, res.firstChat.Round(100*time.Millisecond), res.direct, res.toDirect.Round(100*time.Millisecond),
		res.delivered, len(sentAB), 100*res.relayedShare)

	if testing.Verbose() && os.Getenv("DARKCHAT_NAT_RUNS") == "" {
		t.Logf("%s: `nat` on b:\n%s", c.name, strings.Join(tn.nat(b), "\n"))
	}

	// What every run must show.
	switch {
	case res.delivered == 0:
		t.Errorf("alice's messages never reached bob")
	case !gotBack:
		t.Errorf("bob's messages never reached alice")
	case res.firstChat > firstChatTarget:
		t.Errorf("first chat %v after the NATed nodes started, want at most %v", res.firstChat.Round(100*time.Millisecond), firstChatTarget)
	}
	l, addr, err := tn.linkTo(a, b)
	if err != nil {
		t.Fatal(err)
	}
	switch c.want {
	case linkDirect:
		if l != linkDirect {
			t.Errorf("a -> b is %s (%s) at the end, want direct within %v", l, addr, directTimeout)
		}
	case linkRelayed:
		if l != linkRelayed || res.direct {
			t.Errorf("a -> b is %s (%s), was direct: %v; want relayed only", l, addr, res.direct)
		}
	}
	if c.lanDirect && l == linkDirect && !strings.HasPrefix(addr, "/ip4/198.19.1.") {
		t.Errorf("a -> b is direct over %s, want over their LAN 198.19.1.0/24", addr)
	}
	if c.punch && l == linkDirect {
		res.punched = tn.holePunched(a, b) || tn.holePunched(b, a)
		if !res.punched {
			t.Errorf("a -> b is direct but neither nat report says it was hole punched:\n%s\n\n%s",
				strings.Join(tn.nat(a), "\n"), strings.Join(tn.nat(b), "\n"))
		}
	}
	// P relays, and every NATed node holds a reservation with it.
	if !slices.ContainsFunc(tn.nat(pub), func(l string) bool { return strings.HasPrefix(l, "relay service: offering") }) {
		t.Errorf("P does not offer a relay:\n%s", strings.Join(tn.nat(pub), "\n"))
	}
	for _, n := range []*node{a, b} {
		if n == pub {
			continue
		}
		ids, err := tn.reservations(n)
		if err != nil || !slices.Contains(ids, pub.id) {
			t.Errorf("%s holds no reservation with P (%v, %v):\n%s", n.name, ids, err, strings.Join(tn.nat(n), "\n"))
		}
	}
	return res
}

// holePunched reports whether n's nat report says its direct connection to
// other was hole punched.
func (tn *testnet) holePunched(n, other *node) bool {
	return slices.ContainsFunc(tn.nat(n), func(l string) bool {
		return strings.HasPrefix(l, "peer "+other.id+": direct") && strings.Contains(l, "(hole punched)")
	})
}

// matrixTable formats the runs of every cell as the markdown table of
// BENCHMARKS.md.
func matrixTable(results map[string][]runResult, runs int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| cell | runs | chatted | direct (hole-punch success) | first chat p50 / p90 | to direct p50 / p90 | messages relayed |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|\n")
	for _, c := range cells {
		rs := results[c.name]
		if len(rs) == 0 {
			continue
		}
		var chatted, direct int
		var first, toDirect []time.Duration
		var share float64
		for _, r := range rs {
			if r.delivered > 0 {
				chatted++
				first = append(first, r.firstChat)
			}
			if r.direct {
				direct++
				toDirect = append(toDirect, r.toDirect)
			}
			share += r.relayedShare
		}
		directCol := fmt.Sprintf("%d/%d", direct, len(rs))
		if c.punch || c.want != linkDirect {
			directCol += fmt.Sprintf(" (%.0f%%)", 100*float64(direct)/float64(len(rs)))
		} else {
			directCol += " (dialled, no punch needed)"
		}
		fmt.Fprintf(&b, "| %s | %d | %d/%d | %s | %s / %s | %s / %s | %.0f%% |\n",
			c.name, len(rs), chatted, len(rs), directCol,
			quantile(first, 0.5), quantile(first, 0.9), quantile(toDirect, 0.5), quantile(toDirect, 0.9),
			100*share/float64(len(rs)))
	}
	fmt.Fprintf(&b, "\n%d run(s) per cell; times from the start of the NATed nodes (P already running).\n", runs)
	return b.String()
}

func quantile(ds []time.Duration, q float64) string {
	if len(ds) == 0 {
		return "–"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.5) - 1
	i = max(0, min(i, len(s)-1))
	return s[i].Round(100 * time.Millisecond).String()
}

// TestSymmetricRelayed: behind routers that pick a new port for every
// destination, hole punching fails and the nodes stay on a relayed
// connection through P. The relay service has no per-connection limits, so
// chat keeps working past libp2p's default 128 KiB and 2 minutes.
func TestSymmetricRelayed(t *testing.T) {
	t.Parallel()
	tn := newTestnet(t)
	pub, a, b, started := twoNATs(netns.Symmetric, netns.Symmetric, false)(tn)
	alice := tn.client(a, "alice")
	bob := tn.client(b, "bob")
	tn.join(alice, "sym", "alice")
	tn.join(bob, "sym", "bob")
	tn.converse(alice, bob, "sym", "start", chatTimeout)
	chatted := time.Now()
	addr := tn.waitLink(a, b, linkRelayed, time.Second)
	t.Logf("a -> b: relayed over %s, first chat %v after the NATed nodes started", addr, chatted.Sub(started).Round(100*time.Millisecond))
	if relayOf(addr) != pub.id {
		t.Fatalf("a -> b relayed over %s, want P %s", addr, pub.id)
	}

	// More than the 128 KiB a default libp2p relay lets through one
	// relayed connection in one direction.
	n, err := chatproc.Flood(alice, bob, "sym", "flood", 40, 4000, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("flood: %d bytes of message bodies alice -> bob through the relay", n)

	// The nodes stay connected through the relay, never directly, for the
	// whole period; then they chat again.
	lastAddr := addr
	check := time.NewTicker(10 * time.Second)
	defer check.Stop()
	survived := time.NewTimer(relaySurvival - time.Since(chatted))
	defer survived.Stop()
	for waiting := true; waiting; {
		select {
		case <-check.C:
		case <-survived.C:
			waiting = false
		}
		l, ad, err := tn.linkTo(a, b)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case l == linkDirect:
			t.Fatalf("a -> b became direct (%s) behind symmetric NATs: the NAT emulation is wrong", ad)
		case l == linkNone:
			t.Fatalf("a -> b: relayed connection lost %v after the first chat", time.Since(chatted).Round(time.Second))
		case ad != lastAddr:
			t.Logf("a -> b: now relayed over %s", ad)
			lastAddr = ad
		}
	}
	t.Logf("a -> b: still relayed over %s %v after the first chat", lastAddr, time.Since(chatted).Round(time.Second))

	// DCUtR tried and failed, was retried a bounded number of times, and
	// `nat` says so on the node that punches. The last round may still be
	// dialling (a round is up to three 10-s dials).
	gaveUp := func(n, other *node) (string, bool) {
		lines := tn.nat(n)
		return strings.Join(lines, "\n"), slices.ContainsFunc(lines, func(l string) bool {
			return strings.HasPrefix(l, "  "+other.id+": ") && strings.Contains(l, " succeeded; last: hole punch failed") &&
				strings.Contains(l, fmt.Sprintf("round %d of %d, no more retries", maxHolePunchRounds, maxHolePunchRounds))
		})
	}
	var reportA, reportB string
	tstest.WaitFor(t, time.Minute, "exactly one nat report to show hole punching retried and given up", func() (bool, string) {
		var okA, okB bool
		reportA, okA = gaveUp(a, b)
		reportB, okB = gaveUp(b, a)
		return okA != okB, "\n" + reportA + "\n\n" + reportB // exactly one side punches
	})
	tn.converse(alice, bob, "sym", "after-3min", chatTimeout)
	if l, ad, _ := tn.linkTo(a, b); l != linkRelayed {
		t.Fatalf("a -> b after the last chat: %s %s", l, ad)
	}
}

// TestRelayRestart: the only public node, which relays for two nodes behind
// symmetric NATs, restarts. Both re-reserve with it and their users chat
// again within restartTimeout.
func TestRelayRestart(t *testing.T) {
	t.Parallel()
	tn := newTestnet(t)
	pub, a, b, _ := twoNATs(netns.Symmetric, netns.Symmetric, false)(tn)
	alice := tn.client(a, "alice")
	bob := tn.client(b, "bob")
	tn.join(alice, "restart", "alice")
	tn.join(bob, "restart", "bob")
	tn.converse(alice, bob, "restart", "before", chatTimeout)

	if err := pub.Stop(15 * time.Second); err != nil {
		t.Fatalf("P did not stop cleanly: %v", err)
	}
	tn.mu.Lock()
	pub.killed = true
	tn.mu.Unlock()
	restarted := time.Now()
	pub2 := tn.startNode("P", "full", pub.host)
	if pub2.id != pub.id {
		t.Fatalf("P came back as %s, want its old peer ID %s", pub2.id, pub.id)
	}
	for _, n := range []*node{a, b} {
		tn.waitReservations(n, "a reservation with the restarted P", restartTimeout-time.Since(restarted),
			func(ids []string) bool { return slices.Contains(ids, pub.id) })
		t.Logf("%s: re-reserved with P %v after the restart", n.name, time.Since(restarted).Round(100*time.Millisecond))
	}
	took, err := chatproc.Converse(alice, bob, "restart", "after", restartTimeout-time.Since(restarted))
	if err != nil {
		t.Fatalf("chat after P restarted: %v", err)
	}
	t.Logf("chat both ways again %v after P restarted (first message after %v)", time.Since(restarted).Round(100*time.Millisecond), took.Round(100*time.Millisecond))
	if time.Since(restarted) > restartTimeout {
		t.Fatalf("chat resumed %v after the restart, want within %v", time.Since(restarted).Round(time.Second), restartTimeout)
	}
	// What alice said while a and b had no path reaches bob too, late,
	// by repair: every probe before the last that arrived.
	const probe = "alice@restart - after-ab probe "
	last := -1
	for _, l := range bob.Lines() {
		if rest, ok := strings.CutPrefix(l, probe); ok {
			if n, err := strconv.Atoi(rest); err == nil {
				last = max(last, n)
			}
		}
	}
	for i := range max(last, 0) {
		want := probe + strconv.Itoa(i)
		if _, _, err := bob.WaitLine(0, repairTimeout, func(l string) bool { return l == want }); err != nil {
			t.Errorf("%q, sent while a and b had no path, did not reach bob: %v", want, err)
		}
	}
}

// TestRelayFailover: the relay carrying a relayed conversation goes away.
// The private nodes drop its reservation, take one with another public
// node, reconnect through it, and the conversation resumes. This is the one
// cell with more than one public node.
func TestRelayFailover(t *testing.T) {
	t.Parallel()
	tn := newTestnet(t)
	h1 := tn.publicHost("pub1", 1)
	h2 := tn.publicHost("pub2", 2)
	h3 := tn.publicHost("pub3", 3)
	r1, r2 := tn.router("nat1", 1, netns.Symmetric), tn.router("nat2", 2, netns.Symmetric)
	ha, hb := tn.lanHost(r1, "a", 1, 2), tn.lanHost(r2, "b", 2, 2)

	pub1 := tn.startNode("pub1", "full", h1)
	pubs := []*node{pub1, tn.startNode("pub2", "websock", h2, pub1), tn.startNode("pub3", "cli", h3, pub1)}
	a, b := tn.startPair(ha, hb, pub1)

	// Everyone comes to know everyone (discovery), the private nodes hold
	// two reservations each, and a and b are relayed.
	for _, p := range pubs {
		tn.waitLink(a, p, linkDirect, directTimeout)
		tn.waitLink(b, p, linkDirect, directTimeout)
	}
	two := func(ids []string) bool { return len(ids) == 2 }
	resA := tn.waitReservations(a, "two relays", directTimeout, two)
	resB := tn.waitReservations(b, "two relays", directTimeout, two)
	t.Logf("reservations at %v: a via %v, b via %v", tn.since(), tn.names(resA), tn.names(resB))
	addr := tn.waitLink(a, b, linkRelayed, directTimeout)

	alice := tn.client(a, "alice")
	bob := tn.client(b, "bob")
	tn.join(alice, "failover", "alice")
	tn.join(bob, "failover", "bob")
	tn.converse(alice, bob, "failover", "before", chatTimeout)

	// Kill the relay that carries a <-> b: the relayed connection goes
	// with it.
	if l, ad, err := tn.linkTo(a, b); err == nil && l == linkRelayed {
		addr = ad
	}
	victim := tn.byID(relayOf(addr))
	if victim == nil {
		t.Fatalf("a -> b is relayed over %s, not through one of the public nodes", addr)
	}
	t.Logf("a -> b relayed via %s; killing it", victim.name)
	killed := time.Now()
	tn.kill(victim)

	without := func(ids []string) bool { return len(ids) == 2 && !slices.Contains(ids, victim.id) }
	for _, n := range []*node{a, b} {
		ids := tn.waitReservations(n, "two relays other than "+victim.name, failoverTimeout, without)
		t.Logf("%s: reservations via %v %v after the kill", n.name, tn.names(ids), time.Since(killed).Round(100*time.Millisecond))
	}
	tstest.WaitFor(t, failoverTimeout, "a -> b to reconnect through another relay", func() (bool, string) {
		l, ad, err := tn.linkTo(a, b)
		addr = ad
		if err != nil {
			return false, err.Error()
		}
		return l == linkRelayed && relayOf(ad) != victim.id, fmt.Sprintf("a %s connection via %q", l, ad)
	})
	t.Logf("a -> b: relayed again via %s %v after the kill", tn.names([]string{relayOf(addr)}), time.Since(killed).Round(100*time.Millisecond))
	tn.converse(alice, bob, "failover", "after", chatTimeout)
}
