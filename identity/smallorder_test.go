package identity_test

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"testing"
	"time"

	"darkchat/identity"
)

// smallOrderKeys are the encodings of the Ed25519 points of order 1, 2, 4
// and 8, canonical or not, with either sign bit.
func smallOrderKeys() []identity.PublicKey {
	var keys []identity.PublicKey
	for _, s := range []string{
		"0100000000000000000000000000000000000000000000000000000000000000",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"0000000000000000000000000000000000000000000000000000000000000000",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	} {
		k, err := identity.ParsePublicKey(s)
		if err != nil {
			panic(err)
		}
		keys = append(keys, k)
		k[31] |= 0x80
		keys = append(keys, k)
	}
	return keys
}

// forge returns a signature of msg under the small-order key a that
// crypto/ed25519 accepts, made without any private key: R is a point of
// small order and S is 0. ok is false if no R fits this msg.
func forge(a identity.PublicKey, msg []byte) (sig []byte, ok bool) {
	for _, r := range smallOrderKeys() {
		sig := append(r[:], make([]byte, 32)...)
		if ed25519.Verify(a[:], msg, sig) {
			return sig, true
		}
	}
	return nil, false
}

// A public key of small order verifies nothing, although crypto/ed25519
// accepts forged signatures for it: otherwise anyone could log in, post,
// publish a key bundle and send DMs as such a key.
func TestSmallOrderKeysVerifyNothing(t *testing.T) {
	now := time.Unix(1700000000, 0)
	author, err := identity.NewKeyFromSeed(seedOf(1))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range smallOrderKeys() {
		forged := 0
		for i := 0; i < 64; i++ {
			challenge := fmt.Sprintf("dcl1.node.%032x.1700000060", i)
			sig, ok := forge(a, identity.LoginStatement(challenge, a))
			if !ok {
				continue
			}
			forged++
			if err := identity.VerifyLogin(a, challenge, sig, "node", now); !errors.Is(err, identity.ErrBadSignature) {
				t.Fatalf("key %s: VerifyLogin accepted a forged login: %v", a, err)
			}

			m, err := identity.NewChannelMessage(author, "lobby", "u", fmt.Sprint("m", i), now)
			if err != nil {
				t.Fatal(err)
			}
			m.Author = a
			if sig, ok := forge(a, m.SignedBytes()); ok {
				copy(m.Sig[:], sig)
				if err := m.Verify(); !errors.Is(err, identity.ErrBadSignature) {
					t.Fatalf("key %s: Verify accepted a forged channel message: %v", a, err)
				}
			}
		}
		// The list is right: each key admits forgeries.
		if forged == 0 {
			t.Fatalf("key %s: no forged signature in 64 tries; not a small-order key?", a)
		}
	}
}
