package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"darkchat/gateway"
	"darkchat/p2p"
)

// flagCase is how TestEveryFlag exercises one flag.
type flagCase struct {
	value string   // a valid value: --flag=value, then DARKCHAT_FLAG=value
	extra []string // other flags the value needs to pass validation
	got   func(o *options) any
	want  any // what got must return after either way of setting value

	// invalid is a value refused with an error containing wantErr; empty
	// for a flag that takes any string (a path).
	invalid, wantErr string
}

const testPeerMultiaddr = "/ip4/10.0.0.1/tcp/4001/p2p/12D3KooWKGtD5wXAb8pPtFMzC2yzKXiAi42ZQqidhcD9QvcwPzt1"

// flagCases has one entry per registered flag: TestEveryFlag fails for a
// flag without one, so a new flag cannot ship untested from either source.
var flagCases = map[string]flagCase{
	"peer": {value: testPeerMultiaddr, got: func(o *options) any { return o.peers.Values() }, want: []string{testPeerMultiaddr},
		invalid: "1.2.3.4", wantErr: "neither ip:port nor a multiaddr"},
	"data-dir":     {value: "/var/lib/dc", got: func(o *options) any { return o.dataDir }, want: "/var/lib/dc"},
	"admin":        {value: "/run/dc.sock", got: func(o *options) any { return o.admin }, want: "/run/dc.sock"},
	"console":      {value: "true", got: func(o *options) any { return o.console }, want: consoleOn, invalid: "maybe", wantErr: "want true or false"},
	"no-console":   {value: "true", got: func(o *options) any { return o.console }, want: consoleOff, invalid: "maybe", wantErr: "want true or false"},
	"log-messages": {value: "true", got: func(o *options) any { return o.logMessages }, want: true, invalid: "perhaps", wantErr: "parse error"},
	"log-level": {value: "warn", got: func(o *options) any { return o.logLevel }, want: slog.LevelWarn,
		invalid: "chatty", wantErr: "want debug, info, warn or error"},
	"tls-cert": {value: "c.pem", extra: []string{"--tls-key", "k.pem"}, got: func(o *options) any { return o.tlsCert }, want: "c.pem"},
	"tls-key":  {value: "k.pem", extra: []string{"--tls-cert", "c.pem"}, got: func(o *options) any { return o.tlsKey }, want: "k.pem"},
	"relay-service": {value: "false", got: func(o *options) any { return o.relayService }, want: false,
		invalid: "perhaps", wantErr: "parse error"},
	"reachability": {value: "private", got: func(o *options) any { return o.reachability }, want: p2p.ReachabilityPrivate,
		invalid: "sometimes", wantErr: "want auto, public or private"},
	"announce": {value: "203.0.113.7:4001", got: func(o *options) any { return fmt.Sprint(slices.Concat(o.announce.Values()...)) },
		want:    "[/ip4/203.0.113.7/tcp/4001 /ip4/203.0.113.7/udp/4001/quic-v1]",
		invalid: "somewhere", wantErr: "neither ip:port nor a multiaddr"},
	"public-cidr": {value: "198.18.7.0/15", got: func(o *options) any { return o.publicCIDRs.Values() },
		want:    []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")},
		invalid: "10.0.0.0/33", wantErr: "bad CIDR"},
	"author-rate": {value: "2.5", got: func(o *options) any { return o.authors.Rate }, want: 2.5,
		invalid: "-1", wantErr: "--author-rate must be 0 (no limit) or positive"},
	"author-burst": {value: "7", got: func(o *options) any { return o.authors.Burst }, want: 7,
		invalid: "0", wantErr: "--author-burst at least 1"},
	"conn-low": {value: "10", got: func(o *options) any { return o.connLow }, want: 10,
		invalid: "0", wantErr: "--conn-low must be at least 1"},
	"conn-high": {value: "300", got: func(o *options) any { return o.connHigh }, want: 300,
		invalid: "1", wantErr: "must be greater than --conn-low"},
	"max-message-size": {value: "2048", got: func(o *options) any { return o.maxMessageSize }, want: 2048,
		invalid: "10", wantErr: "--max-message-size must be between"},
	"max-line": {value: "4096", got: func(o *options) any { return o.gateway.MaxLine }, want: 4096,
		invalid: "100", wantErr: "--max-line must be between"},
	"max-channels": {value: "3", got: func(o *options) any { return o.gateway.MaxChannels }, want: 3,
		invalid: "0", wantErr: "--max-channels must be at least 1"},
	"max-channels-per-ip": {value: "40", got: func(o *options) any { return o.gateway.MaxChannelsPerIP }, want: 40,
		invalid: "0", wantErr: "--max-channels-per-ip must be at least 1"},
	"max-node-channels": {value: "300", got: func(o *options) any { return o.gateway.MaxNodeChannels }, want: 300,
		invalid: fmt.Sprint(gateway.MaxNodeChannelsLimit + 1), wantErr: "--max-node-channels must be between 1 and"},
	"max-sessions-per-ip": {value: "9", got: func(o *options) any { return o.gateway.MaxSessionsPerIP }, want: 9,
		invalid: "0", wantErr: "--max-sessions-per-ip must be at least 1"},
	"max-conns": {value: "500", got: func(o *options) any { return o.gateway.MaxConns }, want: 500,
		invalid: "-1", wantErr: "--max-conns must be at least 1"},
	"login-timeout": {value: "3s", got: func(o *options) any { return o.gateway.LoginTimeout }, want: 3 * time.Second,
		invalid: "0s", wantErr: "--login-timeout must be positive"},
	"rate": {value: "2.5", got: func(o *options) any { return o.gateway.Rate }, want: 2.5,
		invalid: "0", wantErr: "--rate must be positive"},
	"burst": {value: "9", got: func(o *options) any { return o.gateway.Burst }, want: 9,
		invalid: "0", wantErr: "--burst must be at least 1"},
	"send-queue": {value: "64", got: func(o *options) any { return o.gateway.SendQueue }, want: 64,
		invalid: "8", wantErr: "--send-queue must be at least 16"},
	"metrics": {value: "127.0.0.1:9464", got: func(o *options) any { return o.metrics }, want: "127.0.0.1:9464",
		invalid: "9464", wantErr: "want host:port"},
	"pprof": {value: "true", extra: []string{"--metrics", "127.0.0.1:9464"}, got: func(o *options) any { return o.pprof }, want: true,
		invalid: "perhaps", wantErr: "parse error"},
	"ws-origin": {value: "HTTPS://Chat.Example:443/", got: func(o *options) any { return o.wsOrigins.Values() }, want: []string{"https://chat.example"},
		invalid: "chat.example", wantErr: "is not scheme://host[:port]"},
	"web-fallback": {value: "ws://198.18.0.2:8081/ws", got: func(o *options) any { return o.webFallbacks.Values() }, want: []string{"ws://198.18.0.2:8081/ws"},
		invalid: "http://198.18.0.2:8081/ws", wantErr: "is not a ws:// or wss:// URL"},
}

