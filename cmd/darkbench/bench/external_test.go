package bench

import (
	"context"
	"testing"
	"time"
)

// darkbench -send/-recv measures nodes it did not start, through their TCP
// gateways only: here two nodes of this process stand in for them.
func TestExternalMeasuresRunningNodes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the quick channel-throughput and latency measurements (about 20 s)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var nodes []*benchNode
	for range 2 {
		n, err := startNode(benchGatewayConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer n.close()
		nodes = append(nodes, n)
	}
	if err := connect(ctx, nodes[0], nodes[1]); err != nil {
		t.Fatal(err)
	}
	var results []Result
	e := &Env{Quick: true, Rounds: 1}
	x := External{SendAddr: nodes[0].tcpAddr, RecvAddr: nodes[1].tcpAddr, Nodes: 2}
	if err := RunExternal(ctx, e, x, nil, func(r Result) { results = append(results, r) }); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, r := range results {
		got[r.Scenario]++
		if r.Value <= 0 || r.BaselineValue <= 0 || r.DeliveredPct == nil || *r.DeliveredPct != 100 {
			t.Errorf("%s/%s: value %v, baseline %v, delivered %v", r.Scenario, r.Metric, r.Value, r.BaselineValue, r.DeliveredPct)
		}
	}
	if got["channel-throughput"] != 1 || got["latency"] != 3 {
		t.Fatalf("results per scenario %v, want channel-throughput 1 and latency 3 (p50, p99, p999)", got)
	}
	// Only the scenarios that need no nodes of their own can run.
	if err := RunExternal(ctx, e, x, []string{"fanout"}, func(Result) {}); err == nil {
		t.Fatal("fanout against external nodes was accepted")
	}
}
