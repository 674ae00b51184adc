package p2p

import (
	"context"
	"crypto/sha256"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"log/slog"
	"maps"
	"strconv"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestTopicFilterAdmitsOnlyDarkchatNamespaces(t *testing.T) {
	for topic, want := range map[string]bool{
		"darkchat/v2/channel/lobby":                       true,
		"darkchat/v2/channel/a.b_c-9":                     true,
		"darkchat/v1/dm/0":                                true,
		"darkchat/v1/dm/1023":                             true,
		"darkchat/v2/history":                             true,
		"darkchat/v1/dm/01":                               false,
		"darkchat/v1/dm/10000":                            false,
		"darkchat/v2/channel/Lobby":                       false,
		"darkchat/v2/channel/":                            false,
		"darkchat/v2/channel/a/b":                         false,
		"darkchat/v1/other/lobby":                         false,
		"darkchat/v2/channel/" + string(make([]byte, 65)): false,
		// the previous version's channels, and namespaces never used
		"darkchat/v1/channel/lobby": false,
		"darkchat/v2/dm/0":          false,
		"darkchat/v1/history":       false,
	} {
		if got := topicFilter.MatchString(topic); got != want {
			t.Errorf("topicFilter(%q) = %v, want %v", topic, got, want)
		}
	}
	for shard := range MaxInboxShards + 1 {
		if got, want := topicFilter.MatchString(inboxTopicPrefix+strconv.Itoa(shard)), shard < MaxInboxShards; got != want {
			t.Errorf("inbox shard %d admitted %v, want %v (MaxInboxShards %d)", shard, got, want, MaxInboxShards)
		}
	}
}

// A node of the previous version announces its channels on
// darkchat/v1/channel/: each costs a subscription token, as any topic
// outside the filter, and no place in the peer's topics; a full node's
// announcement (channels and DM shards) is not a violation.
func TestPreviousVersionChannelTopicsCostNoBan(t *testing.T) {
	var banned []peer.ID
	g := newPeerGuard(slog.New(slog.DiscardHandler), func(p peer.ID) { banned = append(banned, p) }, func(peer.ID) string { return "198.18.0.9" })
	yes := true
	sub := func(topics ...string) *pubsub.RPC {
		rpc := &pubsub.RPC{}
		for _, topic := range topics {
			rpc.Subscriptions = append(rpc.Subscriptions, &pb.RPC_SubOpts{Subscribe: &yes, Topicid: &topic})
		}
		return rpc
	}
	var topics []string
	for i := range subscribeBurst - 64 {
		topics = append(topics, "darkchat/v1/channel/c"+strconv.Itoa(i))
	}
	for shard := range 64 {
		topics = append(topics, inboxTopicPrefix+strconv.Itoa(shard))
	}
	if err := g.inspect("old", sub(topics...)); err != nil {
		t.Fatalf("a previous-version node's subscriptions: %v", err)
	}
	g.mu.Lock()
	held, tokens := len(g.peers["old"].topics), g.peers["old"].subTokens
	g.mu.Unlock()
	if held != 64 {
		t.Errorf("the peer holds %d topics, want its 64 DM shards alone", held)
	}
	if tokens >= 1 {
		t.Errorf("%v subscription tokens left after %d announcements (burst %d): unknown topics were free", tokens, len(topics), subscribeBurst)
	}
	if len(banned) > 0 {
		t.Fatalf("banned %v", banned)
	}
}

// A peer that announces more topics than a peer may hold is disconnected
// and refused, while an honest peer stays.
func TestSubscriptionFloodBansPeer(t *testing.T) {
	victim := newTestNode(t, nil)
	honest := newTestNode(t, nil)
	link(t, honest, victim)
	if _, err := honest.Subscribe("lobby", 8); err != nil {
		t.Fatal(err)
	}

	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ps, err := pubsub.NewGossipSub(t.Context(), h, pubsub.WithNoAuthor(), pubsub.WithMessageIdFn(messageID))
	if err != nil {
		t.Fatal(err)
	}
	victimInfo := peer.AddrInfo{ID: victim.ID(), Addrs: victim.Host().Addrs()}
	if err := h.Connect(t.Context(), victimInfo); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range maxTopicsPerPeer + 200 {
		topic, err := ps.Join(channelTopicPrefix + "t" + strconv.Itoa(i))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := topic.Subscribe(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the victim to disconnect the flooding peer", func() bool {
		return victim.Host().Network().Connectedness(h.ID()) != network.Connected
	})
	t.Logf("flooding peer disconnected %v after it started", time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := h.Connect(ctx, victimInfo); err == nil {
		// The gater refuses it during the security handshake; the dialer
		// may see that as a closed connection a moment later.
		waitFor(t, 5*time.Second, "the banned peer's new connection to close", func() bool {
			return victim.Host().Network().Connectedness(h.ID()) != network.Connected
		})
	}
	if victim.Host().Network().Connectedness(honest.ID()) != network.Connected {
		t.Fatal("the honest peer was disconnected too")
	}
	if !victim.guard.isBanned(h.ID()) {
		t.Fatal("the flooding peer is not banned")
	}
}

// Many peer IDs flooding a channel with invalid messages are each banned
// after a handful of strikes, the flood costs honest peers nothing, and
// the node logs a summary rather than a line per message.
func TestInvalidFloodBansEveryAttacker(t *testing.T) {
	const attackers, perAttacker, honestMsgs = 24, 2000, 300
	withValidator := func(c *Config) { c.Validator = okValidator }
	victim := newTestNode(t, withValidator)
	honest := newTestNode(t, withValidator)
	link(t, honest, victim)
	subV, err := victim.Subscribe("lobby", honestMsgs+16)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := honest.Subscribe("lobby", honestMsgs+16); err != nil { // its own messages come back to it
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the honest node to see the victim in the channel", func() bool {
		return contains(honest.ChannelPeers("lobby"), victim.ID())
	})

	var ids []peer.ID
	var topics []*pubsub.Topic
	for range attackers {
		h, topic := stockAttacker(t, victim, "lobby")
		ids = append(ids, h.ID())
		topics = append(topics, topic)
	}
	for _, topic := range topics {
		waitFor(t, 10*time.Second, "the attacker to see the victim in the channel", func() bool {
			return contains(topic.ListPeers(), victim.ID())
		})
	}

	start := time.Now()
	done := make(chan struct{})
	for i, topic := range topics {
		go func() {
			defer func() { done <- struct{}{} }()
			for j := range perAttacker {
				if topic.Publish(t.Context(), []byte("bad "+strconv.Itoa(i)+"/"+strconv.Itoa(j))) != nil {
					return
				}
			}
		}()
	}
	for i := range honestMsgs {
		if err := honest.Publish(t.Context(), "lobby", []byte("ok:"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	got := make(map[string]bool)
	for len(got) < honestMsgs {
		m := recv(t, subV, 20*time.Second)
		got[m.Payload.(string)] = true
	}
	for range topics {
		<-done
	}
	waitFor(t, 10*time.Second, "every attacker to be banned and disconnected", func() bool {
		for _, id := range ids {
			if !victim.guard.isBanned(id) || victim.Host().Network().Connectedness(id) == network.Connected {
				return false
			}
		}
		return true
	})
	t.Logf("%d attackers banned, %d honest messages delivered, %v after the flood began", attackers, honestMsgs, time.Since(start).Round(time.Millisecond))
	if victim.Host().Network().Connectedness(honest.ID()) != network.Connected || victim.guard.isBanned(honest.ID()) {
		t.Fatal("the honest peer was disconnected or banned")
	}
}

// Gossip control is budgeted per peer: what an honest router sends in a
// heartbeat passes, a stream of IDs or GRAFTs bans the peer.
func TestControlSpamBansPeer(t *testing.T) {
	var banned []peer.ID
	g := newPeerGuard(slog.New(slog.DiscardHandler), func(p peer.ID) { banned = append(banned, p) }, func(peer.ID) string { return "198.18.0.9" })
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = strconv.Itoa(i)
		}
		return out
	}
	topic := channelTopicPrefix + "lobby"
	ihave := func(n int) *pubsub.RPC {
		return &pubsub.RPC{RPC: pb.RPC{Control: &pb.ControlMessage{Ihave: []*pb.ControlIHave{{TopicID: &topic, MessageIDs: ids(n)}}}}}
	}
	graft := &pubsub.RPC{RPC: pb.RPC{Control: &pb.ControlMessage{Graft: []*pb.ControlGraft{{TopicID: &topic}}}}}
	// An honest heartbeat in three busy channels: a full IHAVE and a
	// GRAFT for each.
	for range 3 {
		if err := g.inspect("honest", ihave(5000)); err != nil {
			t.Fatalf("an honest IHAVE: %v", err)
		}
		if err := g.inspect("honest", graft); err != nil {
			t.Fatalf("an honest GRAFT: %v", err)
		}
	}
	var err error
	for i := 0; i < 100 && err == nil; i++ { // 500,000 IDs
		err = g.inspect("spammer", ihave(5000))
	}
	if err == nil {
		t.Fatal("500,000 IHAVE IDs at once were accepted")
	}
	err = nil
	for i := 0; i <= 2*meshChangeBurst && err == nil; i++ {
		err = g.inspect("grafter", graft)
	}
	if err == nil {
		t.Fatal("a stream of GRAFTs was accepted")
	}
	if len(banned) != 2 || banned[0] != "spammer" || banned[1] != "grafter" {
		t.Fatalf("banned %v, want the spammer and the grafter", banned)
	}
	if err := g.inspect("honest", ihave(10)); err != nil {
		t.Fatalf("the honest peer after the spam: %v", err)
	}
}

// A peer whose messages the validator keeps ignoring is banned once it
// runs past what an honest peer's own node would have let through.
func TestIgnoredFloodBansPeer(t *testing.T) {
	var banned []peer.ID
	g := newPeerGuard(slog.New(slog.DiscardHandler), func(p peer.ID) { banned = append(banned, p) }, func(peer.ID) string { return "" })
	g.mu.Lock()
	g.budgetLocked("flooder", time.Now())
	g.budgetLocked("relay", time.Now())
	g.mu.Unlock()
	for range ignoredBurst / 2 {
		g.ignored("relay")
	}
	for i := 0; i < 2*ignoredBurst && len(banned) == 0; i++ {
		g.ignored("flooder")
	}
	if len(banned) != 1 || banned[0] != "flooder" {
		t.Fatalf("banned %v, want the flooder alone", banned)
	}
}

// Peers that each stay within their own budget of ignored messages but
// together run past the node's: heavy ones are banned until what is left
// fits the node's rate; a peer ignored a hundred times a second is not.
func TestIgnoredFloodAcrossPeersBansHeavyOnes(t *testing.T) {
	banned := map[peer.ID]bool{}
	g := newPeerGuard(slog.New(slog.DiscardHandler), func(p peer.ID) { banned[p] = true }, func(peer.ID) string { return "" })
	now := time.Now()
	flooders := []peer.ID{"f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8"}
	g.mu.Lock()
	for _, p := range append(flooders, "relay") {
		g.budgetLocked(p, now)
	}
	g.mu.Unlock()
	// 8 peers at 1,500 ignored messages a second each (under ignoredRate)
	// and the relay at 100 a second, for 10 s, in steps of 10 ms.
	for step := range 1000 {
		at := now.Add(time.Duration(step) * 10 * time.Millisecond)
		for _, p := range flooders {
			for i := 0; i < 15 && !banned[p]; i++ { // a banned peer is disconnected
				g.ignoredAt(p, at)
			}
		}
		g.ignoredAt("relay", at)
	}
	left := 0
	for _, p := range flooders {
		if !banned[p] {
			left++
		}
	}
	if rate := left*1500 + 100; rate > nodeIgnoredRate {
		t.Errorf("%d of 8 flooders left, ignored %d times a second with the relay, want at most the node's %d", left, rate, nodeIgnoredRate)
	}
	if banned["relay"] {
		t.Error("the relay, ignored 100 times a second, was banned")
	}
}

// An address's accept budget after bans: suspectAcceptBurst at once, then
// suspectAcceptRate a second up to suspectIPBans bans, and less as its
// bans mount, so a rotating attacker's address costs ever fewer
// handshakes.
func TestAcceptBudgetShrinksWithBans(t *testing.T) {
	g := newPeerGuard(slog.New(slog.DiscardHandler), func(peer.ID) {}, func(peer.ID) string { return "" })
	now := time.Now()
	accepted := func(ip string, bans int) int {
		g.ipBans[ip] = &ipBanCount{n: bans, last: now}
		n := 0
		for i := range 100 { // 10 s, a try every 100 ms
			if g.allowAcceptAt(ip, now.Add(time.Duration(i)*100*time.Millisecond)) {
				n++
			}
		}
		return n
	}
	if n := accepted("198.18.0.1", suspectIPBans); n < suspectAcceptBurst+18 || n > suspectAcceptBurst+20 {
		t.Errorf("%d bans: %d connections in 10 s, want %d at once and %d a second", suspectIPBans, n, suspectAcceptBurst, suspectAcceptRate)
	}
	if n := accepted("198.18.0.2", 40); n < suspectAcceptBurst+1 || n > suspectAcceptBurst+2 {
		t.Errorf("40 bans: %d connections in 10 s, want %d at once and %v a second", n, suspectAcceptBurst, acceptRate(40))
	}
	if r := acceptRate(100_000); r != minSuspectAcceptRate {
		t.Errorf("acceptRate of many bans = %v, want the floor %v", r, minSuspectAcceptRate)
	}
	if !g.allowAcceptAt("198.18.0.3", now) {
		t.Error("an address without bans was refused")
	}
}

// A receiver that verifies more slowly than its peer publishes pushes back
// instead of dropping: it stops reading the peer's stream while the peer's
// messages wait for validation, the peer's queue fills and its publisher
// waits. Every message published reaches the receiver's member, once,
// and nothing is dropped on either node.
func TestSlowReceiverPushesBack(t *testing.T) {
	const msgs = 20_000
	// slowValidator does real work per message (hashing), several times
	// what the publisher's validator does, as a busier or slower machine
	// would.
	slowValidator := func(from peer.ID, channel string, data []byte) (any, error) {
		h := sha256.Sum256(data)
		for range 400 {
			h = sha256.Sum256(h[:])
		}
		return okValidator(from, channel, data)
	}
	sender := newTestNode(t, func(c *Config) { c.Validator = okValidator })
	receiver := newTestNode(t, func(c *Config) { c.Validator = slowValidator })
	link(t, sender, receiver)
	sub, err := receiver.Subscribe("lobby", msgs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sender.Subscribe("lobby", msgs); err != nil { // its own messages come back to it
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the sender to see the receiver in the channel", func() bool {
		return contains(sender.ChannelPeers("lobby"), receiver.ID())
	})
	start := time.Now()
	for i := range msgs {
		if err := sender.Publish(t.Context(), "lobby", []byte("ok:"+strconv.Itoa(i))); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	published := time.Since(start)
	got := make(map[string]bool, msgs)
	for len(got) < msgs {
		m := recv(t, sub, 20*time.Second)
		if got[m.Payload.(string)] {
			t.Fatalf("message %s delivered twice", m.Payload)
		}
		got[m.Payload.(string)] = true
	}
	t.Logf("%d messages published in %v, all received after %v", msgs, published.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	for name, n := range map[string]*Node{"sender": sender, "receiver": receiver} {
		if d, ns := n.drops.dropped.Load(), n.drops.notSent.Load(); d != 0 || ns != 0 {
			t.Errorf("%s: %d messages dropped in its queues, %d not queued to a peer", name, d, ns)
		}
		n.guard.mu.Lock()
		refused := maps.Clone(n.guard.refused)
		n.guard.mu.Unlock()
		if len(refused) != 0 {
			t.Errorf("%s: the guard refused %v", name, refused)
		}
	}
}
