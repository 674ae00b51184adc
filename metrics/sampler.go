package metrics

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The sampler turns the registry into the figures an operator looks at
// first (`darkchatd ctl stats`, the /status page): every few seconds it
// gathers the registry and keeps a small Sample of it in a ring covering
// the last 15 minutes; rates and quantiles are differences between two
// samples. Nothing is counted per message for it: the counters it reads
// are the ones /metrics serves, and gathering costs the same as one scrape
// every Interval.

// The series the sampler reads. Package metrics owns their meaning here;
// p2p and gateway define them.
const (
	seriesPeers       = "darkchat_p2p_connected_peers"              // path: direct, relayed
	seriesSessions    = "darkchat_gateway_sessions"                 // transport: tcp, ws
	seriesChannels    = "darkchat_gateway_channels"                 // gauge
	seriesIn          = "gossipsub_message_delivered_total"         // kind="channel": from peers
	seriesPublished   = "gossipsub_message_published_total"         // kind="channel": from this node's clients
	seriesOut         = "darkchat_channel_messages_delivered_total" // counter
	seriesDrops       = "gossipsub_message_dropped_total"           // every reason
	seriesRejects     = "gossipsub_message_rejected_total"          // every kind and reason
	seriesLatency     = "darkchat_channel_delivery_latency_seconds" // histogram, every origin
	seriesDMSent      = "darkchat_dm_sent_total"
	seriesDMDelivered = "darkchat_dm_delivered_total"
)

// Sampler defaults: a sample every 5 s, 15 minutes kept (180 samples), and
// the window of ctl stats.
const (
	DefaultSampleInterval = 5 * time.Second
	DefaultHistory        = 15 * time.Minute
	StatsWindow           = time.Minute
)

// Sample is the node's figures at one instant, as its registry had them.
// Counters are totals since the node started.
type Sample struct {
	Time                      time.Time
	PeersDirect, PeersRelayed int
	SessionsTCP, SessionsWS   int
	Channels                  int
	// MessagesIn is channel messages the node took in: from peers
	// (validated and delivered by GossipSub) and from its own clients
	// (published).
	MessagesIn float64
	// MessagesOut is channel messages handed to local sessions, one per
	// session.
	MessagesOut float64
	// Drops is messages lost in GossipSub's queues, every reason;
	// Rejects is messages GossipSub rejected, every kind and reason.
	Drops, Rejects float64
	// DMSent is DMs this node's sessions sent; DMDelivered, DMs handed to
	// a recipient's session here.
	DMSent, DMDelivered float64
	// Latency is the channel delivery latency histogram, summed over
	// origins.
	Latency Histogram
}

// Histogram is a cumulative Prometheus histogram: Cumulative[i] counts the
// observations <= Bounds[i]; Count counts all of them (the +Inf bucket).
type Histogram struct {
	Bounds     []float64
	Cumulative []uint64
	Count      uint64
}

// add adds the buckets of a histogram with the same bounds (another label
// value of the same series); one with other bounds is ignored.
func (h *Histogram) add(bounds []float64, cum []uint64, count uint64) {
	if h.Bounds == nil {
		h.Bounds, h.Cumulative = bounds, make([]uint64, len(bounds))
	}
	if len(bounds) != len(h.Bounds) {
		return
	}
	for i := range bounds {
		if bounds[i] != h.Bounds[i] {
			return
		}
	}
	for i := range cum {
		h.Cumulative[i] += cum[i]
	}
	h.Count += count
}

// Sub is the observations made between old and h (a later sample of the
// same series). A histogram that went backwards (a restart) counts from
// zero.
func (h Histogram) Sub(old Histogram) Histogram {
	if old.Count > h.Count || len(old.Cumulative) != len(h.Cumulative) {
		return h
	}
	d := Histogram{Bounds: h.Bounds, Cumulative: make([]uint64, len(h.Cumulative)), Count: h.Count - old.Count}
	for i := range h.Cumulative {
		if old.Cumulative[i] > h.Cumulative[i] {
			return h
		}
		d.Cumulative[i] = h.Cumulative[i] - old.Cumulative[i]
	}
	return d
}

// Quantile estimates the q-quantile (0 < q <= 1) of the observations the
// way Prometheus's histogram_quantile does: it finds the bucket holding the
// rank q·Count and interpolates linearly within it, the first bucket
// starting at 0. With no observations it returns NaN. When the rank falls
// in the +Inf bucket it returns the largest finite bound and above = true:
// the quantile is above it, by how much the histogram cannot tell.
func (h Histogram) Quantile(q float64) (v float64, above bool) {
	if h.Count == 0 || math.IsNaN(q) {
		return math.NaN(), false
	}
	rank := q * float64(h.Count)
	var lower float64
	var below uint64
	for i, bound := range h.Bounds {
		c := h.Cumulative[i]
		if float64(c) >= rank && c > below {
			return lower + (bound-lower)*(rank-float64(below))/float64(c-below), false
		}
		lower, below = bound, c
	}
	if len(h.Bounds) == 0 {
		return math.NaN(), false
	}
	return h.Bounds[len(h.Bounds)-1], true
}

