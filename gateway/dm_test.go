package gateway

import (
	"bytes"
	"encoding/base64"
	"fmt"

	"encoding/json"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"strings"
	"testing"
	"time"

	"darkchat/identity"
)

// loginWithBundle logs c in with a fresh key bundle.
func (c *client) loginWithBundle() {
	c.t.Helper()
	b, err := identity.NewKeyBundle(c.key, time.Now(), time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	raw, err := b.Marshal()
	if err != nil {
		c.t.Fatal(err)
	}
	m := c.loginMsg()
	m["bundle"] = base64.StdEncoding.EncodeToString(raw)
	c.send(m)
	c.expect("welcome")
}

// whois fetches and verifies key's bundle through the gateway.
func (c *client) whois(key identity.PublicKey) identity.KeyBundle {
	c.t.Helper()
	c.send(map[string]any{"type": "whois", "key": key.String()})
	f := c.expect("bundle")
	var bf struct{ Key, Bundle string }
	json.Unmarshal(f.raw, &bf)
	raw, _ := base64.StdEncoding.DecodeString(bf.Bundle)
	var b identity.KeyBundle
	if err := b.Unmarshal(raw); err != nil {
		c.t.Fatal(err)
	}
	if err := b.Verify(key, time.Now()); err != nil {
		c.t.Fatalf("bundle for %s does not verify: %v", key, err)
	}
	return b
}

func (c *client) sendDM(ref string, env []byte) {
	c.send(map[string]any{"type": "dm", "ref": ref, "envelope": base64.StdEncoding.EncodeToString(env)})
}

// nextDM reads the next delivered envelope.
func (c *client) nextDM() []byte {
	c.t.Helper()
	f := c.expect("dm")
	var df struct{ Envelope string }
	json.Unmarshal(f.raw, &df)
	env, err := base64.StdEncoding.DecodeString(df.Envelope)
	if err != nil {
		c.t.Fatal(err)
	}
	return env
}

// A DM from alice (TCP on A) reaches carol (WebSocket on C) through B, and
// carol's receipt reaches alice; the nodes see only sealed envelopes.
func TestDMAcrossThreeNodes(t *testing.T) {
	a, b, c := startNode(t, nil), startNode(t, nil), startNode(t, nil)
	linkNodes(t, a, b)
	linkNodes(t, c, b)
	alice := dialTCP(t, a.tcpAddr)
	alice.loginWithBundle()
	carol := dialWS(t, c.wsURL)
	carol.loginWithBundle()

	var carolBundle identity.KeyBundle
	waitUntil(t, 30*time.Second, "carol's bundle to be found from A", func() bool {
		alice.send(map[string]any{"type": "whois", "key": carol.key.Public().String()})
		for {
			f, err := alice.next(10 * time.Second)
			if err != nil {
				t.Fatal(err)
			}
			switch f.Type {
			case "bundle":
				var bf struct{ Bundle string }
				json.Unmarshal(f.raw, &bf)
				raw, _ := base64.StdEncoding.DecodeString(bf.Bundle)
				return carolBundle.Unmarshal(raw) == nil && carolBundle.Verify(carol.key.Public(), time.Now()) == nil
			case "error":
				if f.Code != codeUnknownUser {
					t.Fatalf("whois: %s", f.raw)
				}
				return false
			}
		}
	})
	env, id, err := identity.SealDM(alice.key, carolBundle, "alice", "hello carol", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	alice.sendDM("r1", env)
	if f := alice.expect("dm_sent"); !strings.Contains(string(f.raw), `"ref":"r1"`) {
		t.Fatalf("dm_sent: %s", f.raw)
	}
	carolDM, _ := carol.key.DMKey()
	got, err := identity.OpenDM(carolDM, carol.nextDM())
	if err != nil {
		t.Fatal(err)
	}
	if got.Body != "hello carol" || got.Sender != alice.key.Public() || got.Username != "alice" || got.ID != id {
		t.Fatalf("carol opened %+v", got)
	}

	// Carol's receipt travels back the same way.
	aliceBundle := carol.whois(alice.key.Public())
	receipt, _, err := identity.SealReceipt(carol.key, aliceBundle, got.ID, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	carol.sendDM("rc1", receipt)
	carol.expect("dm_sent")
	aliceDM, _ := alice.key.DMKey()
	r, err := identity.OpenDM(aliceDM, alice.nextDM())
	if err != nil || r.Kind != identity.DMKindReceipt || r.Ack != id || r.Sender != carol.key.Public() {
		t.Fatalf("alice's receipt: %+v, %v", r, err)
	}

	// The same envelope again is refused by the node, so a replay never
	// reaches carol twice.
	alice.sendDM("r1-again", env)
	alice.expectError(codeDuplicate)
}

func TestDMErrors(t *testing.T) {
	a := startNode(t, nil)
	alice := dialTCP(t, a.tcpAddr)
	alice.loginWithBundle()
	nobody, _ := identity.GenerateKey()

	alice.send(map[string]any{"type": "whois", "key": nobody.Public().String()})
	if f := alice.expectError(codeUnknownUser); !strings.Contains(string(f.raw), nobody.Public().String()) {
		t.Fatalf("unknown_user does not name the key: %s", f.raw)
	}
	alice.send(map[string]any{"type": "whois", "key": "zz"})
	alice.expectError(codeBadKey)

	// Garbage, truncated and oversized envelopes never leave the node.
	self := alice.whois(alice.key.Public())
	env, _, _ := identity.SealDM(alice.key, self, "alice", "note to self", time.Now())
	for name, bad := range map[string][]byte{
		"garbage":   []byte("not an envelope"),
		"truncated": env[:len(env)-1],
		"extended":  append(append([]byte(nil), env...), 0),
		"oversized": make([]byte, identity.MaxEnvelopeSize+100),
	} {
		alice.sendDM(name, bad)
		if f := alice.expectError(codeBadEnvelope); !strings.Contains(string(f.raw), `"ref":"`+name+`"`) {
			t.Fatalf("%s: %s", name, f.raw)
		}
	}
	alice.send(map[string]any{"type": "dm", "ref": "x", "envelope": "***"})
	alice.expectError(codeBadEnvelope)

	// A DM to oneself is delivered locally.
	alice.sendDM("self", env)
	alice.expect("dm_sent")
	mine, _ := alice.key.DMKey()
	if m, err := identity.OpenDM(mine, alice.nextDM()); err != nil || m.Body != "note to self" {
		t.Fatalf("self DM: %+v %v", m, err)
	}

	// A bundle signed by another key fails the login.
	eve := dialTCP(t, a.tcpAddr)
	other, _ := identity.NewKeyBundle(nobody, time.Now(), time.Hour)
	raw, _ := other.Marshal()
	m := eve.loginMsg()
	m["bundle"] = base64.StdEncoding.EncodeToString(raw)
	eve.send(m)
	eve.expectError(codeBadBundle)
	eve.expectClosed()
}

// A DM to a user whose inbox no node serves reports no_route in time.
func TestDMToOfflineUserHasNoRoute(t *testing.T) {
	a, b := startNode(t, nil), startNode(t, nil)
	linkNodes(t, a, b)
	alice := dialTCP(t, a.tcpAddr)
	alice.loginWithBundle()
	// A recipient on another shard than alice's, with a valid bundle but
	// no session anywhere.
	var offline identity.PrivateKey
	for {
		offline, _ = identity.GenerateKey()
		if shardOf(offline.Public()) != shardOf(alice.key.Public()) {
			break
		}
	}
	bundle, _ := identity.NewKeyBundle(offline, time.Now(), time.Hour)
	env, _, _ := identity.SealDM(alice.key, bundle, "alice", "are you there?", time.Now())
	start := time.Now()
	alice.sendDM("o1", env)
	f, err := alice.next(dmTimeout + 5*time.Second)
	if err != nil || f.Code != codeNoRoute || !strings.Contains(string(f.raw), `"ref":"o1"`) {
		t.Fatalf("got %s, %v; want no_route for o1", f.raw, err)
	}
	t.Logf("no_route after %v", time.Since(start))
	// The session is still usable.
	alice.send(map[string]any{"type": "ping"})
	alice.expect("pong")
}

// What travels on the mesh is sealed: an observer subscribed to every inbox
// shard sees envelopes that contain neither the text nor the sender's key.
func TestDMGossipIsSealed(t *testing.T) {
	a := startNode(t, nil)
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ps, err := pubsub.NewGossipSub(t.Context(), h, pubsub.WithNoAuthor())
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan []byte, 64)
	for shard := range identity.DMShards {
		topic, err := ps.Join(fmt.Sprintf("darkchat/v1/dm/%d", shard))
		if err != nil {
			t.Fatal(err)
		}
		sub, err := topic.Subscribe()
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				m, err := sub.Next(t.Context())
				if err != nil {
					return
				}
				seen <- m.Data
			}
		}()
	}
	if err := h.Connect(t.Context(), peer.AddrInfo{ID: a.node.ID(), Addrs: a.node.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	alice := dialTCP(t, a.tcpAddr)
	alice.loginWithBundle()
	// The recipient is offline; the observer serves every shard, so the
	// envelope is routed to it.
	carol, _ := identity.GenerateKey()
	bundle, _ := identity.NewKeyBundle(carol, time.Now(), time.Hour)
	secret := "meet me by the old mill"
	env, _, _ := identity.SealDM(alice.key, bundle, "alice", secret, time.Now())
	alice.sendDM("s1", env)
	f, err := alice.next(dmTimeout + 5*time.Second)
	if err != nil || f.Type != "dm_sent" {
		t.Fatalf("got %s, %v", f.raw, err)
	}
	select {
	case data := <-seen:
		pub := alice.key.Public()
		for what, b := range map[string][]byte{
			"text":           []byte(secret),
			"sender key":     pub[:],
			"sender key hex": []byte(pub.String()),
			"username":       []byte("alice"),
			"recipient key":  func() []byte { k := carol.Public(); return k[:] }(),
		} {
			if bytes.Contains(data, b) {
				t.Errorf("the envelope on the mesh contains the %s", what)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the observer never saw the envelope")
	}
}
