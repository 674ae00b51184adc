package p2p

import (
	"strings"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
)

// GossipSub metrics, counted by the node's raw tracer (dropTracer).
//
// Names follow the draft libp2p "GossipSub Metrics Specification"
// (libp2p/specs, working draft r0): the gossipsub_ prefix and its names where
// it has one (gossipsub_message_received_total, _delivered_total,
// _rejected_total, _duplicate_total, gossipsub_mesh_peers_total,
// gossipsub_message_published_total,
// gossipsub_peers_total, gossipsub_peer_graft_total, _prune_total,
// gossipsub_rpc_received_total and _sent_total by message_type,
// gossipsub_peer_throttled_total). What it has no name for (ignored and
// dropped messages, received bytes) takes a name in the same style.
//
// The spec's topic label is replaced by kind (channel, dm, history, other):
// a channel's topic names the channel, which must never appear in a label
// (privacy, and cardinality an attacker could grow), and a DM shard's says
// who is likely to be talking. Per-topic gauges are summed over the topics
// of a kind.
//
// Cost: the tracer runs synchronously in GossipSub's event loop and
// validation worker, once per message and RPC. Every counter is resolved to
// its label values once, here, so counting is an atomic add: no label
// lookup and no allocation per message.

// topicKind is what a topic carries, the only thing about it a label says.
type topicKind uint8

const (
	kindChannel topicKind = iota
	kindDM
	kindHistory
	kindOther
	numKinds
)

var kindNames = [numKinds]string{"channel", "dm", "history", "other"}

func kindOf(topic string) topicKind {
	switch {
	case strings.HasPrefix(topic, channelTopicPrefix):
		return kindChannel
	case strings.HasPrefix(topic, inboxTopicPrefix):
		return kindDM
	case topic == historyTopic:
		return kindHistory
	}
	return kindOther
}

// rejectReasons are the label values of gossipsub_message_rejected_total:
// GossipSub's reasons for refusing a message, in snake case. Validation
// ignored, queue full and throttled are counted as ignored and dropped.
var rejectReasons = []struct{ pubsub, label string }{
	{pubsub.RejectValidationFailed, "validation_failed"},
	{pubsub.RejectInvalidSignature, "invalid_signature"},
	{pubsub.RejectBlacklstedPeer, "blacklisted_peer"},
	{pubsub.RejectBlacklistedSource, "blacklisted_source"},
	{pubsub.RejectMissingSignature, "missing_signature"},
	{pubsub.RejectUnexpectedSignature, "unexpected_signature"},
	{pubsub.RejectUnexpectedAuthInfo, "unexpected_auth_info"},
	{pubsub.RejectSelfOrigin, "self_origin"},
	{"", "other"}, // a reason of a later GossipSub
}

