// Package proto is the darkchat client protocol (PROTOCOL.md) in one place:
// its version, the objects a client and a node exchange, the error codes and
// which of them end a session, the limits a node announces and their
// defaults, and the one spelling of binary values. The gateway, the client,
// the client's test peer (tstest/clienttest) and the benchmark all import
// it; none of them declares a wire type, a code or a limit of its own.
//
// # Protocol flow
//
// A client connects to a node's TCP gateway (one JSON object per line,
// "\n"-terminated, a "\r" before it ignored) or WebSocket gateway (one
// object per text frame at /ws). Then:
//
//   - The node sends Hello: its protocol Version, its peer ID, a login
//     challenge fresh for this connection, and the session Limits. A node
//     that refuses the connection sends an Error (too_many_sessions or
//     node_full) instead and closes it.
//   - The client answers Login: its Ed25519 public key, its signature over
//     the login statement of the challenge (identity.SignLogin) and,
//     optionally, its key bundle. Before Welcome the node accepts only
//     login and ping.
//   - The node answers Welcome, or an Error and closes the session.
//   - The client then sends, pipelined if it likes, Join, Leave, Send,
//     Whois, DM, Bundle and Ping. The node answers each request exactly
//     once, in order: Joined, Left, OK, Bundle, DMSent, Pong, or an Error
//     naming the channel, message ID, DM ref or key it concerns.
//   - At any time the node sends Message (a verified channel message), DM
//     (an envelope for this user), Ping, or an Error. After an error whose
//     Code closes the session (Code.Closes) the node closes it.
//
// # Encoding
//
// Every object is a JSON object whose first field is "type" (Encode writes
// it so, and the benchmark relies on it). Field names are lowercase and
// matched exactly: a field spelled in any other case is an unknown field,
// and unknown fields are ignored, so later versions can add some. Objects
// nest at most MaxDepth levels. Binary values are lowercase hex (the hex
// policy, hex.go); key bundles and DM envelopes are standard padded base64.
// Timestamps are integers, Unix milliseconds.
//
// # Decoders
//
// Decode is the strict decoder of any object: sizes, names, hex and base64
// are checked against PROTOCOL.md; the client uses it on everything a node
// sends. DecodeRequest is the node's decoder of a client request into the
// flat Request: the common shape goes through a decoder written by hand
// (DecodeFlatRequest), everything else through the exact-case reference,
// and the two are fuzzed against each other. AppendMessageFrame writes the
// Message object a node sends for every channel message, by hand, fuzzed
// against encoding/json.
package proto
