package gateway

import (
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"darkchat/identity"
)

// Tests of the gateway against PROTOCOL.md as an independent client reads
// it: where the gateway once departed from the document, it now agrees.

// Field names are matched exactly (§1): a field in another case is an
// unknown field, ignored; it neither serves as "type" nor overrides the
// field spelled right.
func TestFieldNamesMatchExactly(t *testing.T) {
	a := startNode(t, nil)
	c := dialTCP(t, a.tcpAddr)
	c.sendRaw(`{"Type":"ping"}`)
	if f := c.expectError(codeBadJSON); !strings.Contains(f.Message, `"type"`) {
		t.Fatalf("error %q does not name the missing field", f.Message)
	}
	c.login()
	c.sendRaw(`{"type":"join","channel":"lobby","CHANNEL":"other","username":"alice"}`)
	if f := c.expect("joined"); f.Channel != "lobby" {
		t.Fatalf("joined %s, want lobby", f.raw)
	}
	c.sendRaw(`{"type":"join","CHANNEL":"other","channel":"lobby","username":"bob"}`)
	if f := c.expect("joined"); f.Channel != "lobby" || f.User != "bob" {
		t.Fatalf("joined %s, want lobby as bob", f.raw)
	}
	c.sendRaw(`{"type":"join","Channel":"lobby","username":"alice"}`)
	if f := c.expectError(codeBadChannel); f.Channel != "" {
		t.Fatalf("a wrongly cased channel field was read: %s", f.raw)
	}
	c.sendRaw(`{"TYPE":"leave","type":"leave","channel":"lobby"}`)
	c.expect("left")
}

// Binary values are lowercase hex (§1): a send whose id or signature is
// spelled in uppercase is malformed, answered bad_json naming the message,
// never ok with the id echoed in another spelling.
func TestUppercaseHexIsRefused(t *testing.T) {
	a := startNode(t, nil)
	c := dialTCP(t, a.tcpAddr)
	c.login()
	c.join("lobby", "alice")
	for _, upper := range []string{"id", "sig"} {
		m, err := identity.NewChannelMessage(c.key, "lobby", "alice", "hi "+upper, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		req := map[string]any{"type": "send", "channel": "lobby", "username": "alice", "body": m.Body,
			"ts": m.Timestamp, "id": hex.EncodeToString(m.ID[:]), "sig": hex.EncodeToString(m.Sig[:])}
		req[upper] = strings.ToUpper(req[upper].(string))
		c.send(req)
		f := c.expectError(codeBadJSON)
		if f.ID != req["id"] || f.Channel != "lobby" || !strings.Contains(f.Message, "lowercase hex") {
			t.Fatalf("uppercase %s: %s", upper, f.raw)
		}
	}
	c.assertNoMore("ok")
}

// An error about a request sent before login names what the request
// concerns (§2.9): a join's, leave's or send's channel, a send's id, a
// dm's ref, a whois's key.
func TestNotLoggedInNamesTheRequest(t *testing.T) {
	a := startNode(t, nil)
	c := dialTCP(t, a.tcpAddr)
	c.send(map[string]any{"type": "join", "channel": "lobby", "username": "alice"})
	if f := c.expectError(codeNotLoggedIn); f.Channel != "lobby" {
		t.Fatalf("join: %s", f.raw)
	}
	c.send(map[string]any{"type": "leave", "channel": "lobby"})
	if f := c.expectError(codeNotLoggedIn); f.Channel != "lobby" {
		t.Fatalf("leave: %s", f.raw)
	}
	id := c.sendMsg("lobby", "alice", "too early", nil)
	if f := c.expectError(codeNotLoggedIn); f.Channel != "lobby" || f.ID != id {
		t.Fatalf("send: %s", f.raw)
	}
	c.send(map[string]any{"type": "whois", "key": c.key.Public().String()})
	if f := c.expectError(codeNotLoggedIn); f.Key != c.key.Public().String() {
		t.Fatalf("whois: %s", f.raw)
	}
	c.sendRaw(`{"type":"dm","ref":"r1","envelope":"AAAA"}`)
	if f := c.expectError(codeNotLoggedIn); !strings.Contains(string(f.raw), `"ref":"r1"`) {
		t.Fatalf("dm: %s", f.raw)
	}
	c.login() // none of these closed the session
}

// A key spelled in uppercase is malformed (§1): at login it is bad_key and
// closes the session; in a whois it is bad_key and the session goes on.
func TestUppercaseKeyIsRefused(t *testing.T) {
	a := startNode(t, nil)
	c := dialTCP(t, a.tcpAddr)
	m := c.loginMsg()
	m["key"] = strings.ToUpper(m["key"].(string))
	c.send(m)
	c.expectError(codeBadKey)
	c.expectClosed()

	c = dialTCP(t, a.tcpAddr)
	c.login()
	upper := strings.ToUpper(c.key.Public().String())
	c.send(map[string]any{"type": "whois", "key": upper})
	if f := c.expectError(codeBadKey); f.Key != upper {
		t.Fatalf("whois: %s", f.raw)
	}
	c.join("lobby", "alice") // still open
}
