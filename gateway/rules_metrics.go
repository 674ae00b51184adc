package gateway

import "github.com/prometheus/client_golang/prometheus"

// What an owned channel's rules refused (RulesTable.refused), by what:
// every one is something a client or a peer can cause at will, so each is
// counted, never logged one by one.
const (
	// rulesRefusedBanned: a banned author's channel message or presence
	// record, ignored by the channel validator (not delivered, not
	// forwarded).
	rulesRefusedBanned = iota
	// rulesRefusedModerated: likewise, a non-operator's in a channel that
	// is not open.
	rulesRefusedModerated
	// rulesRefusedAnswer: a history answer carrying a banned author's
	// message, ignored whole.
	rulesRefusedAnswer
	// rulesRefusedKick: a kick signed by a key that is no operator in the
	// record the node holds.
	rulesRefusedKick
	numRulesRefusals
)

var rulesRefusalNames = [numRulesRefusals]string{"banned", "moderated", "history_answer", "kick"}

// registerRulesMetrics registers the owned channels' series on reg, read
// at scrape time from the server's rules table and state (startRules sets
// them up after New registers this).
func registerRulesMetrics(reg prometheus.Registerer, s *Server) error {
	refused := func(what int) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "darkchat_channel_rules_refused_total",
			Help: "What owned channels' rules records refused, by what: banned (a banned author's channel message or presence record, not delivered or forwarded), " +
				"moderated (a non-operator's in a channel not open to all), history_answer (an answer carrying a banned author's message), kick (signed by a key that is no operator).",
			ConstLabels: prometheus.Labels{"what": rulesRefusalNames[what]}},
			func() float64 { return float64(s.cfg.Rules.refused[what].Load()) })
	}
	republished := func(result string, f func(*rulesRepublishStats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "darkchat_channel_rules_republished_total",
			Help:        "Owned channels' rules records stored again in the DHT by the node's schedule (every 15 to 45 minutes, the channels with members on this node), by result: stored, failed.",
			ConstLabels: prometheus.Labels{"result": result}},
			func() float64 { return float64(f(&s.rulesSt.republished)) })
	}
	collectors := []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "darkchat_channel_rules_records",
			Help: "Owned channels' rules records the node holds (the greatest of each channel it carries or carried)."},
			func() float64 { return float64(s.cfg.Rules.len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "darkchat_channel_rules_max_records",
			Help: "The most rules records the node holds; when full, one is dropped to make room for another channel's (darkchat_channel_rules_evicted_total)."},
			func() float64 { return maxRulesChannels }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "darkchat_channel_rules_evicted_total",
			Help: "Rules records dropped because the table was full when another channel's came; the dropped channel's is looked up again when a session joins it."},
			func() float64 { return float64(s.cfg.Rules.full.Load()) }),
		republished("stored", func(r *rulesRepublishStats) int64 { return r.stored.Load() }),
		republished("failed", func(r *rulesRepublishStats) int64 { return r.failed.Load() }),
	}
	for what := range numRulesRefusals {
		collectors = append(collectors, refused(what))
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// len is how many records the table holds.
func (t *RulesTable) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.held)
}