// Read extracts a Sample from gathered metric families.
func Read(families []*dto.MetricFamily, at time.Time) Sample {
	s := Sample{Time: at}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			switch f.GetName() {
			case seriesPeers:
				switch label(m, "path") {
				case "direct":
					s.PeersDirect = int(m.GetGauge().GetValue())
				case "relayed":
					s.PeersRelayed = int(m.GetGauge().GetValue())
				}
			case seriesSessions:
				switch label(m, "transport") {
				case "tcp":
					s.SessionsTCP = int(m.GetGauge().GetValue())
				case "ws":
					s.SessionsWS = int(m.GetGauge().GetValue())
				}
			case seriesChannels:
				s.Channels = int(m.GetGauge().GetValue())
			case seriesIn, seriesPublished:
				if label(m, "kind") == "channel" {
					s.MessagesIn += m.GetCounter().GetValue()
				}
			case seriesOut:
				s.MessagesOut += m.GetCounter().GetValue()
			case seriesDrops:
				s.Drops += m.GetCounter().GetValue()
			case seriesRejects:
				s.Rejects += m.GetCounter().GetValue()
			case seriesDMSent:
				s.DMSent += m.GetCounter().GetValue()
			case seriesDMDelivered:
				s.DMDelivered += m.GetCounter().GetValue()
			case seriesLatency:
				h := m.GetHistogram()
				var bounds []float64
				var cum []uint64
				for _, b := range h.GetBucket() {
					if math.IsInf(b.GetUpperBound(), +1) {
						continue
					}
					bounds = append(bounds, b.GetUpperBound())
					cum = append(cum, b.GetCumulativeCount())
				}
				s.Latency.add(bounds, cum, h.GetSampleCount())
			}
		}
	}
	return s
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// Stats are the figures of ctl stats: the gauges at the end of a window,
// the rates and counts over it.
type Stats struct {
	Now    Sample
	Window time.Duration // what the two samples span; shorter for a young node
	// Per second over the window.
	InRate, OutRate float64
	// Counts over the window.
	Drops, Rejects      float64
	DMSent, DMDelivered float64
	// Latency is the channel deliveries in the window; P50 and P99 its
	// quantiles in seconds (NaN without deliveries), P50Above and
	// P99Above when a quantile is beyond the largest bucket.
	Latency            Histogram
	P50, P99           float64
	P50Above, P99Above bool
}

// Compute is the Stats between two samples, from then to now.
func Compute(then, now Sample) Stats {
	st := Stats{Now: now, Window: now.Time.Sub(then.Time)}
	secs := st.Window.Seconds()
	if secs > 0 {
		st.InRate = delta(now.MessagesIn, then.MessagesIn) / secs
		st.OutRate = delta(now.MessagesOut, then.MessagesOut) / secs
	}
	st.Drops = delta(now.Drops, then.Drops)
	st.Rejects = delta(now.Rejects, then.Rejects)
	st.DMSent = delta(now.DMSent, then.DMSent)
	st.DMDelivered = delta(now.DMDelivered, then.DMDelivered)
	st.Latency = now.Latency.Sub(then.Latency)
	st.P50, st.P50Above = st.Latency.Quantile(0.5)
	st.P99, st.P99Above = st.Latency.Quantile(0.99)
	return st
}

// delta is a counter's increase; a counter that went backwards (a
// restart) counts from zero.
func delta(now, then float64) float64 {
	if now < then {
		return now
	}
	return now - then
}

