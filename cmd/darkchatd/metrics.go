package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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

// observability is the node's metrics listener (--metrics) and what
// /readyz checks. It starts before the node, so that /healthz answers and
// /readyz says "starting" while the peer host and gateways come up.
type observability struct {
	reg      *prometheus.Registry
	srv      *http.Server
	addr     string // the bound address
	node     atomic.Pointer[p2p.Node]
	gateways atomic.Int32 // gatewaysStarting, gatewaysListening or gatewaysClosing
}

const (
	gatewaysStarting = iota
	gatewaysListening
	gatewaysClosing
)

// startObservability listens on o.metrics and serves the metrics handler;
// it returns nil without --metrics.
func startObservability(o *options, log *slog.Logger) (*observability, error) {
	if o.metrics == "" {
		return nil, nil
	}
	ob := &observability{reg: metrics.NewRegistry()}
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
		Handler:           metrics.Handler(metrics.Config{Gatherer: ob.reg, Ready: &ready, Pprof: o.pprof}),
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
	log.Info("metrics listening", "url", "http://"+ob.addr+"/metrics", "pprof", o.pprof)
	if o.pprof {
		log.Warn("--pprof: Go's profiler is served on the metrics listener; keep it off public networks", "addr", ob.addr)
	}
	return ob, nil
}

// registerer is what the node and the gateway register their metrics on:
// nil without --metrics (an untyped nil, which they take as "no metrics").
func (ob *observability) registerer() prometheus.Registerer {
	if ob == nil {
		return nil
	}
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
	if ob == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), metricsShutdownTimeout)
	defer cancel()
	ob.srv.Shutdown(ctx)
}
