package metrics

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"darkchat/web"
)

// /status.json's shape, from synthetic registry values: the node, its
// peers with their paths, the gauges, the last minute as ctl stats says it,
// and the history as parallel arrays with one point per sample after the
// first (the last one taken at the request), the latency p99 null where the
// minute before a point had no delivery.
func TestStatusJSON(t *testing.T) {
	s := newSynthetic(t)
	clock := time.Unix(1_700_000_000, 0)
	sm := NewSampler(SamplerConfig{Gatherer: s.reg, Interval: 5 * time.Second, History: 15 * time.Minute,
		Now: func() time.Time { return clock }})
	sm.Tick()
	clock = clock.Add(5 * time.Second)
	sm.Tick() // no delivery yet: p99 null at this point
	clock = clock.Add(5 * time.Second)
	s.delivered.WithLabelValues("channel").Add(10)
	s.out.Add(20)
	s.latency.WithLabelValues("mesh").Observe(0.015)
	s.drops.WithLabelValues("validation_queue_full").Add(3)
	s.peers.WithLabelValues("direct").Set(1)
	s.peers.WithLabelValues("relayed").Set(1)
	s.sessions.WithLabelValues("ws").Set(2)
	s.channels.Set(1)
	sm.Tick()
	clock = clock.Add(3 * time.Second) // the request's own sample

	node := NodeStatus{ID: "12D3KooWself", Reachability: "private", Peers: []PeerStatus{
		{ID: "12D3KooWa", Addr: "/ip4/10.0.0.1/tcp/4001"},
		{ID: "12D3KooWb", Addr: "/ip4/10.0.0.2/tcp/4001/p2p/12D3KooWr/p2p-circuit", Relayed: true},
	}}
	base := serve(t, Config{Gatherer: s.reg, Sampler: sm, Status: func() NodeStatus { return node }})
	resp, err := http.Get(base + "/status.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "application/json" {
		t.Fatalf("/status.json: %d %s", resp.StatusCode, ct)
	}
	// Decoded generically: the field names are the contract with the page.
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	keys := func(m map[string]any) []string {
		var k []string
		for key := range m {
			k = append(k, key)
		}
		slices.Sort(k)
		return k
	}
	if got, want := keys(doc), []string{"channels", "history", "id", "minute", "now_ms", "peers", "peers_direct", "peers_relayed",
		"reachability", "sessions_tcp", "sessions_ws", "stats"}; !slices.Equal(got, want) {
		t.Errorf("keys %q, want %q", got, want)
	}
	if doc["id"] != "12D3KooWself" || doc["reachability"] != "private" || doc["now_ms"] != float64(clock.UnixMilli()) {
		t.Errorf("node: %v %v %v", doc["id"], doc["reachability"], doc["now_ms"])
	}
	if doc["peers_direct"] != 1.0 || doc["peers_relayed"] != 1.0 || doc["sessions_ws"] != 2.0 || doc["sessions_tcp"] != 0.0 || doc["channels"] != 1.0 {
		t.Errorf("gauges: %v", doc)
	}
	peers, _ := json.Marshal(doc["peers"])
	if want := `[{"addr":"/ip4/10.0.0.1/tcp/4001","id":"12D3KooWa","path":"direct"},` +
		`{"addr":"/ip4/10.0.0.2/tcp/4001/p2p/12D3KooWr/p2p-circuit","id":"12D3KooWb","path":"relayed"}]`; string(peers) != want {
		t.Errorf("peers %s\nwant  %s", peers, want)
	}
	minute := doc["minute"].(map[string]any)
	if got, want := keys(minute), []string{"dm_delivered", "dm_sent", "drops", "latency_p50_seconds", "latency_p99_above",
		"latency_p99_seconds", "messages_in_per_second", "messages_out_per_second", "rejects", "window_seconds"}; !slices.Equal(got, want) {
		t.Errorf("minute keys %q, want %q", got, want)
	}
	if minute["window_seconds"] != 13.0 || minute["drops"] != 3.0 || minute["latency_p99_seconds"] == nil {
		t.Errorf("minute: %v", minute)
	}
	if stats := doc["stats"].([]any); len(stats) != 9 || stats[0] != "peers: 2 (1 direct, 1 relayed)" {
		t.Errorf("stats: %q", stats)
	}
	h := doc["history"].(map[string]any)
	if h["interval_seconds"] != 5.0 || h["span_seconds"] != 900.0 {
		t.Errorf("history interval %v span %v", h["interval_seconds"], h["span_seconds"])
	}
	for _, k := range []string{"t", "messages_in_per_second", "messages_out_per_second", "drops", "latency_p99_seconds"} {
		if n := len(h[k].([]any)); n != 3 {
			t.Errorf("history.%s has %d points, want 3", k, n)
		}
	}
	in := h["messages_in_per_second"].([]any)
	drops := h["drops"].([]any)
	p99 := h["latency_p99_seconds"].([]any)
	if in[0] != 0.0 || in[1] != 2.0 || in[2] != 0.0 || drops[1] != 3.0 || p99[0] != nil || p99[1] == nil || p99[2] == nil {
		t.Errorf("history: in %v drops %v p99 %v", in, drops, p99)
	}
	if ts := h["t"].([]any); ts[2] != float64(clock.UnixMilli()) {
		t.Errorf("the last point is at %v, want the request's %v", ts[2], clock.UnixMilli())
	}
}

// The page and its assets are embedded, and the page is sent with the
// chat page's Content Security Policy: no inline script or style, no
// other origin.
func TestStatusPage(t *testing.T) {
	sm := NewSampler(SamplerConfig{Gatherer: NewRegistry()})
	base := serve(t, Config{Gatherer: NewRegistry(), Sampler: sm})
	resp, err := http.Get(base + "/status")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	host := strings.TrimPrefix(base, "http://")
	if csp := resp.Header.Get("Content-Security-Policy"); resp.StatusCode != 200 || csp != web.ContentSecurityPolicy(host) {
		t.Errorf("/status: %d, policy %q, want the chat page's %q", resp.StatusCode, csp, web.ContentSecurityPolicy(host))
	}
	code, page := get(t, base+"/status")
	if code != 200 || !strings.Contains(page, `<script src="/status.js" defer></script>`) || !strings.Contains(page, `href="/status.css"`) {
		t.Errorf("/status: %d\n%s", code, page)
	}
	for _, inline := range []string{"<style", " style=", "<script>", "onclick", "onload", "http://", "https://"} {
		if strings.Contains(page, inline) {
			t.Errorf("the page holds %q: inline code or another origin", inline)
		}
	}
	for path, ctype := range map[string]string{"/status.js": "text/javascript; charset=utf-8", "/status.css": "text/css; charset=utf-8"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ctype {
			t.Errorf("%s: %d %s", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	// Without a sampler there is no status page.
	plain := serve(t, Config{Gatherer: NewRegistry()})
	if code, _ := get(t, plain+"/status"); code != 404 {
		t.Errorf("/status without a sampler: %d, want 404", code)
	}
}
