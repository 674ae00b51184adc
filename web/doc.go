// Package web serves the browser client: a page (static/index.html,
// app.js, style.css) around the darkchat client core compiled to
// WebAssembly (static/darkchat.wasm.gz, built from cmd/darkchat-wasm), all
// embedded in the binary, so a node serves it with no network access and
// no build step beyond go build.
//
// # Assets
//
// The WebAssembly and its wasm_exec.js are generated and committed:
//
//	go generate ./web
//
// rebuilds them (web/internal/genassets) and records in static/build.json
// the Go release, the build command and a hash of the sources they came
// from. The package's tests fail when the committed module no longer
// matches its sources (run go generate ./web after changing client/,
// identity/ or cmd/darkchat-wasm/), and rebuild it to check that the build
// is reproducible byte for byte.
//
// # Serving
//
// Handler serves GET and HEAD: / is the page; /app.js, /style.css,
// /wasm_exec.js, /darkchat.wasm and /favicon.svg its assets; /nodes.json
// the fallback nodes the operator gave it ({"fallbacks":[URL…]}), other
// nodes' WebSocket gateways the page moves to when this node is gone. The page
// links each asset as /<name>?v=<content hash>: such URLs are cached for a
// year (immutable), other requests revalidate with an ETag. The module is
// sent gzipped (Content-Encoding: gzip, as generated) to clients that accept
// it, and decompressed once for those that do not; the text assets are
// compressed when the handler is made. The page is sent with a Content
// Security Policy that allows only its own scripts, styles and WebSocket,
// and the fallback nodes' WebSockets.
//
// The gateway hands every path but /ws to this handler (gateway.New's page
// argument).
package web

//go:generate go run ./internal/genassets -o static
