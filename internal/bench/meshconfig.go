package bench

import (
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"regexp"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"

	"darkchat/gateway"
	"darkchat/p2p"
)

// darkchat's GossipSub configuration, replicated from p2p/gossip.go:
// p2p.New builds its own libp2p host (TCP and QUIC on real sockets, with a
// DHT) and has no option to run on a mocknet host, and the options are
// unexported. Keep these in step with p2p/gossip.go (newPubSub,
// messageID, topicValidator, peerScoreParams, channelScoreParams). Left
// out: WithDiscovery (there is no DHT on a mocknet; the topology is wired
// by hand) and the score inspector (diagnostics only).
const (
	dcPeerOutboundQueueSize = 4096
	dcValidateQueueSize     = 8192
	dcMaxTopicsPerPeer      = 1024
	dcSubscriptionBuffer    = 4096
	dcChannelTopicPrefix    = "darkchat/v1/channel/"
)

var dcTopicFilter = regexp.MustCompile(`^darkchat/v1/[a-z-]+/[^/]{1,128}$`)

func darkchatPubSub(ctx context.Context, h host.Host, tracer pubsub.RawTracer) (*pubsub.PubSub, error) {
	params, thresholds := dcPeerScoreParams()
	return pubsub.NewGossipSub(ctx, h,
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(dcMessageID),
		pubsub.WithFloodPublish(true),
		pubsub.WithPeerScore(params, thresholds),
		pubsub.WithPeerOutboundQueueSize(dcPeerOutboundQueueSize),
		pubsub.WithValidateQueueSize(dcValidateQueueSize),
		pubsub.WithValidateWorkers(1),
		pubsub.WithSubscriptionFilter(pubsub.WrapLimitSubscriptionFilter(
			pubsub.NewRegexpSubscriptionFilter(dcTopicFilter), dcMaxTopicsPerPeer)),
		pubsub.WithRawTracer(tracer),
		pubsub.WithMaxMessageSize(max(1<<20, 4*p2p.DefaultMaxMessageSize)),
	)
}

func dcMessageID(m *pb.Message) string {
	h := sha256.New()
	h.Write([]byte(m.GetTopic()))
	h.Write([]byte{0})
	h.Write(m.Data)
	return string(h.Sum(nil))
}

func dcPeerScoreParams() (*pubsub.PeerScoreParams, *pubsub.PeerScoreThresholds) {
	_, loopback, _ := net.ParseCIDR("127.0.0.0/8")
	params := &pubsub.PeerScoreParams{
		Topics:                      map[string]*pubsub.TopicScoreParams{},
		TopicScoreCap:               100,
		AppSpecificScore:            func(peer.ID) float64 { return 0 },
		AppSpecificWeight:           1,
		IPColocationFactorWeight:    -10,
		IPColocationFactorThreshold: 8,
		IPColocationFactorWhitelist: []*net.IPNet{loopback},
		BehaviourPenaltyWeight:      -10,
		BehaviourPenaltyThreshold:   6,
		BehaviourPenaltyDecay:       pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:               time.Second,
		DecayToZero:                 0.01,
		RetainScore:                 10 * time.Minute,
	}
	thresholds := &pubsub.PeerScoreThresholds{
		GossipThreshold:             -500,
		PublishThreshold:            -1000,
		GraylistThreshold:           -2500,
		AcceptPXThreshold:           10,
		OpportunisticGraftThreshold: 5,
	}
	return params, thresholds
}

func dcChannelScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight:                    1,
		TimeInMeshWeight:               0.01,
		TimeInMeshQuantum:              time.Second,
		TimeInMeshCap:                  100,
		FirstMessageDeliveriesWeight:   1,
		FirstMessageDeliveriesDecay:    pubsub.ScoreParameterDecay(10 * time.Minute),
		FirstMessageDeliveriesCap:      50,
		InvalidMessageDeliveriesWeight: -100,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
	}
}

// dcTopicValidator is p2p's topicValidator around gateway.ChannelValidator:
// strict decoding, channel, timestamp window, the one signature check,
// then de-duplication by author and message ID and by content.
func dcTopicValidator(channel string, dedup *dcDedup) pubsub.ValidatorEx {
	validate := gateway.ChannelValidator(nil, gateway.DefaultTimestampWindow, nil)
	return func(_ context.Context, _ peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		payload, err := validate(channel, m.Data)
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
