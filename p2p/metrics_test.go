package p2p

import (
	"strings"
	"testing"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/prometheus/client_golang/prometheus"

	"darkchat/metrics"
)

// gathered returns the value of every series of reg whose name starts with
// prefix, keyed "name{label=value,...}".
func gathered(t *testing.T, reg prometheus.Gatherer, prefix string) map[string]float64 {
	t.Helper()
	out, err := metrics.Series(reg)
	if err != nil {
		t.Fatal(err)
	}
	for k := range out {
		if !strings.HasPrefix(k, prefix) {
			delete(out, k)
		}
	}
	return out
}

// Two nodes with registries chat in one channel: each counts the traffic
// under kind=channel, sees the other in its mesh and topic, and libp2p's
// own series are on the same registry. No label names the channel.
func TestGossipMetrics(t *testing.T) {
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	a := newTestNode(t, func(c *Config) { c.Registerer = regA })
	b := newTestNode(t, func(c *Config) { c.Registerer = regB })
	link(t, a, b)
	const channel = "secret-room-7"
	subA, err := a.Subscribe(channel, 16)
	if err != nil {
		t.Fatal(err)
	}
	subB, err := b.Subscribe(channel, 16)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "A and B to mesh in the channel", func() bool {
		return gathered(t, regA, "gossipsub_mesh_peers_total")["gossipsub_mesh_peers_total{kind=channel}"] == 1 &&
			gathered(t, regB, "gossipsub_mesh_peers_total")["gossipsub_mesh_peers_total{kind=channel}"] == 1
	})
	if err := a.Publish(t.Context(), channel, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	recv(t, subA, 10*time.Second)
	recv(t, subB, 10*time.Second)

	waitFor(t, 10*time.Second, "B to count the message", func() bool {
		return gathered(t, regB, "gossipsub_message_delivered_total")["gossipsub_message_delivered_total{kind=channel}"] == 1
	})
	gb := gathered(t, regB, "gossipsub_")
	for series, want := range map[string]float64{
		"gossipsub_message_received_total{kind=channel}":       1,
		"gossipsub_message_received_bytes_total{kind=channel}": 5,
		"gossipsub_peers_total{kind=channel}":                  1,
	} {
		if gb[series] != want {
			t.Errorf("B: %s = %v, want %v", series, gb[series], want)
		}
	}
	if gb["gossipsub_rpc_received_total{message_type=publish}"] < 1 || gb["gossipsub_peer_graft_total{kind=channel}"] < 1 {
		t.Errorf("B counted no publish RPC or graft: %v", gb)
	}
	ga := gathered(t, regA, "")
	if ga["gossipsub_message_published_total{kind=channel}"] != 1 || ga["gossipsub_message_received_total{kind=channel}"] != 0 {
		t.Errorf("A: its own publication must count as published, not received: published %v, received %v",
			ga["gossipsub_message_published_total{kind=channel}"], ga["gossipsub_message_received_total{kind=channel}"])
	}
	var libp2p bool
	for series := range ga {
		libp2p = libp2p || strings.HasPrefix(series, "libp2p_swarm_")
		if strings.Contains(series, channel) {
			t.Errorf("series %s names the channel", series)
		}
	}
	if !libp2p {
		t.Error("no libp2p_swarm_ series on A's registry")
	}
	if ga["darkchat_p2p_connected_peers{path=direct}"] != 1 {
		t.Errorf("A: darkchat_p2p_connected_peers{path=direct} = %v, want 1", ga["darkchat_p2p_connected_peers{path=direct}"])
	}

	// B closes: A's mesh count drops with it.
	b.Close()
	waitFor(t, 30*time.Second, "A to count B out of its mesh", func() bool {
		return gathered(t, regA, "gossipsub_mesh_peers_total")["gossipsub_mesh_peers_total{kind=channel}"] == 0
	})
}

// The tracer's counting adds no allocation per message.
func TestGossipMetricsDoNotAllocate(t *testing.T) {
	m, err := newGossipMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	topic := channelTopicPrefix + "lobby"
	msg := &pubsub.Message{Message: &pb.Message{Topic: &topic, Data: []byte("hello")}}
	if n := testing.AllocsPerRun(100, func() {
		m.receive(msg)
		m.delivered[kindOf(msg.GetTopic())].Inc()
		m.reject(msg, "validation failed")
	}); n != 0 {
		t.Errorf("counting a message allocates %v times", n)
	}
}
