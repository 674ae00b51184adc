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
