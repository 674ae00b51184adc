// Package identity holds darkchat user identities (Ed25519 keys and key
// files), the canonical byte encodings that signatures cover, login
// challenges, signed channel messages, and end-to-end encrypted direct
// messages with their key bundles.
//
// # Keys and addresses
//
// A user is an Ed25519 key pair (RFC 8032). The public key is the user's
// address, written as 64 lowercase hex characters; parsers accept either case.
// Signatures are 64 bytes. Verification uses Go's crypto/ed25519 (it rejects
// a non-canonical S), and a public key of small order (one of the eight
// points of order 1, 2, 4 or 8, in any encoding) verifies no signature:
// crypto/ed25519 alone would accept signatures for it that anyone can make.
// Other implementations must accept every signature made by a conforming
// signer, which testdata/vectors.json checks.
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
//	  version 2      "darkchat/v2/channel-message\x00"  (28 bytes)
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
// A version-2 message adds its causal context (Causal): under the
// version-2 prefix, the same fields, then
//
//	prev                               8 bytes: first 8 bytes of the author's
//	                                   previous message ID in the channel
//	                                   (zeros: none)
//	count                              1 byte, 0..2
//	count × ref                        8 bytes each: newest messages of other
//	                                   authors the author had seen
//
// The wire form on the mesh (135 to 4350 bytes) is
//
//	0x01 or 0x02                       version, 1 byte
//	author .. message ID (.. refs)     the signed fields above, same bytes,
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
//
// # Direct messages
//
// Direct messages (DMs) are end-to-end encrypted with sealed sender. Nodes
// route them by a tag and never see the sender, the recipient's key, the
// username, the body, the timestamp or the message ID: those travel inside
// the ciphertext, signed by the sender. Nodes never hold a user's private
// key. The pieces, each specified below: a DM key derived from the identity
// seed, a key bundle that publishes it, a routing tag, the signed inner
// message (or receipt), and the envelope that carries it.
//
// # DM keys
//
// A user's DM key pair is for HPKE (RFC 9180) KEM MLKEM768-X25519 (KEM ID
// 0x647a, "X-Wing": ML-KEM-768 combined with X25519, draft-ietf-hpke-pq),
// derived from the Ed25519 seed, so the key file and the browser's export
// still hold one 32-byte secret:
//
//	ikm  = HKDF-SHA256(secret = seed, salt = none, info = "darkchat/v1/dm-kem-key", L = 32)
//	pair = DeriveKeyPair(ikm)
//
// DeriveKeyPair is RFC 9180's, as crypto/hpke implements it for this KEM:
// dk = the first 32 bytes of SHAKE256(ikm || "HPKE-v1" || "KEM" || 0x647a
// || 0x000d || "DeriveKeyPair" || 0x0020); the private key is dk, expanded
// with SHAKE256(dk) into a 64-byte ML-KEM-768 seed (FIPS 203 d || z) and
// then a 32-byte X25519 scalar. The public key (DMPublicKey, 1216 bytes) is
// SerializePublicKey: the ML-KEM-768 encapsulation key (1184 bytes) then
// the X25519 public key (32 bytes). ParseDMPublicKey rejects another length,
// the all-zero key, a non-canonical ML-KEM key (a coefficient >= q), and an
// X25519 key of small order (no DM could be sealed to it).
// The separate HKDF label keeps the DM key independent of the Ed25519 key;
// testdata/dm_vectors.json pins ikm and the public key for fixed seeds.
//
// # Key bundles
//
// A key bundle publishes a user's DM public key, signed by the identity key.
// The identity signs
//
//	"darkchat/v1/key-bundle\x00"    23 bytes
//	identity public key            32 bytes
//	len(DM key) || DM public key   4 + 1216 bytes
//	issued                         8 bytes, int64 Unix milliseconds
//	expires                        8 bytes, int64 Unix milliseconds
//
// and the wire form (KeyBundleSize, 1333 bytes) is
//
//	0x01                           version, 1 byte
//	identity .. expires            the signed fields above, without the prefix
//	signature                      64 bytes
//
// Transports bound a bundle at MaxKeyBundleSize (1536 bytes). Unmarshal is
// strict (version, exact lengths, a parseable DM key, no trailing bytes) and
// requires 0 < expires - issued <= 7 days (MaxKeyBundleTTL). Verify(expect,
// now) accepts a bundle only if identity == expect, now < expires, issued
// <= now + 5 minutes (KeyBundleClockSkew), and the signature verifies. Of
// two valid bundles of one identity the newest wins (Newer): the greater
// issued, then the greater expires, then the greater DM key bytes, then the
// greater signature, so every node keeps the same one.
//
// # DM routing tags
//
//	tag   = first 16 bytes of SHA-256("darkchat/v1/dm-tag\x00" || recipient public key)
//	shard = big-endian uint16(tag[0:2]) mod 64 (DMShards)
//
// 64 divides 65536, so the shards are exactly uniform over tags.
//
// # Inner messages and receipts
//
// A message (kind 1) is signed over
//
//	"darkchat/v1/dm\x00"             15 bytes
//	sender public key              32 bytes
//	recipient public key           32 bytes
//	len(username) || username      4 + 1..32 bytes (username rules, or "anonymous")
//	len(body) || body              4 + 0..4096 bytes (UTF-8, MaxDMBodyLen)
//	timestamp                      8 bytes, int64 Unix milliseconds
//	message ID                     16 random bytes
//
// and a receipt (kind 2), which acknowledges the message whose ID is ack,
// over
//
//	"darkchat/v1/receipt\x00"        20 bytes
//	sender public key              32 bytes (the receipt's sender: the
//	                               message's recipient)
//	recipient public key           32 bytes
//	ack                            16 bytes
//	timestamp                      8 bytes
//	receipt ID                     16 random bytes
//
// The inner encoding (DM.MarshalBinary; 162 to 4289 bytes for a message,
// 169 for a receipt) is
//
//	kind                           1 byte: 0x01 message, 0x02 receipt
//	sender .. ID                   the signed fields above, without the prefix
//	signature                      64 bytes
//
// The decoder is strict like the channel-message decoder, and also requires
// a zero Ack in a message and a non-zero ack, empty username and empty body
// in a receipt (a receipt encodes neither).
//
// # DM envelopes
//
// What travels on the mesh is the envelope:
//
//	0x01                           version, 1 byte
//	tag                            16 bytes, DMTag(recipient)
//	enc                            1120 bytes, HPKE encapsulated key
//	                               (ML-KEM-768 ciphertext 1088 || X25519 share 32)
//	ciphertext                     padded plaintext + 16 bytes (AEAD tag)
//
// sealed with HPKE base mode, KEM MLKEM768-X25519 (0x647a), KDF HKDF-SHA256
// (0x0001), AEAD ChaCha20-Poly1305 (0x0003), one Seal per context with
//
//	info = "darkchat/v1/dm-envelope\x00" || recipient identity key (32)
//	aad  = the envelope's first 17 bytes (version || tag)
//
// to the DM public key in the recipient's verified key bundle. The
// plaintext is padded:
//
//	len(inner)                     4 bytes, big-endian
//	inner                          the inner encoding
//	zero bytes                     up to the smallest bucket that holds it
//
// with buckets (padded plaintext sizes) 512, 1024, 2048, 4096 and 8192
// bytes, so envelopes are exactly 1665, 2177, 3201, 5249 or 9345 bytes
// (EnvelopeSizes; MaxEnvelopeSize 9345). Receipts and messages of up to
// 347 - len(username) body bytes fall in the first bucket; the largest
// message (4289-byte inner) in the last.
//
// Nodes call EnvelopeTag, which checks the size and version and returns the
// tag, publish the envelope on the recipient's shard and hand it only to
// sessions whose user's tag it is. OpenDM(me, envelope) checks, in order:
// size and version (ErrMalformed); tag == DMTag(me) (ErrNotForMe); HPKE
// decryption (ErrDecrypt); the padding is canonical: the length fits, the
// plaintext is the smallest bucket that holds it, every padding byte is zero
// (ErrMalformed); the inner decoding (ErrMalformed); recipient == me
// (ErrReaddressed); the sender's signature (ErrBadSignature). OpenDM has no
// clock and no history: the receiving client drops DMs whose timestamp is
// more than DMTimestampWindow (2 minutes) from its clock and DMs whose
// sender and ID (DedupKey) it has already seen, answers each new message
// with a receipt (SealReceipt to the sender's verified bundle) and shows
// "delivered" for each receipt that acknowledges a message it sent.
//
// # DM security reasoning
//
// Sealed sender: outside the ciphertext there is only the version, the tag
// and the envelope size, which names one of five buckets. The tag is a hash
// of the recipient's key, so a node routes without reading the key from the
// envelope; anyone who already knows a user's key can compute the tag, which
// is inherent in routing by recipient and is what lets nodes deliver at all.
// Nothing outside identifies the sender: HPKE base mode uses a fresh
// ephemeral key per envelope and is not authenticated; the sender is
// authenticated inside, by the Ed25519 signature that OpenDM verifies.
//
// Recipient binding, twice. The HPKE info holds the protocol version and the
// recipient's identity key, and the AAD holds the version and tag, so an
// envelope opens only as a version-1 DM for that recipient: a node that
// rewrites the tag, or an envelope sealed to one user's DM key with another
// user's identity, fails to decrypt. The sender's signature covers the
// recipient key, so a recipient cannot take a DM signed for them, re-encrypt
// it to a third user and have it pass as sent to that user (surreptitious
// forwarding): OpenDM refuses it with ErrReaddressed. Every field the
// recipient sees is under the signature, and the domain prefixes keep a DM,
// a receipt, a key bundle, a channel message and a login apart.
//
// Key authenticity: the address is the identity key, and the bundle is
// signed by it, so a node serving a bundle for an address cannot substitute
// its own DM key (Verify compares Identity with the address the user asked
// for). The validity period (at most 7 days) makes a bundle lapse unless
// its owner re-signs it, so abandoned identities and old formats stop being
// served; the issued-time bound keeps a bundle dated far in the future from
// winning "newest wins" until that date.
//
// Deterministic DM key: deriving the KEM key from the seed keeps one secret
// to store and back up, and every client of the user (CLI, browser) has the
// same DM key without coordination. The cost is that the DM key lives as
// long as the identity: there is no forward secrecy, so whoever steals a
// seed can also read the DMs to that user that they recorded from the mesh
// (the per-envelope ephemeral key does not help once the recipient's key
// leaks). Rotating the DM key means a new identity.
//
// Post-quantum: the KEM is a hybrid, secure if either ML-KEM-768 or X25519
// is, so envelopes recorded now stay confidential against a future quantum
// computer; the signatures are Ed25519 (authenticity only matters now).
//
// AEAD choice: ChaCha20-Poly1305 rather than AES-256-GCM because the
// browser client runs this code compiled to WebAssembly, where there is no
// AES hardware and Go's portable AES is table-based (not constant-time),
// while ChaCha20-Poly1305 is fast and constant-time in portable code. Each
// HPKE context encrypts one message, so nonce limits do not arise.
//
// Padding: buckets hide the body length up to a factor of two; the minimum
// bucket makes receipts and short messages indistinguishable. Padding is
// inside the AEAD and must be canonical, so nothing can be hidden in it.
package identity
