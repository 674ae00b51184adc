package identity_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"darkchat/identity"
)

// Run "go test ./identity -run TestVectors -update" to regenerate
// testdata/vectors.json after a deliberate change of an encoding.
var update = flag.Bool("update", false, "rewrite testdata/vectors.json from the implementation")

const vectorsPath = "testdata/vectors.json"

// vectorFile is the layout of testdata/vectors.json. The browser build reads
// the same file, so every field name says what it holds; "_hex" fields are
// lowercase hex of raw bytes, other strings are used as UTF-8 text.
type vectorFile struct {
	Format          string                 `json:"format"`
	Description     []string               `json:"description"`
	Domains         []domainVector         `json:"domains"`
	Keys            []keyVector            `json:"keys"`
	Logins          []loginVector          `json:"logins"`
	ChannelMessages []channelMessageVector `json:"channel_messages"`
	NegativeCases   []negativeVector       `json:"negative_cases"`
}

type domainVector struct {
	Purpose   string `json:"purpose"`
	Text      string `json:"text"`
	PrefixHex string `json:"prefix_hex"`
}

type keyVector struct {
	SeedHex      string `json:"seed_hex"`
	PublicKeyHex string `json:"public_key_hex"`
	KeyFileText  string `json:"key_file_text"`
}

type loginVector struct {
	Name                string `json:"name"`
	SeedHex             string `json:"seed_hex"`
	PublicKeyHex        string `json:"public_key_hex"`
	NodeID              string `json:"node_id"`
	NonceHex            string `json:"nonce_hex"`
	ExpiryUnixSeconds   int64  `json:"expiry_unix_seconds"`
	Challenge           string `json:"challenge"`
	VerifyAtUnixSeconds int64  `json:"verify_at_unix_seconds"`
	SignedStatementHex  string `json:"signed_statement_hex"`
	SignatureHex        string `json:"signature_hex"`
}

type channelMessageVector struct {
	Name            string `json:"name"`
	SeedHex         string `json:"seed_hex"`
	AuthorHex       string `json:"author_public_key_hex"`
	Channel         string `json:"channel"`
	Username        string `json:"username"`
	Body            string `json:"body"`
	TimestampUnixMs int64  `json:"timestamp_unix_ms"`
	MessageIDHex    string `json:"message_id_hex"`
	// Version 2 only: the causal context.
	Version        int      `json:"version"`
	PrevHex        string   `json:"prev_hex,omitempty"`
	RefsHex        []string `json:"refs_hex,omitempty"`
	SignedBytesHex string   `json:"signed_bytes_hex"`
	SignatureHex   string   `json:"signature_hex"`
	WireHex        string   `json:"wire_hex"`
}

// negativeVector is an input that must be rejected. Check names the
// operation; the other fields are its inputs (only those it needs are set).
type negativeVector struct {
	Name        string `json:"name"`
	Check       string `json:"check"`
	Description string `json:"description"`
	// verify_login
	PublicKeyHex        string `json:"public_key_hex,omitempty"`
	Challenge           string `json:"challenge,omitempty"`
	SignatureHex        string `json:"signature_hex,omitempty"`
	NodeID              string `json:"node_id,omitempty"`
	VerifyAtUnixSeconds int64  `json:"verify_at_unix_seconds,omitempty"`
	// channel_message_unmarshal, channel_message_verify
	WireHex string `json:"wire_hex,omitempty"`
	// parse_public_key, parse_key_file, parse_challenge
	Input         string `json:"input,omitempty"`
	ExpectedError string `json:"expected_error"`
}

// Checks used in negative cases.
const (
	checkVerifyLogin        = "verify_login"              // VerifyLogin fails
	checkMessageUnmarshal   = "channel_message_unmarshal" // decoding wire_hex fails
	checkMessageVerify      = "channel_message_verify"    // wire_hex decodes, signature check fails
	checkParsePublicKey     = "parse_public_key"
	checkParseKeyFile       = "parse_key_file"
	checkParseChallenge     = "parse_challenge"
	vectorNodeID            = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
	vectorNodeIDBase32      = "bafzaajaiaejcbw5i6oyd5wyrv4zbbgvk2yuupsewzaomc2hnoddyjfm4a3cvpvz"
	vectorOtherNodeID       = "12D3KooWSomeOtherNodeAaBbCcDdEeFfGgHhJjKkLlMmNnPp"
	vectorChallengeIssuedAt = 1700000000
)