// Why a message was dropped (gossipsub_message_dropped_total's reason).
const (
	dropValidationQueueFull = iota
	dropValidationThrottled
	dropSubscriptionQueueFull
	dropNotQueuedToPeer
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{"validation_queue_full", "validation_throttled", "subscription_queue_full", "not_queued_to_peer"}

// RPC parts, the message_type label of gossipsub_rpc_*_total.
const (
	rpcPublish = iota
	rpcSubscribe
	rpcUnsubscribe
	rpcGraft
	rpcPrune
	rpcIHave
	rpcIWant
	rpcIDontWant
	numRPCTypes
)

var rpcTypeNames = [numRPCTypes]string{"publish", "subscribe", "unsubscribe", "graft", "prune", "ihave", "iwant", "idontwant"}

// gossipMetrics holds the resolved counters. A nil *gossipMetrics counts
// nothing (a node without Config.Registerer).
type gossipMetrics struct {
	received, receivedBytes, delivered, duplicate, ignored, published [numKinds]prometheus.Counter
	rejected                                                          [numKinds][]prometheus.Counter // by rejectReasons
	dropped                                                           [numDropReasons]prometheus.Counter
	graft, prune                                                      [numKinds]prometheus.Counter
	rpcRecv, rpcSent                                                  [numRPCTypes]prometheus.Counter
	throttled                                                         prometheus.Counter

	// mesh records which topics each peer is in the node's mesh of, so
	// that a peer that leaves (GossipSub drops it from every mesh without
	// telling the tracer of each prune) is taken off the counts.
	meshMu    sync.Mutex
	mesh      map[peer.ID]map[string]struct{}
	meshCount [numKinds]int
}

func newGossipMetrics(reg prometheus.Registerer) (*gossipMetrics, error) {
	m := &gossipMetrics{mesh: make(map[peer.ID]map[string]struct{})}
	byKind := func(name, help string) (*prometheus.CounterVec, [numKinds]prometheus.Counter) {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"kind"})
		var out [numKinds]prometheus.Counter
		for k := range numKinds {
			out[k] = v.WithLabelValues(kindNames[k])
		}
		return v, out
	}
	var vecs []prometheus.Collector
	add := func(v *prometheus.CounterVec, dst *[numKinds]prometheus.Counter, c [numKinds]prometheus.Counter) {
		vecs = append(vecs, v)
		*dst = c
	}
	v, c := byKind("gossipsub_message_received_total", "Messages received from peers (first copies and duplicates), by kind of topic.")
	add(v, &m.received, c)
	v, c = byKind("gossipsub_message_received_bytes_total", "Bytes of message data received from peers (first copies and duplicates), by kind of topic.")
	add(v, &m.receivedBytes, c)
	v, c = byKind("gossipsub_message_delivered_total", "Messages from peers validated and delivered to this node's subscribers, by kind of topic.")
	add(v, &m.delivered, c)
	v, c = byKind("gossipsub_message_published_total", "Messages this node published for its own clients, by kind of topic.")
	add(v, &m.published, c)
	v, c = byKind("gossipsub_message_duplicate_total", "Copies of messages already seen, by kind of topic.")
	add(v, &m.duplicate, c)
	v, c = byKind("gossipsub_message_ignored_total", "Messages the validators ignored (stale, replayed, from a peer banned meanwhile), by kind of topic.")
	add(v, &m.ignored, c)
	v, c = byKind("gossipsub_peer_graft_total", "Peers grafted onto one of this node's meshes, by kind of topic.")
	add(v, &m.graft, c)
	v, c = byKind("gossipsub_peer_prune_total", "Peers pruned from one of this node's meshes, by kind of topic.")
	add(v, &m.prune, c)

	rej := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gossipsub_message_rejected_total",
		Help: "Messages rejected (the forwarding peer is penalised), by kind of topic and reason."}, []string{"kind", "reason"})
	for k := range numKinds {
		m.rejected[k] = make([]prometheus.Counter, len(rejectReasons))
		for i, r := range rejectReasons {
			m.rejected[k][i] = rej.WithLabelValues(kindNames[k], r.label)
		}
	}
	drop := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gossipsub_message_dropped_total",
		Help: "Messages lost in GossipSub's queues: validation queue full or throttled, a subscription's queue full (this node lost them), or not queued to one peer (it may get them from others)."}, []string{"reason"})
	for i := range numDropReasons {
		m.dropped[i] = drop.WithLabelValues(dropReasonNames[i])
	}
	rpcRecv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gossipsub_rpc_received_total",
		Help: "Parts of the RPCs received from peers, by message type: messages, subscription changes, and control entries (one per topic for graft, prune and ihave)."}, []string{"message_type"})
	rpcSent := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gossipsub_rpc_sent_total",
		Help: "Parts of the RPCs queued to peers, by message type (as gossipsub_rpc_received_total)."}, []string{"message_type"})
	for i := range numRPCTypes {
		m.rpcRecv[i] = rpcRecv.WithLabelValues(rpcTypeNames[i])
		m.rpcSent[i] = rpcSent.WithLabelValues(rpcTypeNames[i])
	}
	m.throttled = prometheus.NewCounter(prometheus.CounterOpts{Name: "gossipsub_peer_throttled_total",
		Help: "Times a peer was throttled for sending more messages than validation keeps up with."})
	vecs = append(vecs, rej, drop, rpcRecv, rpcSent, m.throttled)
	for _, c := range vecs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *gossipMetrics) receive(msg *pubsub.Message) {
	k := kindOf(msg.GetTopic())
	m.received[k].Inc()
	m.receivedBytes[k].Add(float64(len(msg.Data)))
}

