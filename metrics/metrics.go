// Package metrics is a node's observability endpoint: one Prometheus
// registry per node, and the HTTP handler of the metrics listener
// (darkchatd --metrics ADDR) that serves it.
//
// Paths:
//
//	/metrics         the registry in the Prometheus text format
//	/healthz         200 while the process serves HTTP at all
//	/readyz          200 when every readiness check passes, else 503 and
//	                 one line naming the first check that failed
//	/status          a live status page: peers, reachability, sessions,
//	                 channels, and plots of the last 15 minutes (status.go)
//	/status.json     what the page shows, from the Sampler
//	/debug/pprof/... Go's profiler, only with Config.Pprof (--pprof)
//
// Ownership: the registry is the node's, created by the daemon before
// anything registers on it; p2p (libp2p's own collectors and GossipSub's)
// and gateway (sessions, deliveries, DMs) register on it through their
// Config.Registerer. Whatever else reads the node's figures (ctl stats, the
// status page) gathers from the same registry rather than keeping counts of
// its own: the Sampler (sampler.go) gathers it every few seconds into a
// ring of the last 15 minutes. The registry and the sampler exist on every
// node, with or without the listener.
//
// Metric names: darkchat's own series are prefixed darkchat_; GossipSub's
// follow the draft libp2p GossipSub metrics specification (gossipsub_);
// libp2p's keep libp2p's names (libp2p_); the Go runtime's go_ and the
// process's process_. No label value is ever a channel name, a username or
// a key: those would disclose who talks where to anyone who can scrape, and
// give an attacker unbounded cardinality.
package metrics

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a node's registry, holding the Go runtime's and the
// process's collectors (goroutines, heap, open descriptors and their
// limit).
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Readiness is the list of conditions under which the node is ready to
// serve clients (/readyz). Checks are added as the parts of the node start;
// a check returns nil when its condition holds, or an error saying what is
// missing. It is safe for concurrent use.
type Readiness struct {
	mu     sync.Mutex
	checks []check
}

type check struct {
	name string
	f    func() error
}

// Add appends a check; /readyz runs the checks in the order added.
func (r *Readiness) Add(name string, f func() error) {
	r.mu.Lock()
	r.checks = append(r.checks, check{name, f})
	r.mu.Unlock()
}

// Check returns nil when every check passes, or the first failure, as
// "<name>: <what is missing>". A Readiness without checks is not ready:
// the node has not started anything yet.
func (r *Readiness) Check() error {
	r.mu.Lock()
	checks := r.checks
	r.mu.Unlock()
	if len(checks) == 0 {
		return errNothingStarted
	}
	for _, c := range checks {
		if err := c.f(); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
	}
	return nil
}

var errNothingStarted = errors.New("starting: no part of the node is up yet")

// Config configures Handler.
type Config struct {
	// Gatherer is what /metrics serves: the node's registry.
	Gatherer prometheus.Gatherer
	// Ready decides /readyz; nil is never ready.
	Ready *Readiness
	// Pprof serves Go's profiler under /debug/pprof/. It is for an
	// operator who opts in (--pprof): a profile costs CPU and shows the
	// node's internals, so it never runs by default.
	Pprof bool
	// Sampler, if set, feeds the live status page: /status and
	// /status.json.
	Sampler *Sampler
	// Status returns what the status page shows of the node itself (its
	// ID, reachability and peers); nil shows none of it.
	Status func() NodeStatus
}

// Handler returns the metrics listener's HTTP handler. Any other path is
// 404.
func Handler(cfg Config) http.Handler {
	if cfg.Ready == nil {
		cfg.Ready = &Readiness{}
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{
		// A collector that fails (a closed host, a transient procfs
		// error) costs its own series, not the whole scrape.
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		plain(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := cfg.Ready.Check(); err != nil {
			plain(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
		plain(w, http.StatusOK, "ready")
	})
	if cfg.Sampler != nil {
		statusHandlers(mux, cfg.Sampler, cfg.Status)
	}
	if cfg.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

func plain(w http.ResponseWriter, status int, line string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintln(w, line)
}
