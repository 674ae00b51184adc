package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"darkchat/p2p"
)

// The tests in this file run real darkchatd processes on 127.0.0.1 with
// free ports, and drive them through stdout, ctl and stdin.

func TestMeshDiscoveryThroughHub(t *testing.T) {
	t.Parallel()
	b := startDaemon(t, "B", daemonSpec{args: nodeArgs(t, "full")})
	hub := fmt.Sprintf("127.0.0.1:%d", b.tcpPort)
	// A and C know only B: each must discover the other.
	a := launch(t, "A", daemonSpec{args: nodeArgs(t, "cli", "--peer", hub)})
	cArgs := nodeArgs(t, "websock")
	cArgs = append([]string{cArgs[0], "--peer", hub}, cArgs[1:]...) // a flag before the positionals
	c := launch(t, "C", daemonSpec{args: cArgs})
	a.waitStarted()
	c.waitStarted()

	eventually(t, 30*time.Second, "A lists C among its peers", func() bool {
		return strings.Contains(a.ctl("peers").stdout, c.id)
	})
	r := a.ctl("peers")
	lines := r.lines()
	if r.code != 0 || len(lines) < 3 || !strings.HasPrefix(lines[0], "CONNECTED PEERS (") {
		t.Fatalf("peers: exit %d, output %q", r.code, lines)
	}
	if lines[0] != fmt.Sprintf("CONNECTED PEERS (%d):", len(lines)-1) {
		t.Errorf("peers header %q does not match %d peer lines", lines[0], len(lines)-1)
	}
	for i, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 4 || f[0] != strconv.Itoa(i+1)+"." || !strings.HasPrefix(f[2], "/ip4/127.0.0.1/") || f[3] != "direct" {
			t.Errorf("peer line %q: want \"<n>. <peer-id> <remote-multiaddr> direct\"", l)
		}
	}
}

func TestConnectByAddressAndMultiaddr(t *testing.T) {
	t.Parallel()
	x := startDaemon(t, "X", daemonSpec{args: nodeArgs(t, "cli")})
	y := startDaemon(t, "Y", daemonSpec{args: nodeArgs(t, "cli")})
	z := startDaemon(t, "Z", daemonSpec{args: nodeArgs(t, "websock")})

	r := x.ctl("connect", "127.0.0.1", strconv.Itoa(y.tcpPort))
	want := fmt.Sprintf("Connected to %s (learned its ID from 127.0.0.1:%d)", y.id, y.tcpPort)
	if r.code != 0 || r.stdout != want+"\n" {
		t.Fatalf("connect by address: exit %d, output %q; want %q", r.code, r.stdout, want)
	}
	r = x.ctl("connect", z.tcpMultiaddr())
	if want := "Connected to " + z.id; r.code != 0 || r.stdout != want+"\n" {
		t.Fatalf("connect by multiaddr: exit %d, output %q; want %q", r.code, r.stdout, want)
	}
	r = x.ctl("peers")
	if r.code != 0 || !strings.Contains(r.stdout, y.id) || !strings.Contains(r.stdout, z.id) {
		t.Fatalf("peers after connecting: exit %d, output %q", r.code, r.stdout)
	}
	r = x.ctl("id")
	lines := r.lines()
	if r.code != 0 || len(lines) < 2 || lines[0] != x.id {
		t.Fatalf("id: exit %d, output %q", r.code, lines)
	}
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "/") || !strings.HasSuffix(l, "/p2p/"+x.id) {
			t.Errorf("id line %q is not a full multiaddr of this node", l)
		}
	}
}

