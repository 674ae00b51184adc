package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"darkchat/identity"
	"darkchat/tstest"
	"darkchat/tstest/clienttest"
)

// binary is the darkchat built for these tests.
var binary string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "darkchat-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "darkchat")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build darkchat: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// waitTimeout bounds every wait; the tests normally take milliseconds.
const waitTimeout = 20 * time.Second

// result is one finished run of the binary.
type result struct {
	code           int
	stdout, stderr string
}

// testEnv gives the binary a fresh home, so it never touches the real
// identity, and no DARKCHAT_KEY.
func testEnv(t *testing.T) []string {
	home := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") && !strings.HasPrefix(kv, "DARKCHAT_") {
			env = append(env, kv)
		}
	}
	return append(env, "HOME="+home)
}

// envHome returns the HOME testEnv set.
func envHome(env []string) string {
	for _, kv := range env {
		if h, ok := strings.CutPrefix(kv, "HOME="); ok {
			return h
		}
	}
	return ""
}

func darkchatCommand(t *testing.T, env []string, stdin string, args ...string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

func runCmd(t *testing.T, cmd *exec.Cmd) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run %v: %v", cmd.Args, err)
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
}

func runBin(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	return runCmd(t, darkchatCommand(t, env, stdin, args...))
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}\n$`)

func TestKeygen(t *testing.T) {
	env := testEnv(t)
	path := filepath.Join(t.TempDir(), "sub", "me.key")
	r := runBin(t, env, "", "keygen", "--key", path)
	if r.code != 0 {
		t.Fatalf("keygen: exit %d, %s", r.code, r.stderr)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %o, want 600", fi.Mode().Perm())
	}
	k, err := identity.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.stdout, "Your PUBLIC KEY : "+k.Public().String()) {
		t.Fatalf("keygen printed %q", r.stdout)
	}
	before, _ := os.ReadFile(path)

	// Flags after the subcommand or before it.
	for _, args := range [][]string{{"keygen", "--key", path}, {"--key", path, "keygen"}} {
		r = runBin(t, env, "", args...)
		if r.code != 1 || !strings.Contains(r.stderr, "refusing to overwrite") {
			t.Fatalf("%v over an existing key: exit %d, %q", args, r.code, r.stderr)
		}
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("keygen changed an existing key file")
	}
}

func TestIDDefaultPathAndStability(t *testing.T) {
	env := testEnv(t)
	home := strings.TrimPrefix(env[len(env)-1], "HOME=")
	r := runBin(t, env, "", "id")
	if r.code != 0 || !hex64.MatchString(r.stdout) {
		t.Fatalf("id: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "created a new identity") {
		t.Fatalf("first id did not say it created the identity: %q", r.stderr)
	}
	path := filepath.Join(home, ".config", "darkchat", "identity.key")
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("default identity %s: %v, mode %v", path, err, fi)
	}
	again := runBin(t, env, "", "id")
	if again.stdout != r.stdout || again.stderr != "" {
		t.Fatalf("id changed: %q then %q (stderr %q)", r.stdout, again.stdout, again.stderr)
	}

	// $XDG_CONFIG_HOME, then $DARKCHAT_KEY, then --key take precedence.
	xdg := t.TempDir()
	r = runBin(t, append(env, "XDG_CONFIG_HOME="+xdg), "", "id")
	if _, err := os.Stat(filepath.Join(xdg, "darkchat", "identity.key")); err != nil || r.stdout == again.stdout {
		t.Fatalf("XDG_CONFIG_HOME not used: %v", err)
	}
	envKey := filepath.Join(t.TempDir(), "env.key")
	r = runBin(t, append(env, "XDG_CONFIG_HOME="+xdg, "DARKCHAT_KEY="+envKey), "", "id")
	if _, err := os.Stat(envKey); err != nil {
		t.Fatalf("DARKCHAT_KEY not used: %v", err)
	}
	flagKey := filepath.Join(t.TempDir(), "flag.key")
	runBin(t, append(env, "DARKCHAT_KEY="+envKey), "", "id", "--key="+flagKey)
	if _, err := os.Stat(flagKey); err != nil {
		t.Fatalf("--key not used: %v", err)
	}
}

func TestSign(t *testing.T) {
	env := testEnv(t)
	path := filepath.Join(t.TempDir(), "me.key")
	runBin(t, env, "", "keygen", "--key", path)
	k, err := identity.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	challenge, err := identity.NewChallenge(clienttest.DefaultNodeID, time.Now(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want := hex.EncodeToString(identity.SignLogin(k, challenge)) + "\n"
	// Offline: no node anywhere. The quotes of VERIFY : "…" may come along.
	for _, args := range [][]string{
		{"sign", "--key", path, challenge},
		{"sign", challenge, "--key", path},
		{"--key", path, "sign", `"` + challenge + `"`},
	} {
		r := runBin(t, env, "", args...)
		if r.code != 0 || r.stdout != want {
			t.Fatalf("%v: exit %d, stdout %q, want %q (stderr %q)", args, r.code, r.stdout, want, r.stderr)
		}
	}
	if r := runBin(t, env, "", "sign", "--key", path, "not-a-challenge"); r.code != 1 || !strings.Contains(r.stderr, "malformed") {
		t.Fatalf("sign of garbage: exit %d, %q", r.code, r.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	env := testEnv(t)
	for _, args := range [][]string{
		{},
		{"127.0.0.1"},
		{"127.0.0.1", "port"},
		{"127.0.0.1", "0"},
		{"127.0.0.1", "70000"},
		{"127.0.0.1", "1", "extra"},
		{"http://127.0.0.1:1/ws"},
		{"--ws", "ws://127.0.0.1:1/ws"},
		{"--bogus", "127.0.0.1", "1"},
		{"--wait", "soon", "127.0.0.1", "1"},
		{"--wait=-1s", "127.0.0.1", "1"},
		{"keygen", "extra"},
		{"id", "extra"},
		{"sign"},
		{"sign", "a", "b"},
		{"id", "--ws"},
	} {
		r := runBin(t, env, "", args...)
		if r.code != 2 || !strings.Contains(r.stderr, "usage:") {
			t.Errorf("%q: exit %d, stderr %q; want 2 and the usage", args, r.code, r.stderr)
		}
	}
	// Help asked for is output, with the flags as documented (--key).
	if r := runBin(t, env, "", "--help"); r.code != 0 || !strings.Contains(r.stdout, "\n  --manual-auth\n") || !strings.Contains(r.stdout, "\n  --key FILE\n") || r.stderr != "" {
		t.Errorf("--help: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := runBin(t, env, "", "--version"); r.code != 0 || !strings.HasPrefix(r.stdout, "darkchat ") || !strings.HasSuffix(r.stdout, runtime.Version()+"\n") {
		t.Errorf("--version: exit %d, %q", r.code, r.stdout)
	}
	// --name's value is not a subcommand.
	if r := runBin(t, env, "", "--name", "id", "127.0.0.1", "1"); r.code != 1 || strings.Contains(r.stderr, "usage:") {
		t.Errorf("--name id: exit %d, %q; want a chat that fails to connect", r.code, r.stderr)
	}
}

// serve starts the client package's scripted peer on TCP and returns its
// host and port.
func serve(t *testing.T, srv *clienttest.Server) (host, port string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.ServeTCP(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	host, port, _ = net.SplitHostPort(ln.Addr().String())
	return host, port
}

// session is a running darkchat fed through a pipe, with its output read
// line by line.
type session struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	err   bytes.Buffer
}

func start(t *testing.T, env []string, args ...string) *session {
	t.Helper()
	s := &session{t: t, cmd: darkchatCommand(t, env, "", args...), lines: make(chan string, 100)}
	s.cmd.Stdin = nil
	var err error
	if s.stdin, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.Stderr = &s.err
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() { s.cmd.Process.Kill(); s.cmd.Wait() })
	return s
}

func (s *session) send(line string) {
	s.t.Helper()
	if _, err := io.WriteString(s.stdin, line+"\n"); err != nil {
		s.t.Fatal(err)
	}
}

// expect returns the next output line matching re, failing on an ERROR
// line unless re expects one.
func (s *session) expect(re string) []string {
	s.t.Helper()
	rx := regexp.MustCompile(re)
	timeout := time.After(waitTimeout)
	for {
		select {
		case line, ok := <-s.lines:
			if !ok {
				s.t.Fatalf("output ended before a line matching %q; stderr %q", re, s.err.String())
			}
			if m := rx.FindStringSubmatch(line); m != nil {
				return m
			}
			if strings.HasPrefix(line, "ERROR") {
				s.t.Fatalf("waiting for %q, got %q", re, line)
			}
		case <-timeout:
			s.t.Fatalf("no line matching %q within %v", re, waitTimeout)
		}
	}
}

// end closes stdin and returns the exit code and the remaining output.
func (s *session) end() (int, []string) {
	s.t.Helper()
	s.stdin.Close()
	var rest []string
	for line := range s.lines {
		rest = append(rest, line)
	}
	s.cmd.Wait()
	return s.cmd.ProcessState.ExitCode(), rest
}

func TestChatScripted(t *testing.T) {
	host, port := serve(t, &clienttest.Server{})
	env := testEnv(t)
	bobKey := filepath.Join(t.TempDir(), "bob.key")
	bob := start(t, env, "--key", bobKey, host, port)
	bob.expect(`^Your PUBLIC KEY : [0-9a-f]{64}$`)
	bob.expect(`^Connected to Network as [0-9a-f]{64} via node ` + clienttest.DefaultNodeID + `$`)
	bob.send("join lobby bob")
	bob.expect(`^Joined lobby as bob$`)
	// --timestamps: the author's time, then the line scripts expect.
	dave := start(t, env, "--timestamps", "--key", filepath.Join(t.TempDir(), "dave.key"), host, port)
	dave.expect(`^Connected to Network`)
	dave.send("join lobby dave")
	dave.expect(`^Joined lobby as dave$`)

	aliceKey := filepath.Join(t.TempDir(), "alice.key")
	script := "join lobby alice\nlobby hello from alice\nlobby line\\ntwo\nnowhere hi\nprivate " + strings.Repeat("ab", 32) + " hi\n"
	r := runCmd(t, darkchatCommand(t, env, script, "--key", aliceKey, host, port))
	if r.code != 0 {
		t.Fatalf("alice: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, want := range []string{
		"Joined lobby as alice\n",
		"ERROR: not in channel nowhere: join it first",
		"\nDM to " + strings.Repeat("ab", 32) + ": not delivered (unknown recipient: no key bundle)\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("alice's output lacks %q:\n%s", want, r.stdout)
		}
	}
	// The end of input waits for the answer to a join, not only to sends.
	r = runBin(t, env, "join lobby carol\n", "--key", filepath.Join(t.TempDir(), "carol.key"), host, port)
	if r.code != 0 || !strings.HasSuffix(r.stdout, "Joined lobby as carol\n") {
		t.Fatalf("carol: exit %d\n%s", r.code, r.stdout)
	}

	bob.expect(`^alice@lobby - hello from alice$`)
	bob.expect(`^alice@lobby - line\\ntwo$`)
	dave.expect(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z alice@lobby - hello from alice$`)
	if code, rest := dave.end(); code != 0 {
		t.Fatalf("dave: exit %d, %q, %s", code, rest, dave.err.String())
	}
	if code, rest := bob.end(); code != 0 {
		t.Fatalf("bob: exit %d, %q, %s", code, rest, bob.err.String())
	}
}

