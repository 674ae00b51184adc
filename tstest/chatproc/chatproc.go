// Package chatproc drives darkchat's real binaries from process-level
// tests: it builds darkchatd and darkchat once, runs nodes and clients as
// processes (through whatever wrapper the test needs: `ip netns exec`, or
// nothing for published Docker ports), reads their output line by line, and
// runs `darkchatd ctl` against a node's admin socket.
//
// Multi-host tests (nattest, composetest) use Proc, Client and the
// error-returning helpers. Single-host tests on loopback (e2e, browsertest)
// use TestProc, TestNode and TestClient (loopback.go), which fail the test
// on error, stop their process when the test ends and log its output when
// the test failed.
//
// Every wait polls or blocks with a deadline; nothing sleeps to give the
// network time.
package chatproc

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
	"strings"
	"sync"
	"syscall"
	"time"
)

// Binaries are the paths of a darkchatd and a darkchat built by Build.
type Binaries struct {
	Dir       string
	Darkchatd string
	Darkchat  string
}

// Build compiles cmd/darkchatd and cmd/darkchat of the module containing
// the working directory into dir. Extra environment (for example
// CGO_ENABLED=0 for a static binary) is added to the go tool's.
func Build(dir string, env ...string) (Binaries, error) {
	root, err := ModuleRoot()
	if err != nil {
		return Binaries{}, err
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(goRoot(), "bin", "go")
	}
	b := Binaries{Dir: dir, Darkchatd: filepath.Join(dir, "darkchatd"), Darkchat: filepath.Join(dir, "darkchat")}
	cmd := exec.Command(goTool, "build", "-o", dir+string(filepath.Separator), "./cmd/darkchatd", "./cmd/darkchat")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return Binaries{}, fmt.Errorf("go build: %w\n%s", err, out)
	}
	return b, nil
}

// BuildTemp builds the binaries, as Build does, into a new temporary
// directory named after pattern (see os.MkdirTemp). The caller removes
// b.Dir when done; on error nothing is left behind.
func BuildTemp(pattern string, env ...string) (Binaries, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return Binaries{}, err
	}
	b, err := Build(dir, env...)
	if err != nil {
		os.RemoveAll(dir)
		return Binaries{}, err
	}
	return b, nil
}

func goRoot() string {
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	return "/usr/local/go"
}

// ModuleRoot returns the directory holding go.mod, searching upwards from
// the working directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// CleanEnv is the environment for a child process: this process's, without
// DARKCHAT_* variables (a test's nodes take their settings from flags), with
// extra appended.
func CleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "DARKCHAT_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// Proc is a running process whose stdout (and optionally stderr) lines are
// collected.
type Proc struct {
	Name string
	cmd  *exec.Cmd

	stdin io.WriteCloser

	mu      sync.Mutex
	lines   []string      // stdout lines
	errLog  bytes.Buffer  // stderr, bounded
	changed chan struct{} // closed and replaced on every new line
	done    chan struct{} // closed when the process has exited
	exitErr error
}

// maxStderr bounds the stderr a Proc keeps (the tail is what matters).
const maxStderr = 4 << 20

// Start starts cmd, collecting its output. With stdinPipe the process reads
// lines written with Send; otherwise its stdin is empty. The process gets
// SIGKILL if the test process dies first.
func Start(name string, cmd *exec.Cmd, stdinPipe bool) (*Proc, error) {
	p := &Proc{Name: name, cmd: cmd, changed: make(chan struct{}), done: make(chan struct{})}
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	if stdinPipe {
		w, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		p.stdin = w
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	var readers sync.WaitGroup
	readers.Add(2)
	go func() {
		defer readers.Done()
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.changed)
			p.changed = make(chan struct{})
			p.mu.Unlock()
		}
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		defer readers.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := stderr.Read(buf)
			if n > 0 {
				p.mu.Lock()
				if p.errLog.Len() > maxStderr {
					tail := p.errLog.Bytes()[p.errLog.Len()-maxStderr/2:]
					p.errLog = *bytes.NewBuffer(append([]byte("…\n"), tail...))
				}
				p.errLog.Write(buf[:n])
				p.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		readers.Wait()
		err := cmd.Wait()
		p.mu.Lock()
		p.exitErr = err
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
		close(p.done)
	}()
	return p, nil
}

