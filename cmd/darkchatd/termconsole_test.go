package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"darkchat/tstest"
)

// tmux runs one tmux command on the test's own server (socket).
func tmux(t *testing.T, socket string, args ...string) string {
	t.Helper()
	out, err := exec.Command("tmux", append([]string{"-S", socket}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("tmux %q: %v: %s", args, err, out)
	}
	return string(out)
}

// On a terminal the console's prompt and the command being typed stay on
// the last line whatever the node logs meanwhile: a log line (here the one
// a ban through ctl writes) is printed above them, and the command typed
// before it still runs.
func TestConsolePromptSurvivesLogs(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("DARKCHAT_REQUIRE_ALL") == "1" {
			t.Fatal("tmux is needed to give the console a terminal, and DARKCHAT_REQUIRE_ALL=1")
		}
		t.Skip("tmux is needed to give the console a terminal")
	}
	dir := shortTempDir(t)
	socket, admin := filepath.Join(dir, "tmux"), filepath.Join(dir, "admin.sock")
	cmdline := fmt.Sprintf("env -i PATH=%q HOME=%q XDG_RUNTIME_DIR=%q TERM=xterm %q cli 127.0.0.1 0 0 --data-dir %q --admin %q",
		os.Getenv("PATH"), dir, dir, binPath, filepath.Join(dir, "data"), admin)
	tmux(t, socket, "new-session", "-d", "-x", "200", "-y", "50", "-s", "node", cmdline)
	t.Cleanup(func() { exec.Command("tmux", "-S", socket, "kill-server").Run() })
	screen := func() []string {
		out := tmux(t, socket, "capture-pane", "-p", "-t", "node")
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		for len(lines) > 0 && strings.TrimSpace(lines[len(lines)-1]) == "" {
			lines = lines[:len(lines)-1]
		}
		return lines
	}
	last := func() string {
		if l := screen(); len(l) > 0 {
			return l[len(l)-1]
		}
		return ""
	}
	tstest.WaitFor(t, startTimeout, "the console prompt", func() (bool, string) {
		return last() == ">", strings.Join(screen(), "\n")
	})
	tmux(t, socket, "send-keys", "-t", "node", "-l", "pee")
	tstest.WaitFor(t, 5*time.Second, "the typed text", func() (bool, string) {
		return last() == "> pee", strings.Join(screen(), "\n")
	})
	key := strings.Repeat("ab", 32)
	if out, err := exec.Command(binPath, "ctl", "--admin", admin, "ban", key, "spam").CombinedOutput(); err != nil {
		t.Fatalf("ctl ban: %v: %s", err, out)
	}
	tstest.WaitFor(t, 5*time.Second, "the ban's log line above the prompt", func() (bool, string) {
		l := screen()
		// The log line may wrap: look for it in the lines above the last.
		above := strings.Join(l[:max(len(l)-1, 0)], "")
		return strings.Contains(above, `msg="operator banned a key"`) && strings.Contains(above, key[:32]) && l[len(l)-1] == "> pee",
			strings.Join(l, "\n")
	})
	tmux(t, socket, "send-keys", "-t", "node", "-l", "rs")
	tmux(t, socket, "send-keys", "-t", "node", "Enter")
	tstest.WaitFor(t, 5*time.Second, "the peers command's answer", func() (bool, string) {
		l := screen()
		return len(l) >= 2 && l[len(l)-2] == "No Peers Connected !" && l[len(l)-1] == ">", strings.Join(l, "\n")
	})
}
