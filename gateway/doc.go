// Package gateway lets plain clients into the mesh: a line-framed TCP
// listener for the command-line client and a WebSocket listener for
// browsers, speaking one protocol (PROTOCOL.md) through one session
// implementation.
//
// # Ownership
//
// A Server owns its sessions, never its listeners: ServeTCP and ServeWS take
// a listener from the caller and return when it is closed. A session has a
// reader goroutine, which decodes, validates and executes the client's
// requests in order, only while the client is active: after a quiet spell
// the reader hands the socket to the server's poller (epoll) and exits, and
// the poller starts a reader again when bytes arrive (TLS sessions and
// non-Linux platforms keep their reader). At most one writer goroutine runs
// per session, started when there is something to write and gone when the
// queue is empty. Messages from the mesh reach a session through
// DeliverMessage, which only appends the pre-encoded frame to the session's
// bounded queue.
//
// # Slow consumers
//
// A session whose queue is full when a frame arrives is disconnected with a
// slow_consumer notice (NATS's policy): dropping messages from the middle of
// a conversation would be silent loss, and blocking would slow every other
// member of the channel.
//
// # Validation
//
// The gateway checks what it can cheaply (joined channel, username, body
// size, timestamp window, rate) and leaves the signature to the mesh
// validator (ChannelValidator), which runs exactly once per message on each
// node, for local publications too.
package gateway
