package gateway

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"darkchat/identity"
	"darkchat/metrics"
	"darkchat/p2p"
)

// series returns every series of reg, keyed "name{label=value,...}", with
// its value (a histogram's: its count).
func series(t testing.TB, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	out, err := metrics.Series(reg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// alice (TCP, node A) and bob (WebSocket, node B) chat in one channel;
// each node's registry counts the sessions, logins, requests, deliveries
// and latencies, and no series names the channel, a username or a key.
func TestGatewayMetrics(t *testing.T) {
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	a := startNode(t, func(c *Config) { c.Registerer = regA })
	b := startNode(t, func(c *Config) { c.Registerer = regB })
	linkNodes(t, a, b)

	const channel = "cellar-42"
	alice := dialTCP(t, a.tcpAddr)
	alice.login()
	alice.join(channel, "alice-x")
	bob := dialWS(t, b.wsURL)
	bob.login()
	bob.join(channel, "bob-y")
	waitUntil(t, 30*time.Second, "A and B to find each other in the channel", func() bool {
		return len(a.node.ChannelPeers(channel)) > 0 && len(b.node.ChannelPeers(channel)) > 0
	})
	alice.say(channel, "alice-x", "one")
	bob.expect("message")
	bob.say(channel, "bob-y", "two")
	alice.expect("message")
	bob.send(map[string]any{"type": "leave", "channel": "never-joined"})
	bob.expectError(codeNotJoined)

	sa, sb := series(t, regA), series(t, regB)
	for _, c := range []struct {
		reg  map[string]float64
		name string
		want float64
	}{
		{sa, "darkchat_gateway_sessions{transport=tcp}", 1},
		{sa, "darkchat_gateway_sessions{transport=ws}", 0},
		{sb, "darkchat_gateway_sessions{transport=ws}", 1},
		{sa, "darkchat_gateway_logins_total{result=ok}", 1},
		{sb, "darkchat_gateway_logins_total{result=ok}", 1},
		{sa, "darkchat_gateway_requests_total{kind=send}", 1},
		{sb, "darkchat_gateway_requests_total{kind=leave}", 1},
		{sb, "darkchat_gateway_errors_total{code=not_joined}", 1},
		{sa, "darkchat_channel_messages_delivered_total{}", 1},
		{sb, "darkchat_channel_messages_delivered_total{}", 1},
		{sa, "darkchat_channel_delivery_latency_seconds{origin=mesh}", 1},
		{sa, "darkchat_channel_delivery_latency_seconds{origin=local}", 1},
		{sb, "darkchat_channel_delivery_latency_seconds{origin=mesh}", 1},
		{sa, "darkchat_gateway_channels{}", 1},
		{sa, "darkchat_gateway_connections{}", 1},
	} {
		if got := c.reg[c.name]; got != c.want {
			t.Errorf("%s = %v, want %v", c.name, got, c.want)
		}
	}
	if q, ok := sa["darkchat_gateway_send_queue_frames{}"]; !ok || q < 0 || sa["darkchat_gateway_send_queue_max_frames{}"] > q || sa["darkchat_gateway_send_queue_limit{}"] != DefaultSendQueue {
		t.Errorf("send queues: frames %v (exported %v), deepest %v, limit %v", q, ok, sa["darkchat_gateway_send_queue_max_frames{}"], sa["darkchat_gateway_send_queue_limit{}"])
	}
	if sa["darkchat_gateway_max_connections{}"] < 1 || sa["darkchat_gateway_max_channels{}"] != DefaultMaxNodeChannels {
		t.Errorf("limits: max_connections %v, max_channels %v", sa["darkchat_gateway_max_connections{}"], sa["darkchat_gateway_max_channels{}"])
	}
	secrets := []string{channel, "never-joined", "alice-x", "bob-y", alice.key.Public().String(), bob.key.Public().String()}
	for _, s := range []map[string]float64{sa, sb} {
		for name := range s {
			for _, secret := range secrets {
				if strings.Contains(name, secret) {
					t.Errorf("series %s carries %q", name, secret)
				}
			}
		}
	}

	// Sessions are counted out when they close.
	alice.tcp.Close()
	waitUntil(t, 10*time.Second, "A to count alice's session out", func() bool {
		return series(t, regA)["darkchat_gateway_sessions{transport=tcp}"] == 0
	})
}

// discardConn is a frameConn whose writes go nowhere, for the delivery
// benchmark.
type discardConn struct{ c net.Conn }

func (d discardConn) netConn() net.Conn                     { return d.c }
func (discardConn) deframe([]byte, frameHandler) error      { return nil }
func (discardConn) writeFrames([]outFrame, time.Time) error { return nil }
func (discardConn) close() error                            { return nil }

// BenchmarkDeliverMessage is the cost of handing one channel message to
// one more member session (the fan-out's unit), with and without metrics:
// the metrics must not add an allocation to it, only an atomic add.
func BenchmarkDeliverMessage(b *testing.B) {
	key, err := identity.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	cm, err := identity.NewChannelMessage(key, "lobby", "alice", "hello, world", time.Now())
	if err != nil {
		b.Fatal(err)
	}
	for _, withMetrics := range []bool{false, true} {
		name := "metrics=off"
		if withMetrics {
			name = "metrics=on"
		}
		b.Run(name, func(b *testing.B) {
			cfg := Config{SendQueue: 1 << 30}
			if withMetrics {
				cfg.Registerer = prometheus.NewRegistry()
			}
			srv, err := New(cfg, nopMesh{}, "node", nil)
			if err != nil {
				b.Fatal(err)
			}
			c1, c2 := net.Pipe()
			defer c1.Close()
			defer c2.Close()
			sess := newSession(srv, discardConn{c1}, netip.MustParseAddr("127.0.0.1"))
			mm := &meshMessage{msg: cm}
			m := &p2p.Message{Channel: "lobby", Payload: mm}
			sess.DeliverMessage(m) // builds the shared frame once
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				sess.DeliverMessage(m)
			}
			b.StopTimer()
			ctx, cancel := contextWithTimeout(5 * time.Second)
			defer cancel()
			srv.Close(ctx)
		})
	}
}

// The once-per-message part of the metrics (the latency histogram) does
// not allocate either.
func TestDeliveryMetricsDoNotAllocate(t *testing.T) {
	srv, err := New(Config{Registerer: prometheus.NewRegistry()}, nopMesh{}, "node", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := contextWithTimeout(5 * time.Second)
		defer cancel()
		srv.Close(ctx)
	}()
	ts := time.Now().UnixMilli()
	if n := testing.AllocsPerRun(100, func() {
		srv.metrics.handedOver(ts, false)
		srv.metrics.deliveredToSession()
		srv.metrics.request("send")
		srv.metrics.clientError(codeRateLimited)
	}); n != 0 {
		t.Errorf("counting a delivery allocates %v times", n)
	}
}

// nopMesh is a mesh that does nothing, for tests of the gateway alone.
type nopMesh struct{}

func (nopMesh) Join(string, p2p.Member) error                 { return nil }
func (nopMesh) Leave(string, p2p.Member)                      {}
func (nopMesh) Publish(context.Context, string, []byte) error { return nil }
func (nopMesh) JoinInbox(int, p2p.Member) error               { return nil }
func (nopMesh) LeaveInbox(int, p2p.Member)                    {}
func (nopMesh) PublishDM(context.Context, int, []byte) error  { return nil }
func (nopMesh) PutBundle(context.Context, string, []byte) error {
	return nil
}
func (nopMesh) GetBundle(context.Context, string) ([]byte, error) { return nil, p2p.ErrNoDHT }