// history in a script prints the plain channel lines and the end, and
// the end of input waits for it.
func TestChatHistory(t *testing.T) {
	host, port := serve(t, &clienttest.Server{})
	env := testEnv(t)
	bob := start(t, env, "--key", filepath.Join(t.TempDir(), "bob.key"), host, port)
	bob.expect(`^Connected to Network as `)
	bob.send("join lobby bob")
	bob.expect(`^Joined lobby as bob$`)
	r := runBin(t, env, "join lobby alice\nlobby hello from alice\n", "--key", filepath.Join(t.TempDir(), "alice.key"), host, port)
	if r.code != 0 {
		t.Fatalf("alice: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	bob.expect(`^alice@lobby - hello from alice$`)

	// Alice has gone: bob's client answers for the channel.
	r = runBin(t, env, "join lobby carol\nhistory lobby\n", "--key", filepath.Join(t.TempDir(), "carol.key"), host, port)
	want := "Joined lobby as carol\nalice@lobby - hello from alice\nHistory of #lobby: 1 message\n"
	if r.code != 0 || !strings.HasSuffix(r.stdout, want) {
		t.Fatalf("carol: exit %d\n%s\nwant the end %q", r.code, r.stdout, want)
	}
	if code, rest := bob.end(); code != 0 {
		t.Fatalf("bob: exit %d, %q, %s", code, rest, bob.err.String())
	}
}

// A DM between two scripted clients: the sender's run ends once the
// receipt is in, with the status line.
func TestChatDM(t *testing.T) {
	host, port := serve(t, &clienttest.Server{})
	env := testEnv(t)
	bob := start(t, env, "--key", filepath.Join(t.TempDir(), "bob.key"), host, port)
	bobHex := bob.expect(`^Your PUBLIC KEY : ([0-9a-f]{64})$`)[1]
	bob.expect(`^Connected to Network`)

	aliceKey := filepath.Join(t.TempDir(), "alice.key")
	r := runCmd(t, darkchatCommand(t, env, "join lobby al\nprivate "+bobHex+" hi bob\nwhois "+bobHex+"\n", "--key", aliceKey, host, port))
	if r.code != 0 {
		t.Fatalf("alice: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "\nDM to "+bobHex+": delivered\n") {
		t.Fatalf("alice's run ended without the DM's status:\n%s", r.stdout)
	}
	if !regexp.MustCompile(`(?m)^` + bobHex + `: key bundle valid until \S+, DM key [0-9a-f]{16}$`).MatchString(r.stdout) {
		t.Fatalf("alice's whois:\n%s", r.stdout)
	}
	aliceHex := regexp.MustCompile(`Your PUBLIC KEY : ([0-9a-f]{64})`).FindStringSubmatch(r.stdout)[1]
	bob.expect(`^al@private\(` + aliceHex + `\) - hi bob$`)

	// Bob answers with --name; alice, listening, gets it.
	alice := start(t, env, "--key", aliceKey, "--name", "alice", host, port)
	alice.expect(`^Connected to Network`)
	bob.send("nick bobby")
	bob.expect(`^Your direct messages will carry the name bobby$`)
	bob.send("private " + aliceHex + " hi alice")
	alice.expect(`^bobby@private\(` + bobHex + `\) - hi alice$`)
	bob.expect(`^DM to ` + aliceHex + `: delivered$`)
	for _, s := range []*session{alice, bob} {
		if code, rest := s.end(); code != 0 {
			t.Fatalf("exit %d, %q, %s", code, rest, s.err.String())
		}
	}
}

// The --wait after the input keeps printing what arrives.
func TestChatWait(t *testing.T) {
	host, port := serve(t, &clienttest.Server{})
	env := testEnv(t)
	bob := start(t, env, "--key", filepath.Join(t.TempDir(), "bob.key"), "--wait", "30s", host, port)
	bob.send("join lobby bob")
	bob.expect(`^Joined lobby as bob$`)
	bob.stdin.Close() // the input ends; --wait keeps bob listening
	r := runBin(t, env, "join lobby alice\nlobby still there?\n", "--key", filepath.Join(t.TempDir(), "alice.key"), host, port)
	if r.code != 0 {
		t.Fatalf("alice: exit %d, %s", r.code, r.stdout)
	}
	bob.expect(`^alice@lobby - still there\?$`)
}

func TestChatManualAuth(t *testing.T) {
	host, port := serve(t, &clienttest.Server{})
	env := testEnv(t)
	keyFile := filepath.Join(t.TempDir(), "me.key")
	s := start(t, env, host, port, "--manual-auth", "--key", keyFile)
	s.send("connect")
	challenge := s.expect(`^VERIFY : "(dcl1\.[^"]+)"$`)[1]
	// Signed offline by another process, as the seed's users did.
	sig := runBin(t, env, "", "sign", "--key", keyFile, challenge)
	if sig.code != 0 {
		t.Fatalf("sign: %d %s", sig.code, sig.stderr)
	}
	s.send("sign " + challenge)
	if got := s.expect(`^[0-9a-f]{128}$`)[0]; got+"\n" != sig.stdout {
		t.Fatalf("sign in the chat printed %q, darkchat sign %q", got, sig.stdout)
	}
	s.send("verify " + strings.TrimSpace(sig.stdout))
	s.expect(`^Connected to Network as [0-9a-f]{64} via node ` + clienttest.DefaultNodeID + `$`)
	s.send("join lobby me")
	s.expect(`^Joined lobby as me$`)
	s.send("exit")
	if code, _ := s.end(); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestChatWebSocket(t *testing.T) {
	srv := &clienttest.Server{}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); hs.Close() })
	env := testEnv(t)
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(hs.URL, "http://"))
	for _, args := range [][]string{
		{"--ws", host, port},
		{"ws://" + host + ":" + port + "/ws"},
	} {
		r := runBin(t, env, "join lobby alice\nlobby hi\n", args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Connected to Network as ") || !strings.Contains(r.stdout, "Joined lobby as alice") {
			t.Fatalf("%v: exit %d\n%s\n%s", args, r.code, r.stdout, r.stderr)
		}
	}
}