func TestRestartKeepsIDAndSIGTERM(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	admin := filepath.Join(shortTempDir(t), "a.sock")
	args := []string{"cli", "127.0.0.1", "0", "0", "--data-dir", dataDir, "--admin", admin, "--no-console"}

	first := startDaemon(t, "first", daemonSpec{args: args})
	if _, err := os.Stat(admin); err != nil {
		t.Fatalf("admin socket while running: %v", err)
	}
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := first.waitExit(exitTimeout); code != 0 {
		t.Fatalf("exit code after SIGTERM: %d", code)
	}
	if _, err := os.Lstat(admin); !os.IsNotExist(err) {
		t.Fatalf("admin socket left behind after SIGTERM: %v", err)
	}

	second := startDaemon(t, "second", daemonSpec{args: args})
	if second.id != first.id {
		t.Fatalf("peer ID changed across restart: %s, then %s", first.id, second.id)
	}
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != p2p.NodeKeyFile {
		t.Fatalf("data dir holds %v, want only %s", entries, p2p.NodeKeyFile)
	}
	st, err := os.Stat(filepath.Join(dataDir, p2p.NodeKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("node key mode %v, want 0600", st.Mode().Perm())
	}

	// exit over ctl shuts down the same way.
	r := second.ctl("exit")
	if r.code != 0 || r.stdout != "Shutting down\n" {
		t.Fatalf("ctl exit: code %d, output %q", r.code, r.stdout)
	}
	if code := second.waitExit(exitTimeout); code != 0 {
		t.Fatalf("exit code after ctl exit: %d", code)
	}
	if _, err := os.Lstat(admin); !os.IsNotExist(err) {
		t.Fatalf("admin socket left behind after exit: %v", err)
	}
}

// closedPort returns a TCP port on 127.0.0.1 that nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

func TestBadInputOverCtl(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "node", daemonSpec{args: nodeArgs(t, "cli")})
	dead := strconv.Itoa(closedPort(t))
	cases := []struct {
		name  string
		words []string
		want  string // a substring of the ERROR line
	}{
		{"unknown command", []string{"frobnicate"}, "unknown command"},
		{"bad address", []string{"connect", "not-an-address"}, "neither an IP address nor a multiaddr"},
		{"bad ip", []string{"connect", "300.1.1.1", "4001"}, "not an IP address"},
		{"bad port", []string{"connect", "127.0.0.1", "70000"}, "not a port number"},
		{"bad multiaddr", []string{"connect", "/ip4/1.2.3"}, "bad multiaddr"},
		{"nothing listens", []string{"connect", "127.0.0.1", dead}, "connection refused"},
		{"missing port", []string{"connect", "127.0.0.1"}, "missing <peer-port>"},
		{"too many args", []string{"connect", "127.0.0.1", "1", "2"}, "wrong number of arguments"},
		{"own address", []string{"connect", "127.0.0.1", strconv.Itoa(d.tcpPort)}, "own address"},
		{"extra argument", []string{"peers", "now"}, "takes no arguments"},
		{"overlong line", []string{strings.Repeat("x", 5000)}, "too long"},
		{"very long line", []string{"id", strings.Repeat("y", 100<<10)}, "too long"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := d.ctl(tc.words...)
			lines := r.lines()
			if r.code == 0 || len(lines) != 1 || !strings.HasPrefix(lines[0], "ERROR: ") || !strings.Contains(lines[0], tc.want) {
				t.Errorf("exit %d, output %q; want one line \"ERROR: …%s…\" and a non-zero exit", r.code, lines, tc.want)
			}
		})
	}
	r := d.ctl("id")
	if r.code != 0 || len(r.lines()) == 0 || r.lines()[0] != d.id {
		t.Fatalf("node no longer answers after bad input: exit %d, output %q", r.code, r.stdout)
	}
}

func TestConsoleOnPipedStdin(t *testing.T) {
	t.Parallel()
	args := nodeArgs(t, "cli")
	args = append(args[:len(args)-1], "--console") // replace --no-console
	d := startDaemon(t, "node", daemonSpec{args: args, stdinPipe: true})

	for _, cmd := range []string{"peers", "frobnicate", "connect 127.0.0.1", "channels", "id"} {
		want := d.ctl(strings.Fields(cmd)...).lines()
		if len(want) == 0 {
			t.Fatalf("ctl %s printed nothing", cmd)
		}
		if _, err := io.WriteString(d.stdin, cmd+"\n"); err != nil {
			t.Fatal(err)
		}
		for i, w := range want {
			got := d.waitLine(10*time.Second, fmt.Sprintf("console output of %q", cmd), func(string) bool { return true })
			if got != w {
				t.Fatalf("console %q line %d = %q; ctl printed %q", cmd, i, got, w)
			}
		}
	}
	// An over-long console line is one error, and the console goes on.
	io.WriteString(d.stdin, strings.Repeat("z", 10000)+"\npeers\n")
	if l := d.waitLine(10*time.Second, "error for a long line", func(string) bool { return true }); !strings.HasPrefix(l, "ERROR: ") {
		t.Fatalf("long console line: got %q", l)
	}
	if l := d.waitLine(10*time.Second, "peers output", func(string) bool { return true }); l != "No Peers Connected !" {
		t.Fatalf("after a long line, peers printed %q", l)
	}
	// The end of a piped stdin ends the console, not the node.
	d.stdin.Close()
	eventually(t, 10*time.Second, "the console notices the end of stdin", func() bool {
		return strings.Contains(d.stderr.String(), "console input ended")
	})
	if r := d.ctl("id"); r.code != 0 || r.lines()[0] != d.id {
		t.Fatalf("node stopped answering after stdin closed: exit %d, %q", r.code, r.stdout)
	}
}

