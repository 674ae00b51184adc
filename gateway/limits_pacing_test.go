package gateway

import (
	"testing"

	"darkchat/identity"
	"darkchat/p2p"
)

// The node's own subscriptions must stay within what every mesh peer's
// guard accepts from it, or churn would get the node banned.
func TestSubscriptionPacingWithinMeshGuard(t *testing.T) {
	if subscribeRate >= p2p.SubscribeRatePerPeer {
		t.Errorf("node-wide new-subscription rate %d/s, want below the guard's %d/s", subscribeRate, p2p.SubscribeRatePerPeer)
	}
	if MaxNodeChannelsLimit+identity.DMShards+1 > p2p.MaxTopicsPerPeer {
		t.Errorf("%d channels + %d inbox shards + the history topic exceed the %d topics a peer accepts", MaxNodeChannelsLimit, identity.DMShards, p2p.MaxTopicsPerPeer)
	}
	// Nodes of the previous version accept 1024 topics and do not count
	// the history topic.
	if MaxNodeChannelsLimit+identity.DMShards > 1024 {
		t.Errorf("%d channels + %d inbox shards exceed the 1024 topics a node of the previous version accepts", MaxNodeChannelsLimit, identity.DMShards)
	}
	if DefaultMaxNodeChannels+identity.DMShards+1+subscribeBurst > p2p.SubscribeBurstPerPeer {
		t.Errorf("a default full subscription list plus the burst exceeds the guard's burst of %d", p2p.SubscribeBurstPerPeer)
	}
}
