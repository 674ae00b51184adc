package p2p

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// rateLimitedHandler passes on at most logBurstPerMessage records with the
// same message text per logRateInterval, and when an interval in which it
// dropped some has passed, one summary record saying how many. GossipSub
// logs some conditions once per message (a full decaying-tag queue, for
// one), which an attacker can turn into a line per message it sends; with
// this the log stays bounded however hard the node is hit.
type rateLimitedHandler struct {
	next  slog.Handler
	state *logRateState
}

const (
	logRateInterval    = 30 * time.Second
	logBurstPerMessage = 5
	// maxLogMessages bounds the distinct message texts tracked per
	// interval; records of texts beyond it are counted together.
	maxLogMessages = 256
)

type logRateState struct {
	mu      sync.Mutex
	start   time.Time
	counts  map[string]int // records per message text this interval
	dropped int
}

func newRateLimitedHandler(next slog.Handler) *rateLimitedHandler {
	return &rateLimitedHandler{next: next, state: &logRateState{counts: make(map[string]int)}}
}

func (h *rateLimitedHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *rateLimitedHandler) Handle(ctx context.Context, r slog.Record) error {
	s := h.state
	s.mu.Lock()
	var summary int
	if r.Time.Sub(s.start) >= logRateInterval {
		summary = s.dropped
		s.start, s.dropped = r.Time, 0
		clear(s.counts)
	}
	key := r.Message
	if _, ok := s.counts[key]; !ok && len(s.counts) >= maxLogMessages {
		key = ""
	}
	s.counts[key]++
	pass := s.counts[key] <= logBurstPerMessage
	if !pass {
		s.dropped++
	}
	s.mu.Unlock()
	if summary > 0 {
		sr := slog.NewRecord(r.Time, slog.LevelWarn, "log lines suppressed: more than a few with the same message in an interval", 0)
		sr.AddAttrs(slog.Int("suppressed", summary), slog.Duration("interval", logRateInterval))
		h.next.Handle(ctx, sr)
	}
	if !pass {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *rateLimitedHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &rateLimitedHandler{next: h.next.WithAttrs(attrs), state: h.state}
}

func (h *rateLimitedHandler) WithGroup(name string) slog.Handler {
	return &rateLimitedHandler{next: h.next.WithGroup(name), state: h.state}
}

// routineHandler logs at Debug what GossipSub logs as a warning but is
// routine for a lone or small mesh, where nothing is for an operator to
// do: "bootstrap: error providing rendezvous for topic" comes every few
// seconds per topic while the DHT has no peer to provide to (a first node,
// a node whose peers are all down). Records below next's level are
// dropped here, before rateLimitedHandler counts them.
type routineHandler struct{ next slog.Handler }

// routineGossipSub lists the GossipSub messages routineHandler demotes.
var routineGossipSub = map[string]bool{
	"bootstrap: error providing rendezvous for topic": true,
}

func (h routineHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h routineHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level > slog.LevelDebug && routineGossipSub[r.Message] {
		if !h.next.Enabled(ctx, slog.LevelDebug) {
			return nil
		}
		r.Level = slog.LevelDebug
	}
	return h.next.Handle(ctx, r)
}

func (h routineHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return routineHandler{h.next.WithAttrs(attrs)}
}

func (h routineHandler) WithGroup(name string) slog.Handler {
	return routineHandler{h.next.WithGroup(name)}
}
