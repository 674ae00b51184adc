package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"darkchat/identity"
	"darkchat/proto"
)

// The session-memory scenario keeps its clients in a child process, so that
// the parent's heap holds only server-side state: this program re-run with
// these variables set (see ChildMain).
const (
	childEnv     = "DARKBENCH_CHILD"
	childModeEnv = "DARKBENCH_CHILD_MODE" // tcp, ws (darkchat, logged in) or echo (gorilla echo)
	childAddrEnv = "DARKBENCH_CHILD_ADDR"
	childNEnv    = "DARKBENCH_CHILD_N"
	// childLife bounds the child's life if the parent never closes its
	// standard input.
	childLife = 5 * time.Minute
)

func runSessionMemory(ctx context.Context, e *Env) ([]Result, error) {
	n := pick(e, 2000, 9000)
	// The server side holds one descriptor per session, plus the warm-up
	// sessions (two each, client and server in-process) and the node's.
	limitNote := ""
	if lim := fileLimit(); lim > 0 && n > lim-1000 {
		n = max(100, lim-1000)
		limitNote = fmt.Sprintf("; %d sessions only: the open-file limit is %d", n, lim)
	}
	if len(e.Exe) == 0 {
		return nil, errors.New("session-memory needs Env.Exe to start its client process")
	}
	node, err := startNode(benchGatewayConfig())
	if err != nil {
		return nil, err
	}
	defer node.close()
	// Sessions spread over the 64 DM inbox shards; the first session of
	// a shard subscribes the node to it. Those subscriptions are the
	// node's, not the sessions': open them before measuring.
	warm, err := coverInboxShards(ctx, node)
	if err != nil {
		return nil, err
	}
	defer closeAll(warm)
	base := len(warm)
	e.progress("node up, %d warm-up sessions cover the %d inbox shards; %d sessions per measurement", base, identity.DMShards, n)

	var results []Result
	if e.ProfileDir != "" {
		// Sample every allocation from here on, so that the heap profile
		// of the sessions is exact rather than one sample per 512 KB.
		runtime.MemProfileRate = 1
		defer func() { runtime.MemProfileRate = 512 * 1024 }()
	}
	perSession := map[string]sessionMem{}
	for _, mode := range []string{"tcp", "ws"} {
		addr := node.tcpAddr
		if mode == "ws" {
			addr = node.wsURL
		}
		per, err := measureSessions(ctx, e, mode, addr, n, func() int { return node.gw.Sessions() - base },
			func() bool { return node.gw.ActiveReaders() == 0 })
		if err != nil {
			return nil, fmt.Errorf("%s sessions: %w", mode, err)
		}
		perSession[mode] = per
		e.progress("darkchat %s: %.0f B/session (heap %.0f, stacks %.0f)", mode, per.total, per.heap, per.stack)
	}

	echo, err := startEchoServer()
	if err != nil {
		return nil, err
	}
	defer echo.close()
	baseline, err := measureSessions(ctx, e, "echo", echo.url, n, func() int { return int(echo.open.Load()) }, nil)
	if err != nil {
		return nil, fmt.Errorf("gorilla echo sessions: %w", err)
	}
	e.progress("gorilla echo (default buffers): %.0f B/session (heap %.0f, stacks %.0f)", baseline.total, baseline.heap, baseline.stack)
	for _, mode := range []string{"tcp", "ws"} {
		per := perSession[mode]
		r := newResult("session-memory", "bytes_per_session_"+mode, per.total, "B",
			"gorilla/websocket echo server, default buffers", baseline.total, ptr(valueAtMost(1024, "B")))
		r.Note = fmt.Sprintf("%d idle logged-in sessions, clients in a child process; HeapInuse+StackInuse growth after GC: heap %.0f B + stacks %.0f B per session (gorilla echo: %.0f + %.0f)%s",
			n, per.heap, per.stack, baseline.heap, baseline.stack, limitNote)
		results = append(results, r)
	}
	return results, nil
}

// coverInboxShards logs in one in-process session per DM inbox shard.
func coverInboxShards(ctx context.Context, node *benchNode) ([]*protoClient, error) {
	var out []*protoClient
	covered := make(map[int]bool)
	for tries := 0; len(covered) < identity.DMShards && tries < 100*identity.DMShards; tries++ {
		key, err := identity.GenerateKey()
		if err != nil {
			closeAll(out)
			return nil, err
		}
		shard := identity.DMShard(identity.DMTag(key.Public()), identity.DMShards)
		if covered[shard] {
			continue
		}
		c, err := dialTCP(ctx, node.tcpAddr, nil, 4096)
		if err != nil {
			closeAll(out)
			return nil, err
		}
		out = append(out, c)
		if err := c.login(key, ""); err != nil {
			closeAll(out)
			return nil, err
		}
		covered[shard] = true
	}
	return out, nil
}

// memUse is the heap and stack in use after a full collection.
type memUse struct{ heap, stack int64 }

func liveBytes() memUse {
	var ms runtime.MemStats
	for range 3 {
		runtime.GC()
	}
	runtime.ReadMemStats(&ms)
	return memUse{int64(ms.HeapInuse), int64(ms.StackInuse)}
}

// sessionMem is the growth per session.
type sessionMem struct{ total, heap, stack float64 }

