package p2p

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
)

// mockHosts adds n hosts to a fresh mocknet, linked and connected in a
// line. The mocknet is closed when the test ends, after the nodes (cleanups
// run last-registered first).
func mockHosts(t *testing.T, n int) []host.Host {
	t.Helper()
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	hosts := make([]host.Host, n)
	for i := range hosts {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if hosts[i], err = mn.AddPeer(k, ma.StringCast(fmt.Sprintf("/ip6/2001:db8:0:%x::1/tcp/4242", i+1))); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i < n; i++ {
		if _, err := mn.LinkPeers(hosts[i-1].ID(), hosts[i].ID()); err != nil {
			t.Fatal(err)
		}
		if _, err := mn.ConnectPeers(hosts[i-1].ID(), hosts[i].ID()); err != nil {
			t.Fatal(err)
		}
	}
	return hosts
}

// A node on a host the caller built carries channels like any other, says
// its reachability is unknown instead of guessing, and leaves the host to
// its caller.
func TestNewWithHostOnMocknet(t *testing.T) {
	for _, noDHT := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoDHT=%v", noDHT), func(t *testing.T) {
			hosts := mockHosts(t, 3)
			nodes := make([]*Node, len(hosts))
			for i, h := range hosts {
				n, err := NewWithHost(h, Config{NoDHT: noDHT, Logger: testLogger(t)})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { n.Close() })
				nodes[i] = n
			}
			subs := make([]*Subscription, len(nodes))
			for i, n := range nodes {
				var err error
				if subs[i], err = n.Subscribe("lobby", 16); err != nil {
					t.Fatal(err)
				}
			}
			// The middle node publishes: flood publishing reaches both
			// ends at once, without waiting for a heartbeat to build a
			// mesh.
			waitFor(t, 10*time.Second, "the middle node to see both ends in the channel", func() bool {
				return len(nodes[1].ChannelPeers("lobby")) == 2
			})
			if err := nodes[1].Publish(t.Context(), "lobby", []byte("over the mocknet")); err != nil {
				t.Fatal(err)
			}
			for i, s := range subs {
				if m := recv(t, s, 10*time.Second); string(m.Data) != "over the mocknet" {
					t.Fatalf("node %d got %q", i, m.Data)
				}
			}

			if r := nodes[0].Reachability(); r != network.ReachabilityUnknown {
				t.Errorf("Reachability = %v, want unknown", r)
			}
			report := nodes[0].NATReport()
			if len(report) == 0 || !strings.HasPrefix(report[0], "reachability: unknown") {
				t.Errorf("NATReport starts %q, want the unknown verdict", report)
			}
			_, err := nodes[0].GetBundle(t.Context(), "00")
			if noDHT && !errors.Is(err, ErrNoDHT) {
				t.Errorf("GetBundle without a DHT: %v, want ErrNoDHT", err)
			}

			// Close leaves the caller's host open.
			for _, s := range subs {
				s.Close()
			}
			if err := nodes[0].Close(); err != nil {
				t.Fatal(err)
			}
			if got := hosts[0].Network().Connectedness(hosts[1].ID()); got != network.Connected {
				t.Errorf("after Close, the host's connection to its peer is %v: the node closed a host it does not own", got)
			}
		})
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("DARKCHAT_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
