package p2ptest_test

// Presence on the simulated mesh (PROTOCOL.md §2.12): real gateways on
// every node and real client sessions, which sign and refresh their
// presence records, as members of one channel, measured on the network's
// fake time. The members join 20 a second, node after node: nodes that
// start carrying the channel before their neighbours form groups that meet
// later, so the time from the last join until every node's names lists
// everyone (required within 5 s) measures how the nodes compare tables
// with new topic peers (gateway/presence_heal.go). Then:
//
//   - a newcomer joins on a node that carries the channel, then another on
//     a node that does not yet (it learns the table by presence sync):
//     the time until every member's client is told (its presence event,
//     sent when its node's table takes the record), and the time until
//     the newcomer's names lists everyone;
//   - each leaves: the time until every member's client is told;
//   - three refresh periods of steady state: the presence records' bytes
//     on the mesh per member per second.
//
// TestPresencePartition cuts the settled mesh in two for a minute, with
// joins and leaves on both sides, and requires every node's names to
// match the members within 5 s of the heal.
//
// The default size runs in every `go test` (20 nodes × 5 members);
// DARKCHAT_PRESENCE_MEMBERS=1000 runs 100 nodes × 10 members (minutes of
// wall time; RELIABILITY.md "Presence" has its figures).

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"darkchat/client"
	"darkchat/gateway"
	"darkchat/identity"
	"darkchat/p2p"
	"darkchat/p2p/p2ptest"
	"darkchat/proto"
)

const (
	presChannel = "lobby"
	presSeed    = 7
	// presTarget is the requirement: every member knows of a join or a
	// leave within it (p99 and max over members).
	presTarget = 5 * time.Second
	// presWait bounds each measurement, well past presTarget, so that a
	// miss is measured rather than cut off.
	presWait = 30 * time.Second
	// presJoinRate is how many members join a second while the channel
	// fills: within a node's budget for keys new to it (64 a second,
	// gateway/authors.go), as people join a channel.
	presJoinRate = 20
	// presSteady is the steady state measured: three refresh periods.
	presSteady = 3 * proto.PresenceRefreshInterval
)

