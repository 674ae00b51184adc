// Package netns builds small emulated internets on one Linux machine for
// darkchat's NAT tests: network namespaces joined by veth pairs, an
// "internet" namespace holding a bridge that every public host and every
// router's WAN side plugs into, and router namespaces that NAT a LAN behind
// them with iptables.
//
// # Topology
//
//	            internet namespace (bridge "br0", no address)
//	  ┌──────────────┬──────────────┬─────────────────┐
//	public host    public host    router (wan)      router (wan)
//	198.18.0.1     198.18.0.2     198.18.0.11       198.18.0.12
//	                              │ NAT               │ NAT
//	                              router (lan bridge) router (lan bridge)
//	                              198.19.1.1          198.19.2.1
//	                              │                   │
//	                              LAN host 198.19.1.2 LAN host 198.19.2.2
//
// Public hosts and routers share one on-link subnet and have no default
// route, so nothing can leave the emulated internet; LAN hosts route through
// their router. Addresses are the caller's choice, and darkchat's tests keep
// them inside 198.18.0.0/15, the range reserved for network testing.
//
// # Routers
//
// A router forwards between its LAN and WAN and rewrites the source of
// outgoing traffic with iptables MASQUERADE:
//
//   - Cone: plain MASQUERADE keeps the LAN host's source port when it is
//     free, so one LAN socket maps to one public address and port whatever
//     the destination (endpoint-independent mapping, "cone-like").
//   - Symmetric: MASQUERADE --random picks a random source port per
//     connection, so each destination sees a different port
//     (endpoint-dependent mapping, "symmetric-like"); hole punching fails.
//
// Every router drops unsolicited packets addressed to itself on its WAN side
// (conntrack state NEW or INVALID), as home routers do. Without that rule the
// remote peer's first hole-punch packet reaches the router before the LAN
// host's own outbound packet, leaves a conntrack entry for the router's
// address, and MASQUERADE then gives the LAN host's packet another source
// port: every hole punch fails even between cone routers.
//
// # Names and clean-up
//
// Namespace names carry the creating process's ID ("dcn<pid>x<seq>-<host>"),
// so parallel tests and parallel test binaries never collide, and New
// removes namespaces left behind by processes that no longer exist (a test
// binary killed by a timeout cannot run its clean-up). Interfaces are
// created inside their namespaces, never in the root namespace, so their
// short names cannot collide either. Deleting a namespace destroys its
// interfaces and its iptables rules; Close deletes them all, and is what a
// test registers with t.Cleanup after it has stopped the processes it ran
// inside them.
package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// namePrefix starts every namespace this package creates.
const namePrefix = "dcn"

// cmdTimeout bounds each ip/iptables invocation.
const cmdTimeout = 30 * time.Second

// Kind is the NAT behaviour of a router.
type Kind int

const (
	// Cone is port-preserving MASQUERADE (endpoint-independent mapping).
	Cone Kind = iota
	// Symmetric is MASQUERADE --random (endpoint-dependent mapping).
	Symmetric
)

