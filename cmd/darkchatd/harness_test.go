package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binPath is the darkchatd binary TestMain builds once for all tests.
var binPath string

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "darkchatd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	binPath = filepath.Join(dir, "darkchatd")
	args := []string{"build", "-o", binPath}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command(goTool, append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building darkchatd:", err)
		return 1
	}
	return m.Run()
}

// Timeouts for the process tests. They are deadlines, not sleeps: every
// wait polls or blocks on an event and returns as soon as it holds.
const (
	startTimeout = 20 * time.Second
	exitTimeout  = 15 * time.Second
	ctlRunLimit  = 40 * time.Second
)

// shortTempDir is a temporary directory with a short path: unix socket
// paths must stay under 108 bytes, which t.TempDir() can exceed.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "dc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// testEnv is the environment for a darkchatd process: the test's own, minus
// any DARKCHAT_* variable, with XDG directories of its own so that defaults
// never touch the real home or runtime directory.
func testEnv(t *testing.T, runtimeDir string, extra ...string) []string {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, envPrefix) || strings.HasPrefix(kv, "XDG_RUNTIME_DIR=") || strings.HasPrefix(kv, "XDG_DATA_HOME=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "XDG_RUNTIME_DIR="+runtimeDir, "XDG_DATA_HOME="+filepath.Join(t.TempDir(), "xdg-data"))
	return append(env, extra...)
}

// daemon is a darkchatd process started by a test.
type daemon struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd

	stdin  io.WriteCloser // nil unless started with a stdin pipe
	stderr *syncBuffer

	mu      sync.Mutex
	lines   []string
	next    int           // waitLine's cursor into lines
	changed chan struct{} // closed and replaced on every new line
	done    chan struct{} // closed once the process has exited
	exitErr error

	// From the start-up printout.
	id       string
	addrs    []string
	tcpPort  int
	cliAddr  string
	wsURL    string
	admin    string
	metrics  string // the metrics URL (--metrics), or ""
	runtimes string // XDG_RUNTIME_DIR given to the process
}

type daemonSpec struct {
	args       []string // after the binary name
	env        []string // extra environment
	runtimeDir string   // XDG_RUNTIME_DIR; a fresh one if empty
	stdinPipe  bool
}

// startDaemon starts darkchatd and waits for its start-up printout.
func startDaemon(t *testing.T, name string, spec daemonSpec) *daemon {
	t.Helper()
	d := launch(t, name, spec)
	d.waitStarted()
	return d
}

// launch starts darkchatd without waiting for anything.
func launch(t *testing.T, name string, spec daemonSpec) *daemon {
	t.Helper()
	if spec.runtimeDir == "" {
		spec.runtimeDir = shortTempDir(t)
	}
	cmd := exec.Command(binPath, spec.args...)
	cmd.Env = testEnv(t, spec.runtimeDir, spec.env...)
	d := &daemon{
		t: t, name: name, cmd: cmd,
		stderr:   &syncBuffer{},
		changed:  make(chan struct{}),
		done:     make(chan struct{}),
		runtimes: spec.runtimeDir,
	}
	cmd.Stderr = d.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if spec.stdinPipe {
		if d.stdin, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			d.mu.Lock()
			d.lines = append(d.lines, sc.Text())
			close(d.changed)
			d.changed = make(chan struct{})
			d.mu.Unlock()
		}
		// Wait only after stdout is drained, as os/exec requires.
		err := cmd.Wait()
		d.mu.Lock()
		d.exitErr = err
		d.mu.Unlock()
		close(d.done)
	}()
	t.Cleanup(func() {
		d.stop()
		if strings.Contains(d.stderr.String(), "WARNING: DATA RACE") {
			t.Errorf("%s: the race detector found a data race", name)
		}
		if t.Failed() {
			t.Logf("%s stdout:\n%s\n%s stderr:\n%s", name, strings.Join(d.allLines(), "\n"), name, d.stderr.String())
		}
	})
	return d
}

// stop ends the process if it is still running: SIGTERM, then SIGKILL.
func (d *daemon) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(exitTimeout):
		d.t.Errorf("%s ignored SIGTERM for %v; killing it", d.name, exitTimeout)
		d.cmd.Process.Kill()
		<-d.done
	}
}

func (d *daemon) allLines() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.lines...)
}