// presenceSize is the run's nodes and members per node: 20 × 5 unless
// DARKCHAT_PRESENCE_MEMBERS asks for more (10 a node from 200 members).
func presenceSize(t *testing.T) (nodes, perNode int) {
	v := os.Getenv("DARKCHAT_PRESENCE_MEMBERS")
	if v == "" {
		return 20, 5
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 10 {
		t.Fatalf("DARKCHAT_PRESENCE_MEMBERS=%q: want a number of members, at least 10", v)
	}
	perNode = 5
	if n >= 200 {
		perNode = 10
	}
	return n / perNode, perNode
}

func TestPresenceConvergence(t *testing.T) {
	nodes, perNode := presenceSize(t)
	wall := time.Now()
	synctest.Test(t, func(t *testing.T) { runPresence(t, nodes, perNode) })
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("presence %d nodes × %d members: wall %v, memory from the OS %d MiB", nodes, perNode,
		time.Since(wall).Round(time.Second), ms.Sys>>20)
}

// presObserver is a member's client and when it was told of each
// newcomer's here and gone (unix nanos of the fake clock; 0: not yet).
type presObserver struct {
	s    *client.Session
	seen [2][2]atomic.Int64 // [newcomer][0 here, 1 gone]
}

// presRun is one run.
type presRun struct {
	t        *testing.T
	m        *p2ptest.Mesh
	gws      []*p2ptest.Gateway
	members  []*presObserver // nodes × perNode, node-major
	nodes    int
	perNode  int
	newcomer [2]identity.PublicKey
	// Presence records read off the wire by every node (copies
	// included), and the distinct records among them.
	copies, copyBytes atomic.Int64
	distinct          sync.Map // string(wire) -> struct{}
	// goneOthers counts gone events for members (not newcomers): a
	// member who stays must never be told gone.
	goneOthers atomic.Int64
}

// fillPresence starts the mesh with a gateway on every node, lets the
// members join presJoinRate a second, node after node, and measures the
// time from the last join until every member node's names lists them all
// (required: presTarget).
func fillPresence(t *testing.T, nodes, perNode int) *presRun {
	r := &presRun{t: t, perNode: perNode, nodes: nodes}
	// One node more than the members': it carries the channel only when
	// the second newcomer joins there.
	m, err := p2ptest.Start(t.Context(), p2ptest.Options{
		Nodes: nodes + 1, Seed: presSeed, Degree: 8, Gateway: true, Logger: simLogger(t),
		Config: func(i int, cfg *p2p.Config) {
			// The production author limits, new-key budgets included.
			cfg.Validator = gateway.ChannelValidator(nil, gateway.DefaultTimestampWindow, gateway.DefaultAuthorLimit, nil)
		},
		OnRPC: func(node, frameBytes int, published [][]byte) {
			for _, d := range published {
				if len(d) > 0 && d[0] == identity.PresenceVersion {
					r.copies.Add(1)
					r.copyBytes.Add(int64(len(d)))
					r.distinct.LoadOrStore(string(d), struct{}{})
				}
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	r.m = m
	t.Cleanup(func() { m.Close() })
	for i := range nodes + 1 {
		g, err := m.StartGateway(i, gateway.Config{})
		if err != nil {
			t.Fatal(err)
		}
		r.gws = append(r.gws, g)
	}
	time.Sleep(meshFormation)
	for k := range r.newcomer {
		r.newcomer[k] = presKey(1000+k, 0).Public()
	}

	// The members join, presJoinRate a second, then the tables settle:
	// every node's names lists them all.
	start := time.Now()
	r.members = make([]*presObserver, nodes*perNode)
	errs := make([]error, len(r.members))
	var wg sync.WaitGroup
	for idx := range r.members {
		time.Sleep(time.Until(start.Add(time.Duration(idx) * time.Second / presJoinRate)))
		wg.Go(func() {
			o := &presObserver{}
			o.s, errs[idx] = r.login(idx/perNode, presKey(idx/perNode, idx%perNode), func(e client.Event) { r.observe(o, e) })
			if errs[idx] == nil {
				errs[idx] = o.s.Join(t.Context(), presChannel, fmt.Sprintf("u%d-%d", idx/perNode, idx%perNode))
			}
			r.members[idx] = o
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, o := range r.members {
			if o != nil && o.s != nil {
				o.s.Close()
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	joined := time.Now()
	total := len(r.members)
	want := make(map[string]bool, total)
	for _, o := range r.members {
		want[o.s.PublicKey().String()] = true
	}
	settled, missing, _, from := r.namesMatch(want, 3*proto.PresenceRefreshInterval)
	if settled == never {
		t.Fatalf("the member tables did not settle within %v of the last join", 3*proto.PresenceRefreshInterval)
	}
	st := r.syncStats()
	t.Logf("presence %d nodes × %d members (%d): every node's names complete %s after the last join (%v of joins; at the last join %d (node, member) pairs missing, the members of %d nodes %v); %s; presence records on GossipSub during the fill-up %d bytes read by all nodes (%.0f B per member)",
		nodes, perNode, total, fd(settled), joined.Sub(start).Round(time.Second), missing, len(from), from,
		syncFigure(st, total), r.copyBytes.Load(), float64(r.copyBytes.Load())/float64(total))
	if settled > presTarget {
		t.Errorf("every node's names listed all %d members %s after the last join, want <= %v", total, fd(settled), presTarget)
	}
	return r
}

// syncStats sums the nodes' presence exchanges.
func (r *presRun) syncStats() gateway.PresenceSyncStats {
	var sum gateway.PresenceSyncStats
	for _, g := range r.gws {
		st := g.Server.PresenceSyncStats()
		sum.Asked += st.Asked
		sum.Answered += st.Answered
		sum.BytesSent += st.BytesSent
		sum.BytesRead += st.BytesRead
		sum.Republished += st.Republished
		sum.Dropped += st.Dropped
	}
	return sum
}

// syncFigure sums up the nodes' presence exchanges.
func syncFigure(st gateway.PresenceSyncStats, members int) string {
	return fmt.Sprintf("presence exchanges: %d asked, %d answered, %d bytes sent (%.0f B per member), %d records republished, %d new topic peers not asked",
		st.Asked, st.Answered, st.BytesSent, float64(st.BytesSent)/float64(members), st.Republished, st.Dropped)
}

func runPresence(t *testing.T, nodes, perNode int) {
	r := fillPresence(t, nodes, perNode)
	fresh := nodes
	total := len(r.members)

	// (a) A newcomer on a node with members, then one on the fresh node.
	carrying := nodes / 2
	var figures []string
	var newcomers [2]*client.Session
	for k, node := range []int{carrying, fresh} {
		s, err := r.login(node, presKey(1000+k, 0), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		newcomers[k] = s
		t0 := time.Now()
		if err := s.Join(t.Context(), presChannel, fmt.Sprintf("new%d", k)); err != nil {
			t.Fatal(err)
		}
		told := r.waitTold(k, 0, t0)
		view := r.waitNames(s, total+k+1, t0)
		where := "a node with members"
		if node == fresh {
			where = "a node new to the channel"
		}
		figures = append(figures, fmt.Sprintf("join on %s: members told %s; the newcomer's names complete in %s", where, told, fd(view)))
		r.require(fmt.Sprintf("newcomer %d's join (on %s)", k, where), told)
		if view > presTarget {
			t.Errorf("newcomer %d's names listed everyone after %s, want <= %v", k, fd(view), presTarget)
		}
	}
	// (b) Each leaves.
	for k, s := range newcomers {
		t0 := time.Now()
		if err := s.Leave(t.Context(), presChannel); err != nil {
			t.Fatal(err)
		}
		told := r.waitTold(k, 1, t0)
		figures = append(figures, fmt.Sprintf("leave of newcomer %d: members told %s", k, told))
		r.require(fmt.Sprintf("newcomer %d's leave", k), told)
	}

	// (c) Steady state: refreshes only.
	r.copies.Store(0)
	r.copyBytes.Store(0)
	r.distinct.Clear()
	r.goneOthers.Store(0)
	time.Sleep(presSteady)
	var records, recordBytes int64
	r.distinct.Range(func(k, _ any) bool {
		records++
		recordBytes += int64(len(k.(string)))
		return true
	})
	secs := presSteady.Seconds()
	perMember := float64(recordBytes) / float64(total) / secs
	meshPerMember := float64(r.copyBytes.Load()) / float64(total) / secs
	copiesPerNode := float64(r.copies.Load()) / float64(max(1, records)) / float64(nodes+1)
	figures = append(figures, fmt.Sprintf("steady state over %v: %d records (%.2f per member per refresh period, %.0f bytes each), signed %.2f B/member/s, read off the wire by all nodes %.1f B/member/s (%.1f B/s a node; %.2f copies a record a node)",
		presSteady, records, float64(records)/float64(total)/(presSteady.Seconds()/proto.PresenceRefreshInterval.Seconds()),
		float64(recordBytes)/float64(max(1, records)), perMember, meshPerMember, float64(r.copyBytes.Load())/float64(nodes+1)/secs, copiesPerNode))
	// Bounded as documented: one here a member per refresh period (a
	// period's boundary may fall inside the span: one more), each read
	// at most once per mesh peer.
	if limit := int64(total) * int64(presSteady/proto.PresenceRefreshInterval+1); records > limit {
		t.Errorf("%d presence records in %v from %d members, want at most %d (one per member per %v)", records, presSteady, total, limit, proto.PresenceRefreshInterval)
	}
	if copiesPerNode > 8 {
		t.Errorf("%.2f copies of a record a node, want at most its 8 peers'", copiesPerNode)
	}
	if n := r.goneOthers.Load(); n != 0 {
		t.Errorf("members were told %d times that a member who stayed left", n)
	}
	want := make(map[string]bool, total)
	for _, o := range r.members {
		want[o.s.PublicKey().String()] = true
	}
	if d, _, _, _ := r.namesMatch(want, presWait); d == never {
		t.Errorf("after %v of refreshes some node's names does not list all %d members", presSteady, total)
	}
	t.Logf("presence %d nodes × %d members (%d):", nodes, perNode, total)
	for _, f := range figures {
		t.Log("  " + f)
	}
}

// presKey is member k's key on node i (newcomers: i >= 1000).
func presKey(i, k int) identity.PrivateKey {
	seed := make([]byte, 32)
	binary.BigEndian.PutUint32(seed, uint32(i))
	binary.BigEndian.PutUint32(seed[4:], uint32(k))
	copy(seed[8:], "p2ptest presence")
	key, err := identity.NewKeyFromSeed(seed)
	if err != nil {
		panic(err)
	}
	return key
}

// login logs a client in on node's gateway.
func (r *presRun) login(node int, key identity.PrivateKey, onEvent func(client.Event)) (*client.Session, error) {
	conn, err := r.gws[node].Dial()
	if err != nil {
		return nil, err
	}
	s, err := client.NewSession(client.NewLineTransport(conn), client.SessionConfig{Key: key, OnEvent: onEvent})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.WaitLogin(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("login on node %d: %w", node, err)
	}
	return s, nil
}

// observe records a member's presence events.
func (r *presRun) observe(o *presObserver, e client.Event) {
	ev, ok := e.(client.EventPresence)
	if !ok || ev.Channel != presChannel {
		return
	}
	state := 0
	if ev.State == proto.StateGone {
		state = 1
	}
	for k, key := range r.newcomer {
		if ev.Key == key {
			o.seen[k][state].CompareAndSwap(0, time.Now().UnixNano())
			return
		}
	}
	if state == 1 {
		r.goneOthers.Add(1)
	}
}

// namesMatch polls one member's names on each member node every 250 ms
// until every one lists exactly the keys of want, for at most wait, and
// returns how long that took (never: not within wait). It also returns,
// from its first poll, how many (node, member) pairs were missing, and
// how many listed that should not be (stale), and the nodes the missing
// members were on.
func (r *presRun) namesMatch(want map[string]bool, wait time.Duration) (took time.Duration, missing, stale int, from []int) {
	t0 := time.Now()
	deadline := t0.Add(wait)
	done := make([]bool, r.nodes)
	onNode := make(map[string]int, len(r.members))
	for j, o := range r.members {
		onNode[o.s.PublicKey().String()] = j / r.perNode
	}
	for poll := 0; ; poll++ {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range r.nodes {
			if done[i] {
				continue
			}
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				ms, err := r.members[i*r.perNode].s.Names(ctx, presChannel)
				if err != nil {
					return
				}
				have := make(map[string]bool, len(ms))
				for _, m := range ms {
					have[m.Key] = true
				}
				ok := len(have) == len(want)
				if poll == 0 {
					for k := range have {
						if !want[k] {
							mu.Lock()
							stale++
							mu.Unlock()
						}
					}
				}
				for k := range want {
					if !have[k] {
						ok = false
						if poll == 0 {
							mu.Lock()
							missing++
							if n, in := onNode[k]; in && !slices.Contains(from, n) {
								from = append(from, n)
							}
							mu.Unlock()
						}
					}
				}
				done[i] = ok
			})
		}
		wg.Wait()
		if !slices.Contains(done, false) {
			slices.Sort(from)
			return time.Since(t0), missing, stale, from
		}
		if time.Now().After(deadline) {
			slices.Sort(from)
			return never, missing, stale, from
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// presFigure is how fast the members were told of one change.
type presFigure struct {
	p50, p99, max time.Duration
	missing       int
}

func (f presFigure) String() string {
	s := fmt.Sprintf("p50 %s p99 %s max %s", fd(f.p50), fd(f.p99), fd(f.max))
	if f.missing > 0 {
		s += fmt.Sprintf(" (%d members never told)", f.missing)
	}
	return s
}

// waitTold waits until every member was told of newcomer k's here (state
// 0) or gone (1), for at most presWait, and sums up the times from t0.
func (r *presRun) waitTold(k, state int, t0 time.Time) presFigure {
	deadline := t0.Add(presWait)
	for {
		all := true
		for _, o := range r.members {
			if o.seen[k][state].Load() == 0 {
				all = false
				break
			}
		}
		if all || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var d []time.Duration
	var f presFigure
	for _, o := range r.members {
		if at := o.seen[k][state].Load(); at != 0 {
			d = append(d, time.Unix(0, at).Sub(t0))
		} else {
			f.missing++
		}
	}
	slices.Sort(d)
	q := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(r.members)))) - 1
		if i >= len(d) {
			return never
		}
		return d[max(i, 0)]
	}
	f.p50, f.p99, f.max = q(0.5), q(0.99), q(1)
	return f
}

// waitNames polls s's names every 100 ms until it lists want members and
// returns how long that took from t0 (never: not within presWait).
func (r *presRun) waitNames(s *client.Session, want int, t0 time.Time) time.Duration {
	deadline := t0.Add(presWait)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ms, err := s.Names(ctx, presChannel)
		cancel()
		if err == nil && len(ms) >= want {
			return time.Since(t0)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return never
}

// require fails the test unless every member was told within presTarget.
func (r *presRun) require(what string, f presFigure) {
	if f.missing > 0 || f.p99 > presTarget || f.max > presTarget {
		r.t.Errorf("%s: members told %s, want p99 and max <= %v", what, f, presTarget)
	}
}

// presCut is how long TestPresencePartition's cut lasts: long enough for
// the connections across it to die (QUIC gives up after 30 s of silence),
// as in a real split, and short of the members' records' expiry (5
// minutes), so a leave on one side is still a held gone record at the
// heal.
const presCut = time.Minute

// Partition: once the tables have settled, the network is cut between two
// halves of the nodes (by index) for presCut. During the cut members join
// and leave on both sides (a few each; a node keeps at least one member,
// so it still carries the channel); each side learns its own changes only.
// Then it heals: the time until every member node's names lists exactly
// the members there are is required within presTarget.
func TestPresencePartition(t *testing.T) {
	nodes, perNode := presenceSize(t)
	synctest.Test(t, func(t *testing.T) { runPresencePartition(t, nodes, perNode) })
}

func runPresencePartition(t *testing.T, nodes, perNode int) {
	r := fillPresence(t, nodes, perNode)
	total := len(r.members)
	side := func(i int) int { return i * 2 / (nodes + 1) }
	if err := r.m.Partition(side); err != nil {
		t.Fatal(err)
	}
	cutAt := time.Now()
	// Half-way through the cut, when the connections across it are
	// gone, each side has changes: changes joins and as many leaves.
	time.Sleep(presCut / 2)
	changes := max(2, total/50)
	want := make(map[string]bool, total+2*changes)
	for _, o := range r.members {
		want[o.s.PublicKey().String()] = true
	}
	var joiners []*client.Session
	t.Cleanup(func() {
		for _, s := range joiners {
			s.Close()
		}
	})
	for s := range 2 {
		var onSide []int
		for i := range nodes {
			if side(i) == s {
				onSide = append(onSide, i)
			}
		}
		for k := range changes {
			node := onSide[k%len(onSide)]
			key := presKey(2000+s, k)
			js, err := r.login(node, key, nil)
			if err != nil {
				t.Fatal(err)
			}
			joiners = append(joiners, js)
			if err := js.Join(t.Context(), presChannel, fmt.Sprintf("cut%d-%d", s, k)); err != nil {
				t.Fatal(err)
			}
			want[key.Public().String()] = true
			// A member that stays on its node leaves (never member 0,
			// the one whose names is polled).
			leaver := r.members[onSide[(k+len(onSide)/2)%len(onSide)]*perNode+1+k/len(onSide)%(perNode-1)]
			if err := leaver.s.Leave(t.Context(), presChannel); err != nil {
				t.Fatal(err)
			}
			delete(want, leaver.s.PublicKey().String())
		}
	}
	time.Sleep(time.Until(cutAt.Add(presCut)))
	stBefore, bytesBefore := r.syncStats(), r.copyBytes.Load()
	if err := r.m.Heal(); err != nil {
		t.Fatal(err)
	}
	healed, missing, stale, from := r.namesMatch(want, presWait)
	st := r.syncStats()
	st.Asked -= stBefore.Asked
	st.Answered -= stBefore.Answered
	st.BytesSent -= stBefore.BytesSent
	st.BytesRead -= stBefore.BytesRead
	st.Republished -= stBefore.Republished
	st.Dropped -= stBefore.Dropped
	t.Logf("presence partition %d nodes × %d members, cut %v, %d joins and %d leaves on each side during it: every node's names matches %s after the heal (at the heal %d (node, member) pairs missing, of members on %d nodes, and %d listed who had left); until then %s; presence records on GossipSub %d bytes read by all nodes",
		nodes, perNode, presCut, changes, changes, fd(healed), missing, len(from), stale, syncFigure(st, len(want)), r.copyBytes.Load()-bytesBefore)
	if healed > presTarget {
		t.Errorf("every node's names matched the members %s after the heal, want <= %v", fd(healed), presTarget)
	}
}
