package identity_test

import (
	"runtime"
	"strings"
	"testing"

	"darkchat/identity"
)

// benchMessage is a typical chat line: short names, a 100-byte body.
func benchMessage(b *testing.B) (identity.PrivateKey, identity.ChannelMessage, []byte) {
	b.Helper()
	k, err := identity.NewKeyFromSeed(seedOf(1))
	if err != nil {
		b.Fatal(err)
	}
	m, err := identity.NewChannelMessage(k, "general", "alice", strings.Repeat("x", 100), testNow)
	if err != nil {
		b.Fatal(err)
	}
	wire, err := m.MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	return k, m, wire
}

func BenchmarkChannelMessageVerify(b *testing.B) {
	_, m, _ := benchMessage(b)
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Verify(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChannelMessageUnmarshal(b *testing.B) {
	_, _, wire := benchMessage(b)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	var m identity.ChannelMessage
	for b.Loop() {
		if err := m.UnmarshalBinary(wire); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkChannelMessageMarshal(b *testing.B) {
	_, m, _ := benchMessage(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSign is the cost of signing a channel message on the client.
func BenchmarkSign(b *testing.B) {
	k, m, _ := benchMessage(b)
	b.ReportAllocs()
	for b.Loop() {
		m.Sign(k)
	}
}

func BenchmarkVerifyLogin(b *testing.B) {
	k, _, _ := benchMessage(b)
	c, err := identity.NewChallenge(vectorNodeID, testNow, identity.DefaultChallengeTTL)
	if err != nil {
		b.Fatal(err)
	}
	sig := identity.SignLogin(k, c)
	b.ReportAllocs()
	for b.Loop() {
		if err := identity.VerifyLogin(k.Public(), c, sig, vectorNodeID, testNow); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkValidateChannelName(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if identity.ValidateChannelName("dev.go_1-x") != nil {
			b.Fatal("invalid")
		}
	}
}

// BenchmarkVerifierParallel is channel-message verification through a
// Verifier from many goroutines (as GossipSub's validation runs), against
// BenchmarkChannelMessageVerifyParallel, each goroutine verifying alone.
func BenchmarkVerifierParallel(b *testing.B) {
	_, m, _ := benchMessage(b)
	v := identity.NewVerifier(runtime.GOMAXPROCS(0), identity.DefaultVerifyBatch, identity.DefaultVerifyQueued)
	defer v.Close()
	b.SetParallelism(64)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := v.VerifyChannelMessage(&m); err != nil {
				b.Error(err)
			}
		}
	})
}

func BenchmarkChannelMessageVerifyParallel(b *testing.B) {
	_, m, _ := benchMessage(b)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := m.Verify(); err != nil {
				b.Error(err)
			}
		}
	})
}
