package gateway

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"darkchat/identity"
	"darkchat/p2p"
	"darkchat/proto"
)

// startRulesNode is startNode with owned channels enforced by the node's
// validator (WithRules, the table the gateway shares) and rules records in
// the DHT; enforce false gives a node whose validator knows no rules, as a
// node that does not enforce them.
func startRulesNode(t *testing.T, enforce bool) *testNode {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	table := NewRulesTable()
	var opts []ValidatorOption
	if enforce {
		opts = append(opts, WithRules(table))
	}
	node, err := p2p.New(p2p.Config{
		Key:             key,
		ListenIP:        netip.MustParseAddr("127.0.0.1"),
		Validator:       ChannelValidator(nil, DefaultTimestampWindow, AuthorLimit{}, nil, opts...),
		InboxValidator:  InboxValidator(),
		BundleValidator: BundleValidator{},
		RulesValidator:  RulesValidator{},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{}
	if enforce {
		cfg.Rules = table
	}
	gw, err := New(cfg, node, node.ID().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return serveTCP(t, node, gw)
}

// sendRules sends rec, signed, as a rules request.
func (c *client) sendRules(rec *identity.ChannelRules) {
	c.t.Helper()
	obj, err := proto.NewRules(rec)
	if err != nil {
		c.t.Fatal(err)
	}
	c.send(obj2map(c.t, obj))
}

func obj2map(t testing.TB, obj proto.Object) map[string]any {
	b, err := proto.Encode(obj)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// expectRules waits for a rules object with rec's version and returns it
// decoded; records of older versions that come first are skipped.
func (c *client) expectRules(channel string, version int64) identity.ChannelRules {
	c.t.Helper()
	for {
		f := c.expect("rules")
		var obj proto.Rules
		if err := json.Unmarshal(f.raw, &obj); err != nil {
			c.t.Fatal(err)
		}
		rec, _, err := obj.ChannelRules()
		if err != nil {
			c.t.Fatal(err)
		}
		if rec.Channel == channel && rec.Version >= version {
			return rec
		}
	}
}

type kickedFrame struct {
	proto.Kicked
}

func (c *client) expectKicked() proto.Kicked {
	c.t.Helper()
	f := c.expect("kicked")
	var k proto.Kicked
	if err := json.Unmarshal(f.raw, &k); err != nil {
		c.t.Fatal(err)
	}
	return k
}

// expectMessageFrom reads until a message with body arrives.
func (c *client) expectBody(body string) {
	c.t.Helper()
	for {
		if f := c.expect("message"); f.Body == body {
			return
		}
	}
}

// The owner on node A bans bob: every session gets the new record, bob's
// session is taken out of the channel and told, bob's sends and joins are
// refused, and what bob still gets published through a node that does not
// enforce the rules reaches no member on A, B or C. A node that starts
// carrying the channel later learns the record (DHT and announcements).
func TestOwnedChannelBan(t *testing.T) {
	a, b, c := startRulesNode(t, true), startRulesNode(t, true), startRulesNode(t, true)
	d := startRulesNode(t, false) // does not enforce
	linkNodes(t, a, b)
	linkNodes(t, b, c)
	linkNodes(t, d, b)

	alice := dialTCP(t, a.tcpAddr)
	alice.login()
	channel, err := identity.OwnedChannelName("dev", alice.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	alice.join(channel, "alice")
	rec, err := identity.NewChannelRules(alice.key, channel, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	rec.Topic = "welcome to dev"
	rec.Sign(alice.key)
	alice.sendRules(&rec)
	if got := alice.expectRules(channel, 1); got.Topic != "welcome to dev" {
		t.Fatalf("topic %q", got.Topic)
	}

	carol := dialTCP(t, b.tcpAddr)
	carol.login()
	carol.join(channel, "carol")
	bob := dialTCP(t, c.tcpAddr)
	bob.login()
	bob.join(channel, "bob")
	// A session that joins gets the record its node holds, or the node
	// finds it (DHT, announcements).
	carol.expectRules(channel, 1)
	bob.expectRules(channel, 1)
	bobOnD := dialTCP(t, d.tcpAddr)
	bobOnD.key = bob.key
	bobOnD.login()
	bobOnD.join(channel, "bob")
	waitUntil(t, 30*time.Second, "the nodes to share the channel", func() bool {
		return len(a.node.ChannelPeers(channel)) > 0 && len(b.node.ChannelPeers(channel)) >= 3 &&
			len(c.node.ChannelPeers(channel)) > 0 && len(d.node.ChannelPeers(channel)) > 0
	})
	bob.say(channel, "bob", "hello before")
	alice.expectBody("hello before")
	carol.expectBody("hello before")

	// The ban.
	ban := rec.Clone()
	ban.Version = 2
	ban.SetBans([]identity.PublicKey{bob.key.Public()})
	ban.Timestamp = time.Now().UnixMilli()
	ban.Sign(alice.key)
	alice.sendRules(&ban)
	for _, cl := range []*client{alice, carol, bob} {
		if got := cl.expectRules(channel, 2); !got.IsBanned(bob.key.Public()) {
			t.Fatal("record without the ban")
		}
	}
	if k := bob.expectKicked(); !k.Banned || k.Key != bob.key.Public().String() || k.By != alice.key.Public().String() {
		t.Fatalf("bob told %+v", k)
	}
	bob.sendMsg(channel, "bob", "refused", nil)
	bob.expectOneOf("error") // not_joined: the ban took bob out first
	bob.send(map[string]any{"type": "join", "channel": channel, "username": "bob"})
	bob.expectError(codeChannelBanned)

	// Through D, which does not enforce the ban, bob's message is
	// published; the first enforcing node drops it.
	refused := b.gw.cfg.Rules.refused[rulesRefusedBanned].Load()
	bobOnD.say(channel, "bob", "after the ban")
	waitUntil(t, 10*time.Second, "B to drop bob's message", func() bool {
		return b.gw.cfg.Rules.refused[rulesRefusedBanned].Load() > refused
	})
	carol.say(channel, "carol", "after bob")
	alice.expectBody("after bob")
	for _, cl := range []*client{alice, carol} {
		for _, f := range cl.stash {
			if f.Type == "message" && f.Body == "after the ban" {
				t.Fatal("a member got the banned key's message")
			}
		}
	}

	// A node that starts carrying the channel later learns the record.
	e := startRulesNode(t, true)
	linkNodes(t, e, c)
	dave := dialTCP(t, e.tcpAddr)
	dave.login()
	dave.join(channel, "dave")
	start := time.Now()
	var got *proto.Rules
	waitUntil(t, 30*time.Second, "the late node's session to get the record", func() bool {
		f, err := dave.next(100 * time.Millisecond)
		if err == nil && f.Type == "rules" {
			got = new(proto.Rules)
			json.Unmarshal(f.raw, got)
		}
		return got != nil
	})
	late, _, err := got.ChannelRules()
	if err != nil || !late.IsBanned(bob.key.Public()) || late.Topic != "welcome to dev" {
		t.Fatalf("late node's record: version %d, %v", late.Version, err)
	}
	t.Logf("the late node's session got the record %v after its join", time.Since(start).Round(time.Millisecond))
}

// A kick takes the target's session out of the channel on its node and
// tells every member; the target may join again. A record signed by a
// non-operator is refused, and in a channel that is not open only
// operators may post.
func TestOwnedChannelKickAndModeration(t *testing.T) {
	a, b := startRulesNode(t, true), startRulesNode(t, true)
	linkNodes(t, a, b)
	alice := dialTCP(t, a.tcpAddr)
	alice.login()
	channel, _ := identity.OwnedChannelName("ops", alice.key.Public())
	alice.join(channel, "alice")
	rec, _ := identity.NewChannelRules(alice.key, channel, time.Now())
	alice.sendRules(&rec)
	alice.expectRules(channel, 1)
	carol := dialTCP(t, b.tcpAddr)
	carol.login()
	carol.join(channel, "carol")
	carol.expectRules(channel, 1)
	waitUntil(t, 30*time.Second, "the nodes to share the channel", func() bool {
		return len(a.node.ChannelPeers(channel)) > 0 && len(b.node.ChannelPeers(channel)) > 0
	})

	// carol is no operator: her record and her kick are refused
	forged := rec.Clone()
	forged.Version = 5
	forged.Timestamp = time.Now().UnixMilli()
	forged.Sign(carol.key)
	carol.sendRules(&forged)
	carol.expectError(codeNotOperator)
	k, _ := identity.NewChannelKick(carol.key, channel, alice.key.Public(), "", time.Now())
	ko, _ := proto.NewKick(&k)
	carol.send(obj2map(t, ko))
	carol.expectError(codeNotOperator)

	// alice kicks carol
	k, _ = identity.NewChannelKick(alice.key, channel, carol.key.Public(), "calm down", time.Now())
	ko, _ = proto.NewKick(&k)
	alice.send(obj2map(t, ko))
	if got := alice.expectKicked(); got.Key != carol.key.Public().String() || got.Reason != "calm down" {
		t.Fatalf("alice told %+v", got)
	}
	if got := carol.expectKicked(); got.Key != carol.key.Public().String() || got.By != alice.key.Public().String() || got.Banned {
		t.Fatalf("carol told %+v", got)
	}
	carol.sendMsg(channel, "carol", "still here?", nil)
	carol.expectError(codeNotJoined)
	carol.join(channel, "carol") // a kick is not a ban
	carol.say(channel, "carol", "back")
	alice.expectBody("back")

	// moderated: only operators post
	mod := rec.Clone()
	mod.Version = 2
	mod.Open = false
	mod.Timestamp = time.Now().UnixMilli()
	mod.Sign(alice.key)
	alice.sendRules(&mod)
	carol.expectRules(channel, 2)
	carol.sendMsg(channel, "carol", "may I?", nil)
	carol.expectError(codeModerated)
	alice.say(channel, "alice", "I may")
	carol.expectBody("I may")

	// an older record is stale
	alice.sendRules(&rec)
	alice.expectError(codeStaleRules)
	_ = base64.StdEncoding
}
