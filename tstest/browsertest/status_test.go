package browsertest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"darkchat/tstest"
)

// chatUntilSeen has from send line to channel until to has seen it: a
// message sent before the nodes have exchanged subscriptions reaches
// nobody.
func chatUntilSeen(t *testing.T, from *client, fromUser string, to *client, channel, body string) {
	t.Helper()
	want := fromUser + "@" + channel + " - " + body
	sent := 0
	tstest.WaitFor(t, 45*time.Second, to.Name+" to see "+fromUser+"'s message", func() (bool, string) {
		if slices.Contains(to.Lines(), want) {
			return true, ""
		}
		from.Send(channel + " " + body)
		sent++
		return false, fmt.Sprintf("none of %d seen", sent)
	})
}

// statusDoc is the part of /status.json the test reads.
type statusDoc struct {
	ID           string `json:"id"`
	Reachability string `json:"reachability"`
	Peers        []struct {
		ID, Addr, Path string
	} `json:"peers"`
	SessionsTCP int      `json:"sessions_tcp"`
	SessionsWS  int      `json:"sessions_ws"`
	Channels    int      `json:"channels"`
	Stats       []string `json:"stats"`
	Minute      struct {
		In  float64  `json:"messages_in_per_second"`
		P99 *float64 `json:"latency_p99_seconds"`
	} `json:"minute"`
	History struct {
		T   []int64    `json:"t"`
		In  []float64  `json:"messages_in_per_second"`
		P99 []*float64 `json:"latency_p99_seconds"`
	} `json:"history"`
}

// TestStatusPage: a node with --metrics whose client chats with a client
// of another node serves /status.json with the peer, sessions and traffic,
// and /status renders in Chromium at 1280 and 390 px wide: the peer with
// its direct mark, the three plots drawn, no console error, nothing the
// Content Security Policy refused, and no horizontal scrolling at 390 px.
func TestStatusPage(t *testing.T) {
	requireChromium(t)
	b := newBrowser(t, "status")
	na := bins.StartNode(t, "A", "full", "--metrics", "127.0.0.1:0")
	nb := bins.StartNode(t, "B", "full", "--peer", fmt.Sprintf("127.0.0.1:%d", na.PeerPort))
	base := strings.TrimSuffix(strings.TrimPrefix(na.WaitPrefix("Metrics: "), "Metrics: "), "/metrics")
	na.WaitPeer(nb.ID)

	ca := bins.TCPClient(t, "cli-A", na)
	cb := bins.WSClient(t, "ws-B", nb)
	ca.Send("join ops alice")
	ca.WaitPrefix("Joined ops as alice")
	cb.Send("join ops bob")
	cb.WaitPrefix("Joined ops as bob")
	chatUntilSeen(t, ca, "alice", cb, "ops", "status check from A")
	chatUntilSeen(t, cb, "bob", ca, "ops", "status check from B")

	// /status.json: the node, its peer, its session, and the traffic,
	// with a latency p99 in the history once a sample after the chat is
	// kept (one every 5 s).
	var doc statusDoc
	tstest.WaitFor(t, 30*time.Second, "/status.json to show the chat", func() (bool, string) {
		resp, err := http.Get(base + "/status.json")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		doc = statusDoc{}
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			return false, err.Error()
		}
		drawn := 0
		for _, v := range doc.History.P99 {
			if v != nil {
				drawn++
			}
		}
		return drawn >= 2 && doc.Minute.In > 0, fmt.Sprintf("%d p99 points, in %v/s", drawn, doc.Minute.In)
	})
	if doc.ID != na.ID || len(doc.Peers) != 1 || doc.Peers[0].ID != nb.ID || doc.Peers[0].Path != "direct" {
		t.Errorf("/status.json: node %s, peers %+v; want %s with %s direct", doc.ID, doc.Peers, na.ID, nb.ID)
	}
	if doc.SessionsTCP != 1 || doc.SessionsWS != 0 || doc.Channels != 1 || len(doc.Stats) != 9 || doc.Minute.P99 == nil {
		t.Errorf("/status.json: sessions %d tcp %d ws, %d channels, stats %q, p99 %v", doc.SessionsTCP, doc.SessionsWS, doc.Channels, doc.Stats, doc.Minute.P99)
	}
	if n := len(doc.History.T); n < 2 || len(doc.History.In) != n || len(doc.History.P99) != n {
		t.Errorf("/status.json: history of %d times, %d rates, %d p99s", n, len(doc.History.In), len(doc.History.P99))
	}

	b.do("open /status", chromedp.Navigate(base+"/status"))
	peerMark := fmt.Sprintf(`(document.querySelector('#peers li[data-peer=%q] .mark') || {}).textContent || ''`, nb.ID)
	// A path is drawn when it has a segment: a line (L) or a lone point's
	// dash (h).
	const pathsDrawn = `['plot-rate', 'plot-latency', 'plot-drops'].map(id =>
		Array.from(document.querySelectorAll('#' + id + ' svg path.line'), p => p.getAttribute('d') || '')
			.some(d => /^M.*[Lh]/.test(d)))`
	for _, vp := range []struct{ w, h int64 }{{1280, 800}, {390, 844}} {
		b.do(fmt.Sprintf("viewport %dx%d", vp.w, vp.h), chromedp.EmulateViewport(vp.w, vp.h))
		tstest.WaitFor(t, 30*time.Second, fmt.Sprintf("at %d px: the page to show the peer and draw the plots", vp.w), func() (bool, string) {
			state, _ := tryEval[string](b, `document.body ? document.body.dataset.state : ''`)
			mark, _ := tryEval[string](b, peerMark)
			drawn, _ := tryEval[[]bool](b, pathsDrawn)
			ok := state == "ok" && mark == "direct" && len(drawn) == 3 && !slices.Contains(drawn, false)
			return ok, fmt.Sprintf("state %q, peer mark %q, plots drawn %v", state, mark, drawn)
		})
		if got := eval[string](b, `document.getElementById('reachability').textContent`); got == "" || got == "–" {
			t.Errorf("at %d px: reachability shows %q", vp.w, got)
		}
		if got := eval[string](b, `document.getElementById('session-count').textContent + ' ' + document.getElementById('channels').textContent`); got != "1 1" {
			t.Errorf("at %d px: sessions and channels show %q, want \"1 1\"", vp.w, got)
		}
		widths := eval[[]int](b, `[document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]`)
		if widths[0] > widths[2] || widths[1] > widths[2] {
			t.Errorf("at %d px: the document is %d px wide (body %d) in a %d px viewport: it scrolls sideways", vp.w, widths[0], widths[1], widths[2])
		}
		// Every plot keeps a usable size.
		if w := eval[int](b, `Math.floor(Math.min(...Array.from(document.querySelectorAll('.plot svg'), s => s.getBoundingClientRect().width)))`); w < 200 {
			t.Errorf("at %d px: a plot is only %d px wide", vp.w, w)
		}
		if dir := os.Getenv("DARKCHAT_SCREENSHOTS"); dir != "" {
			b.screenshot(filepath.Join(dir, fmt.Sprintf("status-%d.png", vp.w)))
		}
	}
	for _, e := range eval[[]string](b, `performance.getEntriesByType('resource').map(e => e.name)`) {
		if !strings.HasPrefix(e, base+"/") {
			t.Errorf("the page fetched %s", e)
		}
	}
	b.mu.Lock()
	for _, c := range b.console {
		if strings.HasPrefix(c, "error:") {
			t.Errorf("console: %s", c)
		}
	}
	b.mu.Unlock()
	b.checkConsole()
}
