//go:build attack

// Package attacktest attacks real darkchatd processes with the peers of
// package attack and checks that honest users do not notice: honest
// delivery ≥ 99% during the attack, honest p99 latency within 2× of the
// quiet baseline, the victim's RSS ≤ 256 MiB, its log ≤ 1 MB a minute, and
// the attacking peers disconnected and refused.
//
// The package builds only with the attack tag: some bounds are not met yet
// (SECURITY.md, "What the attack tests show", has the figures), so it is
// not part of `go test ./...` until they are.
//
//	go test -tags attack ./tstest/attacktest -v                              # 8-s attacks
//	DARKCHAT_ATTACK_FULL=1 go test -tags attack ./tstest/attacktest -v -timeout 30m   # 40-s attacks
package attacktest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"darkchat/cmd/darkbench/bench"
	"darkchat/tstest/attack"
	"darkchat/tstest/chatproc"
)

var bins chatproc.Binaries

// attackerEnv, when set, makes the test binary an attacker process: it
// runs the attack.Spec the variable holds (JSON) and exits.
const attackerEnv = "DARKCHAT_ATTACKER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(attackerEnv); spec != "" {
		os.Exit(attack.Main(spec, os.Stdout))
	}
	os.Exit(chatproc.RunWithBinaries(m, "attacktest", &bins))
}

// Limits every attack test asserts.
const (
	minHonestDelivered = 99.0
	// maxLatencyFactor bounds honest p99 under attack against the
	// quiet baseline: the victim's path measured before the attack, or
	// the control path (two nodes nobody attacks, on the same machine)
	// measured during it, whichever is higher. On one shared 2-core
	// machine a quiet p99 of about a millisecond moves by several
	// milliseconds from one run to the next (stalls of 30–50 ms come and
	// go with no process of the test busy), and the attacker's own CPU
	// use would not be on the victim's machine in a real attack; the
	// control path measures both at the same moments, so what the bound
	// sees is what the attack costs the victim.
	maxLatencyFactor = 2.0
	maxRSS           = 256 << 20
	maxLogPerMin     = 1 << 20
	bannedWithin     = 10 * time.Second
	honestRate       = 200 // messages a second
	honestChannel    = "lobby"
)

// attackPeers is how many attacking peer IDs the channel attacks run at
// once (DARKCHAT_ATTACK_PEERS, default 32); each cut off is replaced, so
// a run goes through hundreds of peer IDs.
func attackPeers() int {
	if n, err := strconv.Atoi(os.Getenv("DARKCHAT_ATTACK_PEERS")); err == nil && n > 0 {
		return n
	}
	return 32
}

// attackDuration is how long each attack runs.
func attackDuration() time.Duration {
	if os.Getenv("DARKCHAT_ATTACK_FULL") == "1" {
		return 40 * time.Second
	}
	return 8 * time.Second
}

// mesh is an honest sender's node A and the victim B, peered, with
// raised client rate limits so the honest traffic is not what limits,
// and the control path beside them.
type mesh struct {
	a, victim *chatproc.TestNode
	control   *controlPath
	target    string // the victim's multiaddr with /p2p
	// rate is the honest sender's messages a second (0: honestRate).
	rate int
}

// controlPath is two peered nodes, C and D, with the victim's flags, that
// no attacker knows of: honest traffic C -> D measured during an attack
// is the quiet baseline of that moment on this machine.
type controlPath struct {
	c, d *chatproc.TestNode
}

func startControlPath(t *testing.T, flags ...string) *controlPath {
	t.Helper()
	c := bins.StartNode(t, "C", "cli", flags...)
	d := bins.StartNode(t, "D", "cli", append(flags, "--peer", "127.0.0.1:"+strconv.Itoa(c.PeerPort))...)
	d.WaitPeer(c.ID)
	return &controlPath{c: c, d: d}
}

// measure sends n honest messages C -> D at rate a second.
func (p *controlPath) measure(ctx context.Context, n, rate int) (bench.HonestTraffic, error) {
	return bench.MeasureHonest(ctx, "127.0.0.1:"+strconv.Itoa(p.c.CLIPort), "127.0.0.1:"+strconv.Itoa(p.d.CLIPort), honestChannel, n, rate)
}

// checkLatency applies the latency bound: under attack, honest p99 within
// maxLatencyFactor of the higher of the quiet p99 before the attack and
// the control path's p99 during it.
func checkLatency(t *testing.T, quiet, loud, control bench.HonestTraffic) {
	t.Helper()
	t.Logf("control path during the attack: %.2f%% delivered, p50 %v, p99 %v", control.DeliveredPct, control.P50, control.P99)
	base := max(quiet.P99, control.P99)
	if bound := time.Duration(maxLatencyFactor * float64(base)); loud.P99 > bound {
		t.Errorf("honest p99 %v under attack, want ≤ %v (%.0f× the quiet baseline %v; before the attack %v, control path during it %v)",
			loud.P99, bound, maxLatencyFactor, base, quiet.P99, control.P99)
	}
}

