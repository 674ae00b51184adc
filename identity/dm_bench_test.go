package identity_test

import (
	"strings"
	"testing"

	"darkchat/identity"
)

// BenchmarkSealDM is the sender's cost of a typical DM (100-byte body):
// one signature and one HPKE MLKEM768-X25519 encapsulation.
func BenchmarkSealDM(b *testing.B) {
	alice, bob := newDMParty(b, 1), newDMParty(b, 2)
	body := strings.Repeat("x", 100)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := identity.SealDM(alice.key, bob.bundle, "alice", body, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenDM is the recipient's cost: decapsulation, decryption and
// one signature verification.
func BenchmarkOpenDM(b *testing.B) {
	alice, bob := newDMParty(b, 1), newDMParty(b, 2)
	env, _, err := identity.SealDM(alice.key, bob.bundle, "alice", strings.Repeat("x", 100), testNow)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(env)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := identity.OpenDM(bob.dm, env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenDMNotForMe is what a client pays for an envelope with
// someone else's tag on a shared shard: a hash and a compare.
func BenchmarkOpenDMNotForMe(b *testing.B) {
	alice, bob := newDMParty(b, 1), newDMParty(b, 2)
	env, _, err := identity.SealDM(alice.key, bob.bundle, "alice", "x", testNow)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := identity.OpenDM(alice.dm, env); err == nil {
			b.Fatal("opened")
		}
	}
}

func BenchmarkDMKeyDerive(b *testing.B) {
	k := dmKeyOf(b, 1)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.DMKey(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEnvelopeTag is a node's per-DM routing cost.
func BenchmarkEnvelopeTag(b *testing.B) {
	alice, bob := newDMParty(b, 1), newDMParty(b, 2)
	env, _, err := identity.SealDM(alice.key, bob.bundle, "alice", "x", testNow)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := identity.EnvelopeTag(env); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkKeyBundleUnmarshalVerify is the DHT validator's and whois's
// cost per bundle.
func BenchmarkKeyBundleUnmarshalVerify(b *testing.B) {
	p := newDMParty(b, 1)
	wire, err := p.bundle.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var kb identity.KeyBundle
		if err := kb.Unmarshal(wire); err != nil {
			b.Fatal(err)
		}
		if err := kb.Verify(p.key.Public(), testNow); err != nil {
			b.Fatal(err)
		}
	}
}
