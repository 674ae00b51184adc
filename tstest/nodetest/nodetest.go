// Package nodetest runs real darkchat nodes in the test's process: a
// libp2p host on loopback with the daemon's validators (owned channels'
// rules enforced, as cmd/darkchatd wires them) and a gateway serving TCP
// sessions on 127.0.0.1:0. Client tests use it where the scripted
// tstest/clienttest server knows too little (owned channels, the mesh
// between several nodes); tests of the binaries use tstest/chatproc.
package nodetest

import (
	"context"
	"crypto/rand"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"darkchat/gateway"
	"darkchat/p2p"
	"darkchat/tstest"
)

// closeTimeout bounds a node's shutdown at the end of its test.
const closeTimeout = 10 * time.Second

// Node is one darkchat node: its mesh host and its gateway.
type Node struct {
	P2P     *p2p.Node
	Gateway *gateway.Server
	// TCPAddr is the gateway's line-framed TCP address.
	TCPAddr string
}

// Start starts a node that enforces owned channels' rules, closed when
// the test ends.
func Start(t testing.TB) *Node {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rules := gateway.NewRulesTable()
	node, err := p2p.New(p2p.Config{
		Key:             key,
		ListenIP:        netip.MustParseAddr("127.0.0.1"),
		Validator:       gateway.ChannelValidator(nil, gateway.DefaultTimestampWindow, gateway.AuthorLimit{}, nil, gateway.WithRules(rules)),
		InboxValidator:  gateway.InboxValidator(),
		BundleValidator: gateway.BundleValidator{},
		RulesValidator:  gateway.RulesValidator{},
	})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := gateway.New(gateway.Config{Rules: rules, FloodRefusals: -1}, node, node.ID().String(), nil)
	if err != nil {
		node.Close()
		t.Fatal(err)
	}
	ln, err := gateway.Listen("127.0.0.1:0")
	if err != nil {
		node.Close()
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		gw.ServeTCP(ln)
	}()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		gw.Close(ctx)
		<-served
		node.Close()
	})
	return &Node{P2P: node, Gateway: gw, TCPAddr: ln.Addr().String()}
}

// Link connects a to b.
func Link(t testing.TB, a, b *Node) {
	t.Helper()
	info := peer.AddrInfo{ID: b.P2P.ID(), Addrs: b.P2P.Host().Addrs()}
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	if err := a.P2P.Host().Connect(ctx, info); err != nil {
		t.Fatal(err)
	}
}

// WaitChannel waits until each node can send channel's messages to every
// other one carrying it (directly, as linked): a message published before
// then may reach no one.
func WaitChannel(t testing.TB, channel string, nodes ...*Node) {
	t.Helper()
	tstest.WaitFor(t, 30*time.Second, "the nodes to share "+channel, func() (bool, string) {
		for _, n := range nodes {
			peers := n.P2P.ChannelPeers(channel)
			for _, o := range nodes {
				if o != n && n.P2P.Host().Network().Connectedness(o.P2P.ID()) == network.Connected && !slices.Contains(peers, o.P2P.ID()) {
					return false, n.P2P.ID().ShortString() + " does not reach " + o.P2P.ID().ShortString()
				}
			}
		}
		return true, ""
	})
}
