package web

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"darkchat/web/internal/wasmbuild"
)

func manifest(t *testing.T) wasmbuild.Manifest {
	t.Helper()
	b, err := static.ReadFile("static/build.json")
	if err != nil {
		t.Fatal(err)
	}
	var m wasmbuild.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("static/build.json: %v", err)
	}
	return m
}

func moduleDir(t *testing.T) string {
	t.Helper()
	dir, err := wasmbuild.ModuleDir(context.Background(), ".")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// The committed module must have been built from the sources as they are:
// client/, identity/ and cmd/darkchat-wasm/ (and the module versions they
// use) hash to what build.json recorded when it was generated.
func TestAssetsMatchSources(t *testing.T) {
	m := manifest(t)
	if m.Command != wasmbuild.Command() {
		t.Fatalf("static/ was built with %q, the generator now runs %q: run go generate ./web", m.Command, wasmbuild.Command())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sources, err := wasmbuild.SourceHash(ctx, moduleDir(t))
	if err != nil {
		t.Fatal(err)
	}
	if sources != m.Sources {
		t.Fatalf("static/darkchat.wasm.gz is stale: its sources (client/, identity/, cmd/darkchat-wasm/ or the modules they use) changed since it was generated: run go generate ./web and commit web/static")
	}
	gz, err := static.ReadFile("static/darkchat.wasm.gz")
	if err != nil {
		t.Fatal(err)
	}
	wasm, err := Decompress(gz)
	if err != nil {
		t.Fatal(err)
	}
	if got := wasmbuild.NewManifest(m.Go, m.Sources, wasm, gz); got != m {
		t.Fatalf("static/darkchat.wasm.gz does not match static/build.json:\n got %+v\nwant %+v", got, m)
	}
	// The budget: ML-KEM, HPKE, the channel and DM encodings, presence,
	// owned channels' rules and ZIP-215 verification came to 1.65 MB
	// (December 2026); a change that adds more than 100 KB to what a
	// browser downloads on every visit must say why.
	if len(gz) > 1750<<10 {
		t.Errorf("the gzipped module is %d bytes, over the 1.75 MB budget", len(gz))
	}
}

// The build is reproducible: building again gives the committed bytes. It
// needs the Go release that generated them.
func TestAssetsReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: not rebuilding the WebAssembly")
	}
	m := manifest(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := moduleDir(t)
	goVersion, err := wasmbuild.GoVersion(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if goVersion != m.Go {
		t.Skipf("static/ was generated with %s and this is %s: the bytes can only be compared with the same release", m.Go, goVersion)
	}
	sources, err := wasmbuild.SourceHash(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if sources != m.Sources {
		t.Skip("the sources changed since static/ was generated (TestAssetsMatchSources fails)")
	}
	wasm, err := wasmbuild.Build(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	gz, err := static.ReadFile("static/darkchat.wasm.gz")
	if err != nil {
		t.Fatal(err)
	}
	committed, err := Decompress(gz)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(wasm, committed) {
		t.Fatalf("rebuilding gave %d bytes that differ from the committed %d: the build is not reproducible", len(wasm), len(committed))
	}
	if !bytes.Equal(wasmbuild.Compress(wasm), gz) {
		t.Fatal("compressing the module again gave other bytes than the committed darkchat.wasm.gz")
	}
	execJS, err := wasmbuild.WasmExecJS(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	committedJS, err := os.ReadFile("static/wasm_exec.js")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(execJS, committedJS) {
		t.Fatalf("static/wasm_exec.js differs from %s's: run go generate ./web", goVersion)
	}
}
