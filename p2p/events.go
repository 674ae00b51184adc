package p2p

import (
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
)

// startEvents subscribes to the host's event bus and starts the goroutine
// that reacts to address and connectivity changes, and logs the guard's
// summaries.
func (n *Node) startEvents() error {
	sub, err := n.host.EventBus().Subscribe([]any{
		new(event.EvtLocalAddressesUpdated),
		new(event.EvtPeerConnectednessChanged),
	})
	if err != nil {
		return fmt.Errorf("subscribe to host events: %w", err)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer sub.Close()
		var last []ma.Multiaddr
		summary := time.NewTicker(guardSummaryInterval)
		defer summary.Stop()
		for {
			select {
			case <-n.ctx.Done():
				return
			case <-summary.C:
				n.guard.summarize()
				n.drops.summarize()
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				switch e := e.(type) {
				case event.EvtLocalAddressesUpdated:
					addrs := n.Addrs()
					if !slices.EqualFunc(addrs, last, func(a, b ma.Multiaddr) bool { return a.Equal(b) }) {
						last = addrs
						if n.cfg.OnAddrsChanged != nil {
							n.cfg.OnAddrsChanged(addrs)
						}
					}
				case event.EvtPeerConnectednessChanged:
					if e.Connectedness == network.Connected {
						n.kick()
					} else {
						n.guard.forget(e.Peer)
					}
				}
			}
		}
	}()
	return nil
}
