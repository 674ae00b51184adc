// Package client is the darkchat client core: the client protocol of
// PROTOCOL.md (objects, framings, the login and channel-message flow) and
// the command interpreter of SPEC §5. The command-line client (cmd/darkchat)
// and the browser client (this package compiled with GOOS=js GOARCH=wasm)
// both drive it, so the core knows nothing about terminals, files or
// sockets: transports are handed in, output goes to a callback.
//
// # Layers
//
//	protocol.go   the wire objects, Encode and a strict, bounded Decode
//	transport*.go Transport: one object per Send/Recv. DialTCP (line framed)
//	              and DialWS (one text frame per object); neither is built
//	              for js/wasm, where the browser supplies its own
//	session.go    Session: one connection. Waits for hello, logs in (signing
//	              the challenge, or waiting for a manual signature), tracks
//	              channels and unanswered sends, answers pings, reports events
//	commands.go   Client: one input line → one action, output lines in the
//	              SPEC §5 formats
//	sanitize.go   how untrusted text is made safe to print
//
// # Goroutines
//
// A Session owns one reader goroutine, which decodes objects and calls the
// event callback, and one keepalive goroutine. Close stops both and waits
// for them. Every method of Session and Client is safe for concurrent use.
//
// # Trust
//
// The node is not trusted with identities: the client signs every message
// itself, verifies every signature it is shown, checks that the login
// challenge names the node it meant to reach (when told which), and treats
// every string it prints as hostile (see Sanitize).
package client
