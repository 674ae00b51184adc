package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"darkchat/identity"
	"darkchat/proto"
)

// measurement is one timed run: a rate and the share delivered.
type measurement struct {
	rate         float64
	deliveredPct float64
}

func medianOf(ms []measurement) measurement {
	var r, d []float64
	for _, m := range ms {
		r, d = append(r, m.rate), append(d, m.deliveredPct)
	}
	return measurement{median(r), median(d)}
}

// minDelivered is the worst delivery of all rounds: an assertion holds
// only if it held every time.
func minDelivered(ms []measurement) float64 {
	worst := 100.0
	for _, m := range ms {
		worst = min(worst, m.deliveredPct)
	}
	return worst
}

const benchChannel = "bench"

// noWindow is a window no round fills: senders that never wait for their
// oks.
const noWindow = 1 << 17

func runChannelThroughput(ctx context.Context, e *Env) ([]Result, error) {
	// window bounds the sends awaiting ok per sender; e2eWindow the
	// messages sent but not yet received by the slowest receiver. The
	// mesh pushes back on its own (a node whose validation queue holds
	// enough of a peer's messages stops reading that peer, whose
	// publishers then wait; p2p/guard.go, readGate), so against nodes in
	// processes of their own senders need no window (RunExternal). Here
	// the three nodes and the six clients share one process and its
	// collector: unwindowed, the nodes deliver faster than these clients
	// read, and the clients are cut off as slow consumers. The window
	// keeps the clients within their sessions' queues (1,024 frames).
	const senders, receivers, window, e2eWindow = 4, 2, 256, 768
	n := pick(e, 4000, 40000)
	cryptoTime := pick(e, 500*time.Millisecond, 3*time.Second)

	l, err := startLine(ctx, benchChannel, benchGatewayConfig())
	if err != nil {
		return nil, err
	}
	defer l.close()
	send, err := loggedInClients(ctx, l.a.tcpAddr, senders, "s", benchChannel)
	if err != nil {
		return nil, err
	}
	defer closeAll(send)
	recv, err := loggedInClients(ctx, l.c.tcpAddr, receivers, "r", benchChannel)
	if err != nil {
		return nil, err
	}
	defer closeAll(recv)
	if err := l.warmUp(ctx, send[0], "s0"); err != nil {
		return nil, err
	}
	e.progress("line A–B–C up, %d senders on A, %d receivers on C, %d messages per round, %d rounds", senders, receivers, n, e.Rounds)

	runs, err := rounds(e,
		func(r int) (measurement, error) {
			if err := l.settle(ctx); err != nil {
				return measurement{}, err
			}
			var m measurement
			err := e.profile(func() (err error) {
				m, err = measureLine(ctx, l, send, recv, n, window, e2eWindow)
				return err
			})
			e.progress("round %d darkchat: %.0f msg/s, %.2f%% delivered", r+1, m.rate, m.deliveredPct)
			return m, err
		},
		func(r int) (measurement, error) {
			rate, err := channelCryptoBound(cryptoTime, 3)
			e.progress("round %d crypto bound (sign + 3 verifies, %d goroutines): %.0f msg/s", r+1, gomaxprocs(), rate)
			return measurement{rate, 100}, err
		},
		func(r int) (measurement, error) {
			m, err := chatExampleThroughput(ctx, n, senders, receivers)
			e.progress("round %d chat-example pubsub: %.0f msg/s, %.2f%% delivered", r+1, m.rate, m.deliveredPct)
			return m, err
		},
	)
	if err != nil {
		return nil, err
	}
	dark, bound, chat := medianOf(runs[0]), medianOf(runs[1]), medianOf(runs[2])
	note := fmt.Sprintf("median of %d rounds; %d messages/round from %d senders on A to %d receivers on C; every node verified every message once (counted); A–C connections closed by the line guard: %d; messages reaching C other than through B: %d",
		e.Rounds, n, senders, receivers, l.apart.Load(), l.cMember.bypass.Load())
	r1 := newResult("channel-throughput", "msgs_per_s", dark.rate, "msg/s",
		"crypto-bound (sign + 3 Ed25519 verifies, GOMAXPROCS goroutines)", bound.rate, ptr(ratioAtLeast(1.3)))
	r1.DeliveredPct, r1.Note = pct(minDelivered(runs[0])), note
	r2 := newResult("channel-throughput", "msgs_per_s", dark.rate, "msg/s",
		"go-libp2p-pubsub chat-example config (StrictSign + app signature validator, default queues)", chat.rate, ptr(ratioAtLeast(4)))
	r2.DeliveredPct, r2.BaselineDeliveredPct, r2.Note = pct(minDelivered(runs[0])), pct(chat.deliveredPct), note
	return []Result{r1, r2}, nil
}

func ptr[T any](v T) *T { return &v }

// firstLine keeps the first line of a joined error: one stalled receiver
// says what the others would.
func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " (and more)"
	}
	return s
}

// loggedInClients opens count TCP clients to the gateway at addr, logs
// each in with a new key and joins channel as prefix<i>.
func loggedInClients(ctx context.Context, addr string, count int, prefix, channel string) ([]*protoClient, error) {
	var out []*protoClient
	for i := range count {
		c, err := dialTCP(ctx, addr, nil, 0)
		if err != nil {
			closeAll(out)
			return nil, err
		}
		out = append(out, c)
		key, err := identity.GenerateKey()
		if err != nil {
			closeAll(out)
			return nil, err
		}
		if err := c.login(key, ""); err != nil {
			closeAll(out)
			return nil, err
		}
		if channel != "" {
			if err := c.join(channel, prefix+strconv.Itoa(i)); err != nil {
				closeAll(out)
				return nil, err
			}
		}
	}
	return out, nil
}

