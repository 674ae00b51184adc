package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"darkchat/metrics"
	"darkchat/p2p"
)

// metricsShutdownTimeout bounds closing the metrics listener at shutdown.
const metricsShutdownTimeout = 2 * time.Second

// metricsReadTimeout bounds a scrape's request headers: the listener is for
// a Prometheus server and a load balancer's health checks, never slow
// clients.
const metricsReadTimeout = 5 * time.Second

// observability is the node's registry, the sampler that keeps its
// headline figures (ctl stats, /status), and the metrics listener
// (--metrics) with what /readyz checks. The registry and the sampler exist
// on every node, so that ctl stats works without --metrics; only the
// listener is optional. The listener starts before the node, so that
// /healthz answers and /readyz says "starting" while the peer host and
// gateways come up.
type observability struct {
	reg      *prometheus.Registry
	sampler  *metrics.Sampler
	stop     context.CancelFunc // stops the sampler
	srv      *http.Server       // nil without --metrics
	addr     string             // the bound address, or ""
	node     atomic.Pointer[p2p.Node]
	gateways atomic.Int32 // gatewaysStarting, gatewaysListening or gatewaysClosing
}

const (
	gatewaysStarting = iota
	gatewaysListening
	gatewaysClosing
)

// startObservability creates the node's registry and starts its sampler,
// and with --metrics listens on o.metrics and serves the metrics handler.
func startObservability(o *options, log *slog.Logger) (*observability, error) {
	ob := &observability{reg: metrics.NewRegistry()}
	ob.sampler = metrics.NewSampler(metrics.SamplerConfig{Gatherer: ob.reg})
	if o.metrics == "" {
		ob.startSampler()
		return ob, nil
	}
	var ready metrics.Readiness
	ready.Add("peer host", func() error {
		if ob.node.Load() == nil {
			return errors.New("not started yet")
		}
		return nil
	})
	ready.Add("gateways", func() error {
		switch ob.gateways.Load() {
		case gatewaysStarting:
			return errors.New("not listening yet")
		case gatewaysClosing:
			return errors.New("the node is shutting down")
		}
		return nil
	})
	if peers := o.peers.Values(); len(peers) > 0 {
		// A node told to join a mesh is not ready while it is alone: its
		// clients would chat with no one.
		ready.Add("peers", func() error {
			if n := ob.node.Load(); n == nil || len(n.Peers()) == 0 {
				return fmt.Errorf("none of the %d configured peers (--peer) connected yet, nor any other", len(peers))
			}
			return nil
		})
	}
	ln, err := net.Listen("tcp", o.metrics)
	if err != nil {
		return nil, fmt.Errorf("metrics listener (--metrics): %w", err)
	}
	ob.addr = ln.Addr().String()
	ob.srv = &http.Server{
		Handler: metrics.Handler(metrics.Config{Gatherer: ob.reg, Ready: &ready, Pprof: o.pprof,
			Sampler: ob.sampler, Status: ob.status}),
		ReadHeaderTimeout: metricsReadTimeout,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := ob.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics listener failed", "err", err)
		}
	}()
	ob.startSampler()
	log.Info("metrics listening", "url", "http://"+ob.addr+"/metrics", "status", "http://"+ob.addr+"/status", "pprof", o.pprof)
	if o.pprof {
		log.Warn("--pprof: Go's profiler is served on the metrics listener; keep it off public networks", "addr", ob.addr)
	}
	return ob, nil
}

func (ob *observability) startSampler() {
	ctx, cancel := context.WithCancel(context.Background())
	ob.stop = cancel
	go ob.sampler.Run(ctx)
}

// stats is ctl stats' output: the figures over the last minute.
func (ob *observability) stats() []string {
	return ob.sampler.Stats(metrics.StatsWindow).Lines()
}

// status is what /status shows of the node beside the sampler's figures.
func (ob *observability) status() metrics.NodeStatus {
	n := ob.node.Load()
	if n == nil {
		return metrics.NodeStatus{Reachability: "starting"}
	}
	st := metrics.NodeStatus{ID: n.ID().String(), Reachability: strings.ToLower(n.Reachability().String())}
	for _, p := range n.Peers() {
		st.Peers = append(st.Peers, metrics.PeerStatus{ID: p.ID.String(), Addr: p.Addr.String(), Relayed: p.Relayed})
	}
	return st
}

// registerer is what the node and the gateway register their metrics on.
func (ob *observability) registerer() prometheus.Registerer {
	return ob.reg
}

func (ob *observability) nodeStarted(n *p2p.Node) {
	if ob != nil {
		ob.node.Store(n)
	}
}

func (ob *observability) gatewaysListening() {
	if ob != nil {
		ob.gateways.Store(gatewaysListening)
	}
}

// shuttingDown makes /readyz fail from the start of the shutdown, so that
// a load balancer stops sending clients before the gateways close.
func (ob *observability) shuttingDown() {
	if ob != nil {
		ob.gateways.Store(gatewaysClosing)
	}
}

func (ob *observability) close() {
	ob.stop()
	if ob.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), metricsShutdownTimeout)
	defer cancel()
	ob.srv.Shutdown(ctx)
}