func (m *gossipMetrics) reject(msg *pubsub.Message, reason string) {
	k := kindOf(msg.GetTopic())
	switch reason {
	case pubsub.RejectValidationQueueFull:
		m.dropped[dropValidationQueueFull].Inc()
		return
	case pubsub.RejectValidationThrottled:
		m.dropped[dropValidationThrottled].Inc()
		return
	case pubsub.RejectValidationIgnored:
		m.ignored[k].Inc()
		return
	}
	for i, r := range rejectReasons {
		if r.pubsub == reason || r.pubsub == "" {
			m.rejected[k][i].Inc()
			return
		}
	}
}

// rpc counts an RPC's parts into c (rpcRecv or rpcSent).
func countRPC(c *[numRPCTypes]prometheus.Counter, rpc *pubsub.RPC) {
	if n := len(rpc.GetPublish()); n > 0 {
		c[rpcPublish].Add(float64(n))
	}
	for _, s := range rpc.GetSubscriptions() {
		if s.GetSubscribe() {
			c[rpcSubscribe].Inc()
		} else {
			c[rpcUnsubscribe].Inc()
		}
	}
	ctl := rpc.GetControl()
	if ctl == nil {
		return
	}
	for i, n := range [...]int{rpcGraft: len(ctl.GetGraft()), rpcPrune: len(ctl.GetPrune()), rpcIHave: len(ctl.GetIhave()),
		rpcIWant: len(ctl.GetIwant()), rpcIDontWant: len(ctl.GetIdontwant())} {
		if n > 0 {
			c[i].Add(float64(n))
		}
	}
}

func (m *gossipMetrics) graftPeer(p peer.ID, topic string) {
	k := kindOf(topic)
	m.graft[k].Inc()
	m.meshMu.Lock()
	defer m.meshMu.Unlock()
	ts := m.mesh[p]
	if ts == nil {
		ts = make(map[string]struct{})
		m.mesh[p] = ts
	}
	if _, ok := ts[topic]; !ok {
		ts[topic] = struct{}{}
		m.meshCount[k]++
	}
}

func (m *gossipMetrics) prunePeer(p peer.ID, topic string) {
	k := kindOf(topic)
	m.prune[k].Inc()
	m.meshMu.Lock()
	defer m.meshMu.Unlock()
	if ts := m.mesh[p]; ts != nil {
		if _, ok := ts[topic]; ok {
			delete(ts, topic)
			m.meshCount[k]--
			if len(ts) == 0 {
				delete(m.mesh, p)
			}
		}
	}
}

// peerGone takes p off every mesh count: GossipSub has dropped it.
func (m *gossipMetrics) peerGone(p peer.ID) {
	m.meshMu.Lock()
	defer m.meshMu.Unlock()
	for topic := range m.mesh[p] {
		m.meshCount[kindOf(topic)]--
	}
	delete(m.mesh, p)
}

func (m *gossipMetrics) meshCounts() [numKinds]int {
	m.meshMu.Lock()
	defer m.meshMu.Unlock()
	return m.meshCount
}

// nodeCollector reports the node's gauges at scrape time: mesh and topic
// peers by kind, connected peers (direct, relayed) beside the connection
// manager's watermarks, and the DHT's routing table.
type nodeCollector struct {
	n                                      *Node
	meshDesc, topicDesc, peersDesc, rtDesc *prometheus.Desc
	connLowDesc, connHighDesc, topicsDesc  *prometheus.Desc
}