// waitLine waits for a stdout line after the previous match that satisfies
// match, and returns it.
func (d *daemon) waitLine(timeout time.Duration, what string, match func(string) bool) string {
	d.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		for ; d.next < len(d.lines); d.next++ {
			if l := d.lines[d.next]; match(l) {
				d.next++
				d.mu.Unlock()
				return l
			}
		}
		changed := d.changed
		d.mu.Unlock()
		select {
		case <-changed:
		case <-d.done:
			d.mu.Lock()
			more := d.next < len(d.lines)
			d.mu.Unlock()
			if !more {
				d.t.Fatalf("%s exited (%v) before printing %s", d.name, d.exitErr, what)
			}
		case <-deadline.C:
			d.t.Fatalf("%s: no %s on stdout within %v", d.name, what, timeout)
		}
	}
}

func (d *daemon) waitStarted() {
	d.t.Helper()
	d.waitLine(startTimeout, "start-up line", func(l string) bool { return strings.HasSuffix(l, " node started") })
	id := d.waitLine(startTimeout, "Peer ID line", func(l string) bool { return strings.HasPrefix(l, "Peer ID: ") })
	d.id = strings.TrimPrefix(id, "Peer ID: ")
	d.waitLine(startTimeout, "Listening on:", func(l string) bool { return l == "Listening on:" })
	for {
		l := d.waitLine(startTimeout, "the rest of the printout", func(string) bool { return true })
		switch {
		case strings.HasPrefix(l, "  /"):
			addr := strings.TrimPrefix(l, "  ")
			d.addrs = append(d.addrs, addr)
			if d.tcpPort == 0 && strings.Contains(addr, "/tcp/") {
				p := strings.Split(strings.SplitN(addr, "/tcp/", 2)[1], "/")[0]
				d.tcpPort, _ = strconv.Atoi(p)
			}
		case strings.HasPrefix(l, "CLI gateway: "):
			d.cliAddr = strings.TrimPrefix(l, "CLI gateway: ")
		case strings.HasPrefix(l, "WebSocket gateway: "):
			d.wsURL = strings.TrimPrefix(l, "WebSocket gateway: ")
		case strings.HasPrefix(l, "Metrics: "):
			d.metrics = strings.TrimPrefix(l, "Metrics: ")
		case strings.HasPrefix(l, "Admin socket: "):
			d.admin = strings.TrimPrefix(l, "Admin socket: ")
			if d.id == "" || d.tcpPort == 0 {
				d.t.Fatalf("%s: incomplete printout: %q", d.name, d.allLines())
			}
			return
		default:
			d.t.Fatalf("%s: unexpected printout line %q", d.name, l)
		}
	}
}

// tcpMultiaddr is the node's full TCP multiaddr on loopback.
func (d *daemon) tcpMultiaddr() string {
	for _, a := range d.addrs {
		if strings.HasPrefix(a, "/ip4/127.0.0.1/tcp/") {
			return a
		}
	}
	d.t.Fatalf("%s has no loopback TCP address in %q", d.name, d.addrs)
	return ""
}

// waitExit waits for the process to exit and returns its exit code.
func (d *daemon) waitExit(timeout time.Duration) int {
	d.t.Helper()
	select {
	case <-d.done:
	case <-time.After(timeout):
		d.t.Fatalf("%s did not exit within %v", d.name, timeout)
	}
	var ee *exec.ExitError
	if errors.As(d.exitErr, &ee) {
		return ee.ExitCode()
	}
	if d.exitErr != nil {
		d.t.Fatalf("%s: %v", d.name, d.exitErr)
	}
	return 0
}

// result of running the binary to completion.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) lines() []string {
	s := strings.TrimRight(r.stdout, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// run runs darkchatd with args to completion.
func run(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ctlRunLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("darkchatd %q did not finish within %v", args, ctlRunLimit)
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return r
}

// ctl runs `darkchatd ctl --admin <d's socket> words...`.
func (d *daemon) ctl(words ...string) result {
	d.t.Helper()
	return run(d.t, testEnv(d.t, d.runtimes), append([]string{"ctl", "--admin", d.admin}, words...)...)
}

// eventually polls cond every 100 ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		<-tick.C
	}
}

// nodeArgs is a node on 127.0.0.1 with free ports, a data dir and an admin
// socket of its own, no console, and extra flags after the positionals.
func nodeArgs(t *testing.T, typ string, extra ...string) []string {
	t.Helper()
	var args []string
	switch typ {
	case "full":
		args = []string{"full", "127.0.0.1", "0", "0", "0"}
	case "cli", "websock":
		args = []string{typ, "127.0.0.1", "0", "0"}
	default:
		t.Fatalf("bad node type %q", typ)
	}
	args = append(args,
		"--data-dir", filepath.Join(t.TempDir(), "data"),
		"--admin", filepath.Join(shortTempDir(t), "a.sock"),
		"--no-console")
	return append(args, extra...)
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
