package main

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"darkchat/gateway"
	"darkchat/identity"
	"darkchat/p2p"
)

// TestBansOverCtl drives ban, unban and bans through ctl on a real node:
// the output formats, the errors, the refused login, the log line, and the
// list kept across a restart in the data dir's bans file.
func TestBansOverCtl(t *testing.T) {
	t.Parallel()
	dataDir := filepath.Join(t.TempDir(), "data")
	admin := filepath.Join(shortTempDir(t), "a.sock")
	args := []string{"cli", "127.0.0.1", "0", "0", "--data-dir", dataDir, "--admin", admin, "--no-console"}
	d := startDaemon(t, "node", daemonSpec{args: args})

	alice, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	bob, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	ak, bk := alice.Public().String(), bob.Public().String()

	expect := func(r result, want ...string) {
		t.Helper()
		if r.code != 0 || strings.Join(r.lines(), "\n") != strings.Join(want, "\n") {
			t.Fatalf("exit %d, output %q; want exit 0 and %q", r.code, r.lines(), want)
		}
	}
	expectError := func(r result, want string) {
		t.Helper()
		lines := r.lines()
		if r.code == 0 || len(lines) != 1 || !strings.HasPrefix(lines[0], "ERROR: ") || !strings.Contains(lines[0], want) {
			t.Fatalf("exit %d, output %q; want one line \"ERROR: …%s…\" and a non-zero exit", r.code, lines, want)
		}
	}

	expect(d.ctl("bans"), "No Banned Keys")
	if got := login(t, d.cliAddr, d.id, alice); got != "welcome" {
		t.Fatalf("alice's login before the ban: %s, want welcome", got)
	}

	r := d.ctl("ban", ak, "spam", "from", "a", "bot")
	if r.code != 0 || len(r.lines()) != 1 || !strings.HasPrefix(r.lines()[0], "Banned "+ak+":") {
		t.Fatalf("ban: exit %d, output %q", r.code, r.lines())
	}
	// Upper case is the same key; a second ban changes nothing.
	r = d.ctl("ban", strings.ToUpper(ak), "again")
	if r.code != 0 || len(r.lines()) != 1 || !strings.HasPrefix(r.lines()[0], ak+" is already banned (since ") {
		t.Fatalf("second ban: exit %d, output %q", r.code, r.lines())
	}
	r = d.ctl("ban", bk)
	if r.code != 0 || len(r.lines()) != 1 || !strings.HasPrefix(r.lines()[0], "Banned "+bk+":") {
		t.Fatalf("ban without a reason: exit %d, output %q", r.code, r.lines())
	}
	listed := regexp.MustCompile(`^BANNED KEYS \(2\):\n1\. ` + ak + ` \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ spam from a bot\n2\. ` + bk + ` \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n$`)
	if r := d.ctl("bans"); r.code != 0 || !listed.MatchString(r.stdout) {
		t.Fatalf("bans: exit %d, output %q", r.code, r.stdout)
	}
	if got := login(t, d.cliAddr, d.id, alice); got != "banned" {
		t.Fatalf("alice's login after the ban: %s, want banned", got)
	}
	eventually(t, 5*time.Second, "a log line per ban", func() bool {
		return strings.Count(d.stderr.String(), "operator banned a key") == 2
	})

	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"ban"}, "which key?"},
		{[]string{"ban", "12ab"}, "not a public key"},
		{[]string{"ban", strings.Repeat("g", 64)}, "not a public key"},
		{[]string{"ban", ak[:10], "x"}, "not a public key"},
		{[]string{"ban", identityString(t), strings.Repeat("long ", 50)}, "reason"},
		{[]string{"unban"}, "usage: unban <public-key>"},
		{[]string{"unban", ak, bk}, "usage: unban <public-key>"},
		{[]string{"unban", identityString(t)}, "is not banned"},
		{[]string{"bans", "all"}, "takes no arguments"},
	} {
		expectError(d.ctl(tc.words...), tc.want)
	}

	// The list is in the data dir, 0600, one "<key> <unix-ms> <reason>"
	// a line.
	path := filepath.Join(dataDir, gateway.BansFile)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("bans file mode %v, want 0600", st.Mode().Perm())
	}
	data, _ := os.ReadFile(path)
	if !regexp.MustCompile(`^` + ak + ` \d{13} spam from a bot\n` + bk + ` \d{13} \n$`).Match(data) {
		t.Fatalf("bans file holds %q", data)
	}

	// A restart keeps the bans.
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := d.waitExit(exitTimeout); code != 0 {
		t.Fatalf("exit code after SIGTERM: %d", code)
	}
	d = startDaemon(t, "restarted", daemonSpec{args: args})
	if r := d.ctl("bans"); r.code != 0 || !listed.MatchString(r.stdout) {
		t.Fatalf("bans after a restart: exit %d, output %q", r.code, r.stdout)
	}
	if got := login(t, d.cliAddr, d.id, alice); got != "banned" {
		t.Fatalf("alice's login after a restart: %s, want banned", got)
	}
	expect(d.ctl("unban", ak), "Unbanned "+ak)
	if got := login(t, d.cliAddr, d.id, alice); got != "welcome" {
		t.Fatalf("alice's login after unban: %s, want welcome", got)
	}
	expect(d.ctl("unban", bk), "Unbanned "+bk)
	expect(d.ctl("bans"), "No Banned Keys")
	eventually(t, 5*time.Second, "a log line per unban", func() bool {
		return strings.Count(d.stderr.String(), "operator unbanned a key") == 2
	})
	entries, err := os.ReadDir(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != gateway.BansFile+" "+p2p.NodeKeyFile {
		t.Fatalf("data dir holds %v, want the node key and the ban list", names)
	}
}

// identityString is a fresh user's public key.
func identityString(t *testing.T) string {
	t.Helper()
	k, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.Public().String()
}

// login logs key in on the CLI gateway at addr and returns the answer's
// type, or the error's code.
func login(t *testing.T, addr, nodeID string, key identity.PrivateKey) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	var hello struct{ Type, Challenge string }
	line, err := r.ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(line, &hello); err != nil || hello.Type != "hello" {
		t.Fatalf("greeted with %q", line)
	}
	req, _ := json.Marshal(map[string]string{"type": "login", "key": key.Public().String(),
		"sig": hex.EncodeToString(identity.SignLogin(key, hello.Challenge))})
	if _, err := conn.Write(append(req, '\n')); err != nil {
		t.Fatal(err)
	}
	line, err = r.ReadBytes('\n')
	if err != nil {
		t.Fatal(err)
	}
	var ans struct{ Type, Code string }
	if err := json.Unmarshal(line, &ans); err != nil {
		t.Fatalf("answer %q: %v", line, err)
	}
	if ans.Type == "error" {
		return ans.Code
	}
	return ans.Type
}