func newNodeCollector(n *Node) *nodeCollector {
	return &nodeCollector{
		n: n,
		meshDesc: prometheus.NewDesc("gossipsub_mesh_peers_total",
			"Peers in this node's GossipSub meshes, summed over the topics of a kind.", []string{"kind"}, nil),
		topicDesc: prometheus.NewDesc("gossipsub_peers_total",
			"Peers subscribed to the topics this node is in, summed over the topics of a kind.", []string{"kind"}, nil),
		topicsDesc: prometheus.NewDesc("darkchat_p2p_topics",
			"Topics this node is subscribed to, by kind.", []string{"kind"}, nil),
		peersDesc: prometheus.NewDesc("darkchat_p2p_connected_peers",
			"Peers with an open connection, by path: direct, or relayed when every connection goes through a relay.", []string{"path"}, nil),
		connLowDesc: prometheus.NewDesc("darkchat_p2p_conn_low_watermark",
			"The connection manager's low watermark (--conn-low), in peers.", nil, nil),
		connHighDesc: prometheus.NewDesc("darkchat_p2p_conn_high_watermark",
			"The connection manager's high watermark (--conn-high), in peers: beyond it, connections are trimmed.", nil, nil),
		rtDesc: prometheus.NewDesc("darkchat_dht_routing_table_peers",
			"Peers in the Kademlia DHT's routing table.", nil, nil),
	}
}

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.meshDesc, c.topicDesc, c.topicsDesc, c.peersDesc, c.connLowDesc, c.connHighDesc, c.rtDesc} {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	n := c.n
	if m := n.drops.metrics; m != nil {
		mesh := m.meshCounts()
		for k := range numKinds {
			ch <- prometheus.MustNewConstMetric(c.meshDesc, prometheus.GaugeValue, float64(mesh[k]), kindNames[k])
		}
	}
	var topicPeers, topics [numKinds]int
	for _, t := range n.topicNames() {
		k := kindOf(t)
		topics[k]++
		if n.ps != nil {
			topicPeers[k] += len(n.ps.ListPeers(t))
		}
	}
	for k := range numKinds {
		ch <- prometheus.MustNewConstMetric(c.topicDesc, prometheus.GaugeValue, float64(topicPeers[k]), kindNames[k])
		ch <- prometheus.MustNewConstMetric(c.topicsDesc, prometheus.GaugeValue, float64(topics[k]), kindNames[k])
	}
	if n.host != nil {
		var direct, relayed int
		for _, p := range n.Peers() {
			if p.Relayed {
				relayed++
			} else {
				direct++
			}
		}
		ch <- prometheus.MustNewConstMetric(c.peersDesc, prometheus.GaugeValue, float64(direct), "direct")
		ch <- prometheus.MustNewConstMetric(c.peersDesc, prometheus.GaugeValue, float64(relayed), "relayed")
	}
	ch <- prometheus.MustNewConstMetric(c.connLowDesc, prometheus.GaugeValue, float64(n.cfg.ConnLow))
	ch <- prometheus.MustNewConstMetric(c.connHighDesc, prometheus.GaugeValue, float64(n.cfg.ConnHigh))
	if n.dht != nil {
		ch <- prometheus.MustNewConstMetric(c.rtDesc, prometheus.GaugeValue, float64(n.dht.RoutingTable().Size()))
	}
}

// topicNames returns the topics the node has open (its channels, DM inbox
// shards and the history topic).
func (n *Node) topicNames() []string {
	n.chMu.Lock()
	defer n.chMu.Unlock()
	out := make([]string, 0, len(n.channels))
	for name, c := range n.channels {
		if c.topic != nil {
			out = append(out, name)
		}
	}
	return out
}
