package metrics

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// synthetic is a registry holding the series the sampler reads, under their
// real names and labels, set by hand.
type synthetic struct {
	reg                                  *prometheus.Registry
	peers, sessions                      *prometheus.GaugeVec
	channels                             prometheus.Gauge
	out, dmSent, dmDelivered             prometheus.Counter
	delivered, published, drops, rejects *prometheus.CounterVec
	latency                              *prometheus.HistogramVec
}

func newSynthetic(t *testing.T) *synthetic {
	t.Helper()
	s := &synthetic{reg: NewRegistry()}
	s.peers = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: seriesPeers}, []string{"path"})
	s.sessions = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: seriesSessions}, []string{"transport"})
	s.channels = prometheus.NewGauge(prometheus.GaugeOpts{Name: seriesChannels})
	s.delivered = prometheus.NewCounterVec(prometheus.CounterOpts{Name: seriesIn}, []string{"kind"})
	s.published = prometheus.NewCounterVec(prometheus.CounterOpts{Name: seriesPublished}, []string{"kind"})
	s.out = prometheus.NewCounter(prometheus.CounterOpts{Name: seriesOut})
	s.drops = prometheus.NewCounterVec(prometheus.CounterOpts{Name: seriesDrops}, []string{"reason"})
	s.rejects = prometheus.NewCounterVec(prometheus.CounterOpts{Name: seriesRejects}, []string{"kind", "reason"})
	s.dmSent = prometheus.NewCounter(prometheus.CounterOpts{Name: seriesDMSent})
	s.dmDelivered = prometheus.NewCounter(prometheus.CounterOpts{Name: seriesDMDelivered})
	// Buckets 10, 20, 40, 80 ms.
	s.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: seriesLatency,
		Buckets: []float64{0.01, 0.02, 0.04, 0.08}}, []string{"origin"})
	s.reg.MustRegister(s.peers, s.sessions, s.channels, s.delivered, s.published, s.out, s.drops, s.rejects, s.dmSent, s.dmDelivered, s.latency)
	return s
}

func TestHistogramQuantile(t *testing.T) {
	h := Histogram{Bounds: []float64{1, 2, 4, 8}}
	if v, _ := h.Quantile(0.5); !math.IsNaN(v) {
		t.Errorf("quantile of no observations: %v, want NaN", v)
	}
	// 10 in (0,1], 10 in (1,2], 0 in (2,4], 0 in (4,8], 0 above.
	h = Histogram{Bounds: []float64{1, 2, 4, 8}, Cumulative: []uint64{10, 20, 20, 20}, Count: 20}
	for _, c := range []struct {
		q, want float64
	}{
		{0.25, 0.5}, // rank 5 of the 10 in (0,1]
		{0.5, 1},    // rank 10: the top of the first bucket
		{0.75, 1.5}, // rank 15: half-way through (1,2]
		{0.99, 1.98},
		{1, 2},
	} {
		if v, above := h.Quantile(c.q); math.Abs(v-c.want) > 1e-9 || above {
			t.Errorf("q%v = %v (above %v), want %v", c.q, v, above, c.want)
		}
	}
	// Half the observations beyond the last bucket: p99 is "above 8".
	h = Histogram{Bounds: []float64{1, 2, 4, 8}, Cumulative: []uint64{0, 0, 0, 10}, Count: 20}
	if v, above := h.Quantile(0.99); v != 8 || !above {
		t.Errorf("q0.99 beyond the buckets = %v above %v, want 8 above", v, above)
	}
	if v, above := h.Quantile(0.25); math.Abs(v-6) > 1e-9 || above {
		t.Errorf("q0.25 = %v above %v, want 6 (rank 5 of 10 in (4,8])", v, above)
	}
	// Sub takes an earlier sample's buckets away.
	later := Histogram{Bounds: []float64{1, 2}, Cumulative: []uint64{5, 9}, Count: 12}
	earlier := Histogram{Bounds: []float64{1, 2}, Cumulative: []uint64{4, 6}, Count: 6}
	d := later.Sub(earlier)
	if !slices.Equal(d.Cumulative, []uint64{1, 3}) || d.Count != 6 {
		t.Errorf("Sub: %+v", d)
	}
}

