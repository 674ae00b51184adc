// Package composetest brings up the docker-compose testnet at the root of
// the repository (built by docker/build.sh, with no registry) with its
// metrics profile (Prometheus, built by docker/build-prometheus.sh), chats
// across it with real darkchat clients on its published ports, including
// through the nodes behind the NAT router containers, checks that every
// node's healthcheck passes and that Prometheus has every node's darkchat
// series and runs every dashboard query, and tears it down.
//
// It skips when Docker or a compose tool is missing, and fails instead when
// DARKCHAT_REQUIRE_ALL=1 (as in CI).
package composetest

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"darkchat/tstest"
	"darkchat/tstest/chatproc"
)

// compose is how to run the compose tool: `docker compose` or
// `docker-compose`.
type compose struct {
	argv    []string // the tool, e.g. ["docker", "compose"]
	dir     string   // the repository root, with docker-compose.yml
	project string
	env     []string
}

// profile is the compose profile every command names: the metrics one,
// so that up starts Prometheus and down removes it too.
const profile = "metrics"

// findCompose returns the compose tool, or why there is none.
func findCompose() ([]string, error) {
	if _, err := exec.LookPath("docker"); err != nil {
		return nil, fmt.Errorf("docker not found in PATH")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("the Docker daemon does not answer: %v: %s", err, bytes.TrimSpace(out))
	}
	if exec.CommandContext(ctx, "docker", "compose", "version").Run() == nil {
		return []string{"docker", "compose"}, nil
	}
	if exec.CommandContext(ctx, "docker-compose", "version").Run() == nil {
		return []string{"docker-compose"}, nil
	}
	return nil, fmt.Errorf("neither `docker compose` nor `docker-compose` works (Debian: apt-get install docker-compose)")
}

func (c *compose) cmd(ctx context.Context, args ...string) *exec.Cmd {
	argv := append(append(slices.Clone(c.argv[1:]), "-p", c.project, "--profile", profile), args...)
	cmd := exec.CommandContext(ctx, c.argv[0], argv...)
	cmd.Dir = c.dir
	cmd.Env = chatproc.CleanEnv(c.env...)
	return cmd
}

func (c *compose) run(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := c.cmd(ctx, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", strings.Join(c.argv, " "), strings.Join(args, " "), err, out)
	}
	return string(out)
}

// port returns the host address a service's container port is published at.
func (c *compose) port(t *testing.T, service string, port int) (string, string) {
	t.Helper()
	out := strings.TrimSpace(c.run(t, 30*time.Second, "port", service, strconv.Itoa(port)))
	host, p, ok := strings.Cut(out, ":")
	if !ok || p == "" || p == "0" {
		t.Fatalf("%s port %d is published at %q", service, port, out)
	}
	if host == "0.0.0.0" || host == "" {
		host = "127.0.0.1"
	}
	return host, p
}

// ctl runs a console command on a node through `compose exec`.
func (c *compose) ctl(service string, args ...string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := c.cmd(ctx, append([]string{"exec", "-T", service, "darkchatd", "ctl"}, args...)...).CombinedOutput()
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if err != nil {
		return lines, fmt.Errorf("%s: darkchatd ctl %s: %v: %s", service, strings.Join(args, " "), err, out)
	}
	return lines, nil
}