// TestEveryFlag sets every registered flag once on the command line and
// once in its environment variable, and checks that the options hold the
// value; then that an invalid value is refused, from either source, with a
// usage error that names the flag and says what is wrong.
func TestEveryFlag(t *testing.T) {
	fs := flag.NewFlagSet("darkchatd", flag.ContinueOnError)
	registerFlags(fs, &options{})
	registered := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) {
		registered[f.Name] = true
		tc, ok := flagCases[f.Name]
		if !ok {
			t.Errorf("--%s has no entry in flagCases", f.Name)
			return
		}
		t.Run(f.Name, func(t *testing.T) { testFlag(t, f.Name, tc) })
	})
	for name := range flagCases {
		if !registered[name] {
			t.Errorf("flagCases has an entry for --%s, which is not registered", name)
		}
	}
}

func testFlag(t *testing.T, name string, tc flagCase) {
	st, _ := lookupServerType("full")
	positional := []string{"127.0.0.1", "0", "0", "0"}
	env := envName(name)
	parse := func(args []string, environ map[string]string) (*options, error) {
		return parseServerArgs(st, slices.Concat(positional, tc.extra, args), envMap(environ), io.Discard)
	}
	for _, how := range []struct {
		source  string
		args    []string
		environ map[string]string
	}{
		{"--" + name + "=" + tc.value, []string{"--" + name + "=" + tc.value}, nil},
		{env + "=" + tc.value, nil, map[string]string{env: tc.value}},
	} {
		o, err := parse(how.args, how.environ)
		if err != nil {
			t.Errorf("%s: %v", how.source, err)
			continue
		}
		if got := tc.got(o); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: options hold %#v, want %#v", how.source, got, tc.want)
		}
	}
	if tc.invalid == "" {
		return
	}
	for _, how := range []struct {
		source  string
		args    []string
		environ map[string]string
	}{
		{"--" + name + "=" + tc.invalid, []string{"--" + name + "=" + tc.invalid}, nil},
		{env + "=" + tc.invalid, nil, map[string]string{env: tc.invalid}},
	} {
		_, err := parse(how.args, how.environ)
		var ue *usageError
		if !errors.As(err, &ue) {
			t.Errorf("%s: error %v, want a usage error", how.source, err)
			continue
		}
		msg := err.Error()
		// The flag package names a flag "-name"; the environment's errors
		// name the variable; checks across flags name "--name".
		if !strings.Contains(msg, "-"+name) && !strings.Contains(msg, env) {
			t.Errorf("%s: error %q names neither --%s nor %s", how.source, msg, name, env)
		}
		if !strings.Contains(msg, tc.wantErr) {
			t.Errorf("%s: error %q, want it to say %q", how.source, msg, tc.wantErr)
		}
	}
}

