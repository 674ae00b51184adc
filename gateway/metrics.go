package gateway

import (
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"darkchat/proto"
)

// The gateway's metrics (Config.Registerer): sessions, logins, requests,
// errors, refusals, channel deliveries and DMs, and the node's client
// limits beside their use. Names are prefixed darkchat_gateway_,
// darkchat_channel_ and darkchat_dm_ (package metrics explains the
// prefixes). No label value comes from a client: request kinds, error codes
// and results are the protocol's own closed sets, resolved here once, so
// that counting on the hot path is an atomic add without allocation, and no
// channel name, username or key can ever become a label.

// Session transports (darkchat_gateway_sessions' transport).
const (
	transportTCP = iota
	transportWS
	numTransports
)

var transportNames = [numTransports]string{"tcp", "ws"}

// requestKinds are the request types of PROTOCOL.md a node serves; any
// other type counts as "unknown".
var requestKinds = []string{"ping", "pong", "login", "join", "leave", "send", "whois", "dm", "history", "history_answer", "bundle", "rules", "kick", "unknown"}

// Why a DM was not sent (darkchat_dm_not_delivered_total's reason).
var dmFailures = []string{codeNoRoute, codeDuplicate, codeBadEnvelope, codeRateLimited, codeBadJSON, codeInternal}

// channelLatencyBuckets span 1 ms to about 2 minutes, doubling: a message
// handed over within the author's own node, one across a few hops, and one
// repaired from history after a partition.
var channelLatencyBuckets = prometheus.ExponentialBuckets(0.001, 2, 18)

// gatewayMetrics holds the resolved series. Its methods do nothing on a nil
// *gatewayMetrics (a gateway without Config.Registerer).
type gatewayMetrics struct {
	sessions       [numTransports]prometheus.Gauge
	logins         map[string]prometheus.Counter // by result: "ok" or an error code
	requests       map[string]prometheus.Counter // by requestKinds
	errors         map[string]prometheus.Counter // by code
	slowConsumers  prometheus.Counter
	rateLimited    prometheus.Counter
	latency        [2]prometheus.Observer // by origin: mesh, local
	delivered      prometheus.Counter
	dmSent         prometheus.Counter
	dmDelivered    prometheus.Counter
	dmNotDelivered map[string]prometheus.Counter
	bundleLookups  [numBundleResults]prometheus.Counter
}

// Bundle lookup results (whois).
const (
	bundleLocal = iota
	bundleDHT
	bundleNotFound
	numBundleResults
)

