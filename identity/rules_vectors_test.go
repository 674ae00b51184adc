package identity_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"testing"
	"time"

	"darkchat/identity"
)

// Run "go test ./identity -run TestRulesVectors -update" to regenerate
// testdata/rules_vectors.json after a deliberate change of the encodings
// (the -update flag is declared in vectors_test.go).
const rulesVectorsPath = "testdata/rules_vectors.json"

// rulesVectorFile is the layout of testdata/rules_vectors.json: owned
// channels' rules records and kicks (PROTOCOL.md §4.7); "_hex" fields are
// lowercase hex of raw bytes.
type rulesVectorFile struct {
	Format         string                `json:"format"`
	Description    []string              `json:"description"`
	OpsDomainHex   string                `json:"ops_domain_prefix_hex"`
	RulesDomainHex string                `json:"rules_domain_prefix_hex"`
	KickDomainHex  string                `json:"kick_domain_prefix_hex"`
	VerifyAtUnixMs int64                 `json:"verify_at_unix_ms"`
	Records        []rulesVector         `json:"records"`
	Order          []rulesOrderVector    `json:"order"`
	Kicks          []kickVector          `json:"kicks"`
	NegativeCases  []rulesNegativeVector `json:"negative_cases"`
}

type rulesVector struct {
	Name              string   `json:"name"`
	OwnerSeedHex      string   `json:"owner_seed_hex"`
	SignerSeedHex     string   `json:"signer_seed_hex"`
	Channel           string   `json:"channel"`
	OwnerHex          string   `json:"owner_public_key_hex"`
	OpsVersion        int64    `json:"ops_version"`
	OpsHex            []string `json:"operators_hex"`
	OpsSignedBytesHex string   `json:"ops_signed_bytes_hex"`
	OpsSignatureHex   string   `json:"ops_signature_hex"`
	Version           int64    `json:"version"`
	BansHex           []string `json:"bans_hex"`
	Topic             string   `json:"topic"`
	Open              bool     `json:"open"`
	SignerHex         string   `json:"signer_public_key_hex"`
	TimestampUnixMs   int64    `json:"timestamp_unix_ms"`
	SignedBytesHex    string   `json:"signed_bytes_hex"`
	SignatureHex      string   `json:"signature_hex"`
	WireHex           string   `json:"wire_hex"`
	WireSHA256Hex     string   `json:"wire_sha256_hex"`
}

type rulesOrderVector struct {
	Why    string `json:"why"`
	A      string `json:"a"` // record names
	B      string `json:"b"`
	Winner string `json:"winner"` // "a" or "b"
}

type kickVector struct {
	Name            string `json:"name"`
	SignerSeedHex   string `json:"signer_seed_hex"`
	Channel         string `json:"channel"`
	TargetHex       string `json:"target_public_key_hex"`
	SignerHex       string `json:"signer_public_key_hex"`
	TimestampUnixMs int64  `json:"timestamp_unix_ms"`
	Reason          string `json:"reason"`
	SignedBytesHex  string `json:"signed_bytes_hex"`
	SignatureHex    string `json:"signature_hex"`
	WireHex         string `json:"wire_hex"`
}

type rulesNegativeVector struct {
	Name          string `json:"name"`
	Check         string `json:"check"` // rules_unmarshal, rules_verify, kick_unmarshal, kick_verify
	WireHex       string `json:"wire_hex"`
	ExpectedError string `json:"expected_error"`
}

// Checks of the rules negative cases.
const (
	checkRulesUnmarshal = "rules_unmarshal" // decoding wire_hex fails
	checkRulesVerify    = "rules_verify"    // wire_hex decodes, Verify at verify_at_unix_ms fails
	checkKickUnmarshal  = "kick_unmarshal"
	checkKickVerify     = "kick_verify"
	rulesVectorTime     = 1700000000000
)

var rulesExpectedErrors = map[string]error{
	"malformed":     identity.ErrMalformed,
	"bad_signature": identity.ErrBadSignature,
	"not_yet_valid": identity.ErrNotYetValid,
}

// Seeds of the keys in the rules vectors.
const (
	rulesOwnerSeed    = 0x01
	rulesOperatorSeed = 0x02
	rulesBobSeed      = 0x03
	rulesCarolSeed    = 0x04
)

