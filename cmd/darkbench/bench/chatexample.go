package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"darkchat/identity"
)

// chatExampleThroughput measures the A–B–C line built the way
// go-libp2p-pubsub's chat example builds it: libp2p.New with a TCP
// listener, pubsub.NewGossipSub with no options (StrictSign: every message
// signed with the host key and verified at every node; queues of 32
// RPCs, a validation queue of 32, subscription buffers of 32) and, as
// a chat whose users sign their messages needs, the application signature
// checked in a topic validator registered with default options (run
// asynchronously). Publishers are goroutines on A, subscribers on C; B
// subscribes, as every chat-example peer does. Messages dropped by the
// default queues are counted, not retried.
func chatExampleThroughput(ctx context.Context, n, senders, receivers int) (measurement, error) {
	// Every goroutine started here ends when ctx is cancelled, which the
	// deferred cancel does before wg.Wait returns (defers run last first).
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	const topicName = "chat-room:bench"
	var hosts []host.Host
	defer func() {
		for _, h := range hosts {
			h.Close()
		}
	}()
	type node struct {
		topic *pubsub.Topic
		subs  []*pubsub.Subscription
	}
	var nodes []node
	for i := range 3 {
		h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
		if err != nil {
			return measurement{}, err
		}
		hosts = append(hosts, h)
		ps, err := pubsub.NewGossipSub(ctx, h)
		if err != nil {
			return measurement{}, err
		}
		if err := ps.RegisterTopicValidator(topicName, appSignatureValidator); err != nil {
			return measurement{}, err
		}
		t, err := ps.Join(topicName)
		if err != nil {
			return measurement{}, err
		}
		nd := node{topic: t}
		nsubs := 1
		if i == 2 {
			nsubs = receivers
		}
		for range nsubs {
			s, err := t.Subscribe()
			if err != nil {
				return measurement{}, err
			}
			nd.subs = append(nd.subs, s)
		}
		nodes = append(nodes, nd)
	}
	for _, pair := range [][2]int{{0, 1}, {1, 2}} {
		a, b := hosts[pair[0]], hosts[pair[1]]
		if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
			return measurement{}, err
		}
	}

	keys := make([]identity.PrivateKey, senders)
	for i := range keys {
		k, err := identity.GenerateKey()
		if err != nil {
			return measurement{}, err
		}
		keys[i] = k
	}

	// B's subscription is drained like a chat peer's would be.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if _, err := nodes[1].subs[0].Next(ctx); err != nil {
				return
			}
		}
	}()

	// Warm up: probes until C has received them for more than a GossipSub
	// heartbeat, so that B's mesh holds C.
	probeCtx, probeCancel := context.WithTimeout(ctx, 30*time.Second)
	var probes atomic.Int64
	probeDone := make(chan struct{})
	go func() {
		defer close(probeDone)
		for {
			msg, err := nodes[2].subs[0].Next(probeCtx)
			if err != nil {
				return
			}
			if hasSeqBody(msg.Data, 'w') {
				probes.Add(1)
			}
		}
	}()
	var firstProbe time.Time
	for i := 0; probeCtx.Err() == nil; i++ {
		if probes.Load() > 0 && firstProbe.IsZero() {
			firstProbe = time.Now()
		}
		if !firstProbe.IsZero() && time.Since(firstProbe) > 1200*time.Millisecond {
			break
		}
		m, err := signedMessage(keys[0], benchChannel, "s0", makeBody('w', i))
		if err != nil {
			break
		}
		wire, _ := m.MarshalBinary()
		nodes[0].topic.Publish(probeCtx, wire)
		time.Sleep(50 * time.Millisecond)
	}
	probeCancel()
	<-probeDone
	if firstProbe.IsZero() {
		return measurement{}, errors.New("chat-example line: no probe reached C within 30s")
	}

	var delivered, lastRecv atomic.Int64
	runCtx, runCancel := context.WithCancel(ctx)
	defer runCancel()
	stop := watchdog(runCtx, 3*time.Second, delivered.Load, runCancel)
	defer stop()
	per := n / senders
	n = per * senders
	start := time.Now()
	for _, sub := range nodes[2].subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			set := newSeqSet(n)
			var m identity.ChannelMessage
			for set.unique < n {
				msg, err := sub.Next(runCtx)
				if err != nil {
					return
				}
				if m.UnmarshalBinary(msg.Data) != nil {
					continue
				}
				if seq, ok := bodySeq([]byte(m.Body), 'm'); ok && set.add(seq) {
					delivered.Add(1)
					lastRecv.Store(time.Now().UnixNano())
				}
			}
		}()
	}
	var pubErr atomic.Pointer[error]
	var pubWG sync.WaitGroup
	for i := range senders {
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			for seq := i * per; seq < (i+1)*per && runCtx.Err() == nil; seq++ {
				m, err := signedMessage(keys[i], benchChannel, fmt.Sprintf("s%d", i), makeBody('m', seq))
				if err == nil {
					var wire []byte
					if wire, err = m.MarshalBinary(); err == nil {
						err = nodes[0].topic.Publish(runCtx, wire)
					}
				}
				if err != nil && runCtx.Err() == nil {
					pubErr.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	pubWG.Wait()
	// Receivers end when they have everything, or when the watchdog sees
	// no delivery for 3 s (the default queues drop messages under load).
	waitFor(ctx, 3*time.Minute, "chat-example receivers", func() bool {
		return delivered.Load() == int64(n*receivers) || runCtx.Err() != nil
	})
	runCancel()
	if p := pubErr.Load(); p != nil {
		return measurement{}, fmt.Errorf("chat-example publish: %w", *p)
	}
	m := measurement{deliveredPct: 100 * float64(delivered.Load()) / float64(n*receivers)}
	if last := lastRecv.Load(); last > 0 {
		m.rate = float64(delivered.Load()) / float64(receivers) / time.Unix(0, last).Sub(start).Seconds()
	}
	return m, nil
}

// appSignatureValidator checks the application's own signature on a
// message, as a chat whose users sign their messages must.
func appSignatureValidator(_ context.Context, _ peer.ID, msg *pubsub.Message) bool {
	var m identity.ChannelMessage
	return m.UnmarshalBinary(msg.Data) == nil && m.Verify() == nil
}