// Both gateways greet a client with a login challenge bound to this node.
func TestGatewaysGreetWithChallenge(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "full", daemonSpec{args: nodeArgs(t, "full")})
	if d.cliAddr == "" || !strings.HasPrefix(d.wsURL, "ws://127.0.0.1:") || !strings.HasSuffix(d.wsURL, "/") {
		t.Fatalf("printout gateway lines: CLI %q, WebSocket %q", d.cliAddr, d.wsURL)
	}
	checkHello := func(where string, data []byte) {
		t.Helper()
		var hello struct {
			Type, Node, Challenge string
			Protocol              int
		}
		if err := json.Unmarshal(data, &hello); err != nil {
			t.Fatalf("%s: %q: %v", where, data, err)
		}
		if hello.Type != "hello" || hello.Protocol != 1 || hello.Node != d.id ||
			!strings.HasPrefix(hello.Challenge, "dcl1."+d.id+".") {
			t.Fatalf("%s greeted with %q", where, data)
		}
	}

	conn, err := net.DialTimeout("tcp", d.cliAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	checkHello("CLI gateway", line)

	ws, _, err := websocket.DefaultDialer.Dial(d.wsURL+"ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, msg, err := ws.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	checkHello("WebSocket gateway", msg)
}

func TestFlagsAfterPositionalsAndEnv(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "env-data")
	admin := filepath.Join(shortTempDir(t), "env.sock")
	d := startDaemon(t, "node", daemonSpec{
		// Flags both after and between the positionals; the data dir,
		// admin socket and console setting come from the environment.
		args: []string{"websock", "127.0.0.1", "--log-level", "debug", "0", "0", "--relay-service=false"},
		env:  []string{"DARKCHAT_DATA_DIR=" + dataDir, "DARKCHAT_ADMIN=" + admin, "DARKCHAT_NO_CONSOLE=true"},
	})
	if d.admin != admin {
		t.Fatalf("admin socket %q, want %q from DARKCHAT_ADMIN", d.admin, admin)
	}
	if _, err := os.Stat(filepath.Join(dataDir, p2p.NodeKeyFile)); err != nil {
		t.Fatalf("no node key in DARKCHAT_DATA_DIR: %v", err)
	}
	// Any command logs at debug level, and only at debug level.
	d.ctl("id")
	eventually(t, 10*time.Second, "--log-level debug (given between positionals) takes effect", func() bool {
		return strings.Contains(d.stderr.String(), "level=DEBUG")
	})
	if d.cliAddr != "" || d.wsURL == "" {
		t.Errorf("websock node printed CLI %q, WebSocket %q", d.cliAddr, d.wsURL)
	}
	// ctl finds the socket through DARKCHAT_ADMIN too.
	r := run(t, testEnv(t, shortTempDir(t), "DARKCHAT_ADMIN="+admin), "ctl", "id")
	if r.code != 0 || r.lines()[0] != d.id {
		t.Fatalf("ctl with DARKCHAT_ADMIN: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	env := testEnv(t, shortTempDir(t))
	cases := []struct {
		name string
		env  []string
		args []string
		want string // in stderr
	}{
		{"no subcommand", nil, nil, "missing subcommand"},
		{"unknown subcommand", nil, []string{"relay", "127.0.0.1", "0", "0"}, "unknown subcommand"},
		{"too few arguments", nil, []string{"full", "127.0.0.1", "0", "0"}, "full takes 4 arguments, got 3"},
		{"too many arguments", nil, []string{"cli", "127.0.0.1", "0", "0", "0"}, "cli takes 3 arguments"},
		{"bad ip", nil, []string{"cli", "localhost", "0", "0"}, "not an IP address"},
		{"bad port", nil, []string{"websock", "127.0.0.1", "65536", "0"}, "<ws-port>"},
		{"negative port", nil, []string{"cli", "127.0.0.1", "0", "--", "-1"}, "<peer-port>"},
		{"unknown flag", nil, []string{"cli", "127.0.0.1", "0", "0", "--frob"}, "flag provided but not defined"},
		{"tls half", nil, []string{"full", "127.0.0.1", "0", "0", "0", "--tls-cert", "c.pem"}, "--tls-cert and --tls-key"},
		{"bad level", nil, []string{"cli", "--log-level", "loud", "127.0.0.1", "0", "0"}, "debug, info, warn or error"},
		{"bad peer", nil, []string{"cli", "127.0.0.1", "0", "0", "--peer", "nowhere"}, "neither ip:port nor a multiaddr"},
		{"peer without id", nil, []string{"cli", "127.0.0.1", "0", "0", "--peer", "/ip4/127.0.0.1/tcp/1"}, "/p2p/<peer-id>"},
		{"bad reachability", nil, []string{"cli", "127.0.0.1", "0", "0", "--reachability", "sometimes"}, "want auto, public or private"},
		{"bad announce", nil, []string{"cli", "127.0.0.1", "0", "0", "--announce", "somewhere"}, "neither ip:port nor a multiaddr"},
		{"bad cidr", nil, []string{"cli", "127.0.0.1", "0", "0", "--public-cidr", "10.0.0.0/33"}, "bad CIDR"},
		{"conn watermarks", nil, []string{"cli", "127.0.0.1", "0", "0", "--conn-low", "50", "--conn-high", "40"}, "--conn-high"},
		{"bad env", []string{"DARKCHAT_CONN_LOW=many"}, []string{"cli", "127.0.0.1", "0", "0"}, "DARKCHAT_CONN_LOW"},
		{"bad env list", []string{"DARKCHAT_PUBLIC_CIDR=10.0.0.0/8,nope"}, []string{"cli", "127.0.0.1", "0", "0"}, "DARKCHAT_PUBLIC_CIDR"},
		{"pprof without metrics", nil, []string{"cli", "127.0.0.1", "0", "0", "--pprof"}, "--pprof needs --metrics"},
		{"metrics on a gateway port", nil, []string{"full", "127.0.0.1", "7001", "7002", "0", "--metrics", "127.0.0.1:7002"}, "port 7002 is the node's <ws-port>"},
		{"metrics on the peer port", []string{"DARKCHAT_METRICS=:7003"}, []string{"cli", "127.0.0.1", "7001", "7003"}, "port 7003 is the node's <peer-port>"},
		{"bad metrics address", nil, []string{"cli", "127.0.0.1", "0", "0", "--metrics", "9464"}, "want host:port"},
		{"ctl without command", nil, []string{"ctl"}, "ctl needs a console command"},
		{"ctl unknown flag", nil, []string{"ctl", "--frob", "peers"}, "flag provided but not defined"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := run(t, append(env, tc.env...), tc.args...)
			if r.code != 2 || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "--help") {
				t.Errorf("exit %d, stderr %q; want exit 2 and a message containing %q", r.code, r.stderr, tc.want)
			}
			if r.stdout != "" {
				t.Errorf("usage error wrote to stdout: %q", r.stdout)
			}
		})
	}

	r := run(t, env, "--help")
	if r.code != 0 {
		t.Fatalf("--help: exit %d", r.code)
	}
	for _, want := range []string{"full", "cli", "websock", "ctl", "DARKCHAT_<FLAG_NAME>", "DARKCHAT_DATA_DIR",
		"--peer", "--data-dir", "--admin", "--console", "--no-console", "--log-messages", "--log-level",
		"--tls-cert", "--tls-key", "--relay-service", "--reachability", "--announce", "--public-cidr", "--conn-low", "--conn-high", "--max-message-size",
		"--metrics", "DARKCHAT_METRICS", "--pprof",
		"connect <peer-ip> <peer-port>", "peers", "channels", "nat", "exit"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--help does not mention %q", want)
		}
	}
	if r := run(t, env, "full", "--help"); r.code != 0 || !strings.Contains(r.stdout, "darkchatd full <ip> <cli-port> <ws-port> <peer-port>") {
		t.Errorf("full --help: exit %d, %q", r.code, r.stdout)
	}
	if r := run(t, env, "--version"); r.code != 0 || !strings.HasPrefix(r.stdout, "darkchatd ") || !strings.HasSuffix(r.stdout, runtime.Version()+"\n") {
		t.Errorf("--version: exit %d, %q", r.code, r.stdout)
	}
}

