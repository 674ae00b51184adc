package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
)

// cspDirectives are the page's policy directives, in order.
var cspDirectives = []string{"default-src", "script-src", "style-src", "img-src", "connect-src", "base-uri", "form-action", "frame-ancestors"}

// FuzzHandler sends the page handler requests with any path, query, Host,
// Accept-Encoding, If-None-Match and Range (all chosen by whoever opens
// the page): it answers with one of the expected statuses, the page's
// Content-Security-Policy keeps exactly its directives whatever the Host
// (a host goes into connect-src only as ws:// and wss:// sources that
// cannot end or add a directive), gzip is sent only to a client that named
// gzip or *, and a gzip body decompresses.
func FuzzHandler(f *testing.F) {
	for _, s := range [][5]string{
		{"/", "127.0.0.1:8546", "gzip, deflate, br", "", ""},
		{"/index.html", "[::1]:8546", "", `"x"`, ""},
		{"/app.js", "chat.example", "identity", "", "bytes=0-10"},
		{"/darkchat.wasm", "chat.example", "x-gzip;q=0.5, *;q=0", "", "bytes=-5"},
		{"/style.css", "evil; script-src *", "gzip;q=bogus", "*", "bytes=5-1"},
		{"/nope", "", "*", "", ""},
		{"/", "a b", "GZIP ; Q=1", "", "bytes=0-0,2-3"},
	} {
		f.Add(s[0], "v=0123456789abcdef", s[1], s[2], s[3], s[4])
	}
	h := pageHandler(f)
	f.Fuzz(func(t *testing.T, path, query, host, acceptEncoding, ifNoneMatch, rng string) {
		r := &http.Request{
			Method: http.MethodGet,
			URL:    &url.URL{Path: path, RawQuery: query},
			Host:   host,
			Header: http.Header{},
		}
		for k, v := range map[string]string{"Accept-Encoding": acceptEncoding, "If-None-Match": ifNoneMatch, "Range": rng} {
			if v != "" {
				r.Header.Set(k, v)
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		resp := w.Result()
		switch resp.StatusCode {
		case http.StatusOK, http.StatusPartialContent, http.StatusNotModified, http.StatusNotFound,
			http.StatusRequestedRangeNotSatisfiable:
		default:
			t.Fatalf("%q: status %s", path, resp.Status)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); csp != "" {
			checkCSP(t, csp, host)
		}
		if resp.Header.Get("Content-Encoding") == "gzip" {
			ae := strings.ToLower(acceptEncoding)
			if !strings.Contains(ae, "gzip") && !strings.Contains(ae, "*") {
				t.Fatalf("gzip sent for Accept-Encoding %q", acceptEncoding)
			}
			if resp.StatusCode == http.StatusOK {
				zr, err := gzip.NewReader(resp.Body)
				if err == nil {
					_, err = io.Copy(io.Discard, zr)
				}
				if err != nil {
					t.Fatalf("%q: gzip body: %v", path, err)
				}
			}
		}
	})
}

func checkCSP(t *testing.T, csp, host string) {
	t.Helper()
	var names []string
	for d := range strings.SplitSeq(csp, "; ") {
		name, sources, _ := strings.Cut(d, " ")
		names = append(names, name)
		if name != "connect-src" {
			continue
		}
		for _, src := range strings.Fields(sources) {
			if src == "'self'" {
				continue
			}
			h, ok := strings.CutPrefix(src, "ws://")
			if !ok {
				h, ok = strings.CutPrefix(src, "wss://")
			}
			if !ok || h != host || strings.ContainsAny(h, ";,'\" \t\r\n") {
				t.Fatalf("host %q: connect-src source %q in %q", host, src, csp)
			}
		}
	}
	if !slices.Equal(names, cspDirectives) {
		t.Fatalf("host %q: directives %q", host, names)
	}
	if bytes.ContainsFunc([]byte(csp), func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		t.Fatalf("host %q: CSP %q has a character outside printable ASCII", host, csp)
	}
}
