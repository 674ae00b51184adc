// Package p2p is darkchat's mesh layer: one libp2p host per node, a private
// Kademlia DHT for discovery, one GossipSub topic per chat channel, DM inbox
// topics sharded by recipient, key bundles in the DHT, and the
// NAT machinery (AutoNAT, circuit relay v2, hole punching) that lets nodes
// behind routers take part.
//
// # Ownership
//
// A Node owns its host, DHT, PubSub router and every goroutine it starts:
//
//   - the discovery loop (discovery.go) advertises the node under the
//     darkchat rendezvous key and dials peers it finds, within bounds;
//   - the event loop (events.go) watches address and connectivity changes;
//   - one reader goroutine per joined topic, chat channel or DM inbox shard
//     (channels.go), drains the GossipSub subscription and hands each
//     verified message to the topic's local members without blocking;
//   - the NAT watcher (nat.go) records reachability and relay events for
//     the `nat` report; it ends when the host's network closes;
//   - while a DM waits for a route (PublishDM), a lookup goroutine dials
//     the inbox shard's subscribers; it ends with the publisher's context.
//
// Close cancels the node's context, stops those goroutines, and closes the
// PubSub router, DHT and host in that order. It is idempotent.
//
// # Messages
//
// Users sign their own messages, so libp2p's per-message signing is off
// (StrictNoSign) and a message's ID is the SHA-256 of its bytes. The
// application's Validator runs once per message per node, inside GossipSub's
// validation pipeline, before the message is forwarded or delivered; its
// decoded result travels with the message so nothing is decoded or verified
// twice. A message the validator rejects penalises the peer that forwarded
// it through GossipSub's peer score.
package p2p