// PID is the process ID.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Send writes one line to the process's stdin.
func (p *Proc) Send(line string) error {
	if p.stdin == nil {
		return errors.New(p.Name + " has no stdin pipe")
	}
	_, err := io.WriteString(p.stdin, line+"\n")
	return err
}

// CloseStdin ends the process's input.
func (p *Proc) CloseStdin() error {
	if p.stdin == nil {
		return nil
	}
	return p.stdin.Close()
}

// Lines returns a copy of the stdout lines so far.
func (p *Proc) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// Stderr returns what the process wrote to stderr (its tail, if long).
func (p *Proc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.errLog.String()
}

// Done is closed once the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// ExitErr is the process's exit error, once Done is closed.
func (p *Proc) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

// ExitCode waits for the process to exit and returns its exit code (-1 if
// a signal ended it).
func (p *Proc) ExitCode() int {
	<-p.done
	return p.cmd.ProcessState.ExitCode()
}

// WaitLine waits until a stdout line at index from or later satisfies
// match, and returns that line and the index after it. It fails when the
// timeout passes or the process exits first.
func (p *Proc) WaitLine(from int, timeout time.Duration, match func(string) bool) (string, int, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if match(p.lines[i]) {
				l := p.lines[i]
				p.mu.Unlock()
				return l, i + 1, nil
			}
		}
		from = max(from, len(p.lines))
		changed := p.changed
		exited := p.isDone()
		p.mu.Unlock()
		if exited {
			return "", from, fmt.Errorf("%s exited (%v) before printing the line", p.Name, p.ExitErr())
		}
		select {
		case <-changed:
		case <-deadline.C:
			return "", from, fmt.Errorf("%s did not print the line within %v", p.Name, timeout)
		}
	}
}

func (p *Proc) isDone() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits up to grace for the process to exit, then
// kills it. It returns the exit error of a process that ended on SIGTERM
// (nil for exit status 0).
func (p *Proc) Stop(grace time.Duration) error {
	if p.isDone() {
		return p.ExitErr()
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.ExitErr()
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not exit within %v of SIGTERM; killed", p.Name, grace)
	}
}

// Kill ends the process at once (a node that "goes away") and waits for it.
func (p *Proc) Kill() {
	if !p.isDone() {
		p.cmd.Process.Kill()
	}
	<-p.done
}

// Ctl runs `darkchatd ctl --admin sock <args>` and returns its output
// lines; a non-zero exit is an error carrying the output.
func Ctl(ctx context.Context, darkchatd, sock string, args ...string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, darkchatd, append([]string{"ctl", "--admin", sock}, args...)...)
	cmd.Env = CleanEnv()
	out, err := cmd.CombinedOutput()
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if err != nil {
		return lines, fmt.Errorf("darkchatd ctl %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return lines, nil
}

// Peer is one line of the `peers` console command.
type Peer struct {
	ID      string
	Addr    string
	Relayed bool
}

// ParsePeers parses the output of `peers`:
// "CONNECTED PEERS (N):" then "<n>. <peer-id> <remote-multiaddr> <direct|relayed>".
func ParsePeers(lines []string) ([]Peer, error) {
	if len(lines) == 1 && strings.TrimSpace(lines[0]) == "No Peers Connected !" {
		return nil, nil
	}
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "CONNECTED PEERS (") {
		return nil, fmt.Errorf("unexpected peers output %q", lines)
	}
	var out []Peer
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 4 || (f[3] != "direct" && f[3] != "relayed") {
			return nil, fmt.Errorf("unexpected peers line %q", l)
		}
		out = append(out, Peer{ID: f[1], Addr: f[2], Relayed: f[3] == "relayed"})
	}
	return out, nil
}
