package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
)

//go:embed static/index.html static/app.js static/style.css static/favicon.svg static/wasm_exec.js static/darkchat.wasm.gz static/build.json
var static embed.FS

// asset is one file the handler serves, in both encodings.
type asset struct {
	name  string // URL path without the leading slash
	ctype string
	hash  string // hex, of the identity encoding; in ?v= and the ETag

	identity []byte // nil until needed, for the module (see plain)
	gz       []byte // nil if compressing does not help

	plainOnce sync.Once
	plainErr  error
}

// plain returns the identity encoding, decompressing the module on first
// use: almost every browser takes it gzipped, so the 5 MB plain copy is
// made only if one does not.
func (a *asset) plain() ([]byte, error) {
	a.plainOnce.Do(func() {
		if a.identity == nil {
			a.identity, a.plainErr = Decompress(a.gz)
		}
	})
	return a.identity, a.plainErr
}

// assets holds what the handler serves, built once from the embedded files.
type assets struct {
	byName map[string]*asset
	index  *asset
}

var (
	loadOnce   sync.Once
	loaded     *assets
	loadFailed error
)

func load() (*assets, error) {
	loadOnce.Do(func() { loaded, loadFailed = loadAssets(static) })
	return loaded, loadFailed
}

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".wasm": "application/wasm",
}

func loadAssets(fsys fs.FS) (*assets, error) {
	as := &assets{byName: make(map[string]*asset)}
	for _, name := range []string{"app.js", "style.css", "favicon.svg", "wasm_exec.js"} {
		b, err := fs.ReadFile(fsys, "static/"+name)
		if err != nil {
			return nil, err
		}
		as.byName[name] = textAsset(name, b)
	}
	gz, err := fs.ReadFile(fsys, "static/darkchat.wasm.gz")
	if err != nil {
		return nil, err
	}
	// The hash names the module's gzipped bytes, which determine the plain
	// ones: hashing those would mean decompressing at every start.
	sum := sha256.Sum256(gz)
	as.byName["darkchat.wasm"] = &asset{name: "darkchat.wasm", ctype: contentTypes[".wasm"], hash: hex.EncodeToString(sum[:8]), gz: gz}

	page, err := fs.ReadFile(fsys, "static/index.html")
	if err != nil {
		return nil, err
	}
	// The page names each asset by its content hash, so a browser can
	// cache them for good and still never runs a stale mix.
	var pairs []string
	for name, a := range as.byName {
		pairs = append(pairs, "{{"+name+"}}", "/"+name+"?v="+a.hash)
	}
	page = []byte(strings.NewReplacer(pairs...).Replace(string(page)))
	if i := bytes.Index(page, []byte("{{")); i >= 0 {
		return nil, fmt.Errorf("web: index.html names an unknown asset near %q", page[i:min(len(page), i+40)])
	}
	as.index = textAsset("index.html", page)
	return as, nil
}

func textAsset(name string, b []byte) *asset {
	sum := sha256.Sum256(b)
	a := &asset{name: name, ctype: contentTypes[name[strings.LastIndexByte(name, '.'):]], hash: hex.EncodeToString(sum[:8]), identity: b}
	var zb bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&zb, gzip.BestCompression) // the level is valid
	zw.Write(b)
	zw.Close()
	if zb.Len() < len(b)*9/10 {
		a.gz = zb.Bytes()
	}
	return a
}

// Decompress returns the bytes of a gzip-compressed asset (what
// wasmbuild.Compress made). It lives here, not beside Compress, so that
// the daemon serving the assets never links the asset builder, which runs
// the go tool.
func Decompress(gz []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}
