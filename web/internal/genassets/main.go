// Command genassets generates the browser client's compiled assets in
// web/static: darkchat.wasm.gz (the client core built for js/wasm and
// gzipped), wasm_exec.js (the Go release's support file that goes with it)
// and build.json (what they were built from, which the web package's tests
// check). It is run by go generate ./web; the output is committed, so that
// go build ./cmd/darkchatd alone makes a complete node.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"darkchat/web/internal/wasmbuild"
)

func main() {
	out := flag.String("o", "static", "output `DIR`")
	flag.Parse()
	if err := generate(*out); err != nil {
		fmt.Fprintln(os.Stderr, "genassets:", err)
		os.Exit(1)
	}
}

func generate(out string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	mod, err := wasmbuild.ModuleDir(ctx, ".")
	if err != nil {
		return err
	}
	goVersion, err := wasmbuild.GoVersion(ctx, mod)
	if err != nil {
		return err
	}
	sources, err := wasmbuild.SourceHash(ctx, mod)
	if err != nil {
		return err
	}
	start := time.Now()
	wasm, err := wasmbuild.Build(ctx, mod)
	if err != nil {
		return err
	}
	gz := wasmbuild.Compress(wasm)
	execJS, err := wasmbuild.WasmExecJS(ctx, mod)
	if err != nil {
		return err
	}
	m, err := json.MarshalIndent(wasmbuild.NewManifest(goVersion, sources, wasm, gz), "", "  ")
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{
		"darkchat.wasm.gz": gz,
		"wasm_exec.js":     execJS,
		"build.json":       append(m, '\n'),
	} {
		if err := os.WriteFile(filepath.Join(out, name), data, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("genassets: %s: %d bytes, %d gzipped, built with %s in %v\n",
		filepath.Join(out, "darkchat.wasm.gz"), len(wasm), len(gz), goVersion, time.Since(start).Round(100*time.Millisecond))
	return nil
}
