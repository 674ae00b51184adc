package main

// The admin socket lets `darkchatd ctl` run console commands on a running
// node.
//
// Protocol: the client connects to the node's unix socket and sends one
// command line (at most maxCommandLen bytes, ending in "\n"); the node runs
// it through the same console interpreter as the interactive prompt, writes
// the output lines, each ending in "\n", and closes the connection. A failed
// command is exactly one line starting "ERROR: ". A connection that closes
// without sending anything gets no answer: that is how ctl probes which
// sockets have a live node behind them.
//
// Access control is the file system's: the socket is mode 0600, in a 0700
// directory owned by the node's user.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Admin connection bounds. Commands come from the node's own user, but a
// stuck or buggy client must not pin goroutines: every phase has a deadline,
// and at most maxAdminConns commands run at once (more are refused with an
// ERROR line rather than queued, so a flood cannot build a backlog).
const (
	maxAdminConns     = 16
	adminReadTimeout  = 5 * time.Second
	adminExecTimeout  = defaultConnectTimeout + 5*time.Second
	adminWriteTimeout = 5 * time.Second
	// adminDrain* bound reading the rest of a refused (over-long) command
	// before closing: closing a socket with unread input resets it, and
	// the client could lose the ERROR line.
	adminDrainTimeout = time.Second
	adminDrainMax     = 1 << 20
	// ctlTimeout bounds a whole ctl exchange; the node's own deadline for
	// a command is shorter.
	ctlTimeout = adminExecTimeout + adminWriteTimeout + 5*time.Second
	// probeTimeout bounds dialling a socket to see whether a node answers.
	probeTimeout = time.Second
	// maxUnixPath is sun_path's size on Linux, less the terminating NUL.
	maxUnixPath = 107
)

// adminServer serves console commands on a unix socket.
type adminServer struct {
	ln   *net.UnixListener
	path string
	info fs.FileInfo // the socket file this server created
	log  *slog.Logger

	ctx    context.Context // cancelled by Close; bounds running commands
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup

	closeOnce sync.Once
}

// listenAdmin creates the admin socket at path. A socket file left by a
// crashed node is replaced; if a live node answers on it, listenAdmin fails.
// With privateDir (the default location, shared by all of the user's
// nodes), the directory must be the user's own and is made mode 0700.
func listenAdmin(path string, privateDir bool, log *slog.Logger) (*adminServer, error) {
	if len(path) > maxUnixPath {
		return nil, fmt.Errorf("admin socket path %s is %d bytes; unix sockets allow %d: pass a shorter --admin PATH", path, len(path), maxUnixPath)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("admin socket directory: %w", err)
	}
	if privateDir {
		if err := checkPrivateDir(dir); err != nil {
			return nil, err
		}
	}
	if err := removeStaleSocket(path, log); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	// Close removes the file itself, and only if it is still ours.
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		os.Remove(path)
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &adminServer{
		ln: ln, path: path, info: info, log: log,
		ctx: ctx, cancel: cancel,
		sem: make(chan struct{}, maxAdminConns),
	}, nil
}

// checkPrivateDir makes sure dir is a real directory owned by this user and
// closed to others. /tmp/darkchat-<uid> could have been created by another
// user to read or hijack our sockets; refuse it rather than use it.
func checkPrivateDir(dir string) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("admin socket directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("admin socket directory %s is not a directory (a symlink?); remove it or pass --admin PATH", dir)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Getuid() {
		return fmt.Errorf("admin socket directory %s belongs to uid %d, not to us (uid %d); remove it or pass --admin PATH", dir, sys.Uid, os.Getuid())
	}
	if st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("admin socket directory: %w", err)
		}
	}
	return nil
}

// removeStaleSocket removes a socket file no node answers on. It fails if a
// node answers there, or if path is something other than a socket.
func removeStaleSocket(path string, log *slog.Logger) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	if st.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("admin socket path %s exists and is not a socket; remove it or pass another --admin PATH", path)
	}
	if socketAnswers(path) {
		return fmt.Errorf("another darkchatd is running with admin socket %s; stop it, or give this node another peer port or --admin PATH", path)
	}
	log.Info("replacing stale admin socket left by a node that is gone", "path", path)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale admin socket: %w", err)
	}
	return nil
}

