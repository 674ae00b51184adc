package gateway

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"

	"darkchat/identity"
	"darkchat/p2p"
)

// startLineNode is startNode without the DHT, so that the nodes connect
// only as the test links them (no rendezvous discovery), with bans as its
// operator's ban list (nil: none).
func startLineNode(t *testing.T, bans *BanList) *testNode {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	node, err := p2p.New(p2p.Config{
		Key:             key,
		ListenIP:        netip.MustParseAddr("127.0.0.1"),
		Validator:       ChannelValidator(nil, DefaultTimestampWindow, AuthorLimit{}, nil, WithBans(bans)),
		InboxValidator:  InboxValidator(),
		BundleValidator: BundleValidator{},
		NoDHT:           true,
	})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := New(Config{Bans: bans}, node, node.ID().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return serveTCP(t, node, gw)
}

// loginAs is a client on node n logged in with key.
func loginAs(t *testing.T, n *testNode, key identity.PrivateKey) *client {
	t.Helper()
	c := dialTCP(t, n.tcpAddr)
	c.key = key
	c.login()
	return c
}

// expectBodies reads c's messages until it has every one of want, failing
// on any other body (but the warm-up's probes).
func expectBodies(t *testing.T, c *client, who string, want ...string) {
	t.Helper()
	for _, w := range want {
		f := c.expect("message")
		for strings.HasPrefix(f.Body, probePrefix) {
			f = c.expect("message")
		}
		if f.Body != w {
			t.Fatalf("%s got %q, want %q", who, f.Body, w)
		}
	}
}

// probePrefix starts the warm-up's messages.
const probePrefix = "probe "

// warmUp has from send probes until each of to has got one: a message
// sent before the middle node has both ends in its mesh (GossipSub grafts
// at its next heartbeat) reaches only some members.
func warmUp(t *testing.T, from *client, user string, to ...*client) {
	t.Helper()
	reached := make([]bool, len(to))
	deadline := time.Now().Add(30 * time.Second)
	for n := 0; slices.Contains(reached, false); n++ {
		if time.Now().After(deadline) {
			t.Fatalf("after %d probes, reached %v", n, reached)
		}
		from.say("lobby", user, fmt.Sprintf("%s%d", probePrefix, n))
		for i, c := range to {
			for !reached[i] {
				f, err := c.next(time.Second)
				if err != nil {
					break // not yet: another probe
				}
				if f.Type == "message" && strings.HasPrefix(f.Body, probePrefix) {
					reached[i] = true
				} else if f.Type != "ping" && f.Type != "message" {
					c.stash = append(c.stash, f)
				}
			}
		}
	}
}

// The operator of node B bans alice: B's sessions stop getting her
// messages, B forwards none of them (carol's node C is linked to A only
// through B), her session on B is closed with banned and her login there
// refused; her session on A goes on, and A's users still get her
// messages. Unban restores all of it.
func TestOperatorBanOnTheMiddleNode(t *testing.T) {
	bans := NewBanList()
	a, b, c := startLineNode(t, nil), startLineNode(t, bans), startLineNode(t, nil)
	linkNodes(t, a, b)
	linkNodes(t, c, b)

	aliceKey, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	alice := loginAs(t, a, aliceKey)
	alice.join("lobby", "alice")
	aliceOnB := loginAs(t, b, aliceKey)
	aliceOnB.join("lobby", "alice")
	dave := dialTCP(t, a.tcpAddr)
	dave.login()
	dave.join("lobby", "dave")
	bob := dialTCP(t, b.tcpAddr)
	bob.login()
	bob.join("lobby", "bob")
	carol := dialTCP(t, c.tcpAddr)
	carol.login()
	carol.join("lobby", "carol")
	waitUntil(t, 30*time.Second, "A and C to reach each other's channel through B", func() bool {
		return len(a.node.ChannelPeers("lobby")) > 0 && len(c.node.ChannelPeers("lobby")) == 1
	})

	warmUp(t, alice, "alice", bob, carol, dave, aliceOnB)
	alice.say("lobby", "alice", "before the ban")
	expectBodies(t, bob, "bob", "before the ban")
	expectBodies(t, carol, "carol", "before the ban")
	expectBodies(t, dave, "dave", "before the ban")
	expectBodies(t, aliceOnB, "alice on B", "before the ban")

	if added, err := bans.Ban(aliceKey.Public(), "spam", time.Now()); !added || err != nil {
		t.Fatalf("ban: %v, %v", added, err)
	}
	if f := aliceOnB.expectError(codeBanned); !strings.Contains(f.Message, "banned") {
		t.Fatalf("banned session told %q", f.Message)
	}
	aliceOnB.expectClosed()
	refused := dialTCP(t, b.tcpAddr)
	refused.key = aliceKey
	refused.send(refused.loginMsg())
	refused.expectError(codeBanned)
	refused.expectClosed()

	// Alice's messages leave A; dave's after them take the same path
	// (A's stream to B, B's to C). Once dave's arrive, alice's would
	// have.
	for _, body := range []string{"banned 1", "banned 2", "banned 3"} {
		alice.say("lobby", "alice", body)
	}
	expectBodies(t, dave, "dave", "banned 1", "banned 2", "banned 3")
	dave.say("lobby", "dave", "marker")
	expectBodies(t, bob, "bob", "marker")
	expectBodies(t, carol, "carol", "marker")
	if got := bans.Counts(); got.Messages < 3 || got.Logins != 1 || got.Closed != 1 {
		t.Fatalf("counts %+v, want at least 3 messages, 1 login and 1 session refused", got)
	}
	if a.node.Host().Network().Connectedness(c.node.ID()) == network.Connected {
		t.Fatal("A and C connected directly: C is no longer reachable only through B")
	}

	if removed, err := bans.Unban(aliceKey.Public()); !removed || err != nil {
		t.Fatalf("unban: %v, %v", removed, err)
	}
	alice.say("lobby", "alice", "after the unban")
	expectBodies(t, bob, "bob", "after the unban")
	expectBodies(t, carol, "carol", "after the unban")
	loginAs(t, b, aliceKey)
}

// A history answer carrying a banned author's message is ignored whole,
// before any signature is verified; one without is accepted.
func TestBannedAuthorInHistoryAnswer(t *testing.T) {
	alice, _ := identity.GenerateKey()
	bob, _ := identity.GenerateKey()
	bans := NewBanList()
	bans.Ban(alice.Public(), "", time.Now())
	validate := ChannelValidator(nil, DefaultTimestampWindow, AuthorLimit{}, nil, WithBans(bans))

	req := &historyRequestWire{channel: "lobby", limit: 10}
	if _, err := rand.Read(req.id[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := validate("", "", req.marshal()); err != nil {
		t.Fatalf("request: %v", err)
	}
	msg := func(k identity.PrivateKey, body string) []byte {
		m, err := identity.NewChannelMessage(k, "lobby", "u", body, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		b, _ := m.MarshalBinary()
		return b
	}
	mixed := marshalHistoryAnswers(req.id, "lobby", [][]byte{msg(bob, "fine"), msg(alice, "banned")})
	for _, ans := range mixed {
		if _, err := validate("", "", ans); err == nil || !strings.Contains(err.Error(), "banned") {
			t.Fatalf("answer with a banned author: %v, want ignored", err)
		}
	}
	if got := bans.Counts().Answers; got != uint64(len(mixed)) {
		t.Fatalf("answers refused %d, want %d", got, len(mixed))
	}
	for _, ans := range marshalHistoryAnswers(req.id, "lobby", [][]byte{msg(bob, "fine too")}) {
		if _, err := validate("", "", ans); err != nil {
			t.Fatalf("answer without a banned author: %v", err)
		}
	}
	// A live message of hers is ignored too, not rejected: the peer that
	// forwarded it did nothing wrong.
	if _, err := validate("", "lobby", msg(alice, "live")); err == nil || !strings.Contains(err.Error(), p2p.ErrIgnore.Error()) {
		t.Fatalf("live message of a banned author: %v, want ignored", err)
	}
}

// The list's file: created at the first ban, 0600, reloaded, bounded, and
// a file that does not parse is an error rather than no bans.
func TestBanListFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, BansFile)
	l, err := LoadBanList(path)
	if err != nil || l.Len() != 0 {
		t.Fatalf("no file: %v, %d bans", err, l.Len())
	}
	k1, _ := identity.GenerateKey()
	k2, _ := identity.GenerateKey()
	at := time.UnixMilli(1_764_086_460_123)
	if _, err := l.Ban(k1.Public(), "spam bot", at); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Ban(k2.Public(), "", at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Ban(k2.Public(), "bad\nreason", at); err == nil {
		t.Fatal("a reason with a line break was taken")
	}
	data, _ := os.ReadFile(path)
	want := k1.Public().String() + " 1764086460123 spam bot\n" + k2.Public().String() + " 1764086461123 \n"
	if string(data) != want {
		t.Fatalf("file holds %q, want %q", data, want)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
	again, err := LoadBanList(path)
	if err != nil {
		t.Fatal(err)
	}
	got := again.List()
	if len(got) != 2 || got[0].Key != k1.Public() || got[0].Reason != "spam bot" || !got[0].Since.Equal(at) || got[1].Key != k2.Public() {
		t.Fatalf("reloaded %+v", got)
	}

	for name, content := range map[string]string{
		"bad key":  "nothex 1 x\n",
		"bad time": k1.Public().String() + " yesterday x\n",
		"too long": k1.Public().String() + " 1 " + strings.Repeat("x", MaxBanReason+1) + "\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		if _, err := LoadBanList(p); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}

	full := NewBanList()
	for range MaxBans {
		k, _ := identity.GenerateKey()
		if _, err := full.Ban(k.Public(), "", at); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := full.Ban(k1.Public(), "", at); err != ErrTooManyBans {
		t.Fatalf("ban beyond MaxBans: %v", err)
	}
}
