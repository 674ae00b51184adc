package browsertest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binDir holds darkchatd and darkchat, built once for the package.
var binDir string

func TestMain(m *testing.M) {
	chromiumPath = findChromium()
	if chromiumPath == "" && os.Getenv("DARKCHAT_REQUIRE_ALL") != "1" {
		os.Exit(m.Run()) // every test skips: nothing to build
	}
	dir, err := os.MkdirTemp("", "darkchat-browsertest")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, cmd := range []string{"darkchatd", "darkchat"} {
		build := exec.Command("go", "build", "-o", filepath.Join(dir, cmd), "darkchat/cmd/"+cmd)
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", cmd, err)
			os.Exit(1)
		}
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running binary whose stdout lines are collected for waiting on.
type proc struct {
	t     testing.TB
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser

	mu      sync.Mutex
	lines   []string
	changed chan struct{}
	done    chan struct{}
	stderr  strings.Builder
}

func start(t testing.TB, name, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, changed: make(chan struct{}), done: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(binDir, bin), args...)
	p.cmd.Env = append(os.Environ(), "XDG_RUNTIME_DIR="+t.TempDir(), "HOME="+t.TempDir())
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = &lockedWriter{mu: &p.mu, b: &p.stderr}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			p.mu.Lock()
			t.Logf("--- %s stdout:\n%s\n--- %s stderr:\n%s", name, strings.Join(p.lines, "\n"), name, lastLines(p.stderr.String(), 40))
			p.mu.Unlock()
		}
	})
	return p
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// stop ends the process with SIGTERM and waits for it.
func (p *proc) stop() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.t.Fatalf("%s did not stop within 10s of SIGTERM", p.name)
	}
}

// send writes one line to the process's stdin.
func (p *proc) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatalf("%s: write %q: %v", p.name, line, err)
	}
}

// waitFor returns the first stdout line (from index from on) for which
// match holds, and its index, failing after timeout.
func (p *proc) waitFor(from int, timeout time.Duration, what string, match func(string) bool) (string, int) {
	p.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if match(p.lines[i]) {
				line := p.lines[i]
				p.mu.Unlock()
				return line, i
			}
		}
		from = max(from, len(p.lines))
		changed := p.changed
		p.mu.Unlock()
		select {
		case <-changed:
		case <-p.done:
			p.mu.Lock()
			n := len(p.lines)
			p.mu.Unlock()
			if from >= n {
				p.t.Fatalf("%s exited while waiting for %s", p.name, what)
			}
		case <-deadline.C:
			p.t.Fatalf("%s: timed out after %v waiting for %s", p.name, timeout, what)
		}
	}
}

func (p *proc) waitPrefix(prefix string) string {
	p.t.Helper()
	line, _ := p.waitFor(0, 30*time.Second, strconv.Quote(prefix), func(l string) bool { return strings.HasPrefix(l, prefix) })
	return line
}

// output returns a copy of the stdout lines so far.
func (p *proc) output() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// exitCode waits for the process to end by itself.
func (p *proc) exitCode(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(timeout):
		p.t.Fatalf("%s did not exit within %v", p.name, timeout)
		return -1
	}
}

// node is a darkchatd process and what its start-up printout told.
type node struct {
	*proc
	typ      string
	dataDir  string
	extra    []string
	id       string
	peerPort int
	cliPort  int
	wsPort   int
	admin    string
}

// startNode runs "darkchatd <typ> 127.0.0.1 <ports…>" with free ports.
func startNode(t testing.TB, name, typ string, extra ...string) *node {
	t.Helper()
	return runNode(t, name, typ, t.TempDir(), nil, extra...)
}

// runNode runs darkchatd with the given ports (nil: free ones) and data dir.
func runNode(t testing.TB, name, typ, dataDir string, ports []int, extra ...string) *node {
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
	nd := &node{proc: start(t, name, "darkchatd", append(args, extra...)...), typ: typ, dataDir: dataDir, extra: extra, admin: admin}
	nd.id = strings.TrimPrefix(nd.waitPrefix("Peer ID: "), "Peer ID: ")
	addr := strings.TrimSpace(nd.waitPrefix("  /ip4/127.0.0.1/tcp/"))
	nd.peerPort, _ = strconv.Atoi(strings.Split(addr, "/")[4])
	if typ != "websock" {
		nd.cliPort = portOf(nd.waitPrefix("CLI gateway: "))
	}
	if typ != "cli" {
		nd.wsPort = portOf(strings.TrimSuffix(nd.waitPrefix("WebSocket gateway: "), "/"))
	}
	nd.waitPrefix("Admin socket: ")
	return nd
}

// again starts the stopped node n again on the same ports with the same
// node key.
func (n *node) again(t testing.TB) *node {
	t.Helper()
	var ports []int
	switch n.typ {
	case "full":
		ports = []int{n.cliPort, n.wsPort, n.peerPort}
	case "cli":
		ports = []int{n.cliPort, n.peerPort}
	default:
		ports = []int{n.wsPort, n.peerPort}
	}
	return runNode(t, n.name, n.typ, n.dataDir, ports, n.extra...)
}

func portOf(s string) int {
	p, _ := strconv.Atoi(s[strings.LastIndex(s, ":")+1:])
	return p
}

func shortDir(t testing.TB) string {
	d, err := os.MkdirTemp("", "dc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// ctl runs "darkchatd ctl" against n and returns its output and exit code.
func (n *node) ctl(args ...string) (string, int) {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "darkchatd"), append([]string{"ctl", "--admin", n.admin}, args...)...)
	out, _ := cmd.CombinedOutput()
	return string(out), cmd.ProcessState.ExitCode()
}

// waitPeer waits until n lists id among its connected peers.
func (n *node) waitPeer(id string) {
	n.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _ := n.ctl("peers")
		if strings.Contains(out, id) {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s never connected to %s:\n%s", n.name, id, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// client is a darkchat process driven through a pipe (scripted mode).
type client struct {
	*proc
	key string // path of the identity file
	pub string // public key hex
}

func startClient(t testing.TB, name string, args ...string) *client {
	t.Helper()
	key := filepath.Join(t.TempDir(), name+".key")
	c := &client{proc: start(t, name, "darkchat", append([]string{"--key", key, "--wait", "2s"}, args...)...), key: key}
	c.pub = strings.TrimPrefix(c.waitPrefix("Your PUBLIC KEY : "), "Your PUBLIC KEY : ")
	return c
}

func tcpClient(t testing.TB, name string, n *node, extra ...string) *client {
	c := startClient(t, name, append(extra, "127.0.0.1", strconv.Itoa(n.cliPort))...)
	c.waitPrefix("Connected to Network")
	return c
}
