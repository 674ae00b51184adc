package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"darkchat/p2p"
)

const (
	selfID  = "12D3KooWKGtD5wXAb8pPtFMzC2yzKXiAi42ZQqidhcD9QvcwPzt1"
	otherID = "12D3KooWSyjGCGhCkfJMheL6isom4x6gMvG6sGy1xN5HgQ6fpTAV"
)

// fakeNode records what the console asks of the node.
type fakeNode struct {
	peers    []p2p.PeerInfo
	channels map[string]int
	connErr  error
	block    bool // Connect waits for ctx
	calls    []string
}

func (f *fakeNode) ID() peer.ID { return peer.ID(mustDecode(selfID)) }
func (f *fakeNode) Addrs() []ma.Multiaddr {
	return []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4001/p2p/" + selfID)}
}
func (f *fakeNode) Peers() []p2p.PeerInfo    { return f.peers }
func (f *fakeNode) Channels() map[string]int { return f.channels }
func (f *fakeNode) NATReport() []string {
	return []string{"reachability: unknown", "relay reservations: none"}
}

func (f *fakeNode) Connect(ctx context.Context, target string) (peer.ID, error) {
	f.calls = append(f.calls, "Connect "+target)
	return f.connect(ctx)
}

func (f *fakeNode) ConnectAddress(ctx context.Context, ip netip.Addr, port int) (peer.ID, error) {
	f.calls = append(f.calls, "ConnectAddress "+netip.AddrPortFrom(ip, uint16(port)).String())
	return f.connect(ctx)
}

func (f *fakeNode) connect(ctx context.Context) (peer.ID, error) {
	if f.block {
		<-ctx.Done()
		return "", ctx.Err()
	}
	if f.connErr != nil {
		return "", f.connErr
	}
	return peer.ID(mustDecode(otherID)), nil
}

func mustDecode(s string) peer.ID {
	id, err := peer.Decode(s)
	if err != nil {
		panic(err)
	}
	return id
}

func TestConsoleExec(t *testing.T) {
	relayAddr := ma.StringCast("/ip4/1.2.3.4/tcp/1/p2p/" + selfID + "/p2p-circuit")
	cases := []struct {
		name  string
		node  *fakeNode
		line  string
		want  []string // exact output, or
		error string   // a substring of the single ERROR line
		calls []string
	}{
		{name: "blank", node: &fakeNode{}, line: "   ", want: nil},
		{name: "no peers", node: &fakeNode{}, line: "peers", want: []string{"No Peers Connected !"}},
		{
			name: "peers", line: " peers ",
			node: &fakeNode{peers: []p2p.PeerInfo{
				{ID: mustDecode(otherID), Addr: ma.StringCast("/ip4/10.0.0.2/udp/4001/quic-v1")},
				{ID: mustDecode(selfID), Addr: relayAddr, Relayed: true},
			}},
			want: []string{
				"CONNECTED PEERS (2):",
				"1. " + otherID + " /ip4/10.0.0.2/udp/4001/quic-v1 direct",
				"2. " + selfID + " " + relayAddr.String() + " relayed",
			},
		},
		{name: "id", node: &fakeNode{}, line: "id", want: []string{selfID, "/ip4/127.0.0.1/tcp/4001/p2p/" + selfID}},
		{name: "no channels", node: &fakeNode{}, line: "channels", want: []string{"No Channels"}},
		{
			name: "channels", line: "channels",
			node: &fakeNode{channels: map[string]int{"zeta": 1, "alpha": 3}},
			want: []string{"CHANNELS (2):", "1. alpha 3 members", "2. zeta 1 member"},
		},
		{name: "nat", node: &fakeNode{}, line: "nat", want: []string{"reachability: unknown", "relay reservations: none"}},
		{
			name: "connect by address", node: &fakeNode{}, line: "connect 10.0.0.2 4001",
			want:  []string{"Connected to " + otherID + " (learned its ID from 10.0.0.2:4001)"},
			calls: []string{"ConnectAddress 10.0.0.2:4001"},
		},
		{
			name: "connect by IPv6 address", node: &fakeNode{}, line: "connect ::1 4001",
			want:  []string{"Connected to " + otherID + " (learned its ID from [::1]:4001)"},
			calls: []string{"ConnectAddress [::1]:4001"},
		},
		{
			name: "connect by multiaddr", node: &fakeNode{}, line: "connect /ip4/10.0.0.2/tcp/4001/p2p/" + otherID,
			want:  []string{"Connected to " + otherID},
			calls: []string{"Connect /ip4/10.0.0.2/tcp/4001/p2p/" + otherID},
		},
		{
			name: "connect by multiaddr without id", node: &fakeNode{}, line: "connect /ip4/10.0.0.2/tcp/4001",
			want:  []string{"Connected to " + otherID + " (learned its ID from /ip4/10.0.0.2/tcp/4001)"},
			calls: []string{"Connect /ip4/10.0.0.2/tcp/4001"},
		},
		{
			name: "connect ip:port", node: &fakeNode{}, line: "connect 10.0.0.2:4001",
			want:  []string{"Connected to " + otherID + " (learned its ID from 10.0.0.2:4001)"},
			calls: []string{"Connect 10.0.0.2:4001"},
		},
		{name: "connect without args", node: &fakeNode{}, line: "connect", error: "wrong number of arguments"},
		{name: "connect without port", node: &fakeNode{}, line: "connect 10.0.0.2", error: "missing <peer-port>"},
		{name: "connect port zero", node: &fakeNode{}, line: "connect 10.0.0.2 0", error: "not a port number"},
		{name: "connect bad host", node: &fakeNode{}, line: "connect example.org 4001", error: "not an IP address"},
		{name: "connect bad multiaddr", node: &fakeNode{}, line: "connect /ip9/x", error: "bad multiaddr"},
		{
			name: "connect fails", line: "connect 10.0.0.2 4001",
			node:  &fakeNode{connErr: errors.New("dial failed:\n  * [/ip4/10.0.0.2/tcp/4001] refused\n  * [/ip4/10.0.0.2/udp/4001/quic-v1] timeout")},
			error: "dial failed:; * [/ip4/10.0.0.2/tcp/4001] refused; * [/ip4/10.0.0.2/udp/4001/quic-v1] timeout",
		},
		{name: "connect times out", node: &fakeNode{block: true}, line: "connect 10.0.0.2 4001", error: "no answer within 50ms"},
		{name: "unknown", node: &fakeNode{}, line: "frob\x1b[2J", error: `unknown command "frob\x1b[2J"`},
		{name: "case matters", node: &fakeNode{}, line: "PEERS", error: "unknown command"},
		{name: "extra args", node: &fakeNode{}, line: "id please", error: "id takes no arguments"},
		{name: "too long", node: &fakeNode{}, line: "peers " + strings.Repeat(" ", maxCommandLen), error: "too long"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := &console{node: tc.node, connectTimeout: 50 * time.Millisecond}
			got := render(c.Exec(t.Context(), tc.line))
			if tc.error != "" {
				if len(got) != 1 || !strings.HasPrefix(got[0], "ERROR: ") || !strings.Contains(got[0], tc.error) {
					t.Fatalf("got %q; want one ERROR line containing %q", got, tc.error)
				}
			} else if !slices.Equal(got, tc.want) {
				t.Fatalf("got %q\nwant %q", got, tc.want)
			}
			if tc.calls != nil && !slices.Equal(tc.node.calls, tc.calls) {
				t.Errorf("node calls %q, want %q", tc.node.calls, tc.calls)
			}
		})
	}
}

