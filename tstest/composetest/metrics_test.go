package composetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"darkchat/dashboards"
	"darkchat/tstest"
)

// nodes are the testnet's darkchat services; Prometheus labels each
// node's series with its name as instance (docker/prometheus.yml).
var nodes = []string{"pub1", "pub2", "pub3", "lan1-cli", "lan2-websock"}

// checkHealth waits until Docker reports every node, and Prometheus,
// healthy: their healthchecks (`darkchatd health`, asking /readyz or
// Prometheus's /-/ready) pass.
func checkHealth(t *testing.T, c *compose) {
	t.Helper()
	services := append(slices.Clone(nodes), "prometheus")
	tstest.WaitFor(t, 90*time.Second, "every node and Prometheus to be healthy", func() (bool, string) {
		var bad []string
		for _, svc := range services {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			id, err := c.cmd(ctx, "ps", "-q", svc).Output()
			cancel()
			if err != nil || len(strings.TrimSpace(string(id))) == 0 {
				bad = append(bad, svc+": no container")
				continue
			}
			ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
			out, err := exec.CommandContext(ctx, "docker", "inspect", "--format", "{{.State.Health.Status}}", strings.TrimSpace(string(id))).Output()
			cancel()
			if st := strings.TrimSpace(string(out)); err != nil || st != "healthy" {
				bad = append(bad, fmt.Sprintf("%s: %s %v", svc, st, err))
			}
		}
		return len(bad) == 0, strings.Join(bad, "; ")
	})
	t.Logf("every node and Prometheus healthy")
}

// promResult is an instant query's answer from Prometheus's HTTP API.
type promResult struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string `json:"resultType"`
		Result     []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		} `json:"result"`
	} `json:"data"`
}

// query runs expr at Prometheus's /api/v1/query.
func query(base, expr string) (*promResult, error) {
	hc := &http.Client{Timeout: 15 * time.Second}
	resp, err := hc.Get(base + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r promResult
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %v: %.200s", resp.Status, err, b)
	}
	if r.Status != "success" {
		return &r, fmt.Errorf("%s: %s: %s", resp.Status, r.ErrorType, r.Error)
	}
	return &r, nil
}

// byInstance returns each instance's value in r (a vector).
func byInstance(r *promResult) map[string]string {
	out := map[string]string{}
	for _, s := range r.Data.Result {
		v, _ := s.Value[1].(string)
		out[s.Metric["instance"]] = v
	}
	return out
}

// checkPrometheus asks the metrics profile's Prometheus, on its published
// port, for darkchat's series from every node, after the chat: each node
// is up, has a session, a login and messages handed to its session. Then
// it runs every dashboard query (Grafana's variables filled in), which
// Prometheus must parse and evaluate.
func checkPrometheus(t *testing.T, c *compose) {
	t.Helper()
	host, port := c.port(t, "prometheus", 9090)
	base := "http://" + host + ":" + port
	for _, q := range []struct{ what, expr string }{
		{"scraped (up)", `up{job="darkchat"} == 1`},
		{"serving sessions", `sum by (instance) (darkchat_gateway_sessions) > 0`},
		{"counting logins", `sum by (instance) (darkchat_gateway_logins_total{result="ok"}) > 0`},
		{"handing messages to sessions", `darkchat_channel_messages_delivered_total > 0`},
		{"counting delivery latency", `sum by (instance) (darkchat_channel_delivery_latency_seconds_count) > 0`},
		{"connected to peers", `sum by (instance) (darkchat_p2p_connected_peers) > 0`},
		{"exporting GossipSub's series", `sum by (instance) (gossipsub_message_received_total) > 0`},
		{"exporting libp2p's series", `count by (instance) (libp2p_rcmgr_limit) > 0`},
	} {
		tstest.WaitFor(t, time.Minute, "Prometheus to have every node "+q.what, func() (bool, string) {
			r, err := query(base, q.expr)
			if err != nil {
				return false, err.Error()
			}
			got := byInstance(r)
			var missing []string
			for _, n := range nodes {
				if _, ok := got[n]; !ok {
					missing = append(missing, n)
				}
			}
			return len(missing) == 0, fmt.Sprintf("%s: no answer from %s (have %v)", q.expr, strings.Join(missing, ", "), got)
		})
	}
	t.Logf("Prometheus has darkchat series from every node: %s", strings.Join(nodes, ", "))

	queries, err := dashboards.Queries()
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"job": "darkchat", "instance": ".+"}
	var empty []string
	for _, q := range queries {
		expr := dashboards.Expand(q.Expr, vars)
		r, err := query(base, expr)
		if err != nil {
			t.Errorf("%s, %s: Prometheus refuses %s: %v", q.Dashboard, q.Panel, expr, err)
			continue
		}
		if len(r.Data.Result) == 0 {
			empty = append(empty, q.Dashboard+": "+q.Panel)
		}
	}
	t.Logf("Prometheus ran the dashboards' %d queries; %d had no data yet (a rate needs two scrapes in its window, and a panel filtered on > 0 shows nothing while its counters stand still): %s",
		len(queries), len(empty), strings.Join(slices.Compact(empty), "; "))
}
