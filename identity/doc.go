// Package identity holds darkchat user identities (Ed25519 keys and key
// files), the canonical byte encodings that signatures cover, login
// challenges, and signed channel messages.
//
// # Keys and addresses
//
// A user is an Ed25519 key pair (RFC 8032). The public key is the user's
// address, written as 64 lowercase hex characters; parsers accept either case.
// Signatures are 64 bytes. Verification uses Go's crypto/ed25519 (it rejects
// a non-canonical S); other implementations must accept every signature
// made by a conforming signer, which testdata/vectors.json checks.
//
// # Key file
//
// The key file (and the browser client's export) is two lines of text:
//
//	darkchat-identity-v1\n
//	<64 lowercase hex characters: the 32-byte Ed25519 seed>\n
//
// Readers also accept "\r\n" line ends and a missing final "\n"; they
// reject anything else, including files over 4096 bytes. The file is created
// with mode 0600 (atomically, never overwriting an existing one), and loading
// refuses a file whose mode gives group or others any access
// (mode & 0o077 != 0), as ssh does: the fix is "chmod 600 <file>".
//
// # Canonical encoding
//
// Every signature covers
//
//	domain prefix || fields
//
// never JSON text. Fields are encoded as:
//
//   - variable-length (strings, byte strings): 4-byte big-endian length, then
//     the bytes (strings are UTF-8);
//   - fixed-size (public keys 32 bytes, message IDs 16 bytes, signatures 64
//     bytes): the raw bytes;
//   - integers: 8-byte big-endian two's complement (timestamps are int64 Unix
//     milliseconds); a version byte is 1 byte.
//
// The domain prefixes are ASCII ending in one NUL byte:
//
//	login            "darkchat/v1/login\x00"            (18 bytes)
//	channel message  "darkchat/v1/channel-message\x00"  (28 bytes)
//	DM inner message "darkchat/v1/dm\x00"               (15 bytes)
//	key bundle       "darkchat/v1/key-bundle\x00"       (23 bytes)
//	receipt          "darkchat/v1/receipt\x00"          (20 bytes)
//
// # Login
//
// On connect the gateway sends a challenge string:
//
//	dcl1.<node-id>.<nonce>.<expiry>
//
// where node-id is the serving node's libp2p peer ID (1 to 128 ASCII letters
// and digits), nonce is 16 random bytes as 32 lowercase hex characters, and
// expiry is the Unix time in seconds, in decimal without sign or leading
// zeros, after which the challenge is void (issued about a minute ahead). The
// whole string is at most 256 bytes. Example:
//
//	dcl1.12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN.000102030405060708090a0b0c0d0e0f.1700000060
//
// The client answers with its public key and a signature over the login
// statement:
//
//	"darkchat/v1/login\x00"        18 bytes
//	len(challenge)                 4 bytes, big-endian
//	challenge                      the challenge string's bytes, as received
//	client public key              32 bytes
//
// The gateway accepts the login if the signature is 64 bytes, the challenge
// is well formed, names this node, has not expired, and the signature verifies
// with the presented key.
//
// # Channel messages
//
// The author signs
//
//	"darkchat/v1/channel-message\x00"  28 bytes
//	author public key                  32 bytes
//	len(channel) || channel            4 + 1..64 bytes
//	len(username) || username          4 + 1..32 bytes
//	len(body) || body                  4 + 0..4096 bytes (UTF-8)
//	timestamp                          8 bytes, int64 Unix milliseconds
//	message ID                         16 random bytes
//
// The wire form on the mesh (135 to 4325 bytes) is
//
//	0x01                               version, 1 byte
//	author .. message ID               the signed fields above, same bytes,
//	                                   without the domain prefix
//	signature                          64 bytes
//
// Decoders are strict: unknown version, a length over its limit or past the
// end of the input, trailing bytes, a channel name not matching
// [a-z0-9][a-z0-9._-]{0,63}, a username not made of 1 to 32 characters from
// [A-Za-z0-9._-] starting with a letter or digit, or a body that is not valid
// UTF-8 are all rejected. Decoding does not verify the signature; each node
// verifies once, before forwarding and delivering.
//
// # Security reasoning
//
// Domain separation: each purpose has its own prefix, so a signature made for
// one purpose (a channel message) can never verify as another (a login, a DM,
// a key bundle, a receipt), whatever the field contents. The package exports
// no way to sign bytes without a prefix. The length prefixes make each
// encoding injective, so bytes cannot be moved between fields (for example
// from username into body) without breaking the signature.
//
// Login binding: the signed statement covers the challenge, and with it the
// node's peer ID, a fresh nonce and the expiry, plus the client's public key.
// A signature therefore cannot be used at another node (wrong node ID), later
// (expired), or with another key. Because the challenge names the node, a
// client that knows the peer ID it meant to reach should check it before
// signing; that is what stops a malicious node from relaying another node's
// challenge.
//
// Single use is enforced by the gateway, not by this package: it issues one
// challenge per connection, verifies the answer against the challenge it
// issued (never one echoed back by the client), and forgets it after one
// attempt. With a fresh 128-bit nonce per connection, a captured signature is
// worthless on any other connection.
//
// Channel messages: the signature covers every field a reader sees, including
// the channel (a message cannot be re-posted to another channel) and the
// username (a label chosen by the author; the key is the identity). The
// timestamp and random ID let receivers drop stale messages and duplicates;
// those checks need a clock and history and live with the receivers.
package identity