// newGatewayMetrics creates the gateway's series on reg, including the
// gauges read from s at scrape time.
func newGatewayMetrics(reg prometheus.Registerer, s *Server) (*gatewayMetrics, error) {
	m := &gatewayMetrics{
		logins:         map[string]prometheus.Counter{},
		requests:       map[string]prometheus.Counter{},
		errors:         map[string]prometheus.Counter{},
		dmNotDelivered: map[string]prometheus.Counter{},
	}
	sessions := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "darkchat_gateway_sessions",
		Help: "Open client sessions (logged in or logging in), by transport."}, []string{"transport"})
	for i := range numTransports {
		m.sessions[i] = sessions.WithLabelValues(transportNames[i])
	}
	logins := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "darkchat_gateway_logins_total",
		Help: "Login attempts, by result: ok, or the error code that refused it (bad_signature, bad_key, challenge_expired, login_timeout, ...)."}, []string{"result"})
	m.logins["ok"] = logins.WithLabelValues("ok")
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "darkchat_gateway_errors_total",
		Help: "Error objects sent to clients, by code (PROTOCOL.md §2.9)."}, []string{"code"})
	for code := range proto.Codes {
		m.logins[string(code)] = logins.WithLabelValues(string(code))
		m.errors[string(code)] = errs.WithLabelValues(string(code))
	}
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "darkchat_gateway_requests_total",
		Help: "Client requests, by type (unknown: a type this node does not serve)."}, []string{"kind"})
	for _, k := range requestKinds {
		m.requests[k] = reqs.WithLabelValues(k)
	}
	m.slowConsumers = prometheus.NewCounter(prometheus.CounterOpts{Name: "darkchat_gateway_slow_consumer_disconnects_total",
		Help: "Sessions closed because they did not read their queued frames (--send-queue)."})
	m.rateLimited = prometheus.NewCounter(prometheus.CounterOpts{Name: "darkchat_gateway_rate_limited_total",
		Help: "Requests refused by a rate limit: a session's messages and DMs (--rate, --burst), its author's messages (--author-rate), history requests."})
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "darkchat_channel_delivery_latency_seconds",
		Help:    "Time from a channel message's author timestamp to its hand-off to this node's first member session, by origin: mesh (another node's client) or local (this node's). Clock skew between author and node is included.",
		Buckets: channelLatencyBuckets}, []string{"origin"})
	m.latency[0], m.latency[1] = lat.WithLabelValues("mesh"), lat.WithLabelValues("local")
	m.delivered = prometheus.NewCounter(prometheus.CounterOpts{Name: "darkchat_channel_messages_delivered_total",
		Help: "Channel messages handed to local sessions, one per session (a session's own messages are not echoed and not counted)."})
	m.dmSent = prometheus.NewCounter(prometheus.CounterOpts{Name: "darkchat_dm_sent_total",
		Help: "DM envelopes from this node's sessions published towards a node serving the recipient's inbox."})
	m.dmDelivered = prometheus.NewCounter(prometheus.CounterOpts{Name: "darkchat_dm_delivered_total",
		Help: "DM envelopes handed to a recipient's session on this node."})
	notDelivered := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "darkchat_dm_not_delivered_total",
		Help: "DMs from this node's sessions not sent, by reason (the error code the sender got)."}, []string{"reason"})
	for _, r := range dmFailures {
		m.dmNotDelivered[r] = notDelivered.WithLabelValues(r)
	}
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "darkchat_bundle_lookups_total",
		Help: "Key bundle lookups (whois), by result: local (a session on this node), dht, not_found."}, []string{"result"})
	for i, r := range [numBundleResults]string{"local", "dht", "not_found"} {
		m.bundleLookups[i] = lookups.WithLabelValues(r)
	}

	// The node's client limits beside their use.
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	cfg := s.cfg
	var netip0 netip.Addr // counts(netip0) is the node's total
	limits := []prometheus.Collector{
		gauge("darkchat_gateway_connections", "Open client connections on both gateway ports (sessions and unfinished WebSocket handshakes).",
			func() float64 { n, _ := s.limiter.counts(netip0); return float64(n) }),
		gauge("darkchat_gateway_max_connections", "The most client connections the node allows (--max-conns).",
			func() float64 { return float64(cfg.MaxConns) }),
		gauge("darkchat_gateway_max_sessions_per_ip", "The most connections one IP address or IPv6 /64 may hold (--max-sessions-per-ip).",
			func() float64 { return float64(cfg.MaxSessionsPerIP) }),
		gauge("darkchat_gateway_channels", "Distinct channels with members on this node.",
			func() float64 { n, _ := s.channels.counts(netip0); return float64(n) }),
		gauge("darkchat_gateway_max_channels", "The most distinct channels with members the node allows (--max-node-channels).",
			func() float64 { return float64(cfg.MaxNodeChannels) }),
		gauge("darkchat_gateway_reader_goroutines", "Sessions with a goroutine reading their socket; the others are idle and watched by the poller.",
			func() float64 { return float64(s.readers.Load()) }),
		counter("darkchat_gateway_connections_refused_per_ip_total", "Connections refused at accept: their source was at --max-sessions-per-ip.",
			func() float64 { return float64(s.limiter.refusedTotal[refusedPerSource].Load()) }),
		counter("darkchat_gateway_connections_refused_full_total", "Connections refused at accept: the node was at --max-conns.",
			func() float64 { return float64(s.limiter.refusedTotal[refusedFull].Load()) }),
		gauge("darkchat_gateway_flooding_sources", "Sources whose connection attempts the kernel thins out (the flood filter).",
			func() float64 { return float64(s.limiter.floodingCount()) }),
		gauge("darkchat_gateway_send_queue_frames", "Frames waiting in the sessions' send queues, all sessions together (read at scrape time).",
			func() float64 { total, _ := s.sendQueueDepth(); return float64(total) }),
		gauge("darkchat_gateway_send_queue_max_frames", "The deepest session send queue, in frames; past darkchat_gateway_send_queue_limit a session borrows from the node's shared allowance, and it is cut off (slow_consumer) at 8 times the limit or when the allowance is spent.",
			func() float64 { _, deepest := s.sendQueueDepth(); return float64(deepest) }),
		gauge("darkchat_gateway_send_queue_limit", "Frames a session's send queue holds on its own account (--send-queue).",
			func() float64 { return float64(cfg.SendQueue) }),
		gauge("darkchat_gateway_send_queue_shared_frames", "Frames lagging sessions have queued beyond their own limit, out of darkchat_gateway_send_queue_shared_limit.",
			func() float64 { return float64(s.sharedQueued.Load()) }),
		gauge("darkchat_gateway_send_queue_shared_limit", "Frames all sessions together may queue beyond their own limit (64 times --send-queue).",
			func() float64 { return float64(cfg.SharedSendQueue) }),
	}
	for _, c := range append([]prometheus.Collector{sessions, logins, errs, reqs, m.slowConsumers, m.rateLimited, lat,
		m.delivered, m.dmSent, m.dmDelivered, notDelivered, lookups}, limits...) {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *gatewayMetrics) sessionOpened(transport uint8, d float64) {
	if m != nil {
		m.sessions[transport].Add(d)
	}
}

