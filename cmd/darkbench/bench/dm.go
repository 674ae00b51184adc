package bench

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"darkchat/identity"
	"darkchat/proto"
)

// dmPair is a sender on node A and its recipient on node B.
type dmPair struct {
	sender    *protoClient
	recipient *protoClient
	bundle    identity.KeyBundle
	dmKey     identity.DMPrivateKey
}

func runDMThroughput(ctx context.Context, e *Env) ([]Result, error) {
	// window bounds the DMs awaiting dm_sent per sender; e2eWindow the DMs
	// a sender may have sent that its recipient has not opened yet.
	const pairs, window, e2eWindow = 2, 64, 256
	n := pick(e, 600, 6000)
	boundTime := pick(e, 500*time.Millisecond, 3*time.Second)

	a, err := startNode(benchGatewayConfig())
	if err != nil {
		return nil, err
	}
	defer a.close()
	b, err := startNode(benchGatewayConfig())
	if err != nil {
		return nil, err
	}
	defer b.close()
	if err := connect(ctx, a, b); err != nil {
		return nil, err
	}
	ps, err := dmPairs(ctx, a, b, pairs)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, p := range ps {
			p.sender.close()
			p.recipient.close()
		}
	}()
	// One DM per pair first: the sending node finds the recipient's inbox
	// shard subscribers before its first DM to that shard.
	if _, err := measureDMs(ctx, ps, 'w', 1, 1, 1); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	e.progress("nodes A and B up, %d senders on A, %d recipients on B; %d DMs per round, %d rounds", pairs, pairs, n, e.Rounds)

	runs, err := rounds(e,
		func(r int) (measurement, error) {
			var m measurement
			err := e.profile(func() (err error) {
				m, err = measureDMs(ctx, ps, 'm', n, window, e2eWindow)
				if err != nil {
					err = fmt.Errorf("%w; node loss counters: %s", err, lossReport("AB", a, b))
				}
				return err
			})
			e.progress("round %d darkchat: %.0f DMs/s, %.2f%% opened", r+1, m.rate, m.deliveredPct)
			return m, err
		},
		func(r int) (measurement, error) {
			rate, err := sealOpenBound(boundTime)
			e.progress("round %d seal+open loop (%d goroutines): %.0f DMs/s", r+1, gomaxprocs(), rate)
			return measurement{rate, 100}, err
		},
	)
	if err != nil {
		return nil, err
	}
	dark, base := medianOf(runs[0]), medianOf(runs[1])
	res := newResult("dm-throughput", "dms_per_s", dark.rate, "msg/s",
		"bare SealDM+OpenDM loop, GOMAXPROCS goroutines", base.rate, ptr(ratioAtLeast(0.9)))
	res.DeliveredPct = pct(minDelivered(runs[0]))
	res.Note = fmt.Sprintf("median of %d rounds; %d DMs per round, %d sender→recipient pairs across nodes A→B, at most %d awaiting dm_sent per sender",
		e.Rounds, n, pairs, window)
	return []Result{res}, nil
}

// dmPairs logs in count recipients on b (publishing their key bundles) and
// count senders on a.
func dmPairs(ctx context.Context, a, b *benchNode, count int) ([]dmPair, error) {
	var out []dmPair
	fail := func(err error) ([]dmPair, error) {
		for _, p := range out {
			if p.sender != nil {
				p.sender.close()
			}
			if p.recipient != nil {
				p.recipient.close()
			}
		}
		return nil, err
	}
	for range count {
		var p dmPair
		rkey, err := identity.GenerateKey()
		if err != nil {
			return fail(err)
		}
		if p.bundle, err = identity.NewKeyBundle(rkey, time.Now(), time.Hour); err != nil {
			return fail(err)
		}
		if p.dmKey, err = rkey.DMKey(); err != nil {
			return fail(err)
		}
		raw, err := p.bundle.Marshal()
		if err != nil {
			return fail(err)
		}
		if p.recipient, err = dialTCP(ctx, b.tcpAddr, nil, 0); err != nil {
			return fail(err)
		}
		out = append(out, p)
		if err := p.recipient.login(rkey, base64.StdEncoding.EncodeToString(raw)); err != nil {
			return fail(err)
		}
		skey, err := identity.GenerateKey()
		if err != nil {
			return fail(err)
		}
		if out[len(out)-1].sender, err = dialTCP(ctx, a.tcpAddr, nil, 0); err != nil {
			return fail(err)
		}
		if err := out[len(out)-1].sender.login(skey, ""); err != nil {
			return fail(err)
		}
	}
	return out, nil
}

