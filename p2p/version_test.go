package p2p

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// syncBuffer is a log destination several goroutines may write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// lines returns the logged lines that contain every one of words.
func (s *syncBuffer) lines(words ...string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for l := range strings.Lines(s.b.String()) {
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(l, w)
		}
		if ok {
			out = append(out, l)
		}
	}
	return out
}

const oldVersionWarning = "peer runs the previous darkchat version"

// darkchatLikeHost starts a plain libp2p host announcing darkchatd's user
// agent and running GossipSub; with marker it also announces
// ChannelsProtocol, as a node of this version does.
func darkchatLikeHost(t *testing.T, marker bool) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.UserAgent("darkchatd"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if _, err := pubsub.NewGossipSub(t.Context(), h); err != nil {
		t.Fatal(err)
	}
	if marker {
		h.SetStreamHandler(ChannelsProtocol, func(s network.Stream) { s.Reset() })
	}
	return h
}

// A darkchatd peer running GossipSub without the channels marker is logged
// once, however often it is identified; one with the marker never.
func TestPreviousVersionPeerLoggedOnce(t *testing.T) {
	var logs syncBuffer
	n := newTestNode(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		c.NoDHT = true
	})
	if !contains(n.Host().Mux().Protocols(), ChannelsProtocol) {
		t.Fatalf("the node does not announce %s", ChannelsProtocol)
	}
	identified, err := n.Host().EventBus().Subscribe(new(event.EvtPeerIdentificationCompleted))
	if err != nil {
		t.Fatal(err)
	}
	defer identified.Close()
	waitIdentified := func(p peer.ID) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case e := <-identified.Out():
				if e.(event.EvtPeerIdentificationCompleted).Peer == p {
					return
				}
			case <-timeout:
				t.Fatalf("peer %s not identified within 10 s", p)
			}
		}
	}
	connect := func(h host.Host) {
		t.Helper()
		if err := h.Connect(t.Context(), peer.AddrInfo{ID: n.ID(), Addrs: n.Host().Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	warnings := func(p peer.ID) int {
		return len(logs.lines(oldVersionWarning, "level=WARN", "peer="+p.String(), "agent=darkchatd"))
	}

	current := darkchatLikeHost(t, true)
	connect(current)
	waitIdentified(current.ID())

	old := darkchatLikeHost(t, false)
	connect(old)
	waitFor(t, 10*time.Second, "the warning about the old peer", func() bool { return warnings(old.ID()) > 0 })

	// Identified again on a new connection: no second line. Another old
	// peer's line, logged after, shows the event loop got that far.
	n.Host().Network().ClosePeer(old.ID())
	waitFor(t, 10*time.Second, "the old peer to disconnect", func() bool {
		return n.Host().Network().Connectedness(old.ID()) != network.Connected
	})
	connect(old)
	waitIdentified(old.ID())
	other := darkchatLikeHost(t, false)
	connect(other)
	waitFor(t, 10*time.Second, "the warning about the other old peer", func() bool { return warnings(other.ID()) > 0 })

	if got := warnings(old.ID()); got != 1 {
		t.Errorf("old peer logged %d times, want once:\n%s", got, strings.Join(logs.lines(oldVersionWarning), ""))
	}
	if got := warnings(other.ID()); got != 1 {
		t.Errorf("other old peer logged %d times, want once", got)
	}
	if got := warnings(current.ID()); got != 0 {
		t.Errorf("peer of this version logged %d times as the previous version", got)
	}
	if all := logs.lines(oldVersionWarning); len(all) != 2 {
		t.Errorf("%d warnings, want 2:\n%s", len(all), strings.Join(all, ""))
	}
}

func TestIsOldVersionPeer(t *testing.T) {
	gossip := []protocol.ID{"/ipfs/id/1.0.0", "/meshsub/1.2.0", "/meshsub/1.1.0"}
	for _, c := range []struct {
		agent     string
		protocols []protocol.ID
		want      bool
	}{
		{"darkchatd", gossip, true},
		{"darkchatd/0.9", gossip, true},
		{"darkchatd", append(gossip[:3:3], ChannelsProtocol), false},
		{"darkchatd", []protocol.ID{"/ipfs/id/1.0.0"}, false}, // no GossipSub (yet)
		{"kubo/0.30", gossip, false},
		{"", gossip, false},
	} {
		if got := isOldVersionPeer(c.agent, c.protocols); got != c.want {
			t.Errorf("isOldVersionPeer(%q, %v) = %v, want %v", c.agent, c.protocols, got, c.want)
		}
	}
}

// The set of peers warned about is bounded and forgets the oldest first.
func TestOldPeersForgetsOldest(t *testing.T) {
	o := newOldPeers(3)
	for _, p := range []peer.ID{"a", "b", "c"} {
		if !o.add(p) {
			t.Fatalf("%s not new", p)
		}
	}
	if o.add("a") {
		t.Fatal("a added twice")
	}
	if !o.add("d") { // forgets a
		t.Fatal("d not new")
	}
	if len(o.seen) != 3 {
		t.Fatalf("remembers %d peers, want 3", len(o.seen))
	}
	if o.add("b") || o.add("c") || o.add("d") {
		t.Fatal("forgot a peer newer than the oldest")
	}
	if !o.add("a") { // a was forgotten; now b goes
		t.Fatal("a still remembered")
	}
	if !o.add("b") {
		t.Fatal("b still remembered")
	}
}