var expectedErrors = map[string]error{
	"malformed":     identity.ErrMalformed,
	"bad_signature": identity.ErrBadSignature,
	"expired":       identity.ErrExpired,
	"wrong_node":    identity.ErrWrongNode,
}

func seedOf(b byte) []byte { return bytes.Repeat([]byte{b}, identity.SeedSize) }

func mustKey(t *testing.T, seed []byte) identity.PrivateKey {
	t.Helper()
	k, err := identity.NewKeyFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func hx(b []byte) string { return hex.EncodeToString(b) }

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex in vectors: %v", err)
	}
	return b
}

// buildVectors computes the vector file from the implementation.
func buildVectors(t *testing.T) vectorFile {
	t.Helper()
	v := vectorFile{
		Format: "darkchat-identity-test-vectors-v1",
		Description: []string{
			"Test vectors for darkchat identity encodings; see identity/doc.go (copied into PROTOCOL.md).",
			"Fields ending in _hex are lowercase hex of raw bytes; other strings are UTF-8 text used as is.",
			"Ed25519 is RFC 8032 (deterministic), so every signature must be reproduced byte for byte.",
			"Every signature covers domain prefix || fields. Variable-length fields: 4-byte big-endian length then bytes. Keys (32 B), message IDs (16 B) raw. Integers: 8-byte big-endian int64.",
			"keys: seed -> public key and key-file text (ParseKeyFile(key_file_text) must give the seed back).",
			"logins: challenge = dcl1.<node_id>.<nonce_hex>.<expiry_unix_seconds>; signed statement = login prefix || u32 len(challenge) || challenge || public key; the login must verify for node_id at verify_at_unix_seconds.",
			"channel_messages: signed bytes = channel-message prefix || author || len||channel || len||username || len||body || i64 timestamp || id; wire = 0x01 || signed bytes without prefix || signature.",
			"channel_messages of version 2: signed bytes = channel-message-2 prefix || the same fields || prev (8) || u8 count (0..2) || count x ref (8); wire = 0x02 || signed bytes without prefix || signature.",
			"negative_cases: check names the operation that must fail, expected_error the error class (malformed, bad_signature, expired, wrong_node).",
		},
		Domains: []domainVector{
			{"login", identity.DomainLogin, hx([]byte(identity.DomainLogin))},
			{"channel-message", identity.DomainChannelMessage, hx([]byte(identity.DomainChannelMessage))},
			{"channel-message-2", identity.DomainChannelMessage2, hx([]byte(identity.DomainChannelMessage2))},
			{"dm", identity.DomainDM, hx([]byte(identity.DomainDM))},
			{"key-bundle", identity.DomainKeyBundle, hx([]byte(identity.DomainKeyBundle))},
			{"receipt", identity.DomainReceipt, hx([]byte(identity.DomainReceipt))},
		},
	}

	for _, b := range []byte{0x01, 0x02} {
		k := mustKey(t, seedOf(b))
		v.Keys = append(v.Keys, keyVector{
			SeedHex:      hx(k.Seed()),
			PublicKeyHex: k.Public().String(),
			KeyFileText:  string(identity.MarshalKeyFile(k)),
		})
	}

	login := func(name string, seed byte, nodeID string, nonce byte, ttl int64) loginVector {
		k := mustKey(t, seedOf(seed))
		c := identity.Challenge{NodeID: nodeID, Expiry: time.Unix(vectorChallengeIssuedAt+ttl, 0)}
		for i := range c.Nonce {
			c.Nonce[i] = nonce + byte(i)
		}
		s := c.String()
		return loginVector{
			Name:                name,
			SeedHex:             hx(k.Seed()),
			PublicKeyHex:        k.Public().String(),
			NodeID:              nodeID,
			NonceHex:            hx(c.Nonce[:]),
			ExpiryUnixSeconds:   c.Expiry.Unix(),
			Challenge:           s,
			VerifyAtUnixSeconds: vectorChallengeIssuedAt,
			SignedStatementHex:  hx(identity.LoginStatement(s, k.Public())),
			SignatureHex:        hx(identity.SignLogin(k, s)),
		}
	}
	v.Logins = []loginVector{
		login("seed 0x01, base58btc peer ID", 0x01, vectorNodeID, 0x00, 60),
		login("seed 0x02, base32 peer ID", 0x02, vectorNodeIDBase32, 0xf0, 60),
	}

	msg2 := func(name string, seed byte, channel, username, body string, ts int64, id byte, causal *identity.Causal) channelMessageVector {
		k := mustKey(t, seedOf(seed))
		m := identity.ChannelMessage{Channel: channel, Username: username, Body: body, Timestamp: ts}
		for i := range m.ID {
			m.ID[i] = id + byte(i)
		}
		if causal != nil {
			m.Causal = *causal
		}
		m.Sign(k)
		wire, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var refs []string
		for _, r := range m.Causal.RefList() {
			refs = append(refs, hx(r[:]))
		}
		var prev string
		if m.Causal.Present {
			prev = hx(m.Causal.Prev[:])
		}
		return channelMessageVector{
			Version:         int(m.Version()),
			PrevHex:         prev,
			RefsHex:         refs,
			Name:            name,
			SeedHex:         hx(k.Seed()),
			AuthorHex:       m.Author.String(),
			Channel:         m.Channel,
			Username:        m.Username,
			Body:            m.Body,
			TimestampUnixMs: m.Timestamp,
			MessageIDHex:    hx(m.ID[:]),
			SignedBytesHex:  hx(m.SignedBytes()),
			SignatureHex:    hx(m.Sig[:]),
			WireHex:         hx(wire),
		}
	}
	msg := func(name string, seed byte, channel, username, body string, ts int64, id byte) channelMessageVector {
		return msg2(name, seed, channel, username, body, ts, id, nil)
	}
	short := func(b byte) (s identity.ShortID) {
		for i := range s {
			s[i] = b + byte(i)
		}
		return s
	}
	v.ChannelMessages = []channelMessageVector{
		msg("simple", 0x01, "general", "alice", "hello, world", 1700000000123, 0x00),
		msg("unicode body, all name characters", 0x02, "dev.go_1-x", "Bob_2.x-Y", "héllo 🌍 — ünïcödé\nsecond line", 1700000001000, 0x10),
		msg("empty body, one-character names, negative timestamp (encoding edge case; receivers reject it by time window)", 0x01, "a", "Z", "", -1, 0xf0),
		msg("maximum lengths: channel 64, username 32, body 4096 bytes (2048 two-byte characters)", 0x02,
			strings.Repeat("c", identity.MaxChannelLen), strings.Repeat("U", identity.MaxUsernameLen),
			strings.Repeat("é", identity.MaxBodyLen/2), 1700000002000, 0x80),
		msg2("version 2: causal context with a previous message and two references", 0x01, "general", "alice", "replying to both", 1700000003000, 0x20,
			&identity.Causal{Present: true, Prev: short(0x30), Refs: [identity.MaxCausalRefs]identity.ShortID{short(0x40), short(0x50)}, NRefs: 2}),
		msg2("version 2: the author's first message, having seen nothing (zero prev, no references)", 0x02, "general", "bob", "first", 1700000004000, 0x60,
			&identity.Causal{Present: true}),
	}

	v.NegativeCases = buildNegatives(t, v)
	return v
}