// login counts a login's outcome: nil is ok.
func (m *gatewayMetrics) login(cerr *clientError) {
	if m == nil {
		return
	}
	result := "ok"
	if cerr != nil {
		result = cerr.code
	}
	if c := m.logins[result]; c != nil {
		c.Inc()
	}
}

func (m *gatewayMetrics) request(kind string) {
	if m == nil {
		return
	}
	c := m.requests[kind]
	if c == nil {
		c = m.requests["unknown"]
	}
	c.Inc()
}

func (m *gatewayMetrics) clientError(code string) {
	if m == nil {
		return
	}
	if c := m.errors[code]; c != nil {
		c.Inc()
	}
	switch code {
	case codeSlowConsumer:
		m.slowConsumers.Inc()
	case codeRateLimited:
		m.rateLimited.Inc()
	}
}

// handedOver records a channel message's first hand-off to a local
// session, authored at ts (Unix milliseconds).
func (m *gatewayMetrics) handedOver(ts int64, local bool) {
	if m == nil {
		return
	}
	d := max(time.Since(time.UnixMilli(ts)), 0)
	origin := 0
	if local {
		origin = 1
	}
	m.latency[origin].Observe(d.Seconds())
}

func (m *gatewayMetrics) deliveredToSession() {
	if m != nil {
		m.delivered.Inc()
	}
}

func (m *gatewayMetrics) dmResult(cerr *clientError) {
	if m == nil {
		return
	}
	if cerr == nil {
		m.dmSent.Inc()
		return
	}
	if c := m.dmNotDelivered[cerr.code]; c != nil {
		c.Inc()
	}
}

func (m *gatewayMetrics) dmHandedOver() {
	if m != nil {
		m.dmDelivered.Inc()
	}
}

func (m *gatewayMetrics) bundleLookup(result int) {
	if m != nil {
		m.bundleLookups[result].Inc()
	}
}

// sendQueueDepth reads every session's send queue: the frames waiting in
// all, and in the deepest. It runs at scrape time (and the sampler's), never
// per message: one pass over the sessions, each locked briefly.
func (s *Server) sendQueueDepth() (total, deepest int) {
	s.mu.Lock()
	sessions := s.sessions.appendTo(make([]*session, 0, s.sessions.len()))
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.mu.Lock()
		n := len(sess.queue)
		sess.mu.Unlock()
		total += n
		deepest = max(deepest, n)
	}
	return total, deepest
}
