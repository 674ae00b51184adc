package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// External names two running darkchat nodes to measure instead of nodes
// built in this process: the TCP gateway the senders use and the one the
// receivers use. Nodes is how many nodes verify each message on the way
// (3 for a line A–B–C), which sets the crypto bound.
type External struct {
	SendAddr, RecvAddr string
	Nodes              int
}

// RunExternal runs channel-throughput and latency against the gateways in
// x, each beside the baselines that do not need nodes of their own (the
// crypto bound and loopback TCP ping-pong). The nodes must let clients
// send fast: start them with a raised --rate and --burst.
// names selects channel-throughput and/or latency; empty means both.
func RunExternal(ctx context.Context, e *Env, x External, names []string, emit func(Result)) error {
	if x.Nodes < 1 {
		return errors.New("external: at least one node verifies each message")
	}
	want := func(name string) bool { return len(names) == 0 || slices.Contains(names, name) }
	for _, n := range names {
		if n != "channel-throughput" && n != "latency" {
			return fmt.Errorf("external: scenario %q needs nodes of its own; only channel-throughput and latency run against running nodes", n)
		}
	}
	const senders, receivers, window, e2eWindow = 4, 2, noWindow, 0 // as channel-throughput: senders do not window
	e.scenario, e.startedAt = "external", time.Now()
	send, err := loggedInClients(ctx, x.SendAddr, senders, "s", benchChannel)
	if err != nil {
		return fmt.Errorf("senders at %s: %w", x.SendAddr, err)
	}
	defer closeAll(send)
	recv, err := loggedInClients(ctx, x.RecvAddr, receivers, "r", benchChannel)
	if err != nil {
		return fmt.Errorf("receivers at %s: %w", x.RecvAddr, err)
	}
	defer closeAll(recv)
	if err := probeRoute(ctx, send[0], recv); err != nil {
		return err
	}
	e.progress("route %s → %s carries the channel; %d senders, %d receivers", x.SendAddr, x.RecvAddr, senders, receivers)

	n := pick(e, 4000, 40000)
	var errs []error
	var runs []measurement
	var bound []float64
	for r := range e.Rounds {
		if !want("channel-throughput") {
			break
		}
		m, err := measureLine(ctx, nil, send, recv, n, window, e2eWindow)
		e.progress("round %d darkchat: %.0f msg/s, %.2f%% delivered", r+1, m.rate, m.deliveredPct)
		if err != nil {
			errs = append(errs, err)
			break
		}
		runs = append(runs, m)
		b, err := channelCryptoBound(pick(e, 500*time.Millisecond, 3*time.Second), x.Nodes)
		if err != nil {
			return err
		}
		e.progress("round %d crypto bound (sign + %d verifies): %.0f msg/s", r+1, x.Nodes, b)
		bound = append(bound, b)
	}
	if len(runs) > 0 {
		res := newResult("channel-throughput", "msgs_per_s", medianOf(runs).rate, "msg/s",
			fmt.Sprintf("crypto-bound (sign + %d Ed25519 verifies, GOMAXPROCS goroutines)", x.Nodes), median(bound), ptr(ratioAtLeast(1.3)))
		res.DeliveredPct = pct(minDelivered(runs))
		res.Note = fmt.Sprintf("external nodes: senders at %s, receivers at %s; median of %d rounds of %d messages", x.SendAddr, x.RecvAddr, len(runs), n)
		emit(res)
	}

	if !want("latency") {
		return errors.Join(errs...)
	}
	e.scenario, e.startedAt = "latency", time.Now()
	ln := pick(e, 1500, 10000)
	lat, delivered, err := measureLatency(ctx, send[0], recv[0], ln)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	base, err := pingPong(ctx, ln)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, r := range latencyResults(lat, base, delivered,
		fmt.Sprintf("external nodes: %d messages at %d/s from %s to %s", ln, latencyRate, x.SendAddr, x.RecvAddr)) {
		emit(r)
	}
	return errors.Join(errs...)
}

// probeRoute sends probe messages until every receiver has one, so that
// the measurement starts on a channel the nodes have found a route for,
// then keeps probing for 1.5 s while GossipSub's mesh settles.
func probeRoute(ctx context.Context, sender *protoClient, receivers []*protoClient) error {
	return probeRouteOn(ctx, benchChannel, sender, receivers)
}

// probeRouteOn is probeRoute on channel.
func probeRouteOn(ctx context.Context, channel string, sender *protoClient, receivers []*protoClient) error {
	return probeRouteEvery(ctx, channel, sender, receivers, 50*time.Millisecond)
}

// probeRouteEvery is probeRouteOn sending a probe every interval (at
// least 200 ms keeps within the nodes' default rate limit).
func probeRouteEvery(ctx context.Context, channel string, sender *protoClient, receivers []*protoClient, interval time.Duration) error {
	got := make([]chan struct{}, len(receivers))
	for i, c := range receivers {
		got[i] = make(chan struct{})
		go func() {
			c.setReadDeadline(time.Now().Add(40 * time.Second))
			for {
				f, err := c.next()
				if err != nil {
					return // the probe loop times out and reports it
				}
				if isType(f, "message") {
					close(got[i])
					return
				}
			}
		}()
	}
	allGot := func() bool {
		for _, ch := range got {
			select {
			case <-ch:
			default:
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(30 * time.Second)
	var routed time.Time
	for i := 0; routed.IsZero() || time.Since(routed) < 1500*time.Millisecond; i++ {
		if time.Now().After(deadline) {
			return errors.New("external: no probe message reached the receivers within 30 s; are both nodes in one mesh?")
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		m, err := signedMessage(sender.key, channel, "s0", makeBody('w', i))
		if err != nil {
			return err
		}
		if err := sender.write(appendSend(nil, &m)); err != nil {
			return err
		}
		if _, err := sender.expect("ok", 10*time.Second); err != nil {
			return fmt.Errorf("external: probe: %w (a rate_limited error means the nodes need a raised --rate and --burst)", err)
		}
		if routed.IsZero() && allGot() {
			routed = time.Now()
		}
		time.Sleep(interval) // the probe's pace
	}
	for _, c := range receivers {
		c.setReadDeadline(time.Time{})
	}
	return nil
}