func buildNegatives(t *testing.T, v vectorFile) []negativeVector {
	t.Helper()
	l0, m0 := v.Logins[0], v.ChannelMessages[0]
	wire := unhex(t, m0.WireHex)
	ed1 := ed25519.NewKeyFromSeed(seedOf(0x01))

	// wire layout of m0: 1 version, 32 author, 4+len channel, 4+len username,
	// 4+len body, 8 timestamp, 16 id, 64 sig.
	offChannel := 1 + 32
	offUsername := offChannel + 4 + len(m0.Channel)
	offBody := offUsername + 4 + len(m0.Username)
	offTimestamp := offBody + 4 + len(m0.Body)
	offSig := len(wire) - 64

	edit := func(f func(w []byte) []byte) string {
		w := append([]byte(nil), wire...)
		return hx(f(w))
	}
	withSig := func(sig []byte) string {
		return edit(func(w []byte) []byte { copy(w[offSig:], sig); return w })
	}
	// fields of m0 without domain prefix, as in the wire form.
	fields := wire[1:offSig]

	var neg []negativeVector
	add := func(n negativeVector) { neg = append(neg, n) }

	// Signatures that must not verify.
	add(negativeVector{Name: "tampered body", Check: checkMessageVerify, ExpectedError: "bad_signature",
		Description: "first byte of the body changed ('h' -> 'j') after signing",
		WireHex:     edit(func(w []byte) []byte { w[offBody+4] = 'j'; return w })})
	add(negativeVector{Name: "tampered timestamp", Check: checkMessageVerify, ExpectedError: "bad_signature",
		Description: "timestamp increased by 1 ms after signing",
		WireHex:     edit(func(w []byte) []byte { w[offTimestamp+7]++; return w })})
	add(negativeVector{Name: "channel message signed under the login domain", Check: checkMessageVerify, ExpectedError: "bad_signature",
		Description: "signature over login prefix || the message fields: the domain prefix must be checked",
		WireHex:     withSig(ed25519.Sign(ed1, append([]byte(identity.DomainLogin), fields...)))})
	add(negativeVector{Name: "login signature replayed as channel-message signature", Check: checkMessageVerify, ExpectedError: "bad_signature",
		Description: "the signature of logins[0] placed in channel_messages[0]",
		WireHex:     withSig(unhex(t, l0.SignatureHex))})

	loginCase := func(name, desc, expected, pub, challenge, sig, node string, at int64) {
		add(negativeVector{Name: name, Check: checkVerifyLogin, Description: desc, ExpectedError: expected,
			PublicKeyHex: pub, Challenge: challenge, SignatureHex: sig, NodeID: node, VerifyAtUnixSeconds: at})
	}
	loginCase("channel-message signature replayed as login", "the signature of channel_messages[0] presented for logins[0]'s challenge",
		"bad_signature", l0.PublicKeyHex, l0.Challenge, m0.SignatureHex, l0.NodeID, l0.VerifyAtUnixSeconds)
	loginCase("login statement signed under the channel-message domain",
		"signature over channel-message prefix || u32 len || challenge || public key: the domain prefix must be checked",
		"bad_signature", l0.PublicKeyHex, l0.Challenge,
		hx(ed25519.Sign(ed1, append([]byte(identity.DomainChannelMessage), unhex(t, l0.SignedStatementHex)[len(identity.DomainLogin):]...))),
		l0.NodeID, l0.VerifyAtUnixSeconds)
	loginCase("wrong key", "logins[0] signature presented with seed 0x02's public key",
		"bad_signature", v.Keys[1].PublicKeyHex, l0.Challenge, l0.SignatureHex, l0.NodeID, l0.VerifyAtUnixSeconds)
	otherNonce := identity.Challenge{NodeID: l0.NodeID, Expiry: time.Unix(l0.ExpiryUnixSeconds, 0)}
	otherNonce.Nonce[0] = 0xff
	loginCase("signature for another challenge", "logins[0] signature presented for a challenge with another nonce",
		"bad_signature", l0.PublicKeyHex, otherNonce.String(), l0.SignatureHex, l0.NodeID, l0.VerifyAtUnixSeconds)
	loginCase("expired", "verified at the expiry second itself (expiry must be after now)",
		"expired", l0.PublicKeyHex, l0.Challenge, l0.SignatureHex, l0.NodeID, l0.ExpiryUnixSeconds)
	loginCase("wrong node", "the challenge names another node than the verifier",
		"wrong_node", l0.PublicKeyHex, l0.Challenge, l0.SignatureHex, vectorOtherNodeID, l0.VerifyAtUnixSeconds)
	loginCase("truncated signature", "63-byte signature",
		"bad_signature", l0.PublicKeyHex, l0.Challenge, l0.SignatureHex[:126], l0.NodeID, l0.VerifyAtUnixSeconds)

	// Version 2 (v.ChannelMessages[4]: prev and two references).
	m4 := v.ChannelMessages[4]
	wire4 := unhex(t, m4.WireHex)
	offCausal4 := len(wire4) - 64 - (8 + 1 + 2*8)
	edit4 := func(f func(w []byte) []byte) string {
		w := append([]byte(nil), wire4...)
		return hx(f(w))
	}
	add(negativeVector{Name: "version 2: tampered reference", Check: checkMessageVerify, ExpectedError: "bad_signature",
		Description: "last byte of the second reference changed after signing: the signature covers the causal context",
		WireHex:     edit4(func(w []byte) []byte { w[len(w)-64-1] ^= 1; return w })})
	add(negativeVector{Name: "version 2: signed under the version-1 domain", Check: checkMessageVerify, ExpectedError: "bad_signature",
		Description: "signature over the version-1 channel-message prefix || the version-2 fields: each version's prefix must be checked",
		WireHex: edit4(func(w []byte) []byte {
			copy(w[len(w)-64:], ed25519.Sign(ed1, append([]byte(identity.DomainChannelMessage), w[1:len(w)-64]...)))
			return w
		})})
	add(negativeVector{Name: "version 1 message relabelled version 2", Check: checkMessageVerify, ExpectedError: "bad_signature",
		Description: "channel_messages[0] with version 0x02 and an empty causal context (zero prev, count 0) added, its version-1 signature kept",
		WireHex: hx(func() []byte {
			w := append([]byte{2}, wire[1:offSig]...)
			w = append(w, make([]byte, 9)...)
			return append(w, wire[offSig:]...)
		}())})

	// Wire forms that must not decode.
	unmarshal := func(name, desc, w string) {
		add(negativeVector{Name: name, Check: checkMessageUnmarshal, Description: desc, ExpectedError: "malformed", WireHex: w})
	}
	unmarshal("version 2: three references", "reference count 3 (at most 2)",
		edit4(func(w []byte) []byte { w[offCausal4+8] = 3; return w }))
	unmarshal("version 2: references past the end", "reference count 2 with one reference and the signature after it",
		edit4(func(w []byte) []byte { return append(w[:offCausal4+8+1+8], w[len(w)-64:]...) }))
	unmarshal("truncated", "last byte of the signature missing", edit(func(w []byte) []byte { return w[:len(w)-1] }))
	unmarshal("trailing byte", "one 0x00 byte after the signature", edit(func(w []byte) []byte { return append(w, 0) }))
	unmarshal("unknown version", "version byte 0x03", edit(func(w []byte) []byte { w[0] = 3; return w }))
	unmarshal("channel length past the end", "channel length 0xffffffff",
		edit(func(w []byte) []byte { binary.BigEndian.PutUint32(w[offChannel:], 0xffffffff); return w }))
	unmarshal("body length over MaxBodyLen", "body length field 4097 (the limit is 4096)",
		edit(func(w []byte) []byte { binary.BigEndian.PutUint32(w[offBody:], 4097); return w }))
	unmarshal("invalid channel name", "channel \"General\" (uppercase is not allowed)",
		edit(func(w []byte) []byte { w[offChannel+4] = 'G'; return w }))
	unmarshal("invalid username", "username \".lice\" (must start with a letter or digit)",
		edit(func(w []byte) []byte { w[offUsername+4] = '.'; return w }))
	unmarshal("invalid UTF-8 body", "body byte 0xff",
		edit(func(w []byte) []byte { w[offBody+4] = 0xff; return w }))

	parse := func(check, name, desc, input string) {
		add(negativeVector{Name: name, Check: check, Description: desc, ExpectedError: "malformed", Input: input})
	}
	pk := v.Keys[0].PublicKeyHex
	parse(checkParsePublicKey, "public key too short", "63 hex characters", pk[:63])
	parse(checkParsePublicKey, "public key not hex", "last character 'g'", pk[:63]+"g")
	seedLine := v.Keys[0].SeedHex
	parse(checkParseKeyFile, "key file with uppercase seed", "seed hex must be lowercase", "darkchat-identity-v1\n"+strings.Repeat("AB", identity.SeedSize)+"\n")
	parse(checkParseKeyFile, "key file with extra line", "a third line", v.Keys[0].KeyFileText+"\n")
	parse(checkParseKeyFile, "key file with unknown version", "header darkchat-identity-v2", "darkchat-identity-v2\n"+seedLine+"\n")
	parse(checkParseChallenge, "challenge with uppercase nonce", "nonce must be lowercase hex", strings.Replace(v.Logins[1].Challenge, "f0f1", "F0F1", 1))
	parse(checkParseChallenge, "challenge with leading zero in expiry", "expiry must be canonical decimal",
		strings.Replace(l0.Challenge, ".1700", ".01700", 1))
	parse(checkParseChallenge, "challenge with extra part", "five dot-separated parts", l0.Challenge+".1")
	return neg
}