// The sampler's figures from synthetic registry values: rates per second
// over the window, counts over it and since start, quantiles of the
// latency observed in the window only (summed over origins), and the ring
// bounded to its history.
func TestSamplerStats(t *testing.T) {
	s := newSynthetic(t)
	clock := time.Unix(1_700_000_000, 0)
	sm := NewSampler(SamplerConfig{Gatherer: s.reg, Interval: 5 * time.Second, History: time.Minute,
		Now: func() time.Time { return clock }})

	// Before any traffic: 30 ms observations that must not count later.
	for range 100 {
		s.latency.WithLabelValues("mesh").Observe(0.03)
	}
	s.delivered.WithLabelValues("channel").Add(1000)
	s.drops.WithLabelValues("validation_queue_full").Add(7)
	sm.Tick()
	if st := sm.Stats(time.Minute); st.Window != 0 || st.InRate != 0 {
		t.Errorf("stats with one sample at the same instant: window %v, in %v/s", st.Window, st.InRate)
	}

	// A minute of traffic, sampled every 5 s: 12 channel messages per
	// second in, 10 from peers and 2 from clients (plus DMs, which are not
	// channel messages), 30 out.
	for range 12 {
		clock = clock.Add(5 * time.Second)
		s.delivered.WithLabelValues("channel").Add(50)
		s.published.WithLabelValues("channel").Add(10)
		s.published.WithLabelValues("dm").Add(10)
		s.delivered.WithLabelValues("dm").Add(500)
		s.out.Add(150)
		sm.Tick()
	}
	s.peers.WithLabelValues("direct").Set(3)
	s.peers.WithLabelValues("relayed").Set(1)
	s.sessions.WithLabelValues("tcp").Set(2)
	s.sessions.WithLabelValues("ws").Set(5)
	s.channels.Set(4)
	s.drops.WithLabelValues("subscription_queue_full").Add(2)
	s.drops.WithLabelValues("not_queued_to_peer").Add(1)
	s.rejects.WithLabelValues("channel", "validation_failed").Add(4)
	s.rejects.WithLabelValues("dm", "invalid_signature").Add(1)
	s.dmSent.Add(10)
	s.dmDelivered.Add(9)
	// In the window: 90 observations at 5 ms (mesh) and 10 at 60 ms
	// (local): p50 in (0,10ms], p99 in (40,80ms].
	for range 90 {
		s.latency.WithLabelValues("mesh").Observe(0.005)
	}
	for range 10 {
		s.latency.WithLabelValues("local").Observe(0.06)
	}

	st := sm.Stats(time.Minute)
	if st.Window != time.Minute {
		t.Errorf("window %v, want 1m", st.Window)
	}
	if st.InRate != 12 || st.OutRate != 30 {
		t.Errorf("in %v/s out %v/s, want 12 and 30", st.InRate, st.OutRate)
	}
	if st.Drops != 3 || st.Now.Drops != 10 || st.Rejects != 5 {
		t.Errorf("drops %v (since start %v), rejects %v; want 3, 10, 5", st.Drops, st.Now.Drops, st.Rejects)
	}
	if st.Latency.Count != 100 {
		t.Errorf("%d latency observations in the window, want 100", st.Latency.Count)
	}
	// p50: rank 50 of the 90 in (0, 0.01]; p99: rank 99, the 9th of the
	// 10 in (0.04, 0.08].
	if want := 0.01 * 50 / 90; math.Abs(st.P50-want) > 1e-12 || st.P50Above {
		t.Errorf("p50 %v, want %v", st.P50, want)
	}
	if want := 0.04 + 0.04*9/10; math.Abs(st.P99-want) > 1e-12 || st.P99Above {
		t.Errorf("p99 %v, want %v", st.P99, want)
	}
	want := []string{
		"peers: 4 (3 direct, 1 relayed)",
		"sessions: 7 (2 tcp, 5 ws)",
		"channels: 4",
		"messages in: 12.00/s over the last 60s",
		"messages out: 30.00/s over the last 60s",
		"drops: 3 over the last 60s, 10 since start",
		"rejects: 5 over the last 60s, 5 since start",
		"channel latency: p50 5.6ms, p99 76ms over the last 60s (100 deliveries)",
		"DM delivery: 90% (9 delivered / 10 sent) over the last 60s",
	}
	if got := st.Lines(); !slices.Equal(got, want) {
		t.Errorf("lines:\n%q\nwant\n%q", got, want)
	}

	// 32 s later, with no traffic: the window starts at the latest sample
	// at least a minute old, and the rates fall with it.
	clock = clock.Add(32 * time.Second)
	sm.Tick()
	st = sm.Stats(time.Minute)
	if st.Window != 62*time.Second || math.Abs(st.InRate-6*60/62.0) > 1e-9 {
		t.Errorf("window %v, in %v/s; want 62s and 6 messages/s for 60 s spread over it", st.Window, st.InRate)
	}
	// The ring keeps History/Interval+1 samples.
	if n := len(sm.Samples()); n != 13 {
		t.Errorf("%d samples kept, want 13", n)
	}
	ss := sm.Samples()
	if !ss[0].Time.Before(ss[len(ss)-1].Time) {
		t.Errorf("samples not oldest first")
	}

	// A quiet window: no deliveries, no DMs.
	clock = clock.Add(2 * time.Minute)
	for range 13 {
		sm.Tick()
	}
	lines := sm.Stats(time.Minute).Lines()
	if lines[7] != "channel latency: no deliveries over the last 0s" || lines[8] != "DM delivery: no DMs over the last 0s" {
		t.Errorf("quiet lines: %q", lines)
	}
}