func TestConsoleExitAndHelp(t *testing.T) {
	stopped := 0
	c := &console{node: &fakeNode{}, shutdown: func() { stopped++ }}
	got, err := c.Exec(t.Context(), "exit")
	if err != nil || !slices.Equal(got, []string{"Shutting down"}) || stopped != 1 {
		t.Fatalf("exit: %q, %v, shutdown called %d times", got, err, stopped)
	}
	got, _ = c.Exec(t.Context(), "help")
	text := strings.Join(got, "\n")
	for _, cmd := range []string{"connect <peer-ip> <peer-port>", "connect <multiaddr>", "peers", "id", "channels", "nat", "stats", "help", "exit"} {
		if !strings.Contains(text, "  "+cmd+" ") {
			t.Errorf("help does not list %q:\n%s", cmd, text)
		}
	}
}

func TestReadLine(t *testing.T) {
	long := strings.Repeat("a", maxCommandLen+1)
	huge := strings.Repeat("b", 5*maxCommandLen)
	in := "peers\r\n\n" + long + "\nid\n" + huge + "\n" + strings.Repeat("c", maxCommandLen) + "\nlast"
	r := bufio.NewReaderSize(strings.NewReader(in), 2*maxCommandLen)
	type res struct {
		line string
		err  error
	}
	want := []res{
		{"peers", nil}, {"", nil}, {"", errLineTooLong}, {"id", nil}, {"", errLineTooLong},
		{strings.Repeat("c", maxCommandLen), nil}, {"last", io.EOF},
	}
	for i, w := range want {
		line, err := readLine(r, maxCommandLen)
		if line != w.line || !errors.Is(err, w.err) || (w.err == nil && err != nil) {
			t.Fatalf("line %d: got %.20q, %v; want %.20q, %v", i, line, err, w.line, w.err)
		}
	}
	if _, err := readLine(r, maxCommandLen); !errors.Is(err, io.EOF) {
		t.Fatalf("after the end: %v", err)
	}
}

// TestRunConsole checks the piped-stdin console: commands run in order, an
// over-long line is one error, and the end of input leaves the node alone.
func TestRunConsole(t *testing.T) {
	stopped := false
	c := &console{node: &fakeNode{}, shutdown: func() { stopped = true }}
	var out syncBuffer
	in := "peers\n" + strings.Repeat("x", 3*maxCommandLen) + "\n\nbogus\nchannels"
	c.runConsole(t.Context(), strings.NewReader(in), false, nil, &printer{w: &out}, discardLogger())
	want := "No Peers Connected !\nERROR: command line too long (limit 4096 bytes)\nERROR: unknown command \"bogus\" (type help for the list)\nNo Channels\n"
	if out.String() != want {
		t.Fatalf("console output:\n%s\nwant:\n%s", out.String(), want)
	}
	if stopped {
		t.Fatal("the end of a non-terminal stdin shut the node down")
	}

	// On a terminal: a prompt before each command, and EOF shuts down.
	out = syncBuffer{}
	c.runConsole(t.Context(), strings.NewReader("id\n"), true, nil, &printer{w: &out}, discardLogger())
	if want := "> " + selfID + "\n/ip4/127.0.0.1/tcp/4001/p2p/" + selfID + "\n> \n"; out.String() != want {
		t.Fatalf("terminal console output %q, want %q", out.String(), want)
	}
	if !stopped {
		t.Fatal("EOF on a terminal did not shut the node down")
	}
}
