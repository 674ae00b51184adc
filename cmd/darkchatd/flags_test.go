package main

import (
	"darkchat/p2p"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestParseServerArgs(t *testing.T) {
	ma1 := "/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWKGtD5wXAb8pPtFMzC2yzKXiAi42ZQqidhcD9QvcwPzt1"
	cases := []struct {
		name  string
		typ   string
		args  []string
		env   map[string]string
		check func(t *testing.T, o *options)
	}{
		{
			name: "full positionals",
			typ:  "full", args: []string{"0.0.0.0", "8545", "8546", "30303"},
			check: func(t *testing.T, o *options) {
				if o.ip != netip.IPv4Unspecified() || o.cliPort != 8545 || o.wsPort != 8546 || o.peerPort != 30303 {
					t.Errorf("got ip %v ports %d %d %d", o.ip, o.cliPort, o.wsPort, o.peerPort)
				}
				if !o.relayService || o.console != consoleAuto || o.logLevel != slog.LevelInfo || o.logMessages || o.reachability != p2p.ReachabilityAuto {
					t.Errorf("defaults: %+v", o)
				}
			},
		},
		{
			name: "interspersed flags",
			typ:  "cli", args: []string{"--peer", "1.2.3.4:5", "::1", "--data-dir", "/d", "0", "--peer=" + ma1, "7", "--no-console", "--relay-service=false", "--reachability", "private"},
			check: func(t *testing.T, o *options) {
				if o.ip != netip.IPv6Loopback() || o.cliPort != 0 || o.peerPort != 7 || o.dataDir != "/d" {
					t.Errorf("got %+v", o)
				}
				if !slices.Equal(o.peers.Values(), []string{"1.2.3.4:5", ma1}) {
					t.Errorf("peers %q", o.peers.Values())
				}
				if o.console != consoleOff || o.relayService || o.reachability != p2p.ReachabilityPrivate {
					t.Errorf("console %v relay %v reachability %v", o.console, o.relayService, o.reachability)
				}
			},
		},
		{
			name: "double dash ends flags",
			typ:  "websock", args: []string{"127.0.0.1", "--log-level", "warn", "--", "1", "2"},
			check: func(t *testing.T, o *options) {
				if o.wsPort != 1 || o.peerPort != 2 || o.logLevel != slog.LevelWarn {
					t.Errorf("got %+v", o)
				}
			},
		},
		{
			name: "environment",
			typ:  "cli", args: []string{"127.0.0.1", "1", "2"},
			env: map[string]string{
				"DARKCHAT_DATA_DIR": "/env", "DARKCHAT_PEER": "1.1.1.1:1, 2.2.2.2:2", "DARKCHAT_PUBLIC_CIDR": "198.18.0.0/15,10.9.0.0/16",
				"DARKCHAT_CONSOLE": "true", "DARKCHAT_LOG_MESSAGES": "1", "DARKCHAT_CONN_LOW": "10", "DARKCHAT_CONN_HIGH": "20",
				"DARKCHAT_MAX_MESSAGE_SIZE": "2048", "DARKCHAT_TLS_CERT": "c", "DARKCHAT_TLS_KEY": "k", "DARKCHAT_ADMIN": "/a.sock",
				"DARKCHAT_REACHABILITY": "public", "DARKCHAT_MAX_CONNS": "500",
				"DARKCHAT_MAX_CHANNELS_PER_IP": "40", "DARKCHAT_MAX_NODE_CHANNELS": "300",
			},
			check: func(t *testing.T, o *options) {
				if o.dataDir != "/env" || o.admin != "/a.sock" || o.console != consoleOn || !o.logMessages ||
					o.connLow != 10 || o.connHigh != 20 || o.maxMessageSize != 2048 || o.tlsCert != "c" || o.tlsKey != "k" {
					t.Errorf("got %+v", o)
				}
				if !slices.Equal(o.peers.Values(), []string{"1.1.1.1:1", "2.2.2.2:2"}) {
					t.Errorf("peers %q", o.peers.Values())
				}
				if o.publicCIDRs.String() != "198.18.0.0/15,10.9.0.0/16" {
					t.Errorf("cidrs %s", o.publicCIDRs.String())
				}
				if o.reachability != p2p.ReachabilityPublic {
					t.Errorf("reachability %v, want public from DARKCHAT_REACHABILITY", o.reachability)
				}
				if g := o.gateway; g.MaxConns != 500 || g.MaxChannelsPerIP != 40 || g.MaxNodeChannels != 300 {
					t.Errorf("max conns %d, channels per IP %d, node channels %d; want 500, 40, 300 from the environment",
						g.MaxConns, g.MaxChannelsPerIP, g.MaxNodeChannels)
				}
			},
		},
		{
			name: "command line overrides environment",
			typ:  "cli", args: []string{"127.0.0.1", "1", "2", "--data-dir", "/flag", "--peer", "3.3.3.3:3", "--peer", "4.4.4.4:4", "--no-console"},
			env: map[string]string{"DARKCHAT_DATA_DIR": "/env", "DARKCHAT_PEER": "1.1.1.1:1", "DARKCHAT_CONSOLE": "true"},
			check: func(t *testing.T, o *options) {
				if o.dataDir != "/flag" || o.console != consoleOff {
					t.Errorf("got %+v", o)
				}
				if !slices.Equal(o.peers.Values(), []string{"3.3.3.3:3", "4.4.4.4:4"}) {
					t.Errorf("peers %q: the command line must replace the environment's list", o.peers.Values())
				}
			},
		},
		{
			name: "last console flag wins",
			typ:  "cli", args: []string{"--no-console", "127.0.0.1", "1", "2", "--console"},
			check: func(t *testing.T, o *options) {
				if o.console != consoleOn {
					t.Errorf("console %v", o.console)
				}
			},
		},
		{
			name: "mapped IPv4 is unmapped",
			typ:  "cli", args: []string{"::ffff:127.0.0.1", "1", "2"},
			check: func(t *testing.T, o *options) {
				if o.ip != netip.MustParseAddr("127.0.0.1") {
					t.Errorf("ip %v", o.ip)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := lookupServerType(tc.typ)
			o, err := parseServerArgs(st, tc.args, envMap(tc.env), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, o)
		})
	}
}

func TestParseServerArgsErrors(t *testing.T) {
	cases := []struct {
		typ  string
		args []string
		env  map[string]string
		want string
	}{
		{"cli", []string{"127.0.0.1", "1"}, nil, "takes 3 arguments, got 2"},
		{"cli", []string{"127.0.0.1", "1", "2", "3"}, nil, "takes 3 arguments, got 4"},
		{"cli", []string{"fe80::1%eth0", "1", "2"}, nil, "zoned"},
		{"cli", []string{"127.0.0.1", "x", "2"}, nil, "<cli-port>"},
		{"full", []string{"127.0.0.1", "1", "2", "99999"}, nil, "<peer-port>"},
		{"cli", []string{"127.0.0.1", "1", "2", "--tls-key", "k"}, nil, "--tls-cert and --tls-key"},
		{"cli", []string{"127.0.0.1", "1", "2", "--max-message-size", "10"}, nil, "--max-message-size"},
		{"cli", []string{"127.0.0.1", "1", "2", "--max-message-size", "100000000"}, nil, "--max-message-size"},
		{"cli", []string{"127.0.0.1", "1", "2", "--conn-low", "0"}, nil, "--conn-low"},
		{"cli", []string{"127.0.0.1", "1", "2", "--max-conns", "-1"}, nil, "--max-conns"},
		{"cli", []string{"127.0.0.1", "1", "2", "--max-channels-per-ip", "0"}, nil, "--max-channels-per-ip"},
		{"cli", []string{"127.0.0.1", "1", "2", "--max-node-channels", "961"}, nil, "--max-node-channels must be between 1 and 960"},
		{"cli", []string{"127.0.0.1", "1", "2", "--peer", "1.2.3.4"}, nil, "neither ip:port"},
		{"cli", []string{"127.0.0.1", "1", "2", "--rate", "NaN"}, nil, "--rate must be positive"},
		{"cli", []string{"127.0.0.1", "1", "2", "--rate", "+Inf"}, nil, "--rate must be positive"},
		{"cli", []string{"127.0.0.1", "1", "2", "--author-rate", "NaN"}, nil, "--author-rate"},
		{"cli", []string{"127.0.0.1", "1", "2", "--author-rate", "Inf"}, nil, "--author-rate"},
		{"cli", []string{"127.0.0.1", "1", "2", "--console=maybe"}, nil, "console"},
		{"cli", []string{"127.0.0.1", "1", "2"}, map[string]string{"DARKCHAT_RELAY_SERVICE": "perhaps"}, "DARKCHAT_RELAY_SERVICE"},
		{"cli", []string{"127.0.0.1", "1", "2"}, map[string]string{"DARKCHAT_PEER": "1.1.1.1:1,bad"}, "DARKCHAT_PEER"},
		{"cli", []string{"127.0.0.1", "1", "2"}, map[string]string{"DARKCHAT_LOG_LEVEL": "chatty"}, "DARKCHAT_LOG_LEVEL"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			st, _ := lookupServerType(tc.typ)
			_, err := parseServerArgs(st, tc.args, envMap(tc.env), io.Discard)
			var ue *usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want a usage error containing %q", err, tc.want)
			}
		})
	}
}

