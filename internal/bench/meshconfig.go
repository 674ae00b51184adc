package bench

import (
	"context"
	"errors"
	"sync"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"darkchat/gateway"
	"darkchat/p2p"
)

// darkchat's GossipSub configuration comes from p2p.MeshOptions: p2p.New
// builds its own libp2p host (TCP and QUIC on real sockets, with a DHT) and
// cannot run on a mocknet host, so the mesh benchmark builds the router
// itself with the same options. Left out: discovery (there is no DHT on a
// mocknet; the topology is wired by hand) and the score inspector.
const dcSubscriptionBuffer = 4096

var dcChannelTopicPrefix = p2p.ChannelTopic("")

func darkchatPubSub(ctx context.Context, h host.Host, tracer pubsub.RawTracer) (*pubsub.PubSub, error) {
	opts := append(p2p.MeshOptions(p2p.DefaultMaxMessageSize), pubsub.WithRawTracer(tracer))
	return pubsub.NewGossipSub(ctx, h, opts...)
}

func dcChannelScoreParams() *pubsub.TopicScoreParams { return p2p.ChannelScoreParams() }

// dcTopicValidator is p2p's topicValidator around gateway.ChannelValidator:
// strict decoding, channel, timestamp window, the one signature check,
// then de-duplication by author and message ID and by content.
func dcTopicValidator(channel string, dedup *dcDedup) pubsub.ValidatorEx {
	validate := gateway.ChannelValidator(nil, gateway.DefaultTimestampWindow, gateway.AuthorLimit{}, nil)
	return func(_ context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		payload, err := validate(from, channel, m.Data)
		if err != nil {
			if errors.Is(err, p2p.ErrIgnore) {
				return pubsub.ValidationIgnore
			}
			return pubsub.ValidationReject
		}
		if k, ok := payload.(p2p.Keyed); ok {
			if !dedup.add("k" + k.DedupKey()) {
				return pubsub.ValidationIgnore
			}
		}
		dedup.add(m.ID)
		m.ValidatorData = payload
		return pubsub.ValidationAccept
	}
}

// dcDedup stands in for p2p's two-generation de-duplication set; a
// benchmark run is far shorter than its 10-minute generations, so one map
// (bounded by the run's message count) behaves the same.
type dcDedup struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

func (d *dcDedup) add(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		d.seen = make(map[string]struct{})
	}
	if _, ok := d.seen[id]; ok {
		return false
	}
	d.seen[id] = struct{}{}
	return true
}

func (d *dcDedup) reset() {
	d.mu.Lock()
	d.seen = nil
	d.mu.Unlock()
}