func TestCtlFindsTheDefaultSocket(t *testing.T) {
	t.Parallel()
	rt := shortTempDir(t)
	env := testEnv(t, rt)
	dir := filepath.Join(rt, "darkchat")

	r := run(t, env, "ctl", "peers")
	if want := "ERROR: no running darkchatd found in " + dir + "; pass --admin PATH"; r.code != 1 || r.stdout != want+"\n" {
		t.Fatalf("ctl with no node: exit %d, %q; want %q", r.code, r.stdout, want)
	}

	// A socket file left by a crashed node is replaced.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	staleLn, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "darkchatd-1.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	staleLn.SetUnlinkOnClose(false)
	staleLn.Close()

	args := func() []string {
		return []string{"cli", "127.0.0.1", "0", "0", "--no-console", "--data-dir", filepath.Join(t.TempDir(), "d")}
	}
	n1 := startDaemon(t, "n1", daemonSpec{args: args(), runtimeDir: rt})
	if want := filepath.Join(dir, fmt.Sprintf("darkchatd-%d.sock", n1.tcpPort)); n1.admin != want {
		t.Fatalf("default admin socket %q, want %q", n1.admin, want)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("admin dir: %v, %v; want mode 0700", st.Mode(), err)
	}
	if st, err := os.Lstat(n1.admin); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket: %v; want mode 0600", err)
	}
	r = run(t, env, "ctl", "id")
	if r.code != 0 || r.lines()[0] != n1.id {
		t.Fatalf("ctl without --admin, one node: exit %d, %q", r.code, r.stdout)
	}

	// A second node on the same admin socket is refused while the first
	// answers there.
	dup := launch(t, "dup", daemonSpec{args: append(args(), "--admin", n1.admin), runtimeDir: rt})
	if code := dup.waitExit(startTimeout); code != 1 {
		t.Fatalf("second node on a live admin socket: exit %d, want 1", code)
	}
	if !strings.Contains(dup.stderr.String(), "another darkchatd is running") {
		t.Fatalf("second node's error: %q", dup.stderr.String())
	}

	n2 := startDaemon(t, "n2", daemonSpec{args: args(), runtimeDir: rt})
	r = run(t, env, "ctl", "id")
	if r.code != 1 || !strings.HasPrefix(r.stdout, "ERROR: several darkchatd nodes are running (") ||
		!strings.Contains(r.stdout, n1.admin) || !strings.Contains(r.stdout, n2.admin) {
		t.Fatalf("ctl with two nodes: exit %d, %q", r.code, r.stdout)
	}
}

