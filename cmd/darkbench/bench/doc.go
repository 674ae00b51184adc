// Package bench is darkchat's benchmark suite, run by cmd/darkbench. Every
// scenario measures darkchat and a baseline in the same process, on the same
// machine, in the same run, and reports their ratio, so that the numbers say
// something on a shared, noisy machine: absolute figures drift with the
// neighbours' load, ratios of paired runs much less.
//
// # Scenarios
//
//   - channel-throughput: protocol clients → TCP gateway → three real nodes
//     in a line (A–B–C, libp2p on loopback) → gateway → clients. Every node
//     verifies every message (counted in a wrapped validator) and every
//     receiving client gets every message (asserted). Baselines: the
//     machine's Ed25519 bound for the path (one signature and three
//     verifications per message on GOMAXPROCS goroutines) and the same
//     topology built with go-libp2p-pubsub as its chat example configures
//     it (StrictSign plus an application signature checked in a validator,
//     default queues).
//   - latency: one client on A sends 1,000 messages/s to one client on C;
//     percentiles of the one-way delay. Baseline: ping-pong round trips on
//     a raw loopback TCP connection at the same pace.
//   - session-memory: heap and stack per idle logged-in session, TCP and
//     WebSocket; the clients live in a child process (this binary re-run
//     with DARKBENCH_CHILD set). Baseline: a bare gorilla/websocket echo
//     server with default buffers.
//   - fanout: one node, 1,000 clients in one channel. Baseline: an embedded
//     NATS server with 1,000 subscribers.
//   - mesh-scale: 100 nodes on libp2p's mocknet with darkchat's GossipSub
//     options (replicated here: p2p.New builds its own TCP/QUIC host and
//     cannot run on a mocknet); the highest publish rate still delivering
//     99.9% with p99 under 100 ms. Baseline: stock go-libp2p-pubsub.
//   - dm-throughput: DMs sealed by clients on node A, routed through the
//     inbox shards to node B and opened by the recipients. Baseline: a bare
//     seal+open loop.
//   - login-rate: connect, hello, sign, login, welcome, close, per second.
//     Baseline: the signature bound of a login (sign + verify).
//
// # Flow control
//
// A node acknowledges a channel message (ok) or a DM (dm_sent) once it
// has accepted it locally; nothing tells a client that a relay further on
// is falling behind. Senders that outrun the next node overflow the
// publishing node's per-peer GossipSub queue (4,096 RPCs) and those
// messages are lost for every node behind it (counted in p2p.Stats as
// NotSent). The throughput scenarios therefore bound the messages in flight
// end to end (sent, not yet received by the slowest receiver) as a client
// application with receipts would, and measure the rate the path sustains
// with every message delivered; fanout bounds its publisher the same way
// for darkchat and NATS alike.
//
// # Bounds
//
// Every loop has a count or a deadline, every wait a timeout, and a
// watchdog ends a measurement that stops making progress; a run that did
// not deliver everything it had to reports it as an assertion failure.
package bench
