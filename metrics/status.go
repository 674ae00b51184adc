package metrics

import (
	"embed"
	"encoding/json"
	"math"
	"net/http"
	"time"

	"darkchat/web"
)

// The live status page of the metrics listener: /status (the page, its
// /status.js and /status.css, embedded) and /status.json, which the page
// fetches every few seconds. Both are fed by the Sampler, like ctl stats.
// The page is sent with the chat page's Content Security Policy: it runs
// only its own script and style files and fetches only from its origin.

//go:embed status/status.html status/status.js status/status.css
var statusFiles embed.FS

// NodeStatus is what the status page shows of the node beside the
// sampler's figures; the daemon reads it from its node.
type NodeStatus struct {
	ID string
	// Reachability is AutoNAT's verdict: public, private or unknown.
	Reachability string
	Peers        []PeerStatus
}

// PeerStatus is one connected peer.
type PeerStatus struct {
	ID, Addr string
	Relayed  bool // every connection goes through a circuit relay
}

// StatusJSON is the document /status.json serves.
type StatusJSON struct {
	ID           string     `json:"id"`
	Reachability string     `json:"reachability"`
	NowMs        int64      `json:"now_ms"` // the node's clock
	Peers        []PeerJSON `json:"peers"`
	PeersDirect  int        `json:"peers_direct"`
	PeersRelayed int        `json:"peers_relayed"`
	SessionsTCP  int        `json:"sessions_tcp"`
	SessionsWS   int        `json:"sessions_ws"`
	Channels     int        `json:"channels"`
	// The last minute, as ctl stats: its lines, and their figures.
	Stats   []string    `json:"stats"`
	Minute  MinuteJSON  `json:"minute"`
	History HistoryJSON `json:"history"`
}

// PeerJSON is a peer and its path: "direct" or "relayed".
type PeerJSON struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
	Path string `json:"path"`
}

// MinuteJSON is the figures of the last minute; a latency quantile is null
// without deliveries.
type MinuteJSON struct {
	WindowSeconds        float64  `json:"window_seconds"`
	MessagesInPerSecond  float64  `json:"messages_in_per_second"`
	MessagesOutPerSecond float64  `json:"messages_out_per_second"`
	Drops                float64  `json:"drops"`
	Rejects              float64  `json:"rejects"`
	LatencyP50Seconds    *float64 `json:"latency_p50_seconds"`
	LatencyP99Seconds    *float64 `json:"latency_p99_seconds"`
	// LatencyP99Above: the p99 is beyond the largest bucket, which
	// latency_p99_seconds then is.
	LatencyP99Above bool    `json:"latency_p99_above"`
	DMSent          float64 `json:"dm_sent"`
	DMDelivered     float64 `json:"dm_delivered"`
}

// HistoryJSON is the plots' data over the last 15 minutes, one point per
// sample after the first: at T[i] (Unix milliseconds), the message rates
// and drops since the sample before, and the latency p99 over the minute
// before T[i] (null without deliveries in it).
type HistoryJSON struct {
	IntervalSeconds      float64    `json:"interval_seconds"`
	SpanSeconds          float64    `json:"span_seconds"`
	T                    []int64    `json:"t"`
	MessagesInPerSecond  []float64  `json:"messages_in_per_second"`
	MessagesOutPerSecond []float64  `json:"messages_out_per_second"`
	Drops                []float64  `json:"drops"`
	LatencyP99Seconds    []*float64 `json:"latency_p99_seconds"`
}

// Status builds /status.json's document from the sampler's ring, a sample
// taken now, and node.
func (s *Sampler) Status(node NodeStatus) StatusJSON {
	now := s.Current()
	samples := s.Samples()
	minute := Compute(baseline(samples, now.Time.Add(-StatsWindow), now), now)
	// The sample taken now ends the history unless a kept one is too
	// close before it for a rate to mean much.
	if len(samples) == 0 || now.Time.Sub(samples[len(samples)-1].Time) >= time.Second {
		samples = append(samples, now)
	}
	out := StatusJSON{
		ID:           node.ID,
		Reachability: node.Reachability,
		NowMs:        now.Time.UnixMilli(),
		Peers:        []PeerJSON{},
		PeersDirect:  now.PeersDirect,
		PeersRelayed: now.PeersRelayed,
		SessionsTCP:  now.SessionsTCP,
		SessionsWS:   now.SessionsWS,
		Channels:     now.Channels,
		Stats:        minute.Lines(),
		Minute: MinuteJSON{
			WindowSeconds:        minute.Window.Seconds(),
			MessagesInPerSecond:  minute.InRate,
			MessagesOutPerSecond: minute.OutRate,
			Drops:                minute.Drops,
			Rejects:              minute.Rejects,
			LatencyP50Seconds:    finite(minute.P50),
			LatencyP99Seconds:    finite(minute.P99),
			LatencyP99Above:      minute.P99Above,
			DMSent:               minute.DMSent,
			DMDelivered:          minute.DMDelivered,
		},
		History: HistoryJSON{
			IntervalSeconds:      s.interval.Seconds(),
			SpanSeconds:          float64(len(s.ring)-1) * s.interval.Seconds(),
			T:                    []int64{},
			MessagesInPerSecond:  []float64{},
			MessagesOutPerSecond: []float64{},
			Drops:                []float64{},
			LatencyP99Seconds:    []*float64{},
		},
	}
	for _, p := range node.Peers {
		path := "direct"
		if p.Relayed {
			path = "relayed"
		}
		out.Peers = append(out.Peers, PeerJSON{ID: p.ID, Addr: p.Addr, Path: path})
	}
	h := &out.History
	for i := 1; i < len(samples); i++ {
		step := Compute(samples[i-1], samples[i])
		trailing := Compute(baseline(samples[:i+1], samples[i].Time.Add(-StatsWindow), samples[i]), samples[i])
		h.T = append(h.T, samples[i].Time.UnixMilli())
		h.MessagesInPerSecond = append(h.MessagesInPerSecond, step.InRate)
		h.MessagesOutPerSecond = append(h.MessagesOutPerSecond, step.OutRate)
		h.Drops = append(h.Drops, step.Drops)
		h.LatencyP99Seconds = append(h.LatencyP99Seconds, finite(trailing.P99))
	}
	return out
}

func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// statusHandlers adds /status, its assets and /status.json to mux.
func statusHandlers(mux *http.ServeMux, s *Sampler, node func() NodeStatus) {
	if node == nil {
		node = func() NodeStatus { return NodeStatus{Reachability: "unknown"} }
	}
	page := func(name, ctype string, isPage bool) http.HandlerFunc {
		body, err := statusFiles.ReadFile("status/" + name)
		if err != nil {
			panic(err) // the files are embedded above
		}
		return func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Type", ctype)
			h.Set("Cache-Control", "no-cache")
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "no-referrer")
			if isPage {
				h.Set("Content-Security-Policy", web.ContentSecurityPolicy(r.Host))
				h.Set("X-Frame-Options", "DENY")
			}
			w.Write(body)
		}
	}
	mux.Handle("GET /status", page("status.html", "text/html; charset=utf-8", true))
	mux.Handle("GET /status.js", page("status.js", "text/javascript; charset=utf-8", false))
	mux.Handle("GET /status.css", page("status.css", "text/css; charset=utf-8", false))
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		json.NewEncoder(w).Encode(s.Status(node()))
	})
}
