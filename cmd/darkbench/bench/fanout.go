package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"darkchat/identity"
	"darkchat/proto"
)

// fanoutWindow bounds how far the publisher may run ahead of the slowest
// subscriber, in messages, for darkchat and NATS alike. It stays well under
// the gateway's per-session queue (1,024 frames, past which a session is
// disconnected as a slow consumer).
const fanoutWindow = 256

func runFanout(ctx context.Context, e *Env) ([]Result, error) {
	clients := 1000
	m := pick(e, 500, 3000)

	node, err := startNode(benchGatewayConfig())
	if err != nil {
		return nil, err
	}
	defer node.close()
	recv, err := parallelClients(ctx, node, clients, "r", benchChannel)
	if err != nil {
		return nil, err
	}
	defer closeAll(recv)
	send, err := loggedInClients(ctx, node.tcpAddr, 1, "s", benchChannel)
	if err != nil {
		return nil, err
	}
	defer closeAll(send)
	// Messages are signed before each round, outside the timing: the
	// scenario measures delivery, and a message ID is accepted only once.
	sign := func() ([][]byte, error) {
		msgs := make([][]byte, m)
		for i := range msgs {
			cm, err := signedMessage(send[0].key, benchChannel, "s0", makeBody('m', i))
			if err != nil {
				return nil, err
			}
			msgs[i] = appendSend(nil, &cm)
		}
		return msgs, nil
	}

	ns, subs, pub, err := startNATS(ctx, clients)
	if err != nil {
		return nil, fmt.Errorf("NATS: %w", err)
	}
	defer func() {
		pub.Close()
		for _, s := range subs {
			s.Close()
		}
		ns.Shutdown()
		ns.WaitForShutdown()
	}()
	payloads := natsPayloads(send[0].key, m)
	e.progress("%d darkchat clients and %d NATS subscribers up; %d messages per round, %d rounds", clients, clients, m, e.Rounds)

	runs, err := rounds(e,
		func(r int) (measurement, error) {
			msgs, err := sign()
			if err != nil {
				return measurement{}, err
			}
			var res measurement
			err = e.profile(func() (err error) {
				res, err = fanoutDarkchat(ctx, send[0], recv, msgs)
				return err
			})
			e.progress("round %d darkchat: %.0f deliveries/s, %.2f%% delivered", r+1, res.rate, res.deliveredPct)
			return res, err
		},
		func(r int) (measurement, error) {
			res, err := fanoutNATS(ctx, pub, subs, payloads)
			e.progress("round %d NATS: %.0f deliveries/s, %.2f%% delivered", r+1, res.rate, res.deliveredPct)
			return res, err
		},
	)
	if err != nil {
		return nil, err
	}
	dark, base := medianOf(runs[0]), medianOf(runs[1])
	res := newResult("fanout", "deliveries_per_s", dark.rate, "msg/s",
		"embedded NATS server, 1,000 nats.go subscribers", base.rate, ptr(ratioAtLeast(2)))
	res.DeliveredPct, res.BaselineDeliveredPct = pct(minDelivered(runs[0])), pct(minDelivered(runs[1]))
	res.Note = fmt.Sprintf("median of %d rounds; %d messages to %d clients per round; publisher at most %d messages ahead of the slowest client",
		e.Rounds, m, clients, fanoutWindow)
	return []Result{res}, nil
}

// parallelClients opens count logged-in clients joined to channel, 16 at
// a time, with 4 KB read buffers.
func parallelClients(ctx context.Context, node *benchNode, count int, prefix, channel string) ([]*protoClient, error) {
	out := make([]*protoClient, count)
	var firstErr atomic.Pointer[error]
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				c, err := dialTCP(ctx, node.tcpAddr, nil, 4096)
				if err == nil {
					out[i] = c
					var key identity.PrivateKey
					if key, err = identity.GenerateKey(); err == nil {
						if err = c.login(key, ""); err == nil {
							err = c.join(channel, prefix+strconv.Itoa(i))
						}
					}
				}
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
				}
			}
		}()
	}
	for i := 0; i < count && firstErr.Load() == nil; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		for _, c := range out {
			if c != nil {
				c.close()
			}
		}
		return nil, *p
	}
	return out, nil
}

// fanoutCounters tracks each subscriber's deliveries and the publisher's
// distance to the slowest one.
type fanoutCounters struct {
	per       []atomic.Int64
	total     atomic.Int64
	last      atomic.Int64 // unix nanos of the last delivery
	minCached int64
}

func newFanoutCounters(n int) *fanoutCounters { return &fanoutCounters{per: make([]atomic.Int64, n)} }

func (f *fanoutCounters) got(i int) {
	f.per[i].Add(1)
	f.total.Add(1)
	f.last.Store(time.Now().UnixNano())
}

// waitWindow blocks until the slowest subscriber has all but fanoutWindow
// of the first sent messages, or stop closes.
func (f *fanoutCounters) waitWindow(sent int64, stop <-chan struct{}) error {
	for sent-f.minCached >= fanoutWindow {
		low := int64(-1)
		for i := range f.per {
			if v := f.per[i].Load(); low < 0 || v < low {
				low = v
			}
		}
		f.minCached = low
		if sent-low < fanoutWindow {
			return nil
		}
		select {
		case <-stop:
			return errors.New("subscribers stalled")
		case <-time.After(200 * time.Microsecond):
		}
	}
	return nil
}