// measureDMs has every sender seal and send n DMs to its recipient, which
// opens them, and returns DMs opened per second across all pairs.
func measureDMs(ctx context.Context, ps []dmPair, prefix byte, n, window, e2eWindow int) (measurement, error) {
	var opened, last atomic.Int64
	stalled := make(chan struct{})
	var once sync.Once
	stall := func() {
		once.Do(func() {
			close(stalled)
			for _, p := range ps {
				p.sender.setReadDeadline(time.Unix(1, 0))
				p.recipient.setReadDeadline(time.Unix(1, 0))
			}
		})
	}
	stop := watchdog(ctx, 20*time.Second, opened.Load, stall)
	defer stop()
	errs := make([]error, 2*len(ps))
	var wg sync.WaitGroup
	start := time.Now()
	for i, p := range ps {
		wg.Add(2)
		var pairOpened atomic.Int64
		go func() {
			defer wg.Done()
			errs[2*i] = receiveDMs(p.recipient, p.dmKey, prefix, n, func() {
				pairOpened.Add(1)
				opened.Add(1)
				last.Store(time.Now().UnixNano())
			})
		}()
		go func() {
			defer wg.Done()
			errs[2*i+1] = sendDMs(p.sender, p.bundle, prefix, n, window, stalled, func(sent int) bool {
				return int64(sent)-pairOpened.Load() >= int64(e2eWindow)
			})
		}()
	}
	wg.Wait()
	stop()
	for _, p := range ps {
		p.sender.setReadDeadline(time.Time{})
		p.recipient.setReadDeadline(time.Time{})
	}
	m := measurement{deliveredPct: 100 * float64(opened.Load()) / float64(n*len(ps))}
	if l := last.Load(); l > 0 {
		m.rate = float64(opened.Load()) / time.Unix(0, l).Sub(start).Seconds()
	}
	if err := errors.Join(errs...); err != nil {
		return m, fmt.Errorf("%w: %.2f%% opened; first error: %v", ErrAssertion, m.deliveredPct, firstLine(err))
	}
	return m, nil
}

// sendDMs seals and sends n DMs, at most window of them awaiting dm_sent.
// ahead(sent) reports whether the sender must wait for its recipient
// before sending more (the end-to-end window).
func sendDMs(c *protoClient, to identity.KeyBundle, prefix byte, n, window int, stalled <-chan struct{}, ahead func(sent int) bool) error {
	return windowedSend(c, "DM sender", "dm_sent", n, window, stalled, ahead, func(buf []byte, seq int) ([]byte, error) {
		env, _, err := identity.SealDM(c.key, to, "sender", makeBody(prefix, seq), time.Now())
		if err != nil {
			return nil, err
		}
		// Sealing costs far more than encoding: proto.Encode will do.
		obj, err := proto.Encode(proto.NewDM(strconv.Itoa(seq), env))
		return append(buf, obj...), err
	})
}

// receiveDMs opens DMs until n distinct ones with prefix arrived.
func receiveDMs(c *protoClient, key identity.DMPrivateKey, prefix byte, n int, got func()) error {
	set := newSeqSet(n)
	env := make([]byte, 0, identity.MaxEnvelopeSize)
	for set.unique < n {
		f, err := c.next()
		if err != nil {
			return fmt.Errorf("DM recipient: %d of %d: %w", set.unique, n, err)
		}
		switch {
		case isType(f, "dm"):
			env, err = base64.StdEncoding.AppendDecode(env[:0], stringField(f, "envelope"))
			if err != nil {
				return fmt.Errorf("DM recipient: envelope: %w", err)
			}
			dm, err := identity.OpenDM(key, env)
			if err != nil {
				return fmt.Errorf("DM recipient: %w", err)
			}
			if seq, ok := bodySeq([]byte(dm.Body), prefix); ok && set.add(seq) {
				got()
			}
		case isType(f, "error"):
			return fmt.Errorf("DM recipient: %s", f)
		case isType(f, "ping"):
			c.write(proto.EncodedPong)
		}
	}
	return nil
}

// sealOpenBound is the bare cryptography of a DM: sign and seal, open and
// verify, on GOMAXPROCS goroutines.
func sealOpenBound(d time.Duration) (float64, error) {
	sender, err := identity.GenerateKey()
	if err != nil {
		return 0, err
	}
	rkey, err := identity.GenerateKey()
	if err != nil {
		return 0, err
	}
	bundle, err := identity.NewKeyBundle(rkey, time.Now(), time.Hour)
	if err != nil {
		return 0, err
	}
	dmKey, err := rkey.DMKey()
	if err != nil {
		return 0, err
	}
	body := makeBody('m', 0)
	return parallelRate(d, func(int) error {
		env, _, err := identity.SealDM(sender, bundle, "sender", body, time.Now())
		if err != nil {
			return err
		}
		_, err = identity.OpenDM(dmKey, env)
		return err
	})
}
