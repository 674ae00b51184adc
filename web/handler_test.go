package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, target string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

var assetRef = regexp.MustCompile(`(?:src|href|content)="(/[a-z_]+\.[a-z]+)\?v=([0-9a-f]{16})"`)

func TestPage(t *testing.T) {
	h := pageHandler(t)
	resp := get(t, h, "/", "Accept-Encoding", "gzip, deflate, br")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /: %s", resp.Status)
	}
	for k, want := range map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"Cache-Control":          "no-cache",
		"X-Content-Type-Options": "nosniff",
		"Content-Encoding":       "gzip",
	} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("GET /: %s = %q, want %q", k, got, want)
		}
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self' 'wasm-unsafe-eval'", "connect-src 'self' ws://example.com wss://example.com", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	page := string(body(t, resp))
	for _, hook := range []string{`id="input"`, `id="log"`, `id="pubkey"`, `<body data-state=`} {
		if !strings.Contains(page, hook) {
			t.Errorf("page lacks the hook %s", hook)
		}
	}
	if strings.Contains(page, "{{") {
		t.Error("page has an unreplaced placeholder")
	}
	refs := assetRef.FindAllStringSubmatch(page, -1)
	seen := map[string]bool{}
	for _, ref := range refs {
		seen[ref[1]] = true
	}
	for _, name := range []string{"/app.js", "/style.css", "/wasm_exec.js", "/darkchat.wasm", "/favicon.svg"} {
		if !seen[name] {
			t.Errorf("page does not reference %s by hash", name)
		}
	}
	// No external fetches: every URL in the page is our own.
	if m := regexp.MustCompile(`(?i)(src|href)="(https?:)?//`).FindString(page); m != "" {
		t.Errorf("page loads something from elsewhere: %s", m)
	}

	// Each referenced asset is served with its type, immutably under its
	// hash, and revalidated without it.
	types := map[string]string{
		"/app.js": "text/javascript; charset=utf-8", "/wasm_exec.js": "text/javascript; charset=utf-8",
		"/style.css": "text/css; charset=utf-8", "/darkchat.wasm": "application/wasm", "/favicon.svg": "image/svg+xml",
	}
	for _, ref := range refs {
		resp := get(t, h, ref[1]+"?v="+ref[2], "Accept-Encoding", "gzip")
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", ref[1], resp.Status)
			continue
		}
		if got := resp.Header.Get("Content-Type"); got != types[ref[1]] {
			t.Errorf("GET %s: Content-Type %q, want %q", ref[1], got, types[ref[1]])
		}
		if got := resp.Header.Get("Cache-Control"); got != cacheImmutable {
			t.Errorf("GET %s?v=<hash>: Cache-Control %q", ref[1], got)
		}
		if got := get(t, h, ref[1], "Accept-Encoding", "gzip").Header.Get("Cache-Control"); got != cacheRevalidate {
			t.Errorf("GET %s without its hash: Cache-Control %q", ref[1], got)
		}
		if resp.Header.Get("ETag") == "" || !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
			t.Errorf("GET %s: ETag %q, Vary %q", ref[1], resp.Header.Get("ETag"), resp.Header.Get("Vary"))
		}
	}
}

// The module goes out as generated, gzipped, to clients that take gzip, and
// decompressed to those that do not; both are the same WebAssembly.
func TestWasmEncodings(t *testing.T) {
	h := pageHandler(t)
	gz := get(t, h, "/darkchat.wasm", "Accept-Encoding", "gzip")
	if gz.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q", gz.Header.Get("Content-Encoding"))
	}
	raw, _ := io.ReadAll(gz.Body)
	committed, _ := static.ReadFile("static/darkchat.wasm.gz")
	if !bytes.Equal(raw, committed) {
		t.Fatal("gzip response is not the committed darkchat.wasm.gz")
	}
	plain := get(t, h, "/darkchat.wasm", "Accept-Encoding", "identity, gzip;q=0")
	if plain.Header.Get("Content-Encoding") != "" {
		t.Fatalf("gzip;q=0 still got Content-Encoding %q", plain.Header.Get("Content-Encoding"))
	}
	b := body(t, plain)
	if !bytes.HasPrefix(b, []byte("\x00asm")) {
		t.Fatalf("plain response is not WebAssembly: % x", b[:min(8, len(b))])
	}
	if plain.Header.Get("ETag") == gz.Header.Get("ETag") {
		t.Error("both encodings have one ETag")
	}
	unzipped, err := Decompress(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, unzipped) {
		t.Error("the encodings carry different modules")
	}
}

func TestConditionalAndMethods(t *testing.T) {
	h := pageHandler(t)
	first := get(t, h, "/app.js", "Accept-Encoding", "gzip")
	etag := first.Header.Get("ETag")
	if again := get(t, h, "/app.js", "Accept-Encoding", "gzip", "If-None-Match", etag); again.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match %s: %s, want 304", etag, again.Status)
	}
	if other := get(t, h, "/app.js", "If-None-Match", etag); other.StatusCode != http.StatusOK {
		t.Errorf("the gzip ETag matched the plain representation: %s", other.Status)
	}
	if nf := get(t, h, "/nope.js"); nf.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope.js: %s", nf.Status)
	}
	if nf := get(t, h, "/static/app.js"); nf.StatusCode != http.StatusNotFound {
		t.Errorf("GET /static/app.js: %s", nf.Status)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader("x")))
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodHead, "/style.css", nil))
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 || rec.Header().Get("Content-Length") == "" {
		t.Errorf("HEAD /style.css: %d, %d body bytes, Content-Length %q", rec.Code, rec.Body.Len(), rec.Header().Get("Content-Length"))
	}
}

func TestAcceptsGzip(t *testing.T) {
	for header, want := range map[string]bool{
		"":                       false,
		"gzip":                   true,
		"GZIP":                   true,
		"deflate, gzip;q=0.5":    true,
		"gzip;q=0":               false,
		"gzip; q=0.0":            false,
		"*":                      true,
		"*;q=0":                  false,
		"*, gzip;q=0":            false,
		"identity":               false,
		"br, x-gzip":             true,
		"gzip;q=bogus":           false,
		"deflate , gzip ; q=1.0": true,
	} {
		if got := acceptsGzip(header); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", header, got, want)
		}
	}
}

func TestContentSecurityPolicyHost(t *testing.T) {
	for host, ws := range map[string]bool{
		"127.0.0.1:8546":     true,
		"[::1]:8546":         true,
		"chat.example":       true,
		"evil; script-src *": false,
		"":                   false,
	} {
		csp := ContentSecurityPolicy(host)
		if got := strings.Contains(csp, "ws://"); got != ws {
			t.Errorf("host %q: CSP %q", host, csp)
		}
		if strings.Count(csp, "script-src") != 1 {
			t.Errorf("host %q injected a directive: %q", host, csp)
		}
	}
}

// pageHandler is Handler(fallbacks), which must take them.
func pageHandler(t testing.TB, fallbacks ...string) http.Handler {
	t.Helper()
	h, err := Handler(fallbacks)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
