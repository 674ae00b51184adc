package identity_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"regexp"
	"testing"
	"time"

	"darkchat/identity"
)

// Fuzz targets for the remaining parsers and checks of outside input: the
// DM public key inside a key bundle, a client's login, and the channel and
// username rules every frame and message goes through.

// FuzzParseDMPublicKey: a DM public key (from a key bundle in the DHT or
// from a node) parses only as DMPublicKeySize bytes that crypto/hpke
// accepts, and the parsed key is the input unchanged.
func FuzzParseDMPublicKey(f *testing.F) {
	for _, seed := range []byte{1, 2} {
		dk, err := dmKeyOf(f, seed).DMKey()
		if err != nil {
			f.Fatal(err)
		}
		pub := dk.Public().Bytes()
		f.Add(pub)
		f.Add(pub[:len(pub)-1])
		bad := bytes.Clone(pub)
		bad[0] ^= 0xff // likely a non-canonical ML-KEM coefficient
		f.Add(bad)
	}
	f.Add(make([]byte, identity.DMPublicKeySize))
	f.Add(bytes.Repeat([]byte{0xff}, identity.DMPublicKeySize))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := identity.ParseDMPublicKey(data)
		if err != nil {
			if !errors.Is(err, identity.ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			if !k.IsZero() {
				t.Fatal("refused, yet returned a key")
			}
			return
		}
		if k.IsZero() || !bytes.Equal(k.Bytes(), data) {
			t.Fatalf("ParseDMPublicKey(%x) = %x", data, k.Bytes())
		}
		// A key that parses is one a DM can be sealed to.
		alice := dmKeyOf(t, 1)
		b := identity.KeyBundle{Identity: alice.Public(), DM: k, Issued: testNow.UnixMilli(), Expires: testNow.Add(time.Hour).UnixMilli()}
		b.Sign(alice)
		if _, _, err := identity.SealDM(alice, b, "alice", "hi", testNow); err != nil {
			t.Fatalf("cannot seal to a key that parsed: %v", err)
		}
	})
}

// FuzzVerifyLogin gives the login check arbitrary client keys and
// signatures (and challenges, node IDs and clocks): it accepts only a
// signature the key's owner made, over a well-formed challenge for this
// node that has not expired. The seed key is the only one whose private
// key exists here, so any other key accepted, or another signature, is a
// forgery.
func FuzzVerifyLogin(f *testing.F) {
	k := dmKeyOf(f, 1)
	const node = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
	challenge := "dcl1." + node + ".000102030405060708090a0b0c0d0e0f.1700000060"
	sig := identity.SignLogin(k, challenge)
	pub := k.Public()
	now := testNow.Unix()
	if err := identity.VerifyLogin(pub, challenge, sig, node, testNow); err != nil {
		f.Fatalf("seed refused: %v", err)
	}
	f.Add(pub[:], challenge, sig, node, now)
	f.Add(pub[:], challenge, sig, node, int64(1700000060))
	f.Add(pub[:], challenge, sig, "other", now)
	f.Add(pub[:], challenge, sig[:63], node, now)
	f.Add(pub[:], challenge+"0", sig, node, now)
	// A small-order key with a signature crypto/ed25519 alone accepts.
	weak := make([]byte, 32)
	weak[0] = 1
	f.Add(weak, challenge, append(bytes.Clone(weak), make([]byte, 32)...), node, now)
	f.Fuzz(func(t *testing.T, pubBytes []byte, challenge string, sig []byte, nodeID string, nowSecs int64) {
		if len(pubBytes) != identity.PublicKeySize {
			return
		}
		pub := identity.PublicKey(pubBytes)
		now := time.Unix(nowSecs, 0)
		err := identity.VerifyLogin(pub, challenge, sig, nodeID, now)
		if err != nil {
			for _, want := range []error{identity.ErrBadSignature, identity.ErrMalformed, identity.ErrWrongNode, identity.ErrExpired} {
				if errors.Is(err, want) {
					return
				}
			}
			t.Fatalf("error wraps no expected sentinel: %v", err)
		}
		c, perr := identity.ParseChallenge(challenge)
		switch {
		case perr != nil:
			t.Fatalf("accepted a malformed challenge %q: %v", challenge, perr)
		case c.NodeID != nodeID:
			t.Fatalf("accepted a challenge for %s at %s", c.NodeID, nodeID)
		case !c.Expiry.After(now):
			t.Fatalf("accepted a challenge expired at %v, now %v", c.Expiry, now)
		case !ed25519.Verify(pub[:], identity.LoginStatement(challenge, pub), sig):
			t.Fatal("accepted a signature crypto/ed25519 refuses")
		case pub != k.Public() || !bytes.Equal(sig, identity.SignLogin(k, challenge)):
			t.Fatalf("accepted a login no private key made: key %s, sig %x", pub, sig)
		}
	})
}

var (
	channelNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
	usernameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)
)

// FuzzValidateNames checks the channel and username rules, which every
// frame, message and DM passes through, against the regular expressions
// they are documented as.
func FuzzValidateNames(f *testing.F) {
	for _, s := range []string{"lobby", "dev.go_1-x", "Bob_2.x-Y", "", "-a", "a\n", "é", "LOBBY",
		"a234567890123456789012345678901234567890123456789012345678901234", "a\x00b", "a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := identity.ValidateChannelName(s)
		if (err == nil) != channelNameRE.MatchString(s) {
			t.Fatalf("ValidateChannelName(%q) = %v", s, err)
		}
		if err != nil && !errors.Is(err, identity.ErrInvalidChannelName) {
			t.Fatalf("ValidateChannelName(%q): error does not wrap ErrInvalidChannelName: %v", s, err)
		}
		err = identity.ValidateUsername(s)
		if (err == nil) != usernameRE.MatchString(s) {
			t.Fatalf("ValidateUsername(%q) = %v", s, err)
		}
		if err != nil && !errors.Is(err, identity.ErrInvalidUsername) {
			t.Fatalf("ValidateUsername(%q): error does not wrap ErrInvalidUsername: %v", s, err)
		}
	})
}
