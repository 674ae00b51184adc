package gateway

import (
	"encoding/json"
	"testing"
)

// Two clients logged in with one identity are both told; when one ends,
// the other is told it is the only one again. Another key hears nothing.
func TestSessionsOfOneIdentity(t *testing.T) {
	n := startNode(t, nil)
	count := func(c *client) int {
		c.t.Helper()
		var f struct {
			Count int `json:"count"`
		}
		if err := json.Unmarshal(c.expect("sessions").raw, &f); err != nil {
			t.Fatal(err)
		}
		return f.Count
	}
	first := dialTCP(t, n.tcpAddr)
	first.login()
	other := dialTCP(t, n.tcpAddr)
	other.login()
	second := dialTCP(t, n.tcpAddr)
	second.key = first.key
	second.login()
	if a, b := count(first), count(second); a != 2 || b != 2 {
		t.Fatalf("sessions of the shared key: %d and %d, want 2 and 2", a, b)
	}
	second.tcp.Close()
	if got := count(first); got != 1 {
		t.Fatalf("after the second ended: %d, want 1", got)
	}
	other.assertNoMore("sessions")
}