func buildRulesVectors(t *testing.T) rulesVectorFile {
	t.Helper()
	v := rulesVectorFile{
		Format: "darkchat-rules-test-vectors-v1",
		Description: []string{
			"Owned channels' rules records and kicks (PROTOCOL.md §4.7). Integers are big-endian; len+x is a u32 length then x; key lists are a u32 count then the 32-byte keys, sorted by their bytes.",
			"ops signed bytes = \"darkchat/v1/channel-ops\\x00\" || len+channel || owner || ops_version i64 || operators; ops_signature is the owner's signature over them.",
			"signed bytes = \"darkchat/v1/channel-rules\\x00\" || len+channel || owner || ops_version i64 || operators || ops_signature || version i64 || bans || len+topic || open u8 || signer || timestamp i64 (Unix ms); signature is the signer's over them.",
			"wire = 0x01 || signed bytes without the prefix || signature (64). Valid at verify_at_unix_ms: see §4.7.",
			"order: of two records of a channel, the higher ops_version wins, then the higher version, then the larger wire_sha256_hex (as bytes).",
			"kick signed bytes = \"darkchat/v1/channel-kick\\x00\" || len+channel || target || signer || timestamp i64 || len+reason; wire = 0x01 || those without the prefix || signature.",
			"negative_cases: rules_unmarshal and kick_unmarshal must fail to decode (malformed); rules_verify decodes and fails Verify at verify_at_unix_ms (bad_signature, not_yet_valid); kick_verify decodes and its signature does not verify.",
		},
		OpsDomainHex:   hx([]byte(identity.DomainChannelOps)),
		RulesDomainHex: hx([]byte(identity.DomainChannelRules)),
		KickDomainHex:  hx([]byte(identity.DomainChannelKick)),
		VerifyAtUnixMs: rulesVectorTime + time.Minute.Milliseconds(),
	}
	owner, op := mustKey(t, seedOf(rulesOwnerSeed)), mustKey(t, seedOf(rulesOperatorSeed))
	bob, carol := mustKey(t, seedOf(rulesBobSeed)).Public(), mustKey(t, seedOf(rulesCarolSeed)).Public()
	channel, err := identity.OwnedChannelName("dev", owner.Public())
	if err != nil {
		t.Fatal(err)
	}
	at := func(ms int64) time.Time { return time.UnixMilli(rulesVectorTime + ms) }
	byName := map[string]identity.ChannelRules{}
	add := func(name string, r identity.ChannelRules, signerSeed byte) {
		wire, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := r.Verify(time.UnixMilli(v.VerifyAtUnixMs)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		keys := func(ks []identity.PublicKey) []string {
			out := []string{}
			for _, k := range ks {
				out = append(out, k.String())
			}
			return out
		}
		sum := identity.HashRules(wire)
		byName[name] = r
		v.Records = append(v.Records, rulesVector{
			Name: name, OwnerSeedHex: hx(seedOf(rulesOwnerSeed)), SignerSeedHex: hx(seedOf(signerSeed)), Channel: r.Channel,
			OwnerHex: r.Owner.String(), OpsVersion: r.OpsVersion, OpsHex: keys(r.Ops), OpsSignedBytesHex: hx(r.OpsSignedBytes()),
			OpsSignatureHex: hx(r.OpsSig[:]), Version: r.Version, BansHex: keys(r.Bans), Topic: r.Topic, Open: r.Open,
			SignerHex: r.Signer.String(), TimestampUnixMs: r.Timestamp, SignedBytesHex: hx(r.SignedBytes()),
			SignatureHex: hx(r.Sig[:]), WireHex: hx(wire), WireSHA256Hex: sum.String(),
		})
	}

	first, err := identity.NewChannelRules(owner, channel, at(0))
	if err != nil {
		t.Fatal(err)
	}
	add("first: the owner's version 1, open, no operators", first, rulesOwnerSeed)

	opped := first.Clone()
	opped.OpsVersion, opped.Version = 2, 2
	opped.SetOps([]identity.PublicKey{op.Public()})
	opped.SetBans([]identity.PublicKey{bob})
	opped.Topic, opped.Open = "welcome to dev — be kind", false
	opped.Timestamp = at(1000).UnixMilli()
	opped.SignOps(owner)
	opped.Sign(owner)
	add("the owner ops 0x02, bans 0x03, sets a topic, moderates", opped, rulesOwnerSeed)

	byOp := opped.Clone()
	byOp.Version = 3
	byOp.SetBans([]identity.PublicKey{bob, carol})
	byOp.Timestamp = at(2000).UnixMilli()
	byOp.Sign(op)
	add("the operator 0x02 bans 0x04 too", byOp, rulesOperatorSeed)

	deop := byOp.Clone()
	deop.OpsVersion, deop.Version = 3, 4
	deop.SetOps(nil)
	deop.Timestamp = at(3000).UnixMilli()
	deop.SignOps(owner)
	deop.Sign(owner)
	add("the owner deops 0x02", deop, rulesOwnerSeed)

	late := byOp.Clone()
	late.Version = 9
	late.SetBans([]identity.PublicKey{bob})
	late.Timestamp = at(4000).UnixMilli()
	late.Sign(op)
	add("the deopped 0x02 unbans 0x04, on the old operator list, a higher version", late, rulesOperatorSeed)

	tieA, tieB := deop.Clone(), deop.Clone()
	tieA.Version, tieB.Version = 5, 5
	tieA.Topic, tieB.Topic = "topic A", "topic B"
	tieA.Timestamp, tieB.Timestamp = at(5000).UnixMilli(), at(5000).UnixMilli()
	tieA.Sign(owner)
	tieB.Sign(owner)
	add("concurrent: version 5 with topic A", tieA, rulesOwnerSeed)
	add("concurrent: version 5 with topic B", tieB, rulesOwnerSeed)

	winner := func(a, b string) string {
		ra, rb := byName[a], byName[b]
		wa, _ := ra.MarshalBinary()
		wb, _ := rb.MarshalBinary()
		if identity.CompareRules(&ra, identity.HashRules(wa), &rb, identity.HashRules(wb)) > 0 {
			return "a"
		}
		return "b"
	}
	order := func(why, a, b string) {
		if _, ok := byName[a]; !ok {
			t.Fatalf("order: no record %q", a)
		}
		if _, ok := byName[b]; !ok {
			t.Fatalf("order: no record %q", b)
		}
		v.Order = append(v.Order, rulesOrderVector{Why: why, A: a, B: b, Winner: winner(a, b)})
	}
	order("higher ops_version", "first: the owner's version 1, open, no operators", "the owner ops 0x02, bans 0x03, sets a topic, moderates")
	order("same ops_version, higher version", "the operator 0x02 bans 0x04 too", "the owner ops 0x02, bans 0x03, sets a topic, moderates")
	order("a deopped operator's record loses to the owner's deop, whatever its version",
		"the deopped 0x02 unbans 0x04, on the old operator list, a higher version", "the owner deops 0x02")
	order("same ops_version and version: the larger SHA-256 of the wire form", "concurrent: version 5 with topic A", "concurrent: version 5 with topic B")

	kick, err := identity.NewChannelKick(op, channel, bob, "calm down", at(6000))
	if err != nil {
		t.Fatal(err)
	}
	kw, err := kick.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	v.Kicks = append(v.Kicks, kickVector{Name: "the operator 0x02 kicks 0x03", SignerSeedHex: hx(seedOf(rulesOperatorSeed)),
		Channel: kick.Channel, TargetHex: kick.Target.String(), SignerHex: kick.Signer.String(), TimestampUnixMs: kick.Timestamp,
		Reason: kick.Reason, SignedBytesHex: hx(kick.SignedBytes()), SignatureHex: hx(kick.Sig[:]), WireHex: hx(kw)})

	// Negative cases, edited from the operator's record (two operators'
	// worth of fields: one operator, two bans).
	wire, _ := byOp.MarshalBinary()
	offOwner := 1 + 4 + len(channel)
	offOpsVersion := offOwner + 32
	offOps := offOpsVersion + 8
	offVersion := offOps + 4 + 32*len(byOp.Ops) + 64
	offBans := offVersion + 8
	offTopic := offBans + 4 + 32*len(byOp.Bans)
	offOpen := offTopic + 4 + len(byOp.Topic)
	edit := func(f func(w []byte) []byte) string { return hx(f(bytes.Clone(wire))) }
	neg := func(name, check, w, want string) {
		v.NegativeCases = append(v.NegativeCases, rulesNegativeVector{Name: name, Check: check, WireHex: w, ExpectedError: want})
	}
	neg("topic changed after signing", checkRulesVerify, edit(func(w []byte) []byte { w[offTopic+4] ^= 0x20; return w }), "bad_signature")
	neg("version raised after signing", checkRulesVerify, edit(func(w []byte) []byte { w[offVersion+7]++; return w }), "bad_signature")
	neg("open set after signing", checkRulesVerify, edit(func(w []byte) []byte { w[offOpen] = 1; return w }), "bad_signature")
	neg("ops_version raised after the owner signed", checkRulesVerify, edit(func(w []byte) []byte { w[offOpsVersion+7]++; return w }), "bad_signature")
	notOp := byOp.Clone()
	notOp.Sign(mustKey(t, seedOf(rulesCarolSeed)))
	nw, _ := notOp.MarshalBinary()
	neg("signed by 0x04, neither the owner nor an operator", checkRulesVerify, hx(nw), "bad_signature")
	ahead := byOp.Clone()
	ahead.Timestamp = v.VerifyAtUnixMs + (5*time.Minute + time.Second).Milliseconds()
	ahead.Sign(op)
	aw, _ := ahead.MarshalBinary()
	neg("dated 5 min 1 s after verify_at", checkRulesVerify, hx(aw), "not_yet_valid")
	neg("unknown version 0x02", checkRulesUnmarshal, edit(func(w []byte) []byte { w[0] = 0x02; return w }), "malformed")
	neg("open is 2", checkRulesUnmarshal, edit(func(w []byte) []byte { w[offOpen] = 2; return w }), "malformed")
	neg("bans out of order", checkRulesUnmarshal, edit(func(w []byte) []byte {
		a, b := bytes.Clone(w[offBans+4:offBans+36]), bytes.Clone(w[offBans+36:offBans+68])
		copy(w[offBans+4:], b)
		copy(w[offBans+36:], a)
		return w
	}), "malformed")
	neg("channel's fingerprint is not the owner's", checkRulesUnmarshal, edit(func(w []byte) []byte {
		w[offOwner-1] ^= 0x01 // the fingerprint's last hex digit
		return w
	}), "malformed")
	neg("operator count 33", checkRulesUnmarshal, edit(func(w []byte) []byte { w[offOps+3] = 33; return w }), "malformed")
	neg("truncated signature", checkRulesUnmarshal, edit(func(w []byte) []byte { return w[:len(w)-1] }), "malformed")
	neg("trailing byte", checkRulesUnmarshal, edit(func(w []byte) []byte { return append(w, 0) }), "malformed")
	kickReason := len(kw) - 64 - len(kick.Reason)
	neg("kick reason changed after signing", checkKickVerify, hx(func() []byte {
		w := bytes.Clone(kw)
		w[kickReason] ^= 0x20
		return w
	}()), "bad_signature")
	neg("kick in a channel that is not owned", checkKickUnmarshal, hx(func() []byte {
		w := bytes.Clone(kw)
		w[5+len("dev")] = '_' // dev_<fingerprint>: no dot, not owned
		return w
	}()), "malformed")
	return v
}

func TestRulesVectors(t *testing.T) {
	built := buildRulesVectors(t)
	if *update {
		data, err := json.MarshalIndent(built, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(rulesVectorsPath, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(rulesVectorsPath)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	var stored rulesVectorFile
	if err := json.Unmarshal(data, &stored); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(stored, built) {
		t.Fatalf("%s differs from what the implementation computes (run with -update after a deliberate change)", rulesVectorsPath)
	}

	// Check the stored file from its fields alone, as another
	// implementation would.
	verifyAt := time.UnixMilli(stored.VerifyAtUnixMs)
	decoded := map[string]identity.ChannelRules{}
	for _, r := range stored.Records {
		var rec identity.ChannelRules
		wire := unhex(t, r.WireHex)
		if err := rec.UnmarshalBinary(wire); err != nil {
			t.Fatalf("%s: %v", r.Name, err)
		}
		if err := rec.Verify(verifyAt); err != nil {
			t.Errorf("%s: %v", r.Name, err)
		}
		if mustKey(t, unhex(t, r.SignerSeedHex)).Public().String() != r.SignerHex || mustKey(t, unhex(t, r.OwnerSeedHex)).Public().String() != r.OwnerHex {
			t.Errorf("%s: keys", r.Name)
		}
		keys := func(ks []identity.PublicKey) []string {
			out := []string{}
			for _, k := range ks {
				out = append(out, k.String())
			}
			return out
		}
		if rec.Channel != r.Channel || rec.Owner.String() != r.OwnerHex || rec.OpsVersion != r.OpsVersion || !reflect.DeepEqual(keys(rec.Ops), r.OpsHex) ||
			rec.Version != r.Version || !reflect.DeepEqual(keys(rec.Bans), r.BansHex) || rec.Topic != r.Topic || rec.Open != r.Open ||
			rec.Signer.String() != r.SignerHex || rec.Timestamp != r.TimestampUnixMs || hx(rec.OpsSignedBytes()) != r.OpsSignedBytesHex ||
			hx(rec.OpsSig[:]) != r.OpsSignatureHex || hx(rec.SignedBytes()) != r.SignedBytesHex || hx(rec.Sig[:]) != r.SignatureHex {
			t.Errorf("%s: decoded %+v", r.Name, rec)
		}
		if sum := identity.HashRules(wire); sum.String() != r.WireSHA256Hex {
			t.Errorf("%s: sha256", r.Name)
		}
		decoded[r.Name] = rec
	}
	for _, o := range stored.Order {
		a, b := decoded[o.A], decoded[o.B]
		wa, _ := a.MarshalBinary()
		wb, _ := b.MarshalBinary()
		got := identity.CompareRules(&a, identity.HashRules(wa), &b, identity.HashRules(wb))
		if want := map[string]int{"a": 1, "b": -1}[o.Winner]; got != want {
			t.Errorf("order %q: CompareRules %d, winner %s", o.Why, got, o.Winner)
		}
	}
	for _, k := range stored.Kicks {
		var kick identity.ChannelKick
		if err := kick.UnmarshalBinary(unhex(t, k.WireHex)); err != nil {
			t.Fatalf("%s: %v", k.Name, err)
		}
		if err := kick.Verify(); err != nil {
			t.Errorf("%s: %v", k.Name, err)
		}
		if kick.Channel != k.Channel || kick.Target.String() != k.TargetHex || kick.Signer.String() != k.SignerHex ||
			kick.Timestamp != k.TimestampUnixMs || kick.Reason != k.Reason || hx(kick.SignedBytes()) != k.SignedBytesHex ||
			mustKey(t, unhex(t, k.SignerSeedHex)).Public().String() != k.SignerHex {
			t.Errorf("%s: decoded %+v", k.Name, kick)
		}
	}
	for _, n := range stored.NegativeCases {
		want, ok := rulesExpectedErrors[n.ExpectedError]
		if !ok {
			t.Errorf("%s: unknown expected_error %q", n.Name, n.ExpectedError)
			continue
		}
		wire := unhex(t, n.WireHex)
		var err error
		switch n.Check {
		case checkRulesUnmarshal, checkRulesVerify:
			var rec identity.ChannelRules
			err = rec.UnmarshalBinary(wire)
			if n.Check == checkRulesVerify {
				if err != nil {
					t.Fatalf("%s: does not decode: %v", n.Name, err)
				}
				err = rec.Verify(verifyAt)
			}
		case checkKickUnmarshal, checkKickVerify:
			var kick identity.ChannelKick
			err = kick.UnmarshalBinary(wire)
			if n.Check == checkKickVerify {
				if err != nil {
					t.Fatalf("%s: does not decode: %v", n.Name, err)
				}
				err = kick.Verify()
			}
		default:
			t.Errorf("%s: unknown check %q", n.Name, n.Check)
			continue
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: got %v, want %s", n.Name, err, n.ExpectedError)
		}
	}
}
