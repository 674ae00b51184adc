package netns

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestCreatorPID(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  int
		ok   bool
	}{
		{"dcn1234x7-pub1", 1234, true},
		{"dcn1234x7-inet", 1234, true},
		{"dcn99probe3", 99, true},
		{"dcnx7-pub1", 0, false},
		{"dcn1234-pub1", 0, false},
		{"other1234x7", 0, false},
		{"", 0, false},
	} {
		pid, ok := creatorPID(tc.name)
		if pid != tc.pid || ok != tc.ok {
			t.Errorf("creatorPID(%q) = %d, %v; want %d, %v", tc.name, pid, ok, tc.pid, tc.ok)
		}
	}
}

// The test binary doubles as a tiny TCP tool run inside namespaces:
//
//	NETNS_HELPER=serve ADDR      accept connections, answer each with the address it came from
//	NETNS_HELPER=dial ADDR LOCAL  connect from local address LOCAL, print the answer
func TestMain(m *testing.M) {
	switch os.Getenv("NETNS_HELPER") {
	case "":
		os.Exit(m.Run())
	case "serve":
		ln, err := net.Listen("tcp", os.Args[len(os.Args)-1])
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
		fmt.Println("LISTENING")
		for {
			c, err := ln.Accept()
			if err != nil {
				os.Exit(1)
			}
			fmt.Fprintln(c, c.RemoteAddr())
			c.Close()
		}
	case "dial":
		local, err := net.ResolveTCPAddr("tcp", os.Args[len(os.Args)-1])
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(1)
		}
		d := net.Dialer{LocalAddr: local, Timeout: 3 * time.Second}
		c, err := d.Dial("tcp", os.Args[len(os.Args)-2])
		if err != nil {
			fmt.Println("ERROR", err)
			os.Exit(0)
		}
		line, _ := bufio.NewReader(c).ReadString('\n')
		fmt.Print(line)
		os.Exit(0)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if err := Check(); err != nil {
		if os.Getenv("DARKCHAT_REQUIRE_ALL") == "1" {
			t.Fatalf("netns cannot run and DARKCHAT_REQUIRE_ALL=1: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
}

func helper(t *testing.T, h *Host, args ...string) *exec.Cmd {
	t.Helper()
	cmd := h.Command(context.Background(), os.Args[0], append([]string{"-test.run=^$"}, args[1:]...)...)
	cmd.Env = append(os.Environ(), "NETNS_HELPER="+args[0])
	return cmd
}

// TestRouters checks what the NAT tests rely on: a cone router keeps a LAN
// host's source port, a symmetric one does not, LAN hosts reach the
// internet only through their router, and a router answers nothing
// unsolicited on its WAN side.
func TestRouters(t *testing.T) {
	requireRoot(t)
	n, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
		out, _ := exec.Command("ip", "netns", "list").Output()
		if strings.Contains(string(out), n.Prefix()+"-") {
			t.Errorf("namespaces left behind:\n%s", out)
		}
	})
	server, err := n.AddPublicHost("server", netip.MustParsePrefix("198.18.0.1/24"))
	if err != nil {
		t.Fatal(err)
	}
	cone, err := n.AddRouter("cone", netip.MustParsePrefix("198.18.0.11/24"), netip.MustParsePrefix("198.19.1.1/24"), Cone)
	if err != nil {
		t.Fatal(err)
	}
	sym, err := n.AddRouter("sym", netip.MustParsePrefix("198.18.0.12/24"), netip.MustParsePrefix("198.19.2.1/24"), Symmetric)
	if err != nil {
		t.Fatal(err)
	}
	behindCone, err := cone.AddHost("a", netip.MustParsePrefix("198.19.1.2/24"))
	if err != nil {
		t.Fatal(err)
	}
	behindSym, err := sym.AddHost("b", netip.MustParsePrefix("198.19.2.2/24"))
	if err != nil {
		t.Fatal(err)
	}

	srv := helper(t, server, "serve", "198.18.0.1:9000")
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); strings.TrimSpace(line) != "LISTENING" {
		t.Fatalf("server: %q", line)
	}

	seen := func(h *Host, local string) string {
		t.Helper()
		b, err := helper(t, h, "dial", "198.18.0.1:9000", local).Output()
		if err != nil {
			t.Fatalf("dial from %s: %v", h.Name, err)
		}
		return strings.TrimSpace(string(b))
	}
	if got := seen(behindCone, "198.19.1.2:5555"); got != "198.18.0.11:5555" {
		t.Errorf("behind the cone router the server saw %s, want 198.18.0.11:5555", got)
	}
	got := seen(behindSym, "198.19.2.2:5555")
	host, port, _ := net.SplitHostPort(got)
	if host != "198.18.0.12" || port == "5555" {
		t.Errorf("behind the symmetric router the server saw %s, want 198.18.0.12 with another port", got)
	}
	if p, _ := strconv.Atoi(port); p == 0 {
		t.Errorf("bad address %q", got)
	}
	// Unsolicited: the server dials the port the cone router just mapped.
	if got, err := helper(t, server, "dial", "198.18.0.11:5555", "198.18.0.1:0").Output(); err != nil || !strings.HasPrefix(string(got), "ERROR") {
		t.Errorf("an unsolicited connection to the router got %q (%v), want a timeout", got, err)
	}
}