// measureSessions starts a child process holding n idle sessions to addr
// and returns the growth of this process's heap and stack per session.
// open reports how many of them the server holds; idle, if not nil, reports
// when the server considers them idle (darkchat's readers hand quiet
// sockets to the poller after a linger).
func measureSessions(ctx context.Context, e *Env, mode, addr string, n int, open func() int, idle func() bool) (sessionMem, error) {
	before := liveBytes()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.Exe[0], e.Exe[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"=sessions", childModeEnv+"="+mode, childAddrEnv+"="+addr, childNEnv+"="+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return sessionMem{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return sessionMem{}, err
	}
	if err := cmd.Start(); err != nil {
		return sessionMem{}, err
	}
	exited := make(chan error, 1)
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- strings.TrimSpace(line)
		io.Copy(io.Discard, stdout)
		exited <- cmd.Wait()
	}()
	defer func() {
		stdin.Close() // the child closes its sessions and exits
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	select {
	case line := <-ready:
		if line != "ready "+strconv.Itoa(n) {
			return sessionMem{}, fmt.Errorf("client process: %q, want %q", line, "ready "+strconv.Itoa(n))
		}
	case <-ctx.Done():
		return sessionMem{}, fmt.Errorf("client process did not report ready: %w", ctx.Err())
	}
	if err := waitFor(ctx, 30*time.Second, fmt.Sprintf("%d %s sessions on the server", n, mode), func() bool { return open() >= n }); err != nil {
		return sessionMem{}, err
	}
	if idle != nil {
		if err := waitFor(ctx, 30*time.Second, mode+" sessions to go idle", idle); err != nil {
			return sessionMem{}, err
		}
	}
	after := liveBytes()
	if got := open(); got != n {
		return sessionMem{}, fmt.Errorf("%d %s sessions open on the server, want %d", got, mode, n)
	}
	if e.ProfileDir != "" {
		writeHeapProfile(e, mode)
	}
	stdin.Close()
	if err := waitFor(ctx, 60*time.Second, mode+" sessions to close", func() bool { return open() == 0 }); err != nil {
		return sessionMem{}, err
	}
	heap, stack := float64(after.heap-before.heap)/float64(n), float64(after.stack-before.stack)/float64(n)
	return sessionMem{heap + stack, heap, stack}, nil
}

// writeHeapProfile saves the heap profile of the sessions just measured,
// every allocation sampled, to DIR/session-memory-<mode>.heap.pprof.
func writeHeapProfile(e *Env, mode string) {
	path := filepath.Join(e.ProfileDir, "session-memory-"+mode+".heap.pprof")
	if err := os.MkdirAll(e.ProfileDir, 0o755); err != nil {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	if pprof.Lookup("heap").WriteTo(f, 0) == nil {
		e.progress("heap profile written to %s", path)
	}
}

// echoServer is a bare gorilla/websocket echo server with the zero
// Upgrader: default buffers (gorilla reuses net/http's 4 KB ones).
type echoServer struct {
	srv   *http.Server
	url   string
	open  atomic.Int64
	mu    sync.Mutex
	conns map[*websocket.Conn]struct{}
}

func startEchoServer() (*echoServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	es := &echoServer{url: "ws://" + ln.Addr().String() + "/", conns: make(map[*websocket.Conn]struct{})}
	var up websocket.Upgrader
	es.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		es.mu.Lock()
		es.conns[ws] = struct{}{}
		es.mu.Unlock()
		es.open.Add(1)
		defer func() {
			es.open.Add(-1)
			es.mu.Lock()
			delete(es.conns, ws)
			es.mu.Unlock()
			ws.Close()
		}()
		for {
			mt, msg, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if err := ws.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	}), ReadHeaderTimeout: 10 * time.Second}
	go es.srv.Serve(ln)
	return es, nil
}

func (es *echoServer) close() {
	es.srv.Close()
	es.mu.Lock()
	for c := range es.conns {
		c.Close()
	}
	es.mu.Unlock()
}

// ChildMain runs the session-memory client process when this program was
// started as one (DARKBENCH_CHILD=sessions), and then exits; otherwise it
// returns at once. main and TestMain call it first.
func ChildMain() {
	if os.Getenv(childEnv) != "sessions" {
		return
	}
	RaiseFileLimit()
	n, _ := strconv.Atoi(os.Getenv(childNEnv))
	if err := childSessions(os.Getenv(childModeEnv), os.Getenv(childAddrEnv), n); err != nil {
		fmt.Fprintln(os.Stderr, "darkbench client process:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// childSessions opens n sessions, reports "ready n" on stdout, and holds
// them until stdin closes (or childLife passes).
func childSessions(mode, addr string, n int) error {
	if n <= 0 || addr == "" {
		return fmt.Errorf("bad child arguments: mode %q addr %q n %d", mode, addr, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), childLife)
	defer cancel()
	var mu sync.Mutex
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	jobs := make(chan int)
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				closer, err := openChildSession(ctx, mode, addr)
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				mu.Lock()
				closers = append(closers, closer)
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n && firstErr.Load() == nil; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return *p
	}
	fmt.Printf("ready %d\n", len(closers))
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

func openChildSession(ctx context.Context, mode, addr string) (func(), error) {
	switch mode {
	case "tcp", "ws":
		var c *protoClient
		var err error
		if mode == "tcp" {
			c, err = dialTCP(ctx, addr, nil, 512)
		} else {
			c, err = dialWS(ctx, addr)
		}
		if err != nil {
			return nil, err
		}
		key, err := identity.GenerateKey()
		if err == nil {
			err = c.login(key, "")
		}
		if err != nil {
			c.close()
			return nil, err
		}
		return c.close, nil
	case "echo":
		ws, _, err := websocket.DefaultDialer.DialContext(ctx, addr, nil)
		if err != nil {
			return nil, err
		}
		ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		err = ws.WriteMessage(websocket.TextMessage, proto.EncodedPing)
		if err == nil {
			_, _, err = ws.ReadMessage()
		}
		if err != nil {
			ws.Close()
			return nil, err
		}
		ws.SetReadDeadline(time.Time{})
		return func() { ws.Close() }, nil
	}
	return nil, fmt.Errorf("unknown child mode %q", mode)
}
