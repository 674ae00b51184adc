package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	// cacheImmutable is for an asset requested by its current hash: that
	// URL never names other content.
	cacheImmutable = "public, max-age=31536000, immutable"
	// cacheRevalidate is for the page and for assets asked for without the
	// current hash: use a cached copy only after checking its ETag.
	cacheRevalidate = "no-cache"
)

// Handler returns the handler that serves the page and its assets (see the
// package documentation). fallbacks are other nodes' WebSocket gateways
// (ws:// or wss:// URLs, each as ParseFallback returns it) that the page
// moves to when this node is gone, in order; it reads them from
// /nodes.json, and its policy lets it connect to them. The embedded assets
// are prepared on the first request; if they are broken, which the
// package's tests rule out, every request gets 500.
func Handler(fallbacks []string) (http.Handler, error) {
	h := &handler{}
	if len(fallbacks) > MaxFallbacks {
		return nil, fmt.Errorf("at most %d fallback nodes, not %d", MaxFallbacks, len(fallbacks))
	}
	for _, f := range fallbacks {
		u, err := ParseFallback(f)
		if err != nil {
			return nil, err
		}
		if origin := webSocketOrigin(u); !slices.Contains(h.connect, origin) {
			h.connect = append(h.connect, origin)
		}
	}
	nodes, err := json.Marshal(struct {
		Fallbacks []string `json:"fallbacks"`
	}{append([]string{}, fallbacks...)})
	if err != nil {
		return nil, err
	}
	h.nodes = nodes
	return h, nil
}

// MaxFallbacks bounds the fallback nodes a page is given: the client tries
// every one in turn on each reconnect, and takes no more than the CLI's
// --fallback (client/command's MaxFallbacks; the daemon does not link the
// client, and a test keeps the two equal).
const MaxFallbacks = 16

// ParseFallback checks a fallback node's WebSocket URL (darkchatd's
// --web-fallback): ws:// or wss://, a host the page's policy can name, and
// no user, query or fragment. It returns the URL as the page will dial it.
func ParseFallback(s string) (*url.URL, error) {
	const form = "a fallback node is its WebSocket gateway's URL, as in wss://chat2.example/ws or ws://198.18.0.2:8081/ws"
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" || u.Opaque != "" {
		return nil, fmt.Errorf("fallback %q is not a ws:// or wss:// URL: %s", s, form)
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || !validHost(u.Host) {
		return nil, fmt.Errorf("fallback %q has a user, query, fragment or host the page cannot use: %s", s, form)
	}
	return u, nil
}

// webSocketOrigin is u's scheme://host[:port], as the page's policy names
// the places it may connect to.
func webSocketOrigin(u *url.URL) string { return u.Scheme + "://" + strings.ToLower(u.Host) }

// handler serves the page (ServeHTTP) with its fallback nodes.
type handler struct {
	connect []string // the fallbacks' origins, added to the policy's connect-src
	nodes   []byte   // /nodes.json
}

func (hd *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	as, err := load()
	if err != nil {
		http.Error(w, "browser client unavailable: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/nodes.json" {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", cacheRevalidate)
		h.Set("Content-Type", "application/json")
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(hd.nodes))
		return
	}
	as.serve(w, r, hd.connect)
}

// serve answers a GET or HEAD for the page or one of its assets; connect
// are the origins besides the page's own its policy lets it connect to.
func (as *assets) serve(w http.ResponseWriter, r *http.Request, connect []string) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	var a *asset
	switch p := r.URL.Path; p {
	case "/", "/index.html":
		a = as.index
		h.Set("Content-Security-Policy", ContentSecurityPolicy(r.Host, connect...))
		h.Set("X-Frame-Options", "DENY")
	default:
		a = as.byName[strings.TrimPrefix(p, "/")]
	}
	if a == nil {
		http.NotFound(w, r)
		return
	}
	if a != as.index && r.URL.Query().Get("v") == a.hash {
		h.Set("Cache-Control", cacheImmutable)
	} else {
		h.Set("Cache-Control", cacheRevalidate)
	}
	h.Set("Content-Type", a.ctype)
	h.Add("Vary", "Accept-Encoding")
	body, etag := a.gz, `"`+a.hash+`-gz"`
	if body != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		h.Set("Content-Encoding", "gzip")
	} else {
		var err error
		if body, err = a.plain(); err != nil {
			http.Error(w, "asset unavailable", http.StatusInternalServerError)
			return
		}
		etag = `"` + a.hash + `"`
	}
	h.Set("ETag", etag)
	// ServeContent answers If-None-Match with 304 and serves ranges (of
	// the encoded bytes, as Content-Encoding defines them).
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// ContentSecurityPolicy is the chat page's policy for a request to host: it
// allows the page its own scripts (and compiling its WebAssembly), styles
// and images, and connections to its own origin (the module's fetch and
// the WebSocket to /ws on the same host) and to the fallback nodes'
// origins, others (scheme://host[:port], checked by ParseFallback).
// Nothing else loads, no inline script or style runs, nothing may frame
// it, and it has no forms that post anywhere. The node's status page
// (package metrics) is sent with the same policy.
func ContentSecurityPolicy(host string, others ...string) string {
	connect := "'self'"
	if validHost(host) {
		// 'self' covers ws: and wss: to the same host in CSP Level 3;
		// older browsers need them spelled out.
		connect += " ws://" + host + " wss://" + host
	}
	for _, o := range others {
		connect += " " + o
	}
	return "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; img-src 'self' data: blob:; " +
		"connect-src " + connect + "; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// validHost reports whether host (the request's Host) is a plain host or
// host:port that may go into the policy unquoted.
func validHost(host string) bool {
	if host == "" || len(host) > 255 {
		return false
	}
	for _, c := range host {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.ContainsRune(".-:[]", c):
		default:
			return false
		}
	}
	return true
}

// acceptsGzip reports whether an Accept-Encoding header value allows gzip
// (RFC 9110 §12.5.3): listed as gzip or *, without q=0.
func acceptsGzip(header string) bool {
	gzip, star := -1.0, -1.0
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		for param := range strings.SplitSeq(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(param), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				} else {
					q = 0
				}
			}
		}
		switch strings.ToLower(strings.TrimSpace(coding)) {
		case "gzip", "x-gzip":
			gzip = q
		case "*":
			star = q
		}
	}
	if gzip >= 0 {
		return gzip > 0
	}
	return star > 0
}
