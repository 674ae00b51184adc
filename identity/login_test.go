package identity_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"darkchat/identity"
)

var testNow = time.Unix(1700000000, 0)

func TestNewChallenge(t *testing.T) {
	now := time.Unix(1700000000, 250_000_000) // sub-second: expiry rounds up
	s, err := identity.NewChallenge(vectorNodeID, now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c, err := identity.ParseChallenge(s)
	if err != nil {
		t.Fatalf("ParseChallenge(%q): %v", s, err)
	}
	if c.NodeID != vectorNodeID || c.String() != s {
		t.Errorf("challenge %q parsed as %+v", s, c)
	}
	if want := time.Unix(1700000061, 0); !c.Expiry.Equal(want) {
		t.Errorf("expiry %v, want %v (ttl rounded up to a whole second)", c.Expiry.Unix(), want.Unix())
	}
	if !strings.HasPrefix(s, "dcl1."+vectorNodeID+".") {
		t.Errorf("challenge %q", s)
	}
	s2, _ := identity.NewChallenge(vectorNodeID, now, time.Minute)
	if s2 == s {
		t.Error("two challenges share a nonce")
	}
	exact, _ := identity.NewChallenge(vectorNodeID, testNow, time.Minute)
	if c, _ := identity.ParseChallenge(exact); c.Expiry.Unix() != testNow.Unix()+60 {
		t.Errorf("whole-second expiry %d", c.Expiry.Unix())
	}

	for _, bad := range []struct {
		node string
		ttl  time.Duration
	}{
		{"", time.Minute},
		{"node.id", time.Minute},
		{"node id", time.Minute},
		{strings.Repeat("a", 129), time.Minute},
		{vectorNodeID, 0},
		{vectorNodeID, -time.Second},
	} {
		if _, err := identity.NewChallenge(bad.node, testNow, bad.ttl); err == nil {
			t.Errorf("NewChallenge(%q, %v) succeeded", bad.node, bad.ttl)
		}
	}
}

func TestParseChallenge(t *testing.T) {
	const nonce = "000102030405060708090a0b0c0d0e0f"
	good := "dcl1." + vectorNodeID + "." + nonce + ".1700000060"
	tests := []struct {
		name    string
		in      string
		wantErr string // substring; "" means success
	}{
		{"good", good, ""},
		{"expiry zero", "dcl1.a." + nonce + ".0", ""},
		{"max node ID", "dcl1." + strings.Repeat("z", 128) + "." + nonce + ".1", ""},
		{"empty", "", "want dcl1.<node-id>.<nonce>.<expiry>"},
		{"wrong prefix", "dcl2." + vectorNodeID + "." + nonce + ".1", "want dcl1."},
		{"three parts", "dcl1." + vectorNodeID + "." + nonce, "want dcl1."},
		{"five parts", good + ".5", "want dcl1."},
		{"empty node", "dcl1.." + nonce + ".1", "node ID"},
		{"node too long", "dcl1." + strings.Repeat("z", 129) + "." + nonce + ".1", "node ID"},
		{"node with slash", "dcl1./p2p/x." + nonce + ".1", "node ID"},
		{"node with dash", "dcl1.a-b." + nonce + ".1", "node ID"},
		{"nonce short", "dcl1.a." + nonce[:30] + ".1", "nonce"},
		{"nonce upper", "dcl1.a." + strings.ToUpper(nonce[:31]) + "f.1", "nonce"},
		{"nonce not hex", "dcl1.a." + nonce[:31] + "g.1", "nonce"},
		{"expiry empty", "dcl1.a." + nonce + ".", "expiry"},
		{"expiry negative", "dcl1.a." + nonce + ".-1", "expiry"},
		{"expiry plus", "dcl1.a." + nonce + ".+1", "expiry"},
		{"expiry leading zero", "dcl1.a." + nonce + ".01", "expiry"},
		{"expiry not number", "dcl1.a." + nonce + ".1e9", "expiry"},
		{"expiry overflow", "dcl1.a." + nonce + ".99999999999999999999", "expiry"},
		{"trailing newline", good + "\n", "expiry"},
		{"too long", "dcl1." + strings.Repeat("z", 300), "over the size limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := identity.ParseChallenge(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.String() != tt.in {
					t.Errorf("String() = %q, want %q", c.String(), tt.in)
				}
				return
			}
			if !errors.Is(err, identity.ErrMalformed) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error = %v, want ErrMalformed containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestVerifyLogin(t *testing.T) {
	alice := mustKey(t, seedOf(1))
	bob := mustKey(t, seedOf(2))
	challenge, err := identity.NewChallenge(vectorNodeID, testNow, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	sig := identity.SignLogin(alice, challenge)
	if len(sig) != identity.SignatureSize {
		t.Fatalf("signature is %d bytes", len(sig))
	}

	// A channel-message signature over a message whose body is the challenge:
	// the closest an attacker gets to a login signature from a chat message.
	m := identity.ChannelMessage{Channel: "general", Username: "alice", Body: challenge, Timestamp: testNow.UnixMilli()}
	m.Sign(alice)

	otherChallenge, _ := identity.NewChallenge(vectorNodeID, testNow, time.Minute)
	garbage := make([]byte, 64)
	for i := range garbage {
		garbage[i] = byte(i * 7)
	}
	tamperedSig := append([]byte(nil), sig...)
	tamperedSig[10] ^= 1

	tests := []struct {
		name      string
		pub       identity.PublicKey
		challenge string
		sig       []byte
		node      string
		now       time.Time
		want      error
	}{
		{"good", alice.Public(), challenge, sig, vectorNodeID, testNow, nil},
		{"good just before expiry", alice.Public(), challenge, sig, vectorNodeID, testNow.Add(time.Minute - time.Nanosecond), nil},
		{"expired at expiry", alice.Public(), challenge, sig, vectorNodeID, testNow.Add(time.Minute), identity.ErrExpired},
		{"expired later", alice.Public(), challenge, sig, vectorNodeID, testNow.Add(time.Hour), identity.ErrExpired},
		{"wrong node", alice.Public(), challenge, sig, vectorOtherNodeID, testNow, identity.ErrWrongNode},
		{"wrong key", bob.Public(), challenge, sig, vectorNodeID, testNow, identity.ErrBadSignature},
		{"zero key", identity.PublicKey{}, challenge, sig, vectorNodeID, testNow, identity.ErrBadSignature},
		{"other challenge", alice.Public(), otherChallenge, sig, vectorNodeID, testNow, identity.ErrBadSignature},
		{"garbage signature", alice.Public(), challenge, garbage, vectorNodeID, testNow, identity.ErrBadSignature},
		{"tampered signature", alice.Public(), challenge, tamperedSig, vectorNodeID, testNow, identity.ErrBadSignature},
		{"short signature", alice.Public(), challenge, sig[:63], vectorNodeID, testNow, identity.ErrBadSignature},
		{"long signature", alice.Public(), challenge, append(append([]byte(nil), sig...), 0), vectorNodeID, testNow, identity.ErrBadSignature},
		{"nil signature", alice.Public(), challenge, nil, vectorNodeID, testNow, identity.ErrBadSignature},
		{"malformed challenge", alice.Public(), "hello", sig, vectorNodeID, testNow, identity.ErrMalformed},
		{"channel-message signature as login", alice.Public(), challenge, m.Sig[:], vectorNodeID, testNow, identity.ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := identity.VerifyLogin(tt.pub, tt.challenge, tt.sig, tt.node, tt.now)
			if tt.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
		})
	}
}

// A login signature must not pass as a channel-message signature either.
func TestLoginSignatureIsNotChannelMessage(t *testing.T) {
	alice := mustKey(t, seedOf(1))
	challenge, _ := identity.NewChallenge(vectorNodeID, testNow, time.Minute)
	m := identity.ChannelMessage{Author: alice.Public(), Channel: "general", Username: "alice", Body: challenge}
	copy(m.Sig[:], identity.SignLogin(alice, challenge))
	if err := m.Verify(); !errors.Is(err, identity.ErrBadSignature) {
		t.Errorf("login signature accepted as channel message: %v", err)
	}
}
