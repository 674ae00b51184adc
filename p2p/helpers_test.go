package p2p

import (
	"crypto/rand"
	"log/slog"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// newTestNode starts a node on 127.0.0.1 with free ports; edit lets a test
// adjust the config. The node is closed when the test ends.
func newTestNode(t testing.TB, edit func(*Config)) *Node {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Key: key, ListenIP: netip.MustParseAddr("127.0.0.1")}
	if os.Getenv("DARKCHAT_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if edit != nil {
		edit(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// tcpAddr returns n's TCP listen address as "ip:port".
func tcpAddr(t testing.TB, n *Node) netip.AddrPort {
	t.Helper()
	for _, a := range n.Host().Network().ListenAddresses() {
		if ip, port, err := ipPortOf(a); err == nil {
			if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
				return netip.AddrPortFrom(ip, uint16(port))
			}
		}
	}
	t.Fatalf("node %s has no TCP listen address", n.ID())
	return netip.AddrPort{}
}

// link connects a to b by full address info.
func link(t testing.TB, a, b *Node) {
	t.Helper()
	info := peer.AddrInfo{ID: b.ID(), Addrs: b.Host().Addrs()}
	if err := a.Host().Connect(t.Context(), info); err != nil {
		t.Fatalf("connect %s -> %s: %v", a.ID(), b.ID(), err)
	}
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recv returns the next message on s or fails after timeout.
func recv(t testing.TB, s *Subscription, timeout time.Duration) *Message {
	t.Helper()
	select {
	case m, ok := <-s.C():
		if !ok {
			t.Fatalf("subscription ended: %v", s.Err())
		}
		return m
	case <-time.After(timeout):
		t.Fatalf("no message within %v", timeout)
		return nil
	}
}

// stockAttacker starts a libp2p host running stock GossipSub without any
// validation, joined to channel and connected to victim: a peer that
// forwards whatever it is told to.
func stockAttacker(t testing.TB, victim *Node, channel string) (host.Host, *pubsub.Topic) {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ps, err := pubsub.NewGossipSub(t.Context(), h, pubsub.WithNoAuthor(), pubsub.WithMessageIdFn(messageID), pubsub.WithFloodPublish(true))
	if err != nil {
		t.Fatal(err)
	}
	topic, err := ps.Join(channelTopicPrefix + channel)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := topic.Subscribe(); err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(t.Context(), peer.AddrInfo{ID: victim.ID(), Addrs: victim.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	return h, topic
}
