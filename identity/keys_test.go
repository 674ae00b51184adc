package identity_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"darkchat/identity"
)

const seed1PublicHex = "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c"

func TestParsePublicKey(t *testing.T) {
	tests := []struct {
		in      string
		wantErr string // substring; "" means success
	}{
		{seed1PublicHex, ""},
		{strings.ToUpper(seed1PublicHex), ""},
		{"", "want 64 hex characters, got 0"},
		{seed1PublicHex[:63], "got 63"},
		{seed1PublicHex + "0", "got 65"},
		{seed1PublicHex[:63] + "g", `character 64 ('g') is not a hex digit`},
		{" " + seed1PublicHex[1:], "character 1"},
		{"0x" + seed1PublicHex[2:], "character 2 ('x')"},
	}
	for _, tt := range tests {
		k, err := identity.ParsePublicKey(tt.in)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("ParsePublicKey(%q): %v", tt.in, err)
			} else if k.String() != seed1PublicHex {
				t.Errorf("ParsePublicKey(%q) = %s", tt.in, k)
			}
			continue
		}
		if !errors.Is(err, identity.ErrMalformed) || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParsePublicKey(%q) error = %v, want ErrMalformed containing %q", tt.in, err, tt.wantErr)
		}
	}
}

func TestPublicKeyText(t *testing.T) {
	k := mustKey(t, seedOf(1)).Public()
	b, err := json.Marshal(struct{ Key identity.PublicKey }{k})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"Key":"` + seed1PublicHex + `"}`; string(b) != want {
		t.Errorf("JSON = %s, want %s", b, want)
	}
	var back struct{ Key identity.PublicKey }
	if err := json.Unmarshal(b, &back); err != nil || back.Key != k {
		t.Errorf("JSON round trip: %v, %v", back.Key, err)
	}
	if err := json.Unmarshal([]byte(`{"Key":"abc"}`), &back); !errors.Is(err, identity.ErrMalformed) {
		t.Errorf("bad JSON key: %v", err)
	}
}

func TestKeys(t *testing.T) {
	k := mustKey(t, seedOf(1))
	if got := k.Public().String(); got != seed1PublicHex {
		t.Errorf("public key %s, want %s", got, seed1PublicHex)
	}
	seed := k.Seed()
	if !bytes.Equal(seed, seedOf(1)) {
		t.Errorf("Seed = %x", seed)
	}
	seed[0] ^= 0xff // Seed returns a copy
	if !bytes.Equal(k.Seed(), seedOf(1)) {
		t.Error("modifying Seed's result changed the key")
	}
	for _, n := range []int{0, 31, 33, 64} {
		if _, err := identity.NewKeyFromSeed(make([]byte, n)); !errors.Is(err, identity.ErrMalformed) {
			t.Errorf("NewKeyFromSeed(%d bytes) error = %v", n, err)
		}
	}
	g1, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	g2, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if g1.Public() == g2.Public() || g1.IsZero() {
		t.Error("GenerateKey returned equal or zero keys")
	}
}

func TestZeroPrivateKey(t *testing.T) {
	var z identity.PrivateKey
	if !z.IsZero() || !z.Public().IsZero() || z.Seed() != nil || identity.MarshalKeyFile(z) != nil {
		t.Error("zero key is not treated as no key")
	}
	if sig := identity.SignLogin(z, "dcl1.x.000102030405060708090a0b0c0d0e0f.1"); sig != nil {
		t.Errorf("zero key signed: %x", sig)
	}
	m := identity.ChannelMessage{Channel: "a", Username: "b", Sig: [64]byte{1}}
	m.Sign(z)
	if m.Sig != [64]byte{} || m.Verify() == nil {
		t.Error("zero key produced a signature")
	}
	if _, err := identity.NewChannelMessage(z, "a", "b", "c", testNow); !errors.Is(err, identity.ErrInvalidKey) {
		t.Errorf("NewChannelMessage with zero key: %v", err)
	}
}

// A private key printed by mistake must not reveal the seed, whatever the
// verb (without Format, %x and %d would print the struct's bytes).
func TestPrivateKeyFormatHidesSeed(t *testing.T) {
	k := mustKey(t, seedOf(0xab))
	want := "identity.PrivateKey(public " + k.Public().String() + ")"
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%X", "%d", "%q"} {
		if out := fmt.Sprintf(verb, k); out != want {
			t.Errorf("%s prints %s, want %s", verb, out, want)
		}
	}
	if out := fmt.Sprintf("%v", struct{ K identity.PrivateKey }{k}); strings.Contains(out, "171") || strings.Contains(out, "abab") {
		t.Errorf("key inside a struct prints the seed: %s", out)
	}
}
