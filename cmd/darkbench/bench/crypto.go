package bench

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"darkchat/identity"
)

// signedMessage builds and signs a channel message stamped now.
func signedMessage(key identity.PrivateKey, channel, username, body string) (identity.ChannelMessage, error) {
	m := identity.ChannelMessage{
		Channel: channel, Username: username, Body: body,
		Timestamp: time.Now().UnixMilli(), ID: identity.NewMessageID(),
	}
	if err := m.Validate(); err != nil {
		return m, err
	}
	m.Sign(key)
	return m, nil
}

// parallelRate runs op on GOMAXPROCS goroutines for d and returns
// operations per second: the bound of this machine for op.
func parallelRate(d time.Duration, op func(worker int) error) (float64, error) {
	workers := runtime.GOMAXPROCS(0)
	var total atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := int64(0)
			for time.Now().Before(deadline) {
				if err := op(w); err != nil {
					firstErr.CompareAndSwap(nil, &err)
					return
				}
				n++
			}
			total.Add(n)
		}()
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return 0, *p
	}
	return float64(total.Load()) / time.Since(start).Seconds(), nil
}

// channelCryptoBound is the signature work of one channel message across a
// line of nodes: the client's signature and one verification per node.
func channelCryptoBound(d time.Duration, nodes int) (float64, error) {
	keys := make([]identity.PrivateKey, runtime.GOMAXPROCS(0))
	for i := range keys {
		k, err := identity.GenerateKey()
		if err != nil {
			return 0, err
		}
		keys[i] = k
	}
	body := makeBody('m', 0)
	return parallelRate(d, func(w int) error {
		m, err := signedMessage(keys[w], "bench", "sender", body)
		if err != nil {
			return err
		}
		for range nodes {
			if err := m.Verify(); err != nil {
				return err
			}
		}
		return nil
	})
}

func gomaxprocs() int { return runtime.GOMAXPROCS(0) }
