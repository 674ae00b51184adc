package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// latencyRate is the sender's pace: 1,000 messages per second.
const latencyRate = 1000

func runLatency(ctx context.Context, e *Env) ([]Result, error) {
	n := pick(e, 1500, 10000)
	l, err := startLine(ctx, benchChannel, benchGatewayConfig())
	if err != nil {
		return nil, err
	}
	defer l.close()
	send, err := loggedInClients(ctx, l.a.tcpAddr, 1, "s", benchChannel)
	if err != nil {
		return nil, err
	}
	defer closeAll(send)
	recv, err := loggedInClients(ctx, l.c.tcpAddr, 1, "r", benchChannel)
	if err != nil {
		return nil, err
	}
	defer closeAll(recv)
	if err := l.warmUp(ctx, send[0], "s0"); err != nil {
		return nil, err
	}
	if err := l.settle(ctx); err != nil {
		return nil, err
	}
	e.progress("line A–B–C up; %d messages at %d/s from A to C", n, latencyRate)

	var lat []time.Duration
	var delivered float64
	err = e.profile(func() (err error) {
		lat, delivered, err = measureLatency(ctx, send[0], recv[0], n)
		return err
	})
	if err != nil {
		return nil, err
	}
	base, err := pingPong(ctx, n)
	if err != nil {
		return nil, fmt.Errorf("TCP ping-pong: %w", err)
	}
	e.progress("darkchat p50 %.3f ms p99 %.3f ms p999 %.3f ms; TCP ping-pong p50 %.3f ms p99 %.3f ms",
		ms(percentile(lat, 50)), ms(percentile(lat, 99)), ms(percentile(lat, 99.9)), ms(percentile(base, 50)), ms(percentile(base, 99)))

	results := latencyResults(lat, base, delivered,
		fmt.Sprintf("%d messages at %d/s, one sender on A, one receiver on C; one-way client-to-client delay", n, latencyRate))
	if delivered < 100 {
		return results, fmt.Errorf("%w: %.2f%% delivered", ErrAssertion, delivered)
	}
	return results, nil
}

// latencyResults reports the p50, p99 and p999 of the one-way delays lat
// beside the same quantiles of the ping-pong round trips base.
func latencyResults(lat, base []time.Duration, delivered float64, note string) []Result {
	var results []Result
	for _, p := range []struct {
		name string
		q    float64
		t    *target
	}{{"p50", 50, nil}, {"p99", 99, ptr(valueAtMost(2, "ms"))}, {"p999", 99.9, ptr(valueAtMost(5, "ms"))}} {
		r := newResult("latency", p.name+"_ms", ms(percentile(lat, p.q)), "ms",
			"raw loopback TCP ping-pong round trip, same pace", ms(percentile(base, p.q)), p.t)
		r.DeliveredPct = pct(delivered)
		r.Note = note
		results = append(results, r)
	}
	return results
}

// pace calls send(i) for i in [0, n) at rate per second, on schedule from
// start (a late send does not shift the following ones).
func pace(n, rate int, stop <-chan struct{}, send func(i int) error) error {
	start := time.Now()
	period := time.Second / time.Duration(rate)
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * period)); d > 0 {
			select {
			case <-time.After(d):
			case <-stop:
				return errors.New("stopped")
			}
		}
		if err := send(i); err != nil {
			return err
		}
	}
	return nil
}

// measureLatency sends n messages at latencyRate from sender and returns
// the sorted one-way delays at receiver and the share delivered.
func measureLatency(ctx context.Context, sender, receiver *protoClient, n int) ([]time.Duration, float64, error) {
	return measureLatencyAt(ctx, sender, receiver, benchChannel, n, latencyRate)
}

// measureLatencyAt is measureLatency on channel at rate messages a second.
func measureLatencyAt(ctx context.Context, sender, receiver *protoClient, channel string, n, rate int) ([]time.Duration, float64, error) {
	sentAt := make([]atomic.Int64, n)
	lat := make([]time.Duration, 0, n)
	var delivered atomic.Int64
	stalled := make(chan struct{})
	var once sync.Once
	stall := func() {
		once.Do(func() {
			close(stalled)
			sender.setReadDeadline(time.Unix(1, 0))
			receiver.setReadDeadline(time.Unix(1, 0))
		})
	}
	stop := watchdog(ctx, 10*time.Second, delivered.Load, stall)
	defer stop()

	var wg sync.WaitGroup
	var recvErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		recvErr = receiveSeqs(receiver, 'm', n, func(seq int) {
			lat = append(lat, time.Since(time.Unix(0, sentAt[seq].Load())))
			delivered.Add(1)
		})
	}()
	// The sender's oks are drained on the side; errors end the run.
	var okErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for got := 0; got < n; {
			f, err := sender.next()
			if err != nil {
				okErr = err
				return
			}
			switch {
			case isType(f, "ok"):
				got++
			case isType(f, "error"):
				okErr = fmt.Errorf("sender: %s", f)
				stall()
				return
			}
		}
	}()
	buf := make([]byte, 0, 512)
	sendErr := pace(n, rate, stalled, func(i int) error {
		m, err := signedMessage(sender.key, channel, "s0", makeBody('m', i))
		if err != nil {
			return err
		}
		buf = appendSend(buf[:0], &m)
		sentAt[i].Store(time.Now().UnixNano())
		return sender.write(buf)
	})
	wg.Wait()
	stop()
	sender.setReadDeadline(time.Time{})
	receiver.setReadDeadline(time.Time{})
	slices.Sort(lat)
	pctDelivered := 100 * float64(delivered.Load()) / float64(n)
	if err := errors.Join(sendErr, recvErr, okErr); err != nil {
		return lat, pctDelivered, fmt.Errorf("%w: %v", ErrAssertion, err)
	}
	return lat, pctDelivered, nil
}

// pingPong measures round trips of 256-byte messages over one loopback TCP
// connection to an echo goroutine, n of them at latencyRate.
func pingPong(ctx context.Context, n int) ([]time.Duration, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	msg := make([]byte, 256)
	reply := make([]byte, len(msg))
	rtts := make([]time.Duration, 0, n)
	err = pace(n, latencyRate, ctx.Done(), func(int) error {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		t := time.Now()
		if _, err := c.Write(msg); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, reply); err != nil {
			return err
		}
		rtts = append(rtts, time.Since(t))
		return nil
	})
	slices.Sort(rtts)
	return rtts, err
}