func TestDefaultPaths(t *testing.T) {
	env := envMap(map[string]string{"XDG_DATA_HOME": "/xdg", "HOME": "/home/u", "XDG_RUNTIME_DIR": "/run/user/7"})
	if d, _ := defaultDataDir(4001, env); d != "/xdg/darkchat/node-4001" {
		t.Errorf("data dir %q", d)
	}
	if d, _ := defaultDataDir(4001, envMap(map[string]string{"XDG_DATA_HOME": "rel", "HOME": "/home/u"})); d != "/home/u/.local/share/darkchat/node-4001" {
		t.Errorf("data dir without an absolute XDG_DATA_HOME: %q", d)
	}
	if d, err := defaultDataDir(0, env); d != "" || err != nil {
		t.Errorf("peer port 0 must mean an ephemeral identity, got %q, %v", d, err)
	}
	if d := defaultAdminDir(env); d != "/run/user/7/darkchat" {
		t.Errorf("admin dir %q", d)
	}
	if d := defaultAdminDir(envMap(nil)); !strings.Contains(d, "darkchat-") {
		t.Errorf("admin dir without XDG_RUNTIME_DIR %q", d)
	}
	if p := defaultAdminPath("/run/user/7/darkchat", 4001); p != "/run/user/7/darkchat/darkchatd-4001.sock" {
		t.Errorf("admin path %q", p)
	}
	if n := envName("max-message-size"); n != "DARKCHAT_MAX_MESSAGE_SIZE" {
		t.Errorf("env name %q", n)
	}
}
