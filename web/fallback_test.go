package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"darkchat/client/command"
)

// A page given fallback nodes lists them in /nodes.json, in order, and its
// policy lets it connect to their origins and nowhere else besides its own.
func TestPageFallbackNodes(t *testing.T) {
	fallbacks := []string{"ws://198.18.0.2:8081/ws", "wss://Chat2.Example/ws", "ws://198.18.0.2:8081/other"}
	h := pageHandler(t, fallbacks...)
	resp := get(t, h, "/nodes.json")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Cache-Control") != cacheRevalidate {
		t.Fatalf("GET /nodes.json: %s, type %q, cache %q", resp.Status, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
	}
	var nodes struct{ Fallbacks []string }
	if err := json.Unmarshal(body(t, resp), &nodes); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(nodes.Fallbacks) != fmt.Sprint(fallbacks) {
		t.Errorf("/nodes.json lists %q, want %q", nodes.Fallbacks, fallbacks)
	}
	csp := get(t, h, "/").Header.Get("Content-Security-Policy")
	connect := ""
	for d := range strings.SplitSeq(csp, ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(d), "connect-src "); ok {
			connect = v
		}
	}
	if want := "'self' ws://example.com wss://example.com ws://198.18.0.2:8081 wss://chat2.example"; connect != want {
		t.Errorf("connect-src %q, want %q", connect, want)
	}

	// Without fallbacks the list is empty, and the policy the page's own.
	h = pageHandler(t)
	if got := strings.TrimSpace(string(body(t, get(t, h, "/nodes.json")))); got != `{"fallbacks":[]}` {
		t.Errorf("/nodes.json without fallbacks: %s", got)
	}
	if got, want := get(t, h, "/").Header.Get("Content-Security-Policy"), ContentSecurityPolicy("example.com"); got != want {
		t.Errorf("policy without fallbacks %q, want %q", got, want)
	}
}

// A fallback the page could not dial, or whose host would change the
// policy, is refused with the reason.
func TestParseFallback(t *testing.T) {
	for _, bad := range []string{
		"", "198.18.0.2:8081", "http://198.18.0.2:8081/ws", "ws://", "ws:opaque",
		"ws://user@198.18.0.2/ws", "ws://198.18.0.2/ws?x=1", "ws://198.18.0.2/ws#f",
		"ws://evil;script-src*/ws", "wss://a b/ws",
	} {
		if _, err := ParseFallback(bad); err == nil {
			t.Errorf("ParseFallback(%q) accepted it", bad)
		}
		if _, err := Handler([]string{bad}); err == nil {
			t.Errorf("Handler took the fallback %q", bad)
		}
	}
	for _, good := range []string{"ws://198.18.0.2:8081/ws", "wss://chat.example/ws", "ws://[::1]:8081/ws"} {
		if _, err := ParseFallback(good); err != nil {
			t.Errorf("ParseFallback(%q): %v", good, err)
		}
	}
	if _, err := Handler(make([]string, MaxFallbacks+1)); err == nil || !strings.Contains(err.Error(), "at most 16") {
		t.Errorf("Handler with %d fallbacks: %v", MaxFallbacks+1, err)
	}
	if MaxFallbacks != command.MaxFallbacks {
		t.Errorf("the page takes %d fallback nodes, the client %d", MaxFallbacks, command.MaxFallbacks)
	}
}
