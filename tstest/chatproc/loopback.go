package chatproc

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"darkchat/tstest"
)

// This file is the harness for single-host tests that run nodes and
// clients on loopback (tstest/e2e, tstest/browsertest). Its helpers
// take a testing.TB and fail the test on error instead of returning one.

// RunWithBinaries is the body of a TestMain: it builds the binaries into
// a temporary directory named after pattern, stores them in *bins, runs
// the tests and removes the directory. It returns the exit code for
// os.Exit (1, with the error on stderr, if the build failed).
func RunWithBinaries(m *testing.M, pattern string, bins *Binaries) int {
	b, err := BuildTemp(pattern)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(b.Dir)
	*bins = b
	return m.Run()
}

// stopGrace is how long a test's process gets to exit after SIGTERM.
const stopGrace = 10 * time.Second

// TestProc is a Proc tied to a test: it runs with its own HOME and
// XDG_RUNTIME_DIR, reads lines written with Send, gets SIGTERM (then,
// after stopGrace, SIGKILL) when the test ends, and has its output logged
// if the test failed.
type TestProc struct {
	*Proc
	T testing.TB
}

// StartTest runs bin with args as a TestProc named name.
func StartTest(t testing.TB, name, bin string, args ...string) *TestProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+t.TempDir(), "HOME="+t.TempDir())
	p, err := Start(name, cmd, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(stopGrace)
		if t.Failed() {
			t.Logf("--- %s stdout:\n%s\n--- %s stderr:\n%s", name, strings.Join(p.Lines(), "\n"), name, lastLines(p.Stderr(), 40))
		}
	})
	return &TestProc{Proc: p, T: t}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Send writes one line to the process's stdin.
func (p *TestProc) Send(line string) {
	p.T.Helper()
	if err := p.Proc.Send(line); err != nil {
		p.T.Fatalf("%s: write %q: %v", p.Name, line, err)
	}
}

// WaitFor returns the first stdout line (from index from on) for which
// match holds, and its index, failing after timeout or when the process
// exits first; what names the line in the failure.
func (p *TestProc) WaitFor(from int, timeout time.Duration, what string, match func(string) bool) (string, int) {
	p.T.Helper()
	line, next, err := p.WaitLine(from, timeout, match)
	if err != nil {
		p.T.Fatalf("%v (waiting for %s)", err, what)
	}
	return line, next - 1
}

// WaitPrefix returns the first stdout line starting with prefix, failing
// after 30s.
func (p *TestProc) WaitPrefix(prefix string) string {
	p.T.Helper()
	line, _ := p.WaitFor(0, 30*time.Second, strconv.Quote(prefix), func(l string) bool { return strings.HasPrefix(l, prefix) })
	return line
}

// WaitExit waits for the process to end by itself and returns its exit
// code, failing after timeout.
func (p *TestProc) WaitExit(timeout time.Duration) int {
	p.T.Helper()
	select {
	case <-p.Done():
		return p.ExitCode()
	case <-time.After(timeout):
		p.T.Fatalf("%s did not exit within %v", p.Name, timeout)
		return -1
	}
}

// Terminate ends the process with SIGTERM and waits for it, failing if it
// is still running after stopGrace.
func (p *TestProc) Terminate() {
	p.T.Helper()
	p.Signal(syscall.SIGTERM)
	select {
	case <-p.Done():
	case <-time.After(stopGrace):
		p.T.Fatalf("%s did not stop within %v of SIGTERM", p.Name, stopGrace)
	}
}

// TestNode is a darkchatd process on 127.0.0.1 and what its start-up
// printout told.
type TestNode struct {
	*TestProc
	bins     Binaries
	Type     string // full, cli or websock
	DataDir  string
	Extra    []string // flags after the positional arguments
	ID       string   // peer ID
	PeerPort int      // TCP
	QUICPort int      // UDP: the same as PeerPort unless that was 0
	CLIPort  int      // 0 for a websock node
	WSPort   int      // 0 for a cli node
	Admin    string
}

// StartNode runs "darkchatd <typ> 127.0.0.1 <ports…>" with free ports and
// a fresh data dir.
func (b Binaries) StartNode(t testing.TB, name, typ string, extra ...string) *TestNode {
	t.Helper()
	return b.RunNode(t, name, typ, t.TempDir(), nil, extra...)
}