func TestVectors(t *testing.T) {
	built := buildVectors(t)
	if *update {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(built); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(vectorsPath), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(vectorsPath, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", vectorsPath)
	}

	data, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatalf("%v (generate with: go test ./identity -run TestVectors -update)", err)
	}
	var loaded vectorFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&loaded); err != nil {
		t.Fatalf("decode %s: %v", vectorsPath, err)
	}
	checkVectors(t, loaded)
	if !reflect.DeepEqual(built, loaded) {
		t.Errorf("%s is stale: the implementation produces different vectors; if the change is intended, run with -update", vectorsPath)
	}
}

// checkVectors checks the loaded file against the implementation the way an
// independent implementation would: from the inputs in the file alone.
func checkVectors(t *testing.T, v vectorFile) {
	for _, d := range v.Domains {
		if d.PrefixHex != hx([]byte(d.Text)) || !strings.HasSuffix(d.Text, "\x00") {
			t.Errorf("domain %s: text and hex disagree or no NUL terminator", d.Purpose)
		}
	}
	if len(v.Domains) != 6 {
		t.Errorf("want 6 domains, got %d", len(v.Domains))
	}

	for _, kv := range v.Keys {
		k := mustKey(t, unhex(t, kv.SeedHex))
		if got := k.Public().String(); got != kv.PublicKeyHex {
			t.Errorf("key %s: public key %s, want %s", kv.SeedHex, got, kv.PublicKeyHex)
		}
		if got := string(identity.MarshalKeyFile(k)); got != kv.KeyFileText {
			t.Errorf("key %s: key file %q, want %q", kv.SeedHex, got, kv.KeyFileText)
		}
		parsed, err := identity.ParseKeyFile([]byte(kv.KeyFileText))
		if err != nil || hx(parsed.Seed()) != kv.SeedHex {
			t.Errorf("key %s: ParseKeyFile = %x, %v", kv.SeedHex, parsed.Seed(), err)
		}
	}

	for _, lv := range v.Logins {
		k := mustKey(t, unhex(t, lv.SeedHex))
		c, err := identity.ParseChallenge(lv.Challenge)
		if err != nil {
			t.Errorf("login %q: %v", lv.Name, err)
			continue
		}
		if c.NodeID != lv.NodeID || hx(c.Nonce[:]) != lv.NonceHex || c.Expiry.Unix() != lv.ExpiryUnixSeconds || c.String() != lv.Challenge {
			t.Errorf("login %q: challenge fields %+v do not match", lv.Name, c)
		}
		if got := k.Public().String(); got != lv.PublicKeyHex {
			t.Errorf("login %q: public key %s, want %s", lv.Name, got, lv.PublicKeyHex)
		}
		if got := hx(identity.LoginStatement(lv.Challenge, k.Public())); got != lv.SignedStatementHex {
			t.Errorf("login %q: statement\n got %s\nwant %s", lv.Name, got, lv.SignedStatementHex)
		}
		if got := hx(identity.SignLogin(k, lv.Challenge)); got != lv.SignatureHex {
			t.Errorf("login %q: signature\n got %s\nwant %s", lv.Name, got, lv.SignatureHex)
		}
		if err := identity.VerifyLogin(k.Public(), lv.Challenge, unhex(t, lv.SignatureHex), lv.NodeID, time.Unix(lv.VerifyAtUnixSeconds, 0)); err != nil {
			t.Errorf("login %q: VerifyLogin: %v", lv.Name, err)
		}
	}

	for _, mv := range v.ChannelMessages {
		k := mustKey(t, unhex(t, mv.SeedHex))
		m := identity.ChannelMessage{Channel: mv.Channel, Username: mv.Username, Body: mv.Body, Timestamp: mv.TimestampUnixMs}
		copy(m.ID[:], unhex(t, mv.MessageIDHex))
		if mv.Version == 2 {
			m.Causal.Present = true
			copy(m.Causal.Prev[:], unhex(t, mv.PrevHex))
			for i, r := range mv.RefsHex {
				copy(m.Causal.Refs[i][:], unhex(t, r))
			}
			m.Causal.NRefs = len(mv.RefsHex)
		}
		m.Sign(k)
		if m.Author.String() != mv.AuthorHex {
			t.Errorf("message %q: author %s, want %s", mv.Name, m.Author, mv.AuthorHex)
		}
		if got := hx(m.SignedBytes()); got != mv.SignedBytesHex {
			t.Errorf("message %q: signed bytes\n got %s\nwant %s", mv.Name, got, mv.SignedBytesHex)
		}
		if got := hx(m.Sig[:]); got != mv.SignatureHex {
			t.Errorf("message %q: signature\n got %s\nwant %s", mv.Name, got, mv.SignatureHex)
		}
		wire, err := m.MarshalBinary()
		if err != nil || hx(wire) != mv.WireHex {
			t.Errorf("message %q: wire\n got %x (%v)\nwant %s", mv.Name, wire, err, mv.WireHex)
		}
		var got identity.ChannelMessage
		if err := got.UnmarshalBinary(unhex(t, mv.WireHex)); err != nil {
			t.Errorf("message %q: UnmarshalBinary: %v", mv.Name, err)
			continue
		}
		if got != m {
			t.Errorf("message %q: decoded %+v, want %+v", mv.Name, got, m)
		}
		if err := got.Verify(); err != nil {
			t.Errorf("message %q: Verify: %v", mv.Name, err)
		}
	}

	for _, nv := range v.NegativeCases {
		want, ok := expectedErrors[nv.ExpectedError]
		if !ok {
			t.Errorf("negative %q: unknown expected_error %q", nv.Name, nv.ExpectedError)
			continue
		}
		var err error
		switch nv.Check {
		case checkVerifyLogin:
			var pub identity.PublicKey
			pub, err = identity.ParsePublicKey(nv.PublicKeyHex)
			if err == nil {
				err = identity.VerifyLogin(pub, nv.Challenge, unhex(t, nv.SignatureHex), nv.NodeID, time.Unix(nv.VerifyAtUnixSeconds, 0))
			}
		case checkMessageUnmarshal:
			var m identity.ChannelMessage
			err = m.UnmarshalBinary(unhex(t, nv.WireHex))
		case checkMessageVerify:
			var m identity.ChannelMessage
			if uerr := m.UnmarshalBinary(unhex(t, nv.WireHex)); uerr != nil {
				t.Errorf("negative %q: wire must decode (only the signature is wrong): %v", nv.Name, uerr)
				continue
			}
			err = m.Verify()
		case checkParsePublicKey:
			_, err = identity.ParsePublicKey(nv.Input)
		case checkParseKeyFile:
			_, err = identity.ParseKeyFile([]byte(nv.Input))
		case checkParseChallenge:
			_, err = identity.ParseChallenge(nv.Input)
		default:
			t.Errorf("negative %q: unknown check %q", nv.Name, nv.Check)
			continue
		}
		if !errors.Is(err, want) {
			t.Errorf("negative %q (%s): got error %v, want %s", nv.Name, nv.Check, err, nv.ExpectedError)
		}
	}
}