func newMesh(t *testing.T) *mesh {
	t.Helper()
	return newMeshWith(t, "--author-rate", "0")
}

// newMeshWith is newMesh with the nodes' author limits set by authorFlags.
func newMeshWith(t *testing.T, authorFlags ...string) *mesh {
	t.Helper()
	limits := append([]string{"--rate", "100000", "--burst", "100000"}, authorFlags...)
	a := bins.StartNode(t, "A", "cli", limits...)
	// DARKCHAT_ATTACK_PROFILE=DIR: a CPU profile of each victim in
	// DIR/<test>.pprof, to see what an attack costs it.
	if dir := os.Getenv("DARKCHAT_ATTACK_PROFILE"); dir != "" {
		t.Setenv("DARKCHAT_CPUPROFILE", filepath.Join(dir, t.Name()+".pprof"))
	}
	// DARKCHAT_ATTACK_MEMPROFILE=DIR: a heap profile of each victim, as
	// it exits, in DIR/<test>.heap.
	if dir := os.Getenv("DARKCHAT_ATTACK_MEMPROFILE"); dir != "" {
		t.Setenv("DARKCHAT_MEMPROFILE", filepath.Join(dir, t.Name()+".heap"))
	}
	// DARKCHAT_ATTACK_TRACE=DIR: an execution trace of each victim in
	// DIR/<test>.trace, to see where it waited.
	if dir := os.Getenv("DARKCHAT_ATTACK_TRACE"); dir != "" {
		t.Setenv("DARKCHAT_TRACE", filepath.Join(dir, t.Name()+".trace"))
	}
	victim := bins.StartNode(t, "victim", "cli", append(limits, "--peer", "127.0.0.1:"+strconv.Itoa(a.PeerPort))...)
	victim.WaitPeer(a.ID)
	control := startControlPath(t, limits...)
	return &mesh{a: a, victim: victim, control: control, target: "/ip4/127.0.0.1/tcp/" + strconv.Itoa(victim.PeerPort) + "/p2p/" + victim.ID}
}

// honest measures honest traffic A -> victim for about d.
func (m *mesh) honest(ctx context.Context, d time.Duration) (bench.HonestTraffic, error) {
	n, rate := m.honestLoad(d)
	return bench.MeasureHonest(ctx, "127.0.0.1:"+strconv.Itoa(m.a.CLIPort), "127.0.0.1:"+strconv.Itoa(m.victim.CLIPort), honestChannel, n, rate)
}

// honestLoad is how many honest messages a measurement of about d sends,
// and at what rate.
func (m *mesh) honestLoad(d time.Duration) (n, rate int) {
	rate = honestRate
	if m.rate > 0 {
		rate = m.rate
	}
	return int(d.Seconds() * float64(rate)), rate
}

// honestWithControl measures honest traffic A -> victim and, at the same
// time, on the control path.
func (m *mesh) honestWithControl(ctx context.Context, d time.Duration) (victim, control bench.HonestTraffic, victimErr, controlErr error) {
	n, rate := m.honestLoad(d)
	done := make(chan struct{})
	go func() {
		defer close(done)
		control, controlErr = m.control.measure(ctx, n, rate)
	}()
	victim, victimErr = m.honest(ctx, d)
	<-done
	return victim, control, victimErr, controlErr
}

// cpuTime is the user and system CPU time process pid has used so far.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatalf("cannot read CPU use: %v", err)
	}
	// Fields after the command name (which may hold spaces) start at ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// startAttacker runs spec in an attacker process of its own and waits
// until the attack is under way.
func startAttacker(t *testing.T, spec attack.Spec) *chatproc.Proc {
	t.Helper()
	b, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), attackerEnv+"="+string(b))
	p, err := chatproc.Start("attacker", cmd, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	if _, _, err := p.WaitLine(0, 10*time.Second, func(l string) bool { return l == attack.Begun }); err != nil {
		t.Fatalf("the attack did not begin: %v\n%s", err, p.Stderr())
	}
	return p
}