func TestParseOrigin(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"*", "*"},
		{"https://chat.example", "https://chat.example"},
		{"https://chat.example/", "https://chat.example"},
		{"HTTPS://Chat.EXAMPLE", "https://chat.example"},
		{"https://chat.example:443", "https://chat.example"},
		{"http://chat.example:80", "http://chat.example"},
		{"http://chat.example:443", "http://chat.example:443"},
		{"https://chat.example:8443", "https://chat.example:8443"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080"},
		{"http://[2001:DB8::1]:8080", "http://[2001:db8::1]:8080"},
		{"https://[2001:db8::1]", "https://[2001:db8::1]"},
		{"https://xn--bcher-kva.example", "https://xn--bcher-kva.example"},
		{"chrome-extension://abcdefghijklmnop", "chrome-extension://abcdefghijklmnop"},
	} {
		got, err := parseOrigin(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseOrigin(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, wantErr string }{
		{"", "is not scheme://host[:port]"},
		{"chat.example", "is not scheme://host[:port]"},
		{"chat.example:8080", "is not scheme://host[:port]"},
		{"null", "is not scheme://host[:port]"},
		{"https://", "is not scheme://host[:port]"},
		{"https://chat.example/app", "no user, path, query or fragment"},
		{"https://chat.example?x=1", "no user, path, query or fragment"},
		{"https://chat.example#top", "no user, path, query or fragment"},
		{"https://user@chat.example", "no user, path, query or fragment"},
		{"https://chat.example:99999", "bad port"},
		{"https://chat.example:0", "bad port"},
		{"https://bücher.example", "ASCII xn-- form"},
		{"http://[fe80::1%25eth0]:80", "IPv6 zone"},
		{"*.example", "is not scheme://host[:port]"},
	} {
		got, err := parseOrigin(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("parseOrigin(%q) = %q, %v; want an error saying %q", tc.in, got, err, tc.wantErr)
		}
	}
}
