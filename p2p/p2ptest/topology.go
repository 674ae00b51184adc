package p2ptest

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"darkchat/p2p"
)

// maxTopologyAttempts bounds RandomRegular's restarts: pairing stubs at
// random gets stuck (only loops or repeated edges left) rarely for a
// degree far below the node count, and a graph that is not connected is
// drawn again.
const maxTopologyAttempts = 100

// RandomRegular returns the edges of a connected random d-regular graph on
// n nodes, the same for the same seed. n·d must be even and d < n.
func RandomRegular(n, d int, seed uint64) ([][2]int, error) {
	if d < 1 || d >= n || n*d%2 != 0 {
		return nil, fmt.Errorf("p2ptest: no %d-regular graph on %d nodes", d, n)
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	for range maxTopologyAttempts {
		if edges, ok := pairStubs(n, d, rng); ok && connected(n, edges) {
			return edges, nil
		}
	}
	return nil, fmt.Errorf("p2ptest: no connected %d-regular graph on %d nodes in %d attempts", d, n, maxTopologyAttempts)
}

// pairStubs pairs d stubs per node at random, refusing loops and repeated
// edges (the pairing model with rejection of single pairs, which stays
// close to uniform for d much smaller than n).
func pairStubs(n, d int, rng *rand.Rand) ([][2]int, bool) {
	stubs := make([]int, 0, n*d)
	for i := range n {
		for range d {
			stubs = append(stubs, i)
		}
	}
	seen := make(map[[2]int]bool, n*d/2)
	edges := make([][2]int, 0, n*d/2)
	for len(stubs) > 0 {
		paired := false
		// A few tries per pair; if every one fails the pairing is stuck.
		for range 50 {
			i, j := rng.IntN(len(stubs)), rng.IntN(len(stubs))
			a, b := stubs[i], stubs[j]
			e := [2]int{min(a, b), max(a, b)}
			if i == j || a == b || seen[e] {
				continue
			}
			seen[e] = true
			edges = append(edges, e)
			// Remove the higher index first so the lower one stays valid.
			for _, k := range []int{max(i, j), min(i, j)} {
				stubs[k] = stubs[len(stubs)-1]
				stubs = stubs[:len(stubs)-1]
			}
			paired = true
			break
		}
		if !paired {
			return nil, false
		}
	}
	return edges, true
}

func connected(n int, edges [][2]int) bool {
	adj := make([][]int, n)
	for _, e := range edges {
		adj[e[0]] = append(adj[e[0]], e[1])
		adj[e[1]] = append(adj[e[1]], e[0])
	}
	seen := make([]bool, n)
	stack := []int{0}
	seen[0] = true
	count := 1
	for len(stack) > 0 {
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, w := range adj[v] {
			if !seen[w] {
				seen[w] = true
				count++
				stack = append(stack, w)
			}
		}
	}
	return count == n
}

// Counter is a p2p.Member that counts the messages it is delivered and
// closes Reached once it has counted Want. It keeps no message: a
// thousand-node mesh's deliveries would not fit in queues.
type Counter struct {
	want    int64
	count   atomic.Int64
	reached chan struct{}
	once    sync.Once
	// OnMessage, if set before the counter joins, sees every message on
	// the topic's reader goroutine; like any Member it must not block or
	// call back into the node.
	OnMessage func(*p2p.Message)
}

// NewCounter returns a counter that signals after want messages.
func NewCounter(want int) *Counter {
	return &Counter{want: int64(want), reached: make(chan struct{})}
}

// DeliverMessage implements p2p.Member.
func (c *Counter) DeliverMessage(m *p2p.Message) {
	if c.OnMessage != nil {
		c.OnMessage(m)
	}
	if c.count.Add(1) >= c.want {
		c.once.Do(func() { close(c.reached) })
	}
}

// Count is how many messages the counter has been delivered.
func (c *Counter) Count() int { return int(c.count.Load()) }

// Reached is closed once Count reaches the wanted number.
func (c *Counter) Reached() <-chan struct{} { return c.reached }