// socketAnswers reports whether something accepts connections on path.
func socketAnswers(path string) bool {
	c, err := net.DialTimeout("unix", path, probeTimeout)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// start serves admin connections with con until Close.
func (s *adminServer) start(con *console) {
	s.wg.Add(1) // Close waits for the accept loop as well as the handlers
	go func() {
		defer s.wg.Done()
		s.serve(con)
	}()
}

func (s *adminServer) serve(con *console) {
	var backoff time.Duration
	for {
		conn, err := s.ln.AcceptUnix()
		if s.ctx.Err() != nil {
			if err == nil {
				conn.Close()
			}
			return
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.Warn("admin socket accept failed; retrying", "err", err, "backoff", backoff)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		select {
		case s.sem <- struct{}{}:
		default:
			conn.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			fmt.Fprintf(conn, "ERROR: too many admin connections at once (limit %d); try again\n", maxAdminConns)
			conn.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { <-s.sem }()
			s.handle(conn, con)
		}()
	}
}

func (s *adminServer) handle(conn *net.UnixConn, con *console) {
	defer conn.Close()
	conn.SetReadDeadline(time.Now().Add(adminReadTimeout))
	r := bufio.NewReaderSize(conn, 2*maxCommandLen)
	line, err := readLine(r, maxCommandLen)
	var out []string
	switch {
	case errors.Is(err, errLineTooLong):
		out = render(nil, errLineTooLong)
	case err != nil && !errors.Is(err, io.EOF):
		s.log.Debug("admin connection: read failed", "err", err)
		return
	case strings.TrimSpace(line) == "":
		if err != nil {
			return // a probe: connected and closed without a command
		}
		out = render(nil, errors.New("empty command (try help)"))
	default:
		ctx, cancel := context.WithTimeout(s.ctx, adminExecTimeout)
		out = render(con.Exec(ctx, line))
		cancel()
		s.log.Debug("admin command", "command", line, "failed", len(out) == 1 && strings.HasPrefix(out[0], "ERROR:"))
	}

	conn.SetWriteDeadline(time.Now().Add(adminWriteTimeout))
	w := bufio.NewWriter(conn)
	for _, l := range out {
		w.WriteString(l)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		s.log.Debug("admin connection: write failed", "err", err)
		return
	}
	conn.CloseWrite()
	conn.SetReadDeadline(time.Now().Add(adminDrainTimeout))
	io.Copy(io.Discard, io.LimitReader(conn, adminDrainMax))
}

// Close stops accepting, cancels running commands, waits for the handlers
// (each bounded by its deadlines) and removes the socket file if it is still
// the one this server created. It is idempotent.
func (s *adminServer) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.ln.Close()
		s.wg.Wait()
		if st, err := os.Stat(s.path); err == nil && os.SameFile(st, s.info) {
			os.Remove(s.path)
		}
	})
	return nil
}

// runCtl is `darkchatd ctl [--admin PATH] <console command ...>`.
func runCtl(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	fs := newCtlFlagSet()
	var admin string
	fs.StringVar(&admin, "admin", "", "admin socket PATH")
	if err := applyEnv(fs, getenv); err != nil {
		return usageFailure(stderr, err)
	}
	words, err := parseInterspersed(fs, args)
	if err != nil {
		if isHelp(err) {
			ctlUsage(stdout)
			return 0
		}
		return usageFailure(stderr, err)
	}
	if len(words) == 0 {
		return usageFailure(stderr, usageErrorf("ctl needs a console command, for example: darkchatd ctl peers"))
	}
	line := strings.Join(words, " ")

	if admin == "" {
		dir := defaultAdminDir(getenv)
		if admin, err = findAdminSocket(dir); err != nil {
			fmt.Fprintf(stdout, "ERROR: %v\n", err)
			return 1
		}
	}
	lines, err := ctlExchange(admin, line)
	failed := false
	for _, l := range lines {
		fmt.Fprintln(stdout, l)
		failed = failed || strings.HasPrefix(l, "ERROR:")
	}
	if err != nil {
		fmt.Fprintf(stdout, "ERROR: %v\n", err)
		return 1
	}
	if failed {
		return 1
	}
	return 0
}

// ctlExchange sends line to the node at path and returns its answer.
func ctlExchange(path, line string) ([]string, error) {
	conn, err := net.DialTimeout("unix", path, probeTimeout)
	if err != nil {
		return nil, fmt.Errorf("no darkchatd answers on %s: %v", path, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(ctlTimeout))
	if _, err := io.WriteString(conn, line+"\n"); err != nil {
		return nil, fmt.Errorf("send command to %s: %v", path, err)
	}
	var lines []string
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	// A reset after the answer (the node refused an over-long line
	// before reading all of it) loses nothing.
	if err := sc.Err(); err != nil && (len(lines) == 0 || !errors.Is(err, syscall.ECONNRESET)) {
		return lines, fmt.Errorf("read answer from %s: %v", path, err)
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("%s closed the connection without an answer", path)
	}
	return lines, nil
}

// findAdminSocket returns the only socket in dir that a node answers on.
func findAdminSocket(dir string) (string, error) {
	paths, _ := filepath.Glob(filepath.Join(dir, "darkchatd-*.sock"))
	sort.Strings(paths)
	var live []string
	for _, p := range paths {
		if socketAnswers(p) {
			live = append(live, p)
		}
	}
	switch len(live) {
	case 0:
		return "", fmt.Errorf("no running darkchatd found in %s; pass --admin PATH", dir)
	case 1:
		return live[0], nil
	default:
		return "", fmt.Errorf("several darkchatd nodes are running (%s); pass --admin PATH", strings.Join(live, ", "))
	}
}