func TestChatFailures(t *testing.T) {
	env := testEnv(t)
	// Nothing listens there: the login fails.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	r := runBin(t, env, "join lobby a\n", host, port)
	if r.code != 1 || !strings.Contains(r.stdout, "ERROR: login failed") {
		t.Fatalf("no node: exit %d, %q", r.code, r.stdout)
	}
	// A client that never logged in leaves no identity behind; the first
	// one that does saves it, and says so.
	idFile := filepath.Join(envHome(env), ".config", "darkchat", "identity.key")
	if _, err := os.Stat(idFile); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after a failed login the identity file exists (%v)", err)
	}

	// A challenge for another node is refused.
	srvHost, srvPort := serve(t, &clienttest.Server{})
	r = runBin(t, env, "", "--node", "12D3KooWsomeoneelse", srvHost, srvPort)
	if r.code != 1 || !strings.Contains(r.stdout, "ERROR: disconnected: challenge names another node") {
		t.Fatalf("wrong node: exit %d, %q", r.code, r.stdout)
	}

	// The connection breaks in the middle of a run.
	srv := &clienttest.Server{}
	h, p := serve(t, srv)
	s := start(t, env, h, p)
	s.expect(`^Connected to Network`)
	tstest.WaitFor(t, waitTimeout, "the identity file after a login", func() (bool, string) {
		_, err := os.Stat(idFile)
		return err == nil, fmt.Sprint(err)
	})
	srv.Close()
	s.expect(`^ERROR: disconnected: connection closed by the node$`)
	if code, rest := s.end(); code != 1 {
		t.Fatalf("broken connection: exit %d, %q", code, rest)
	}
}

