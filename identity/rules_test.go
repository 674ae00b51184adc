package identity

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var rulesNow = time.UnixMilli(1_750_000_000_000)

func mustKey(t *testing.T) PrivateKey {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func ownedRules(t *testing.T, owner PrivateKey) ChannelRules {
	t.Helper()
	name, err := OwnedChannelName("dev", owner.Public())
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewChannelRules(owner, name, rulesNow)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestOwnedChannelNames(t *testing.T) {
	owner := mustKey(t)
	name, err := OwnedChannelName("dev", owner.Public())
	if err != nil {
		t.Fatal(err)
	}
	if want := "dev." + owner.Public().String()[:20]; name != want {
		t.Fatalf("name %q, want %q", name, want)
	}
	if !OwnsChannel(name, owner.Public()) || OwnsChannel(name, mustKey(t).Public()) {
		t.Fatal("OwnsChannel does not tell the owner apart")
	}
	for _, tc := range []struct {
		name  string
		owned bool
	}{
		{"dev", false},
		{"dev.0123456789abcdef0123", true},
		{"a.b.0123456789abcdef0123", true},
		{".0123456789abcdef0123", false},
		{"dev.0123456789abcdef012", false},   // 19 digits
		{"dev.0123456789abcdef01234", false}, // 21 digits
		{"dev.0123456789abcdef012g", false},
		{"dev.0123456789ABCDEF0123", false},
	} {
		if got := IsOwnedChannel(tc.name); got != tc.owned {
			t.Errorf("IsOwnedChannel(%q) = %v, want %v", tc.name, got, tc.owned)
		}
	}
	if _, err := OwnedChannelName(strings.Repeat("a", MaxOwnedBaseLen+1), owner.Public()); err == nil {
		t.Error("a base of 44 characters was accepted")
	}
	if n, err := OwnedChannelName(strings.Repeat("a", MaxOwnedBaseLen), owner.Public()); err != nil || len(n) != MaxChannelLen {
		t.Errorf("longest base: %q, %v", n, err)
	}
	if _, err := OwnedChannelName("Dev", owner.Public()); err == nil {
		t.Error("an upper-case base was accepted")
	}
}

func TestChannelRulesRoundTrip(t *testing.T) {
	owner, op, bob := mustKey(t), mustKey(t), mustKey(t)
	r := ownedRules(t, owner)
	r.OpsVersion = 2
	r.SetOps([]PublicKey{op.Public()})
	r.SignOps(owner)
	r.Version = 5
	r.SetBans([]PublicKey{bob.Public()})
	r.Topic = "Go and p2p — ünïcode"
	r.Open = false
	r.Timestamp = rulesNow.UnixMilli()
	r.Sign(op)
	if err := r.Verify(rulesNow); err != nil {
		t.Fatal(err)
	}
	wire, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got ChannelRules
	if err := got.UnmarshalBinary(wire); err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(rulesNow); err != nil {
		t.Fatal(err)
	}
	again, _ := got.MarshalBinary()
	if string(again) != string(wire) {
		t.Fatal("round trip changed the wire form")
	}
	if !got.IsBanned(bob.Public()) || got.MayPost(bob.Public()) || !got.MayPost(op.Public()) || !got.MayPost(owner.Public()) {
		t.Fatal("bans or operators lost")
	}
	if got.MayPost(mustKey(t).Public()) {
		t.Fatal("a stranger may post in a moderated channel")
	}
	for i := range wire {
		if err := new(ChannelRules).UnmarshalBinary(wire[:i]); err == nil {
			t.Fatalf("truncated at %d bytes: accepted", i)
		}
	}
	if err := new(ChannelRules).UnmarshalBinary(append(wire, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

func TestChannelRulesLargest(t *testing.T) {
	owner := mustKey(t)
	r := ownedRules(t, owner)
	r.Channel = strings.Repeat("a", MaxOwnedBaseLen) + "." + Fingerprint(owner.Public())
	ops := make([]PublicKey, MaxChannelOps)
	for i := range ops {
		ops[i] = mustKey(t).Public()
	}
	bans := make([]PublicKey, MaxChannelBans)
	for i := range bans {
		bans[i] = mustKey(t).Public()
	}
	r.SetOps(ops)
	r.SetBans(bans)
	r.Topic = strings.Repeat("t", MaxTopicLen)
	r.SignOps(owner)
	r.Sign(owner)
	wire, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if len(wire) != MaxRulesRecordSize {
		t.Fatalf("largest record is %d bytes, MaxRulesRecordSize %d", len(wire), MaxRulesRecordSize)
	}
	if err := new(ChannelRules).UnmarshalBinary(wire); err != nil {
		t.Fatal(err)
	}
}

func TestChannelRulesInvalid(t *testing.T) {
	owner, op, other := mustKey(t), mustKey(t), mustKey(t)
	base := ownedRules(t, owner)
	base.SetOps([]PublicKey{op.Public()})
	base.SignOps(owner)
	base.Sign(owner)
	for _, tc := range []struct {
		name   string
		change func(r *ChannelRules)
		want   error
	}{
		{"not owned", func(r *ChannelRules) { r.Channel = "dev"; r.Sign(owner) }, ErrMalformed},
		{"owner does not match the name", func(r *ChannelRules) {
			r.Owner = other.Public()
			r.SignOps(other)
			r.Sign(other)
		}, ErrMalformed},
		{"ops not signed by the owner", func(r *ChannelRules) { r.SignOps(op); r.Sign(owner) }, ErrBadSignature},
		{"signer neither owner nor operator", func(r *ChannelRules) { r.Sign(other) }, ErrBadSignature},
		{"operator signs after being removed", func(r *ChannelRules) {
			r.OpsVersion++
			r.SetOps(nil)
			r.SignOps(owner)
			r.Sign(op)
		}, ErrBadSignature},
		{"bad record signature", func(r *ChannelRules) { r.Sig[0] ^= 1 }, ErrBadSignature},
		{"changed after signing", func(r *ChannelRules) { r.Version++ }, ErrBadSignature},
		{"dated too far ahead", func(r *ChannelRules) {
			r.Timestamp = rulesNow.Add(RulesClockSkew + time.Second).UnixMilli()
			r.Sign(owner)
		}, ErrNotYetValid},
		{"owner banned", func(r *ChannelRules) { r.SetBans([]PublicKey{owner.Public()}); r.Sign(owner) }, ErrMalformed},
		{"operator banned", func(r *ChannelRules) { r.SetBans([]PublicKey{op.Public()}); r.Sign(owner) }, ErrMalformed},
		{"owner as operator", func(r *ChannelRules) {
			r.SetOps([]PublicKey{owner.Public()})
			r.SignOps(owner)
			r.Sign(owner)
		}, ErrMalformed},
		{"unsorted bans", func(r *ChannelRules) {
			a, b := other.Public(), mustKey(t).Public()
			if comparePublicKey(a, b) < 0 {
				a, b = b, a
			}
			r.Bans = []PublicKey{a, b}
			r.Sign(owner)
		}, ErrMalformed},
		{"topic too long", func(r *ChannelRules) { r.Topic = strings.Repeat("x", MaxTopicLen+1); r.Sign(owner) }, ErrTooLarge},
		{"topic with a line break", func(r *ChannelRules) { r.Topic = "a\nb"; r.Sign(owner) }, ErrMalformed},
		{"topic with an escape", func(r *ChannelRules) { r.Topic = "a\x1b[2Jb"; r.Sign(owner) }, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base.Clone()
			tc.change(&r)
			err := r.Verify(rulesNow)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify: %v, want %v", err, tc.want)
			}
		})
	}
	if err := base.Verify(rulesNow); err != nil {
		t.Fatalf("base record: %v", err)
	}
	// open must be 0 or 1 on the wire
	wire, _ := base.MarshalBinary()
	i := len(wire) - SignatureSize - 8 - PublicKeySize - 1
	wire[i] = 2
	if err := new(ChannelRules).UnmarshalBinary(wire); !errors.Is(err, ErrMalformed) {
		t.Fatalf("open 2: %v", err)
	}
}

func rulesAndHash(t *testing.T, r *ChannelRules) (*ChannelRules, RulesHash) {
	t.Helper()
	w, err := r.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return r, HashRules(w)
}

func TestCompareRules(t *testing.T) {
	owner, op := mustKey(t), mustKey(t)
	v1 := ownedRules(t, owner)
	v1.OpsVersion = 2
	v1.SetOps([]PublicKey{op.Public()})
	v1.SignOps(owner)
	v1.Sign(owner)

	// the operator's update at Version 9
	byOp := v1.Clone()
	byOp.Version = 9
	byOp.Topic = "op's topic"
	byOp.Sign(op)

	// the owner deops at OpsVersion 3, Version 2: it wins over Version 9
	deop := v1.Clone()
	deop.OpsVersion = 3
	deop.SetOps(nil)
	deop.SignOps(owner)
	deop.Version = 2
	deop.Sign(owner)
	if err := deop.Verify(rulesNow); err != nil {
		t.Fatal(err)
	}
	a, ah := rulesAndHash(t, &byOp)
	b, bh := rulesAndHash(t, &deop)
	if CompareRules(b, bh, a, ah) != 1 || CompareRules(a, ah, b, bh) != -1 {
		t.Fatal("the owner's deop does not win over the deopped operator's higher version")
	}
	// the deopped operator's later record still carries OpsVersion 2
	late := byOp.Clone()
	late.Version = 100
	late.Sign(op)
	c, ch := rulesAndHash(t, &late)
	if CompareRules(c, ch, b, bh) != -1 {
		t.Fatal("a deopped operator's later record wins")
	}
	// same versions: the larger hash wins, the same way in both orders
	x := v1.Clone()
	x.Version = 4
	x.Topic = "x"
	x.Sign(owner)
	y := v1.Clone()
	y.Version = 4
	y.Topic = "y"
	y.Sign(op)
	xr, xh := rulesAndHash(t, &x)
	yr, yh := rulesAndHash(t, &y)
	if CompareRules(xr, xh, yr, yh) != -CompareRules(yr, yh, xr, xh) || CompareRules(xr, xh, yr, yh) == 0 {
		t.Fatal("tie-break is not antisymmetric")
	}
	if CompareRules(xr, xh, xr, xh) != 0 {
		t.Fatal("a record does not equal itself")
	}
	// higher Version wins within an OpsVersion
	z := v1.Clone()
	z.Version = 5
	z.Sign(owner)
	zr, zh := rulesAndHash(t, &z)
	if CompareRules(zr, zh, xr, xh) != 1 {
		t.Fatal("higher version does not win")
	}
}

func TestChannelKick(t *testing.T) {
	owner, bob := mustKey(t), mustKey(t)
	name, _ := OwnedChannelName("dev", owner.Public())
	k, err := NewChannelKick(owner, name, bob.Public(), "spam", rulesNow)
	if err != nil {
		t.Fatal(err)
	}
	wire, err := k.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got ChannelKick
	if err := got.UnmarshalBinary(wire); err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(); err != nil || got != k {
		t.Fatalf("round trip: %v", err)
	}
	got.Reason = "other"
	if err := got.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("changed reason: %v", err)
	}
	if _, err := NewChannelKick(owner, "dev", bob.Public(), "", rulesNow); err == nil {
		t.Fatal("kick from a channel that is not owned")
	}
	if _, err := NewChannelKick(owner, name, bob.Public(), strings.Repeat("r", MaxKickReasonLen+1), rulesNow); err == nil {
		t.Fatal("reason over the limit")
	}
	for i := range wire {
		if err := new(ChannelKick).UnmarshalBinary(wire[:i]); err == nil {
			t.Fatalf("truncated at %d bytes: accepted", i)
		}
	}
}

// Signatures of one purpose never verify for another: a rules record's
// signature is not a kick's, and the ops signature is not the record's.
func TestRulesDomainSeparation(t *testing.T) {
	owner := mustKey(t)
	r := ownedRules(t, owner)
	r.Sig = r.OpsSig
	if err := r.Verify(rulesNow); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("ops signature as record signature: %v", err)
	}
}
