// Package wasmbuild builds the browser client's WebAssembly and describes
// what it was built from. The generator (web/internal/genassets, run by
// go generate ./web) writes the committed assets with it, and the web
// package's tests use it to check that the committed assets still match
// their sources.
//
// The build is reproducible: -trimpath drops file system paths, VCS stamping
// is off, the environment that could change the output (GOFLAGS, GOWASM,
// GOEXPERIMENT, cgo) is fixed, and gzip output carries no name or time. The
// same sources and the same Go release therefore give the same bytes.
package wasmbuild

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// Package is the program compiled to WebAssembly.
const Package = "darkchat/cmd/darkchat-wasm"

// buildFlags are the go build flags of the WebAssembly. -s drops the symbol
// table. Inlining is off (-l): the client's work in a browser is a few
// signature checks per message, and without inlining the gzipped module is
// about 8% smaller (1.48 MB instead of 1.6 MB).
var buildFlags = []string{"-trimpath", "-buildvcs=false", "-ldflags=-s", "-gcflags=all=-l"}

// Command is the build command, as recorded in the manifest.
func Command() string {
	return "GOOS=js GOARCH=wasm go build " + strings.Join(buildFlags, " ") + " " + Package
}

// Manifest records what the committed assets were built from.
type Manifest struct {
	Go         string `json:"go"`      // the Go release that built the WebAssembly
	Command    string `json:"command"` // the build command
	Sources    string `json:"sources"` // SourceHash of the inputs
	WasmSHA256 string `json:"wasm_sha256"`
	WasmSize   int    `json:"wasm_size"`
	GzipSHA256 string `json:"gzip_sha256"`
	GzipSize   int    `json:"gzip_size"`
}

// env is the build environment: the caller's, with everything that could
// change the output fixed.
func env() []string {
	var e []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "GOOS", "GOARCH", "GOFLAGS", "GOWASM", "GOEXPERIMENT", "CGO_ENABLED":
			continue
		}
		e = append(e, kv)
	}
	return append(e, "GOOS=js", "GOARCH=wasm", "CGO_ENABLED=0", "GOFLAGS=-mod=readonly")
}

func goCmd(ctx context.Context, moduleDir string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = moduleDir
	cmd.Env = env()
	return cmd
}

func run(cmd *exec.Cmd) ([]byte, error) {
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", strings.Join(cmd.Args, " "), err, stderr.Bytes())
	}
	return out, nil
}

// ModuleDir returns the root of the darkchat module containing dir.
func ModuleDir(ctx context.Context, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "env", "GOMOD")
	cmd.Dir = dir
	out, err := run(cmd)
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the darkchat module")
	}
	return filepath.Dir(gomod), nil
}

// GoVersion returns the release of the go command that builds.
func GoVersion(ctx context.Context, moduleDir string) (string, error) {
	out, err := run(goCmd(ctx, moduleDir, "env", "GOVERSION"))
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// WasmExecJS returns the JavaScript support file of the Go release that
// builds, which must go with the WebAssembly it built.
func WasmExecJS(ctx context.Context, moduleDir string) ([]byte, error) {
	out, err := run(goCmd(ctx, moduleDir, "env", "GOROOT"))
	if err != nil {
		return nil, err
	}
	root := strings.TrimSpace(string(out))
	for _, p := range []string{"lib/wasm/wasm_exec.js", "misc/wasm/wasm_exec.js"} { // Go 1.24+, earlier
		if b, err := os.ReadFile(filepath.Join(root, p)); err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("wasm_exec.js not found in GOROOT %s", root)
}

// Build compiles Package to WebAssembly and returns it.
func Build(ctx context.Context, moduleDir string) ([]byte, error) {
	dir, err := os.MkdirTemp("", "darkchat-wasm")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "darkchat.wasm")
	args := append([]string{"build", "-o", out}, buildFlags...)
	if _, err := run(goCmd(ctx, moduleDir, append(args, Package)...)); err != nil {
		return nil, err
	}
	return os.ReadFile(out)
}

// Compress gzips wasm at the best compression, with no name or time in the
// header, so the same input always gives the same bytes.
func Compress(wasm []byte) []byte {
	var b bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression) // the level is valid
	zw.Write(wasm)
	zw.Close()
	return b.Bytes()
}

// listedPackage is the part of go list -json this package reads.
type listedPackage struct {
	ImportPath string
	Dir        string
	Standard   bool
	GoFiles    []string
	EmbedFiles []string
	Module     *struct {
		Path    string
		Version string
		Main    bool
		Replace *struct {
			Path    string
			Version string
		}
	}
}

// SourceHash hashes what the WebAssembly is built from, apart from the Go
// release (recorded on its own): the build command, every file of the
// module's own packages that the js/wasm build compiles or embeds, and the
// version of every other module it uses. Test files and files for other
// platforms are not inputs, so changing them changes nothing.
func SourceHash(ctx context.Context, moduleDir string) (string, error) {
	out, err := run(goCmd(ctx, moduleDir, "list", "-deps", "-json=ImportPath,Dir,Standard,GoFiles,EmbedFiles,Module", Package))
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "command %s\n", Command())
	dec := json.NewDecoder(bytes.NewReader(out))
	for dec.More() {
		var p listedPackage
		if err := dec.Decode(&p); err != nil {
			return "", fmt.Errorf("go list: %w", err)
		}
		switch {
		case p.Standard:
		case p.Module == nil:
			return "", fmt.Errorf("package %s is in no module", p.ImportPath)
		case p.Module.Main || p.Module.Replace != nil && p.Module.Replace.Version == "":
			// The module's own package, or one replaced by a directory:
			// its files are the input.
			fmt.Fprintf(h, "package %s\n", p.ImportPath)
			files := slices.Concat(p.GoFiles, p.EmbedFiles)
			slices.Sort(files)
			for _, f := range files {
				b, err := os.ReadFile(filepath.Join(p.Dir, f))
				if err != nil {
					return "", err
				}
				fmt.Fprintf(h, "file %s %x\n", f, sha256.Sum256(b))
			}
		case p.Module.Replace != nil:
			fmt.Fprintf(h, "package %s module %s %s => %s %s\n", p.ImportPath, p.Module.Path, p.Module.Version, p.Module.Replace.Path, p.Module.Replace.Version)
		default:
			fmt.Fprintf(h, "package %s module %s %s\n", p.ImportPath, p.Module.Path, p.Module.Version)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// NewManifest describes wasm and its compressed form gz.
func NewManifest(goVersion, sources string, wasm, gz []byte) Manifest {
	ws, gs := sha256.Sum256(wasm), sha256.Sum256(gz)
	return Manifest{
		Go:         goVersion,
		Command:    Command(),
		Sources:    sources,
		WasmSHA256: hex.EncodeToString(ws[:]),
		WasmSize:   len(wasm),
		GzipSHA256: hex.EncodeToString(gs[:]),
		GzipSize:   len(gz),
	}
}