// attackResult waits for the attacker process to end and returns what it
// reported.
func attackResult(t *testing.T, p *chatproc.Proc, timeout time.Duration) attack.Result {
	t.Helper()
	line, _, err := p.WaitLine(0, timeout, func(l string) bool { return strings.HasPrefix(l, "{") })
	if err != nil {
		t.Fatalf("no result from the attacker: %v\n%s\n%s", err, strings.Join(p.Lines(), "\n"), p.Stderr())
	}
	var r attack.Result
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("attacker result %q: %v", line, err)
	}
	return r
}

// underAttack measures a quiet baseline, then runs the attack spec
// describes (its Target and Duration set here) in a process of its own,
// measures honest traffic while it lasts, checks the bounds every attack
// test shares, and returns what the attack reported.
func underAttack(t *testing.T, m *mesh, spec attack.Spec) attack.Result {
	t.Helper()
	ctx := t.Context()
	quiet, err := m.honest(ctx, 3*time.Second)
	if err != nil {
		t.Fatalf("quiet baseline: %v", err)
	}
	t.Logf("quiet: %.2f%% delivered, p50 %v, p99 %v", quiet.DeliveredPct, quiet.P50, quiet.P99)
	logBefore := len(m.victim.Stderr())

	d := attackDuration()
	spec.Target, spec.Duration = m.target, d
	victimCPU0, aCPU0, wall0 := cpuTime(t, m.victim.PID()), cpuTime(t, m.a.PID()), time.Now()
	attacker := startAttacker(t, spec)
	loud, control, herr, cerr := m.honestWithControl(ctx, d-time.Second)
	wall := time.Since(wall0)
	r := attackResult(t, attacker, d+30*time.Second)
	t.Logf("CPU during the attack: victim %.0f%%, node A %.0f%%, attacker %.0f%% (of one core)",
		100*(cpuTime(t, m.victim.PID())-victimCPU0).Seconds()/wall.Seconds(),
		100*(cpuTime(t, m.a.PID())-aCPU0).Seconds()/wall.Seconds(),
		100*r.CPU.Seconds()/d.Seconds())
	if herr != nil {
		t.Errorf("honest traffic under attack: %v", herr)
	}
	t.Logf("under attack: %.2f%% delivered, p50 %v, p99 %v", loud.DeliveredPct, loud.P50, loud.P99)
	t.Logf("attack: %+v", r)

	if loud.DeliveredPct < minHonestDelivered {
		t.Errorf("honest delivery %.2f%% under attack, want ≥ %.0f%%", loud.DeliveredPct, minHonestDelivered)
	}
	if cerr != nil {
		t.Errorf("honest traffic on the control path: %v", cerr)
	}
	checkLatency(t, quiet, loud, control)
	if rss := vmHWM(t, m.victim.PID()); rss > maxRSS {
		t.Errorf("victim peak RSS %d MiB, want ≤ %d MiB", rss>>20, maxRSS>>20)
	} else {
		t.Logf("victim peak RSS %d MiB", rss>>20)
	}
	logged := len(m.victim.Stderr()) - logBefore
	perMin := float64(logged) / d.Minutes()
	t.Logf("victim logged %d bytes during the attack (%.0f bytes/min)", logged, perMin)
	if os.Getenv("DARKCHAT_ATTACK_VICTIM_LOG") != "" {
		t.Logf("victim log:\n%s", m.victim.Stderr())
	}
	if perMin > maxLogPerMin {
		t.Errorf("victim logged %.0f bytes a minute under attack, want ≤ %d", perMin, maxLogPerMin)
	}
	return r
}

// checkCutOff checks that every attacking peer ID was cut off, within
// bannedWithin of when it began.
func checkCutOff(t *testing.T, r attack.Result) {
	t.Helper()
	if r.CutOff == 0 {
		t.Error("no attacking peer was cut off")
	}
	if r.StillConnected > 0 {
		t.Errorf("%d attacking peer IDs still connected when the attack ended", r.StillConnected)
	}
	if r.SlowestCutOff > bannedWithin {
		t.Errorf("an attacking peer ID was cut off %v after it began, want ≤ %v", r.SlowestCutOff, bannedWithin)
	}
}

// TestSubscriptionFlood: 4 peer IDs announce as many topics as they can,
// reconnecting whenever cut off. Each is cut off at its first excess
// announcement and refused from then on.
func TestSubscriptionFlood(t *testing.T) {
	m := newMesh(t)
	r := underAttack(t, m, attack.Spec{Kind: attack.KindSubscriptions, Peers: 4})
	if r.CutOff != 4 {
		t.Errorf("%d of 4 attacking peer IDs were cut off", r.CutOff)
	}
	checkCutOff(t, r)
}

// TestInvalidSignatureFlood: fresh peer IDs, 8 at a time, flood the
// channel with messages whose signatures are random; each is banned, and
// new ones from the same address get the smallest budget.
func TestInvalidSignatureFlood(t *testing.T) { channelAttack(t, attack.KindInvalidSignatures) }