// The node goes away: the client moves to the next node it was given
// (--fallback), logs in and is back in its channels by itself; the
// script still exits 1 at the end, because the connection broke.
func TestChatMovesToFallbackNode(t *testing.T) {
	env := testEnv(t)
	first := &clienttest.Server{}
	h1, p1 := serve(t, first)
	second := &clienttest.Server{NodeID: "12D3KooWsecondnode"}
	h2, p2 := serve(t, second)
	s := start(t, env, "--fallback", net.JoinHostPort(h2, p2), h1, p1)
	s.expect(`^Connected to Network as [0-9a-f]{64} via node ` + clienttest.DefaultNodeID + `$`)
	s.send("join lobby alice")
	s.expect(`^Joined lobby as alice$`)
	first.Close()
	s.expect(`^ERROR: disconnected: connection closed by the node$`)
	s.expect(`^Connected to Network as [0-9a-f]{64} via node 12D3KooWsecondnode$`)
	s.expect(`^Joined lobby as alice$`)
	if code, rest := s.end(); code != 1 {
		t.Fatalf("after a broken connection: exit %d, %q", code, rest)
	}
}

// A node that refuses the user's key (its operator's ban) is not tried
// again: the client moves on to the next node it was given.
func TestChatLeavesANodeThatBansIt(t *testing.T) {
	env := testEnv(t)
	first := &clienttest.Server{NodeID: "12D3KooWfirstnode"}
	h1, p1 := serve(t, first)
	banning := &clienttest.Server{Banned: func(identity.PublicKey) bool { return true }}
	h2, p2 := serve(t, banning)
	third := &clienttest.Server{NodeID: "12D3KooWthirdnode"}
	h3, p3 := serve(t, third)
	s := start(t, env, "--fallback", net.JoinHostPort(h2, p2), "--fallback", net.JoinHostPort(h3, p3), h1, p1)
	s.expect(`^Connected to Network as [0-9a-f]{64} via node 12D3KooWfirstnode$`)
	s.send("join lobby alice")
	s.expect(`^Joined lobby as alice$`)
	first.Close()
	s.expect(`^ERROR: disconnected: connection closed by the node$`)
	s.expect(`^ERROR: .*banned your key`)
	s.expect(`^Connected to Network as [0-9a-f]{64} via node 12D3KooWthirdnode$`)
	s.expect(`^Joined lobby as alice$`)
	if code, rest := s.end(); code != 1 {
		t.Fatalf("exit %d, %q", code, rest)
	} else if n := countPrefix(rest, "ERROR: "); n != 0 {
		t.Fatalf("more errors after moving on: %q", rest)
	}
}

func countPrefix(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}
