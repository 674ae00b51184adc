// Package p2p is darkchat's mesh layer: one libp2p host per node, a private
// Kademlia DHT for discovery, one GossipSub topic per chat channel, DM inbox
// topics sharded by recipient, key bundles in the DHT, and the
// NAT machinery (AutoNAT, circuit relay v2, hole punching) that lets nodes
// behind routers take part.
//
// # Ownership
//
// A Node owns its host, DHT, PubSub router and every goroutine it starts,
// all counted in one WaitGroup (Node.spawn):
//
//   - the event loop (events.go) is the node's one reader of the host's
//     event bus: it hands address, connectivity, identify, NAT-type and
//     relay events to the parts below and to the `nat` report, and logs
//     the guard's summaries;
//   - the discovery loop (discovery.go) advertises the node under the
//     darkchat rendezvous key and dials peers it finds, within bounds;
//   - the reachability loop (reach.go) re-derives the node's reachability
//     verdict when the event loop reports new evidence;
//   - the hole-punch loop (holepunch.go) retries DCUtR with relayed peers,
//     one goroutine per round;
//   - the SYN-filter loop (synfilter.go) keeps the kernel filter on the
//     peer port in step with the guard;
//   - one reader goroutine per subscribed topic, chat channel or DM inbox
//     shard (channels.go), drains the GossipSub subscription and hands each
//     verified message to the topic's local members without blocking;
//   - while a DM waits for a route (PublishDM), a lookup goroutine dials
//     the inbox shard's subscribers; it ends before PublishDM returns;
//   - AutoRelay's candidate streams (relay.go), which end when AutoRelay
//     stops looking or the node closes.
//
// Close ends the node's context and waits for all of those, then leaves
// every topic and closes the PubSub router, DHT and host, in that order.
// It is idempotent.
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
