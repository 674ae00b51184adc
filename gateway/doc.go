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
// # Limits
//
// Every piece of state a client can make the node hold is bounded by a
// named Config limit (limits.go): connections per source address and per
// node, counted from accept on both ports before a byte is read, with the
// connection attempts of a source that floods them thinned out in the
// kernel (a socket filter on the listening sockets) so that it cannot keep
// the accept queues full; unfinished HTTP connections by
// HandshakeTimeout; channels per session,
// per source and per node, with new channels paced to what the node's mesh
// peers accept. Refusals an attacker can cause are counted and logged as a
// summary line a minute.
//
// # WebSocket
//
// gorilla/websocket does the handshake; the session then reads and writes
// frames on the socket itself (ws.go), failing the connection as RFC 6455
// says (1002 for framing, 1003 for binary, 1007 for text that is not
// UTF-8, 1009 for size) and closing it with a code that fits why it ends.
//
// # Validation
//
// The gateway checks what it can cheaply (joined channel, username, body
// size, timestamp window, rate) and leaves the signature to the mesh
// validator (ChannelValidator), which runs exactly once per message on each
// node, for local publications too.
package gateway