func fanoutDarkchat(ctx context.Context, sender *protoClient, recv []*protoClient, msgs [][]byte) (measurement, error) {
	counters := newFanoutCounters(len(recv))
	stalled := make(chan struct{})
	var once sync.Once
	all := append([]*protoClient{sender}, recv...)
	stall := func() {
		once.Do(func() {
			close(stalled)
			for _, c := range all {
				c.setReadDeadline(time.Unix(1, 0))
			}
		})
	}
	stop := watchdog(ctx, 15*time.Second, counters.total.Load, stall)
	defer stop()
	var wg sync.WaitGroup
	errs := make([]error, len(recv)+2)
	for i, c := range recv {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = receiveSeqs(c, 'm', len(msgs), func(int) { counters.got(i) })
		}()
	}
	wg.Add(1)
	go func() { // the sender's oks
		defer wg.Done()
		for got := 0; got < len(msgs); {
			f, err := sender.next()
			if err != nil {
				errs[len(recv)] = fmt.Errorf("sender: %w", err)
				return
			}
			switch {
			case isType(f, "ok"):
				got++
			case isType(f, "error"):
				errs[len(recv)] = fmt.Errorf("sender: %s", f)
				stall()
				return
			}
		}
	}()
	start := time.Now()
	for i, msg := range msgs {
		if err := counters.waitWindow(int64(i), stalled); err != nil {
			errs[len(recv)+1] = err
			break
		}
		sender.queue(msg)
		if i%16 == 15 {
			sender.flush()
		}
	}
	sender.flush()
	wg.Wait()
	stop()
	for _, c := range all {
		c.setReadDeadline(time.Time{})
	}
	want := int64(len(msgs) * len(recv))
	res := measurement{deliveredPct: 100 * float64(counters.total.Load()) / float64(want)}
	if last := counters.last.Load(); last > 0 {
		res.rate = float64(counters.total.Load()) / time.Unix(0, last).Sub(start).Seconds()
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("%w: %v", ErrAssertion, err)
	}
	return res, nil
}

// natsSub is one NATS subscriber connection; its handler feeds the
// current round's counters.
type natsSub struct {
	conn  *nats.Conn
	index int
	round atomic.Pointer[natsRound]
}

type natsRound struct {
	counters *fanoutCounters
	sets     []*seqSet
}

func (s *natsSub) Close() { s.conn.Close() }

// startNATS starts an embedded NATS server on loopback with clients
// subscriber connections and a publisher connection.
func startNATS(ctx context.Context, clients int) (*natsserver.Server, []*natsSub, *nats.Conn, error) {
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, nil, nil, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, nil, nil, errors.New("server not ready within 10s")
	}
	url := ns.ClientURL()
	var subs []*natsSub
	fail := func(err error) (*natsserver.Server, []*natsSub, *nats.Conn, error) {
		for _, s := range subs {
			s.Close()
		}
		ns.Shutdown()
		return nil, nil, nil, err
	}
	for i := range clients {
		if ctx.Err() != nil {
			return fail(ctx.Err())
		}
		nc, err := nats.Connect(url, nats.NoReconnect())
		if err != nil {
			return fail(err)
		}
		s := &natsSub{conn: nc, index: i}
		subs = append(subs, s)
		if _, err := nc.Subscribe("bench", func(m *nats.Msg) {
			r := s.round.Load()
			if r == nil {
				return
			}
			if seq, ok := bodySeq(stringField(m.Data, "body"), 'm'); ok && r.sets[s.index].add(seq) {
				r.counters.got(s.index)
			}
		}); err != nil {
			return fail(err)
		}
		if err := nc.Flush(); err != nil {
			return fail(err)
		}
	}
	pub, err := nats.Connect(url, nats.NoReconnect())
	if err != nil {
		return fail(err)
	}
	return ns, subs, pub, nil
}

// natsPayloads are the darkchat message frames a node would deliver, so
// that NATS carries the same bytes.
func natsPayloads(key identity.PrivateKey, m int) [][]byte {
	out := make([][]byte, m)
	for i := range out {
		cm, _ := signedMessage(key, benchChannel, "s0", makeBody('m', i))
		out[i] = proto.AppendMessageFrame(nil, &cm)
	}
	return out
}

func fanoutNATS(ctx context.Context, pub *nats.Conn, subs []*natsSub, payloads [][]byte) (measurement, error) {
	round := &natsRound{counters: newFanoutCounters(len(subs)), sets: make([]*seqSet, len(subs))}
	for i := range round.sets {
		round.sets[i] = newSeqSet(len(payloads))
	}
	for _, s := range subs {
		s.round.Store(round)
	}
	defer func() {
		for _, s := range subs {
			s.round.Store(nil)
		}
	}()
	counters := round.counters
	want := int64(len(payloads) * len(subs))
	stalled := make(chan struct{})
	var once sync.Once
	stop := watchdog(ctx, 15*time.Second, counters.total.Load, func() { once.Do(func() { close(stalled) }) })
	defer stop()
	start := time.Now()
	var err error
	for i, p := range payloads {
		if err = counters.waitWindow(int64(i), stalled); err != nil {
			break
		}
		// Publish buffers; nats.go's flusher writes. (Flush would wait
		// for a server round trip.)
		if err = pub.Publish("bench", p); err != nil {
			break
		}
	}
	pub.Flush()
	for err == nil && counters.total.Load() < want {
		select {
		case <-stalled:
			err = errors.New("NATS subscribers stalled")
		case <-time.After(time.Millisecond):
		}
	}
	res := measurement{deliveredPct: 100 * float64(counters.total.Load()) / float64(want)}
	if last := counters.last.Load(); last > 0 {
		res.rate = float64(counters.total.Load()) / time.Unix(0, last).Sub(start).Seconds()
	}
	return res, err
}