func (k Kind) String() string {
	switch k {
	case Cone:
		return "cone"
	case Symmetric:
		return "symmetric"
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Tools lists the commands the package runs.
var Tools = []string{"ip", "iptables"}

// Check reports why this machine cannot build testnets: not root, or a
// missing tool, or namespaces that cannot be created. nil means it can.
func Check() error {
	if os.Geteuid() != 0 {
		return errors.New("network namespaces need root (running as uid " + strconv.Itoa(os.Geteuid()) + ")")
	}
	for _, t := range Tools {
		if toolPath(t) == t {
			return fmt.Errorf("%s not found in PATH, /usr/sbin or /sbin (Debian: apt-get install iproute2 iptables)", t)
		}
	}
	probe := fmt.Sprintf("%s%dprobe%d", namePrefix, os.Getpid(), seq.Add(1))
	if err := run(context.Background(), "ip", "netns", "add", probe); err != nil {
		return fmt.Errorf("cannot create a network namespace: %w", err)
	}
	defer run(context.Background(), "ip", "netns", "del", probe)
	if err := run(context.Background(), "ip", "netns", "exec", probe, toolPath("iptables"), "-t", "nat", "-L", "-n"); err != nil {
		return fmt.Errorf("iptables NAT does not work in a namespace: %w", err)
	}
	return nil
}

var seq atomic.Int64

// Net is one emulated internet. Its methods are safe for concurrent use.
type Net struct {
	prefix string // "dcn<pid>x<seq>"
	inet   string // namespace holding the bridge

	mu     sync.Mutex
	spaces []string // namespaces to delete, in creation order
	ports  int      // bridge ports created so far
	closed bool
}

// New creates an empty internet: one namespace with a bridge. The caller
// must Close it.
func New() (*Net, error) {
	sweepStale()
	n := &Net{prefix: fmt.Sprintf("%s%dx%d", namePrefix, os.Getpid(), seq.Add(1))}
	n.inet = n.prefix + "-inet"
	if err := n.addNamespace(n.inet); err != nil {
		return nil, err
	}
	if err := n.ip(n.inet, "link", "add", "br0", "type", "bridge"); err != nil {
		n.Close()
		return nil, err
	}
	if err := n.ip(n.inet, "link", "set", "br0", "up"); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// Prefix is the start of every namespace name of this Net.
func (n *Net) Prefix() string { return n.prefix }

// Host is one namespace with an address: a public host, a router, or a LAN
// host behind a router.
type Host struct {
	net  *Net
	Name string     // as given to AddPublicHost, AddRouter or AddHost
	NS   string     // the namespace's name, for ip netns exec
	Addr netip.Addr // its address (a router's WAN address)
}

// AddPublicHost adds a host on the internet bridge at addr (with its
// prefix length, e.g. 198.18.0.1/24).
func (n *Net) AddPublicHost(name string, addr netip.Prefix) (*Host, error) {
	h, err := n.newHost(name, addr.Addr())
	if err != nil {
		return nil, err
	}
	if err := n.plugIntoInternet(h, "eth0", addr); err != nil {
		return nil, err
	}
	return h, nil
}

// Router is a NAT router: its WAN side is on the internet bridge, its LAN
// side a bridge that AddHost plugs hosts into.
type Router struct {
	*Host
	Kind Kind
	LAN  netip.Prefix // the router's LAN address and prefix, e.g. 198.19.1.1/24

	mu    sync.Mutex
	ports int
}

// AddRouter adds a router with WAN address wan (on the internet bridge)
// and LAN address lan (the gateway of the LAN behind it), NATing with kind.
func (n *Net) AddRouter(name string, wan, lan netip.Prefix, kind Kind) (*Router, error) {
	h, err := n.newHost(name, wan.Addr())
	if err != nil {
		return nil, err
	}
	if err := n.plugIntoInternet(h, "wan", wan); err != nil {
		return nil, err
	}
	r := &Router{Host: h, Kind: kind, LAN: lan}
	masq := []string{"-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"}
	if kind == Symmetric {
		masq = append(masq, "--random")
	}
	steps := [][]string{
		{"ip", "-n", h.NS, "link", "add", "lan", "type", "bridge"},
		{"ip", "-n", h.NS, "addr", "add", lan.String(), "dev", "lan"},
		{"ip", "-n", h.NS, "link", "set", "lan", "up"},
		{"ip", "netns", "exec", h.NS, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"},
		append([]string{"ip", "netns", "exec", h.NS, toolPath("iptables")}, masq...),
		// Drop unsolicited packets to the router itself (see the package doc).
		{"ip", "netns", "exec", h.NS, toolPath("iptables"), "-A", "INPUT", "-i", "wan",
			"-m", "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP"},
	}
	for _, s := range steps {
		if err := run(context.Background(), s[0], s[1:]...); err != nil {
			return nil, fmt.Errorf("router %s: %w", name, err)
		}
	}
	return r, nil
}

// AddHost adds a host on the router's LAN at addr (with prefix length),
// whose default route is the router.
func (r *Router) AddHost(name string, addr netip.Prefix) (*Host, error) {
	h, err := r.net.newHost(name, addr.Addr())
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.ports++
	port := "l" + strconv.Itoa(r.ports)
	r.mu.Unlock()
	steps := [][]string{
		{"ip", "-n", r.NS, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.NS},
		{"ip", "-n", r.NS, "link", "set", port, "master", "lan"},
		{"ip", "-n", r.NS, "link", "set", port, "up"},
		{"ip", "-n", h.NS, "addr", "add", addr.String(), "dev", "eth0"},
		{"ip", "-n", h.NS, "link", "set", "eth0", "up"},
		{"ip", "-n", h.NS, "route", "add", "default", "via", r.LAN.Addr().String()},
	}
	for _, s := range steps {
		if err := run(context.Background(), s[0], s[1:]...); err != nil {
			return nil, fmt.Errorf("LAN host %s: %w", name, err)
		}
	}
	return h, nil
}

// Iptables runs iptables inside the router's namespace, for rules a test
// adds on top of the NAT (for example dropping UDP to force TCP).
func (r *Router) Iptables(args ...string) error {
	return run(context.Background(), "ip", append([]string{"netns", "exec", r.NS, toolPath("iptables")}, args...)...)
}

// Command returns a command that runs name inside the host's namespace.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, toolPath("ip"), append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// Close deletes every namespace of the net, with their interfaces and
// iptables rules. Processes still running inside keep their namespace alive
// until they exit, so stop them first. Close is idempotent.
func (n *Net) Close() error {
	n.mu.Lock()
	spaces := n.spaces
	n.spaces, n.closed = nil, true
	n.mu.Unlock()
	var errs []error
	for i := len(spaces) - 1; i >= 0; i-- {
		if err := run(context.Background(), "ip", "netns", "del", spaces[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (n *Net) newHost(name string, addr netip.Addr) (*Host, error) {
	if name == "" || strings.ContainsAny(name, "/ \t\n") {
		return nil, fmt.Errorf("bad host name %q", name)
	}
	h := &Host{net: n, Name: name, NS: n.prefix + "-" + name, Addr: addr}
	if err := n.addNamespace(h.NS); err != nil {
		return nil, err
	}
	return h, nil
}

// plugIntoInternet joins h to the internet bridge through a veth pair whose
// end in h is called dev.
func (n *Net) plugIntoInternet(h *Host, dev string, addr netip.Prefix) error {
	n.mu.Lock()
	n.ports++
	port := "p" + strconv.Itoa(n.ports)
	n.mu.Unlock()
	steps := [][]string{
		{"-n", n.inet, "link", "add", port, "type", "veth", "peer", "name", dev, "netns", h.NS},
		{"-n", n.inet, "link", "set", port, "master", "br0"},
		{"-n", n.inet, "link", "set", port, "up"},
		{"-n", h.NS, "addr", "add", addr.String(), "dev", dev},
		{"-n", h.NS, "link", "set", dev, "up"},
	}
	for _, s := range steps {
		if err := run(context.Background(), "ip", s...); err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
	}
	return nil
}

func (n *Net) addNamespace(name string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return errors.New("netns: net is closed")
	}
	if err := run(context.Background(), "ip", "netns", "add", name); err != nil {
		return err
	}
	n.spaces = append(n.spaces, name)
	return run(context.Background(), "ip", "-n", name, "link", "set", "lo", "up")
}

func (n *Net) ip(ns string, args ...string) error {
	return run(context.Background(), "ip", append([]string{"-n", ns}, args...)...)
}

// sweepStale deletes namespaces this package created in processes that
// have exited.
func sweepStale() {
	out, err := exec.Command(toolPath("ip"), "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		pid, ok := creatorPID(name)
		if !ok || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			continue // still running
		}
		run(context.Background(), "ip", "netns", "del", name)
	}
}

// creatorPID extracts <pid> from "dcn<pid>x<seq>-…" or "dcn<pid>probe<seq>".
func creatorPID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, namePrefix)
	if !ok {
		return 0, false
	}
	end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
	if end <= 0 {
		return 0, false
	}
	tail := rest[end:]
	if !strings.HasPrefix(tail, "x") && !strings.HasPrefix(tail, "probe") {
		return 0, false
	}
	pid, err := strconv.Atoi(rest[:end])
	return pid, err == nil
}

// toolPath finds a command in PATH or, since root's tools live there and a
// test's PATH may lack them, in /usr/sbin and /sbin. It returns name itself
// when the command is nowhere.
func toolPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := dir + "/" + name
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return name
}

// run runs a command, returning its combined output in the error.
func run(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, toolPath(name), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}