func closeAll(cs []*protoClient) {
	for _, c := range cs {
		c.close()
	}
}

// settle waits until the verification counters of A, B and C hold still
// (warm-up probes sent before C had joined never reach it, so they need not
// be equal), so that a measurement starts from a quiet line.
func (l *line) settle(ctx context.Context) error {
	var last [3]int64
	stableSince := time.Now()
	return waitFor(ctx, 20*time.Second, "a quiet line", func() bool {
		v := l.verified()
		if v != last {
			last, stableSince = v, time.Now()
			return false
		}
		return time.Since(stableSince) > 300*time.Millisecond
	})
}

// measureLine sends n messages from the senders (on A) and waits until
// every receiver (on C) has every one of them. Each node must have
// verified each message exactly once. Call it on a settled line, or with
// l nil for nodes outside this process (whose counters it cannot check).
func measureLine(ctx context.Context, l *line, senders, receivers []*protoClient, n, window, e2eWindow int) (measurement, error) {
	var before [3]int64
	if l != nil {
		before = l.verified()
	}
	per := n / len(senders)
	n = per * len(senders)

	var delivered, lastRecv atomic.Int64
	gate := &e2eGate{window: int64(e2eWindow), recv: make([]atomic.Int64, len(receivers))}
	if e2eWindow <= 0 {
		gate.window = math.MaxInt64
	}
	stalled := make(chan struct{})
	var stallOnce sync.Once
	stall := func() {
		stallOnce.Do(func() {
			close(stalled)
			for _, c := range append(append([]*protoClient{}, senders...), receivers...) {
				c.setReadDeadline(time.Unix(1, 0))
			}
		})
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	stop := watchdog(ctx, 15*time.Second, delivered.Load, stall)

	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(senders)+len(receivers))
	for i, c := range receivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[len(senders)+i] = receiveSeqs(c, 'm', n, func(int) {
				gate.recv[i].Add(1)
				delivered.Add(1)
				lastRecv.Store(time.Now().UnixNano())
			})
		}()
	}
	for i, c := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = sendSeqs(c, benchChannel, "s"+strconv.Itoa(i), i*per, (i+1)*per, window, gate, stalled)
		}()
	}
	wg.Wait()
	stop()
	for _, c := range append(append([]*protoClient{}, senders...), receivers...) {
		c.setReadDeadline(time.Time{})
	}
	m := measurement{deliveredPct: 100 * float64(delivered.Load()) / float64(n*len(receivers))}
	if last := lastRecv.Load(); last > 0 {
		m.rate = float64(delivered.Load()) / float64(len(receivers)) / time.Unix(0, last).Sub(start).Seconds()
	}
	if err := errors.Join(errs...); err != nil {
		counters := "not available (external nodes)"
		if l != nil {
			counters = lossReport("ABC", l.a, l.b, l.c)
		}
		return m, fmt.Errorf("%w: %.2f%% delivered; node loss counters: %s; first error: %v",
			ErrAssertion, m.deliveredPct, counters, firstLine(err))
	}
	if l == nil {
		return m, nil
	}
	after := l.verified()
	for i, name := range []string{"A", "B", "C"} {
		if got := after[i] - before[i]; got != int64(n) {
			return m, fmt.Errorf("%w: node %s verified %d messages, want %d (one per message)", ErrAssertion, name, got, n)
		}
	}
	return m, nil
}

// e2eGate bounds the messages sent and not yet received by the slowest
// receiver. Senders may overshoot it by one message each.
type e2eGate struct {
	window int64
	sent   atomic.Int64
	recv   []atomic.Int64
}

func (g *e2eGate) ahead() bool {
	low := int64(math.MaxInt64)
	for i := range g.recv {
		low = min(low, g.recv[i].Load())
	}
	return g.sent.Load()-low >= g.window
}

// sendSeqs signs and sends messages lo..hi-1 with at most window awaiting
// their ok and within the end-to-end gate, flushing whenever it would wait.
func sendSeqs(c *protoClient, channel, username string, lo, hi, window int, gate *e2eGate, stalled <-chan struct{}) error {
	ahead := func(int) bool { return gate.ahead() }
	return windowedSend(c, "sender "+username, "ok", hi-lo, window, stalled, ahead, func(buf []byte, i int) ([]byte, error) {
		m, err := signedMessage(c.key, channel, username, makeBody('m', lo+i))
		if err != nil {
			return nil, err
		}
		gate.sent.Add(1)
		return appendSend(buf, &m), nil
	})
}

// receiveSeqs reads message frames until n distinct sequence numbers with
// prefix have arrived, calling got for each new one.
func receiveSeqs(c *protoClient, prefix byte, n int, got func(seq int)) error {
	set := newSeqSet(n)
	for set.unique < n {
		f, err := c.next()
		if err != nil {
			return fmt.Errorf("receiver: %d of %d messages: %w", set.unique, n, err)
		}
		switch {
		case isType(f, "message"):
			if seq, ok := bodySeq(stringField(f, "body"), prefix); ok && set.add(seq) {
				got(seq)
			}
		case isType(f, "error"):
			return fmt.Errorf("receiver: %s", f)
		case isType(f, "ping"):
			c.write(proto.EncodedPong)
		}
	}
	return nil
}