func TestDockerTestnet(t *testing.T) {
	argv, err := findCompose()
	if err != nil {
		if os.Getenv("DARKCHAT_REQUIRE_ALL") == "1" {
			t.Fatalf("the docker-compose testnet cannot run and DARKCHAT_REQUIRE_ALL=1: %v", err)
		}
		t.Skipf("skipping the docker-compose testnet: %v (DARKCHAT_REQUIRE_ALL=1 makes this a failure)", err)
	}
	root, err := chatproc.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}

	// The image, exactly as a user builds it, and a client for this host.
	build := exec.Command(filepath.Join(root, "docker", "build.sh"))
	build.Dir = root
	build.Env = chatproc.CleanEnv()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("docker/build.sh: %v\n%s", err, out)
	}
	// Prometheus, built from its Go module once (minutes) and then taken
	// from the cache the script keeps.
	began := time.Now()
	build = exec.Command(filepath.Join(root, "docker", "build-prometheus.sh"))
	build.Dir = root
	build.Env = chatproc.CleanEnv()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("docker/build-prometheus.sh: %v\n%s", err, out)
	}
	t.Logf("docker/build-prometheus.sh took %v", time.Since(began).Round(100*time.Millisecond))
	bins, err := chatproc.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	// A testnet of its own beside any the user runs: its own project name,
	// subnets (still inside 198.18.0.0/15) and free host ports.
	c := &compose{argv: argv, dir: root, project: fmt.Sprintf("%s%d", projectPrefix, os.Getpid())}
	removeStale(t, c)
	var up error
	for try := 0; try < 4; try++ {
		inet := 100 + rand.IntN(100)
		lan1, lan2 := 100+rand.IntN(50), 150+rand.IntN(50)
		c.env = []string{
			"DARKCHAT_TESTNET_INET=198.18." + strconv.Itoa(inet),
			"DARKCHAT_TESTNET_LAN1=198.19." + strconv.Itoa(lan1),
			"DARKCHAT_TESTNET_LAN2=198.19." + strconv.Itoa(lan2),
			"DARKCHAT_TESTNET_BIND=127.0.0.1",
		}
		for _, p := range []string{"PUB1_CLI", "PUB1_WS", "PUB2_WS", "PUB3_CLI", "LAN1_CLI", "LAN2_WS", "PROMETHEUS"} {
			c.env = append(c.env, "DARKCHAT_TESTNET_PORT_"+p+"=0") // the kernel picks
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		out, err := c.cmd(ctx, "up", "-d").CombinedOutput()
		cancel()
		up = err
		if err == nil {
			break
		}
		c.down(t)
		if !strings.Contains(string(out), "overlap") {
			t.Fatalf("compose up: %v\n%s", err, out)
		}
		t.Logf("subnets taken, trying others: %s", bytes.TrimSpace(out))
	}
	if up != nil {
		t.Fatalf("compose up: %v", up)
	}
	t.Cleanup(func() {
		if t.Failed() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			out, _ := c.cmd(ctx, "logs", "--no-color", "--tail", "60").CombinedOutput()
			cancel()
			t.Logf("compose logs:\n%s", out)
		}
		c.down(t)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := c.cmd(ctx, "ps", "-q").Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
			t.Errorf("containers left after compose down: %s", out)
		}
	})
	start := time.Now()

	// The NATed nodes find out they are private and take relays.
	for _, svc := range []string{"lan1-cli", "lan2-websock"} {
		tstest.WaitFor(t, 2*time.Minute, svc+" to become private with a relay reservation", func() (bool, string) {
			lines, err := c.ctl(svc, "nat")
			if err != nil {
				return false, err.Error()
			}
			private := len(lines) > 0 && strings.HasPrefix(lines[0], "reachability: private")
			report := strings.Join(lines, "\n")
			return private && strings.Contains(report, "/p2p-circuit"), "nat:\n" + report
		})
		t.Logf("%s: private, with a relay reservation, after %v", svc, time.Since(start).Round(100*time.Millisecond))
	}

	dir := t.TempDir()
	client := func(name, service string, port int, ws bool) *chatproc.Client {
		host, p := c.port(t, service, port)
		args := []string{"--key", filepath.Join(dir, name+".key"), host, p}
		if ws {
			args = append([]string{"--ws"}, args...)
		}
		cmd := exec.Command(bins.Darkchat, args...)
		cmd.Env = chatproc.CleanEnv("XDG_CONFIG_HOME=" + dir)
		cl, err := chatproc.StartClient(name+"@"+service, cmd)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.CloseStdin(); cl.Kill() })
		if err := cl.Join("testnet", name); err != nil {
			t.Fatal(err)
		}
		return cl
	}
	alice := client("alice", "pub1", 7001, false)        // full node, CLI gateway
	bob := client("bob", "lan1-cli", 7001, false)        // cli node behind the cone NAT
	carol := client("carol", "lan2-websock", 7002, true) // websock node behind the symmetric NAT
	dave := client("dave", "pub2", 7002, true)           // websock node
	erin := client("erin", "pub3", 7001, false)          // cli node

	for _, pair := range [][2]*chatproc.Client{{alice, bob}, {bob, carol}, {carol, dave}, {dave, erin}} {
		took, err := chatproc.Converse(pair[0], pair[1], "testnet", pair[0].User+"-"+pair[1].User, 90*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s <-> %s: chatted both ways (first message after %v)", pair[0].Name, pair[1].Name, took.Round(time.Millisecond))
	}
	peers, _ := c.ctl("lan1-cli", "peers")
	t.Logf("lan1-cli peers:\n%s", strings.Join(peers, "\n"))

	checkHealth(t, c)
	checkPrometheus(t, c)
	t.Logf("testnet up, chatted and checked in %v", time.Since(start).Round(100*time.Millisecond))
}

func (c *compose) down(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := c.cmd(ctx, "down", "-v", "--remove-orphans", "--timeout", "20").CombinedOutput(); err != nil {
		t.Errorf("compose down: %v\n%s", err, out)
	}
}

// projectPrefix starts the compose project name of every test testnet,
// followed by the test process's ID.
const projectPrefix = "darkchattest"

// removeStale takes down testnets of earlier test processes that died
// before their clean-up ran (a test binary killed by its timeout).
func removeStale(t *testing.T, c *compose) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "ps", "-a", "--filter", "label=com.docker.compose.project",
		"--format", `{{.Label "com.docker.compose.project"}}`).Output()
	if err != nil {
		return
	}
	seen := map[string]bool{}
	for _, project := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(strings.TrimPrefix(project, projectPrefix))
		if !strings.HasPrefix(project, projectPrefix) || err != nil || seen[project] {
			continue
		}
		seen[project] = true
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			continue // its test is still running
		}
		stale := *c
		stale.project = project
		t.Logf("removing the testnet %s left by a test process that no longer runs", project)
		stale.down(t)
	}
}