// RunNode runs darkchatd with the given ports (nil: free ones; otherwise
// in the order darkchatd takes them) and data dir, and waits until it has
// printed its peer ID, addresses, gateways and admin socket.
func (b Binaries) RunNode(t testing.TB, name, typ, dataDir string, ports []int, extra ...string) *TestNode {
	t.Helper()
	admin := filepath.Join(shortDir(t), "admin.sock")
	args := []string{typ, "127.0.0.1"}
	n := 3
	if typ != "full" {
		n = 2
	}
	for i := range n {
		p := 0
		if ports != nil {
			p = ports[i]
		}
		args = append(args, strconv.Itoa(p))
	}
	args = append(args, "--data-dir", dataDir, "--admin", admin, "--no-console")
	nd := &TestNode{TestProc: StartTest(t, name, b.Darkchatd, append(args, extra...)...), bins: b, Type: typ, DataDir: dataDir, Extra: extra, Admin: admin}
	nd.ID = strings.TrimPrefix(nd.WaitPrefix("Peer ID: "), "Peer ID: ")
	addr := strings.TrimSpace(nd.WaitPrefix("  /ip4/127.0.0.1/tcp/"))
	nd.PeerPort, _ = strconv.Atoi(strings.Split(addr, "/")[4])
	addr = strings.TrimSpace(nd.WaitPrefix("  /ip4/127.0.0.1/udp/"))
	nd.QUICPort, _ = strconv.Atoi(strings.Split(addr, "/")[4])
	if typ != "websock" {
		nd.CLIPort = portOf(nd.WaitPrefix("CLI gateway: "))
	}
	if typ != "cli" {
		nd.WSPort = portOf(strings.TrimSuffix(nd.WaitPrefix("WebSocket gateway: "), "/"))
	}
	nd.WaitPrefix("Admin socket: ")
	return nd
}

// Again starts the stopped node n again on the same ports with the same
// data dir (so the same node key) and flags.
func (n *TestNode) Again(t testing.TB) *TestNode {
	t.Helper()
	var ports []int
	switch n.Type {
	case "full":
		ports = []int{n.CLIPort, n.WSPort, n.PeerPort}
	case "cli":
		ports = []int{n.CLIPort, n.PeerPort}
	default:
		ports = []int{n.WSPort, n.PeerPort}
	}
	return n.bins.RunNode(t, n.Name, n.Type, n.DataDir, ports, n.Extra...)
}

func portOf(s string) int {
	p, _ := strconv.Atoi(s[strings.LastIndex(s, ":")+1:])
	return p
}

// shortDir is a temporary directory with a short path: a Unix socket's
// path must fit in about 100 bytes, which t.TempDir's may not.
func shortDir(t testing.TB) string {
	d, err := os.MkdirTemp("", "dc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// Ctl runs "darkchatd ctl" against n and returns its output and exit code.
func (n *TestNode) Ctl(args ...string) (string, int) {
	n.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, n.bins.Darkchatd, append([]string{"ctl", "--admin", n.Admin}, args...)...)
	out, _ := cmd.CombinedOutput()
	return string(out), cmd.ProcessState.ExitCode()
}

// WaitPeer waits until n lists id among its connected peers.
func (n *TestNode) WaitPeer(id string) {
	n.T.Helper()
	tstest.WaitFor(n.T, 30*time.Second, n.Name+" to connect to "+id, func() (bool, string) {
		out, _ := n.Ctl("peers")
		return strings.Contains(out, id), "peers:\n" + out
	})
}

// TestClient is a darkchat process driven through a pipe (scripted mode).
type TestClient struct {
	*TestProc
	Key string // path of the identity file
	Pub string // public key hex
}

// StartClient runs "darkchat --key <new file> --wait 2s <args…>" and waits
// for it to print its public key (not for it to connect).
func (b Binaries) StartClient(t testing.TB, name string, args ...string) *TestClient {
	t.Helper()
	key := filepath.Join(t.TempDir(), name+".key")
	c := &TestClient{TestProc: StartTest(t, name, b.Darkchat, append([]string{"--key", key, "--wait", "2s"}, args...)...), Key: key}
	c.Pub = strings.TrimPrefix(c.WaitPrefix("Your PUBLIC KEY : "), "Your PUBLIC KEY : ")
	return c
}

// TCPClient starts a client of n's CLI gateway and waits until it is
// connected.
func (b Binaries) TCPClient(t testing.TB, name string, n *TestNode, extra ...string) *TestClient {
	c := b.StartClient(t, name, append(extra, "127.0.0.1", strconv.Itoa(n.CLIPort))...)
	c.WaitPrefix("Connected to Network")
	return c
}

// WSClient starts a client of n's WebSocket gateway and waits until it is
// connected.
func (b Binaries) WSClient(t testing.TB, name string, n *TestNode, extra ...string) *TestClient {
	c := b.StartClient(t, name, append(extra, "--ws", "127.0.0.1", strconv.Itoa(n.WSPort))...)
	c.WaitPrefix("Connected to Network")
	return c
}