// TestInvalidSignatureFloodQUIC is TestInvalidSignatureFlood over QUIC,
// the transport libp2p dials first when a node announces both.
func TestInvalidSignatureFloodQUIC(t *testing.T) {
	m := newMesh(t)
	m.target = "/ip4/127.0.0.1/udp/" + strconv.Itoa(m.victim.QUICPort) + "/quic-v1/p2p/" + m.victim.ID
	channelAttackOn(t, m, attack.KindInvalidSignatures)
}

// channelAttack runs kind against the victim's channel, which a client on
// the victim keeps joined so that what arrives is validated, and checks
// that the attacking peer IDs were cut off within bannedWithin.
func channelAttack(t *testing.T, kind string) attack.Result {
	return channelAttackOn(t, newMesh(t), kind)
}

func channelAttackOn(t *testing.T, m *mesh, kind string) attack.Result {
	t.Helper()
	r, _ := channelAttackKept(t, m, kind, true, attackPeers())
	return r
}

// channelAttackKept is channelAttackOn; wantCutOff says whether the
// attacking peer IDs must be cut off, and it also returns the keeper, whose
// output shows what of the attack reached the channel's members.
func channelAttackKept(t *testing.T, m *mesh, kind string, wantCutOff bool, peers int) (attack.Result, *chatproc.TestProc) {
	t.Helper()
	keeper := bins.TCPClient(t, "keeper", m.victim)
	keeper.Send("join " + honestChannel + " keeper")
	keeper.WaitPrefix("Joined " + honestChannel)
	r := underAttack(t, m, attack.Spec{Kind: kind, Channel: honestChannel, Peers: peers})
	if wantCutOff {
		checkCutOff(t, r)
	}
	return r, keeper.TestProc
}

// freshKeyPeers is how many peer IDs the fresh-keys flood runs, each with
// 1,000 keys: 8,000 keys in all.
const freshKeyPeers = 8

// TestFreshKeysFlood: 8 peer IDs, each with 1,000 keys of its own, publish
// validly signed messages as fast as they can. Keys new to the victim are
// admitted within the forwarding peer's and the node's new-key budgets
// (checked before the signature), and for their first 10 minutes their
// messages share their introducer's probation budget, so what reaches the
// channel is bounded by those budgets, not by the number of keys. The
// peers are not banned: over these budgets messages are only ignored
// (SECURITY.md says why). The nodes run the author limit raised to the
// honest sender's 100 messages a second.
func TestFreshKeysFlood(t *testing.T) {
	m := newMeshWith(t, "--author-rate", "1000", "--author-burst", "1000")
	// The honest sender's key is fresh too: its node lets its new keys
	// send 160 messages a second together (probation), so it sends 100.
	m.rate = 100
	r, keeper := channelAttackKept(t, m, attack.KindFreshKeys, false, freshKeyPeers)
	spam := 0
	for _, l := range keeper.Lines() {
		if strings.HasSuffix(l, " - flood") { // <username>@<channel> - <message>
			spam++
		}
	}
	// The budgets (gateway/authors.go): 256 new keys at once and 64 a
	// second node-wide, each admitted with one message; then probation,
	// 400 at once and 200 a second node-wide, and each introducing peer
	// ID's own burst of 200 (spent before the node's budget cuts it).
	d := attackDuration().Seconds() + 5 // the keeper reads on after the attack
	bound := int(256+64*d+400+200*d) + 200*int(r.PeerIDs)
	t.Logf("%d of %d attack messages reached the channel's members (bound %d)", spam, r.Sent, bound)
	if spam > bound {
		t.Errorf("%d attack messages reached the channel, want ≤ %d", spam, bound)
	}
	if spam == 0 {
		t.Error("no attack message reached the channel: the keys admitted within the budgets should have")
	}
}

// TestReplayFlood: fresh peer IDs replay validly signed messages from 10
// minutes ago. Each is rejected unverified as a replay, and the peers are
// banned.
func TestReplayFlood(t *testing.T) { channelAttack(t, attack.KindReplays) }

// TestOversizedFlood: fresh peer IDs publish messages over the size
// limit; each is rejected before decoding, and the peers are banned.
func TestOversizedFlood(t *testing.T) { channelAttack(t, attack.KindOversized) }

// TestControlFlood: fresh peer IDs stream IHAVE, IWANT, GRAFT and PRUNE;
// each is banned when it exceeds its control budget.
func TestControlFlood(t *testing.T) { channelAttack(t, attack.KindControl) }
