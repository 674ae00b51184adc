package p2ptest_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"darkchat/identity"
	"darkchat/p2p"
	"darkchat/p2p/p2ptest"
)

// meshFormation is how much simulated time the tests give GossipSub to
// build its meshes after every node joined: a few heartbeats (1 s each).
const meshFormation = 5 * time.Second

// burst publishes count channel messages signed by one user, from nodes
// in turn, and waits until every counter has seen them all (or fails after
// deadline of the network's time).
func burst(t *testing.T, m *p2ptest.Mesh, counters []*p2ptest.Counter, count int, deadline time.Duration) {
	t.Helper()
	seed := make([]byte, 32)
	key, err := identity.NewKeyFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	for i := range count {
		cm := identity.ChannelMessage{Channel: "lobby", Username: "alice", Body: fmt.Sprintf("message %d", i),
			Timestamp: time.Now().UnixMilli(), ID: identity.NewMessageID()}
		cm.Sign(key)
		wire, err := cm.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Nodes[i*7%len(m.Nodes)].Publish(context.Background(), "lobby", wire); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	timeout := time.After(deadline)
	for i, c := range counters {
		select {
		case <-c.Reached():
		case <-timeout:
			t.Fatalf("node %d got %d of %d messages within %v", i, c.Count(), count, deadline)
		}
	}
}

func joinCounters(t *testing.T, m *p2ptest.Mesh, want int) []*p2ptest.Counter {
	t.Helper()
	counters := make([]*p2ptest.Counter, len(m.Nodes))
	if err := m.Join("lobby", func(i int) p2p.Member {
		counters[i] = p2ptest.NewCounter(want)
		return counters[i]
	}); err != nil {
		t.Fatal(err)
	}
	return counters
}

// 100 darkchat nodes with the gateway's validators on simnet, 10 ms per
// link, degree 8: a burst from several nodes reaches every node, on fake
// time.
func TestSimNetBurstReachesEveryNode(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const nodes, messages = 100, 50
		m, err := p2ptest.Start(t.Context(), p2ptest.Options{Nodes: nodes, Seed: 1, Gateway: true})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		counters := joinCounters(t, m, messages)
		time.Sleep(meshFormation)
		start := time.Now()
		burst(t, m, counters, messages, time.Minute)
		t.Logf("%d messages reached %d nodes in %v of simulated time", messages, nodes, time.Since(start))
	})
}

// The same on mocknet, on real time.
func TestMockNetBurstReachesEveryNode(t *testing.T) {
	const nodes, messages = 30, 20
	m, err := p2ptest.Start(t.Context(), p2ptest.Options{Nodes: nodes, Seed: 2, Network: p2ptest.MockNet, Gateway: true,
		Latency: func(int, int) time.Duration { return time.Millisecond }})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	counters := joinCounters(t, m, messages)
	// Real time here: GossipSub's heartbeats must run for the meshes to
	// form, and nothing signals that they have.
	time.Sleep(2 * time.Second)
	burst(t, m, counters, messages, 30*time.Second)
}

// A seed fixes the topology and the peer IDs.
func TestSeedReproducesTopologyAndKeys(t *testing.T) {
	ids := func(seed uint64) []string {
		var out []string
		for i := range 5 {
			k, err := p2ptest.NodeKey(seed, i)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := k.GetPublic().Raw()
			out = append(out, fmt.Sprintf("%x", raw))
		}
		return out
	}
	if !slices.Equal(ids(7), ids(7)) || slices.Equal(ids(7), ids(8)) {
		t.Fatal("node keys do not follow the seed")
	}
	a, err := p2ptest.RandomRegular(200, 8, 7)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := p2ptest.RandomRegular(200, 8, 7)
	c, _ := p2ptest.RandomRegular(200, 8, 8)
	if !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Fatal("topology does not follow the seed")
	}
	degree := make([]int, 200)
	for _, e := range a {
		degree[e[0]]++
		degree[e[1]]++
	}
	for i, d := range degree {
		if d != 8 {
			t.Fatalf("node %d has degree %d, want 8", i, d)
		}
	}
}

// A thousand nodes on simnet under synctest, degree 8, gateway validators:
// a burst reaches all of them. On a 2-core machine it takes about 42 s of
// wall time and 1.9 GiB of memory (maximum resident set).
func TestSimNetThousandNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 nodes: skipped under -short")
	}
	wall := time.Now()
	synctest.Test(t, func(t *testing.T) {
		const nodes, messages = 1000, 20
		m, err := p2ptest.Start(t.Context(), p2ptest.Options{Nodes: nodes, Seed: 3, Gateway: true})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		counters := joinCounters(t, m, messages)
		time.Sleep(meshFormation)
		burst(t, m, counters, messages, time.Minute)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		t.Logf("%d nodes up and delivered %d messages; heap in use %d MiB, from the OS %d MiB",
			nodes, messages, ms.HeapInuse>>20, ms.Sys>>20)
	})
	t.Logf("wall time %v", time.Since(wall).Round(time.Second))
}
