// Package client is the darkchat client core: the client protocol of
// PROTOCOL.md (objects, framings, the login, channel-message and
// direct-message flows) driven by a Session. The command interpreter
// (package client/command) turns input lines into Session calls and its
// events into output lines; the command-line client (cmd/darkchat) and the
// browser client (cmd/darkchat-wasm, compiled with GOOS=js GOARCH=wasm)
// both use it, so the core knows nothing about terminals, files or
// sockets: transports are handed in, events go to a callback.
//
// # Layers
//
//	protocol.go   the client's names for package proto's objects, Encode
//	              and its strict, bounded Decode
//	transport*.go Transport: one object per Send/Recv. DialTCP (line framed)
//	              and DialWS (one text frame per object, gorilla/websocket);
//	              for js/wasm, transport_js.go provides DialWS over the
//	              browser's own WebSocket
//	session.go    Session: one connection. Waits for hello, logs in (signing
//	              the challenge, or waiting for a manual signature), tracks
//	              channels and unanswered sends, answers pings, reports events
//	dm.go         the Session's direct messages: publishes the user's key
//	              bundle at login and refreshes it; whois, verified and
//	              cached; seals DMs and tracks each until its receipt or
//	              timeout; opens, de-duplicates and answers incoming DMs
//	history.go    channel history (PROTOCOL.md §2.8): the Store of each
//	              channel's last HistoryKeep messages and of the IDs shown;
//	              History asks the members, late messages are reported
//	              once, and the node's history requests are answered
//	              from the Store through a queue of their own, which the
//	              writer sends when nothing else waits
//	causal.go     the causal context (PROTOCOL.md §2.11): what a sent
//	              message names, the gaps a received one shows (asked
//	              for as history after 2 s, at most every 5 s per
//	              channel), and who has seen the user's messages
//	sanitize.go   how untrusted text is made safe to print
//
// # Goroutines
//
// A Session owns one reader goroutine, which decodes objects, answers
// them (pongs, DM receipts) and calls the event callback; one writer
// goroutine, the only one that writes to the transport; and one
// housekeeping goroutine (keepalive, bundle refresh, DM receipt timeouts),
// which calls the callback too; the calls are serialised. Close stops all
// three and waits for them. The reader never waits for the node: what it
// and the caller send goes into the writer's bounded queue, and a node
// that stops reading until that queue is full ends the session rather
// than blocking anyone; a receipt whose sender's bundle is unknown waits
// in the whois's lookup and is sent by the reader when the answer
// arrives. Every method of Session is safe for concurrent use. SendDM
// waits for its whois (up to WhoisTimeout), then returns; the DM's status
// event comes later.
//
// # Trust
//
// The node is not trusted with identities: the client signs every message
// itself, verifies every signature it is shown, checks that the login
// challenge names the node it meant to reach (when told which), and treats
// every string it prints as hostile (see Sanitize). It verifies every key
// bundle against the address it asked for before sealing to it, and drops
// without a word every DM envelope that does not open, is outside the
// timestamp window (identity.DMTimestampWindow) or was seen before.
package client