// readAll reads lines until EOF; the test helper for raw admin exchanges.
func readAll(t *testing.T, conn net.Conn) []string {
	t.Helper()
	var lines []string
	sc := bufio.NewScanner(conn)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

func TestAdminProtocolRaw(t *testing.T) {
	t.Parallel()
	d := startDaemon(t, "node", daemonSpec{args: nodeArgs(t, "cli")})
	exchange := func(send string) []string {
		conn, err := net.Dial("unix", d.admin)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(conn, send)
		conn.(*net.UnixConn).CloseWrite()
		return readAll(t, conn)
	}
	if got := exchange("peers\n"); len(got) != 1 || got[0] != "No Peers Connected !" {
		t.Errorf("peers: %q", got)
	}
	if got := exchange("id"); len(got) == 0 || got[0] != d.id { // no newline before EOF
		t.Errorf("id without newline: %q", got)
	}
	if got := exchange("\n"); len(got) != 1 || !strings.HasPrefix(got[0], "ERROR: empty command") {
		t.Errorf("empty command: %q", got)
	}
	if got := exchange(""); len(got) != 0 { // a probe gets no answer
		t.Errorf("probe: %q", got)
	}

	// More than maxAdminConns idle connections: the extra ones are
	// refused at once, and the node answers again once they are gone.
	var idle []net.Conn
	for range maxAdminConns + 2 {
		c, err := net.Dial("unix", d.admin)
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, c)
	}
	refused := 0
	for _, c := range idle[maxAdminConns:] {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if got := readAll(t, c); len(got) == 1 && strings.Contains(got[0], "too many admin connections") {
			refused++
		}
	}
	if refused != 2 {
		t.Errorf("%d of 2 extra admin connections refused", refused)
	}
	for _, c := range idle {
		c.Close()
	}
	eventually(t, 10*time.Second, "admin answers after idle connections close", func() bool {
		return d.ctl("id").code == 0
	})
}