// Lines is ctl stats' output: one figure per line, "name: value", the
// names stable for scripts. Windowed figures say the window they cover.
func (st Stats) Lines() []string {
	n := st.Now
	over := fmt.Sprintf("over the last %ds", int(st.Window.Round(time.Second).Seconds()))
	lines := []string{
		fmt.Sprintf("peers: %d (%d direct, %d relayed)", n.PeersDirect+n.PeersRelayed, n.PeersDirect, n.PeersRelayed),
		fmt.Sprintf("sessions: %d (%d tcp, %d ws)", n.SessionsTCP+n.SessionsWS, n.SessionsTCP, n.SessionsWS),
		fmt.Sprintf("channels: %d", n.Channels),
		fmt.Sprintf("messages in: %.2f/s %s", st.InRate, over),
		fmt.Sprintf("messages out: %.2f/s %s", st.OutRate, over),
		fmt.Sprintf("drops: %.0f %s, %.0f since start", st.Drops, over, n.Drops),
		fmt.Sprintf("rejects: %.0f %s, %.0f since start", st.Rejects, over, n.Rejects),
	}
	if st.Latency.Count == 0 {
		lines = append(lines, "channel latency: no deliveries "+over)
	} else {
		lines = append(lines, fmt.Sprintf("channel latency: p50 %s, p99 %s %s (%d deliveries)",
			formatSeconds(st.P50, st.P50Above), formatSeconds(st.P99, st.P99Above), over, st.Latency.Count))
	}
	switch {
	case st.DMSent == 0 && st.DMDelivered == 0:
		lines = append(lines, "DM delivery: no DMs "+over)
	case st.DMSent == 0:
		lines = append(lines, fmt.Sprintf("DM delivery: %.0f delivered / 0 sent %s", st.DMDelivered, over))
	default:
		lines = append(lines, fmt.Sprintf("DM delivery: %.0f%% (%.0f delivered / %.0f sent) %s",
			100*st.DMDelivered/st.DMSent, st.DMDelivered, st.DMSent, over))
	}
	return lines
}

// formatSeconds prints a latency: milliseconds below a second, seconds
// above; "> x" when it is beyond the largest bucket.
func formatSeconds(s float64, above bool) string {
	var v string
	switch {
	case math.IsNaN(s):
		return "n/a"
	case s < 0.01:
		v = fmt.Sprintf("%.1fms", s*1000)
	case s < 1:
		v = fmt.Sprintf("%.0fms", s*1000)
	default:
		v = fmt.Sprintf("%.2fs", s)
	}
	if above {
		return "> " + v
	}
	return v
}

// SamplerConfig configures NewSampler.
type SamplerConfig struct {
	Gatherer prometheus.Gatherer
	// Interval between samples; DefaultSampleInterval if zero.
	Interval time.Duration
	// History is how far back the ring reaches; DefaultHistory if zero.
	History time.Duration
	// Now is the clock; time.Now if nil (tests set it).
	Now func() time.Time
}

// Sampler keeps a bounded ring of Samples of a registry. It is safe for
// concurrent use.
type Sampler struct {
	g        prometheus.Gatherer
	interval time.Duration
	now      func() time.Time

	mu   sync.Mutex
	ring []Sample // a circular buffer of cap(ring) samples
	next int      // where the next sample goes
	full bool
}

// NewSampler returns a sampler of cfg.Gatherer with an empty ring; Run
// fills it.
func NewSampler(cfg SamplerConfig) *Sampler {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultSampleInterval
	}
	if cfg.History <= 0 {
		cfg.History = DefaultHistory
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	n := int(cfg.History/cfg.Interval) + 1
	return &Sampler{g: cfg.Gatherer, interval: cfg.Interval, now: cfg.Now, ring: make([]Sample, n)}
}

// Interval is the time between samples.
func (s *Sampler) Interval() time.Duration { return s.interval }

// Run takes a sample at once and then every Interval until ctx is done.
func (s *Sampler) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		s.Tick()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Tick takes a sample and keeps it in the ring.
func (s *Sampler) Tick() {
	sample := s.Current()
	s.mu.Lock()
	s.ring[s.next] = sample
	s.next = (s.next + 1) % len(s.ring)
	s.full = s.full || s.next == 0
	s.mu.Unlock()
}

// Current gathers a sample now without keeping it. A collector that fails
// costs its own series only, as on /metrics.
func (s *Sampler) Current() Sample {
	families, _ := s.g.Gather()
	return Read(families, s.now())
}

// Samples returns the kept samples, oldest first.
func (s *Sampler) Samples() []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.full {
		return append([]Sample(nil), s.ring[:s.next]...)
	}
	return append(append([]Sample(nil), s.ring[s.next:]...), s.ring[:s.next]...)
}

// Stats are the figures from window ago to now, from a sample taken now
// and the latest kept one at least window old (the oldest kept one on a
// node younger than that).
func (s *Sampler) Stats(window time.Duration) Stats {
	now := s.Current()
	return Compute(baseline(s.Samples(), now.Time.Add(-window), now), now)
}

// baseline is the latest of samples taken at or before t, else the oldest
// one, else now itself (no sample yet: an empty window).
func baseline(samples []Sample, t time.Time, now Sample) Sample {
	if len(samples) == 0 {
		return now
	}
	base := samples[0]
	for _, x := range samples {
		if x.Time.After(t) {
			break
		}
		base = x
	}
	return base
}
