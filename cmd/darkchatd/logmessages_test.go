package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"darkchat/client"
	"darkchat/identity"
)

// trafficFields is what a --log-messages line holds, in order: the
// handler's own fields, the daemon's node and component, then the
// message's metadata as the flag's help lists it. Nothing else.
var trafficFields = []string{"time", "level", "msg", "node", "component", "channel", "author", "id", "bytes", "from"}

// With --log-messages, each node logs one line of metadata per channel
// message: the sender's node says from=local, a node that received it from
// the mesh names the forwarding peer. The username and body never appear
// in either node's output.
func TestLogMessagesLogsMetadataOnly(t *testing.T) {
	t.Parallel()
	a := startDaemon(t, "A", daemonSpec{args: nodeArgs(t, "cli", "--log-messages")})
	b := startDaemon(t, "B", daemonSpec{args: nodeArgs(t, "cli", "--log-messages", "--peer", a.tcpMultiaddr())})

	const channel, username, body = "lobby", "alice7", "the eagle lands at midnight"
	alice := loggedInSession(t, a.cliAddr)
	bob := loggedInSession(t, b.cliAddr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := bob.Join(ctx, channel, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := alice.Join(ctx, channel, username); err != nil {
		t.Fatal(err)
	}

	// Until the two nodes' subscriptions have met, a message reaches only
	// A: alice sends again every 2 s until B has logged one of hers.
	var sent []string
	var atB map[string]string
	deadline := time.Now().Add(40 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for nextSend := time.Now(); atB == nil; <-tick.C {
		if now := time.Now(); now.After(nextSend) {
			if now.After(deadline) {
				t.Fatalf("B logged none of alice's %d messages within 40 s", len(sent))
			}
			id, err := alice.Send(ctx, channel, body)
			if err != nil {
				t.Fatal(err)
			}
			sent = append(sent, id)
			nextSend = now.Add(2 * time.Second)
		}
		atB = trafficLine(t, b, sent)
	}
	id := atB["id"]
	var atA map[string]string
	eventually(t, 10*time.Second, "A logs message "+id, func() bool {
		atA = trafficLine(t, a, []string{id})
		return atA != nil
	})

	// The client sends version-2 messages: the version-1 fields, then
	// prev and a reference count, and no reference (nobody else wrote).
	wantBytes := strconv.Itoa(identity.MinChannelMessageWireLen - 2 + len(channel) + len(username) + len(body) + identity.ShortIDSize + 1)
	author := alice.PublicKey().String()[:16]
	for _, c := range []struct {
		node *daemon
		line map[string]string
		from string
	}{{a, atA, "local"}, {b, atB, a.id}} {
		want := map[string]string{
			"level": "INFO", "msg": "channel message", "node": c.node.id, "component": "traffic",
			"channel": channel, "author": author, "id": id, "bytes": wantBytes, "from": c.from,
		}
		got := maps.Clone(c.line)
		if _, err := time.Parse(time.RFC3339Nano, got["time"]); err != nil {
			t.Errorf("%s: time %q: %v", c.node.name, got["time"], err)
		}
		delete(got, "time")
		if !maps.Equal(got, want) {
			t.Errorf("%s logged %v\nwant %v", c.node.name, got, want)
		}
	}
	for _, d := range []*daemon{a, b} {
		out := d.stderr.String() + strings.Join(d.allLines(), "\n")
		for _, secret := range []string{body, "eagle", username, alice.PublicKey().String()} {
			if strings.Contains(out, secret) {
				t.Errorf("%s's output contains %q", d.name, secret)
			}
		}
	}
}

// trafficLine returns the fields of d's --log-messages line for one of ids,
// or nil if there is none yet. A traffic line with other fields than
// trafficFields fails the test.
func trafficLine(t *testing.T, d *daemon, ids []string) map[string]string {
	t.Helper()
	for _, line := range strings.Split(d.stderr.String(), "\n") {
		if !strings.Contains(line, " component=traffic ") {
			continue
		}
		keys, fields, err := parseLogLine(line)
		if err != nil {
			t.Fatalf("%s: traffic line %q: %v", d.name, line, err)
		}
		if !slices.Equal(keys, trafficFields) {
			t.Fatalf("%s: traffic line has fields %q, want exactly %q", d.name, keys, trafficFields)
		}
		if slices.Contains(ids, fields["id"]) {
			return fields
		}
	}
	return nil
}

// parseLogLine splits a line of slog's text handler into its keys, in
// order, and their values (unquoted).
func parseLogLine(line string) (keys []string, fields map[string]string, err error) {
	fields = map[string]string{}
	for rest := strings.TrimSpace(line); rest != ""; rest = strings.TrimLeft(rest, " ") {
		key, after, ok := strings.Cut(rest, "=")
		if !ok || key == "" || strings.ContainsAny(key, " \"") {
			return nil, nil, fmt.Errorf("no key=value at %q", rest)
		}
		var value string
		if strings.HasPrefix(after, `"`) {
			quoted, err := strconv.QuotedPrefix(after)
			if err != nil {
				return nil, nil, fmt.Errorf("value of %s: %w", key, err)
			}
			value, _ = strconv.Unquote(quoted)
			rest = after[len(quoted):]
		} else {
			value, rest, _ = strings.Cut(after, " ")
		}
		if _, dup := fields[key]; dup {
			return nil, nil, fmt.Errorf("key %s twice", key)
		}
		keys = append(keys, key)
		fields[key] = value
	}
	return keys, fields, nil
}

// loggedInSession is a client session logged in at a node's TCP gateway
// with a fresh key.
func loggedInSession(t *testing.T, addr string) *client.Session {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	key, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	tr, err := client.DialTCP(ctx, addr)
	if err != nil {
		t.Fatal(err)
	}
	s, err := client.NewSession(tr, client.SessionConfig{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.WaitLogin(ctx); err != nil {
		t.Fatalf("login at %s: %v", addr, err)
	}
	return s
}
