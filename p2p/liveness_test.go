package p2p

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// pingConn tells a live connection from a dead one by the peer's answer
// on that connection, and a peer without the ping service is alive too.
func TestPingConnOverTheConnectionItself(t *testing.T) {
	newHost := func(opts ...libp2p.Option) host.Host {
		h, err := libp2p.New(append([]libp2p.Option{libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0")}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	a, b := newHost(), newHost()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatal(err)
	}
	conn := a.Network().ConnsToPeer(b.ID())[0]
	if err := pingConn(ctx, conn); err != nil {
		t.Fatalf("live connection: %v", err)
	}

	b.RemoveStreamHandler(ping.ID)
	if err := pingConn(ctx, conn); err != nil {
		t.Fatalf("live connection to a peer without ping: %v", err)
	}

	// A peer whose process has gone (its host closed) answers nothing.
	b.Close()
	short, cancelShort := context.WithTimeout(ctx, time.Second)
	defer cancelShort()
	if err := pingConn(short, conn); err == nil {
		t.Fatal("the connection to a closed host answered")
	}
}
